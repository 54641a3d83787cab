//! Throughput and latency of the HTTP front through the reference gateway, as a
//! deployment sees it: the demo (component in the gateway, pooling allocator,
//! a fresh instance per request, in-memory store, WeCom simulator) on loopback,
//! loaded by `wrk` (Debian's package) from a second process.
//!
//! Run: `cargo bench -p host-test --bench gateway_load` (needs `wrk` on PATH);
//! `-- rule 401` runs only the rows whose label contains one of the words;
//! `GATEWAY_LOAD_CONNECTIONS=1` one request at a time.
//! Prints a Markdown table to paste into docs/PERFORMANCE.md.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use host_drafts::keyvalue::Op;
use host_drafts::keyvalue::testing::{TempDir, free_port};
use host_test::demo::{Demo, DemoOptions, WECOM_USER_AGENT, variables};
use host_test::proxy::{echo_app, spawn_nginx, write_nginx_config};
use host_test::{COMPONENT_PATH, client};
use wecom_auth_gateway::{Gateway, GatewayConfig, StoreSpec};
use wecom_simulator::SimulatorHandle;

const DURATION: &str = "10s";
/// wrk's connections; `GATEWAY_LOAD_CONNECTIONS=1` measures one request at
/// a time (latency without contention).
fn connections() -> String {
    std::env::var("GATEWAY_LOAD_CONNECTIONS").unwrap_or_else(|_| "32".into())
}

/// One GET: status, `Location`, `Set-Cookie`s.
async fn get(
    url: &str,
    user_agent: &str,
    cookie: Option<&str>,
) -> anyhow::Result<(u16, Option<String>, Vec<String>)> {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    let answer = client::request("GET", url, user_agent, &headers).await?;
    Ok((answer.status, answer.location, answer.cookies))
}

/// An in-client login of 张三 through the front: returns `name=value` of the session cookie.
async fn session_cookie(app: &str, sim: &SimulatorHandle) -> anyhow::Result<String> {
    let (_, wecom, cookies) = get(
        &format!("{app}/auth/wecom/login?authenticator=wecom"),
        WECOM_USER_AGENT,
        None,
    )
    .await?;
    let callback = sim
        .login(&wecom.expect("a redirect to WeCom"), "zhangsan")
        .await?;
    let (status, _, cookies) = get(&callback, WECOM_USER_AGENT, Some(&cookies.join("; "))).await?;
    anyhow::ensure!(status == 302, "callback answered {status}");
    cookies
        .into_iter()
        .find(|c| c.starts_with("wecom_auth_session="))
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))
}

/// Runs wrk and returns (requests/s, p50, p99, non-2xx/3xx count) from its report.
fn wrk(url: &str, headers: &[String]) -> anyhow::Result<(String, String, String, String)> {
    let mut command = Command::new("wrk");
    let connections = connections();
    // wrk wants at least as many connections as threads.
    let threads = if connections == "1" { "-t1" } else { "-t2" };
    command.args([threads, "-c", &connections, "-d", DURATION, "--latency"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
            .unwrap_or_else(|| "?".into())
    };
    Ok((
        field("Requests/sec:"),
        field("50%"),
        field("99%"),
        field("Non-2xx or 3xx responses:").replace('?', "0"),
    ))
}

/// Sequential QR logins of 张三 (start → WeCom's page → callback) through
/// the gateway at `app`, on the demo's origin `origin`: (median, p99) over `n`.
async fn sequential_logins(
    app: &str,
    origin: &str,
    sim: &SimulatorHandle,
    n: usize,
) -> anyhow::Result<(Duration, Duration)> {
    const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0";
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let (_, wecom, cookies) = get(
            &format!("{app}/auth/wecom/login?authenticator=wecom"),
            DESKTOP,
            None,
        )
        .await?;
        let callback = sim.login(&wecom.expect("a redirect"), "zhangsan").await?;
        // WeCom sends the browser to the origin: here, this gateway.
        let callback = callback.replacen(origin, app, 1);
        let (status, _, _) = get(&callback, DESKTOP, Some(&cookies.join("; "))).await?;
        anyhow::ensure!(status == 302, "callback answered {status}");
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[n / 2], times[n * 99 / 100]))
}

/// A gateway beside the demo's, on its store, with `extra` variables.
async fn beside(
    demo: &Demo,
    extra: &[(&str, &str)],
) -> anyhow::Result<wecom_auth_gateway::GatewayHandle> {
    let mut vars = variables(&demo.url(), &demo.simulator.base_url());
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Gateway::start(
        GatewayConfig::in_process(COMPONENT_PATH, vars)
            .with_store(StoreSpec::Backend(demo.gateway.keyvalue().clone()))
            .allow_outbound(demo.simulator.base_url()),
    )
    .await
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (apt-get install wrk): nothing measured");
        return Ok(());
    }
    let demo = Demo::start(DemoOptions::for_tests()).await?;
    let app = demo.url();
    let session = session_cookie(&app, &demo.simulator).await?;
    // wrk comes from one address: the per-client limit would answer 429.
    // Limits off, and limits counting every request but never reached.
    // The demo tells groups; these gateways do not, but the one that does.
    let off = beside(
        &demo,
        &[
            ("rate_limit_per_client", "0"),
            ("rate_limit_per_authenticator", "0"),
            ("groups", ""),
        ],
    )
    .await?;
    // 示例科技 (1) and below: zhangsan's departments read once, then cached.
    let ruled = beside(
        &demo,
        &[
            ("rate_limit_per_client", "0"),
            ("allowed_departments", "1"),
            ("groups", ""),
        ],
    )
    .await?;
    let grouped = beside(
        &demo,
        &[
            ("rate_limit_per_client", "0"),
            ("groups", "departments,tags"),
        ],
    )
    .await?;
    // A company of some size for it: 2 000 more departments under 1 and 50
    // more tags, each holding 1 000 members and 40 departments (the member
    // in none of them), so each cached tag record is some 20 KB.
    demo.simulator.update_model(|model| {
        let corp = &mut model.corps[0];
        for n in 0..1_000 {
            corp.members.push(wecom_simulator::Member {
                userid: format!("m{n:04}"),
                name: format!("成员{n}"),
                ..wecom_simulator::Member::default()
            });
        }
        for id in 100..2_100 {
            corp.departments.push(wecom_simulator::Department {
                id,
                name: format!("部门{id}"),
                parentid: 1,
                order: id,
            });
        }
        for tagid in 100..150 {
            corp.tags.push(wecom_simulator::Tag {
                tagid,
                tagname: format!("标签{tagid}"),
                userlist: (0..1_000).map(|n| format!("m{n:04}")).collect(),
                partylist: (0..40).map(|d| 100 + (tagid - 100) * 40 + d).collect(),
            });
        }
    });
    let counting = beside(
        &demo,
        &[
            ("rate_limit_per_client", "4000000000"),
            ("rate_limit_per_authenticator", "4000000000"),
            ("groups", ""),
        ],
    )
    .await?;
    println!(
        "| route ({DURATION}, {} connections, wrk) | requests/s | p50 | p99 | non-2xx/3xx | store operations per request |",
        connections()
    );
    println!("|---|---|---|---|---|---|");
    let desktop = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0".to_owned();
    let cases = [
        (
            "GET /auth/wecom/verify with a session (200 + identity headers)",
            format!("{}/auth/wecom/verify", off.url()),
            vec![format!("Cookie: {session}")],
        ),
        (
            "GET /auth/wecom/verify with a session, Prometheus metrics on, groups",
            format!("{app}/auth/wecom/verify"),
            vec![format!("Cookie: {session}")],
        ),
        (
            "GET /auth/wecom/verify with a session, groups (departments and tags of a company of 2 000 departments and 51 tags, cached)",
            format!("{}/auth/wecom/verify", grouped.url()),
            vec![format!("Cookie: {session}")],
        ),
        (
            "GET /auth/wecom/verify with a session and a department rule (facts cached)",
            format!("{}/auth/wecom/verify", ruled.url()),
            vec![format!("Cookie: {session}")],
        ),
        (
            "GET /auth/wecom/verify with a session, the proxy's rule `?allowed_departments=1`",
            format!("{}/auth/wecom/verify?allowed_departments=1", off.url()),
            vec![format!("Cookie: {session}")],
        ),
        (
            "GET /auth/wecom/ready (readiness: the store and the warnings)",
            format!("{}/auth/wecom/ready", off.url()),
            vec![],
        ),
        (
            "GET /auth/wecom/verify without a session (401)",
            format!("{}/auth/wecom/verify", off.url()),
            vec![],
        ),
        (
            "GET /auth/wecom/login, desktop browser (302 to QR login + pre-auth cookie), limits off",
            format!("{}/auth/wecom/login?authenticator=wecom", off.url()),
            vec![desktop.clone()],
        ),
        (
            "GET /auth/wecom/login, limits counting every request (never reached)",
            format!("{}/auth/wecom/login?authenticator=wecom", counting.url()),
            vec![desktop.clone()],
        ),
    ];
    let store = demo.gateway.keyvalue().faults();
    for (label, url, headers) in cases {
        if !host_test::bench_row_selected(label) {
            continue;
        }
        store.reset_counts();
        // wrk blocks: keep it off the runtime that serves the gateway.
        let (rps, p50, p99, errors) =
            tokio::task::spawn_blocking(move || wrk(&url, &headers)).await??;
        let served: f64 = rps.parse::<f64>().unwrap_or(0.0) * 10.0;
        let per = |op| store.count(op) as f64 / served.max(1.0);
        println!(
            "| {label} | {rps} | {p50} | {p99} | {errors} | {:.2} gets, {:.2} get-many, {:.2} writes |",
            per(Op::Get),
            per(Op::GetMany),
            store.writes() as f64 / served.max(1.0)
        );
    }
    println!("\n| sequential QR login through the gateway (300 logins) | median | p99 |");
    println!("|---|---|---|");
    for (label, gateway) in [("limits off", &off), ("limits counting", &counting)] {
        if !host_test::bench_row_selected(&format!("sequential QR login, {label}")) {
            continue;
        }
        let (median, p99) = sequential_logins(&gateway.url(), &app, &demo.simulator, 300).await?;
        println!(
            "| {label} | {:.2} ms | {:.2} ms |",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nrequests served by the gateways: {}",
        demo.gateway.requests_served() + off.requests_served() + counting.requests_served()
    );
    if host_test::bench_row_selected("through Nginx") {
        through_nginx(&demo, &session).await?;
    }
    Ok(())
}

/// A page behind Nginx (`deploy/nginx.conf`, `auth_request` to the gateway,
/// an echo app upstream) with a session: without renewal, and with a
/// renewal on every request (`session_refresh_seconds = 1`, an aged cookie).
async fn through_nginx(demo: &Demo, session: &str) -> anyhow::Result<()> {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        println!("\nnginx is not installed (apt-get install nginx): no Nginx rows");
        return Ok(());
    };
    let app = echo_app().await;
    // A second gateway on the demo's store, renewing sessions a second old.
    let mut renewing_vars = variables(&demo.url(), &demo.simulator.base_url());
    renewing_vars.insert("session_refresh_seconds".into(), "1".into());
    let renewing = Gateway::start(
        GatewayConfig::in_process(COMPONENT_PATH, renewing_vars)
            .with_store(StoreSpec::Backend(demo.gateway.keyvalue().clone()))
            .allow_outbound(demo.simulator.base_url()),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    println!(
        "\n| through Nginx `auth_request` ({DURATION}, {} connections) | requests/s | p50 | p99 | non-2xx/3xx |",
        connections()
    );
    println!("|---|---|---|---|---|");
    for (label, gateway) in [
        (
            "GET /page with a session, no renewal due",
            demo.gateway.addr(),
        ),
        (
            "GET /page with a session renewed on every request",
            renewing.addr(),
        ),
    ] {
        let dir = TempDir::new("bench-nginx")?;
        let port = free_port()?;
        write_nginx_config(dir.path(), port, gateway, app);
        let mut child = spawn_nginx(std::path::Path::new(nginx), dir.path())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let url = format!("http://{addr}/docs/page?a=1");
        let headers = vec![format!("Cookie: {session}")];
        let (rps, p50, p99, errors) =
            tokio::task::spawn_blocking(move || wrk(&url, &headers)).await??;
        println!("| {label} | {rps} | {p50} | {p99} | {errors} |");
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}
