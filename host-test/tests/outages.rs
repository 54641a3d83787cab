//! Outages with the real parts, under load (issue 24): Redis killed and
//! started again while 8 clients log in and 32 call `/verify`, through the
//! reference gateway (a process of its own) and through two real `spin up`
//! sharing that Redis; WeCom (the simulator) answering in 2 s, refusing
//! connections and answering 503, each for 10 s in the middle of the same
//! load; a gateway and a Spin killed (SIGKILL) in the middle of logins and
//! started again.
//!
//! Every login and `/verify` is sorted: finished, refused with a clear
//! answer (502 or 503 with `Retry-After`, a page naming the cause), stopped
//! at WeCom's own page (WeCom down for the browser too), host unreachable
//! (killed), hung (no answer in 20 s: none may). Anything else fails the
//! test. Afterwards: the instances ready again, every session issued before
//! and during the outage valid, every member able to log in, and the store
//! read key by key: no user, binding, index entry or used-state marker half
//! written, one user per member. Each scenario prints its figures
//! (`--nocapture`); docs/DEPLOY.md ("Reliability") holds a run's.
//!
//! Needs `redis-server` and, for the Spin halves, `spin`: skipped with a
//! message when missing; failures when `WECOM_AUTH_REQUIRE_REDIS=1` /
//! `WECOM_AUTH_REQUIRE_SPIN=1` (CI).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use host_drafts::keyvalue::testing::{RedisServer, TempDir, free_port};
use host_test::COMPONENT_PATH;
use host_test::demo::{WECOM_USER_AGENT, variables};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wecom_simulator::{Fault, FaultScope, Member, Model, Simulator, SimulatorHandle};

mod common;

use common::http::{Reply, keep_cookies, send};
use common::spin::{SpinUp, manifest, redis_runtime_config, spin};

/// A request without an answer after this long hung.
const HUNG: Duration = Duration::from_secs(20);
const LOGIN_CLIENTS: usize = 8;
const VERIFY_CLIENTS: usize = 32;
const OUTAGE: Duration = Duration::from_secs(10);
/// Load before and after each outage.
const CALM: Duration = Duration::from_secs(3);
const UNTESTED_SPIN: &str = "outages of the component in a real Spin are NOT tested";

/// One scenario at a time: each loads the machine on its own, and two at
/// once on CI's two cores would measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- the company ----

/// The sample company plus twelve staff, every one able to log in (the
/// sample's zhangsan is bound by mobile, the others are signed up).
fn model(trusted: &str) -> Model {
    let mut model = Model::sample().with_trusted_domain(trusted);
    for n in 1..=12 {
        model.corps[0].members.push(Member {
            userid: format!("staff{n:02}"),
            name: format!("员工{n}"),
            mobile: Some(format!("1370000{n:04}")),
            ..Member::default()
        });
    }
    model
}

fn members() -> Vec<String> {
    let mut all = vec![
        "zhangsan".to_owned(),
        "lisi".to_owned(),
        "wangwu".to_owned(),
    ];
    all.extend((1..=12).map(|n| format!("staff{n:02}")));
    all
}

/// The demo's settings on `origin`: every client comes from 127.0.0.1, so
/// the per-client limit is set above what the load sends.
fn settings(origin: &str, sim: &SimulatorHandle) -> BTreeMap<String, String> {
    let mut settings = variables(origin, &sim.base_url());
    settings.insert("rate_limit_per_client".into(), "1000000".into());
    settings.insert("rate_limit_per_authenticator".into(), "1000000".into());
    settings
}

// ---- one request, sorted ----

enum Outcome {
    Answer(Reply),
    /// No connection (refused, reset): the host is down.
    Unreachable,
    Hung,
}

async fn attempt(at: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Outcome {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(HUNG, send(at, "GET", target, headers, b"")).await {
        Err(_) => Outcome::Hung,
        Ok(Err(_)) => Outcome::Unreachable,
        Ok(Ok(reply)) => Outcome::Answer(reply),
    };
    SLOWEST_MS.fetch_max(started.elapsed().as_millis() as u64, Ordering::SeqCst);
    outcome
}

/// The slowest answer of the scenario running (ms).
static SLOWEST_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A refusal that says what happened and when to try again.
fn is_clear(reply: &Reply) -> bool {
    let named = ["暂不可用", "暂时无法", "unavailable"]
        .iter()
        .any(|cause| reply.body.contains(cause));
    matches!(reply.status, 502 | 503) && reply.header("retry-after").is_some() && named
}

fn unclear(what: &str, reply: &Reply) -> String {
    let body: String = reply.body.chars().take(300).collect();
    format!("{what}: {} {body}", reply.status)
}

/// What the clients met.
#[derive(Default)]
struct Tally {
    logins_tried: u64,
    logins_finished: u64,
    logins_refused_clearly: u64,
    logins_stopped_at_wecom: u64,
    logins_unreachable: u64,
    logins_hung: u64,
    verifies: u64,
    verifies_ok: u64,
    verifies_refused_clearly: u64,
    verifies_unreachable: u64,
    verifies_hung: u64,
    /// Anything else: each fails the test.
    unclear: Vec<String>,
    /// Every session a login finished with: `name=value`.
    sessions: Vec<String>,
}

impl Tally {
    /// The counts (never the sessions: they are credentials).
    fn summary(&self) -> String {
        format!(
            "logins tried {}, finished {}, refused clearly {}, stopped at WeCom's page {}, host \
             unreachable {}, hung {}; /verify {}: ok {}, refused clearly {}, host unreachable {}, \
             hung {}",
            self.logins_tried,
            self.logins_finished,
            self.logins_refused_clearly,
            self.logins_stopped_at_wecom,
            self.logins_unreachable,
            self.logins_hung,
            self.verifies,
            self.verifies_ok,
            self.verifies_refused_clearly,
            self.verifies_unreachable,
            self.verifies_hung,
        )
    }

    fn add(&mut self, other: Tally) {
        self.logins_tried += other.logins_tried;
        self.logins_finished += other.logins_finished;
        self.logins_refused_clearly += other.logins_refused_clearly;
        self.logins_stopped_at_wecom += other.logins_stopped_at_wecom;
        self.logins_unreachable += other.logins_unreachable;
        self.logins_hung += other.logins_hung;
        self.verifies += other.verifies;
        self.verifies_ok += other.verifies_ok;
        self.verifies_refused_clearly += other.verifies_refused_clearly;
        self.verifies_unreachable += other.verifies_unreachable;
        self.verifies_hung += other.verifies_hung;
        self.unclear.extend(other.unclear);
        self.sessions.extend(other.sessions);
    }
}

enum LoginEnd {
    Finished(String),
    RefusedClearly,
    StoppedAtWecom,
    Unreachable,
    Hung,
    Unclear(String),
}

/// An in-client login of `member`: started on `start`, WeCom's page, the
/// callback on `finish` (another instance behind the same origin).
async fn log_in(
    start: SocketAddr,
    finish: SocketAddr,
    sim: &SimulatorHandle,
    member: &str,
) -> LoginEnd {
    let ua = [("user-agent", WECOM_USER_AGENT)];
    let begun = match attempt(start, "/auth/wecom/login", &ua).await {
        Outcome::Answer(reply) if reply.status == 302 => reply,
        Outcome::Answer(reply) if is_clear(&reply) => return LoginEnd::RefusedClearly,
        Outcome::Answer(reply) => return LoginEnd::Unclear(unclear("/login", &reply)),
        Outcome::Unreachable => return LoginEnd::Unreachable,
        Outcome::Hung => return LoginEnd::Hung,
    };
    let mut jar = BTreeMap::new();
    keep_cookies(&mut jar, &begun.headers);
    let back = match tokio::time::timeout(HUNG, sim.login(begun.location(), member)).await {
        Ok(Ok(back)) => back,
        _ => return LoginEnd::StoppedAtWecom,
    };
    let mut target = back[back.find("/auth/").unwrap_or(0)..].to_owned();
    let mut consent_asked = false;
    loop {
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let headers = [
            ("user-agent", WECOM_USER_AGENT),
            ("cookie", cookie.as_str()),
        ];
        let answer = attempt(finish, &target, &headers).await;
        // A member not bound yet: once more to WeCom, for the consent.
        if let Outcome::Answer(reply) = &answer
            && reply.status == 302
            && reply.location().contains("scope=snsapi_privateinfo")
            && !consent_asked
        {
            consent_asked = true;
            keep_cookies(&mut jar, &reply.headers);
            let again = tokio::time::timeout(HUNG, sim.login(reply.location(), member)).await;
            let Ok(Ok(again)) = again else {
                return LoginEnd::StoppedAtWecom;
            };
            target = again[again.find("/auth/").unwrap_or(0)..].to_owned();
            continue;
        }
        return finished(answer);
    }
}

/// How a callback's answer ends a login.
fn finished(answer: Outcome) -> LoginEnd {
    match answer {
        Outcome::Answer(reply) if reply.status == 302 => {
            let session = reply
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                .find_map(|(_, v)| v.starts_with("wecom_auth_session=").then(|| v.clone()));
            match session {
                Some(cookie) => LoginEnd::Finished(cookie.split(';').next().unwrap().to_owned()),
                None => LoginEnd::Unclear(unclear("callback without a session", &reply)),
            }
        }
        Outcome::Answer(reply) if is_clear(&reply) => LoginEnd::RefusedClearly,
        Outcome::Answer(reply) => LoginEnd::Unclear(unclear("/callback", &reply)),
        Outcome::Unreachable => LoginEnd::Unreachable,
        Outcome::Hung => LoginEnd::Hung,
    }
}

async fn login_client(
    n: usize,
    at: Vec<SocketAddr>,
    sim: SimulatorHandle,
    stop: Arc<AtomicBool>,
) -> Tally {
    let members = members();
    let mut tally = Tally::default();
    let mut round = 0;
    while !stop.load(Ordering::SeqCst) {
        let member = &members[(n + round * LOGIN_CLIENTS) % members.len()];
        let start = at[(n + round) % at.len()];
        let finish = at[(n + round + 1) % at.len()];
        round += 1;
        tally.logins_tried += 1;
        let end = log_in(start, finish, &sim, member).await;
        let finished = matches!(end, LoginEnd::Finished(_));
        match end {
            LoginEnd::Finished(cookie) => {
                tally.logins_finished += 1;
                tally.sessions.push(cookie);
            }
            LoginEnd::RefusedClearly => tally.logins_refused_clearly += 1,
            LoginEnd::StoppedAtWecom => tally.logins_stopped_at_wecom += 1,
            LoginEnd::Unreachable => tally.logins_unreachable += 1,
            LoginEnd::Hung => tally.logins_hung += 1,
            LoginEnd::Unclear(what) => tally.unclear.push(what),
        }
        if !finished {
            // A member tries again a moment later, not in a hot loop.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tally
}

async fn verify_client(
    n: usize,
    at: Vec<SocketAddr>,
    sessions: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut round = 0;
    while !stop.load(Ordering::SeqCst) {
        let cookie = &sessions[(n + round) % sessions.len()];
        let host = at[(n + round) % at.len()];
        round += 1;
        tally.verifies += 1;
        match attempt(host, "/auth/wecom/verify", &[("cookie", cookie)]).await {
            Outcome::Answer(reply) if reply.status == 200 => tally.verifies_ok += 1,
            Outcome::Answer(reply)
                if matches!(reply.status, 502 | 503) && reply.header("retry-after").is_some() =>
            {
                tally.verifies_refused_clearly += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // A 401 would send a signed-in member to log in again.
            Outcome::Answer(reply) => tally.unclear.push(unclear("/verify", &reply)),
            Outcome::Unreachable => {
                tally.verifies_unreachable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Outcome::Hung => tally.verifies_hung += 1,
        }
    }
    tally
}

/// 8 login clients and 32 `/verify` clients on `at` (with `sessions`)
/// while `outage` runs, then `CALM` more.
async fn under_load(
    at: &[SocketAddr],
    sim: &SimulatorHandle,
    sessions: &[String],
    outage: impl Future<Output = ()>,
) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(sessions.to_vec());
    let mut clients = JoinSet::new();
    for n in 0..LOGIN_CLIENTS {
        clients.spawn(login_client(n, at.to_vec(), sim.clone(), Arc::clone(&stop)));
    }
    for n in 0..VERIFY_CLIENTS {
        clients.spawn(verify_client(
            n,
            at.to_vec(),
            Arc::clone(&sessions),
            Arc::clone(&stop),
        ));
    }
    tokio::time::sleep(CALM).await;
    outage.await;
    tokio::time::sleep(CALM).await;
    stop.store(true, Ordering::SeqCst);
    let mut tally = Tally::default();
    while let Some(client) = clients.join_next().await {
        tally.add(client.expect("a client panicked"));
    }
    tally
}

// ---- afterwards ----

/// Seconds until every instance's `/ready` answers 200 again.
async fn ready_again(at: &[SocketAddr]) -> Duration {
    let started = Instant::now();
    for &addr in at {
        loop {
            if let Outcome::Answer(reply) = attempt(addr, "/auth/wecom/ready", &[]).await
                && reply.status == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{addr} never ready again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    started.elapsed()
}

/// Every session valid, every member able to log in once more.
async fn sessions_hold_and_members_log_in(
    at: &[SocketAddr],
    sim: &SimulatorHandle,
    sessions: &[String],
) {
    for (n, cookie) in sessions.iter().enumerate() {
        match attempt(
            at[n % at.len()],
            "/auth/wecom/verify",
            &[("cookie", cookie)],
        )
        .await
        {
            Outcome::Answer(reply) => assert_eq!(reply.status, 200, "session {n}: {}", reply.body),
            _ => panic!("session {n}: no answer"),
        }
    }
    for (n, member) in members().iter().enumerate() {
        let end = log_in(at[n % at.len()], at[(n + 1) % at.len()], sim, member).await;
        assert!(
            matches!(end, LoginEnd::Finished(_)),
            "{member} cannot log in afterwards"
        );
    }
}

/// The store's records (Redis: the gateway's keys carry the bucket,
/// `default:`; Spin's do not).
fn records(redis_url: &str) -> BTreeMap<String, Vec<u8>> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    keys.into_iter()
        .map(|key| {
            let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
            let key = key.strip_prefix("default:").unwrap_or(&key).to_owned();
            (key, value)
        })
        .collect()
}

/// Reads the store key by key: users, bindings, the user index and the
/// used-state markers are whole and agree; one user per member. Answers
/// (users, bindings).
fn check_store(redis_url: &str) -> (usize, usize) {
    let records = records(redis_url);
    let json = |key: &str, bytes: &[u8]| -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{key} is half written: {e}"))
    };
    let mut users = BTreeMap::new();
    for (key, bytes) in &records {
        if let Some(id) = key.strip_prefix("user/") {
            let user = json(key, bytes);
            assert_eq!(user["id"], id.to_owned(), "{key}");
            assert!(user["bindings"].is_array(), "{key}: {user}");
            users.insert(id.to_owned(), user);
        }
    }
    // One user per member: no two users list the same binding.
    let mut bound = BTreeMap::new();
    for (id, user) in &users {
        for binding in user["bindings"].as_array().unwrap() {
            let member = format!(
                "{}/{}",
                binding["authenticator"].as_str().unwrap(),
                binding["wecom_userid"]
                    .as_str()
                    .unwrap()
                    .to_ascii_lowercase()
            );
            if let Some(other) = bound.insert(member.clone(), id.clone()) {
                panic!("{member} is bound to {other} and {id}");
            }
        }
    }
    // Each binding key names a user that lists it, and every binding a user
    // lists has its key (the commit point: a login cut short was finished
    // by the member's next one).
    let mut bindings = 0;
    for (key, bytes) in &records {
        if let Some(member) = key.strip_prefix("binding/") {
            bindings += 1;
            let id = json(key, bytes);
            assert_eq!(
                bound.get(member),
                id.as_str().map(str::to_owned).as_ref(),
                "{key}"
            );
        }
    }
    for member in bound.keys() {
        assert!(
            records.contains_key(&format!("binding/{member}")),
            "no key for {member}"
        );
    }
    // The index never misses a user.
    let indexed: BTreeSet<String> = records
        .iter()
        .filter(|(key, _)| key.starts_with("user-index/"))
        .flat_map(|(key, bytes)| {
            let ids = json(key, bytes);
            ids.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for id in users.keys() {
        assert!(indexed.contains(id), "{id} is missing from the user index");
    }
    // A finished login's marker names a user that exists.
    for (key, bytes) in &records {
        if key.starts_with("used-state/") {
            let marker = json(key, bytes);
            if let Some(id) = marker["finished"]["user_id"].as_str() {
                assert!(users.contains_key(id), "{key} names a missing user {id}");
            }
        }
    }
    (users.len(), bindings)
}

fn report(
    scenario: &str,
    tally: &Tally,
    slowest: Duration,
    ready: Duration,
    store: (usize, usize),
    kept: usize,
) {
    let _ = writeln!(
        std::io::stderr(),
        "outage {scenario}: {}; slowest answer {:.2} s; ready again in {:.1} s; sessions valid \
         afterwards {kept}/{kept}; store: {} users, {} bindings, none half written, one user per \
         member",
        tally.summary(),
        slowest.as_secs_f64(),
        ready.as_secs_f64(),
        store.0,
        store.1,
    );
}

/// Runs `outage` under load on `at`, then checks everything afterwards.
async fn scenario(
    name: &str,
    at: &[SocketAddr],
    sim: &SimulatorHandle,
    redis_url: &str,
    outage: impl Future<Output = ()>,
) {
    // Before: every member logged in once (users created and bound).
    let mut before = Vec::new();
    for (n, member) in members().iter().enumerate() {
        match log_in(at[n % at.len()], at[(n + 1) % at.len()], sim, member).await {
            LoginEnd::Finished(cookie) => before.push(cookie),
            _ => panic!("{member} cannot log in before the outage"),
        }
    }
    SLOWEST_MS.store(0, Ordering::SeqCst);
    let tally = under_load(at, sim, &before, outage).await;
    let slowest = Duration::from_millis(SLOWEST_MS.load(Ordering::SeqCst));
    assert!(
        tally.unclear.is_empty(),
        "{name}: unclear answers: {:#?}",
        tally.unclear
    );
    let summary = tally.summary();
    assert_eq!(
        (tally.logins_hung, tally.verifies_hung),
        (0, 0),
        "{name}: {summary}"
    );
    assert!(
        tally.logins_finished > 0 && tally.verifies_ok > 0,
        "{name}: {summary}"
    );
    let ready = ready_again(at).await;
    let mut sessions = before;
    sessions.extend(tally.sessions.iter().cloned());
    sessions_hold_and_members_log_in(at, sim, &sessions).await;
    let store = check_store(redis_url);
    report(name, &tally, slowest, ready, store, sessions.len());
}

// ---- the gateway, a process of its own ----

/// `wecom-auth-gateway` (host-test's `gateway` binary) on `port`, the
/// component built from this tree, on Redis at `redis_url`; killed on drop.
struct GatewayProcess {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    redis_url: String,
    variables: BTreeMap<String, String>,
}

impl GatewayProcess {
    async fn start(
        dir: &Path,
        port: u16,
        redis_url: &str,
        variables: BTreeMap<String, String>,
    ) -> GatewayProcess {
        let mut gateway = GatewayProcess {
            child: Command::new("true").spawn().unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_owned(),
            redis_url: redis_url.to_owned(),
            variables,
        };
        gateway.restart().await;
        gateway
    }

    /// Kills it (SIGKILL: requests in flight end with it).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it (again): returns once `/ping` answers.
    async fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .args(["--listen", &self.addr.to_string()])
            .args(["--store", &self.redis_url])
            .arg("--component")
            .arg(COMPONENT_PATH)
            .arg("--precompiled-cache-dir")
            .arg(self.dir.join("precompiled"))
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (name, value) in &self.variables {
            command.env(format!("WECOM_AUTH_{}", name.to_ascii_uppercase()), value);
        }
        self.child = command.spawn().expect("the gateway starts");
        let started = Instant::now();
        loop {
            if let Outcome::Answer(reply) = attempt(self.addr, "/auth/wecom/ping", &[]).await
                && reply.status == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("gateway.log"));
                panic!(
                    "the gateway exited with {status}: {}",
                    log.unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the gateway never answered"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP relay in front of WeCom's API that can refuse connections (its
/// port closed, the connections through it cut) and accept them again:
/// WeCom refusing the component while its pages still serve the browsers.
struct Relay {
    addr: SocketAddr,
    open: watch::Sender<bool>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, mut opened) = watch::channel(true);
        tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let Some(bound) = &listener else {
                    // Closed: wait to open, then listen on the same port.
                    if opened.changed().await.is_err() {
                        return;
                    }
                    if *opened.borrow() {
                        listener = Some(TcpListener::bind(addr).await.unwrap());
                    }
                    continue;
                };
                tokio::select! {
                    accepted = bound.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let mut cut = opened.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(to).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = cut.wait_for(|open| !*open) => {}
                            }
                        });
                    }
                    changed = opened.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if !*opened.borrow() {
                            listener = None;
                        }
                    }
                }
            }
        });
        Relay { addr, open }
    }

    fn refuse(&self) {
        self.open.send_replace(false);
    }

    fn accept(&self) {
        self.open.send_replace(true);
    }
}

/// What each scenario starts with: a durable Redis in a directory of its
/// own, the company at the simulator trusting `origin` (127.0.0.1:`port`).
struct Setup {
    dir: TempDir,
    redis: RedisServer,
    url: String,
    port: u16,
    origin: String,
    sim: SimulatorHandle,
}

impl Setup {
    /// None (after a note) when `redis-server` is missing.
    async fn start(label: &str) -> Option<Setup> {
        let dir = TempDir::new(label).unwrap();
        let redis = RedisServer::start_durable(dir.path()).expect("redis-server starts")?;
        let port = free_port().unwrap();
        let sim = Simulator::start(model(&format!("127.0.0.1:{port}")))
            .await
            .unwrap();
        Some(Setup {
            url: redis.url(),
            dir,
            redis,
            port,
            origin: format!("http://127.0.0.1:{port}"),
            sim,
        })
    }
}

// ---- the scenarios ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_under_load_through_the_gateway() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(Setup {
        dir,
        mut redis,
        url,
        port,
        origin,
        sim,
    }) = Setup::start("outage-redis-gateway").await
    else {
        return;
    };
    let gateway = GatewayProcess::start(dir.path(), port, &url, settings(&origin, &sim)).await;
    let at = [gateway.addr];
    scenario("Redis killed for 10 s (gateway)", &at, &sim, &url, async {
        tokio::task::block_in_place(|| redis.kill());
        tokio::time::sleep(OUTAGE).await;
        tokio::task::block_in_place(|| redis.restart()).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wecom_slow_refusing_and_failing_under_load_through_the_gateway() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(Setup {
        dir,
        redis: _redis, // kept running to the end
        url,
        port,
        origin,
        sim,
    }) = Setup::start("outage-wecom").await
    else {
        return;
    };
    // The component reaches WeCom's API through the relay; browsers reach
    // WeCom's pages directly.
    let relay = Relay::start(sim.addr()).await;
    let mut settings = settings(&origin, &sim);
    settings.insert("api_base".into(), format!("http://{}", relay.addr));
    let gateway = GatewayProcess::start(dir.path(), port, &url, settings).await;
    let at = [gateway.addr];
    scenario("WeCom answering in 2 s for 10 s", &at, &sim, &url, async {
        let slow = sim.fault(FaultScope::Api, Fault::latency_ms(2000));
        tokio::time::sleep(OUTAGE).await;
        slow.clear();
    })
    .await;
    scenario(
        "WeCom refusing connections for 10 s",
        &at,
        &sim,
        &url,
        async {
            relay.refuse();
            tokio::time::sleep(OUTAGE).await;
            relay.accept();
        },
    )
    .await;
    scenario("WeCom answering 503 for 10 s", &at, &sim, &url, async {
        let failing = sim.fault(FaultScope::Api, Fault::Http(503));
        tokio::time::sleep(OUTAGE).await;
        failing.clear();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_in_the_middle_of_logins_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(Setup {
        dir,
        redis: _redis, // kept running to the end
        url,
        port,
        origin,
        sim,
    }) = Setup::start("outage-kill-gateway").await
    else {
        return;
    };
    let mut gateway = GatewayProcess::start(dir.path(), port, &url, settings(&origin, &sim)).await;
    let at = [gateway.addr];
    scenario(
        "gateway killed (SIGKILL) and started again",
        &at,
        &sim,
        &url,
        async {
            // Slow WeCom calls keep logins in the middle when the kill comes.
            let slow = sim.fault(FaultScope::Api, Fault::latency_ms(300));
            tokio::time::sleep(Duration::from_secs(1)).await;
            gateway.kill();
            slow.clear();
            gateway.restart().await;
        },
    )
    .await;
}

/// `spin up` of the project's manifest on one Redis, as often as needed.
struct SpinRig<'a> {
    spin: &'a Path,
    dir: &'a Path,
    origin: &'a str,
    sim: &'a SimulatorHandle,
    config: PathBuf,
}

impl SpinRig<'_> {
    /// A `spin up` on `port`, once `/ping` answers (the store may be down).
    async fn up(&self, port: u16) -> SpinUp {
        let settings = settings(self.origin, self.sim);
        let variables: Vec<(&str, String)> = settings
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        let manifest = manifest(self.dir);
        let ping = "/auth/wecom/ping";
        SpinUp::start(
            self.spin,
            self.dir,
            &manifest,
            port,
            &variables,
            Some(&self.config),
            ping,
        )
        .await
    }

    /// What an orchestrator's liveness probe on `/ready` does (Kubernetes:
    /// `periodSeconds: 1`, `timeoutSeconds: 2`, `failureThreshold: 3`):
    /// an instance that fails three probes in a row is killed and started
    /// again. Probes for at least `min`, then until every instance is ready
    /// (at most `max`). Answers the restarts. Spin 3.6's Redis store keeps
    /// one connection for the life of the process and never reconnects:
    /// after Redis restarts, every store call of that Spin hangs.
    async fn keep_alive(&self, spins: &mut [SpinUp], min: Duration, max: Duration) -> u32 {
        let started = Instant::now();
        let mut failures = vec![0; spins.len()];
        let mut restarts = 0;
        loop {
            let mut all_ready = true;
            for (n, up) in spins.iter_mut().enumerate() {
                let probe = send(up.addr, "GET", "/auth/wecom/ready", &[], b"");
                let ready = matches!(
                    tokio::time::timeout(Duration::from_secs(2), probe).await,
                    Ok(Ok(reply)) if reply.status == 200
                );
                all_ready &= ready;
                failures[n] = if ready { 0 } else { failures[n] + 1 };
                if failures[n] == 3 {
                    let port = up.addr.port();
                    up.kill();
                    *up = self.up(port).await;
                    failures[n] = 0;
                    restarts += 1;
                }
            }
            let elapsed = started.elapsed();
            if elapsed >= max || (elapsed >= min && all_ready) {
                return restarts;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_under_load_through_two_spins() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(spin) = spin(UNTESTED_SPIN) else {
        return;
    };
    let Some(Setup {
        dir,
        mut redis,
        url,
        port,
        origin,
        sim,
    }) = Setup::start("outage-redis-spin").await
    else {
        return;
    };
    let rig = SpinRig {
        spin: &spin,
        dir: dir.path(),
        origin: &origin,
        sim: &sim,
        config: redis_runtime_config(dir.path(), &url),
    };
    let mut spins = [rig.up(port).await, rig.up(free_port().unwrap()).await];
    let at = [spins[0].addr, spins[1].addr];
    let mut restarts = 0;
    let name = "Redis killed for 10 s (two Spins, liveness probe on /ready)";
    scenario(name, &at, &sim, &url, async {
        tokio::task::block_in_place(|| redis.kill());
        restarts += rig.keep_alive(&mut spins, OUTAGE, OUTAGE).await;
        tokio::task::block_in_place(|| redis.restart()).unwrap();
        let max = Duration::from_secs(30);
        restarts += rig.keep_alive(&mut spins, Duration::ZERO, max).await;
    })
    .await;
    let _ = writeln!(
        std::io::stderr(),
        "outage {name}: {restarts} restarts by the probe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spin_killed_in_the_middle_of_logins_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(spin) = spin(UNTESTED_SPIN) else {
        return;
    };
    let Some(Setup {
        dir,
        redis: _redis, // kept running to the end
        url,
        port,
        origin,
        sim,
    }) = Setup::start("outage-kill-spin").await
    else {
        return;
    };
    let rig = SpinRig {
        spin: &spin,
        dir: dir.path(),
        origin: &origin,
        sim: &sim,
        config: redis_runtime_config(dir.path(), &url),
    };
    let mut up = rig.up(port).await;
    let at = [up.addr];
    scenario(
        "Spin killed (SIGKILL) and started again",
        &at,
        &sim,
        &url,
        async {
            // Slow WeCom calls keep logins in the middle when the kill comes.
            let slow = sim.fault(FaultScope::Api, Fault::latency_ms(300));
            tokio::time::sleep(Duration::from_secs(1)).await;
            up.kill();
            slow.clear();
            up = rig.up(port).await;
        },
    )
    .await;
}
