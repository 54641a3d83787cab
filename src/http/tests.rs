//! The front end to end, natively: configuration, every route, and the
//! attacks each must withstand. WeCom is a scripted transport; the store is
//! [`MemoryKv`].

use std::cell::Cell;

use serde_json::Value;
use url::Url;

use super::*;
use crate::core::ports::{HttpResponse, MemoryKv};
use crate::core::wecom::tests::{Scripted, TOKEN_OK};

const NOW: u64 = 1_790_000_000;
const ADMIN_TOKEN: &str = "admin-token-DO-NOT-LEAK-0123456789";
const ACCESS_TOKEN: &str = "accesstoken000001";
const CHROME: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36";
const WECOM_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/zh";
const WECOM_IPHONE_EN: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/en";
const WECHAT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN";
const PAYLOADS: &str = include_str!("../../testdata/open-redirect-payloads.json");

const USERINFO_IN_CLIENT: &str =
    r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","user_ticket":"T"}"#;
const USERDETAIL: &str = r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","mobile":"+86 138 0000 0000","biz_mail":"z@corp.work","avatar":"http://a/0","gender":"1"}"#;
const USER_GET: &str =
    r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[1]}"#;
const USERINFO_WEB: &str = r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan"}"#;

/// The sample authenticator, with Spin's declared defaults: empty is unset.
fn base_config() -> ConfigMap {
    crate::example::variables()
        .into_iter()
        .chain(
            [
                "admin_token",
                "protected_paths",
                "session_cookie_domain",
                "display_name",
                "in_client_scope",
                "login_panel_script",
            ]
            .map(|key| (key, String::new())),
        )
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A browser's view of the component: configuration, store, WeCom, clock.
struct World {
    config: ConfigMap,
    kv: MemoryKv,
    wecom: Scripted,
    now: Cell<u64>,
    seed: Cell<u8>,
    /// WeCom's clock in the `Date` of its answers (None: no `Date`).
    wecom_clock: Cell<Option<u64>>,
    /// The host refuses the timeouts of calls to WeCom.
    refuses_timeouts: Cell<bool>,
}

impl World {
    fn new(overrides: &[(&str, &str)]) -> Self {
        let mut config = base_config();
        for (k, v) in overrides {
            config.insert((*k).to_owned(), (*v).to_owned());
        }
        World {
            config,
            kv: MemoryKv::default(),
            wecom: Scripted::default(),
            now: Cell::new(NOW),
            seed: Cell::new(1),
            wecom_clock: Cell::new(None),
            refuses_timeouts: Cell::new(false),
        }
    }

    fn send(&self, request: Request) -> Response {
        // Each request gets its own randomness, as the WASI glue gives it.
        let seed = self.seed.get();
        self.seed.set(seed.wrapping_add(1));
        let random = [seed; RANDOM_LEN];
        let env = Env {
            config: Ok(&self.config),
            kv: &self.kv,
            transport: &self.wecom,
            now: self.now.get(),
            random: &random,
            elapsed_ms: &|| 0,
        };
        let response = handle(&request, &env);
        assert_no_secret(&response);
        response
    }

    fn answer(&self, body: &str) {
        self.wecom.answers.borrow_mut().push_back(Ok(HttpResponse {
            status: 200,
            body: body.as_bytes().to_vec(),
            date: self.wecom_clock.get(),
            timeouts_refused: self.refuses_timeouts.get(),
        }));
    }

    /// A whole in-client login of zhangsan (signed up on first login).
    /// Returns the callback's response.
    fn log_in_in_client(&self, return_to: &str, first: bool) -> Response {
        let login =
            self.send(get(&format!("/auth/wecom/login?return_to={return_to}")).ua(WECOM_IPHONE));
        assert_eq!(login.status, 302, "{}", body(&login));
        if first {
            self.answer(TOKEN_OK);
        }
        self.answer(USERINFO_IN_CLIENT);
        self.answer(USERDETAIL);
        self.answer(USER_GET);
        self.send(callback_for(&login).ua(WECOM_IPHONE))
    }
}

fn assert_no_secret(response: &Response) {
    let mut text = String::from_utf8_lossy(&response.body).into_owned();
    for (name, value) in &response.headers {
        text.push_str(name);
        text.push_str(value);
    }
    if let Some(log) = &response.log {
        text.push_str(log);
    }
    for secret in ["DO-NOT-LEAK", ACCESS_TOKEN] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

fn request(method: &str, target: &str) -> Request {
    Request {
        method: method.into(),
        path_and_query: target.into(),
        ..Request::default()
    }
}

fn get(target: &str) -> Request {
    request("GET", target)
}

impl Request {
    fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    fn ua(self, ua: &str) -> Self {
        self.with("User-Agent", ua)
    }
    fn cookie_header(self, cookies: &str) -> Self {
        self.with("Cookie", cookies)
    }
    fn body(mut self, content_type: &str, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self.with("Content-Type", content_type)
    }
    fn bearer(self, token: &str) -> Self {
        self.with("Authorization", &format!("Bearer {token}"))
    }
}

fn body(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn json(response: &Response) -> Value {
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{}",
        body(response)
    );
    serde_json::from_slice(&response.body).unwrap()
}

fn location(response: &Response) -> &str {
    response.header("location").unwrap_or_default()
}

/// `name=value` of the Set-Cookie called `name`.
fn set_cookie<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers_named("set-cookie")
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn cookie_pair(response: &Response, name: &str) -> String {
    set_cookie(response, name)
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The callback WeCom would send after the login `login` started, from the
/// same browser (its pre-auth cookie).
fn callback_for(login: &Response) -> Request {
    let state = query_param(location(login), "state").unwrap();
    get(&format!("/auth/wecom/callback?code=CODE&state={state}"))
        .cookie_header(&cookie_pair(login, "wecom_auth_login"))
}

fn session(world: &World) -> String {
    let done = world.log_in_in_client("/", true);
    assert_eq!(done.status, 302, "{}", body(&done));
    cookie_pair(&done, "wecom_auth_session")
}

/// The sample authenticator's binding of WeCom member `userid`.
fn member(userid: &str) -> crate::core::directory::Binding {
    crate::core::directory::Binding {
        authenticator: "wecom".into(),
        wecom_userid: userid.into(),
    }
}

// ---- configuration ----

#[test]
fn a_config_problem_answers_500_on_every_route_naming_the_variable() {
    let world = World::new(&[("corp_id", ""), ("signing_keys", "k1:short")]);
    for target in ["/", "/auth/wecom/login", "/auth/wecom/verify", "/nothing"] {
        let r = world.send(get(target).with("Accept-Language", "en"));
        assert_eq!(r.status, 500, "{target}");
        let text = body(&r);
        if target.ends_with("verify") {
            let problems = &json(&r)["error"]["problems"];
            let vars: Vec<&str> = problems
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["variable"].as_str().unwrap())
                .collect();
            assert_eq!(vars, ["corp_id", "signing_keys"]);
        } else {
            assert!(
                text.contains("corp_id") && text.contains("signing_keys"),
                "{text}"
            );
            assert!(text.contains("For the administrator"));
        }
        assert!(r.log.as_deref().unwrap().contains("corp_id"));
    }
}

#[test]
fn an_unreadable_configuration_is_a_500_too() {
    let kv = MemoryKv::default();
    let env = Env {
        config: Err("vault unreachable"),
        kv: &kv,
        transport: &Scripted::default(),
        now: NOW,
        random: &[0; RANDOM_LEN],
        elapsed_ms: &|| 0,
    };
    let r = handle(&get("/auth/wecom/me"), &env);
    assert_eq!(r.status, 500);
    assert!(body(&r).contains("vault unreachable"));
}

#[test]
fn a_bad_authenticator_name_says_the_spin_rule() {
    let world = World::new(&[("authenticators", "Head-Office")]);
    let r = world.send(get("/auth/wecom/").with("Accept", "application/json"));
    assert_eq!(r.status, 500);
    let problem = &json(&r)["error"]["problems"][0];
    assert_eq!(problem["variable"], "authenticators");
    assert!(
        problem["problem"]
            .as_str()
            .unwrap()
            .contains("lowercase letters")
    );
}

// ---- login page and /login ----

#[test]
fn the_login_page_lists_authenticators_in_the_visitors_language() {
    let world = World::new(&[
        ("authenticators", "hq,branch"),
        ("branch_display_name", "<img src=x onerror=alert(1)>分公司"),
    ]);
    let r =
        world.send(get("/auth/wecom/?return_to=/docs").with("Accept-Language", "zh-CN,zh;q=0.9"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = body(&r);
    assert!(html.contains("企业微信登录"), "{html}");
    assert!(html.contains("/auth/wecom/login?authenticator=hq&amp;return_to=%2Fdocs"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;分公司"));
    assert!(!html.contains("<img"));
    let en = body(&world.send(get("/auth/wecom").with("Accept-Language", "en-US")));
    assert!(
        en.contains("Log in with WeCom") && en.contains("WeCom · hq"),
        "{en}"
    );
}

/// Any `Accept-Language` text gets a page: `zé` once panicked (the
/// component trapped) slicing the tag inside a character.
#[test]
fn the_login_page_takes_any_accept_language() {
    let world = World::new(&[]);
    for header in ["zé", "ž", "中文;q=0.5, zé", "z\u{fffd}"] {
        let r = world.send(get("/auth/wecom").with("Accept-Language", header));
        assert_eq!(r.status, 200, "{header}");
        assert!(body(&r).contains("Log in with WeCom"), "{header}");
    }
}

#[test]
fn login_sends_wecom_browsers_in_client_and_others_to_web_login() {
    let world = World::new(&[]);
    let inside = world.send(get("/auth/wecom/login?return_to=/reports").ua(WECOM_IPHONE));
    assert_eq!(inside.status, 302);
    assert!(location(&inside).starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww0123456789abcdef&redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fwecom%2Fcallback&"));
    // Silent first (静默授权, doc 91022): no page of WeCom's for a bound member.
    assert!(location(&inside).contains("scope=snsapi_base&"));
    let pre_auth = set_cookie(&inside, "wecom_auth_login").unwrap();
    assert!(pre_auth.ends_with("; Path=/auth/wecom; HttpOnly; SameSite=Lax; Secure"));

    let outside = world.send(
        get("/auth/wecom/login")
            .ua(CHROME)
            .with("Accept-Language", "zh-CN"),
    );
    assert!(
        location(&outside)
            .starts_with("https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&")
    );
    assert!(
        location(&outside).ends_with("&lang=zh"),
        "{}",
        location(&outside)
    );
    // The mobile homepage link forces the in-client flow.
    let forced = world.send(get("/auth/wecom/login?authenticator=wecom&flow=in-client").ua(CHROME));
    assert!(location(&forced).starts_with("https://open.weixin.qq.com/"));
    // Plain WeChat is not WeCom.
    let wechat = world.send(get("/auth/wecom/login").ua(WECHAT));
    assert!(location(&wechat).starts_with("https://login.work.weixin.qq.com/"));
}

#[test]
fn login_picks_the_named_the_only_or_the_auto_login_authenticator() {
    let world = World::new(&[
        ("authenticators", "hq,branch"),
        ("branch_auto_login", "true"),
        ("branch_corp_id", "wwbranch0000000001"),
    ]);
    let chosen = world.send(get("/auth/wecom/login?authenticator=hq").ua(CHROME));
    assert!(location(&chosen).contains("appid=ww0123456789abcdef"));
    let page = world.send(get("/auth/wecom/login?return_to=/x").ua(CHROME));
    assert_eq!(page.status, 200);
    assert!(body(&page).contains("authenticator=branch&amp;return_to=%2Fx"));
    let auto = world.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    assert!(
        location(&auto).contains("appid=wwbranch0000000001"),
        "{}",
        location(&auto)
    );
    let unknown = world.send(get("/auth/wecom/login?authenticator=nope").ua(CHROME));
    assert_eq!(unknown.status, 404);
}

#[test]
fn routes_refuse_other_methods_and_unknown_paths() {
    let world = World::new(&[]);
    let r = world.send(request("POST", "/auth/wecom/login"));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(
        world.send(request("HEAD", "/auth/wecom/callback")).status,
        405
    );
    assert_eq!(world.send(get("/auth/wecom/nope")).status, 404);
    assert_eq!(world.send(get("/auth/wecomx")).status, 404);
    assert_eq!(world.send(get("/elsewhere")).status, 404);
    let head = world.send(request("HEAD", "/auth/wecom/"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn every_answer_carries_the_protective_headers() {
    let world = World::new(&[]);
    let panel = world.send(get("/auth/wecom/").ua(CHROME));
    for r in [
        world.send(get("/auth/wecom/").ua(WECOM_IPHONE)),
        world.send(get("/auth/wecom/login").ua(CHROME)),
        world.send(get("/auth/wecom/verify")),
        world.send(get("/nothing")),
        panel,
    ] {
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        let csp = r.header("content-security-policy").unwrap();
        // The login panel's page adds its script and frames (next tests).
        if !body(&r).contains("wecom-login-panel") {
            assert_eq!(
                csp,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            );
        }
    }
}

// ---- WeCom's login panel ----

/// The attribute `name` of the login panel's box, unescaped.
fn panel_attribute(page: &str, name: &str) -> String {
    let start = page.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    let value = &page[start..start + page[start..].find('"').unwrap()];
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A desktop browser's login page draws WeCom's login panel (doc 98478)
/// with a state bound to the pre-auth cookie it sets; the CSP allows the
/// page's one script by its hash, the JS-SDK's URL and frames of WeCom's
/// login page, nothing more; the code the panel hands over finishes the
/// login at the callback.
#[test]
fn the_login_page_draws_wecoms_login_panel_with_a_state_of_its_own() {
    use sha2::Digest as _;
    let world = World::new(&[("auto_signup", "true")]);
    // zhangsan's user, from a first login inside WeCom.
    assert!(set_cookie(&world.log_in_in_client("/", true), "wecom_auth_session").is_some());
    let page = world.send(
        get("/auth/wecom/?return_to=/reports")
            .ua(CHROME)
            .with("Accept-Language", "en"),
    );
    assert_eq!(page.status, 200);
    let html = body(&page);
    assert_eq!(
        panel_attribute(&html, "data-script"),
        "https://wwcdn.weixin.qq.com/node/open/js/wecom-jssdk-2.0.2.js"
    );
    let params: Value = serde_json::from_str(&panel_attribute(&html, "data-params")).unwrap();
    assert_eq!(params["login_type"], "CorpApp");
    assert_eq!(params["appid"], "ww0123456789abcdef");
    assert_eq!(params["agentid"], "1000002");
    assert_eq!(
        params["redirect_uri"],
        "https://apps.example.com/auth/wecom/callback"
    );
    assert_eq!(params["redirect_type"], "callback");
    assert_eq!(params["lang"], "en");
    assert_eq!(panel_attribute(&html, "data-renew-after"), "570");
    assert!(!html.contains(" data-integrity="));
    // The button goes to WeCom's login page for the same login, for when
    // the script cannot load.
    let fallback = panel_attribute(&html, "href");
    assert!(
        fallback.starts_with("https://login.work.weixin.qq.com/wwlogin/sso/login?"),
        "{fallback}"
    );
    assert_eq!(
        query_param(&fallback, "state").as_deref(),
        params["state"].as_str()
    );
    assert_eq!(
        page.header("cross-origin-opener-policy"),
        Some("same-origin")
    );
    // One inline script, allowed by its hash.
    let script = html
        .split("<script>")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    assert_eq!(html.matches("<script").count(), 1);
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        sha2::Sha256::digest(script.as_bytes()),
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}' \
                 https://wwcdn.weixin.qq.com/node/open/js/wecom-jssdk-2.0.2.js; \
                 frame-src https://login.work.weixin.qq.com; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'"
            )
            .as_str()
        )
    );
    // The panel's code, with the page's state, from the same browser.
    let state = params["state"].as_str().unwrap();
    world.answer(USERINFO_WEB);
    let callback = get(&format!("/auth/wecom/callback?code=CODE&state={state}"))
        .ua(CHROME)
        .cookie_header(&cookie_pair(&page, "wecom_auth_login"));
    let done = world.send(callback);
    assert_eq!(done.status, 302, "{}", body(&done));
    assert_eq!(location(&done), "/reports");
    assert!(set_cookie(&done, "wecom_auth_session").is_some());
}

/// Inside the WeCom client, with several authenticators, or with
/// `login_panel_script=off`: buttons and no script.
#[test]
fn the_login_panel_is_only_for_one_authenticator_outside_wecom() {
    let cases = [
        (World::new(&[]), WECOM_IPHONE),
        (World::new(&[("login_panel_script", "OFF")]), CHROME),
        (
            World::new(&[
                ("authenticators", "hq,branch"),
                ("branch_agent_id", "1000009"),
            ]),
            CHROME,
        ),
    ];
    for (world, ua) in cases {
        let page = world.send(get("/auth/wecom/").ua(ua));
        assert_eq!(page.status, 200);
        assert!(!body(&page).contains("<script"), "{}", body(&page));
        assert!(set_cookie(&page, "wecom_auth_login").is_none());
        assert!(
            !page
                .header("content-security-policy")
                .unwrap()
                .contains("script-src")
        );
    }
    // WeCom's JS-SDK frames WeCom's login page whatever sso_base says: with
    // an sso_base of one's own it would draw a panel the CSP refuses.
    let own_sso = World::new(&[("sso_base", "https://egress.internal/wecom-sso")]);
    let page = own_sso.send(get("/auth/wecom/").ua(CHROME));
    assert!(!body(&page).contains("<script"), "{}", body(&page));
    // A HEAD starts no login.
    let head = World::new(&[]).send(request("HEAD", "/auth/wecom/").ua(CHROME));
    assert!(set_cookie(&head, "wecom_auth_login").is_none());
    // The simulator's stand-in, on loopback over http, pinned by its digest:
    // its frames come from sso_base.
    let world = World::new(&[
        (
            "login_panel_script",
            "http://127.0.0.1:9000/node/open/js/wecom-jssdk-2.0.2.js",
        ),
        ("login_panel_script_integrity", "sha384-AbC+/0="),
        ("sso_base", "http://127.0.0.1:9000"),
    ]);
    let page = world.send(get("/auth/wecom/").ua(CHROME));
    let html = body(&page);
    assert_eq!(
        panel_attribute(&html, "data-script"),
        "http://127.0.0.1:9000/node/open/js/wecom-jssdk-2.0.2.js"
    );
    assert_eq!(panel_attribute(&html, "data-integrity"), "sha384-AbC+/0=");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains(" http://127.0.0.1:9000/node/open/js/wecom-jssdk-2.0.2.js; frame-src http://127.0.0.1:9000; "),
        "{csp}"
    );
}

/// A script address that could load something else, or break the CSP, is
/// a configuration error naming `login_panel_script`.
#[test]
fn a_login_panel_script_of_another_kind_is_refused() {
    for bad in [
        "javascript:alert(1)",
        "http://cdn.example.com/wecom-jssdk.js",
        "https://cdn.example.com/a.js; script-src *",
        "https://cdn.example.com/a,b.js",
        "https://u:p@cdn.example.com/a.js",
        "//cdn.example.com/a.js",
        "data:text/javascript,alert(1)",
        // A CSP source that would allow more than one script.
        "https://*.qq.com/a.js",
        "https://cdn.example.com",
        "https://cdn.example.com/js/",
        "https://cdn.example.com/a.js?v=1",
        "http://[::1]:9000/a.js",
        "https://[2001:db8::1]/a.js",
        "http://localhost.evil.com/a.js",
    ] {
        let world = World::new(&[("login_panel_script", bad)]);
        let page = world.send(get("/auth/wecom/").ua(CHROME));
        assert_eq!(page.status, 500, "{bad}");
        assert!(
            body(&page).contains("login_panel_script"),
            "{bad}: {}",
            body(&page)
        );
    }
    for bad in ["md5-abc", "sha384-", "sha384-not base64!", "sha384-a\"b"] {
        let world = World::new(&[("login_panel_script_integrity", bad)]);
        let page = world.send(get("/auth/wecom/").ua(CHROME));
        assert_eq!(page.status, 500, "{bad}");
        assert!(
            body(&page).contains("login_panel_script_integrity"),
            "{bad}: {}",
            body(&page)
        );
    }
}

#[test]
fn oversized_requests_are_refused_before_any_work() {
    let world = World::new(&[]);
    let long = format!("/auth/wecom/login?return_to=/{}", "a".repeat(MAX_TARGET));
    assert_eq!(world.send(get(&long)).status, 414);
    let mut many = get("/auth/wecom/verify");
    for i in 0..=MAX_HEADERS {
        many = many.with(&format!("x-h{i}"), "1");
    }
    assert_eq!(world.send(many).status, 431);
    let mut truncated = request("POST", "/auth/wecom/admin/users/import");
    truncated.body_truncated = true;
    assert_eq!(world.send(truncated).status, 413);
    assert_eq!(world.send(get("http://evil.com/")).status, 400);
}

// ---- the whole login ----

#[test]
fn a_whole_in_client_login_then_verify_me_and_logout() {
    let world = World::new(&[("auto_signup", "true")]);
    let done = world.log_in_in_client("/reports%3Fq%3D1", true);
    assert_eq!(done.status, 302, "{}", body(&done));
    assert_eq!(location(&done), "/reports?q=1");
    let session = set_cookie(&done, "wecom_auth_session").unwrap();
    assert!(
        session.contains("; Max-Age=28800; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{session}"
    );
    assert!(
        set_cookie(&done, "wecom_auth_login")
            .unwrap()
            .starts_with("wecom_auth_login=; Max-Age=0; Path=/auth/wecom")
    );
    assert_eq!(
        world.wecom.paths(),
        [
            "gettoken",
            "auth/getuserinfo",
            "auth/getuserdetail",
            "user/get"
        ]
    );
    let cookie = cookie_pair(&done, "wecom_auth_session");

    let verified = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(verified.status, 200);
    assert_eq!(verified.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(verified.header("x-wecom-authenticator"), Some("wecom"));
    assert!(verified.header("x-user-id").unwrap().starts_with("wc-"));
    assert_eq!(verified.header("x-user-name"), Some("%E5%BC%A0%E4%B8%89"));
    assert_eq!(verified.header("x-user-email"), Some("z@corp.work"));
    assert_eq!(verified.header("x-user-mobile"), Some("13800000000"));

    let me = world.send(get("/auth/wecom/me").cookie_header(&cookie));
    let me = json(&me);
    assert_eq!(me["wecom_userid"], "zhangsan");
    assert_eq!(me["user"]["name"], "张三");
    assert_eq!(me["user"]["bindings"][0]["authenticator"], "wecom");

    let out = world.send(request("POST", "/auth/wecom/logout").cookie_header(&cookie));
    assert_eq!((out.status, location(&out)), (303, "/auth/wecom/"));
    assert!(
        set_cookie(&out, "wecom_auth_session")
            .unwrap()
            .starts_with("wecom_auth_session=; Max-Age=0; Path=/")
    );
}

#[test]
fn a_qr_login_of_a_bound_member_takes_one_wecom_call() {
    let world = World::new(&[("auto_signup", "true")]);
    session(&world);
    world.wecom.sent.borrow_mut().clear();
    let login = world.send(get("/auth/wecom/login?return_to=/after").ua(CHROME));
    world.answer(USERINFO_WEB);
    let done = world.send(callback_for(&login).ua(CHROME));
    assert_eq!((done.status, location(&done)), (302, "/after"));
    assert_eq!(world.wecom.paths(), ["auth/getuserinfo"]);
}

#[test]
fn a_first_qr_login_and_a_non_member_get_pages_that_say_why() {
    let world = World::new(&[]);
    let login = world.send(
        get("/auth/wecom/login")
            .ua(CHROME)
            .with("Accept-Language", "zh"),
    );
    world.answer(TOKEN_OK);
    world.answer(USERINFO_WEB);
    let first = world.send(
        callback_for(&login)
            .ua(CHROME)
            .with("Accept-Language", "zh"),
    );
    assert_eq!(first.status, 403);
    assert!(
        body(&first).contains("首次登录需在企业微信客户端内完成"),
        "{}",
        body(&first)
    );

    let login = world.send(get("/auth/wecom/login").ua(WECOM_IPHONE_EN));
    world.answer(r#"{"errcode":0,"errmsg":"ok","openid":"oAAA","external_userid":"wmAAA"}"#);
    let outsider = world.send(
        callback_for(&login)
            .ua(WECOM_IPHONE_EN)
            .with("Accept-Language", "zh"),
    );
    assert_eq!(outsider.status, 403);
    // Inside WeCom the UA's language wins over Accept-Language.
    assert!(
        body(&outsider).contains("not a member of this company"),
        "{}",
        body(&outsider)
    );
}

#[test]
fn wecom_console_errors_tell_the_admin_what_to_fix() {
    let world = World::new(&[]);
    for (answer, status, needle) in [
        (
            r#"{"errcode":60020,"errmsg":"not allow to access from your ip, hint: [1], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020"}"#,
            500,
            "企业可信IP",
        ),
        (
            r#"{"errcode":50001,"errmsg":"redirect_uri not trusted"}"#,
            500,
            "可信域名",
        ),
        (
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            503,
            "frequency limit",
        ),
    ] {
        let login = world.send(
            get("/auth/wecom/login")
                .ua(CHROME)
                .with("Accept-Language", "en"),
        );
        world.answer(answer);
        let r = world.send(
            callback_for(&login)
                .ua(CHROME)
                .with("Accept-Language", "en"),
        );
        assert_eq!(r.status, status, "{answer}");
        let html = body(&r);
        assert!(
            html.contains("For the administrator") && html.contains(needle),
            "{html}"
        );
        if status == 500 {
            assert!(html.contains("WeCom errcode"));
            assert!(r.log.is_some());
        }
        let json_login = world.send(get("/auth/wecom/login").ua(CHROME));
        world.answer(answer);
        let j = world.send(
            callback_for(&json_login)
                .ua(CHROME)
                .with("Accept", "application/json"),
        );
        let error = &json(&j)["error"];
        assert_eq!(error["status"], status);
        assert!(error["admin_hint"].as_str().unwrap().contains(needle));
        assert!(error["errcode"].is_i64());
    }
    assert!(body(&world.send(get("/auth/wecom/login").ua(CHROME))).is_empty());
}

// ---- callback attacks ----

#[test]
fn callbacks_without_or_with_foreign_states_are_refused() {
    let world = World::new(&[]);
    let missing = world.send(get("/auth/wecom/callback?code=CODE"));
    assert_eq!(missing.status, 400);
    let garbage = world.send(get("/auth/wecom/callback?code=CODE&state=abc"));
    assert_eq!(garbage.status, 401);
    // A state of another deployment (same name, other keys).
    let other = World::new(&[("signing_keys", "k9:another-deployment-key-0123456789abcdef")]);
    let theirs = other.send(get("/auth/wecom/login").ua(CHROME));
    let r = world.send(callback_for(&theirs).ua(CHROME));
    assert_eq!(r.status, 401);
    assert!(
        world.wecom.sent.borrow().is_empty(),
        "nothing reached WeCom"
    );
    // A state of ours without this browser's cookie (login CSRF).
    let ours = world.send(get("/auth/wecom/login").ua(CHROME));
    let state = query_param(location(&ours), "state").unwrap();
    let csrf = world.send(get(&format!(
        "/auth/wecom/callback?code=CODE&state={state}"
    )));
    assert_eq!(csrf.status, 401);
    assert!(body(&csrf).contains("another browser"));
}

#[test]
fn a_replayed_callback_of_a_failed_login_is_refused() {
    let world = World::new(&[]);
    let login = world.send(get("/auth/wecom/login").ua(CHROME));
    world.answer(TOKEN_OK);
    world.answer(r#"{"errcode":40029,"errmsg":"invalid code"}"#);
    let first = world.send(callback_for(&login).ua(CHROME));
    assert_eq!(first.status, 401);
    let replay = world.send(callback_for(&login).ua(CHROME));
    assert_eq!(replay.status, 401);
    assert_eq!(world.wecom.paths(), ["gettoken", "auth/getuserinfo"]);
}

#[test]
fn a_duplicate_callback_lands_the_browser_where_it_wanted() {
    let world = World::new(&[("auto_signup", "true"), ("redirect_path", "/home")]);
    let login = world.send(get("/auth/wecom/login?return_to=/wanted").ua(WECOM_IPHONE));
    world.answer(TOKEN_OK);
    world.answer(USERINFO_IN_CLIENT);
    world.answer(USERDETAIL);
    world.answer(USER_GET);
    let first = world.send(callback_for(&login).ua(WECOM_IPHONE));
    assert_eq!(location(&first), "/wanted");
    let session = cookie_pair(&first, "wecom_auth_session");
    let calls = world.wecom.sent.borrow().len();

    // The same request again (pre-auth cookie still sent): the core repeats the login.
    let again = world.send(callback_for(&login).ua(WECOM_IPHONE));
    assert_eq!((again.status, location(&again)), (302, "/wanted"));
    // Again after the first answer cleared the pre-auth cookie: the session decides.
    let state = query_param(location(&login), "state").unwrap();
    let target = format!("/auth/wecom/callback?code=CODE&state={state}");
    let late = world.send(get(&target).cookie_header(&session));
    assert_eq!((late.status, location(&late)), (302, "/home"));
    assert_eq!(world.wecom.sent.borrow().len(), calls, "no WeCom call");
    // Without a session, the same is an error.
    assert_eq!(world.send(get(&target)).status, 401);

    // A second login whose code WeCom calls spent (40029), by a browser with a session.
    let second = world.send(get("/auth/wecom/login?return_to=/again").ua(WECOM_IPHONE));
    world.answer(r#"{"errcode":40029,"errmsg":"invalid code"}"#);
    let spent = world.send(
        callback_for(&second)
            .ua(WECOM_IPHONE)
            .cookie_header(&session),
    );
    assert_eq!((spent.status, location(&spent)), (302, "/again"));
    // and its replay (state used, login unfinished) likewise.
    let used = world.send(
        callback_for(&second)
            .ua(WECOM_IPHONE)
            .cookie_header(&session),
    );
    assert_eq!((used.status, location(&used)), (302, "/again"));
    let used_no_session = world.send(callback_for(&second).ua(WECOM_IPHONE));
    assert_eq!(used_no_session.status, 401);
}

#[test]
fn open_redirect_payloads_never_leave_the_origin() {
    let payloads: Vec<String> = serde_json::from_str(PAYLOADS).unwrap();
    let world = World::new(&[("auto_signup", "true")]);
    let session = session(&world);
    let app = Url::parse("https://apps.example.com/some/page").unwrap();
    let stays = |target: &str| {
        target.starts_with('/')
            && !target.starts_with("//")
            && target.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
            && app.join(target).is_ok_and(|u| u.origin() == app.origin())
    };
    for payload in &payloads {
        let encoded = url::form_urlencoded::byte_serialize(payload.as_bytes()).collect::<String>();
        let login = world.send(get(&format!("/auth/wecom/login?return_to={encoded}")).ua(CHROME));
        world.answer(USERINFO_WEB);
        let done = world.send(callback_for(&login).ua(CHROME));
        assert_eq!(done.status, 302, "{payload:?}: {}", body(&done));
        assert!(stays(location(&done)), "{payload:?} → {}", location(&done));
        for method in ["GET", "POST"] {
            let out = world.send(
                request(method, &format!("/auth/wecom/logout?return_to={encoded}"))
                    .cookie_header(&session),
            );
            assert!(
                stays(location(&out)),
                "logout {payload:?} → {}",
                location(&out)
            );
        }
        let target = format!("/auth/wecom/?return_to={encoded}");
        let page = body(&world.send(get(&target).ua(WECOM_IPHONE)));
        for href in page.split("href=\"").skip(1) {
            let href = href.split('"').next().unwrap().replace("&amp;", "&");
            assert!(
                href.starts_with("/auth/wecom/login?"),
                "{payload:?}: {href}"
            );
            if let Some(back) = query_param(&href, "return_to") {
                assert!(stays(&back), "{payload:?}: page link returns to {back}");
            }
        }
        // The login panel's page starts a login of its own: it lands where
        // `/login` would.
        let panel = world.send(get(&target).ua(CHROME));
        let state = serde_json::from_str::<Value>(&panel_attribute(&body(&panel), "data-params"))
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned();
        world.answer(USERINFO_WEB);
        let done = world.send(
            get(&format!("/auth/wecom/callback?code=CODE&state={state}"))
                .ua(CHROME)
                .cookie_header(&cookie_pair(&panel, "wecom_auth_login")),
        );
        assert_eq!(done.status, 302, "{payload:?}: {}", body(&done));
        assert!(stays(location(&done)), "{payload:?} → {}", location(&done));
    }
}

// ---- sessions and forward auth ----

#[test]
fn verify_refuses_missing_forged_expired_and_orphaned_sessions() {
    let world = World::new(&[("auto_signup", "true")]);
    let cookie = session(&world);
    let verify = |cookie: &str| {
        world
            .send(get("/auth/wecom/verify").cookie_header(cookie))
            .status
    };
    assert_eq!(verify(&cookie), 200);
    assert_eq!(world.send(get("/auth/wecom/verify")).status, 401);
    assert_eq!(verify("wecom_auth_session="), 401);
    assert_eq!(verify("wecom_auth_session=v2.k1.e30.AAAA"), 401);
    // Signed with a key this deployment does not have.
    let forger = World::new(&[
        ("auto_signup", "true"),
        ("signing_keys", "k1:attacker-key-attacker-key-attacker-key"),
    ]);
    assert_eq!(verify(&session(&forger)), 401);
    // A flipped character of a genuine token.
    let mut flipped = cookie.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(verify(&String::from_utf8(flipped).unwrap()), 401);
    // Several cookies of that name: the valid one counts.
    assert_eq!(verify(&format!("wecom_auth_session=junk; {cookie}")), 200);
    world.now.set(NOW + 8 * 3600);
    assert_eq!(verify(&cookie), 401, "expired");
    world.now.set(NOW);
    // The user deleted: the session ends.
    let id = world.send(get("/auth/wecom/me").cookie_header(&cookie));
    let id = json(&id)["user"]["id"].as_str().unwrap().to_owned();
    crate::core::directory::delete(&world.kv, &id).unwrap();
    let gone = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(gone.status, 401);
    assert_eq!(json(&gone)["error"]["category"], "session-invalid");
}

#[test]
fn client_sent_identity_headers_are_never_read_or_echoed() {
    let world = World::new(&[("auto_signup", "true")]);
    let cookie = session(&world);
    let spoof = |r: Request| {
        r.with("X-User-Id", "admin")
            .with("X-WeCom-UserId", "boss")
            .with("X-User-Name", "Admin")
    };
    let anonymous = world.send(spoof(get("/auth/wecom/verify")));
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.header("x-user-id").is_none() && anonymous.header("x-wecom-userid").is_none()
    );
    let real = world.send(spoof(
        request("POST", "/auth/wecom/verify").cookie_header(&cookie),
    ));
    assert_eq!(real.status, 200, "any method");
    assert_eq!(real.headers_named("x-user-id").count(), 1);
    assert_ne!(real.header("x-user-id"), Some("admin"));
    assert_eq!(real.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(real.header("x-user-name"), Some("%E5%BC%A0%E4%B8%89"));
}

#[test]
fn verify_can_send_browsers_to_log_in_for_proxies_that_pass_its_answer_on() {
    let world = World::new(&[]);
    let r = world.send(get("/auth/wecom/verify?redirect=1").with("X-Forwarded-Uri", "/app/x?y=1"));
    assert_eq!(
        (r.status, location(&r)),
        (302, "/auth/wecom/login?return_to=%2Fapp%2Fx%3Fy%3D1")
    );
    let evil =
        world.send(get("/auth/wecom/verify?redirect=1").with("X-Forwarded-Uri", "//evil.com/"));
    assert_eq!(location(&evil), "/auth/wecom/login");
    assert_eq!(world.send(get("/auth/wecom/verify")).status, 401);
}

#[test]
fn me_answers_json_401_without_a_session() {
    let world = World::new(&[]);
    let r = world.send(get("/auth/wecom/me").with("Accept-Language", "zh"));
    assert_eq!(r.status, 401);
    let error = &json(&r)["error"];
    assert_eq!(error["category"], "session-invalid");
    assert_eq!(error["message"], "登录状态已失效，请重新登录。");
}

#[test]
fn sessions_of_several_authenticators_verify_with_their_own_settings() {
    let world = World::new(&[
        ("authenticators", "hq,branch"),
        ("auto_signup", "true"),
        (
            "branch_signing_keys",
            "b1:branch-signing-key-0123456789abcdefgh",
        ),
    ]);
    let login = world.send(get("/auth/wecom/login?authenticator=branch").ua(WECOM_IPHONE));
    world.answer(TOKEN_OK);
    world.answer(USERINFO_IN_CLIENT);
    world.answer(USERDETAIL);
    world.answer(USER_GET);
    let done = world.send(callback_for(&login).ua(WECOM_IPHONE));
    assert_eq!(done.status, 302, "{}", body(&done));
    let cookie = cookie_pair(&done, "wecom_auth_session");
    assert!(cookie.contains("=v2.b1."));
    let verified = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(verified.header("x-wecom-authenticator"), Some("branch"));
    // Dropping branch from the configuration ends its sessions.
    let mut hq_only = World::new(&[("authenticators", "hq")]);
    hq_only.kv = world.kv;
    assert_eq!(
        hq_only
            .send(get("/auth/wecom/verify").cookie_header(&cookie))
            .status,
        401
    );
}

// ---- the site: root, protected paths, auto-login ----

#[test]
fn wecom_visitors_without_a_session_are_logged_in_silently_and_come_back() {
    let world = World::new(&[
        ("auto_login", "true"),
        ("auto_signup", "true"),
        ("protected_paths", "/app"),
    ]);
    let r = world.send(get("/app/report?id=7").ua(WECOM_IPHONE));
    assert_eq!(r.status, 302);
    assert!(location(&r).starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?"));
    world.answer(TOKEN_OK);
    world.answer(USERINFO_IN_CLIENT);
    world.answer(USERDETAIL);
    world.answer(USER_GET);
    let done = world.send(callback_for(&r).ua(WECOM_IPHONE));
    assert_eq!((done.status, location(&done)), (302, "/app/report?id=7"));
    let cookie = cookie_pair(&done, "wecom_auth_session");
    let page = world.send(
        get("/app/report?id=7")
            .ua(WECOM_IPHONE)
            .cookie_header(&cookie),
    );
    assert_eq!(page.status, 200);
    let html = body(&page);
    assert!(html.contains("张三") && html.contains("zhangsan"), "{html}");
    assert!(html.contains("action=\"/auth/wecom/logout\""));
    // The root too; other paths are not ours.
    assert_eq!(world.send(get("/").ua(WECOM_IPHONE)).status, 302);
    assert_eq!(world.send(get("/apple").ua(WECOM_IPHONE)).status, 404);
}

#[test]
fn other_browsers_are_sent_to_the_login_route_and_without_auto_login_so_is_wecom() {
    let world = World::new(&[("protected_paths", "/app")]);
    let r = world.send(get("/app/x?y=1").ua(CHROME));
    assert_eq!(
        (r.status, location(&r)),
        (302, "/auth/wecom/login?return_to=%2Fapp%2Fx%3Fy%3D1")
    );
    let r = world.send(get("/").ua(WECOM_IPHONE));
    assert_eq!(location(&r), "/auth/wecom/login?return_to=%2F");
    assert_eq!(world.send(request("POST", "/app")).status, 405);
}

#[test]
fn hostile_names_are_escaped_on_the_signed_in_page() {
    let world = World::new(&[("auto_signup", "true")]);
    let login = world.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    world.answer(TOKEN_OK);
    world.answer(USERINFO_IN_CLIENT);
    world.answer(USERDETAIL);
    world.answer(
        r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"<script>alert('x')</script>"}"#,
    );
    let cookie = cookie_pair(
        &world.send(callback_for(&login).ua(WECOM_IPHONE)),
        "wecom_auth_session",
    );
    let page = body(&world.send(get("/").cookie_header(&cookie)));
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    let verified = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(
        verified.header("x-user-name"),
        Some("<script>alert('x')</script>")
    );
}

// ---- admin ----

fn admin_world() -> World {
    World::new(&[("admin_token", ADMIN_TOKEN)])
}

#[test]
fn the_admin_api_is_off_without_a_token_and_closed_to_wrong_ones() {
    let off = World::new(&[]);
    assert_eq!(
        off.send(get("/auth/wecom/admin/users").bearer("")).status,
        404
    );
    let world = admin_world();
    let none = world.send(get("/auth/wecom/admin/users"));
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        world
            .send(get("/auth/wecom/admin/users").bearer("wrong"))
            .status,
        401
    );
    assert_eq!(
        world
            .send(get("/auth/wecom/admin/users").bearer(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]))
            .status,
        401
    );
    let ok = world.send(get("/auth/wecom/admin/users").bearer(ADMIN_TOKEN));
    assert_eq!(ok.status, 200);
    assert_eq!(json(&ok)["users"], Value::Array(vec![]));
}

#[test]
fn admins_upsert_find_list_and_delete_users() {
    let world = admin_world();
    let created = world.send(
        request("POST", "/auth/wecom/admin/users")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                r#"{"name":"张三","mobile":"+86 138 0000 0000","email":"z@x.cn"}"#,
            ),
    );
    assert_eq!(created.status, 200, "{}", body(&created));
    let user = json(&created);
    assert_eq!(user["mobile"], "13800000000");
    let id = user["id"].as_str().unwrap().to_owned();
    let conflict = world.send(
        request("POST", "/auth/wecom/admin/users")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                r#"{"id":"other","name":"李四","mobile":"13800000000"}"#,
            ),
    );
    assert_eq!(conflict.status, 409);
    assert!(
        json(&conflict)["error"]["detail"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
    let typo = world.send(
        request("POST", "/auth/wecom/admin/users")
            .bearer(ADMIN_TOKEN)
            .body("application/json", r#"{"name":"x","phone":"1"}"#),
    );
    assert_eq!(typo.status, 400);
    let detail = |r: &Response| json(r)["error"]["detail"].as_str().unwrap().to_owned();
    assert!(
        detail(&typo).contains("unknown field `phone`"),
        "{}",
        detail(&typo)
    );
    for (bad, says) in [
        (
            r#"{"name":"张三","mobile":13800000000}"#,
            "at `mobile`: invalid type, expected a string at line 1 column 37",
        ),
        (r#"["x"]"#, "is not a user {id?, name, mobile?, email?}"),
        (
            r#"["u-1","张三","13800000000","a@b.c"]"#,
            "is not a user {id?, name, mobile?, email?}",
        ),
        (
            r#"{"name":"x""#,
            "EOF while parsing an object at line 1 column 11",
        ),
        (
            r#"{"name":"x"} {}"#,
            "trailing characters at line 1 column 14",
        ),
    ] {
        let refused = world.send(
            request("POST", "/auth/wecom/admin/users")
                .bearer(ADMIN_TOKEN)
                .body("application/json", bad),
        );
        assert_eq!(refused.status, 400, "{bad}");
        assert!(
            detail(&refused).contains(says),
            "{bad}: {}",
            detail(&refused)
        );
        assert!(!detail(&refused).contains("138"), "never quotes a value");
    }
    let import = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                r#"[{"name":"王五","mobile":"13800000009"},{"nmae":"x"}]"#,
            ),
    );
    assert_eq!(import.status, 400, "a misshapen row fails the whole import");
    let positional = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                r#"[["u-1","张三","13800000000","a@b.c"]]"#,
            ),
    );
    assert_eq!(
        positional.status, 400,
        "a user is an object, not fields by position"
    );
    assert!(
        !detail(&positional).contains("138"),
        "{}",
        detail(&positional)
    );
    assert!(
        detail(&import).contains("at `[1].nmae`: unknown field `nmae`, expected one of"),
        "{}",
        detail(&import)
    );
    let found = world.send(get(&format!("/auth/wecom/admin/users/{id}")).bearer(ADMIN_TOKEN));
    assert_eq!(json(&found)["name"], "张三");
    let page = world.send(get("/auth/wecom/admin/users?limit=1").bearer(ADMIN_TOKEN));
    assert_eq!(json(&page)["users"][0]["id"], id.as_str());
    assert_eq!(
        world
            .send(get("/auth/wecom/admin/users?limit=0").bearer(ADMIN_TOKEN))
            .status,
        400
    );
    let deleted =
        world.send(request("DELETE", &format!("/auth/wecom/admin/users/{id}")).bearer(ADMIN_TOKEN));
    assert_eq!(deleted.status, 200);
    let again =
        world.send(request("DELETE", &format!("/auth/wecom/admin/users/{id}")).bearer(ADMIN_TOKEN));
    assert_eq!(again.status, 404);
    let wrong = world.send(request("PUT", "/auth/wecom/admin/users").bearer(ADMIN_TOKEN));
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (405, Some("GET, POST"))
    );
}

#[test]
fn csv_imports_take_quotes_and_report_bad_rows_by_line() {
    let world = admin_world();
    let csv = "\u{feff}name,mobile,email\r\n\
               \"Zhang, San\",+86 138 0000 0001,z@x.cn\r\n\
               李四,13800000002,\r\n\
               \r\n\
               bad mobile,12,\r\n\
               ,13800000003,\r\n\
               \"say \"\"hi\"\"\",13800000004,a@b.c,extra\r\n\
               \"multi\nline\",13800000005,m@x.cn\r\n";
    let r = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("text/csv; charset=utf-8", csv),
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let result = json(&r);
    assert_eq!(
        (result["imported"].as_u64(), result["failed"].as_u64()),
        (Some(3), Some(3))
    );
    let rows: Vec<(u64, bool)> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            (2, true),
            (3, true),
            (5, false),
            (6, false),
            (7, false),
            (8, true)
        ]
    );
    assert!(
        result["results"][2]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("mobile")
    );
    let found = crate::core::directory::find(
        &world.kv,
        &crate::core::directory::UserQuery::Mobile("13800000001".into()),
    )
    .unwrap()
    .unwrap();
    assert_eq!(found.name, "Zhang, San");
    // The same file again creates nobody twice.
    let again = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("text/csv", csv),
    );
    assert_eq!(json(&again)["imported"], 3);
    let listed = world.send(get("/auth/wecom/admin/users").bearer(ADMIN_TOKEN));
    assert_eq!(json(&listed)["users"].as_array().unwrap().len(), 3);

    let unknown = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("text/csv", "name,phone number\nx,1\n"),
    );
    assert_eq!(unknown.status, 400);
    let chinese = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("text/csv", "姓名,手机号,邮箱\n王五,13800000009,\n"),
    );
    assert_eq!(json(&chinese)["imported"], 1);
}

#[test]
fn json_imports_report_rows_by_index_and_other_types_are_refused() {
    let world = admin_world();
    let r = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                r#"[{"name":"A","mobile":"13800000011"},{"mobile":"13800000012"},{"name":"C"}]"#,
            ),
    );
    let result = json(&r);
    assert_eq!(
        (result["imported"].as_u64(), result["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(result["results"][1]["index"], 1);
    assert_eq!(result["results"][1]["ok"], false);
    let not_array = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("application/json", r#"{"name":"A"}"#),
    );
    assert_eq!(not_array.status, 400);
    let xml = world.send(
        request("POST", "/auth/wecom/admin/users/import")
            .bearer(ADMIN_TOKEN)
            .body("application/xml", "<users/>"),
    );
    assert_eq!(xml.status, 415);
}

#[test]
fn admins_unbind_members_and_read_the_console_links() {
    let world = World::new(&[
        ("admin_token", ADMIN_TOKEN),
        ("auto_signup", "true"),
        ("auto_login", "yes"),
    ]);
    let cookie = session(&world);
    let unbound = world
        .send(request("DELETE", "/auth/wecom/admin/bindings/wecom/zhangsan").bearer(ADMIN_TOKEN));
    assert_eq!(unbound.status, 200, "{}", body(&unbound));
    assert_eq!(
        world
            .send(get("/auth/wecom/verify").cookie_header(&cookie))
            .status,
        401
    );
    let again = world
        .send(request("DELETE", "/auth/wecom/admin/bindings/wecom/zhangsan").bearer(ADMIN_TOKEN));
    assert_eq!(again.status, 404);
    let links = json(&world.send(get("/auth/wecom/admin/links").bearer(ADMIN_TOKEN)));
    let first = &links["authenticators"][0];
    assert_eq!(
        first["callback_url"],
        "https://apps.example.com/auth/wecom/callback"
    );
    assert_eq!(
        first["desktop_homepage"],
        "https://apps.example.com/auth/wecom/login?authenticator=wecom"
    );
    assert_eq!(first["plain_homepage"], "https://apps.example.com/");
}

#[test]
fn no_input_makes_the_front_panic() {
    let world = World::new(&[("admin_token", ADMIN_TOKEN), ("protected_paths", "/")]);
    let targets = [
        "/",
        "",
        "?",
        "/auth/wecom/callback?state=%ZZ&code=%00",
        "/auth/wecom/login?return_to=%FF%FE",
        "/auth/wecom/admin/users/%FF",
        "/auth/wecom/admin/bindings/a/%C3",
        "/auth/wecom/admin/",
        "/auth/wecom/admin",
        "/auth/wecom/verify?x=1#frag",
        "/%2e%2e/auth/wecom/",
    ];
    for target in targets {
        for method in ["GET", "POST", "DELETE", "HEAD", "OPTIONS", "BREW"] {
            let r = world.send(
                request(method, target)
                    .bearer(ADMIN_TOKEN)
                    .cookie_header("wecom_auth_session=v2.k1.%%%.===; wecom_auth_login=.....")
                    .with("Accept", "application/json;q=nan, text/html;q=-1")
                    .with("Accept-Language", ";;,,q=,zh;q=2")
                    .body("text/csv", "\"\n,\"\"\"\r\r\n"),
            );
            assert!(r.status >= 200, "{method} {target}");
        }
    }
}

/// CSRF, one test per state-changing route: a browser's request from another
/// origin changes nothing; a link (GET) never ends sessions on the server.
#[test]
fn a_logout_from_another_site_ends_no_session() {
    let world = World::new(&[("auto_signup", "true")]);
    let cookie = session(&world);
    let me = |world: &World| {
        world
            .send(get("/auth/wecom/me").cookie_header(&cookie))
            .status
    };

    // A form on another site (a sibling host under a shared cookie domain
    // sends the SameSite=Lax cookie with it), or Fetch Metadata saying so.
    for (header, value) in [
        ("Origin", "https://evil.example.com"),
        ("Origin", "null"),
        ("Origin", "https://apps.example.com.evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
        // A browser too old for either header, posting a form.
        ("Content-Type", "application/x-www-form-urlencoded"),
    ] {
        let forged = world.send(
            request("POST", "/auth/wecom/logout/")
                .cookie_header(&cookie)
                .with(header, value),
        );
        assert_eq!(forged.status, 403, "{header}: {value}");
        assert!(set_cookie(&forged, "wecom_auth_session").is_none());
        assert!(
            forged
                .audit
                .as_deref()
                .unwrap()
                .contains(r#""outcome":"refused""#)
        );
        assert_eq!(me(&world), 200, "{header}: {value} ended the session");
    }

    // A link (top-level GET, which SameSite=Lax lets through from any site)
    // clears this browser's cookie only: a copy of the token still works.
    let link = world.send(
        get("/auth/wecom/logout")
            .cookie_header(&cookie)
            .with("Sec-Fetch-Site", "cross-site"),
    );
    assert_eq!(link.status, 302);
    assert!(
        set_cookie(&link, "wecom_auth_session")
            .unwrap()
            .starts_with("wecom_auth_session=; Max-Age=0")
    );
    assert!(
        link.audit
            .as_deref()
            .unwrap()
            .contains(r#""outcome":"this-browser""#)
    );
    assert_eq!(me(&world), 200);

    // Our own page's form ends every session. Under our pages'
    // `Referrer-Policy: no-referrer` browsers send `Origin: null` with it,
    // and Fetch Metadata says same-origin.
    let ours = world.send(
        request("POST", "/auth/wecom/logout")
            .cookie_header(&cookie)
            .with("Origin", "null")
            .with("Sec-Fetch-Site", "same-origin"),
    );
    assert_eq!(ours.status, 303);
    assert_eq!(me(&world), 401, "the copied token is ended too");
    // A browser without Fetch Metadata is judged by its `Origin`: the
    // signed-in page makes its form send the real one.
    let world = World::new(&[("auto_signup", "true")]);
    let cookie = session(&world);
    let page = world.send(get("/").cookie_header(&cookie));
    assert!(body(&page).contains("action=\"/auth/wecom/logout\""));
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));
    let older = world.send(
        request("POST", "/auth/wecom/logout")
            .cookie_header(&cookie)
            .with("Origin", "https://apps.example.com"),
    );
    assert_eq!(older.status, 303);
    let again = world.send(get("/auth/wecom/me").cookie_header(&cookie));
    assert_eq!(again.status, 401);
}

#[test]
fn admin_changes_from_another_site_are_refused_even_with_the_token() {
    let world = admin_world();
    for (method, path, body) in [
        ("POST", "/auth/wecom/admin/users", r#"{"name":"王五"}"#),
        (
            "POST",
            "/auth/wecom/admin/users/import",
            r#"[{"name":"王五"}]"#,
        ),
        ("DELETE", "/auth/wecom/admin/users/u-1", ""),
        ("DELETE", "/auth/wecom/admin/bindings/wecom/zhangsan", ""),
    ] {
        let forged = world.send(
            request(method, path)
                .bearer(ADMIN_TOKEN)
                .body("application/json", body)
                .with("Origin", "https://evil.example.com"),
        );
        assert_eq!(forged.status, 403, "{method} {path}");
    }
    let page = world.send(get("/auth/wecom/admin/users").bearer(ADMIN_TOKEN));
    assert_eq!(
        json(&page)["users"].as_array().unwrap().len(),
        0,
        "nothing written"
    );
    // A script (no Origin, no Fetch Metadata) and our own origin may.
    for origin in [None, Some("https://apps.example.com")] {
        let mut upsert = request("POST", "/auth/wecom/admin/users")
            .bearer(ADMIN_TOKEN)
            .body("application/json", r#"{"name":"王五"}"#);
        if let Some(origin) = origin {
            upsert = upsert.with("Origin", origin);
        }
        assert_eq!(world.send(upsert).status, 200, "{origin:?}");
    }
}

// ---- guards that cannot work as configured ----

const AGENT: &str = r#"{"errcode":0,"errmsg":"ok","agentid":1000002,"name":"OA","close":0,"redirect_domain":"app.example.com"}"#;

/// The admin setup check's guards by name: `ok`, and the English hint.
fn guards(world: &World) -> Vec<(String, bool, String)> {
    // WeCom answers only these two (a login may leave some unasked).
    world.wecom.answers.borrow_mut().clear();
    world.answer(TOKEN_OK);
    world.answer(AGENT);
    let setup = world.send(get("/auth/wecom/admin/setup").bearer(ADMIN_TOKEN));
    let setup = json(&setup);
    setup["guards"]
        .as_array()
        .unwrap_or_else(|| panic!("no guards: {setup}"))
        .iter()
        .map(|c| {
            let hint = c["hint_en"].as_str().unwrap_or_default().to_owned();
            (
                c["check"].as_str().unwrap().to_owned(),
                c["ok"] == true,
                hint,
            )
        })
        .collect()
}

fn ready_warnings(world: &World) -> Vec<String> {
    let ready = world.send(get("/auth/wecom/ready"));
    assert_eq!(ready.status, 200, "{}", body(&ready));
    json(&ready)["warnings"]
        .as_array()
        .map(|w| w.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// A proxy that forgets the client-address header turned the per-client
/// limit off in silence; now each login request without it is a warning:
/// in `/ready`, in the setup check, and once in the log. A header holding
/// no address is the same.
#[test]
fn a_login_request_without_a_client_address_is_a_warning_not_a_silent_switch() {
    for (header, value, says) in [
        (None, "", "arrive without the x-real-ip header"),
        (
            Some("X-Real-IP"),
            "unknown, <script>",
            "holds no IP address",
        ),
    ] {
        let world = World::new(&[
            ("client_address_header", "x-real-ip"),
            ("rate_limit_per_client", "2"),
            ("admin_token", ADMIN_TOKEN),
        ]);
        assert!(ready_warnings(&world).is_empty());
        let login = || {
            let request = get("/auth/wecom/login").ua(CHROME);
            world.send(match header {
                Some(name) => request.with(name, value),
                None => request,
            })
        };
        let first = login();
        assert_eq!(first.status, 302, "{}", body(&first));
        let log = first.log.clone().unwrap_or_default();
        assert!(
            log.contains("warning: client-address-header") && log.contains(says),
            "{log}"
        );
        assert!(
            !log.contains("<script>"),
            "the value is never quoted: {log}"
        );
        // Not counted (one shared count would lock every client out), and
        // logged once.
        for _ in 0..3 {
            let again = login();
            assert_eq!(again.status, 302);
            assert_eq!(again.log, None);
        }
        assert_eq!(ready_warnings(&world), ["client-address-header"]);
        let checks = guards(&world);
        let client = checks
            .iter()
            .find(|c| c.0 == "client-address-header")
            .unwrap();
        assert!(!client.1 && client.2.contains(says), "{checks:?}");
        // With the header the limit holds.
        let counted = || {
            world.send(
                get("/auth/wecom/login")
                    .ua(CHROME)
                    .with("X-Real-IP", "203.0.113.9"),
            )
        };
        assert_eq!(counted().status, 302);
        assert_eq!(counted().status, 302);
        assert_eq!(counted().status, 429);
        // An hour without it: no longer listed; seen again, logged again.
        world
            .now
            .set(NOW + crate::core::warnings::ACTIVE_SECONDS + 1);
        assert!(ready_warnings(&world).is_empty());
        assert!(
            login()
                .log
                .unwrap_or_default()
                .contains("client-address-header")
        );
    }
    // The limit off by configuration is no warning.
    let off = World::new(&[
        ("client_address_header", "x-real-ip"),
        ("rate_limit_per_client", "0"),
    ]);
    assert_eq!(off.send(get("/auth/wecom/login").ua(CHROME)).log, None);
    assert!(ready_warnings(&off).is_empty());
}

/// A store whose swap writes over a newer value cannot keep one user per
/// member: `/ready` checks it (once an hour) and lists it, the setup check
/// fails on it, the log says it once. A store that misreports conflicts
/// (Spin 3.6's Redis) but compares passes.
#[test]
fn a_store_without_compare_and_swap_is_a_warning() {
    let world = World::new(&[("admin_token", ADMIN_TOKEN)]);
    world.kv.misreport_swaps.set(true);
    assert!(ready_warnings(&world).is_empty());
    let cas = |world: &World| {
        guards(world)
            .into_iter()
            .find(|c| c.0 == "compare-and-swap")
            .unwrap()
    };
    assert!(cas(&world).1);

    let world = World::new(&[("admin_token", ADMIN_TOKEN)]);
    world.kv.overwrite_swaps.set(true);
    let ready = world.send(get("/auth/wecom/ready"));
    assert_eq!(ready.status, 200);
    let log = ready.log.clone().unwrap_or_default();
    assert!(
        log.contains("warning: compare-and-swap") && log.contains("one user per member"),
        "{log}"
    );
    // By name only: the probe is public.
    assert_eq!(
        json(&ready)["warnings"],
        serde_json::json!(["compare-and-swap"])
    );
    // Checked once an hour: the next probes only read.
    let again = world.send(get("/auth/wecom/ready"));
    assert_eq!(again.log, None);
    assert_eq!(ready_warnings(&world), ["compare-and-swap"]);
    let (_, ok, hint) = cas(&world);
    assert!(!ok && hint.contains("atomic compare-and-swap"), "{hint}");
    // The store mended: the setup check's live check clears it.
    world.kv.overwrite_swaps.set(false);
    assert!(cas(&world).1);
    assert!(ready_warnings(&world).is_empty());
}

/// A host clock far off WeCom's (the `Date` of its answers) is a warning:
/// login states, sessions and cached facts are timed by it.
#[test]
fn a_clock_far_off_wecoms_is_a_warning() {
    let world = World::new(&[("admin_token", ADMIN_TOKEN), ("auto_signup", "true")]);
    // Within a minute: nothing.
    world.wecom_clock.set(Some(NOW - 50));
    let done = world.log_in_in_client("/", true);
    assert_eq!(done.status, 302, "{}", body(&done));
    assert!(!done.log.unwrap_or_default().contains("clock"));
    // (These requests carry no client address: that warning is listed.)
    assert!(!ready_warnings(&world).contains(&"clock".to_owned()));
    // Ten minutes behind WeCom.
    world.wecom_clock.set(Some(NOW + 600));
    let done = world.log_in_in_client("/", false);
    assert_eq!(done.status, 302, "{}", body(&done));
    let log = done.log.unwrap_or_default();
    assert!(
        log.contains("warning: clock: this host's clock is 600 s behind WeCom's"),
        "{log}"
    );
    assert!(ready_warnings(&world).contains(&"clock".to_owned()));
    let checks = guards(&world);
    assert!(checks.iter().any(|c| c.0 == "clock" && !c.1), "{checks:?}");
    // Set right: the setup check's own `gettoken` says so at once.
    world.wecom_clock.set(Some(NOW));
    let checks = guards(&world);
    assert!(checks.iter().any(|c| c.0 == "clock" && c.1), "{checks:?}");
}

// ---- outages ----

/// A login or `/verify` the store or WeCom could not serve gets an answer
/// that says so and when to try again: 503 (store) or 502 (WeCom) with
/// `Retry-After`, a page naming the cause, never a 401 that would send a
/// signed-in member to log in again.
#[test]
fn outages_answer_retry_after_and_name_the_cause() {
    use host_drafts::keyvalue::Op;
    let world = World::new(&[("auto_signup", "true")]);
    let cookie = session(&world);
    // WeCom refuses connections in the middle of a login.
    let login = world.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    for _ in 0..4 {
        let refused = Err("connecting failed: connection refused".to_owned());
        world.wecom.answers.borrow_mut().push_back(refused);
    }
    let failed = world.send(callback_for(&login).ua(WECOM_IPHONE));
    assert_eq!(failed.status, 502, "{}", body(&failed));
    assert_eq!(failed.header("retry-after"), Some("5"));
    assert!(
        body(&failed).contains("暂时无法连接企业微信"),
        "{}",
        body(&failed)
    );
    world.wecom.answers.borrow_mut().clear();
    // The store stops answering: a login, a `/verify`, JSON and pages.
    for op in Op::ALL {
        world.kv.faults().fail_op(op, 1000);
    }
    // Starting a login needs no store (the state is signed); finishing
    // one does.
    let begun = world.send(
        get("/auth/wecom/login")
            .ua(CHROME)
            .with("Accept-Language", "en"),
    );
    assert_eq!(begun.status, 302, "{}", body(&begun));
    world.answer(USERINFO_WEB);
    let back = world.send(
        callback_for(&begun)
            .ua(CHROME)
            .with("Accept-Language", "en"),
    );
    assert_eq!(back.status, 503, "{}", body(&back));
    assert_eq!(back.header("retry-after"), Some("5"));
    assert!(
        body(&back).contains("temporarily unavailable"),
        "{}",
        body(&back)
    );
    let verify = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(verify.status, 503, "{}", body(&verify));
    assert_eq!(verify.header("retry-after"), Some("5"));
    let me = world.send(get("/auth/wecom/me").cookie_header(&cookie));
    assert_eq!((me.status, me.header("retry-after")), (503, Some("5")));
    assert_eq!(json(&me)["error"]["category"], "store-unavailable");
    // A logout the store cannot record says so (the sessions live on) and
    // keeps this browser's cookie, so trying again ends them.
    let out = world.send(
        request("POST", "/auth/wecom/logout")
            .cookie_header(&cookie)
            .with("Sec-Fetch-Site", "same-origin")
            .with("Accept", "application/json"),
    );
    assert_eq!((out.status, out.header("retry-after")), (503, Some("5")));
    assert_eq!(json(&out)["error"]["category"], "store-unavailable");
    assert!(
        set_cookie(&out, "wecom_auth_session").is_none(),
        "kept, to try again"
    );
    assert!(
        out.audit
            .as_deref()
            .unwrap_or_default()
            .contains(r#""outcome":"error""#)
    );
    // Back: the session issued before the outage still holds.
    world.kv.faults().clear();
    let verify = world.send(get("/auth/wecom/verify").cookie_header(&cookie));
    assert_eq!(verify.status, 200, "{}", body(&verify));
}

/// A host that refuses the timeouts of calls to WeCom turns
/// `api_timeout_ms` off: a warning, logged once (not once per call).
#[test]
fn a_host_that_refuses_call_timeouts_is_a_warning() {
    let world = World::new(&[("admin_token", ADMIN_TOKEN), ("auto_signup", "true")]);
    let done = world.log_in_in_client("/", true);
    assert!(!done.log.unwrap_or_default().contains("api-timeout"));
    world.refuses_timeouts.set(true);
    let done = world.log_in_in_client("/", false);
    assert_eq!(done.status, 302, "{}", body(&done));
    let log = done.log.unwrap_or_default();
    assert_eq!(log.matches("warning: api-timeout").count(), 1, "{log}");
    assert!(log.contains("api_timeout_ms"), "{log}");
    assert!(ready_warnings(&world).contains(&"api-timeout".to_owned()));
    let checks = guards(&world);
    assert!(
        checks.iter().any(|c| c.0 == "api-timeout" && !c.1),
        "{checks:?}"
    );
}

// ---- silent in-client logins ----

/// An in-client login starts silent (`snsapi_base`): a member already bound
/// is logged in by `auth/getuserinfo` alone; one not bound yet is sent back
/// to WeCom once, with `snsapi_privateinfo`, to the same return path, and
/// is matched by the mobile the consent yields.
#[test]
fn a_silent_login_asks_the_consent_only_of_a_member_not_bound_yet() {
    let world = World::new(&[("auto_signup", "true")]);
    let silent = r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan"}"#;
    let start = world.send(get("/auth/wecom/login?return_to=/reports").ua(WECOM_IPHONE));
    assert!(location(&start).contains("scope=snsapi_base&"));
    world.answer(TOKEN_OK);
    world.answer(silent);
    world.answer(USER_GET);
    let bounce = world.send(callback_for(&start).ua(WECOM_IPHONE));
    assert_eq!(bounce.status, 302, "{}", body(&bounce));
    assert!(
        location(&bounce).contains("scope=snsapi_privateinfo&"),
        "{}",
        location(&bounce)
    );
    assert!(set_cookie(&bounce, "wecom_auth_session").is_none());
    // gettoken, getuserinfo, and user/get: a member outside the visible
    // range or refused by the rules is not asked for the consent.
    assert_eq!(world.wecom.sent.borrow().len(), 3);
    // WeCom opens the callback twice: the second goes to the consent too.
    let twice = world.send(callback_for(&start).ua(WECOM_IPHONE));
    assert_eq!(twice.status, 302, "{}", body(&twice));
    assert!(location(&twice).contains("scope=snsapi_privateinfo&"));
    assert_eq!(
        world.wecom.sent.borrow().len(),
        3,
        "no WeCom call for the repeat"
    );
    // The consent given: matched, signed up, landed where the link pointed.
    world.answer(USERINFO_IN_CLIENT);
    world.answer(USERDETAIL);
    world.answer(USER_GET);
    let done = world.send(callback_for(&bounce).ua(WECOM_IPHONE));
    assert_eq!(done.status, 302, "{}", body(&done));
    assert_eq!(location(&done), "/reports");
    assert!(set_cookie(&done, "wecom_auth_session").is_some());
    // Bound now: the next silent login is one WeCom call, no consent.
    let again = world.send(get("/auth/wecom/login?return_to=/inbox").ua(WECOM_IPHONE));
    assert!(location(&again).contains("scope=snsapi_base&"));
    let before = world.wecom.sent.borrow().len();
    world.answer(silent);
    let done = world.send(callback_for(&again).ua(WECOM_IPHONE));
    assert_eq!(done.status, 302, "{}", body(&done));
    assert_eq!(location(&done), "/inbox");
    assert!(set_cookie(&done, "wecom_auth_session").is_some());
    assert_eq!(
        world.wecom.sent.borrow().len(),
        before + 1,
        "auth/getuserinfo only"
    );
    // A consent already asked and declined is not asked again: today's
    // answer (a member not matched) instead of a loop.
    let other = World::new(&[]);
    let start = other.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    other.answer(TOKEN_OK);
    other.answer(silent);
    other.answer(USER_GET);
    let bounce = other.send(callback_for(&start).ua(WECOM_IPHONE));
    assert!(location(&bounce).contains("scope=snsapi_privateinfo&"));
    other.answer(silent);
    other.answer(USER_GET);
    let declined = other.send(callback_for(&bounce).ua(WECOM_IPHONE));
    assert_eq!(declined.status, 403, "{}", body(&declined));
    assert!(
        body(&declined).contains("用户不存在"),
        "{}",
        body(&declined)
    );
    // Outside the app's visible range: refused at once, no consent asked.
    let outside = World::new(&[]);
    let start = outside.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    outside.answer(TOKEN_OK);
    outside.answer(silent);
    outside.answer(
        r#"{"errcode":60011,"errmsg":"no privilege to access/modify contact/party/agent"}"#,
    );
    let refused = outside.send(callback_for(&start).ua(WECOM_IPHONE));
    assert_eq!(refused.status, 403, "{}", body(&refused));
    assert!(!location(&refused).contains("snsapi_privateinfo"));
}

/// `in_client_scope=snsapi_privateinfo` asks every member's consent: a
/// member already bound is answered at once and what the consent yields
/// (`getuserdetail`: the email here) is written after the answer; a wrong
/// value names the variable.
#[test]
fn in_client_scope_privateinfo_asks_the_consent_at_every_login() {
    let world = World::new(&[
        ("auto_signup", "true"),
        ("in_client_scope", "snsapi_privateinfo"),
    ]);
    let first = world.log_in_in_client("/", true);
    assert!(set_cookie(&first, "wecom_auth_session").is_some());
    let start = world.send(get("/auth/wecom/login?return_to=/inbox").ua(WECOM_IPHONE));
    assert!(
        location(&start).contains("scope=snsapi_privateinfo&"),
        "{}",
        location(&start)
    );
    world.answer(USERINFO_IN_CLIENT);
    let done = world.send(callback_for(&start).ua(WECOM_IPHONE));
    assert_eq!(location(&done), "/inbox", "{}", body(&done));
    assert!(set_cookie(&done, "wecom_auth_session").is_some());
    // After the answer: getuserdetail with the ticket, and user/get.
    world.answer(&USERDETAIL.replace("z@corp.work", "zhang.san@corp.work"));
    world.answer(USER_GET);
    let deferred = done.deferred.as_ref().expect("a refresh after the answer");
    assert_eq!(
        after_response(deferred, &world.kv, &world.wecom, world.now.get()),
        None
    );
    let user = crate::core::directory::find_by_binding(&world.kv, &member("zhangsan"))
        .unwrap()
        .unwrap();
    assert_eq!(user.email.as_deref(), Some("zhang.san@corp.work"));

    let wrong = World::new(&[("in_client_scope", "privateinfo")]);
    let page = wrong.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    assert_eq!(page.status, 500);
    assert!(body(&page).contains("in_client_scope"), "{}", body(&page));
    assert!(
        body(&page).contains("snsapi_privateinfo"),
        "{}",
        body(&page)
    );
}

// ---- WeCom's callbacks: contact changes ----

const CALLBACK_TOKEN: &str = "QDG6eK";
const CALLBACK_AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "ww0123456789abcdef";

fn with_callbacks(more: &[(&str, &str)]) -> World {
    let mut settings = vec![
        ("auto_signup", "true"),
        ("callback_token", CALLBACK_TOKEN),
        ("callback_aes_key", CALLBACK_AES_KEY),
    ];
    settings.extend_from_slice(more);
    World::new(&settings)
}

fn callback_keys() -> crate::core::events::CallbackKeys {
    crate::core::events::CallbackKeys::new(CALLBACK_TOKEN, CALLBACK_AES_KEY).unwrap()
}

/// A contact change as WeCom POSTs it: `message` encrypted for `corp`,
/// signed, at `timestamp` with `nonce`.
fn contact_change(message: &str, corp: &str, timestamp: u64, nonce: &str) -> Request {
    let keys = callback_keys();
    let encrypted = keys.encrypt(message, corp, &[9; 16]);
    let signature = keys.signature(&timestamp.to_string(), nonce, &encrypted);
    let body = format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
    );
    request(
        "POST",
        &format!(
            "/auth/wecom/events?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        ),
    )
    .body("text/xml", &body)
}

fn change_xml(change_type: &str, userid: &str, more: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
         <ChangeType>{change_type}</ChangeType><UserID><![CDATA[{userid}]]></UserID>{more}</xml>"
    )
}

/// WeCom's URL check: the echostr decrypted is the answer; a wrong
/// signature is refused and audited.
#[test]
fn wecoms_url_check_is_answered_with_the_decrypted_echostr() {
    let world = with_callbacks(&[]);
    let keys = callback_keys();
    let echostr = keys.encrypt("5927782489442352469", CORP, &[3; 16]);
    let signature = keys.signature(&NOW.to_string(), "1597212914", &echostr);
    let encoded = url::form_urlencoded::byte_serialize(echostr.as_bytes()).collect::<String>();
    let target = format!(
        "/auth/wecom/events?msg_signature={signature}&timestamp={NOW}&nonce=1597212914&echostr={encoded}"
    );
    let answer = world.send(get(&target));
    assert_eq!(answer.status, 200, "{}", body(&answer));
    assert_eq!(body(&answer), "5927782489442352469");
    let forged = target.replace(&signature[..4], "0000");
    let refused = world.send(get(&forged));
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .audit
            .as_deref()
            .unwrap()
            .contains("callback-refused")
    );
    // Not configured: no such route.
    assert_eq!(World::new(&[]).send(get(&target)).status, 404);
}

/// A member deleted in WeCom: their session ends at once (the next
/// `/verify` is 401), audited; a replay of the same delivery changes
/// nothing; forged, foreign, stale and malformed deliveries are refused.
#[test]
fn a_deleted_member_loses_the_session_at_once_and_replays_change_nothing() {
    let world = with_callbacks(&[]);
    let cookie = session(&world);
    let verify = || {
        world
            .send(get("/auth/wecom/verify").cookie_header(&cookie))
            .status
    };
    assert_eq!(verify(), 200);
    // Refused, and the session lives on.
    let deleted = change_xml("delete_user", "zhangsan", "");
    let mut forged = contact_change(&deleted, CORP, NOW, "1");
    let signature = query_param(&forged.path_and_query, "msg_signature").unwrap();
    forged.path_and_query = forged.path_and_query.replace(&signature, &"0".repeat(40));
    for (attack, status) in [
        (forged, 403),
        (contact_change(&deleted, "wwother", NOW, "2"), 403),
        (contact_change(&deleted, CORP, NOW - 601, "3"), 403),
        (contact_change("<xml><unclosed></xml>", CORP, NOW, "4"), 400),
        (
            contact_change(&deleted, CORP, NOW, "5").body("text/xml", "<xml>not WeCom's</xml>"),
            400,
        ),
        (
            contact_change(&deleted, CORP, NOW, "6").body("text/xml", &"<xml>".repeat(20_000)),
            400,
        ),
    ] {
        let target = attack.path_and_query.clone();
        let answer = world.send(attack);
        assert_eq!(answer.status, status, "{target}: {}", body(&answer));
        assert!(
            answer
                .audit
                .as_deref()
                .unwrap()
                .contains("callback-refused")
        );
        assert_eq!(verify(), 200, "{target} changed nothing");
    }
    let delivery = contact_change(&deleted, CORP, NOW, "7");
    let done = world.send(delivery.clone());
    assert_eq!(done.status, 200, "{}", body(&done));
    assert!(done.body.is_empty());
    let line = done.audit.as_deref().unwrap();
    assert!(
        line.contains("\"event\":\"contact-change\"") && line.contains("sessions-ended"),
        "{line}"
    );
    assert_eq!(verify(), 401, "the session ended");
    // The member logs in again (WeCom still lists them here); the replayed
    // delivery is refused and ends nothing.
    let again = world.log_in_in_client("/", false);
    assert_eq!(again.status, 302, "{}", body(&again));
    let again = cookie_pair(&again, "wecom_auth_session");
    // The same signature spelt in capitals is not another delivery.
    let mut shouted = delivery.clone();
    let signature = query_param(&shouted.path_and_query, "msg_signature").unwrap();
    shouted.path_and_query = shouted
        .path_and_query
        .replace(&signature, &signature.to_ascii_uppercase());
    assert_eq!(world.send(shouted).status, 400);
    let replay = world.send(delivery);
    assert_eq!(replay.status, 409);
    assert_eq!(
        world
            .send(get("/auth/wecom/verify").cookie_header(&again))
            .status,
        200
    );
    // A member we never saw: acknowledged, nothing stored.
    let stranger = world.send(contact_change(
        &change_xml("delete_user", "nobody", ""),
        CORP,
        NOW,
        "8",
    ));
    assert_eq!(stranger.status, 200);
    assert!(stranger.audit.as_deref().unwrap().contains("ignored"));
}

/// WeCom lets a userid change once: the binding follows, so the renamed
/// member's next login finds the same user. Disabled (Status 2) ends the
/// sessions; with `leaver_action=unbind` the binding goes too.
#[test]
fn a_renamed_member_keeps_the_user_and_a_disabled_one_can_be_unbound() {
    use crate::core::directory::find_by_binding;
    let world = with_callbacks(&[]);
    session(&world);
    let user = find_by_binding(&world.kv, &member("zhangsan"))
        .unwrap()
        .unwrap();
    let renamed = change_xml(
        "update_user",
        "zhangsan",
        "<NewUserID><![CDATA[zhangsan2]]></NewUserID>",
    );
    let done = world.send(contact_change(&renamed, CORP, NOW, "1"));
    assert_eq!(done.status, 200, "{}", body(&done));
    assert!(done.audit.as_deref().unwrap().contains("renamed"));
    assert_eq!(
        find_by_binding(&world.kv, &member("zhangsan")).unwrap(),
        None
    );
    let moved = find_by_binding(&world.kv, &member("zhangsan2"))
        .unwrap()
        .unwrap();
    assert_eq!(moved.id, user.id);

    let world = with_callbacks(&[("leaver_action", "unbind")]);
    let cookie = session(&world);
    let disabled = change_xml("update_user", "zhangsan", "<Status>2</Status>");
    assert_eq!(
        world.send(contact_change(&disabled, CORP, NOW, "2")).status,
        200
    );
    assert_eq!(
        world
            .send(get("/auth/wecom/verify").cookie_header(&cookie))
            .status,
        401
    );
    assert_eq!(
        find_by_binding(&world.kv, &member("zhangsan")).unwrap(),
        None
    );
    // Bad settings name their variable.
    let wrong_key = "aWrongKeyOf43CharactersDO-NOT-LEAK-012345!";
    for (variable, value) in [("leaver_action", "delete"), ("callback_aes_key", wrong_key)] {
        let page = with_callbacks(&[(variable, value)]).send(get("/auth/wecom/"));
        assert_eq!(page.status, 500);
        assert!(body(&page).contains(variable), "{}", body(&page));
        assert!(!body(&page).contains("DO-NOT-LEAK"), "{}", body(&page));
        assert!(
            !page
                .log
                .as_deref()
                .unwrap_or_default()
                .contains("DO-NOT-LEAK")
        );
    }
    let half = World::new(&[("callback_token", CALLBACK_TOKEN)]).send(get("/auth/wecom/"));
    assert!(body(&half).contains("callback_aes_key"), "{}", body(&half));
}

/// The URL check echoes only an echostr: a delivery's ciphertext replayed
/// as `echostr` (same query, same signature) is not decrypted for whoever
/// saw it. A delivery to another authenticator's URL is refused; XML
/// nested deep within the size limit is read without harm, and changes
/// nothing.
#[test]
fn the_url_check_never_decrypts_a_delivery_and_foreign_or_nested_bodies_are_refused() {
    let world = with_callbacks(&[]);
    let message = change_xml("delete_user", "zhangsan", "");
    let delivery = contact_change(&message, CORP, NOW, "11");
    let encrypted = body(&Response {
        body: delivery.body.clone(),
        ..Response::default()
    })
    .split("<Encrypt><![CDATA[")
    .nth(1)
    .unwrap()
    .split("]]>")
    .next()
    .unwrap()
    .to_owned();
    let encoded = url::form_urlencoded::byte_serialize(encrypted.as_bytes()).collect::<String>();
    let replayed = world.send(get(&format!(
        "{}&echostr={encoded}",
        delivery.path_and_query
    )));
    assert_eq!(replayed.status, 400, "{}", body(&replayed));
    assert!(!body(&replayed).contains("zhangsan"), "{}", body(&replayed));
    assert!(!body(&replayed).contains("<xml>"));

    // Two authenticators, each with its own keys: hq's delivery at branch's URL.
    let two = World::new(&[
        ("authenticators", "hq,branch"),
        ("branch_agent_id", "1000009"),
        ("hq_callback_token", CALLBACK_TOKEN),
        ("hq_callback_aes_key", CALLBACK_AES_KEY),
        ("branch_callback_token", "BranchToken"),
        (
            "branch_callback_aes_key",
            "YnJhbmNoJ3MgRW5jb2RpbmdBRVNLZXksIDMyIGJ5dGU",
        ),
    ]);
    let mut foreign = contact_change(&message, CORP, NOW, "12");
    foreign.path_and_query = foreign
        .path_and_query
        .replace("/events?", "/events/branch?");
    assert_eq!(two.send(foreign).status, 403);
    let mut own = contact_change(&message, CORP, NOW, "13");
    own.path_and_query = own.path_and_query.replace("/events?", "/events/hq?");
    assert_eq!(two.send(own).status, 200);
    // With several authenticators, `/events` alone names none.
    assert_eq!(
        two.send(contact_change(&message, CORP, NOW, "14")).status,
        404
    );

    // Deep nesting under the 64 KiB limit, signed and encrypted.
    let nested = format!("<xml>{}{}</xml>", "<a>".repeat(6_000), "</a>".repeat(6_000));
    let deep = world.send(contact_change(&nested, CORP, NOW, "15"));
    // Read without harm (quick-xml skips what it does not know, without
    // recursing) and acknowledged: it is no contact change.
    assert_eq!(deep.status, 200, "{}", body(&deep));
    assert!(deep.body.is_empty() && deep.audit.is_none());
}

/// WeCom gives a userid to one member at a time: renaming zhangsan to a
/// userid a leaver's kept binding still holds moves that binding to
/// zhangsan's user, and the leaver's user loses it (and its sessions).
#[test]
fn a_rename_onto_a_kept_leavers_userid_never_lands_in_the_leavers_account() {
    use crate::core::directory::find_by_binding;
    let world = with_callbacks(&[("leaver_action", "keep")]);
    session(&world);
    let zhangsan = find_by_binding(&world.kv, &member("zhangsan"))
        .unwrap()
        .unwrap();
    // lisi signs up, leaves; the binding is kept.
    world.answer(r#"{"errcode":0,"errmsg":"ok","userid":"lisi","user_ticket":"T2"}"#);
    let start = world.send(get("/auth/wecom/login").ua(WECOM_IPHONE));
    world.answer(r#"{"errcode":0,"errmsg":"ok","userid":"lisi","mobile":"13900000001"}"#);
    world.answer(r#"{"errcode":0,"errmsg":"ok","userid":"lisi","name":"李四","department":[1]}"#);
    let lisi_login = world.send(callback_for(&start).ua(WECOM_IPHONE));
    assert_eq!(lisi_login.status, 302, "{}", body(&lisi_login));
    let lisi = find_by_binding(&world.kv, &member("lisi"))
        .unwrap()
        .unwrap();
    let lisi_session = cookie_pair(&lisi_login, "wecom_auth_session");
    let deleted = change_xml("delete_user", "lisi", "");
    assert_eq!(
        world.send(contact_change(&deleted, CORP, NOW, "21")).status,
        200
    );
    let renamed = change_xml(
        "update_user",
        "zhangsan",
        "<NewUserID><![CDATA[lisi]]></NewUserID>",
    );
    assert_eq!(
        world.send(contact_change(&renamed, CORP, NOW, "22")).status,
        200
    );
    let now_lisi = find_by_binding(&world.kv, &member("lisi"))
        .unwrap()
        .unwrap();
    assert_eq!(now_lisi.id, zhangsan.id, "the renamed member's own user");
    assert_ne!(lisi.id, zhangsan.id);
    let old = crate::core::directory::find_by_id(&world.kv, &lisi.id)
        .unwrap()
        .unwrap();
    assert!(
        !old.is_bound_to(&member("lisi")),
        "the leaver's user lost it"
    );
    let verify = get("/auth/wecom/verify").cookie_header(&lisi_session);
    assert_eq!(world.send(verify).status, 401);
}

/// `leaver_action = disable`: a deleted member's user is disabled. The
/// member's next login is refused (403, the page says why), and so is
/// a sign-up or a mobile match of anyone for that user, until an admin
/// provisions it again.
#[test]
fn a_disabled_leavers_user_takes_no_login_until_the_admin_provisions_it() {
    let world = with_callbacks(&[("leaver_action", "disable"), ("admin_token", ADMIN_TOKEN)]);
    let cookie = session(&world);
    let signup_user = crate::core::directory::signup_id(&member("zhangsan"));
    let deleted = change_xml("delete_user", "zhangsan", "");
    assert_eq!(
        world.send(contact_change(&deleted, CORP, NOW, "31")).status,
        200
    );
    assert_eq!(
        world
            .send(get("/auth/wecom/verify").cookie_header(&cookie))
            .status,
        401
    );
    let user = crate::core::directory::find_by_id(&world.kv, &signup_user)
        .unwrap()
        .unwrap();
    assert!(user.disabled);
    assert!(user.bindings.is_empty(), "{user:?}");
    // The same userid logs in again (WeCom gave it back, or to someone else).
    world.now.set(NOW + 3_601);
    let again = world.log_in_in_client("/", false);
    assert_eq!(again.status, 403, "{}", body(&again));
    assert!(body(&again).contains("已停用"), "{}", body(&again));
    assert!(set_cookie(&again, "wecom_auth_session").is_none());
    // The admin provisions the user again: enabled.
    let upsert = world.send(
        request("POST", "/auth/wecom/admin/users")
            .bearer(ADMIN_TOKEN)
            .body(
                "application/json",
                &format!(
                    r#"{{"id":"{}","name":"张三","mobile":"13800000000"}}"#,
                    user.id
                ),
            ),
    );
    assert_eq!(upsert.status, 200, "{}", body(&upsert));
    let back = world.log_in_in_client("/", false);
    assert_eq!(back.status, 302, "{}", body(&back));
}
