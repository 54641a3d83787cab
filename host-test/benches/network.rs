//! Logins at the speed of the network: the demo (component in the reference
//! gateway, pooled outbound connections) against the WeCom simulator with a
//! modelled network: a round trip of [`RTT`] added to every API answer and
//! [`HANDSHAKE_ROUND_TRIPS`] more before the first answer on a new
//! connection (TCP and TLS to `qyapi.weixin.qq.com`). Measures the callback
//! (code → identity → session), the part WeCom's round trips decide.
//!
//! Run: `cargo bench -p host-test --bench network`. Prints Markdown tables
//! for docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use host_test::client::request;
use host_test::demo::{ADMIN_TOKEN, Demo, DemoOptions, WECOM_USER_AGENT};
use wecom_simulator::{Network, SimulatorHandle};

/// The modelled round trip.
const RTT: Duration = Duration::from_millis(20);
/// TCP's handshake and TLS 1.3's: 2 more round trips on a new connection.
const HANDSHAKE_ROUND_TRIPS: u32 = 2;
const SEQUENTIAL: usize = 40;
const IN_FLIGHT: usize = 8;
const ROUNDS: usize = 5;
const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0";

/// One login of `who`: started, picked on WeCom's page, then the callback
/// timed (code → identity → session; a first in-client login's two
/// callbacks, around the consent).
async fn login(
    app: &str,
    sim: &SimulatorHandle,
    user_agent: &str,
    who: &str,
) -> anyhow::Result<Duration> {
    let start = format!("{app}/auth/wecom/login?authenticator=wecom");
    let begun = request("GET", &start, user_agent, &[]).await?;
    let callback = sim.login(&begun.location.expect("a redirect"), who).await?;
    let cookie = begun.cookies.join("; ");
    let started = Instant::now();
    let answer = request("GET", &callback, user_agent, &[("cookie", &cookie)]).await?;
    let mut took = started.elapsed();
    let mut status = answer.status;
    // A member not bound yet: the silent login's callback sends the browser
    // to WeCom for the consent; both callbacks are timed (not WeCom's page).
    if let Some(consent) = answer
        .location
        .as_deref()
        .filter(|l| l.contains("scope=snsapi_privateinfo"))
    {
        let callback = sim.login(consent, who).await?;
        let cookie = answer.cookies.join("; ");
        let again = Instant::now();
        status = request("GET", &callback, user_agent, &[("cookie", &cookie)])
            .await?
            .status;
        took += again.elapsed();
    }
    anyhow::ensure!(status == 302, "{who}: callback answered {status}");
    Ok(took)
}

/// Unbinds 李四, so the next in-client login of 李四 is a first login (matched
/// by mobile number).
async fn unbind_lisi(app: &str) -> anyhow::Result<()> {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let url = format!("{app}/auth/wecom/admin/bindings/wecom/lisi");
    request("DELETE", &url, DESKTOP, &[("authorization", &auth)]).await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    InClientFirst,
    InClientReturning,
    Qr,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::InClientFirst => "in-client, first login (matched by mobile)",
            Kind::InClientReturning => "in-client, returning member",
            Kind::Qr => "QR login",
        }
    }

    async fn once(self, app: &str, sim: &SimulatorHandle, n: usize) -> anyhow::Result<Duration> {
        match self {
            Kind::InClientFirst => {
                unbind_lisi(app).await?;
                login(app, sim, WECOM_USER_AGENT, "lisi").await
            }
            Kind::InClientReturning => login(app, sim, WECOM_USER_AGENT, "zhangsan").await,
            // Alternating members, so 8 in flight are 8 different logins.
            Kind::Qr => login(app, sim, DESKTOP, ["zhangsan", "wangwu"][n % 2]).await,
        }
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn round_trips(d: Duration) -> f64 {
    d.as_secs_f64() / RTT.as_secs_f64()
}

/// Deletes every cached access fact (as if the bound had passed).
async fn forget_facts(demo: &Demo) -> anyhow::Result<()> {
    let store = demo.gateway.keyvalue();
    for key in store.keys("default").await? {
        if key.starts_with("access-facts/") {
            store.delete("default", &key).await?;
        }
    }
    Ok(())
}

/// One table row per kind of login on a demo started with `variables`;
/// with `forget`, the access facts are dropped before each login and only
/// sequential logins are timed.
async fn table(variables: &[(&str, &str)], kinds: &[Kind], forget: bool) -> anyhow::Result<()> {
    let mut extra = vec![
        // One address makes every request here: no limits in the way.
        ("rate_limit_per_client".to_owned(), "0".to_owned()),
        ("rate_limit_per_authenticator".to_owned(), "0".to_owned()),
    ];
    extra.extend(
        variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let options = DemoOptions {
        extra_variables: extra,
        ..DemoOptions::for_tests()
    };
    let demo = Demo::start(options).await?;
    let app = demo.url();
    let sim = &demo.simulator;
    sim.set_network(Network::new(RTT, HANDSHAKE_ROUND_TRIPS));
    // 王五 signs up on a first in-client login; from then on a QR login works.
    login(&app, sim, WECOM_USER_AGENT, "wangwu").await?;
    for &kind in kinds {
        // Warm: the token cached, connections open.
        for n in 0..3 {
            kind.once(&app, sim, n).await?;
        }
        tokio::time::sleep(RTT * 4).await;
        sim.reset_calls();
        let mut sequential = Vec::with_capacity(SEQUENTIAL);
        for n in 0..SEQUENTIAL {
            if forget {
                forget_facts(&demo).await?;
            }
            sequential.push(kind.once(&app, sim, n).await?);
        }
        // Deferred profile refreshes finish before the counters are read.
        tokio::time::sleep(RTT * 4).await;
        let calls = sim.api_calls() as f64 / SEQUENTIAL as f64;
        let connections = sim.connections() as f64 / SEQUENTIAL as f64;
        sequential.sort();
        let mut parallel = Vec::new();
        if !forget && !matches!(kind, Kind::InClientFirst) {
            // (One member cannot make 8 first logins at once.)
            for _ in 0..ROUNDS {
                let mut set = tokio::task::JoinSet::new();
                for n in 0..IN_FLIGHT {
                    let app = app.clone();
                    let sim = sim.clone();
                    set.spawn(async move { kind.once(&app, &sim, n).await });
                }
                while let Some(took) = set.join_next().await {
                    parallel.push(took??);
                }
            }
        }
        parallel.sort();
        let median = percentile(&sequential, 50);
        let p99 = percentile(&sequential, 99);
        let in_flight = if parallel.is_empty() {
            "n/a".to_owned()
        } else {
            let m = percentile(&parallel, 50);
            format!(
                "{:.1} ms ({:.2} RTT)",
                m.as_secs_f64() * 1e3,
                round_trips(m)
            )
        };
        println!(
            "| {}{} | {:.1} ms ({:.2} RTT) | {:.1} ms ({:.2} RTT) | {in_flight} | {calls:.2} | {connections:.2} |",
            kind.label(),
            if forget { ", facts aged out" } else { "" },
            median.as_secs_f64() * 1e3,
            round_trips(median),
            p99.as_secs_f64() * 1e3,
            round_trips(p99),
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    println!(
        "modelled network: {} ms round trip, {HANDSHAKE_ROUND_TRIPS} more on a new connection",
        RTT.as_millis()
    );
    let all = [Kind::InClientFirst, Kind::InClientReturning, Kind::Qr];
    let header = "| callback (code → identity → session) | sequential median | p99 | 8 in flight, median | WeCom calls per login | new connections per login |\n|---|---|---|---|---|---|";
    println!("\nno access rules, no groups\n\n{header}");
    table(&[("groups", "")], &all, false).await?;
    // 示例科技 (1) holds every member: the rule lets all in, at its cost.
    let ruled = [("allowed_departments", "1"), ("groups", "departments,tags")];
    println!(
        "\na department rule (`allowed_departments=1`) and groups (departments, tags)\n\n{header}"
    );
    table(&ruled, &all, false).await?;
    table(&ruled, &[Kind::InClientReturning, Kind::Qr], true).await?;

    // Cold token: a fresh gateway and simulator, the cached token forgotten:
    // `gettoken` first. (The demo's seeding already opened the pooled
    // connection; a new one would add its handshake once.)
    println!(
        "\n| cold token (fresh gateway, no cached token) | callback | WeCom calls | new connections |"
    );
    println!("|---|---|---|---|");
    let cold = Demo::start(DemoOptions {
        extra_variables: vec![
            ("rate_limit_per_client".into(), "0".into()),
            ("groups".into(), "".into()),
        ],
        ..DemoOptions::for_tests()
    })
    .await?;
    cold.simulator
        .set_network(Network::new(RTT, HANDSHAKE_ROUND_TRIPS));
    // The demo's seeding cached a token: forget it for a cold start.
    let store = cold.gateway.keyvalue();
    for key in store.keys("default").await? {
        if key.starts_with("wecom-token/") {
            store.delete("default", &key).await?;
        }
    }
    cold.simulator.reset_calls();
    let took = login(&cold.url(), &cold.simulator, DESKTOP, "zhangsan").await?;
    println!(
        "| QR login | {:.1} ms ({:.2} RTT) | {} | {} |",
        took.as_secs_f64() * 1e3,
        round_trips(took),
        cold.simulator.api_calls(),
        cold.simulator.connections()
    );
    Ok(())
}
