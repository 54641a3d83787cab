//! host-test: a wasmtime 48 host for the wecom-auth component. It loads the
//! built `.wasm` exactly as a gateway would and links what the component
//! imports: wasmtime-wasi, wasmtime-wasi-http (outgoing requests recorded and
//! routed), and implementations of the two Spin drafts,
//! `wasi:keyvalue@0.2.0-draft2` (memory, SQLite or Redis) and
//! `wasi:config/store@0.2.0-draft-2024-09-27`.

pub mod bindings;
pub mod config;
pub mod example;
pub mod gateway;
pub mod host;
pub mod keyvalue;
pub mod outgoing;
pub mod simulator;

/// The component built from this tree's source by `build.rs` (release profile).
pub const COMPONENT_PATH: &str = env!("WECOM_AUTH_COMPONENT");
