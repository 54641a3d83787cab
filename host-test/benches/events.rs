//! WeCom's callbacks through the reference gateway, as WeCom sends them: the
//! demo (component in the gateway, in-memory store) and its simulated
//! console, which POSTs each contact change encrypted and signed over a
//! fresh connection (`SimulatorHandle::contact_change`).
//!
//! Run: `cargo bench -p host-test --bench events`. Prints what
//! docs/PERFORMANCE.md reports: contact changes handled per second (32 at a
//! time, and one at a time), and the time from WeCom sending `delete_user`
//! to the first refused `/verify` of the member's session.

use std::time::{Duration, Instant};

use host_test::client;
use host_test::demo::{Demo, DemoOptions, WECOM_USER_AGENT};
use wecom_simulator::SAMPLE_CORP_ID;

const CONCURRENCY: usize = 32;
const EVENTS: usize = 4_000;
const SEQUENTIAL: usize = 500;
const DELETES: usize = 20;

fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    times[(times.len() * p / 100).min(times.len() - 1)]
}

/// One member's change: departments (the cached facts dropped).
async fn department_change(
    sim: &wecom_simulator::SimulatorHandle,
    userid: &str,
) -> anyhow::Result<Duration> {
    let deliveries = sim
        .contact_change(
            SAMPLE_CORP_ID,
            "update_user",
            &[("UserID", userid), ("Department", "1,2")],
        )
        .await;
    let delivery = deliveries
        .first()
        .ok_or_else(|| anyhow::anyhow!("no callback"))?;
    anyhow::ensure!(
        delivery.status == Some(200),
        "answered {:?}",
        delivery.status
    );
    Ok(delivery.elapsed)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let demo = Demo::start(DemoOptions::for_tests()).await?;
    let sim = demo.simulator.clone();

    // One at a time: the latency of a delivery.
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for n in 0..SEQUENTIAL {
        times.push(department_change(&sim, &format!("s{n:04}")).await?);
    }
    let median = percentile(&mut times, 50);
    let p99 = percentile(&mut times, 99);

    // 32 at a time: the throughput.
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for task in 0..CONCURRENCY {
        let sim = sim.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EVENTS / CONCURRENCY {
                department_change(&sim, &format!("c{task:02}-{n:04}")).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = EVENTS as f64 / started.elapsed().as_secs_f64();

    // A bound member deleted: WeCom's send to the first refused /verify.
    let app = demo.url();
    let at = demo.gateway.addr();
    let mut refusals = Vec::with_capacity(DELETES);
    for n in 0..DELETES {
        let userid = format!("leaver{n}");
        sim.update_model(|model| {
            model.corps[0].members.push(wecom_simulator::Member {
                userid: userid.clone(),
                name: format!("离职{n}"),
                mobile: Some(format!("1370000{n:04}")),
                ..wecom_simulator::Member::default()
            })
        });
        let started = client::request(
            "GET",
            &format!("{app}/auth/wecom/login?authenticator=wecom"),
            WECOM_USER_AGENT,
            &[],
        )
        .await?;
        let wecom = started.location.expect("a redirect to WeCom");
        let mut cookies = started.cookies.join("; ");
        let mut back = sim.login(&wecom, &userid).await?;
        let mut answer;
        loop {
            answer =
                client::request("GET", &back, WECOM_USER_AGENT, &[("cookie", &cookies)]).await?;
            match answer.location.as_deref() {
                // The consent round of a first login.
                Some(location) if location.contains("snsapi_privateinfo") => {
                    cookies = answer.cookies.join("; ");
                    back = sim.login(location, &userid).await?;
                }
                _ => break,
            }
        }
        let session = answer
            .cookies
            .iter()
            .find(|c| c.starts_with("wecom_auth_session="))
            .ok_or_else(|| anyhow::anyhow!("{userid}: no session ({})", answer.status))?
            .clone();
        let verify = format!("http://{at}/auth/wecom/verify");
        let sent = Instant::now();
        let deliveries = sim.remove_member(&userid).await;
        anyhow::ensure!(deliveries.first().and_then(|d| d.status) == Some(200));
        let status = client::request("GET", &verify, WECOM_USER_AGENT, &[("cookie", &session)])
            .await?
            .status;
        anyhow::ensure!(status == 401, "{userid}: /verify answered {status}");
        refusals.push(sent.elapsed());
    }
    let refusal = percentile(&mut refusals, 50);
    let refusal_max = percentile(&mut refusals, 100);

    println!(
        "| contact changes (`update_user`, departments), each over a fresh connection | value |"
    );
    println!("|---|---|");
    println!("| {CONCURRENCY} at a time, {EVENTS} events | {rate:.0} events/s |");
    println!("| one at a time, {SEQUENTIAL} events: median, p99 | {median:.2?}, {p99:.2?} |");
    println!(
        "| `delete_user` sent → the member's `/verify` refused, {DELETES} members: median, max | {refusal:.2?}, {refusal_max:.2?} |"
    );
    Ok(())
}
