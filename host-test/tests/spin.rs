//! The built component in a real Spin (`spin up` of the project's own
//! `spin.toml`, variables from `SPIN_VARIABLE_*`), against the WeCom
//! simulator: the login flows, forward auth, logout, the admin API and 50
//! concurrent first logins of one member, on Spin's default SQLite store and
//! on Redis (`deploy/runtime-config.redis.toml`) with two Spin instances
//! sharing it.
//!
//! Needs `spin` on `PATH` (Spin 3.x; `.ci/run` installs 3.6.3) and, for the
//! Redis half, `redis-server`. Skipped with a message when missing; a failure
//! when `WECOM_AUTH_REQUIRE_SPIN=1` (CI).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use host_drafts::keyvalue::testing::{RedisServer, TempDir, free_port};
use serde_json::Value;
use wecom_simulator::{CallbackConfig, Endpoint, Fault, Member, Model, Simulator, SimulatorHandle};

mod common;

use common::http::{Browser, Reply, send};
use common::spin::{SpinUp, manifest, redis_runtime_config, spin, wecom_variables};

const ADMIN_TOKEN: &str = "admin-token-DO-NOT-LEAK-0123456789";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const WECOM_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; PGU110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1 NetType/4G Language/zh";
const UNTESTED: &str = "the component is NOT tested in a real Spin";

/// `spin up` of the project's manifest on `127.0.0.1:port`, serving
/// `origin`, WeCom at the simulator.
async fn start(
    spin: &Path,
    app_dir: &Path,
    port: u16,
    origin: &str,
    sim: &SimulatorHandle,
    runtime_config: Option<&Path>,
) -> SpinUp {
    let mut variables = wecom_variables(origin, sim);
    variables.extend([
        ("admin_token", ADMIN_TOKEN.to_owned()),
        ("auto_signup", "true".to_owned()),
        // Every login of the walk comes from 127.0.0.1; the walk ends
        // by running into this limit.
        ("rate_limit_per_client", RATE_PER_CLIENT.to_string()),
        // Groups read their cached facts (one get per record).
        ("groups", "departments,tags".to_owned()),
        // WeCom's contact changes come to the first instance.
        ("callback_token", CALLBACK_TOKEN.to_owned()),
        ("callback_aes_key", CALLBACK_AES_KEY.to_owned()),
    ]);
    let manifest = manifest(app_dir);
    SpinUp::start(
        spin,
        app_dir,
        &manifest,
        port,
        &variables,
        runtime_config,
        "/auth/wecom/",
    )
    .await
}

async fn admin(
    at: SocketAddr,
    method: &str,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", content_type),
    ];
    send(at, method, target, &headers, body).await.unwrap()
}

const CALLBACK_TOKEN: &str = "SpinToken";
const CALLBACK_AES_KEY: &str = "c3BpbiB0ZXN0cyBFbmNvZGluZ0FFU0tleSwgMzIgYnk";

/// The sample company plus `zhouqi`, a consenting member no user has yet;
/// its app sends contact changes to the instance at `trusted`.
fn model(trusted: &str) -> Model {
    let mut model = Model::sample().with_trusted_domain(trusted);
    model.corps[0].agents[0].callback = Some(CallbackConfig {
        url: format!("http://{trusted}/auth/wecom/events"),
        token: CALLBACK_TOKEN.into(),
        encoding_aes_key: CALLBACK_AES_KEY.into(),
    });
    model.corps[0].members.push(Member {
        userid: "zhouqi".into(),
        name: "周七".into(),
        mobile: Some("13500000005".into()),
        ..Member::default()
    });
    model
}

/// The walk of the issue, `a` and `b` sharing one store: returns the median
/// login time (start to session, through the simulator).
async fn walk(a: &SpinUp, b: &SpinUp, sim: &SimulatorHandle) -> Duration {
    let (a, b) = (a.addr, b.addr);
    // Admin: provision alice (张三's mobile), import lisi's row.
    let alice = admin(
        a,
        "POST",
        "/auth/wecom/admin/users",
        "application/json",
        br#"{"id":"alice","name":"Alice","mobile":"+86 138 0000 0000"}"#,
    )
    .await;
    assert_eq!(alice.status, 200, "{}", alice.body);
    let import = admin(
        b,
        "POST",
        "/auth/wecom/admin/users/import",
        "text/csv",
        "name,mobile\nLi Si,１３９ ００００ ０００１\n".as_bytes(),
    )
    .await;
    assert_eq!(import.status, 200, "{}", import.body);
    assert_eq!(import.json()["imported"], 1, "{}", import.body);

    // A first in-client login matched by mobile, started on a, finished on b.
    let mut phone = Browser::new(WECOM_ANDROID);
    let done = phone.log_in(a, b, sim, "zhangsan").await;
    assert_eq!(done.status, 302, "{}", done.body);
    let me = phone.request(a, "GET", "/auth/wecom/me").await;
    assert_eq!(me.json()["user"]["id"], "alice", "{}", me.body);

    // The same member again inside WeCom: Spin sends the answer as soon as
    // the component finished it, while the profile calls (slowed to a
    // second here) are still at WeCom; the profile they fetch lands after.
    sim.update_model(|model| model.corps[0].member_mut("zhangsan").unwrap().name = "张三丰".into());
    let slow = [
        sim.fault(Endpoint::GetUserDetail, Fault::latency_ms(1000)),
        sim.fault(Endpoint::UserGet, Fault::latency_ms(1000)),
    ];
    let mut again = Browser::new(WECOM_ANDROID);
    sim.reset_calls();
    let done = again.log_in(b, a, sim, "zhangsan").await;
    assert_eq!(done.status, 302, "{}", done.body);
    // Profile calls that arrived and were answered (each takes a second).
    let answered = (sim.calls(Endpoint::GetUserDetail) + sim.calls(Endpoint::UserGet))
        .saturating_sub(sim.api_calls_in_flight());
    assert_eq!(
        answered, 0,
        "Spin answered before the profile refresh was done"
    );
    let mut name = String::new();
    for _ in 0..100 {
        let alice = admin(a, "GET", "/auth/wecom/admin/users/alice", "text/plain", b"").await;
        name = alice.json()["name"].as_str().unwrap_or_default().to_owned();
        if name == "张三丰" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        name, "张三丰",
        "the refresh after the answer reached the store"
    );
    for rule in slow {
        rule.clear();
    }

    // The bound member by QR code on a desktop browser.
    let mut desktop = Browser::new(CHROME);
    let qr = desktop.log_in(b, a, sim, "zhangsan").await;
    assert_eq!(qr.status, 302, "{}", qr.body);

    // Auto-signup: wangwu declines to share the mobile; a user is created.
    let mut newcomer = Browser::new(WECOM_ANDROID);
    assert_eq!(newcomer.log_in(a, a, sim, "wangwu").await.status, 302);

    // Forward auth, then logout on one instance ends it on the other.
    let verified = desktop.request(a, "GET", "/auth/wecom/verify").await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.header("x-user-id"), Some("alice"));
    assert_eq!(verified.header("x-wecom-groups"), Some("dept:1,dept:2"));
    // The second `/verify` reads the member's view the first cached: no
    // call reaches WeCom.
    sim.reset_calls();
    let again = desktop.request(b, "GET", "/auth/wecom/verify").await;
    assert_eq!(again.header("x-wecom-groups"), Some("dept:1,dept:2"));
    let calls = || Endpoint::ALL.map(|e| (e, sim.calls(e)));
    assert_eq!(
        sim.api_calls(),
        0,
        "a /verify with a cached view called WeCom: {:?}",
        calls()
    );
    // Another member's first `/verify` reads the cached facts (the tree,
    // the tag list): the tree the first `/verify` cached is not asked of
    // WeCom again. Read with Spin's `get-many`, which its Redis store fails,
    // it was: every such request cost WeCom calls.
    let theirs = newcomer.request(a, "GET", "/auth/wecom/verify").await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(
        sim.calls(Endpoint::DepartmentSimpleList),
        0,
        "the cached tree was asked of WeCom again: {:?}",
        calls()
    );
    let out = desktop.request(b, "POST", "/auth/wecom/logout").await;
    assert_eq!(out.status, 303, "{}", out.body);
    let mut copy = Browser::new(CHROME);
    copy.cookies = phone.cookies.clone();
    assert_eq!(
        copy.request(a, "GET", "/auth/wecom/verify").await.status,
        401
    );
    // Logging in again at once gives a live session.
    assert_eq!(desktop.log_in(a, b, sim, "zhangsan").await.status, 302);
    assert_eq!(
        desktop.request(a, "GET", "/auth/wecom/verify").await.status,
        200
    );

    // 50 concurrent first logins of one member, over both instances: one user.
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..50 {
        let (start, finish) = if n % 2 == 0 { (a, b) } else { (b, a) };
        let sim = sim.clone();
        logins.spawn(async move {
            let started = Instant::now();
            let mut phone = Browser::new(WECOM_ANDROID);
            // Silent first; whoever finds no binding yet asks the consent.
            let done = phone.log_in(start, finish, &sim, "zhouqi").await;
            assert_eq!(done.status, 302, "login {n}: {}", done.body);
            assert!(
                phone.cookies.contains_key("wecom_auth_session"),
                "login {n}: {}",
                done.location()
            );
            started.elapsed()
        });
    }
    let mut times = Vec::new();
    while let Some(time) = logins.join_next().await {
        times.push(time.unwrap());
    }
    let users = admin(
        a,
        "GET",
        "/auth/wecom/admin/users?limit=100",
        "text/plain",
        b"",
    )
    .await
    .json();
    let users = users["users"].as_array().unwrap().clone();
    let zhouqi: Vec<&Value> = users
        .iter()
        .filter(|u| u["mobile"] == "13500000005")
        .collect();
    assert_eq!(zhouqi.len(), 1, "exactly one user for zhouqi: {users:?}");
    let ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 4, "alice, lisi's row, wangwu, zhouqi: {ids:?}");

    // The guards hold on Spin: its stores' compare-and-swap compares (the
    // Redis store's misreported conflicts included), it passes the client
    // address and takes the timeouts of calls to WeCom, the clocks agree.
    // `/ready` lists no warning.
    let ready = send(a, "GET", "/auth/wecom/ready", &[], b"").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json().get("warnings"), None, "{}", ready.body);

    // WeCom deletes wangwu: its callback reaches `a`, and the session is
    // refused on `b` at once (the session generation is in the store).
    let mut leaver = Browser::new(WECOM_ANDROID);
    assert_eq!(leaver.log_in(b, b, sim, "wangwu").await.status, 302);
    assert_eq!(
        leaver.request(b, "GET", "/auth/wecom/verify").await.status,
        200
    );
    let deliveries = sim.remove_member("wangwu").await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert_eq!(
        leaver.request(b, "GET", "/auth/wecom/verify").await.status,
        401
    );
    assert_eq!(
        newcomer
            .request(a, "GET", "/auth/wecom/verify")
            .await
            .status,
        401
    );

    // Sequential logins, for the median.
    let mut sequential = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let mut again = Browser::new(CHROME);
        assert_eq!(again.log_in(a, a, sim, "zhangsan").await.status, 302);
        sequential.push(started.elapsed());
    }
    sequential.sort();

    // The per-client limit, counted in Spin's store by the address Spin
    // passes (`spin-client-addr`), across both instances; a client's own
    // `spin-client-addr`, a new one each time, changes nothing.
    let mut refused = None;
    // Twice the limit: a minute may turn during the loop and start afresh.
    for n in 0..=2 * RATE_PER_CLIENT {
        let at = if n % 2 == 0 { a } else { b };
        let forged = format!("198.18.{}.{}", n / 200, n % 200);
        let headers = [("spin-client-addr", forged.as_str())];
        let reply = send(at, "GET", "/auth/wecom/login", &headers, b"")
            .await
            .unwrap();
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, 302, "{}", reply.body);
    }
    let refused = refused.expect("the per-client limit is reached");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    sequential[sequential.len() / 2]
}

/// Login requests a minute one client address may make in the Spin tests.
const RATE_PER_CLIENT: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_component_in_a_real_spin_on_its_default_sqlite_store() {
    let Some(spin) = spin(UNTESTED) else { return };
    let dir = TempDir::new("spin-sqlite").unwrap();
    let port = free_port().unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    let sim = Simulator::start(model(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    // One instance: SQLite is a file of one `spin up`. The callback's origin
    // is the instance's own address.
    let up = start(&spin, dir.path(), port, &origin, &sim, None).await;
    let median = walk(&up, &up, &sim).await;
    eprintln!(
        "spin (SQLite): cold start to first answer {:?}; sequential login median {median:?}",
        up.cold_start
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_spin_instances_share_one_redis() {
    let Some(spin) = spin(UNTESTED) else { return };
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = TempDir::new("spin-redis").unwrap();
    let config = redis_runtime_config(dir.path(), &redis.url());
    let port = free_port().unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    let sim = Simulator::start(model(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let a = start(&spin, dir.path(), port, &origin, &sim, Some(&config)).await;
    let other = free_port().unwrap();
    let b = start(&spin, dir.path(), other, &origin, &sim, Some(&config)).await;
    let median = walk(&a, &b, &sim).await;
    eprintln!(
        "spin (Redis, 2 instances): cold start to first answer {:?}; sequential login median {median:?}",
        a.cold_start
    );
}
