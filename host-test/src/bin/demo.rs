//! The demo: the component served by the reference gateway, against the WeCom
//! simulator with a sample company, on one machine. Users are kept in
//! `.wecom-auth/demo.db` (SQLite), so they survive a restart.
//!
//! Run: `cargo run -p host-test --bin demo` and open the printed URL.

use clap::Parser;
use host_test::demo::{ADMIN_TOKEN, Demo, DemoOptions};
use wecom_auth_gateway::StoreSpec;

#[derive(Parser)]
#[command(about = "wecom-auth demo: the component, the reference gateway and a WeCom simulator")]
struct Args {
    /// The app's port (the gateway).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The simulated WeCom's port.
    #[arg(long, default_value_t = 8089)]
    simulator_port: u16,
    /// Keep users in memory only (default: `.wecom-auth/demo.db`).
    #[arg(long)]
    memory: bool,
    /// The gateway's Prometheus metrics port (0: none).
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut options = DemoOptions {
        port: args.port,
        simulator_port: args.simulator_port,
        metrics_listen: (args.metrics_port != 0)
            .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], args.metrics_port))),
        ..DemoOptions::default()
    };
    if args.memory {
        options.store = StoreSpec::Memory;
    }
    let demo = Demo::start(options).await?;
    let url = demo.url();
    let sim = demo.simulator.base_url();
    let metrics = match demo.gateway.metrics_addr() {
        Some(addr) => format!("http://{addr}/metrics"),
        None => "off".to_owned(),
    };
    println!(
        r#"
wecom-auth demo
===============
App (the component in the reference gateway): {url}/
Simulated WeCom (企业微信):                    {sim}

Open {url}/ in a browser and try:
  1. Desktop QR login: you are sent to the simulated QR page (one
     authenticator, so no chooser). Pick 张三 (zhangsan): bound to user
     "alice", you are in; the name shown is WeCom's (refreshed at each login).
  2. Pick 李四 (lisi) instead: not bound yet, so QR login asks you to open the
     app once inside WeCom.
  3. Inside WeCom: set your browser's User-Agent to a WeCom one (DevTools →
     Network conditions), e.g. "... wxwork/4.1.20 MicroMessenger/7.0.1 Language/en".
     Opening {url}/ then logs in silently (auto-login): pick 李四 and it is bound
     to "bob" by mobile number; pick 王五 (declines to share the mobile) and a
     user is signed up.
  4. 外部访客 (outsider) is not a member: refused. 赵六 is outside the app's range.
  5. {url}/auth/wecom/me shows your session; POST {url}/auth/wecom/logout ends it;
     {url}/auth/wecom/verify is the forward-auth check.
  6. Access rules as a proxy asks for them (张三 is in 研发部, department 2):
     allowed: {url}/auth/wecom/verify?allowed_departments=2
     refused: {url}/auth/wecom/verify?allowed_departments=3   (财务部)
     by tag:  {url}/auth/wecom/verify?allowed_tags=7          (运维: 李四 and 平台组)
     groups:  {url}/auth/wecom/me lists them (张三: dept:1, dept:2; 李四: dept:1, tag:7),
              and /verify sends them as X-WeCom-Groups
  7. A leaver: in the simulated WeCom console, {sim}/console, delete the member
     you are signed in as: WeCom sends delete_user to {url}/auth/wecom/events
     and the session ends at once ({url}/auth/wecom/me answers 401).
     Missed events: curl -X POST -H 'Authorization: Bearer {ADMIN_TOKEN}' {url}/auth/wecom/admin/sync
  Admin API: curl -H 'Authorization: Bearer {ADMIN_TOKEN}' {url}/auth/wecom/admin/users
  Probes: {url}/auth/wecom/ping, {url}/auth/wecom/ready; metrics: {metrics}

Ctrl-C stops both."#
    );
    tokio::signal::ctrl_c().await?;
    demo.gateway.shutdown().await;
    Ok(())
}
