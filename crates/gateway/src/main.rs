//! The reference gateway: serves the wecom-auth component's HTTP front on
//! loopback, as Spin's HTTP trigger would, with a durable SQLite store.
//!
//! ```sh
//! cargo run -p wecom-auth-dist      # the component: target/dist/wecom_auth.wasm
//! cargo run --release -p wecom-auth-gateway -- --config gateway.toml
//! WECOM_AUTH_SECRET=... cargo run -p wecom-auth-gateway -- --store memory
//! ```
//!
//! Settings: the TOML file (`[gateway]`, `[variables]`), then environment
//! variables `WECOM_AUTH_<VARIABLE>` (e.g. `WECOM_AUTH_CORP_ID`), then flags
//! (also as `WECOM_AUTH_GATEWAY_<FLAG>`). See `wecom_auth_gateway::config`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wecom_auth_gateway::cli::run().await
}
