//! Routing and the login routes: login page, `/login`, `/callback`,
//! `/logout`, `/me`, `/verify`, and the site root / protected paths.

use serde::Serialize;
use url::form_urlencoded;

use super::config::{ConfigProblem, Entry, FrontConfig, parse_config};
use super::html::{self, Choice, ErrorPage, Text};
use super::http::{self, Params};
use super::{
    Env, MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET, RANDOM_LEN, Request, Response, admin,
};
use crate::core::browser::{self, Language};
use crate::core::cookie::PRE_AUTH_COOKIE;
use crate::core::directory::{self, User};
use crate::core::error::{AuthError, Category, errcode};
use crate::core::login::{self, AuthorizeRequest, CallbackRequest, LoginFlow, Session};
use crate::core::ports::{KeyValue, Transport};
use crate::core::return_path;
use crate::core::session::{self, MAX_SESSION_TOKEN};
use crate::core::settings::SettingsError;
use crate::core::state::{self, RANDOM_BYTES, StateRejection};

const _: () = assert!(RANDOM_BYTES <= RANDOM_LEN);

/// One request with its configuration, parsed once.
pub(super) struct Ctx<'a, 'e, K, T> {
    pub request: &'a Request,
    pub env: &'a Env<'e, K, T>,
    pub config: &'a FrontConfig,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub params: Params,
    pub language: Language,
    /// Whether the request named a language (query, UA or Accept-Language).
    pub language_known: bool,
    pub json: bool,
}

pub(super) fn dispatch<K: KeyValue, T: Transport>(
    request: &Request,
    env: &Env<'_, K, T>,
) -> Response {
    if let Some(refused) = oversized(request) {
        return refused;
    }
    let (path, query) = request.split_target();
    if !path.starts_with('/') {
        return plain(400, "bad request target");
    }
    let params = Params::parse(query);
    let (language, language_known) = http::language(request, &params);
    let json = request.prefers_json() || is_api_path(path);
    let map = match env.config {
        Ok(map) => map,
        Err(why) => {
            let problem = ConfigProblem {
                variable: "wasi:config/store".into(),
                authenticator: None,
                problem: format!("the configuration could not be read: {why}"),
            };
            return config_error(language, json, &[problem]);
        }
    };
    let config = match parse_config(map) {
        Ok(config) => config,
        Err(problems) => return config_error(language, json, &problems),
    };
    let ctx = Ctx {
        request,
        env,
        config: &config,
        path,
        query,
        params,
        language,
        language_known,
        json,
    };
    route(&ctx)
}

/// Bounded inputs: target, headers, body.
fn oversized(request: &Request) -> Option<Response> {
    if request.path_and_query.len() > MAX_TARGET {
        return Some(plain(414, "request target too long"));
    }
    let header_bytes: usize = request.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if request.headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(plain(431, "request headers too large"));
    }
    if request.body_truncated || request.body.len() > MAX_BODY {
        return Some(plain(413, "request body too large"));
    }
    None
}

fn plain(status: u16, text: &str) -> Response {
    Response::new(status)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_body(format!("{text}\n"))
}

impl Response {
    fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// Paths that answer JSON whatever `Accept` says, before the prefix is known.
fn is_api_path(path: &str) -> bool {
    path.ends_with("/me") || path.ends_with("/verify") || path.contains("/admin/")
}

fn route<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let get = ["GET", "HEAD"];
    if let Some(rest) = ctx.path.strip_prefix(ctx.config.route_prefix.as_str())
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return match rest {
            "" | "/" => only(ctx, &get, || login_page(ctx, return_to_param(ctx))),
            "/login" => only(ctx, &get, || login(ctx)),
            // Not HEAD: a HEAD would spend the code.
            "/callback" => only(ctx, &["GET"], || callback(ctx)),
            "/logout" => only(ctx, &["GET", "POST"], || logout(ctx)),
            "/me" => only(ctx, &get, || me(ctx)),
            // Proxies send the original method (or GET): any method.
            "/verify" => verify(ctx),
            _ => match rest.strip_prefix("/admin") {
                Some(admin) if admin.is_empty() || admin.starts_with('/') => {
                    admin::handle(ctx, admin)
                }
                _ => not_found(ctx),
            },
        };
    }
    site(ctx)
}

fn only<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    methods: &[&str],
    answer: impl FnOnce() -> Response,
) -> Response {
    if methods.contains(&ctx.request.method.as_str()) {
        answer()
    } else {
        method_not_allowed(ctx, methods)
    }
}

pub(super) fn method_not_allowed<K, T>(ctx: &Ctx<'_, '_, K, T>, methods: &[&str]) -> Response {
    let message = "method not allowed";
    let response = if ctx.json {
        Response::json(405, &ErrorJson::plain("bad-request", 405, message).body())
    } else {
        plain(405, message)
    };
    response.with_header("allow", methods.join(", "))
}

pub(super) fn not_found<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    error_response(ctx, &AuthError::NotFound("no such page".into()), None)
}

// ---- errors ----

pub(super) fn category_name(category: Category) -> &'static str {
    match category {
        Category::BadRequest => "bad-request",
        Category::LoginRejected => "login-rejected",
        Category::AccessDenied => "access-denied",
        Category::SessionInvalid => "session-invalid",
        Category::WecomUnavailable => "wecom-unavailable",
        Category::StoreUnavailable => "store-unavailable",
        Category::Misconfigured => "misconfigured",
        Category::Conflict => "conflict",
        Category::NotFound => "not-found",
    }
}

fn title(category: Category) -> Text {
    let (en, zh) = match category {
        Category::BadRequest => ("Bad request", "请求有误"),
        Category::LoginRejected => ("Login failed", "登录失败"),
        Category::AccessDenied => ("Cannot log in", "无法登录"),
        Category::SessionInvalid => ("Not signed in", "未登录"),
        Category::WecomUnavailable => ("WeCom unavailable", "企业微信暂不可用"),
        Category::StoreUnavailable => ("Service unavailable", "服务暂不可用"),
        Category::Misconfigured => ("Configuration error", "配置有误"),
        Category::Conflict => ("Conflict", "数据冲突"),
        Category::NotFound => ("Not found", "页面不存在"),
    };
    Text { en, zh }
}

/// `{"error": {...}}`: every JSON failure.
#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub error: ErrorJson<'a>,
}

/// `{category, status, message, admin_hint, errcode?, detail?, problems?}`.
#[derive(Serialize)]
pub(super) struct ErrorJson<'a> {
    pub category: &'static str,
    pub status: u16,
    pub message: &'a str,
    pub admin_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i32>,
    /// What exactly went wrong: for the admin API only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub problems: &'a [ConfigProblem],
}

impl<'a> ErrorJson<'a> {
    pub fn of(e: &AuthError, language: Language) -> ErrorJson<'static> {
        ErrorJson {
            category: category_name(e.category()),
            status: e.status(),
            message: e.member_message(language),
            admin_hint: e.admin_hint(),
            errcode: match e {
                AuthError::Wecom(w) => Some(w.errcode),
                _ => None,
            },
            detail: None,
            problems: &[],
        }
    }

    pub fn plain(category: &'static str, status: u16, message: &'a str) -> Self {
        ErrorJson {
            category,
            status,
            message,
            admin_hint: None,
            errcode: None,
            detail: None,
            problems: &[],
        }
    }

    pub fn body(self) -> ErrorBody<'a> {
        ErrorBody { error: self }
    }
}

/// For the operator's log: server-side failures only, never a secret.
pub(super) fn log_line<K, T>(ctx: &Ctx<'_, '_, K, T>, e: &AuthError) -> Option<String> {
    (e.status() >= 500).then(|| format!("wecom-auth: {} {}: {e}", ctx.request.method, ctx.path))
}

/// An error as a page (or JSON when asked for), `authenticator` naming the
/// login to start again.
pub(super) fn error_response<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    e: &AuthError,
    authenticator: Option<&str>,
) -> Response {
    let mut response = if ctx.json {
        Response::json(e.status(), &ErrorJson::of(e, ctx.language).body())
    } else {
        let category = e.category();
        let retry = matches!(
            category,
            Category::BadRequest
                | Category::LoginRejected
                | Category::SessionInvalid
                | Category::WecomUnavailable
                | Category::StoreUnavailable
        )
        .then(|| {
            (
                html::LOG_IN_AGAIN.get(ctx.language),
                login_href(&ctx.config.route_prefix, authenticator, None),
            )
        });
        let page = ErrorPage {
            title: title(category).get(ctx.language),
            message: e.member_message(ctx.language),
            status: e.status(),
            errcode: match e {
                AuthError::Wecom(w) => Some(w.errcode),
                _ => None,
            },
            admin: e.admin_hint().into_iter().collect(),
            retry,
        };
        Response::html(e.status(), html::error_page(ctx.language, &page))
    };
    response.log = log_line(ctx, e);
    response
}

/// Every route answers this while the configuration is unusable.
fn config_error(language: Language, json: bool, problems: &[ConfigProblem]) -> Response {
    let e = AuthError::InvalidSettings(SettingsError {
        authenticator: String::new(),
        field: String::new(),
        message: String::new(),
    });
    let message = e.member_message(language);
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match &p.authenticator {
            Some(a) => format!("{}: {} (authenticator {a})", p.variable, p.problem),
            None => format!("{}: {}", p.variable, p.problem),
        })
        .collect();
    let mut response = if json {
        let error = ErrorJson {
            admin_hint: Some(
                "fix the configuration variables (Spin variables) listed in problems".into(),
            ),
            problems,
            ..ErrorJson::plain("misconfigured", 500, message)
        };
        Response::json(500, &error.body())
    } else {
        let page = ErrorPage {
            title: title(Category::Misconfigured).get(language),
            message,
            status: 500,
            errcode: None,
            admin: lines.clone(),
            retry: None,
        };
        Response::html(500, html::error_page(language, &page))
    };
    response.log = Some(format!("wecom-auth: configuration: {}", lines.join("; ")));
    response
}

// ---- login ----

/// `{prefix}/login?authenticator=..&return_to=..`.
pub(super) fn login_href(
    prefix: &str,
    authenticator: Option<&str>,
    return_to: Option<&str>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(name) = authenticator {
        query.append_pair("authenticator", name);
    }
    if let Some(path) = return_to {
        query.append_pair("return_to", path);
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{prefix}/login")
    } else {
        format!("{prefix}/login?{query}")
    }
}

fn return_to_param<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<String> {
    ctx.params.get("return_to").and_then(return_path::sanitize)
}

fn label(entry: &Entry, count: usize, language: Language) -> String {
    match &entry.display_name {
        Some(name) => name.clone(),
        None if count == 1 => html::LOG_IN_WITH_WECOM.get(language).to_owned(),
        None => format!(
            "{} · {}",
            html::WECOM.get(language),
            entry.authenticator.name
        ),
    }
}

fn login_page<K, T>(ctx: &Ctx<'_, '_, K, T>, return_to: Option<String>) -> Response {
    let count = ctx.config.entries.len();
    let choices: Vec<Choice> = ctx
        .config
        .entries
        .iter()
        .map(|entry| Choice {
            label: label(entry, count, ctx.language),
            href: login_href(
                &ctx.config.route_prefix,
                Some(&entry.authenticator.name),
                return_to.as_deref(),
            ),
        })
        .collect();
    Response::html(200, html::login_page(ctx.language, &choices))
}

fn is_wecom(request: &Request) -> bool {
    browser::detect(request.user_agent()).client.is_wecom()
}

fn login<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let return_to = return_to_param(ctx);
    let entry = match ctx.params.get("authenticator") {
        Some(name) => match ctx.config.find(name) {
            Some(entry) => entry,
            None => {
                let e = AuthError::NotFound("no authenticator of that name".into());
                return error_response(ctx, &e, None);
            }
        },
        None if ctx.config.entries.len() == 1 => &ctx.config.entries[0],
        None => match ctx.config.auto_login() {
            Some(entry) if is_wecom(ctx.request) => entry,
            _ => return login_page(ctx, return_to),
        },
    };
    let flow = match ctx.params.get("flow") {
        Some("in-client") => Some(LoginFlow::InClient),
        Some("web") => Some(LoginFlow::Web),
        _ => None,
    };
    start_login(ctx, entry, return_to, flow)
}

/// 302 to WeCom with the pre-auth cookie.
fn start_login<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    return_to: Option<String>,
    force_flow: Option<LoginFlow>,
) -> Response {
    let request = AuthorizeRequest {
        user_agent: ctx.request.user_agent().to_owned(),
        return_to,
        force_flow,
        language: ctx.language_known.then_some(ctx.language),
    };
    let mut random = [0u8; RANDOM_BYTES];
    random.copy_from_slice(&ctx.env.random[..RANDOM_BYTES]);
    match login::authorize(&entry.authenticator, &request, ctx.env.now, &random) {
        Ok(authorization) => Response::redirect(302, &authorization.url)
            .with_header("set-cookie", authorization.pre_auth_cookie.set_cookie),
        Err(e) => error_response(ctx, &e, Some(&entry.authenticator.name)),
    }
}

fn callback<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let code = ctx.params.get("code").unwrap_or_default();
    let state = ctx.params.get("state").unwrap_or_default();
    let Some(entry) = ctx
        .config
        .entries
        .iter()
        .find(|e| state::claims_authenticator(state, &e.authenticator.name))
    else {
        let e = if state.is_empty() {
            AuthError::bad_request("state", "is missing: WeCom did not send the login back")
        } else {
            AuthError::StateRejected(StateRejection::Malformed)
        };
        return error_response(ctx, &e, None);
    };
    let authenticator = &entry.authenticator;
    let request = CallbackRequest {
        code: code.to_owned(),
        state: state.to_owned(),
        pre_auth_cookie: ctx.request.cookie(PRE_AUTH_COOKIE).map(str::to_owned),
        user_agent: ctx.request.user_agent().to_owned(),
    };
    let env = ctx.env;
    match login::complete_callback(authenticator, &request, env.now, env.transport, env.kv) {
        Ok(success) => Response::redirect(302, &success.redirect_to)
            .with_header("set-cookie", success.session_cookie.set_cookie)
            .with_header("set-cookie", success.cleared_pre_auth_cookie.set_cookie),
        // WeCom clients are known to open the callback twice: when the browser
        // already holds this authenticator's session, land it where it wanted.
        Err(e)
            if is_repeat(&e)
                && current_session(ctx)
                    .is_ok_and(|s| s.verified.claims.authenticator == authenticator.name) =>
        {
            let target = login::verify_callback(authenticator, &request, env.now)
                .map(|verified| verified.return_to)
                .unwrap_or_else(|_| authenticator.redirect_path.clone());
            Response::redirect(302, &target).with_header(
                "set-cookie",
                login::cleared_pre_auth_cookie(authenticator).set_cookie,
            )
        }
        Err(e) => error_response(ctx, &e, Some(&authenticator.name)),
    }
}

/// Failures a second request of a finished login meets: its state used (or
/// its pre-auth cookie already cleared), its code spent.
fn is_repeat(e: &AuthError) -> bool {
    match e {
        AuthError::StateRejected(StateRejection::AlreadyUsed | StateRejection::MissingCookie) => {
            true
        }
        AuthError::Wecom(w) => matches!(w.errcode, errcode::INVALID_CODE | errcode::CODE_USED),
        _ => false,
    }
}

fn logout<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let post = ctx.request.method == "POST";
    let form = match (post, ctx.request.header("content-type")) {
        (true, Some(kind)) if kind.starts_with("application/x-www-form-urlencoded") => {
            Params::parse(std::str::from_utf8(&ctx.request.body).ok())
        }
        _ => Params::parse(None),
    };
    let return_to = ctx
        .params
        .get("return_to")
        .or(form.get("return_to"))
        .and_then(return_path::sanitize);
    let mut response = if ctx.json {
        #[derive(Serialize)]
        struct SignedOut {
            signed_out: bool,
        }
        Response::json(200, &SignedOut { signed_out: true })
    } else {
        let target = return_to.unwrap_or_else(|| format!("{}/", ctx.config.route_prefix));
        Response::redirect(if post { 303 } else { 302 }, &target)
    };
    // The token is stateless: the user's record notes that its sessions
    // ended, so a copied cookie stops working too. The cookie goes either way.
    if let Ok(session) = current_session(ctx) {
        let _ = directory::end_sessions(ctx.env.kv, &session.user.id, ctx.env.now);
    }
    let mut cleared: Vec<String> = Vec::new();
    for entry in &ctx.config.entries {
        let cookie = login::cleared_session_cookie(&entry.authenticator).set_cookie;
        if !cleared.contains(&cookie) {
            cleared.push(cookie);
        }
    }
    for cookie in cleared {
        response.headers.push(("set-cookie".into(), cookie));
    }
    response
}

// ---- sessions ----

/// The session the request's cookie carries. Several cookies of that name
/// (host-only and domain) are each tried; a store failure is reported as such.
pub(super) fn current_session<K: KeyValue, T>(
    ctx: &Ctx<'_, '_, K, T>,
) -> Result<Session, AuthError> {
    let entries = &ctx.config.entries;
    let mut failure = AuthError::SessionRejected("no session");
    for token in ctx.request.cookies(ctx.config.session_cookie_name()) {
        if token.is_empty() || token.len() > MAX_SESSION_TOKEN {
            failure = AuthError::SessionRejected("malformed token");
            continue;
        }
        let entry = if entries.len() == 1 {
            &entries[0]
        } else {
            match session::claimed_authenticator(token).and_then(|name| ctx.config.find(&name)) {
                Some(entry) => entry,
                None => {
                    failure = AuthError::SessionRejected(
                        "issued by an authenticator that is not configured",
                    );
                    continue;
                }
            }
        };
        match login::verify_session(&entry.authenticator, token, ctx.env.now, ctx.env.kv) {
            Ok(session) => return Ok(session),
            Err(e @ AuthError::Store(_)) => return Err(e),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// What `/me` answers.
#[derive(Serialize)]
struct Me<'a> {
    authenticator: &'a str,
    wecom_userid: &'a str,
    issued_at: u64,
    expires_at: u64,
    user: &'a User,
}

fn session_json(session: &Session) -> Me<'_> {
    let claims = &session.verified.claims;
    Me {
        authenticator: &claims.authenticator,
        wecom_userid: &claims.wecom_userid,
        issued_at: claims.issued_at,
        expires_at: claims.expires_at,
        user: &session.user,
    }
}

fn me<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    match current_session(ctx) {
        Ok(session) => Response::json(200, &session_json(&session)),
        Err(e) => {
            let mut response = Response::json(e.status(), &ErrorJson::of(&e, ctx.language).body());
            response.log = log_line(ctx, &e);
            response
        }
    }
}

/// Forward auth. Identity headers come from the session alone: nothing the
/// client sent is read or echoed. With `?redirect=1` (for proxies that hand
/// the answer to the browser: Traefik, Envoy) no session is a 302 to the
/// login route, back to `X-Forwarded-Uri`; Nginx needs the plain 401.
fn verify<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    match current_session(ctx) {
        Ok(session) => {
            let claims = &session.verified.claims;
            let user = &session.user;
            let mut response = Response::new(200);
            let mut add = |name: &str, value: Option<&str>| {
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    response
                        .headers
                        .push((name.to_owned(), http::identity_header_value(value)));
                }
            };
            add("x-wecom-userid", Some(&claims.wecom_userid));
            add("x-wecom-authenticator", Some(&claims.authenticator));
            add("x-user-id", Some(&user.id));
            add("x-user-name", Some(&user.name));
            add("x-user-email", user.email.as_deref());
            add("x-user-mobile", user.mobile.as_deref());
            response
        }
        Err(e)
            if e.category() == Category::SessionInvalid
                && matches!(ctx.params.get("redirect"), Some("1" | "true")) =>
        {
            let back = ctx
                .request
                .header("x-forwarded-uri")
                .and_then(return_path::sanitize);
            Response::redirect(
                302,
                &login_href(&ctx.config.route_prefix, None, back.as_deref()),
            )
        }
        Err(e) => {
            let mut response = Response::json(e.status(), &ErrorJson::of(&e, ctx.language).body());
            response.log = log_line(ctx, &e);
            response
        }
    }
}

// ---- the site outside the prefix ----

/// `/` and protected paths: the signed-in page with a session; without one,
/// silent in-client login inside WeCom (with an auto-login authenticator),
/// else the login route. Anything else is not ours: 404.
fn site<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    if ctx.path != "/" && !ctx.config.is_protected(ctx.path) {
        return not_found(ctx);
    }
    if !matches!(ctx.request.method.as_str(), "GET" | "HEAD") {
        return method_not_allowed(ctx, &["GET", "HEAD"]);
    }
    match current_session(ctx) {
        Ok(session) => {
            let logout = format!("{}/logout", ctx.config.route_prefix);
            Response::html(
                200,
                html::signed_in_page(
                    ctx.language,
                    &session.user.name,
                    &session.verified.claims.wecom_userid,
                    &logout,
                ),
            )
        }
        Err(e @ AuthError::Store(_)) => error_response(ctx, &e, None),
        Err(_) => {
            let here = match ctx.query {
                Some(query) => format!("{}?{query}", ctx.path),
                None => ctx.path.to_owned(),
            };
            let return_to = return_path::sanitize(&here);
            if let Some(entry) = ctx.config.auto_login()
                && is_wecom(ctx.request)
            {
                return start_login(ctx, entry, return_to, None);
            }
            Response::redirect(
                302,
                &login_href(&ctx.config.route_prefix, None, return_to.as_deref()),
            )
        }
    }
}
