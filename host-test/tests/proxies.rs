//! Forward auth through real proxies: Debian's Nginx (`auth_request`) and
//! Caddy (`forward_auth`) on loopback, running the very recipes in `deploy/`
//! (addresses swapped), in front of the reference gateway (against the WeCom
//! simulator) and a small app that echoes what it receives.
//!
//! Needs `nginx` and `caddy`; skipped with a message when missing, a failure
//! when `WECOM_AUTH_REQUIRE_PROXIES=1` (CI).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use host_drafts::keyvalue::testing::{TempDir, free_port};
use host_test::COMPONENT_PATH;
use host_test::proxy::{
    REPO, echo_app, spawn_caddy, spawn_nginx, write_caddyfile, write_nginx_config,
};
use serde_json::Value;
use wecom_auth_gateway::{Gateway, GatewayConfig, GatewayHandle};
use wecom_simulator::{Model, Simulator, SimulatorHandle};

use common::http::{Browser, send};
use common::{CHROME, WECOM_ANDROID};

const REQUIRE_ENV: &str = "WECOM_AUTH_REQUIRE_PROXIES";

/// The program on `PATH` (or in `/usr/sbin`), or why the test skips.
fn program(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        host_test::missing_part(
            REQUIRE_ENV,
            &format!("forward auth is NOT tested through a real {name}"),
            &format!("{name} (Debian: apt-get install {name})"),
        );
    }
    found
}

/// The gateway with the sample authenticator, its origin the proxy's.
async fn gateway(sim: &SimulatorHandle, origin: &str) -> GatewayHandle {
    let base = sim.base_url();
    let variables: BTreeMap<String, String> = wecom_auth::example::variables()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(
            [
                ("origin", origin.to_owned()),
                ("api_base", base.clone()),
                ("oauth_base", base.clone()),
                ("sso_base", base.clone()),
                ("auto_signup", "true".to_owned()),
                // Renew sessions a second old, so the walk sees a renewal.
                ("session_refresh_seconds", "1".to_owned()),
                ("groups", "departments".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        )
        .collect();
    let config = GatewayConfig::in_process(COMPONENT_PATH, variables).allow_outbound(base);
    Gateway::start(config).await.unwrap()
}

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for(addr: SocketAddr, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the proxy exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the proxy never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The recipe from `deploy/` (`deploy/nginx.conf` in a minimal main
/// config, or `deploy/Caddyfile` without TLS or an admin endpoint),
/// addresses swapped, started and answering on `port`.
async fn start_proxy(
    which: &str,
    binary: &Path,
    dir: &Path,
    port: u16,
    component: SocketAddr,
    app: SocketAddr,
) -> Proxy {
    let (log, child) = if which == "nginx" {
        write_nginx_config(dir, port, component, app);
        ("error.log", spawn_nginx(binary, dir))
    } else {
        write_caddyfile(dir, port, component, app);
        ("caddy.log", spawn_caddy(binary, dir))
    };
    let mut child = child.unwrap_or_else(|e| panic!("{which} starts: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for(addr, &mut child, &dir.join(log)).await;
    Proxy { child, addr }
}

/// The member's walk through `proxy`: a protected page sends them to WeCom
/// and back to the same URL; the app gets the identity, never a spoofed
/// one; a script gets 401; logout ends it.
async fn walk(proxy: &Proxy, sim: &SimulatorHandle, passes_renewal: bool) {
    let page = "/docs/Q3%20report?a=1&b=%2F2";
    let mut phone = Browser::new(WECOM_ANDROID);
    let sent = phone.request(proxy.addr, "GET", page).await;
    assert_eq!(sent.status, 302, "{}", sent.body);
    let to_login = sent.location().to_owned();
    assert!(
        to_login.contains("/auth/wecom/login?return_to="),
        "{to_login}"
    );
    let begun = phone.request(proxy.addr, "GET", &to_login).await;
    assert_eq!(begun.status, 302, "{}", begun.body);
    let back = sim.login(begun.location(), "zhangsan").await.unwrap();
    // Not bound yet: the silent login goes to WeCom once more, for the
    // consent that yields the mobile, and still lands on the linked page.
    let bounce = phone.request(proxy.addr, "GET", &back).await;
    assert_eq!(bounce.status, 302, "{}", bounce.body);
    assert!(bounce.location().contains("scope=snsapi_privateinfo&"));
    let back = sim.login(bounce.location(), "zhangsan").await.unwrap();
    let done = phone.request(proxy.addr, "GET", &back).await;
    assert_eq!((done.status, done.location()), (302, page), "{}", done.body);
    // Bound now: a deep link opened in WeCom later (a 应用消息) lands on
    // its page with no page of WeCom's in between.
    let consents = sim.consent_pages_shown();
    let mut later = Browser::new(WECOM_ANDROID);
    let sent = later.request(proxy.addr, "GET", page).await;
    let begun = later.request(proxy.addr, "GET", sent.location()).await;
    assert!(begun.location().contains("scope=snsapi_base&"));
    let back = sim.login(begun.location(), "zhangsan").await.unwrap();
    let landed = later.request(proxy.addr, "GET", &back).await;
    assert_eq!(
        (landed.status, landed.location()),
        (302, page),
        "{}",
        landed.body
    );
    assert_eq!(sim.consent_pages_shown(), consents, "no consent screen");

    // The app gets the identity, whatever the client claims.
    let mut spoofing = Browser::new(phone.user_agent);
    spoofing.cookies = phone.cookies.clone();
    let cookie: Vec<String> = spoofing
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let cookie = cookie.join("; ");
    let spoofed = [
        ("cookie", cookie.as_str()),
        ("x-user-id", "admin"),
        ("x-wecom-userid", "boss"),
        ("x-wecom-authenticator", "evil"),
        ("x-auth-request-user", "admin"),
        ("remote-user", "admin"),
        ("remote-email", "admin@evil.example"),
        ("x-wecom-groups", "tag:1"),
        ("x-auth-request-groups", "admins"),
        ("remote-groups", "admins"),
    ];
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = send(proxy.addr, "GET", page, &spoofed, b"").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The renewed session cookie reaches the browser where the proxy can pass it.
    let renewed = reply
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("wecom_auth_session="));
    assert_eq!(renewed, passes_renewal, "{:?}", reply.headers);
    let seen: Value = reply.json();
    assert_eq!(seen["path"], page);
    let header = |name: &str| -> Vec<String> {
        seen["headers"][name]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(header("x-wecom-userid"), ["zhangsan"], "{seen}");
    let user_id = header("x-user-id");
    assert_eq!(user_id.len(), 1, "{seen}");
    assert!(user_id[0].starts_with("wc-"), "{seen}");
    // zhangsan is in 1 and 2 (2 under 1): the groups come from WeCom.
    assert_eq!(header("x-wecom-groups"), ["dept:1,dept:2"], "{seen}");
    for spoof in [
        "x-auth-request-user",
        "remote-user",
        "remote-email",
        "x-auth-request-groups",
        "remote-groups",
    ] {
        assert!(
            header(spoof).iter().all(|v| v.is_empty()),
            "{spoof} reached the app: {seen}"
        );
    }
    // The recipe may pass the authenticator on or clear it: never the client's.
    assert!(
        header("x-wecom-authenticator").iter().all(|v| v != "evil"),
        "{seen}"
    );

    // A script without a session gets the 401, not a login page.
    let script = send(
        proxy.addr,
        "GET",
        "/api/data",
        &[("accept", "application/json"), ("user-agent", CHROME)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(script.status, 401, "{}", script.body);

    // Logout through the proxy ends the session there.
    let out = phone
        .request(proxy.addr, "POST", "/auth/wecom/logout")
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    let after = phone.request(proxy.addr, "GET", page).await;
    assert_eq!(after.status, 302, "logged out: {}", after.body);
}

async fn run(which: &str) {
    let Some(binary) = program(which) else { return };
    let dir = TempDir::new(which).unwrap();
    let port = free_port().unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    let sim = Simulator::start(Model::sample().with_trusted_domain(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let gateway = gateway(&sim, &origin).await;
    let app = echo_app().await;
    let proxy = start_proxy(which, &binary, dir.path(), port, gateway.addr(), app).await;
    // Caddy's forward_auth copies answer headers to the request only: its
    // members renew at `/auth/wecom/me` and the login routes instead.
    walk(&proxy, &sim, which == "nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_through_nginx_auth_request() {
    run("nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_through_caddy_forward_auth() {
    run("caddy").await;
}

/// DEPLOY.md shows the recipes the tests run, verbatim.
#[test]
fn deploy_md_shows_the_tested_recipes() {
    let guide = std::fs::read_to_string(Path::new(REPO).join("docs/DEPLOY.md")).unwrap();
    for file in ["deploy/nginx.conf", "deploy/Caddyfile"] {
        let recipe = std::fs::read_to_string(Path::new(REPO).join(file)).unwrap();
        assert!(
            guide.contains(recipe.trim()),
            "docs/DEPLOY.md does not show {file} as it is"
        );
    }
}
