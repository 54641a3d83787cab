//! The reference gateway: serves the wecom-auth component's HTTP front
//! (`wasi:http/incoming-handler`) with wasmtime-wasi-http, as Spin's HTTP
//! trigger does, for operators who run it as a forward-auth service and for
//! gateway authors who embed wasmtime. One `ProxyPre` linked once, the pooling
//! allocator, a fresh `Store` and instance per request, a shared key-value
//! store (SQLite by default, memory or Redis), the variables the component
//! reads through `wasi:config/store`, and outbound HTTP only to allowed hosts.
//!
//! | module | what |
//! |---|---|
//! | [`engine`] | the wasmtime engine (pooling allocator) |
//! | [`state`] | one `Store`'s data and the linker of every import |
//! | [`server`] | accepting connections, an instance per request |
//! | [`metrics`], [`log`] | Prometheus metrics on their own address; text or JSON lines |
//! | [`config`] | TOML + `WECOM_AUTH_*` settings, secrets redacted |
//! | [`client`] | outbound HTTP on pooled keep-alive connections (TLS: rustls) |
//! | [`outbound`] | the outbound allow-list (Spin's `allowed_outbound_hosts`) |
//! | [`routes`] | rerouting outbound hosts (loopback, in-process) |
//! | [`cache`] | the precompiled-component cache |
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use wecom_auth_gateway::{Gateway, GatewayConfig};
//! let variables = [("corp_id".to_owned(), "ww0123".to_owned())].into();
//! let config = GatewayConfig::in_process("wecom_auth.wasm", variables);
//! let gateway = Gateway::start(config).await?;
//! println!("serving at {}", gateway.url());
//! # Ok(()) }
//! ```

pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod log;
pub mod metrics;
pub mod outbound;
pub mod routes;
pub mod server;
pub mod state;

pub use self::cache::{CacheOutcome, load_component};
pub use self::client::OutboundClient;
pub use self::config::{GatewayConfig, StoreSpec, is_secret_key, redacted};
pub use self::engine::{EngineOptions, MEMORY_LIMIT, engine, wasmtime_error};
pub use self::log::LogFormat;
pub use self::metrics::Metrics;
pub use self::outbound::{AllowedHost, GatewayHooks};
pub use self::routes::{InProcess, Route, Routes};
pub use self::server::{ColdStart, Gateway, GatewayHandle, open_store};
pub use self::state::{HostState, linker};
