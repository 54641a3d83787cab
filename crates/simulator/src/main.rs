//! The WeCom simulator as a program, for demos: serves the sample company
//! ([`Model::sample`]) on `127.0.0.1` until Ctrl-C.
//!
//! Run: `cargo run -p host-test --bin wecom-simulator -- --port 8089 --trusted-domain 127.0.0.1:8080`

use clap::Parser;
use wecom_simulator::{
    Model, Network, SAMPLE_AGENT_ID, SAMPLE_CORP_ID, SAMPLE_SECRET, Simulator, SimulatorHandle,
};

/// A WeCom (企业微信) simulator: server API and login pages on one loopback port.
#[derive(Debug, Parser)]
#[command(name = "wecom-simulator", version)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8089, env = "WECOM_SIMULATOR_PORT")]
    port: u16,
    /// The app's trusted domain: the exact host, with :port if any, that redirect_uri must have.
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "WECOM_SIMULATOR_TRUSTED_DOMAIN"
    )]
    trusted_domain: String,
    /// A modelled round trip to WeCom, added to every API answer, in ms.
    #[arg(long, default_value_t = 0, env = "WECOM_SIMULATOR_RTT_MS")]
    rtt_ms: u64,
    /// Extra round trips before a new connection's first API answer (TCP 1, + TLS 2).
    #[arg(
        long,
        default_value_t = 0,
        env = "WECOM_SIMULATOR_NEW_CONNECTION_ROUND_TRIPS"
    )]
    new_connection_round_trips: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = Model::sample().with_trusted_domain(&args.trusted_domain);
    let sim = Simulator::start_on(model, args.port).await?;
    sim.set_network(Network::new(
        std::time::Duration::from_millis(args.rtt_ms),
        args.new_connection_round_trips,
    ));
    print_banner(&sim, &args.trusted_domain);
    // Ctrl-C (SIGINT) ends the process; the server runs until then.
    std::future::pending::<()>().await;
    Ok(())
}

fn print_banner(sim: &SimulatorHandle, trusted_domain: &str) {
    let base = sim.base_url();
    println!("WeCom simulator at {base}");
    println!("  use it as api-base, oauth-base and sso-base");
    println!();
    println!("corp-id   {SAMPLE_CORP_ID}");
    println!("agent-id  {SAMPLE_AGENT_ID}");
    println!("secret    {SAMPLE_SECRET}");
    println!("trusted domain (redirect_uri host[:port]): {trusted_domain}");
    println!();
    for corp in &sim.model().corps {
        println!("members of {} ({}):", corp.name, corp.corp_id);
        for m in &corp.members {
            let mut notes = Vec::new();
            if let Some(mobile) = &m.mobile {
                notes.push(format!("mobile {mobile}"));
            }
            if !m.visible {
                notes.push("outside the visible range".into());
            }
            if !m.consents_to_privateinfo {
                notes.push("declines privateinfo".into());
            }
            println!("  {:<10} {}  {}", m.userid, m.name, notes.join(", "));
        }
        for n in &corp.non_members {
            println!("  {:<10} {}  not a member", n.id, n.name);
        }
    }
    let redirect = format!("http://{trusted_domain}/auth/wecom/callback");
    println!();
    println!("try (in a browser):");
    println!(
        "  in-client: {}",
        sim.oauth_url(
            SAMPLE_CORP_ID,
            Some(SAMPLE_AGENT_ID),
            "snsapi_privateinfo",
            &redirect,
            "demo"
        )
    );
    println!(
        "  web login: {}",
        sim.web_login_url(SAMPLE_CORP_ID, SAMPLE_AGENT_ID, &redirect, "demo")
    );
    println!(
        "  token:     {base}/cgi-bin/gettoken?corpid={SAMPLE_CORP_ID}&corpsecret={SAMPLE_SECRET}"
    );
    println!();
    println!("Ctrl-C to stop.");
}
