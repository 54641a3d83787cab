//! Routing and the login routes: login page, `/login`, `/callback`,
//! `/logout`, `/me`, `/verify`, and the site root / protected paths.

use serde::Serialize;

use super::admin;
use super::audit::{self, Audited as _};
use super::config::{ConfigProblem, Entry, LoginPanelScript, parse_config};
use super::context::{Ctx, Env, RANDOM_LEN};
use super::errors::{
    ErrorJson, config_error, error_response, log_line, method_not_allowed, not_found, plain,
};
use super::events;
use super::forward_auth;
use super::html::{self, Choice, LoginPanel};
use super::limits;
use super::message::{
    self, Deferred, MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET, Params, Request, Response,
};
use super::probes;
use super::rules;
use super::same_origin;
use super::warnings::{Notices, WecomWatch};
use crate::core::access::Rules;
use crate::core::browser::{self, Language};
use crate::core::cookie::{PRE_AUTH_COOKIE, cleared_session_cookie, session_cookie};
use crate::core::directory::{self, User};
use crate::core::error::{AuthError, Category, errcode};
use crate::core::flow::{InClientScope, LoginFlow};
use crate::core::login::{self, AuthorizeRequest, CallbackRequest, ProfileRefresh, Session};
use crate::core::ports::{KeyValue, Transport};
use crate::core::return_path;
use crate::core::session::{self, MAX_SESSION_TOKEN};
use crate::core::settings::DEFAULT_ROUTE_PREFIX;
use crate::core::state::{self, RANDOM_BYTES, StateRejection};
use crate::core::texts;
use crate::core::urls::{self, login_path};

const _: () = assert!(RANDOM_BYTES <= RANDOM_LEN);

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
    let (language, language_known) = message::language(request, &params);
    let json = request.prefers_json() || is_api_path(path);
    // Liveness answers even when the settings do not: under the configured
    // prefix, or the default one while the settings are unreadable.
    let prefix = env
        .config
        .ok()
        .and_then(|map| map.get("route_prefix"))
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_ROUTE_PREFIX);
    let probe = probes::probe_of(path, prefix);
    if probe == Some("/ping") {
        return probes::ping();
    }
    let map = match env.config {
        Ok(map) => map,
        Err(_) if probe.is_some() => return probes::not_ready("the settings cannot be read"),
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
        Err(_) if probe.is_some() => return probes::not_ready("the settings have problems"),
        Err(problems) => return config_error(language, json, &problems),
    };
    if probe.is_some() {
        return probes::ready(env);
    }
    // Every WeCom answer tells WeCom's clock and whether the host took the
    // call's timeouts (`warnings.rs`).
    let notices = Notices::default();
    let watched = WecomWatch {
        transport: env.transport,
        kv: env.kv,
        now: env.now,
        notices: &notices,
    };
    let env = Env {
        config: env.config,
        kv: env.kv,
        transport: &watched,
        now: env.now,
        random: env.random,
        elapsed_ms: env.elapsed_ms,
    };
    let ctx = Ctx {
        request,
        env: &env,
        config: &config,
        path,
        query,
        params,
        language,
        language_known,
        json,
        notices: &notices,
    };
    let mut response = route(&ctx);
    response.log = notices.with_log(response.log.take());
    response
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

/// Paths that answer JSON whatever `Accept` says, before the prefix is known.
fn is_api_path(path: &str) -> bool {
    path.ends_with("/me") || path.ends_with("/verify") || path.contains("/admin/")
}

fn route<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let get = ["GET", "HEAD"];
    if let Some(rest) = ctx.path.strip_prefix(ctx.config.route_prefix.as_str())
        && (rest.is_empty() || rest.starts_with('/'))
    {
        // Forward auth in path-prefix mode (Envoy, Istio): the original
        // path follows `/verify`. Proxies send the original method: any.
        if let Some(after) = rest.strip_prefix("/verify")
            && (after.is_empty() || after.starts_with('/'))
        {
            return verify(ctx, after);
        }
        // WeCom's callbacks: `/events`, or `/events/<authenticator>`.
        if let Some(after) = rest.strip_prefix("/events")
            && (after.is_empty() || after.starts_with('/'))
        {
            return events::handle(ctx, after);
        }
        // One trailing slash (added by proxies and pasted links) names the
        // same route: `/login/` is `/login`, `/` the login page.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        return match rest {
            "" => only(ctx, &get, || login_page(ctx, return_to_param(ctx))),
            "/login" => only(ctx, &get, || login(ctx)),
            // Not HEAD: a HEAD would spend the code.
            "/callback" => only(ctx, &["GET"], || callback(ctx)),
            "/logout" => only(ctx, &["GET", "POST"], || logout(ctx)),
            "/me" => only(ctx, &get, || me(ctx)),
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

// ---- login ----

/// `return_to` for the links of a page: a safe path of this app only.
fn return_to_param<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<String> {
    ctx.params.get("return_to").and_then(return_path::sanitize)
}

/// `return_to` as the login route was asked: the login checks it
/// (`Landing::resolve`), which also lets a sibling host on `return_hosts`
/// through.
fn return_to_asked<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<String> {
    ctx.params
        .get("return_to")
        .filter(|raw| raw.len() <= return_path::MAX_RETURN_PATH)
        .map(str::to_owned)
}

fn label(entry: &Entry, count: usize, language: Language) -> String {
    match &entry.display_name {
        Some(name) => name.clone(),
        None if count == 1 => texts::LOG_IN_WITH_WECOM.get(language).to_owned(),
        None => format!(
            "{} · {}",
            texts::WECOM.get(language),
            entry.authenticator.name
        ),
    }
}

/// The login page: WeCom's login panel in place for one authenticator
/// outside the WeCom client (a QR code, or one click with the desktop
/// client), else a button per authenticator. A HEAD starts no login.
fn login_page<K, T>(ctx: &Ctx<'_, '_, K, T>, return_to: Option<String>) -> Response {
    let count = ctx.config.entries.len();
    if let [entry] = ctx.config.entries.as_slice()
        && let Some(script) = ctx.config.login_panel(entry)
        && !is_wecom(ctx.request)
        && ctx.request.method == "GET"
        && let Some(panel) = login_panel(ctx, entry, script)
    {
        return panel;
    }
    let choices: Vec<Choice> = ctx
        .config
        .entries
        .iter()
        .map(|entry| Choice {
            label: label(entry, count, ctx.language),
            href: login_path(
                &ctx.config.route_prefix,
                Some(&entry.authenticator.name),
                return_to.as_deref(),
            ),
        })
        .collect();
    Response::html(200, html::login_page(ctx.language, &choices))
}

/// The login page with WeCom's login panel: it starts a web login (a state,
/// and the pre-auth cookie it is bound to) whose code the panel hands to the
/// callback, and whose WeCom login page is the button under it. Nothing is
/// written and WeCom is not called until the member logs in. None when the
/// login cannot start (the button page then starts one when clicked).
fn login_panel<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    script: &LoginPanelScript,
) -> Option<Response> {
    let authenticator = &entry.authenticator;
    // As `/login` takes it: a sibling host on `return_hosts` too.
    let request = login_request(ctx, entry, return_to_asked(ctx), Some(LoginFlow::Web));
    let authorization =
        login::authorize(authenticator, &request, ctx.env.now, &state_random(ctx)).ok()?;
    let frame_origin = url::Url::parse(&authenticator.sso_base)
        .ok()?
        .origin()
        .ascii_serialization();
    let params = urls::login_panel_params(authenticator, &authorization.state, ctx.language);
    let params = serde_json::to_string(&params).ok()?;
    let panel = LoginPanel {
        script,
        params: &params,
        fallback: Choice {
            label: label(entry, 1, ctx.language),
            href: authorization.url,
        },
        // Half a minute before the state expires (lifetimes are 60 s at least).
        renew_after: authenticator.state_lifetime.saturating_sub(30).max(30),
    };
    let event = audit::Event {
        authenticator: Some(&authenticator.name),
        detail: Some("web, WeCom's login panel"),
        ..audit::Event::of(ctx, "login-started", "ok")
    };
    let page = Response::html(200, html::login_panel_page(ctx.language, &panel))
        .with_header(
            "content-security-policy",
            html::login_panel_csp(script, &frame_origin),
        )
        // No window this page did not open keeps a handle on it (a forged
        // message to the panel's listener would need one).
        .with_header("cross-origin-opener-policy", "same-origin")
        .with_header("set-cookie", authorization.pre_auth_cookie.set_cookie)
        .audited(&event);
    Some(page)
}

/// The randomness of one state ([`RANDOM_BYTES`] of the request's).
fn state_random<K, T>(ctx: &Ctx<'_, '_, K, T>) -> [u8; RANDOM_BYTES] {
    let mut random = [0u8; RANDOM_BYTES];
    random.copy_from_slice(&ctx.env.random[..RANDOM_BYTES]);
    random
}

fn is_wecom(request: &Request) -> bool {
    browser::detect(request.user_agent()).client.is_wecom()
}

fn login<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    if let Some(refused) = limits::check_client(ctx) {
        return refused;
    }
    let return_to = return_to_asked(ctx);
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
            _ => return login_page(ctx, return_to_param(ctx)),
        },
    };
    let flow = match ctx.params.get("flow") {
        Some("in-client") => Some(LoginFlow::InClient),
        Some("web") => Some(LoginFlow::Web),
        _ => None,
    };
    start_login(ctx, entry, login_request(ctx, entry, return_to, flow))
}

/// The login this request starts: its browser, language and pre-auth
/// cookie (the logins already in flight in it stay). An in-client login
/// starts with the entry's `in_client_scope`: by default silent
/// (`snsapi_base`), so a member already bound meets no page of WeCom's and
/// one not bound yet is sent back with `snsapi_privateinfo` from the
/// callback.
fn login_request<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    return_to: Option<String>,
    force_flow: Option<LoginFlow>,
) -> AuthorizeRequest {
    AuthorizeRequest {
        user_agent: ctx.request.user_agent().to_owned(),
        return_to,
        force_flow,
        language: ctx.language_known.then_some(ctx.language),
        pre_auth_cookie: ctx.request.cookie(PRE_AUTH_COOKIE).map(str::to_owned),
        restarted: false,
        scope: entry.in_client_scope,
    }
}

/// 302 to WeCom with the pre-auth cookie, for `request`.
fn start_login<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    request: AuthorizeRequest,
) -> Response {
    let name = entry.authenticator.name.as_str();
    match login::authorize(
        &entry.authenticator,
        &request,
        ctx.env.now,
        &state_random(ctx),
    ) {
        Ok(authorization) => {
            let event = audit::Event {
                authenticator: Some(name),
                detail: Some(
                    match (authorization.flow, request.scope, request.restarted) {
                        (LoginFlow::InClient, InClientScope::PrivateInfo, _) => {
                            "in-client, asking the member's consent for the mobile"
                        }
                        (LoginFlow::InClient, _, true) => {
                            "in-client, restarted after a lost cookie"
                        }
                        (LoginFlow::InClient, ..) => "in-client",
                        (LoginFlow::Web, ..) => "web",
                    },
                ),
                ..audit::Event::of(ctx, "login-started", "ok")
            };
            Response::redirect(302, &authorization.url)
                .with_header("set-cookie", authorization.pre_auth_cookie.set_cookie)
                .audited(&event)
        }
        Err(e) => {
            let event = audit::Event {
                authenticator: Some(name),
                ..audit::Event::of(ctx, "login-refused", "refused")
            }
            .failed(&e);
            error_response(ctx, &e, Some(name)).audited(&event)
        }
    }
}

fn callback<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    let code = ctx.params.get("code").unwrap_or_default();
    let state = ctx.params.get("state").unwrap_or_default();
    if let Some(refused) = limits::check_client(ctx) {
        return refused;
    }
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
        pre_auth_cookie: state::cookie_for(state, ctx.request.cookies(PRE_AUTH_COOKIE))
            .map(str::to_owned),
        user_agent: ctx.request.user_agent().to_owned(),
    };
    let env = ctx.env;
    // Verified once: the return path of a verified state serves a repeat too.
    let verified = login::verify_callback(authenticator, &request, env.now);
    let return_to = verified
        .as_ref()
        .map_or(&authenticator.redirect_path, |v| &v.state.return_to)
        .clone();
    // The logins still in flight in this browser besides this one.
    let remaining = verified
        .as_ref()
        .map(|v| v.state.remaining_cookie.clone())
        .ok();
    if verified.is_ok()
        && let Some(refused) = limits::check_authenticator(ctx, &authenticator.name)
    {
        return refused;
    }
    let counted = audit::Counting::new(env.transport);
    let completed = verified.and_then(|callback| {
        // A returning member is answered after `auth/getuserinfo`; the
        // profile follows the answer.
        login::complete_callback(
            authenticator,
            &callback,
            env.now,
            &(&counted as &dyn Transport),
            env.kv,
            ProfileRefresh::AfterAnswer,
        )
    });
    let event = |event, outcome| audit::Event {
        authenticator: Some(authenticator.name.as_str()),
        wecom_calls: Some(counted.calls.get()),
        ..audit::Event::of(ctx, event, outcome)
    };
    match completed {
        Ok(success) => {
            let finished = audit::Event {
                wecom_userid: Some(&success.member.wecom_userid),
                user_id: Some(&success.user.id),
                ..event("login-finished", success.outcome.name())
            };
            let mut response = Response::redirect(302, &success.redirect_to)
                // The session cookie last: a host that keeps one header per name
                // (jco's Node HTTP server) keeps the one that logs the member in.
                .with_header("set-cookie", success.cleared_pre_auth_cookie.set_cookie)
                .with_header("set-cookie", success.session_cookie.set_cookie)
                .audited(&finished);
            response.deferred = success.pending_refresh.map(|refresh| Deferred {
                authenticator: authenticator.clone(),
                refresh,
                request_id: finished.request_id.clone(),
            });
            response
        }
        // WeCom clients are known to open the callback twice: when the browser
        // already holds this authenticator's session, land it where it wanted.
        Err(e)
            if is_repeat(&e)
                && current_session(ctx)
                    .is_ok_and(|s| s.verified.claims.authenticator == authenticator.name) =>
        {
            // The pre-auth cookie stays: other logins may be in flight in it.
            Response::redirect(302, &return_to)
        }
        // Some WeCom webviews (workbench links, some Android builds) drop the
        // pre-auth cookie: inside the client, start the in-client login again
        // at once, silently. The new state says it is a restart, so a second
        // loss shows the error instead of looping.
        Err(AuthError::StateRejected(StateRejection::MissingCookie))
            if is_wecom(ctx.request)
                && state::claimed(state).is_some_and(|claimed| {
                    claimed.flow == LoginFlow::InClient && !claimed.restarted
                }) =>
        {
            // The scope the lost login asked for: a consent round stays one.
            let scope = state::claimed(state).map_or(entry.in_client_scope, |c| c.scope);
            let request = AuthorizeRequest {
                restarted: true,
                scope,
                ..login_request(ctx, entry, None, Some(LoginFlow::InClient))
            };
            start_login(ctx, entry, request)
        }
        // A silent login of a member not bound yet: back to WeCom once, for
        // the consent that yields the mobile (the same return path; a
        // restarted login stays marked, so a lost cookie cannot loop).
        Err(AuthError::ConsentNeeded) => {
            let request = AuthorizeRequest {
                restarted: state::claimed(state).is_some_and(|claimed| claimed.restarted),
                scope: InClientScope::PrivateInfo,
                // The spent login's entry left out.
                pre_auth_cookie: remaining.filter(|cookie| !cookie.is_empty()),
                ..login_request(ctx, entry, Some(return_to), Some(LoginFlow::InClient))
            };
            start_login(ctx, entry, request)
        }
        // The rules (`allowed_*`, `denied_*`) refused the member: no user,
        // no binding, no session.
        Err(e @ AuthError::AccessRefused { .. }) => {
            rules::refusal(ctx, &authenticator.name, None, &e)
        }
        Err(e) => {
            let refused = event("login-refused", "refused").failed(&e);
            error_response(ctx, &e, Some(&authenticator.name)).audited(&refused)
        }
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
    if post && let Some(refused) = same_origin::refused(ctx, "logout") {
        return refused;
    }
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
    // The token is stateless: the user's session generation moves on, so a
    // copied cookie stops working too. Only a POST from our own pages does
    // that: a GET is a link, which `SameSite=Lax` lets through from any
    // site, so it clears this browser's cookie only. The cookie goes either
    // way. A store that cannot read the session or move the generation on
    // is a 503, never a logout reported done while the sessions live on.
    let session = current_session(ctx);
    let failed = match (&session, post) {
        (Err(e), true) if e.category() == Category::StoreUnavailable => Some(e.clone()),
        (Ok(session), true) => {
            directory::end_sessions(ctx.env.kv, &session.user.id, ctx.env.now).err()
        }
        _ => None,
    };
    let session = session.ok();
    let mut response = if let Some(e) = &failed {
        error_response(ctx, e, None)
    } else if ctx.json {
        #[derive(Serialize)]
        struct SignedOut {
            signed_out: bool,
            /// Whether every session of the user ended on the server (a
            /// POST), or only this client's cookie was cleared (a GET).
            sessions_ended: bool,
        }
        Response::json(
            200,
            &SignedOut {
                signed_out: true,
                sessions_ended: post,
            },
        )
    } else {
        let target = return_to.unwrap_or_else(|| format!("{}/", ctx.config.route_prefix));
        Response::redirect(if post { 303 } else { 302 }, &target)
    };
    let event = audit::Event {
        authenticator: session
            .as_ref()
            .map(|s| s.verified.claims.authenticator.as_str()),
        wecom_userid: session
            .as_ref()
            .map(|s| s.verified.claims.wecom_userid.as_str()),
        user_id: session.as_ref().map(|s| s.user.id.as_str()),
        ..audit::Event::of(
            ctx,
            "logout",
            match (&session, post) {
                (None, _) => "no-session",
                (Some(_), true) => "ok",
                (Some(_), false) => "this-browser",
            },
        )
    };
    let event = match &failed {
        Some(e) => event.failed(e),
        None => event,
    };
    response.audit = Some(event.line());
    // A logout the store could not record keeps this browser's session, so
    // trying again can end the sessions everywhere.
    if failed.is_some() {
        return response;
    }
    let mut cleared: Vec<String> = Vec::new();
    for entry in &ctx.config.entries {
        let cookie = cleared_session_cookie(&entry.authenticator).set_cookie;
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
    /// As the group headers list them (`dept:4`, `tag:7`, `tag-name:运维`).
    groups: Vec<String>,
}

fn session_json(session: &Session) -> Me<'_> {
    let claims = &session.verified.claims;
    Me {
        authenticator: &claims.authenticator,
        wecom_userid: &claims.wecom_userid,
        issued_at: claims.issued_at,
        expires_at: claims.expires_at,
        user: &session.user,
        groups: forward_auth::group_names(&session.groups),
    }
}

/// `response` with a renewed session cookie, when the session in use is due
/// (sliding sessions).
fn with_renewal<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    session: &Session,
    mut response: Response,
) -> Response {
    let due = ctx
        .config
        .find(&session.verified.claims.authenticator)
        .and_then(|entry| {
            let authenticator = &entry.authenticator;
            let renewal = ctx.config.renewal;
            session::renew(authenticator, &session.verified, renewal, ctx.env.now)
                .map(|token| session_cookie(authenticator, token).set_cookie)
        });
    if let Some(cookie) = due {
        response.headers.push(("set-cookie".into(), cookie));
    }
    response
}

/// The session, when its authenticator's rules let the member in (with
/// the groups): the outer error is the session's, the inner the refusal.
fn admitted_session<K: KeyValue, T: Transport>(
    ctx: &Ctx<'_, '_, K, T>,
) -> Result<Result<Session, Box<Response>>, AuthError> {
    current_session(ctx).map(|session| {
        match ctx.config.find(&session.verified.claims.authenticator) {
            Some(entry) => rules::admit(ctx, entry, session, &Rules::default()),
            None => {
                let e = AuthError::SessionRejected("its authenticator is no longer configured");
                Err(Box::new(error_response(ctx, &e, None)))
            }
        }
    })
}

/// `/me`: the session's user and groups, when the authenticator's rules
/// let the member in (a proxy's rules are for `/verify`).
fn me<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    match admitted_session(ctx) {
        Ok(Err(refused)) => *refused,
        Ok(Ok(session)) => {
            with_renewal(ctx, &session, Response::json(200, &session_json(&session)))
        }
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
/// `{prefix}/verify[/original path]`: see [`forward_auth`].
fn verify<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>, after_verify: &str) -> Response {
    match current_session(ctx) {
        Ok(session) => {
            let claims = &session.verified.claims;
            // In path-prefix mode (Envoy) the query is the original
            // request's, the client's: no rules from it. (`/verify/` alone
            // is no path.)
            let request_rules = if after_verify.len() <= 1 {
                match rules::from_query(ctx) {
                    Ok(rules) => rules,
                    Err(bad) => return *bad,
                }
            } else {
                Rules::default()
            };
            let named = ctx.params.get("authenticator");
            if !request_rules.is_empty() && named.is_none() && ctx.config.entries.len() > 1 {
                let why = "name the authenticator these rules are for: authenticator=NAME";
                return Response::json(400, &ErrorJson::plain("bad-request", 400, why).body());
            }
            let Some(entry) = ctx.config.find(&claims.authenticator) else {
                let e = AuthError::SessionRejected("its authenticator is no longer configured");
                return error_response(ctx, &e, None);
            };
            if named.is_some_and(|name| name != entry.authenticator.name) {
                let e = AuthError::SessionRejected("it is another authenticator's");
                return Response::json(403, &ErrorJson::of(&e, ctx.language).body());
            }
            let session = match rules::admit(ctx, entry, session, &request_rules) {
                Ok(session) => session,
                Err(refused) => return *refused,
            };
            with_renewal(
                ctx,
                &session,
                forward_auth::granted(&session, &ctx.config.identity_headers),
            )
        }
        Err(e)
            if e.category() == Category::SessionInvalid
                && forward_auth::is_public(ctx.request, after_verify, ctx.config) =>
        {
            Response::new(200)
        }
        Err(e) if e.category() == Category::SessionInvalid => {
            let authenticator = &ctx.config.entries[0].authenticator;
            let back = forward_auth::return_target(ctx.request, after_verify, authenticator);
            let login = login_path(&ctx.config.route_prefix, None, back.as_deref());
            let event = audit::Event::of(ctx, "verify-refused", "refused").failed(&e);
            let refused =
                Response::json(e.status(), &ErrorJson::of(&e, ctx.language).body()).audited(&event);
            // Scripts get the bare 401; a page navigation is sent to log in.
            if forward_auth::is_script(ctx.request) {
                return refused;
            }
            if matches!(ctx.params.get("redirect"), Some("1" | "true")) {
                return Response::redirect(302, &login).audited(&event);
            }
            refused.with_header(forward_auth::LOGIN_HEADER, login)
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
    // The signed-in page is the app's own: the authenticator's rules apply.
    match admitted_session(ctx) {
        Ok(Err(refused)) => *refused,
        Ok(Ok(session)) => {
            let logout = format!("{}/logout", ctx.config.route_prefix);
            let page = html::signed_in_page(
                ctx.language,
                &session.user.name,
                &session.verified.claims.wecom_userid,
                &logout,
            );
            // Its logout form must carry the page's real `Origin`: under
            // `no-referrer` browsers send `Origin: null`, which browsers
            // without Fetch Metadata (older Safari, the WeCom in-app browser
            // on older iOS, any plain-http origin) could not be told apart
            // from a forged POST by (`same_origin.rs`). Its URL holds no
            // code or state.
            let page = Response::html(200, page).with_header("referrer-policy", "same-origin");
            with_renewal(ctx, &session, page)
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
                return start_login(ctx, entry, login_request(ctx, entry, return_to, None));
            }
            Response::redirect(
                302,
                &login_path(&ctx.config.route_prefix, None, return_to.as_deref()),
            )
        }
    }
}
