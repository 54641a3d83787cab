//! The `wecom-auth-gateway` command (`main.rs`, and host-test's `gateway`
//! binary, which the outage tests start and kill): one clap struct is the
//! flags, their environment names and the help.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{GatewayConfig, StoreSpec, parse_cas_mode, redacted};
use crate::server::Gateway;
use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "wecom-auth-gateway",
    about = "Serves the wecom-auth component's HTTP front (wasi:http/incoming-handler) with wasmtime"
)]
struct Args {
    /// TOML file with `[gateway]` settings and `[variables]` for the component.
    #[arg(long, env = "WECOM_AUTH_GATEWAY_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "WECOM_AUTH_GATEWAY_LISTEN", hide_env_values = true)]
    listen: Option<SocketAddr>,
    /// Key-value store: `sqlite:<path>`, `memory` or `redis://host:port`
    /// [default: sqlite:.wecom-auth/sqlite_key_value.db].
    #[arg(long, env = "WECOM_AUTH_GATEWAY_STORE", hide_env_values = true)]
    store: Option<String>,
    /// CAS on an absent key: `strict` or `upsert-when-absent` (as Spin's SQLite store).
    #[arg(long, env = "WECOM_AUTH_GATEWAY_CAS_MODE", hide_env_values = true)]
    cas_mode: Option<String>,
    /// The component (.wasm) [default: target/dist/wecom_auth.wasm, from `cargo run -p wecom-auth-dist`].
    #[arg(long, env = "WECOM_AUTH_GATEWAY_COMPONENT", hide_env_values = true)]
    component: Option<PathBuf>,
    /// Where precompiled components are cached [default: .wecom-auth/precompiled].
    #[arg(
        long,
        env = "WECOM_AUTH_GATEWAY_PRECOMPILED_CACHE_DIR",
        hide_env_values = true
    )]
    precompiled_cache_dir: Option<PathBuf>,
    /// Compile at every start instead of caching.
    #[arg(long)]
    no_precompiled_cache: bool,
    /// Also allow outbound requests to `scheme://host[:port]` (repeatable).
    #[arg(long = "allow-outbound", value_name = "ORIGIN")]
    allow_outbound: Vec<String>,
    /// No access log.
    #[arg(long)]
    quiet: bool,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, e.g. 127.0.0.1:9090.
    #[arg(
        long,
        env = "WECOM_AUTH_GATEWAY_METRICS_LISTEN",
        hide_env_values = true
    )]
    metrics_listen: Option<SocketAddr>,
    /// The gateway's access and error lines: `text` or `json`.
    #[arg(long, env = "WECOM_AUTH_GATEWAY_LOG_FORMAT", hide_env_values = true)]
    log_format: Option<String>,
}

fn configure(args: Args) -> anyhow::Result<GatewayConfig> {
    let mut config = GatewayConfig::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(store) = args.store {
        config.store = store.parse::<StoreSpec>().context("--store")?;
    }
    if let Some(mode) = args.cas_mode {
        config.cas_mode = parse_cas_mode(&mode)?;
    }
    if let Some(component) = args.component {
        config.component = component;
    }
    if let Some(dir) = args.precompiled_cache_dir {
        config.precompiled_cache_dir = Some(dir);
    }
    if args.no_precompiled_cache {
        config.precompiled_cache_dir = None;
    }
    config.allowed_outbound_hosts.extend(args.allow_outbound);
    if args.quiet {
        config.access_log = false;
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics_listen = Some(listen);
    }
    if let Some(format) = args.log_format {
        config.log_format = format.parse().context("--log-format")?;
    }
    Ok(config)
}

/// The `wecom-auth-gateway` command: reads the flags, the environment and
/// the TOML file, prints what it serves (secrets redacted), and serves
/// until the process is stopped.
pub async fn run() -> anyhow::Result<()> {
    let config = configure(Args::parse())?;
    println!("wecom-auth gateway");
    println!("  component: {}", config.component.display());
    println!("  store:     {} (CAS {:?})", config.store, config.cas_mode);
    let allow_list = config.outbound_allow_list()?;
    let allowed: Vec<String> = allow_list.iter().map(ToString::to_string).collect();
    println!("  outbound:  {}", allowed.join(", "));
    if config.variables.is_empty() {
        println!("  variables: none (set [variables] in --config or WECOM_AUTH_<NAME>)");
    } else {
        println!("  variables:");
        for (key, value) in redacted(&config.variables) {
            println!("    {key} = {value}");
        }
    }
    let gateway = Gateway::start(config).await?;
    println!("{}", gateway.cold_start());
    println!("listening on {}", gateway.url());
    if let Some(metrics) = gateway.metrics_addr() {
        println!("metrics on http://{metrics}/metrics");
    }
    // Serve until the process is stopped; committed writes are durable (SQLite WAL).
    std::future::pending::<()>().await;
    Ok(())
}
