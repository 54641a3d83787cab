//! The HTTP front through the built component in wasmtime, as a gateway serves
//! it: `wasi:http/incoming-handler` via `ProxyPre`, a fresh instance per
//! request, the host's keyvalue and config implementations, and outgoing
//! requests forwarded to the WeCom simulator.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use host_drafts::keyvalue::{KeyValueBackend, Op};
use host_test::example::{APP_SECRET, SIGNING_KEY};
use host_test::host::SkewedClock;
use host_test::outgoing::RecordingHooks;
use http_body_util::BodyExt;
use serde_json::Value;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wecom_auth_gateway::routes::{Routes, body};
use wecom_auth_gateway::state::{HostState, linker};
use wecom_simulator::{Endpoint, Fault, Model, SAMPLE_CORP_ID, Simulator, SimulatorHandle};

use common::{CHROME, WECOM_ANDROID};

use wecom_auth::example::ORIGIN;
const ADMIN_TOKEN: &str = "admin-token-DO-NOT-LEAK-0123456789";

/// The component serving HTTP, configured by `wasi:config` variables.
struct Front {
    pre: ProxyPre<HostState>,
    kv: KeyValueBackend,
    config: Arc<BTreeMap<String, String>>,
    hooks: RecordingHooks,
    stderr: MemoryOutputPipe,
    /// The wall clock instances see.
    clock: SkewedClock,
    /// How far `assert_no_secret` has read the logs.
    checked: std::cell::RefCell<Checked>,
}

/// The part of the logs already checked, and every WeCom token seen.
struct Checked {
    /// Off only where a test makes thousands of requests (the logs are
    /// copied at each check).
    enabled: bool,
    log_bytes: usize,
    requests: usize,
    tokens: std::collections::BTreeSet<String>,
}

impl Default for Checked {
    fn default() -> Self {
        Checked {
            enabled: true,
            log_bytes: 0,
            requests: 0,
            tokens: Default::default(),
        }
    }
}

/// Variables for the sample authenticator, WeCom's three hosts at the simulator.
fn variables(sim: &SimulatorHandle, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let base = sim.base_url();
    let mut vars: BTreeMap<String, String> = wecom_auth::example::variables()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (k, v) in [
        ("api_base", base.as_str()),
        ("oauth_base", base.as_str()),
        ("sso_base", base.as_str()),
        // As Spin passes the undeclared-default variables: empty.
        ("admin_token", ""),
        ("protected_paths", ""),
        ("session_cookie_domain", ""),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        vars.insert(k.to_owned(), v.to_owned());
    }
    vars
}

impl Front {
    fn new(sim: &SimulatorHandle, extra: &[(&str, &str)]) -> Self {
        let (engine, component) = common::engine_and_component();
        let pre =
            ProxyPre::new(linker(engine).unwrap().instantiate_pre(component).unwrap()).unwrap();
        // Requests to the simulator's address go to the simulator.
        let routes = Routes::new([(
            sim.addr().ip().to_string(),
            sim.addr().to_string().parse().unwrap(),
        )]);
        Front {
            pre,
            kv: KeyValueBackend::default(),
            config: Arc::new(variables(sim, extra)),
            hooks: RecordingHooks {
                routes,
                ..RecordingHooks::default()
            },
            stderr: MemoryOutputPipe::new(64 << 20),
            clock: SkewedClock::default(),
            checked: Default::default(),
        }
    }

    /// A CSV import through the admin API: its JSON answer.
    async fn import_csv(&self, csv: &str) -> Value {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "text/csv"),
        ];
        let target = "/auth/wecom/admin/users/import";
        let reply = self.send("POST", target, &headers, csv.as_bytes()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// An admin API read, as JSON, with the admin token.
    async fn admin_get(&self, target: &str) -> Value {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let reply = self
            .send("GET", target, &[("authorization", &auth)], b"")
            .await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.body);
        reply.json()
    }

    /// One request, in a fresh instance.
    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Reply {
        let mut wasi = WasiCtx::builder();
        wasi.stderr(self.stderr.clone())
            .wall_clock(self.clock.clone());
        let mut store = HostState::new(
            wasi.build(),
            self.kv.clone(),
            self.config.clone(),
            self.hooks.clone(),
        )
        .into_store(self.pre.engine());
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", "apps.example.com");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body(payload.to_vec())).unwrap();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Https, request)
            .unwrap();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .unwrap();
        let proxy = self.pre.instantiate_async(&mut store).await.unwrap();
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, out)
            .await
            .expect("the component handles the request without trapping");
        let response = receiver.await.unwrap().expect("a response");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let reply = Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        };
        self.assert_no_secret(&reply);
        reply
    }

    /// No answer and no log line holds a secret or a WeCom access token.
    fn assert_no_secret(&self, reply: &Reply) {
        // What is new since the last check: the suite's logs grow long.
        let mut checked = self.checked.borrow_mut();
        if !checked.enabled {
            return;
        }
        let requests = self.hooks.log.requests_since(checked.requests);
        checked.requests += requests.len();
        for r in &requests {
            let token = r.uri.split_once('?').and_then(|(_, query)| {
                query
                    .split('&')
                    .find_map(|p| p.strip_prefix("access_token="))
            });
            checked.tokens.extend(token.map(str::to_owned));
        }
        let contents = self.stderr.contents();
        let log = String::from_utf8_lossy(&contents[checked.log_bytes.min(contents.len())..])
            .into_owned();
        checked.log_bytes = contents.len();
        // Every audit line is JSON with only the trail's own fields, and
        // never a session token.
        const AUDIT_FIELDS: [&str; 15] = [
            "ts",
            "event",
            "outcome",
            "authenticator",
            "wecom_userid",
            "user_id",
            "category",
            "errcode",
            "client",
            "request_id",
            "wecom_calls",
            "duration_ms",
            "client_address",
            "detail",
            "reason",
        ];
        for line in log.lines().filter(|l| l.starts_with('{')) {
            let event: Value = serde_json::from_str(line).expect("audit lines are JSON");
            for key in event.as_object().unwrap().keys() {
                assert!(AUDIT_FIELDS.contains(&key.as_str()), "{key} in {line}");
            }
            assert!(!line.contains("v2.k"), "a session token in {line}");
        }
        let shown = format!("{reply:?}{log}");
        for secret in [APP_SECRET, SIGNING_KEY, ADMIN_TOKEN, "DO-NOT-LEAK"]
            .into_iter()
            .chain(checked.tokens.iter().map(String::as_str))
        {
            assert!(!shown.contains(secret), "a secret leaked: {shown}");
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn location(&self) -> &str {
        self.header("location").unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A browser: a User-Agent, a language and a cookie jar.
struct Browser {
    user_agent: &'static str,
    language: &'static str,
    cookies: BTreeMap<String, String>,
    /// The client address the host passes (`spin-client-addr`), if any.
    address: Option<String>,
}

impl Browser {
    fn new(user_agent: &'static str) -> Self {
        Browser {
            user_agent,
            language: "en",
            cookies: BTreeMap::new(),
            address: None,
        }
    }

    async fn request(&mut self, front: &Front, method: &str, target: &str) -> Reply {
        // The browser is on the app's origin: drop it from absolute URLs.
        let target = target.strip_prefix(ORIGIN).unwrap_or(target);
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![
            ("user-agent", self.user_agent),
            ("accept-language", self.language),
        ];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        if let Some(address) = &self.address {
            headers.push(("spin-client-addr", address.as_str()));
        }
        let reply = front.send(method, target, &headers, b"").await;
        common::http::keep_cookies(&mut self.cookies, &reply.headers);
        reply
    }

    async fn get(&mut self, front: &Front, target: &str) -> Reply {
        self.request(front, "GET", target).await
    }

    /// Starts a login at `target`, logs `who` in at the simulator and
    /// follows WeCom back to the callback.
    async fn log_in(
        &mut self,
        front: &Front,
        sim: &SimulatorHandle,
        target: &str,
        who: &str,
    ) -> Reply {
        let start = self.get(front, target).await;
        assert_eq!(start.status, 302, "{}", start.body);
        assert!(
            start.location().starts_with(&sim.base_url()),
            "{}",
            start.location()
        );
        let back = sim.login(start.location(), who).await.unwrap();
        assert!(
            back.starts_with(&format!("{ORIGIN}/auth/wecom/callback?code=")),
            "{back}"
        );
        self.back_from_wecom(front, sim, &back, who).await
    }

    /// Brings WeCom's redirect `back` to the callback. A silent in-client
    /// login of a member not bound yet is sent to WeCom once more, for the
    /// consent (`snsapi_privateinfo`): `who` answers as the model says, and
    /// that callback's answer is returned.
    async fn back_from_wecom(
        &mut self,
        front: &Front,
        sim: &SimulatorHandle,
        back: &str,
        who: &str,
    ) -> Reply {
        let answer = self.get(front, back).await;
        if answer.status != 302 || !answer.location().contains("scope=snsapi_privateinfo") {
            return answer;
        }
        let again = sim.login(answer.location(), who).await.unwrap();
        self.get(front, &again).await
    }
}

#[tokio::test]
async fn a_whole_login_inside_wecom_then_verify_me_and_logout() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    let start = phone
        .get(&front, "/auth/wecom/login?return_to=/reports%3Fq%3D1")
        .await;
    assert!(
        start.location().starts_with(&format!(
            "{}/connect/oauth2/authorize?appid={SAMPLE_CORP_ID}&",
            sim.base_url()
        )),
        "{}",
        start.location()
    );
    // Silent first (snsapi_base): no page of WeCom's.
    assert!(start.location().contains("scope=snsapi_base&"));
    assert!(phone.cookies.contains_key("wecom_auth_login"));
    let back = sim.login(start.location(), "zhangsan").await.unwrap();
    assert_eq!(sim.consent_pages_shown(), 0);
    // Not bound yet: once more to WeCom, for the consent that yields the
    // mobile, to the same return path.
    let bounce = phone.get(&front, &back).await;
    assert_eq!(bounce.status, 302, "{}", bounce.body);
    assert!(bounce.location().contains("scope=snsapi_privateinfo&"));
    let back = sim.login(bounce.location(), "zhangsan").await.unwrap();
    assert_eq!(sim.consent_pages_shown(), 1);
    let done = phone.get(&front, &back).await;
    assert_eq!(
        (done.status, done.location()),
        (302, "/reports?q=1"),
        "{}",
        done.body
    );
    assert!(phone.cookies.contains_key("wecom_auth_session"));
    assert!(
        !phone.cookies.contains_key("wecom_auth_login"),
        "the pre-auth cookie is cleared"
    );
    let session_cookie = done
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("wecom_auth_session="))
        .unwrap();
    assert!(
        session_cookie
            .1
            .ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure")
    );
    assert_eq!(sim.calls(Endpoint::GetToken), 1);
    assert_eq!(sim.calls(Endpoint::GetUserInfo), 2);
    assert_eq!(sim.calls(Endpoint::GetUserDetail), 1);

    // Bound now: the next in-client login is silent, one WeCom call.
    let mut again = Browser::new(WECOM_ANDROID);
    sim.reset_calls();
    let done = again
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert!(again.cookies.contains_key("wecom_auth_session"));
    assert_eq!(sim.consent_pages_shown(), 0);
    assert_eq!(sim.silent_authorizations(), 1);
    assert_eq!(sim.calls(Endpoint::GetUserInfo), 1);

    let verified = phone.get(&front, "/auth/wecom/verify").await;
    assert_eq!(verified.status, 200);
    assert_eq!(verified.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(verified.header("x-user-name"), Some("%E5%BC%A0%E4%B8%89"));
    assert_eq!(verified.header("x-user-mobile"), Some("13800000000"));
    assert_eq!(
        verified.header("x-user-email"),
        Some("zhangsan@example.wecom.work")
    );
    assert_eq!(verified.header("cache-control"), Some("no-store"));

    let me = phone.get(&front, "/auth/wecom/me").await.json();
    assert_eq!(me["user"]["name"], "张三");
    assert_eq!(me["authenticator"], "wecom");

    let out = phone.request(&front, "POST", "/auth/wecom/logout").await;
    assert_eq!((out.status, out.location()), (303, "/auth/wecom/"));
    assert!(!phone.cookies.contains_key("wecom_auth_session"));
    assert_eq!(phone.get(&front, "/auth/wecom/verify").await.status, 401);
}

#[tokio::test]
async fn a_bound_member_logs_in_by_qr_code_with_one_wecom_call() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let first = Browser::new(WECOM_ANDROID)
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(first.status, 302, "{}", first.body);
    sim.reset_calls();
    let mut desktop = Browser::new(CHROME);
    let start = desktop
        .get(&front, "/auth/wecom/login?return_to=/docs")
        .await;
    assert!(start.location().starts_with(&format!(
        "{}/wwlogin/sso/login?login_type=CorpApp&",
        sim.base_url()
    )));
    let back = sim.login(start.location(), "zhangsan").await.unwrap();
    let done = desktop.get(&front, &back).await;
    assert_eq!(
        (done.status, done.location()),
        (302, "/docs"),
        "{}",
        done.body
    );
    assert_eq!(sim.api_calls(), 1, "warm token: auth/getuserinfo only");
    let verified = desktop.get(&front, "/auth/wecom/verify").await;
    assert_eq!(verified.header("x-wecom-userid"), Some("zhangsan"));
}

#[tokio::test]
async fn a_non_member_and_a_first_qr_login_get_pages_that_say_why() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    let outsider = phone
        .log_in(&front, &sim, "/auth/wecom/login", "outsider")
        .await;
    assert_eq!(outsider.status, 403);
    assert_eq!(
        outsider.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // WECOM_ANDROID says Language/zh: the page is in Chinese.
    assert!(
        outsider.body.contains("您不是本企业的企业微信成员"),
        "{}",
        outsider.body
    );
    assert!(outsider.body.contains("HTTP 403"));

    let mut desktop = Browser::new(CHROME);
    let first = desktop
        .log_in(&front, &sim, "/auth/wecom/login", "lisi")
        .await;
    assert_eq!(first.status, 403);
    assert!(
        first
            .body
            .contains("first login must happen inside the WeCom app"),
        "{}",
        first.body
    );
}

#[tokio::test]
async fn an_untrusted_server_ip_shows_the_admin_what_to_fix() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    sim.update_model(|model| {
        model.corps[0].agents[0].trusted_ips = Some(vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
    });
    let front = Front::new(&sim, &[]);
    let mut desktop = Browser::new(CHROME);
    let page = desktop
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(page.status, 500);
    assert!(page.body.contains("For the administrator"), "{}", page.body);
    assert!(
        page.body.contains("企业可信IP") && page.body.contains("127.0.0.1"),
        "{}",
        page.body
    );
    assert!(page.body.contains("WeCom errcode 60020"));
    assert!(
        front.log().contains("60020"),
        "the operator's log says it too"
    );
}

#[tokio::test]
async fn a_wecom_outage_is_a_502_page_with_a_way_back() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[]);
    sim.fault(Endpoint::GetToken, Fault::Http(503)).times(1);
    let mut desktop = Browser::new(CHROME);
    let page = desktop
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body
            .contains("href=\"/auth/wecom/login?authenticator=wecom\"")
    );
}

#[tokio::test]
async fn a_duplicate_callback_lands_where_the_first_did() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    // Bound first: the login below is silent, one callback.
    let mut earlier = Browser::new(WECOM_ANDROID);
    let bound = earlier
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(bound.status, 302, "{}", bound.body);
    sim.reset_calls();
    let mut phone = Browser::new(WECOM_ANDROID);
    let start = phone
        .get(&front, "/auth/wecom/login?return_to=/inbox")
        .await;
    let back = sim.login(start.location(), "zhangsan").await.unwrap();
    let pre_auth = phone.cookies.clone();
    let first = phone.get(&front, &back).await;
    assert_eq!(first.location(), "/inbox");
    // The client opens the callback again, still with the pre-auth cookie.
    let mut twin = Browser::new(WECOM_ANDROID);
    twin.cookies = pre_auth;
    let again = twin.get(&front, &back).await;
    assert_eq!((again.status, again.location()), (302, "/inbox"));
    // Or after the first answer replaced its cookies: the session decides.
    let late = phone.get(&front, &back).await;
    assert_eq!((late.status, late.location()), (302, "/"), "{}", late.body);
    assert_eq!(
        sim.calls(Endpoint::GetUserInfo),
        1,
        "the code was spent once"
    );
}

#[tokio::test]
async fn wecom_visitors_are_logged_in_silently_on_protected_paths() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("auto_login", "true"),
            ("auto_signup", "true"),
            ("protected_paths", "/app"),
        ],
    );
    let mut phone = Browser::new(WECOM_ANDROID);
    let done = phone
        .log_in(&front, &sim, "/app/reports?id=7", "zhangsan")
        .await;
    assert_eq!(
        (done.status, done.location()),
        (302, "/app/reports?id=7"),
        "{}",
        done.body
    );
    let page = phone.get(&front, "/app/reports?id=7").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("张三") && page.body.contains("zhangsan"));
    // Bound now: a deep link from a WeCom message, opened in a fresh
    // webview, lands on its page with no page of ours or WeCom's between.
    let consents = sim.consent_pages_shown();
    let link = "/app/reports?id=8&q=a%20b";
    let mut later = Browser::new(WECOM_ANDROID);
    let to_wecom = later.get(&front, link).await;
    assert_eq!(to_wecom.status, 302, "{}", to_wecom.body);
    assert!(to_wecom.location().contains("scope=snsapi_base&"));
    let back = sim.login(to_wecom.location(), "zhangsan").await.unwrap();
    let landed = later.get(&front, &back).await;
    assert_eq!(
        (landed.status, landed.location()),
        (302, link),
        "{}",
        landed.body
    );
    assert_eq!(sim.consent_pages_shown(), consents, "no consent screen");
    assert_eq!(later.get(&front, link).await.status, 200);
    // A desktop browser goes to the login route instead.
    let desktop = Browser::new(CHROME).get(&front, "/app").await;
    assert_eq!(desktop.location(), "/auth/wecom/login?return_to=%2Fapp");
    assert_eq!(
        Browser::new(CHROME).get(&front, "/elsewhere").await.status,
        404
    );
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_answer() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[]);
    let reply = front
        .send(
            "GET",
            "/auth/wecom/verify",
            &[("x-user-id", "admin"), ("x-wecom-userid", "boss")],
            b"",
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("x-user-id").is_none() && reply.header("x-wecom-userid").is_none());
    assert_eq!(reply.json()["error"]["category"], "session-invalid");
}

/// A spreadsheet as admins really have it: full-width digits, the `00`
/// prefix, a float, a text mark. Each row is stored in the one form WeCom's
/// mobile matches; what is no number is refused naming its line and field.
#[tokio::test]
async fn imported_mobiles_in_any_spelling_match_the_members_at_first_login() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("admin_token", ADMIN_TOKEN)]);
    let csv = "name,mobile\n\
               Zhang,１３８ ００００ ００００\n\
               Li,0086 139-0000-0001\n\
               Hong Kong,＋８５２ ９１２３ ４５６７\n\
               Float,13700000002.0\n\
               Broken,1.38E+10\n";
    let result = front.import_csv(csv).await;
    assert_eq!(
        (result["imported"].as_u64(), result["failed"].as_u64()),
        (Some(4), Some(1)),
        "{result}"
    );
    let refused = &result["results"][4];
    assert_eq!(refused["line"], 6);
    let why = refused["error"].to_string();
    assert!(
        why.contains("mobile") && why.contains("scientific"),
        "{why}"
    );
    let users = front.admin_get("/auth/wecom/admin/users").await;
    let mut mobiles: Vec<String> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["mobile"].as_str().unwrap().to_owned())
        .collect();
    mobiles.sort();
    assert_eq!(
        mobiles,
        ["+85291234567", "13700000002", "13800000000", "13900000001"]
    );
    // lisi's first login inside WeCom finds the row imported as `0086 139-…`.
    let done = Browser::new(WECOM_ANDROID)
        .log_in(&front, &sim, "/auth/wecom/login", "lisi")
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    let users = front.admin_get("/auth/wecom/admin/users").await;
    let li = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["mobile"] == "13900000001")
        .unwrap();
    assert_eq!(li["bindings"][0]["wecom_userid"], "lisi", "{li}");
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        4,
        "no one signed up"
    );
}

#[tokio::test]
async fn admins_import_csv_through_the_component() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("admin_token", ADMIN_TOKEN)]);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let csv = "name,mobile,email\n\"Li, Si\",139 0000 0001,lisi@example.com\nbad,12,\n";
    let result = front.import_csv(csv).await;
    assert_eq!(
        (result["imported"].as_u64(), result["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(result["results"][1]["line"], 3);
    let wrong = front
        .send(
            "GET",
            "/auth/wecom/admin/users",
            &[("authorization", "Bearer nope")],
            b"",
        )
        .await;
    assert_eq!(wrong.status, 401);
    // The provisioned user is found by mobile at lisi's first in-client login.
    let done = Browser::new(WECOM_ANDROID)
        .log_in(&front, &sim, "/auth/wecom/login", "lisi")
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    let users = front.admin_get("/auth/wecom/admin/users").await;
    assert_eq!(users["users"][0]["name"], "李四", "refreshed from WeCom");
    assert_eq!(users["users"][0]["bindings"][0]["wecom_userid"], "lisi");
    // More than 1 MiB is refused.
    let huge = vec![b'a'; (1 << 20) + 1];
    let too_big = front
        .send(
            "POST",
            "/auth/wecom/admin/users/import",
            &[("authorization", &auth), ("content-type", "text/csv")],
            &huge,
        )
        .await;
    assert_eq!(too_big.status, 413);
}

#[tokio::test]
async fn a_configuration_problem_names_the_variable_on_every_route() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("origin", "https://apps.example.com/"),
            ("auto_login", "maybe"),
        ],
    );
    for target in ["/", "/auth/wecom/login", "/auth/wecom/verify"] {
        let reply = front
            .send("GET", target, &[("accept", "application/json")], b"")
            .await;
        assert_eq!(reply.status, 500, "{target}");
        let problems = reply.json()["error"]["problems"].clone();
        let variables: Vec<&str> = problems
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["variable"].as_str().unwrap())
            .collect();
        assert_eq!(variables, ["auto_login", "origin"], "{target}");
    }
    assert!(front.log().contains("origin"));
}

/// A proxy that puts the browser's path into `return_to` unencoded sends
/// `%20` and UTF-8 escapes that the query decoding turns into a blank and
/// non-ASCII: the member still lands on that page. A return path naming the
/// component's own routes lands on `redirect_path` instead (logout would log
/// the member straight out again).
#[tokio::test]
async fn return_paths_survive_unencoded_and_never_land_on_our_own_routes() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true"), ("redirect_path", "/home")]);
    for (return_to, lands_on) in [
        ("/docs/Q3%20report.pdf", "/docs/Q3%20report.pdf"),
        (
            "/%E6%96%87%E6%A1%A3/Q3%20%E6%8A%A5%E5%91%8A",
            "/%E6%96%87%E6%A1%A3/Q3%20%E6%8A%A5%E5%91%8A",
        ),
        ("/auth/wecom/logout", "/home"),
        ("/auth/wecom/logout/", "/home"),
        ("/auth/wecom/callback%3Fcode%3Dx", "/home"),
        ("/auth/wecom/admin/users", "/home"),
        ("//evil.example", "/home"),
    ] {
        let mut phone = Browser::new(WECOM_ANDROID);
        let target = format!("/auth/wecom/login?return_to={return_to}");
        let done = phone.log_in(&front, &sim, &target, "zhangsan").await;
        assert_eq!(
            (done.status, done.location()),
            (302, lands_on),
            "{return_to}"
        );
        let me = phone.get(&front, "/auth/wecom/me").await;
        assert_eq!(me.status, 200, "{return_to}: still logged in");
    }
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_route() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    for (path, status) in [
        ("/auth/wecom/verify/", 401),
        ("/auth/wecom/me/", 401),
        ("/auth/wecom/", 200),
    ] {
        assert_eq!(phone.get(&front, path).await.status, status, "{path}");
    }
    let done = phone
        .log_in(&front, &sim, "/auth/wecom/login/?return_to=/a", "zhangsan")
        .await;
    assert_eq!((done.status, done.location()), (302, "/a"));
    for path in ["/auth/wecom/verify/", "/auth/wecom/me/", "/auth/wecom/me"] {
        assert_eq!(phone.get(&front, path).await.status, 200, "{path}");
    }
    let out = phone.request(&front, "POST", "/auth/wecom/logout/").await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(phone.get(&front, "/auth/wecom/me/").await.status, 401);
}

/// A second tab, the back button, or the WeCom client opening the app twice
/// starts another login in the same browser: every one of the latest four
/// still finishes (each once, each landing on its own page); a fifth pushes
/// the oldest out.
#[tokio::test]
async fn logins_started_in_parallel_in_one_browser_each_finish() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    // Bound first: each login below is silent, one callback.
    let mut earlier = Browser::new(WECOM_ANDROID);
    let bound = earlier
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(bound.status, 302, "{}", bound.body);
    let mut phone = Browser::new(WECOM_ANDROID);
    let mut started = Vec::new();
    for tab in 1..=5 {
        let start = phone
            .get(&front, &format!("/auth/wecom/login?return_to=/tab{tab}"))
            .await;
        assert_eq!(start.status, 302, "{}", start.body);
        started.push(start.location().to_owned());
    }
    let cookie = &phone.cookies["wecom_auth_login"];
    assert!(
        cookie.len() < 3600,
        "the pre-auth cookie stays small: {}",
        cookie.len()
    );
    // Finished in another order than started; the first was pushed out.
    for tab in [2, 5, 3, 4] {
        let back = sim.login(&started[tab - 1], "zhangsan").await.unwrap();
        let done = phone.get(&front, &back).await;
        assert_eq!(
            (done.status, done.location()),
            (302, format!("/tab{tab}").as_str()),
            "{}",
            done.body
        );
        // Single use: the same callback again (its entry gone from the
        // cookie) logs nobody in again and exchanges no code; the browser,
        // already signed in, lands on the default page.
        let exchanged = sim.calls(Endpoint::GetUserInfo);
        let again = phone.get(&front, &back).await;
        assert_eq!(
            (again.status, again.location()),
            (302, "/"),
            "{}",
            again.body
        );
        assert_eq!(sim.calls(Endpoint::GetUserInfo), exchanged, "tab {tab}");
        assert!(
            !again
                .headers
                .iter()
                .any(|(n, v)| n == "set-cookie" && v.starts_with("wecom_auth_session=")),
            "tab {tab}: no new session"
        );
    }
    assert!(
        !phone.cookies.contains_key("wecom_auth_login"),
        "cleared once no login is left in flight"
    );
    let mut fresh = Browser::new(WECOM_ANDROID);
    fresh.cookies = phone.cookies.clone();
    fresh.cookies.remove("wecom_auth_session");
    let back = sim.login(&started[0], "zhangsan").await.unwrap();
    let pushed_out = fresh.get(&front, &back).await;
    assert_eq!(pushed_out.status, 302, "restarted silently inside WeCom");
    assert!(pushed_out.location().starts_with(&sim.base_url()));
    let mut desktop = Browser::new(CHROME);
    let refused = desktop.get(&front, &back).await;
    assert_eq!(refused.status, 401, "outside WeCom: {}", refused.body);
}

/// Some WeCom webviews drop the pre-auth cookie: inside the WeCom client the
/// in-client login starts again at once, silently, with every check; a
/// second loss shows the error (never a loop). A desktop browser gets the
/// error page at once.
#[tokio::test]
async fn a_pre_auth_cookie_lost_in_the_wecom_webview_restarts_the_login_once() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    let start = phone.get(&front, "/auth/wecom/login?return_to=/x").await;
    phone.cookies.clear();
    let back = sim.login(start.location(), "zhangsan").await.unwrap();
    let restart = phone.get(&front, &back).await;
    assert_eq!(restart.status, 302, "{}", restart.body);
    assert!(
        restart.location().contains("scope=snsapi_base&"),
        "{}",
        restart.location()
    );
    assert!(phone.cookies.contains_key("wecom_auth_login"));
    assert!(!phone.cookies.contains_key("wecom_auth_session"));
    // Lost again: the restarted login is not restarted a second time.
    let mut lossy = Browser::new(WECOM_ANDROID);
    let back_again = sim.login(restart.location(), "zhangsan").await.unwrap();
    let refused = lossy.get(&front, &back_again).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    // Kept this time: the restarted login finishes on the default page.
    let back_kept = sim.login(restart.location(), "zhangsan").await.unwrap();
    let done = phone
        .back_from_wecom(&front, &sim, &back_kept, "zhangsan")
        .await;
    assert_eq!((done.status, done.location()), (302, "/"), "{}", done.body);
    // A desktop browser is not in the WeCom client: the error, no restart.
    let mut desktop = Browser::new(CHROME);
    let start = desktop
        .get(&front, "/auth/wecom/login?flow=in-client")
        .await;
    desktop.cookies.clear();
    let back = sim.login(start.location(), "zhangsan").await.unwrap();
    assert_eq!(desktop.get(&front, &back).await.status, 401);
}

/// Identity headers carry any name and email: emoji, non-ASCII, `+`, blanks,
/// `%`. Decoded with a standard URL decoder (RFC 3986 percent-decoding, and
/// form decoding, which reads `+` as a blank), each gives the value back.
#[tokio::test]
async fn identity_headers_decode_with_a_standard_url_decoder() {
    let mut model = Model::sample();
    let zhangsan = model.corps[0]
        .members
        .iter_mut()
        .find(|m| m.userid == "zhangsan")
        .unwrap();
    zhangsan.name = "Zoë 张三 😀 100% + more".into();
    zhangsan.biz_mail = Some("zoe+work@example.com".into());
    let sim = Simulator::start(model).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    let done = phone
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    let verified = phone.get(&front, "/auth/wecom/verify").await;
    assert_eq!(verified.status, 200);
    for (header, expected) in [
        ("x-user-name", "Zoë 张三 😀 100% + more"),
        ("x-user-email", "zoe+work@example.com"),
        ("x-wecom-userid", "zhangsan"),
    ] {
        let raw = verified.header(header).unwrap();
        assert!(raw.is_ascii(), "{header}: {raw}");
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, expected, "{header}: {raw}");
        let form: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(form, expected, "{header} (form decoding): {raw}");
    }
}

/// Nginx passes the original request in `X-Original-URI` (a header keeps
/// `&` and `%` as they are, where a query parameter loses all but the first
/// parameter); a 401 from `/verify` names the login that returns there.
#[tokio::test]
async fn verify_names_the_login_that_returns_to_the_original_request_intact() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let original = "/docs/Q3%20report.pdf?a=1&b=%2F2&c=%E6%96%87";
    for header in ["x-original-uri", "x-forwarded-uri"] {
        let refused = front
            .send("GET", "/auth/wecom/verify", &[(header, original)], b"")
            .await;
        assert_eq!(refused.status, 401);
        let login = refused.header("x-wecom-login").unwrap().to_owned();
        let mut phone = Browser::new(WECOM_ANDROID);
        let done = phone.log_in(&front, &sim, &login, "zhangsan").await;
        assert_eq!((done.status, done.location()), (302, original), "{header}");
    }
}

/// Logout ends the user's sessions; logging in again at once (within the
/// same second, on any instance) gives a session that counts.
#[tokio::test]
async fn logging_in_again_right_after_logout_gives_a_live_session() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut phone = Browser::new(WECOM_ANDROID);
    phone
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    let old = phone.cookies["wecom_auth_session"].clone();
    for round in 0..3 {
        let out = phone.request(&front, "POST", "/auth/wecom/logout").await;
        assert_eq!(out.status, 303, "{}", out.body);
        assert_eq!(phone.get(&front, "/auth/wecom/me").await.status, 401);
        let done = phone
            .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
            .await;
        assert_eq!(done.status, 302, "{}", done.body);
        let me = phone.get(&front, "/auth/wecom/me").await;
        assert_eq!(me.status, 200, "round {round}: {}", me.body);
    }
    // A copy of a session ended by logout stays ended.
    let mut thief = Browser::new(CHROME);
    thief.cookies.insert("wecom_auth_session".into(), old);
    assert_eq!(thief.get(&front, "/auth/wecom/me").await.status, 401);
}

/// WeCom compares userids ignoring case: a member bound as `ZhangSan` whose
/// later QR login says `zhangsan` is the same member, and an admin may unbind
/// with any spelling.
#[tokio::test]
async fn a_userid_in_another_case_is_the_same_member() {
    let spelled = |userid: &str| {
        let mut model = Model::sample();
        for member in &mut model.corps[0].members {
            if member.userid == "zhangsan" {
                member.userid = userid.into();
            }
        }
        model
    };
    let sim = Simulator::start(spelled("ZhangSan")).await.unwrap();
    let front = Front::new(&sim, &[("admin_token", ADMIN_TOKEN)]);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let provisioned = front
        .send(
            "POST",
            "/auth/wecom/admin/users",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"id":"alice","name":"Alice","mobile":"13800000000"}"#,
        )
        .await;
    assert_eq!(provisioned.status, 200, "{}", provisioned.body);
    let mut phone = Browser::new(WECOM_ANDROID);
    let bound = phone
        .log_in(&front, &sim, "/auth/wecom/login", "ZhangSan")
        .await;
    assert_eq!(bound.status, 302, "{}", bound.body);
    // Later WeCom spells the member in lowercase: a QR login (which never
    // carries a mobile) finds the binding.
    let sim_lower = Simulator::start(spelled("zhangsan")).await.unwrap();
    let mut front_lower = Front::new(&sim_lower, &[("admin_token", ADMIN_TOKEN)]);
    front_lower.kv = front.kv.clone();
    let mut desktop = Browser::new(CHROME);
    let qr = desktop
        .log_in(&front_lower, &sim_lower, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(qr.status, 302, "{}", qr.body);
    let me = desktop.get(&front_lower, "/auth/wecom/me").await.json();
    assert_eq!(me["user"]["id"], "alice", "{me}");
    assert_eq!(me["user"]["bindings"][0]["wecom_userid"], "ZhangSan");
    let unbound = front_lower
        .send(
            "DELETE",
            "/auth/wecom/admin/bindings/wecom/ZHANGSAN",
            &[("authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(unbound.status, 200, "{}", unbound.body);
    let alice = front_lower.admin_get("/auth/wecom/admin/users/alice").await;
    assert_eq!(alice["bindings"], serde_json::json!([]), "{alice}");
}

/// Envoy, Istio and Gateway API `ExternalAuth` append the original path to
/// the auth service's path: `/verify/<original path>` is forward auth too.
#[tokio::test]
async fn verify_answers_in_path_prefix_mode_as_envoy_asks() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let refused = front
        .send("GET", "/auth/wecom/verify/app/report?id=7", &[], b"")
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let login = refused.header("x-wecom-login").unwrap().to_owned();
    let mut phone = Browser::new(WECOM_ANDROID);
    let done = phone.log_in(&front, &sim, &login, "zhangsan").await;
    assert_eq!((done.status, done.location()), (302, "/app/report?id=7"));
    for (method, target) in [
        ("GET", "/auth/wecom/verify/app/report?id=7"),
        ("POST", "/auth/wecom/verify/api/orders"),
        ("DELETE", "/auth/wecom/verify/"),
    ] {
        let granted = phone.request(&front, method, target).await;
        assert_eq!(granted.status, 200, "{method} {target}: {}", granted.body);
        assert_eq!(granted.header("x-wecom-userid"), Some("zhangsan"));
    }
}

/// A script (fetch/XHR) cannot follow a redirect to a login page: it gets
/// the bare 401 even from `/verify?redirect=1`; a page navigation gets the
/// 302.
#[tokio::test]
async fn scripts_get_401_and_page_navigations_a_redirect() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[]);
    let target = "/auth/wecom/verify?redirect=1";
    for script in [
        vec![("accept", "application/json")],
        vec![("x-requested-with", "XMLHttpRequest")],
        vec![("sec-fetch-mode", "cors"), ("accept", "*/*")],
    ] {
        let mut headers = script.clone();
        headers.push(("x-forwarded-uri", "/api/data?x=1"));
        let reply = front.send("GET", target, &headers, b"").await;
        assert_eq!(reply.status, 401, "{script:?}: {}", reply.body);
        assert_eq!(
            reply.header("x-wecom-login"),
            None,
            "no page to send a script to"
        );
    }
    let page = front
        .send(
            "GET",
            target,
            &[
                ("sec-fetch-mode", "navigate"),
                ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
                ("x-forwarded-uri", "/reports?q=1"),
            ],
            b"",
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (302, "/auth/wecom/login?return_to=%2Freports%3Fq%3D1")
    );
}

/// Every standard way a proxy tells the original request brings the member
/// back to exactly that page, under whatever prefix the proxy stripped.
#[tokio::test]
async fn the_original_request_comes_from_every_forwarded_header() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    for (headers, back) in [
        (vec![("x-forwarded-uri", "/a?b=1&c=2")], "/a?b=1&c=2"),
        (vec![("x-original-uri", "/n?x=%2F")], "/n?x=%2F"),
        (
            vec![("x-original-url", "https://apps.example.com/i/j?k=1")],
            "/i/j?k=1",
        ),
        (vec![("x-envoy-original-path", "/e?f=1")], "/e?f=1"),
        (
            vec![
                ("x-forwarded-prefix", "/crm"),
                ("x-forwarded-uri", "/deals?id=3"),
            ],
            "/crm/deals?id=3",
        ),
    ] {
        let refused = front.send("GET", "/auth/wecom/verify", &headers, b"").await;
        assert_eq!(refused.status, 401);
        let login = refused.header("x-wecom-login").unwrap().to_owned();
        let mut phone = Browser::new(WECOM_ANDROID);
        let done = phone.log_in(&front, &sim, &login, "zhangsan").await;
        assert_eq!((done.status, done.location()), (302, back), "{headers:?}");
    }
}

/// `identity_headers` adds the conventions users' proxy configs expect.
#[tokio::test]
async fn identity_headers_come_in_the_conventions_asked_for() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("identity_headers", "wecom, oauth2-proxy, remote"),
        ],
    );
    let mut phone = Browser::new(WECOM_ANDROID);
    phone
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    let granted = phone.get(&front, "/auth/wecom/verify").await;
    let id = granted.header("x-user-id").unwrap().to_owned();
    for (header, value) in [
        ("x-wecom-userid", "zhangsan"),
        ("x-auth-request-user", id.as_str()),
        ("x-auth-request-preferred-username", "zhangsan"),
        ("x-auth-request-email", "zhangsan@example.wecom.work"),
        ("remote-user", id.as_str()),
        ("remote-name", "%E5%BC%A0%E4%B8%89"),
        ("remote-email", "zhangsan@example.wecom.work"),
    ] {
        assert_eq!(granted.header(header), Some(value), "{header}");
    }
    let only = Front::new(
        &sim,
        &[("auto_signup", "true"), ("identity_headers", "remote")],
    );
    let mut other = Browser::new(WECOM_ANDROID);
    other.log_in(&only, &sim, "/auth/wecom/login", "lisi").await;
    let remote_only = other.get(&only, "/auth/wecom/verify").await;
    assert!(remote_only.header("remote-user").is_some());
    assert_eq!(remote_only.header("x-wecom-userid"), None);
    let bad = Front::new(&sim, &[("identity_headers", "wecom,nginx")]);
    let refused = bad.send("GET", "/auth/wecom/verify", &[], b"").await;
    assert_eq!(refused.status, 500);
    assert!(
        refused.body.contains("identity_headers"),
        "{}",
        refused.body
    );
}

/// Sliding sessions: a session in use is renewed (a fresh cookie from
/// `/verify`, `/me` and the site pages) once it is older than the refresh
/// age, never past the absolute maximum after the login.
#[tokio::test]
async fn a_session_in_use_is_renewed_but_never_past_the_maximum() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("session_refresh_seconds", "1"),
            // The 8 h lifetime plus a minute: renewals may add a minute at most.
            ("session_max_seconds", "28860"),
        ],
    );
    let mut phone = Browser::new(WECOM_ANDROID);
    phone
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    let fresh = phone.get(&front, "/auth/wecom/verify").await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("set-cookie"), None, "not due yet");
    let old = phone.cookies["wecom_auth_session"].clone();
    for route in ["/auth/wecom/verify", "/auth/wecom/me"] {
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let used = phone.get(&front, route).await;
        assert_eq!(used.status, 200, "{route}");
        let cookie = used.header("set-cookie").unwrap_or_default().to_owned();
        assert!(
            cookie.starts_with("wecom_auth_session="),
            "{route}: {cookie}"
        );
        let max_age: u64 = cookie
            .split("Max-Age=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age <= 8 * 3600, "{cookie}");
    }
    assert_ne!(phone.cookies["wecom_auth_session"], old, "renewed");
    assert_eq!(phone.get(&front, "/auth/wecom/me").await.status, 200);
    let token = phone.cookies["wecom_auth_session"].clone();
    let payload = token.split('.').nth(2).unwrap();
    let claims: Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
    // Renewed: issued later than the login, expiring no later than the
    // login plus the maximum.
    assert!(claims["iat"].as_u64().unwrap() > claims["auth"].as_u64().unwrap());
    assert!(claims["exp"].as_u64().unwrap() <= claims["auth"].as_u64().unwrap() + 28_860);
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = ALPHABET.iter().position(|&b| b == byte).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// `public_paths` (and methods) pass `/verify` without a session, matched
/// segment-wise after dot segments are resolved; CORS preflights pass only
/// when `allow_preflight` says so.
#[tokio::test]
async fn public_paths_and_preflights_pass_verify_as_configured() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("public_paths", "/health, GET /static/, post /hooks"),
            ("allow_preflight", "true"),
        ],
    );
    let ask =
        |method: &'static str, path: &'static str, extra: Option<(&'static str, &'static str)>| {
            let front = &front;
            async move {
                let mut headers = vec![("x-forwarded-method", method), ("x-forwarded-uri", path)];
                headers.extend(extra);
                front
                    .send("GET", "/auth/wecom/verify", &headers, b"")
                    .await
                    .status
            }
        };
    for (method, path, status) in [
        ("GET", "/health", 200),
        ("DELETE", "/health/deep?x=1", 200),
        ("GET", "/static/app.js", 200),
        ("POST", "/static/app.js", 401),
        ("POST", "/hooks/wecom", 200),
        ("GET", "/hooks/wecom", 401),
        ("GET", "/healthz", 401),
        ("GET", "/static/../admin", 401),
        ("GET", "/static%2F..%2Fadmin", 401),
        ("GET", "/admin", 401),
    ] {
        assert_eq!(ask(method, path, None).await, status, "{method} {path}");
    }
    let preflight = Some(("access-control-request-method", "POST"));
    assert_eq!(ask("OPTIONS", "/api/orders", preflight).await, 200);
    assert_eq!(
        ask("OPTIONS", "/api/orders", None).await,
        401,
        "no preflight"
    );
    let strict = Front::new(&sim, &[]);
    let headers = [
        ("x-forwarded-method", "OPTIONS"),
        ("x-forwarded-uri", "/api/orders"),
        ("access-control-request-method", "POST"),
    ];
    let refused = strict
        .send("GET", "/auth/wecom/verify", &headers, b"")
        .await;
    assert_eq!(refused.status, 401, "preflights need allow_preflight");
    let bad = Front::new(&sim, &[("public_paths", "/ok, /a/../b")]);
    let problem = bad.send("GET", "/auth/wecom/verify", &[], b"").await;
    assert_eq!(problem.status, 500);
    assert!(problem.body.contains("public_paths"), "{}", problem.body);
}

/// With `session_cookie_domain` shared, a login started on a sibling app
/// (the proxy's `X-Forwarded-Host`) returns there, if the host is on the
/// `return_hosts` allow-list; any other host lands on the app's own page.
#[tokio::test]
async fn a_login_from_a_sibling_app_returns_there_only_when_allowed() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("session_cookie_domain", "example.com"),
            ("return_hosts", "crm.example.com, *.tools.example.com"),
        ],
    );
    for (host, lands) in [
        ("crm.example.com", "https://crm.example.com/deals?id=3"),
        (
            "wiki.tools.example.com",
            "https://wiki.tools.example.com/deals?id=3",
        ),
        ("evil.com", "/"),
        ("crm.example.com.evil.com", "/"),
    ] {
        let refused = front
            .send(
                "GET",
                "/auth/wecom/verify",
                &[
                    ("x-forwarded-host", host),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-uri", "/deals?id=3"),
                ],
                b"",
            )
            .await;
        assert_eq!(refused.status, 401);
        let login = refused.header("x-wecom-login").unwrap().to_owned();
        let mut phone = Browser::new(WECOM_ANDROID);
        let done = phone.log_in(&front, &sim, &login, "zhangsan").await;
        assert_eq!((done.status, done.location()), (302, lands), "{host}");
        let cookie = done
            .headers
            .iter()
            .find(|(n, v)| n == "set-cookie" && v.starts_with("wecom_auth_session="))
            .unwrap();
        assert!(cookie.1.contains("Domain=example.com"), "{}", cookie.1);
    }
    // Asked directly, an absolute return_to obeys the same list.
    let mut phone = Browser::new(WECOM_ANDROID);
    let done = phone
        .log_in(
            &front,
            &sim,
            "/auth/wecom/login?return_to=https%3A%2F%2Fevil.com%2F",
            "zhangsan",
        )
        .await;
    assert_eq!(done.location(), "/");
}

/// Probes: `/ping` answers whenever the component runs (even with broken
/// settings); `/ready` only when the settings parse and the store answers.
/// Neither needs a session or shows a setting.
#[tokio::test]
async fn ping_and_ready_tell_an_orchestrator_what_it_needs() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[]);
    let ping = front.send("GET", "/auth/wecom/ping", &[], b"").await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "ok\n"));
    let ready = front.send("GET", "/auth/wecom/ready", &[], b"").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ready");
    // The store stops answering, then comes back.
    front.kv.faults().fail_op(host_drafts::keyvalue::Op::Get, 1);
    let down = front.send("GET", "/auth/wecom/ready/", &[], b"").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["reason"], "the key-value store does not answer");
    assert_eq!(
        front
            .send("GET", "/auth/wecom/ready", &[], b"")
            .await
            .status,
        200
    );
    // Broken settings: alive, not ready, and nothing of the settings shown.
    let broken = Front::new(&sim, &[("corp_id", ""), ("secret", "")]);
    assert_eq!(
        broken
            .send("GET", "/auth/wecom/ping", &[], b"")
            .await
            .status,
        200
    );
    let not_ready = broken.send("GET", "/auth/wecom/ready", &[], b"").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.json()["reason"], "the settings have problems");
    assert!(!not_ready.body.contains("corp_id"), "{}", not_ready.body);
    assert!(!not_ready.body.contains("DO-NOT-LEAK"));
}

/// The audit trail: one JSON line per login started, finished or refused,
/// logout, admin change and `/verify` refusal, on stderr.
#[tokio::test]
async fn every_login_logout_refusal_and_admin_change_leaves_one_audit_line() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[("auto_signup", "true"), ("admin_token", ADMIN_TOKEN)],
    );
    let mut phone = Browser::new(WECOM_ANDROID);
    phone
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    let mut stranger = Browser::new(WECOM_ANDROID);
    stranger
        .log_in(&front, &sim, "/auth/wecom/login", "outsider")
        .await;
    assert_eq!(
        front
            .send("GET", "/auth/wecom/verify", &[], b"")
            .await
            .status,
        401
    );
    phone.request(&front, "POST", "/auth/wecom/logout").await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    front
        .send(
            "DELETE",
            "/auth/wecom/admin/users/nobody",
            &[("authorization", &auth)],
            b"",
        )
        .await;
    front
        .send(
            "POST",
            "/auth/wecom/admin/users",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"id":"carol","name":"Carol"}"#,
        )
        .await;
    let events: Vec<Value> = front
        .log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |event: &str, outcome: &str| {
        events
            .iter()
            .find(|e| e["event"] == event && e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {event}/{outcome} in {events:#?}"))
    };
    let started = find("login-started", "ok");
    assert_eq!(started["detail"], "in-client");
    assert_eq!(started["client"], "wecom-mobile");
    let finished = find("login-finished", "created");
    assert_eq!(finished["wecom_userid"], "zhangsan");
    // The consent round: `auth/getuserinfo`, `getuserdetail`, `user/get` (the
    // silent round before it fetched the token and `auth/getuserinfo`).
    assert_eq!(finished["wecom_calls"], 3);
    assert!(finished["user_id"].as_str().unwrap().starts_with("wc-"));
    let refused = find("login-refused", "refused");
    assert_eq!(refused["category"], "access-denied");
    assert_eq!(
        find("verify-refused", "refused")["category"],
        "session-invalid"
    );
    assert_eq!(find("logout", "ok")["wecom_userid"], "zhangsan");
    assert_eq!(find("admin", "refused")["detail"], "delete-user");
    assert_eq!(find("admin", "ok")["detail"], "upsert-user");
    for event in &events {
        assert_eq!(event["request_id"].as_str().unwrap().len(), 16);
        assert!(event["ts"].as_u64().unwrap() > 1_700_000_000);
        assert!(event["duration_ms"].is_u64(), "{event}");
    }
}

/// `GET {prefix}/admin/setup` with the admin token.
async fn setup(front: &Front) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    // The client address, as Spin and the gateway pass it: its absence is
    // a failed guard of its own.
    let headers = [
        ("authorization", auth.as_str()),
        ("spin-client-addr", "127.0.0.1"),
    ];
    front
        .send("GET", "/auth/wecom/admin/setup", &headers, b"")
        .await
}

/// The admin's setup check: what the console must hold, and a live
/// `gettoken` with the configured corp id and Secret, naming the setting to
/// fix in English and Chinese, never showing the Secret.
#[tokio::test]
async fn the_setup_check_names_the_console_setting_to_fix() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let good = Front::new(&sim, &[("admin_token", ADMIN_TOKEN)]);
    let fine = setup(&good).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    let report = fine.json();
    assert_eq!(report["ok"], true);
    let console = &report["authenticators"][0]["console"];
    assert_eq!(console["trusted_domain"], "apps.example.com");
    assert!(
        console["callback_url"]
            .as_str()
            .unwrap()
            .ends_with("/auth/wecom/callback")
    );
    for (extra, errcode, en, zh) in [
        (
            ("secret", "wrong-secret-value-0123456789"),
            40001,
            "Secret",
            "Secret 错误",
        ),
        (
            ("corp_id", "wwffffffffffffffff"),
            40013,
            "corp-id",
            "企业ID",
        ),
    ] {
        let front = Front::new(&sim, &[("admin_token", ADMIN_TOKEN), extra]);
        let bad = setup(&front).await;
        assert_eq!(bad.status, 503, "{}", bad.body);
        let check = &bad.json()["authenticators"][0]["checks"][0];
        assert_eq!(check["errcode"], errcode, "{check}");
        assert!(check["hint_en"].as_str().unwrap().contains(en), "{check}");
        assert!(check["hint_zh"].as_str().unwrap().contains(zh), "{check}");
        assert!(
            !bad.body.contains("wrong-secret-value"),
            "the Secret is never shown"
        );
    }
    sim.update_model(|model| {
        model.corps[0].agents[0].trusted_ips = Some(vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
    });
    let untrusted = setup(&good).await;
    let check = &untrusted.json()["authenticators"][0]["checks"][0];
    assert_eq!(check["errcode"], 60020);
    assert!(
        check["hint_zh"]
            .as_str()
            .unwrap()
            .contains("企业可信IP 中加入本服务器的出口IP 127.0.0.1"),
        "{check}"
    );
    assert!(
        check["hint_en"].as_str().unwrap().contains("127.0.0.1"),
        "{check}"
    );
    let anonymous = good.send("GET", "/auth/wecom/admin/setup", &[], b"").await;
    assert_eq!(anonymous.status, 401, "behind the admin token");
}

/// Limits on login requests: past a client address's limit, 429 with
/// `Retry-After` (audited) while other addresses get in, and in again once
/// the minute is over; the authenticator's limit bounds callbacks from every
/// address together.
#[tokio::test]
async fn login_requests_over_a_limit_get_429_until_the_minute_is_over() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("rate_limit_per_client", "3"),
            ("rate_limit_per_authenticator", "4"),
            ("auto_signup", "true"),
        ],
    );
    let login = |address: &'static str| {
        let front = &front;
        async move {
            let headers = [("spin-client-addr", address), ("accept-language", "zh-CN")];
            front.send("GET", "/auth/wecom/login", &headers, b"").await
        }
    };
    for _ in 0..3 {
        assert_eq!(login("203.0.113.7:40000").await.status, 302);
    }
    // Another port of the same address is the same client.
    let refused = login("203.0.113.7:40001").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        refused.body.contains("登录尝试过于频繁"),
        "{}",
        refused.body
    );
    let line = front
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "rate-limited")
        .expect("an audit line");
    assert_eq!(line["detail"], "per-client limit");
    assert_eq!(line["client_address"], "203.0.113.7");
    // A client's own `spin-client-addr` comes first; the host appends the
    // peer's, and the last one counts.
    let forged = [
        ("spin-client-addr", "198.18.0.1"),
        ("spin-client-addr", "203.0.113.7:40002"),
    ];
    let reply = front.send("GET", "/auth/wecom/login", &forged, b"").await;
    assert_eq!(
        reply.status, 429,
        "a forged address does not escape the limit"
    );
    assert_eq!(login("203.0.113.8:40000").await.status, 302);
    // zhangsan bound (one login with the consent round), still in this
    // minute: the logins counted below are silent, one callback each.
    let mut earlier = Browser::new(WECOM_ANDROID);
    earlier.address = Some("192.0.2.200:5000".into());
    let bound = earlier
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(bound.status, 302, "{}", bound.body);
    // The next minute.
    front
        .clock
        .advance(std::time::Duration::from_secs(retry_after));
    let again = login("203.0.113.7:40000").await;
    assert_eq!(again.status, 302, "{}", again.body);

    // Forged callbacks (a state without its browser's cookie) spend no
    // authenticator budget; callbacks of real logins, each from its own
    // address, do: the fifth is refused before WeCom is called.
    let state = again
        .location()
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let forged_callback = format!("/auth/wecom/callback?code=CODE&state={state}");
    for n in 0..6 {
        let address = format!("198.51.100.{n}:5000");
        let headers = [("spin-client-addr", address.as_str())];
        let reply = front.send("GET", &forged_callback, &headers, b"").await;
        assert_ne!(reply.status, 429, "{}", reply.body);
    }
    let calls_before = front.hooks.log.requests().len();
    for n in 0..5 {
        let mut browser = Browser::new(WECOM_ANDROID);
        browser.address = Some(format!("192.0.2.{n}:5000"));
        let reply = browser
            .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
            .await;
        if n < 4 {
            assert_eq!(reply.status, 302, "{}", reply.body);
        } else {
            assert_eq!(reply.status, 429, "{}", reply.body);
        }
    }
    // Each of the four let through: `auth/getuserinfo`, then the profile
    // refresh's `user/get` (silent logins give no ticket for
    // `getuserdetail`); the token is cached.
    assert_eq!(front.hooks.log.requests().len() - calls_before, 4 * 2);
    // A client address header that is not an address counts nobody.
    for _ in 0..5 {
        let headers = [("spin-client-addr", "unknown")];
        let reply = front.send("GET", "/auth/wecom/login", &headers, b"").await;
        assert_eq!(reply.status, 302);
    }
}

/// The setup check reads the app back from WeCom (`agent/get`): an agent id
/// of no app (40056) or of another app than the Secret's (301002), and a
/// trusted domain that is not the origin's host, each named with the value
/// to enter.
#[tokio::test]
async fn the_setup_check_compares_the_app_wecom_holds_with_the_settings() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let good = Front::new(&sim, &[("admin_token", ADMIN_TOKEN)]);
    let fine = setup(&good).await.json();
    let names: Vec<&str> = fine["authenticators"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gettoken", "agent", "trusted-domain"]);
    assert_eq!(fine["ok"], true, "{fine}");
    // The guards (`core/warnings.rs`) hold in the harness: a strict store,
    // the client address given, the simulator's clock this host's,
    // wasmtime-wasi-http taking the calls' timeouts.
    let guards: Vec<(&str, bool)> = fine["guards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["ok"] == true))
        .collect();
    assert_eq!(
        guards,
        [
            ("compare-and-swap", true),
            ("client-address-header", true),
            ("clock", true),
            ("api-timeout", true)
        ]
    );

    sim.update_model(|model| {
        let mut other = model.corps[0].agents[0].clone();
        other.agent_id = 1000099;
        other.secret = "another-apps-secret".into();
        model.corps[0].agents.push(other);
    });
    for (agent_id, errcode, zh) in [
        ("1000099", 301002, "同一个应用"),
        ("1000777", 40056, "AgentId 错误"),
    ] {
        let front = Front::new(
            &sim,
            &[("admin_token", ADMIN_TOKEN), ("agent_id", agent_id)],
        );
        let bad = setup(&front).await;
        assert_eq!(bad.status, 503, "{}", bad.body);
        let check = &bad.json()["authenticators"][0]["checks"][1];
        assert_eq!(check["check"], "agent");
        assert_eq!(check["errcode"], errcode, "{check}");
        assert!(check["hint_zh"].as_str().unwrap().contains(zh), "{check}");
        assert!(
            check["hint_en"].as_str().unwrap().contains("agent-id"),
            "{check}"
        );
    }

    sim.update_model(|model| {
        model.corps[0].agents[0].trusted_domain = "old.example.com".into();
    });
    let moved = setup(&good).await;
    assert_eq!(moved.status, 503);
    let check = &moved.json()["authenticators"][0]["checks"][2];
    assert_eq!(check["check"], "trusted-domain");
    assert_eq!(check["ok"], false);
    let en = check["hint_en"].as_str().unwrap();
    assert!(
        en.contains("old.example.com") && en.contains("apps.example.com"),
        "{en}"
    );
    assert!(
        check["hint_zh"]
            .as_str()
            .unwrap()
            .contains("可信域名当前为 old.example.com")
    );
}

/// Keys that only live for a while (used states, finished-login markers,
/// rate counters) do not pile up on a store without expiry: over simulated
/// days of logins, each from its own address, the store holds the users and
/// a bounded set of short-lived keys: no more after 10 000 logins than after
/// the first 2 000.
#[tokio::test]
async fn the_store_stays_bounded_over_ten_thousand_logins() {
    const ROUND: usize = 2000;
    const ROUNDS: usize = 5;
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    front.checked.borrow_mut().enabled = false;
    let members = ["zhangsan", "lisi", "wangwu"];
    let mut counts = Vec::new();
    let started = std::time::Instant::now();
    for round in 0..ROUNDS {
        for n in 0..ROUND {
            let mut phone = Browser::new(WECOM_ANDROID);
            phone.address = Some(format!("10.{round}.{}.{}:5000", n / 200, n % 200));
            let landed = phone
                .log_in(
                    &front,
                    &sim,
                    "/auth/wecom/login",
                    members[n % members.len()],
                )
                .await;
            assert_eq!(landed.status, 302, "{}", landed.body);
            // A login every 9 s: 10 000 logins are 25 hours.
            front.clock.advance(std::time::Duration::from_secs(9));
        }
        let keys = front.kv.keys("default").await.unwrap();
        counts.push(keys.len());
        if round == ROUNDS - 1 {
            let short_lived = keys
                .iter()
                .filter(|k| k.starts_with("used-state") || k.starts_with("rate"))
                .count();
            eprintln!(
                "store keys after each {ROUND} logins: {counts:?} ({short_lived} short-lived \
                 at the end); {:?}",
                started.elapsed()
            );
        }
    }
    // Live: the last ~17 minutes of states (600 s life, a 300 s window, a
    // 120 s clock margin) at one login per 9 s, two keys each, plus rate
    // counters of the last few minutes.
    // Sweeps run for one request in 16 (by its randomness), so the count
    // wanders (290 to 410 seen); without them it would grow by about 4 000
    // keys a round.
    assert!(counts[ROUNDS - 1] < counts[0] + 300, "{counts:?}");
    assert!(counts[ROUNDS - 1] < 600, "{counts:?}");
}

/// The member with `userid` in the sample company: moved to `departments`.
fn move_member(sim: &SimulatorHandle, userid: &str, departments: &[u32]) {
    sim.update_model(|model| {
        let member = model.corps[0].member_mut(userid).unwrap();
        member.department = departments.to_vec();
    });
}

/// Rules from the settings, at login: allowed by department (and by a
/// sub-department), refused (403, no session) when no allow rule matches,
/// and a deny rule winning over an allow rule, each page naming the class.
#[tokio::test]
async fn access_rules_from_the_settings_decide_at_login() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    // 研发部 (2) and below; wangwu moves to 平台组 (4), under 研发部.
    move_member(&sim, "wangwu", &[4]);
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("allowed_departments", "2"),
            ("admin_token", ADMIN_TOKEN),
        ],
    );
    let mut zhangsan = Browser::new(WECOM_ANDROID);
    let landed = zhangsan
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(landed.status, 302, "in 研发部: {}", landed.body);
    assert_eq!(zhangsan.get(&front, "/auth/wecom/verify").await.status, 200);
    let mut wangwu = Browser::new(WECOM_ANDROID);
    let landed = wangwu
        .log_in(&front, &sim, "/auth/wecom/login", "wangwu")
        .await;
    assert_eq!(landed.status, 302, "in a sub-department: {}", landed.body);
    let mut lisi = Browser::new(WECOM_ANDROID);
    let refused = lisi.log_in(&front, &sim, "/auth/wecom/login", "lisi").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("您不在其中"), "{}", refused.body);
    assert!(!lisi.cookies.contains_key("wecom_auth_session"));
    assert!(!refused.body.contains("zhangsan"), "no other member's data");
    // Refused before anything is written: no user, no binding for lisi.
    let users = front.admin_get("/auth/wecom/admin/users").await;
    let bound: Vec<&Value> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["bindings"].as_array().unwrap())
        .map(|b| &b["wecom_userid"])
        .collect();
    let mut bound = bound;
    bound.sort_by_key(|userid| userid.to_string());
    assert_eq!(bound, ["wangwu", "zhangsan"], "{users}");

    // Deny wins: 研发部 allowed, the tag 运维 (its 平台组) denied.
    let denying = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("allowed_departments", "2"),
            ("denied_tags", "7"),
        ],
    );
    let mut wangwu = Browser::new(WECOM_ANDROID);
    let refused = wangwu
        .log_in(&denying, &sim, "/auth/wecom/login", "wangwu")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("您在企业微信中的标签无权访问"),
        "{}",
        refused.body
    );
    let line = denying
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "access-refused")
        .expect("an audit line");
    assert_eq!(line["detail"], "denied by a tag rule");
    assert_eq!(line["wecom_userid"], "wangwu", "the audit line names who");
}

/// The proxy's own rules at `/verify` (as oauth2-proxy's
/// `allowed_groups`): by user, by exact department, by a tag holding the
/// member, by a tag holding the member's department; 403 naming the class;
/// a malformed list is a 400.
#[tokio::test]
async fn verify_applies_the_rules_a_proxy_asks_for() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    move_member(&sim, "wangwu", &[4]);
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut members = Vec::new();
    for userid in ["zhangsan", "lisi", "wangwu"] {
        let mut phone = Browser::new(WECOM_ANDROID);
        let landed = phone
            .log_in(&front, &sim, "/auth/wecom/login", userid)
            .await;
        assert_eq!(landed.status, 302, "{userid}: {}", landed.body);
        members.push(phone);
    }
    let [zhangsan, lisi, wangwu] = &mut members[..] else {
        unreachable!()
    };
    let verify = |rules: &str| format!("/auth/wecom/verify?{rules}");
    let cases = [
        ("allowed_users=lisi", [403, 200, 403]),
        ("allowed_departments=%3D2", [200, 403, 403]),
        ("allowed_departments=2", [200, 403, 200]),
        ("allowed_tags=7", [403, 200, 200]),
        ("allowed_departments=1&denied_users=lisi", [200, 403, 200]),
    ];
    for (rules, expected) in cases {
        for (browser, status) in [&mut *zhangsan, &mut *lisi, &mut *wangwu]
            .into_iter()
            .zip(expected)
        {
            let reply = browser.get(&front, &verify(rules)).await;
            assert_eq!(reply.status, status, "{rules}: {}", reply.body);
            if status == 403 {
                assert_eq!(reply.json()["error"]["category"], "access-denied");
            }
        }
    }
    let refused = lisi.get(&front, &verify("allowed_users=zhangsan")).await;
    assert_eq!(refused.status, 403);
    let bad = zhangsan
        .get(&front, &verify("allowed_departments=finance"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("departments"), "{}", bad.body);
    // Path-prefix mode (Envoy): the query is the original request's, the
    // client's own, and never a rule.
    let prefixed = zhangsan
        .get(&front, "/auth/wecom/verify/app/report?allowed_users=lisi")
        .await;
    assert_eq!(prefixed.status, 200, "{}", prefixed.body);
    let many: Vec<String> = (1..=33).map(|n| n.to_string()).collect();
    let flood = zhangsan
        .get(
            &front,
            &verify(&format!("allowed_tags={}", many.join("%2C"))),
        )
        .await;
    assert_eq!(flood.status, 400, "no more than 8 tags: {}", flood.body);
    // A mistyped, repeated or blank rule is a 400, never "no rule".
    for query in [
        "allowed_department=3",
        "allowed_tags=7&allowed_tags=8",
        "allowed_users=,",
    ] {
        let reply = zhangsan.get(&front, &verify(query)).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }
    // `/verify/` with a trailing slash is still the proxy's own query.
    let slash = zhangsan
        .get(&front, "/auth/wecom/verify/?allowed_users=lisi")
        .await;
    assert_eq!(slash.status, 403, "{}", slash.body);
}

/// A member moved out of an allowed department loses access once the
/// cached facts are older than `access_facts_max_age_seconds`; when WeCom
/// then refuses the member's data (60011), `/verify` fails closed.
#[tokio::test]
async fn a_member_moved_out_loses_access_after_the_bound_and_refused_facts_fail_closed() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("allowed_departments", "2"),
            ("access_facts_max_age_seconds", "60"),
        ],
    );
    let mut zhangsan = Browser::new(WECOM_ANDROID);
    let landed = zhangsan
        .log_in(&front, &sim, "/auth/wecom/login", "zhangsan")
        .await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    // The login's own user/get calls gave the departments (the silent
    // round's check, then the profile after the consent): one more call
    // (the tree) for the rule, no user/get of its own.
    assert_eq!(sim.calls(Endpoint::UserGet), 2);
    assert_eq!(sim.calls(Endpoint::DepartmentSimpleList), 1);
    let calls = sim.api_calls();
    assert_eq!(zhangsan.get(&front, "/auth/wecom/verify").await.status, 200);
    assert_eq!(sim.api_calls(), calls, "cached facts: no WeCom call");
    move_member(&sim, "zhangsan", &[3]);
    assert_eq!(
        zhangsan.get(&front, "/auth/wecom/verify").await.status,
        200,
        "within the bound the cached facts stand"
    );
    front.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(zhangsan.get(&front, "/auth/wecom/verify").await.status, 403);
    // The app's own pages apply the authenticator's rules too.
    assert_eq!(zhangsan.get(&front, "/auth/wecom/me").await.status, 403);
    assert_eq!(zhangsan.get(&front, "/").await.status, 403);

    // Back in 研发部, but out of the app's range: user/get answers 60011.
    move_member(&sim, "zhangsan", &[2]);
    sim.update_model(|model| model.corps[0].member_mut("zhangsan").unwrap().visible = false);
    front.clock.advance(std::time::Duration::from_secs(61));
    let closed = zhangsan.get(&front, "/auth/wecom/verify").await;
    assert_eq!(closed.status, 403, "{}", closed.body);
    assert_eq!(closed.json()["error"]["errcode"], 60011, "{}", closed.body);
}

/// The groups for the upstream: the departments the member is in or
/// under and the tags holding them, in each header convention and in
/// `/me`; names percent-encoded, commas between entries. Cached: a second
/// `/verify` asks WeCom nothing. Without the setting, no group header.
#[tokio::test]
async fn verify_and_me_tell_the_members_groups() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    move_member(&sim, "wangwu", &[4]);
    let front = Front::new(
        &sim,
        &[
            ("auto_signup", "true"),
            ("groups", "departments,tags"),
            ("identity_headers", "wecom,oauth2-proxy,remote"),
        ],
    );
    let mut wangwu = Browser::new(WECOM_ANDROID);
    let landed = wangwu
        .log_in(&front, &sim, "/auth/wecom/login", "wangwu")
        .await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let granted = wangwu.get(&front, "/auth/wecom/verify").await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    // 平台组 (4) under 研发部 (2) under 示例科技 (1); 运维 (7) holds 4.
    let expected = "dept:4,dept:2,dept:1,tag:7,tag-name:%E8%BF%90%E7%BB%B4";
    for header in ["x-wecom-groups", "x-auth-request-groups", "remote-groups"] {
        assert_eq!(granted.header(header), Some(expected), "{header}");
    }
    let calls = sim.api_calls();
    let me = wangwu.get(&front, "/auth/wecom/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.json()["groups"],
        serde_json::json!(["dept:4", "dept:2", "dept:1", "tag:7", "tag-name:运维"])
    );
    assert_eq!(sim.api_calls(), calls, "cached facts: no WeCom call");
    // Cached, the member's view alone is read: one get more than without
    // groups (below), not the tree and every tag.
    let faults = front.kv.faults();
    faults.reset_counts();
    let granted = wangwu.get(&front, "/auth/wecom/verify").await;
    assert_eq!(granted.status, 200);
    assert_eq!(faults.count(Op::GetMany), 0);
    let gets_with_groups = faults.count(Op::Get);
    // 财务部 (3): no tag.
    sim.update_model(|model| model.corps[0].member_mut("zhaoliu").unwrap().visible = true);
    let mut zhaoliu = Browser::new(WECOM_ANDROID);
    zhaoliu
        .log_in(&front, &sim, "/auth/wecom/login", "zhaoliu")
        .await;
    let granted = zhaoliu.get(&front, "/auth/wecom/verify").await;
    assert_eq!(granted.header("x-wecom-groups"), Some("dept:3,dept:1"));

    // Aged out: the member's departments, the tree and the tag list in
    // flight together (one round trip), then the tag (a second).
    // (A modelled round trip keeps the calls in flight long enough to see.)
    let rtt = std::time::Duration::from_millis(100);
    sim.set_network(wecom_simulator::Network::new(rtt, 0));
    front.clock.advance(std::time::Duration::from_secs(301));
    sim.reset_calls();
    let granted = zhaoliu.get(&front, "/auth/wecom/verify").await;
    assert_eq!(granted.header("x-wecom-groups"), Some("dept:3,dept:1"));
    assert_eq!(
        sim.api_calls(),
        4,
        "user/get, simplelist, tag/list, tag/get"
    );
    assert_eq!(sim.max_concurrent_api_calls(), 3);
    sim.set_network(wecom_simulator::Network::new(std::time::Duration::ZERO, 0));

    let plain = Front::new(&sim, &[("auto_signup", "true")]);
    let mut lisi = Browser::new(WECOM_ANDROID);
    lisi.log_in(&plain, &sim, "/auth/wecom/login", "lisi").await;
    let calls = sim.api_calls();
    plain.kv.faults().reset_counts();
    let granted = lisi.get(&plain, "/auth/wecom/verify").await;
    assert_eq!(granted.status, 200);
    assert_eq!(plain.kv.faults().count(Op::Get) + 1, gets_with_groups);
    assert_eq!(granted.header("x-wecom-groups"), None);
    assert_eq!(sim.api_calls(), calls, "no groups asked: no WeCom call");
}

/// An app whose visible range is one department (财务部, 3) sees a tree
/// whose top has no parent in it: the groups still name what WeCom says
/// (3 and its parent 1), the tree is fetched again at most once a minute
/// (not on every request), and a deny rule on a department outside the
/// range, which could be above the member unseen, fails closed.
#[tokio::test]
async fn a_partial_visible_range_costs_no_call_per_request_and_deny_fails_closed() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    sim.update_model(|model| {
        model.corps[0].agents[0].contact_range = Some(vec![3]);
        model.corps[0].member_mut("zhaoliu").unwrap().visible = true;
    });
    let front = Front::new(&sim, &[("auto_signup", "true"), ("groups", "departments")]);
    let mut zhaoliu = Browser::new(WECOM_ANDROID);
    let landed = zhaoliu
        .log_in(&front, &sim, "/auth/wecom/login", "zhaoliu")
        .await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let granted = zhaoliu.get(&front, "/auth/wecom/verify").await;
    assert_eq!(granted.header("x-wecom-groups"), Some("dept:3,dept:1"));
    let calls = sim.api_calls();
    for _ in 0..3 {
        assert_eq!(zhaoliu.get(&front, "/auth/wecom/verify").await.status, 200);
    }
    assert_eq!(
        sim.api_calls(),
        calls,
        "an incomplete tree is not refetched per request"
    );
    let closed = zhaoliu
        .get(&front, "/auth/wecom/verify?denied_departments=2")
        .await;
    assert_eq!(closed.status, 403, "{}", closed.body);
    // An exact rule needs no tree; an allow rule inside the range works.
    for rules in ["denied_departments=%3D2", "allowed_departments=3"] {
        let open = zhaoliu
            .get(&front, &format!("/auth/wecom/verify?{rules}"))
            .await;
        assert_eq!(open.status, 200, "{rules}: {}", open.body);
    }
}

/// WeCom refuses the contact data a rule needs (60011 on `tag/get`): the
/// answer fails closed with an admin hint that names the contact data, not
/// the member's visible range.
#[tokio::test]
async fn a_refused_contact_read_fails_closed_with_a_hint() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut lisi = Browser::new(WECOM_ANDROID);
    let landed = lisi.log_in(&front, &sim, "/auth/wecom/login", "lisi").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let _refusing = sim.fault(Endpoint::TagGet, Fault::NoPrivilege);
    let closed = lisi.get(&front, "/auth/wecom/verify?allowed_tags=7").await;
    assert_eq!(closed.status, 403, "{}", closed.body);
    let error = &closed.json()["error"];
    assert_eq!(error["errcode"], 60011, "{}", closed.body);
    let hint = error["admin_hint"].as_str().unwrap();
    assert!(hint.contains("contact data"), "{hint}");
}

/// A proxy (or a member calling `/verify` directly) naming made-up tag ids
/// costs no WeCom call once the company's tag list is cached: the ids are
/// checked against it, refused with 40068's hint, and leave no key.
#[tokio::test]
async fn made_up_tag_ids_in_verify_cost_no_wecom_call() {
    let sim = Simulator::start(Model::sample()).await.unwrap();
    let front = Front::new(&sim, &[("auto_signup", "true")]);
    let mut lisi = Browser::new(WECOM_ANDROID);
    let landed = lisi.log_in(&front, &sim, "/auth/wecom/login", "lisi").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let allowed = lisi.get(&front, "/auth/wecom/verify?allowed_tags=7").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let calls = sim.api_calls();
    for id in 424_242..424_250 {
        let target = format!("/auth/wecom/verify?allowed_tags={id}");
        let refused = lisi.get(&front, &target).await;
        assert_eq!(
            refused.json()["error"]["errcode"],
            40068,
            "{}",
            refused.body
        );
    }
    assert_eq!(sim.api_calls(), calls, "no tag/get for a made-up id");
    let keys = front.kv.keys("default").await.unwrap();
    assert!(
        !keys.iter().any(|k| k.contains("/tag/4242")),
        "no key per made-up id: {keys:?}"
    );
}
