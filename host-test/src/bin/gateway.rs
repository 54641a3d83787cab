//! The reference gateway's own command (`wecom-auth-gateway`), built in this
//! package so its tests can start it as a process and kill it
//! (`CARGO_BIN_EXE_gateway`, `tests/outages.rs`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wecom_auth_gateway::cli::run().await
}
