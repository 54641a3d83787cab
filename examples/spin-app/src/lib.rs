//! A team notice board for a WeCom company: members log in with WeCom, read
//! the notices and post their own. The login is the wecom-auth component,
//! composed into this app by Spin (`[component.app.dependencies]` in
//! spin.toml) and called in-process through its typed interface
//! `wecom:auth/login`: `authorize-url`, `handle-callback`, `verify-session`.
//!
//! | route | does |
//! |---|---|
//! | `GET /` | the member's name and groups, or a login link |
//! | `GET <prefix>/login[?return_to=]` | to WeCom: in-client OAuth inside the WeCom client, QR login elsewhere |
//! | `GET <prefix>/callback` | where WeCom sends the browser back: the session cookie, then the return path |
//! | `POST <prefix>/logout` | clears the session cookie (same-origin POSTs only) |
//! | `GET /notices`, `POST /notices` | the board; posting is same-origin only |
//!
//! `<prefix>` is the component's route prefix (`route_prefix`, default
//! `/auth/wecom`): `authorize-url` sends WeCom back to `<prefix>/callback`,
//! and the pre-auth cookie it sets is scoped to `<prefix>`, so `/login`
//! lives there too and sees the logins already in flight in this browser.

mod pages;

use serde::{Deserialize, Serialize};
use spin_sdk::http::{Headers, Method, OutgoingResponse, Request, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::variables;

wit_bindgen::generate!({ path: "wit", world: "app", generate_all });

use wasi::keyvalue::{atomics, store};
use wecom::auth::login::{
    self as auth, AccessRules, AuthError, AuthorizeRequest, CallbackRequest, ErrorCategory,
    GroupKind, Language, Session, Settings, SigningKey,
};

/// The authenticator's name: the default of the project's `authenticators`,
/// so the users and WeCom bindings in a store shared with the project's own
/// spin.toml are the same.
const AUTHENTICATOR: &str = "wecom";
/// Defaults the WIT documents for `route-prefix` and `session-cookie-name`:
/// the app needs them itself, to route the login paths and read the cookie.
const DEFAULT_ROUTE_PREFIX: &str = "/auth/wecom";
const DEFAULT_SESSION_COOKIE: &str = "wecom_auth_session";
/// The pre-auth cookie's name (`authorization.pre-auth-cookie.name`). The
/// callback must hand its value back, and no typed function tells the name
/// before a login starts, so it is spelled here.
const PRE_AUTH_COOKIE: &str = "wecom_auth_login";
/// The notices, newest first, as one JSON list in Spin's `default` store
/// (beside the component's own keys, which never start with this).
const NOTICES_KEY: &str = "notice-board/notices";
const MAX_NOTICES: usize = 100;
const MAX_NOTICE_CHARS: usize = 2000;

/// What the app needs from its Spin variables.
struct Config {
    settings: Settings,
    route_prefix: String,
    session_cookie: String,
}

/// One notice, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub author: String,
    pub author_id: String,
    pub text: String,
    /// Unix seconds.
    pub posted_at: u64,
}

/// An answer: spin-sdk's `Response` keeps one value per header name, and a
/// login sets two cookies, so answers go out as WASI fields (see [`send`]).
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                // Pages show who is logged in: never from a shared cache.
                ("cache-control".into(), "no-store".into()),
            ],
            body,
        }
    }

    fn redirect(status: u16, location: &str) -> Reply {
        Reply {
            status,
            headers: vec![("location".into(), location.into())],
            body: String::new(),
        }
    }

    fn set_cookie(mut self, set_cookie: &str) -> Reply {
        self.headers.push(("set-cookie".into(), set_cookie.into()));
        self
    }
}

#[http_component]
async fn handle(request: Request, out: ResponseOutparam) {
    // Read on every request: Spin variables may change without a redeploy.
    let reply = match config() {
        Ok(config) => route(&config, &request),
        Err(problem) => pages::misconfigured(&problem),
    };
    send(out, reply).await;
}

async fn send(out: ResponseOutparam, reply: Reply) {
    let headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let (fields, status, body) = match Headers::from_list(&headers) {
        Ok(fields) => (fields, reply.status, reply.body),
        Err(e) => (Headers::new(), 500, format!("bad response header: {e:?}")),
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    if let Err(e) = out.set_with_body(response, body.into_bytes()).await {
        eprintln!("notice-board: sending the response failed: {e:?}");
    }
}

fn route(config: &Config, request: &Request) -> Reply {
    let path = request.path();
    let method = request.method();
    let get = matches!(method, Method::Get);
    let post = matches!(method, Method::Post);
    let language = language(request);
    match path.strip_prefix(config.route_prefix.as_str()) {
        Some("/login") if get => return login(config, request, language),
        Some("/callback") if get => return callback(config, request, language),
        Some("/logout") if post => return logout(config, request),
        Some("/login" | "/callback" | "/logout") => return pages::method_not_allowed(),
        _ => {}
    }
    match path {
        "/" if get => match visitor(config, request) {
            Visitor::Member(session) => Reply::html(200, pages::home(&session, config)),
            Visitor::Anonymous => Reply::html(200, pages::welcome(config)),
            Visitor::Refused(error) => pages::auth_error(language, &error),
        },
        "/notices" if get || post => notices(config, request, language, post),
        "/" | "/notices" => pages::method_not_allowed(),
        _ => pages::not_found(),
    }
}

/// `authorize-url` chooses the flow by User-Agent: in-client OAuth inside the
/// WeCom client, web (QR) login elsewhere.
fn login(config: &Config, request: &Request, language: Language) -> Reply {
    let query = params(request.query().as_bytes());
    let attempt = AuthorizeRequest {
        user_agent: header(request, "user-agent").to_owned(),
        // The component keeps it only if it is a same-origin path.
        return_to: query.get("return_to").cloned(),
        force_flow: None,
        language: None,
        pre_auth_cookie: cookie(request, PRE_AUTH_COOKIE).map(str::to_owned),
    };
    match auth::authorize_url(&config.settings, &attempt) {
        Ok(to_wecom) => {
            Reply::redirect(302, &to_wecom.url).set_cookie(&to_wecom.pre_auth_cookie.set_cookie)
        }
        Err(error) => pages::auth_error(language, &error),
    }
}

/// WeCom's redirect back. On success: the session cookie and the pre-auth
/// cookie as `handle-callback` returns them (with every attribute), and on to
/// the validated return path. On failure: the error's page, no cookie.
fn callback(config: &Config, request: &Request, language: Language) -> Reply {
    let query = params(request.query().as_bytes());
    let back = CallbackRequest {
        // Missing ones are refused by the component, naming the parameter.
        code: query.get("code").cloned().unwrap_or_default(),
        state: query.get("state").cloned().unwrap_or_default(),
        pre_auth_cookie: cookie(request, PRE_AUTH_COOKIE).map(str::to_owned),
        user_agent: header(request, "user-agent").to_owned(),
    };
    match auth::handle_callback(&config.settings, &back) {
        Ok(done) => Reply::redirect(302, &done.redirect_to)
            .set_cookie(&done.session_cookie.set_cookie)
            .set_cookie(&done.cleared_pre_auth_cookie.set_cookie),
        Err(error) => pages::auth_error(language, &error),
    }
}

/// Clears the session cookie. The typed interface has no call that ends a
/// session on the server, so a copy of the cookie stays valid until it
/// expires (`session_lifetime_seconds`).
fn logout(config: &Config, request: &Request) -> Reply {
    if !same_origin(config, request) {
        return pages::cross_site();
    }
    Reply::redirect(303, "/").set_cookie(&cleared_session_cookie(config))
}

/// The same attributes as the component's session cookie (`Path=/`,
/// `Domain` when shared, `Secure` on https), or the browser keeps it.
fn cleared_session_cookie(config: &Config) -> String {
    let secure = if config.settings.origin.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let domain = match &config.settings.session_cookie_domain {
        Some(domain) => format!("; Domain={domain}"),
        None => String::new(),
    };
    format!(
        "{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure}{domain}",
        config.session_cookie
    )
}

fn notices(config: &Config, request: &Request, language: Language, post: bool) -> Reply {
    // Before the session: a cross-site form gets nothing, not even a redirect.
    if post && !same_origin(config, request) {
        return pages::cross_site();
    }
    let session = match visitor(config, request) {
        Visitor::Member(session) => session,
        Visitor::Anonymous => {
            let login = format!("{}/login?return_to=%2Fnotices", config.route_prefix);
            return Reply::redirect(if post { 303 } else { 302 }, &login);
        }
        Visitor::Refused(error) => return pages::auth_error(language, &error),
    };
    if post {
        let form = params(request.body());
        let text = form.get("text").map(|t| t.trim()).unwrap_or_default();
        if text.is_empty() || text.chars().count() > MAX_NOTICE_CHARS {
            return pages::problem(
                400,
                &format!("A notice needs some text, at most {MAX_NOTICE_CHARS} characters."),
            );
        }
        let notice = Notice {
            author: session.user.name.clone(),
            author_id: session.user.id.clone(),
            text: text.to_owned(),
            posted_at: now(),
        };
        return match post_notice(notice) {
            // Post/redirect/get: a reload does not post twice.
            Ok(()) => Reply::redirect(303, "/notices"),
            Err(why) => pages::problem(503, &format!("The notice was not saved: {why}")),
        };
    }
    match read_notices() {
        Ok(notices) => Reply::html(200, pages::board(&session, &notices, config)),
        Err(why) => pages::problem(503, &format!("The notices cannot be read: {why}")),
    }
}

enum Visitor {
    Member(Session),
    /// No session cookie, or one that no longer verifies (expired, tampered,
    /// its user deleted): the visitor logs in again.
    Anonymous,
    /// A session that verifies but may not enter (an access rule now refuses
    /// the member), or the check itself failed (WeCom or the store down).
    Refused(AuthError),
}

fn visitor(config: &Config, request: &Request) -> Visitor {
    let Some(token) = cookie(request, &config.session_cookie) else {
        return Visitor::Anonymous;
    };
    match auth::verify_session(&config.settings, token) {
        Ok(session) => Visitor::Member(session),
        Err(error) if error.category == ErrorCategory::SessionInvalid => Visitor::Anonymous,
        Err(error) => Visitor::Refused(error),
    }
}

/// A state-changing POST must come from the app's own pages: browsers send
/// `Origin` with every POST (else the `Referer` tells). The session cookie
/// is `SameSite=Lax` too; this also covers browsers that ignore it.
fn same_origin(config: &Config, request: &Request) -> bool {
    let origin = config.settings.origin.trim_end_matches('/');
    match request.header("origin").and_then(|v| v.as_str()) {
        Some(sent) => sent == origin,
        None => request
            .header("referer")
            .and_then(|v| v.as_str())
            .is_some_and(|referer| {
                referer
                    .strip_prefix(origin)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }),
    }
}

/// The member's language for the component's messages: WeCom's `Language/`
/// in the User-Agent, else `Accept-Language`.
fn language(request: &Request) -> Language {
    let info = auth::detect_wecom_browser(header(request, "user-agent"));
    info.language.unwrap_or_else(|| {
        let accepted = header(request, "accept-language").trim_start();
        if accepted
            .get(..2)
            .is_some_and(|l| l.eq_ignore_ascii_case("zh"))
        {
            Language::Zh
        } else {
            Language::En
        }
    })
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .header(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    header(request, "cookie")
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// A query string or form body; the first value of each name wins.
fn params(raw: &[u8]) -> std::collections::HashMap<String, String> {
    let mut found = std::collections::HashMap::new();
    for (name, value) in form_urlencoded::parse(raw) {
        found
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    found
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn read_notices() -> Result<Vec<Notice>, String> {
    let bucket = store::open("default").map_err(|e| format!("{e:?}"))?;
    let stored = bucket.get(NOTICES_KEY).map_err(|e| format!("{e:?}"))?;
    decode(stored)
}

fn decode(stored: Option<Vec<u8>>) -> Result<Vec<Notice>, String> {
    match stored {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}

/// Adds a notice with compare-and-swap: when another member posted between
/// our read and our write, read again. (Spin's SQLite store treats a swap on
/// a key that does not exist yet as a plain write, so of two very first
/// notices racing one may be lost; every later post is safe.)
fn post_notice(notice: Notice) -> Result<(), String> {
    let bucket = store::open("default").map_err(|e| format!("{e:?}"))?;
    let mut cas = atomics::Cas::new(&bucket, NOTICES_KEY).map_err(|e| format!("{e:?}"))?;
    for _ in 0..8 {
        let mut notices = decode(cas.current().map_err(|e| format!("{e:?}"))?)?;
        notices.insert(0, notice.clone());
        notices.truncate(MAX_NOTICES);
        let bytes = serde_json::to_vec(&notices).map_err(|e| e.to_string())?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => return Ok(()),
            Err(atomics::CasError::CasFailed(fresh)) => {
                // Spin 3.6's Redis store reports a conflict even when it
                // wrote (docs/DEPLOY.md §2): our own bytes there mean it did.
                if fresh.current().ok().flatten().as_deref() == Some(bytes.as_slice()) {
                    return Ok(());
                }
                cas = fresh;
            }
            Err(atomics::CasError::StoreError(e)) => return Err(format!("{e:?}")),
        }
    }
    Err("too many members posting at once; try again".into())
}

/// The authenticator from Spin variables named as in the project's own
/// spin.toml, in the same formats. The component checks the settings on
/// every call and names the field at fault, so only the formats are
/// checked here.
fn config() -> Result<Config, String> {
    let rules = AccessRules {
        allowed_users: list("allowed_users")?,
        allowed_departments: list("allowed_departments")?,
        allowed_tags: tag_ids("allowed_tags")?,
        denied_users: list("denied_users")?,
        denied_departments: list("denied_departments")?,
        denied_tags: tag_ids("denied_tags")?,
    };
    let no_rules = rules.allowed_users.is_empty()
        && rules.allowed_departments.is_empty()
        && rules.allowed_tags.is_empty()
        && rules.denied_users.is_empty()
        && rules.denied_departments.is_empty()
        && rules.denied_tags.is_empty();
    let settings = Settings {
        name: AUTHENTICATOR.into(),
        corp_id: var("corp_id")?.unwrap_or_default(),
        agent_id: var("agent_id")?.unwrap_or_default(),
        secret: var("secret")?.unwrap_or_default(),
        origin: var("origin")?.unwrap_or_default(),
        redirect_path: var("redirect_path")?,
        // The component's own HTTP front acts on it; the app does not.
        auto_login: false,
        auto_signup: flag("auto_signup")?,
        api_base: var("api_base")?,
        oauth_base: var("oauth_base")?,
        sso_base: var("sso_base")?,
        signing_keys: signing_keys()?,
        session_lifetime_seconds: number("session_lifetime_seconds")?,
        state_lifetime_seconds: number("state_lifetime_seconds")?,
        route_prefix: var("route_prefix")?,
        api_timeout_ms: number("api_timeout_ms")?,
        session_cookie_name: var("session_cookie_name")?,
        session_cookie_domain: var("session_cookie_domain")?,
        access_rules: (!no_rules).then_some(rules),
        access_facts_max_age_seconds: number("access_facts_max_age_seconds")?,
        groups: groups()?,
    };
    Ok(Config {
        route_prefix: (settings.route_prefix.as_deref())
            .unwrap_or(DEFAULT_ROUTE_PREFIX)
            .trim_end_matches('/')
            .to_owned(),
        session_cookie: (settings.session_cookie_name.as_deref())
            .unwrap_or(DEFAULT_SESSION_COOKIE)
            .to_owned(),
        settings,
    })
}

/// A Spin variable, trimmed; empty is unset (spin.toml declares the optional
/// ones with `default = ""`).
fn var(name: &str) -> Result<Option<String>, String> {
    match variables::get(name) {
        Ok(value) => Ok(Some(value.trim().to_owned()).filter(|v| !v.is_empty())),
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn number(name: &str) -> Result<Option<u32>, String> {
    var(name)?
        .map(|value| {
            value
                .parse()
                .map_err(|_| format!("{name} must be a whole number"))
        })
        .transpose()
}

/// `true/false/1/0/yes/no/on/off`, as the component's front reads them.
fn flag(name: &str) -> Result<bool, String> {
    match var(name)?.map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

/// A comma-separated list; blank entries dropped, but a list of blanks only
/// (`" , "`) is refused, as the component's front refuses it: an access rule
/// must never read as "no rule" by mistake.
fn list(name: &str) -> Result<Vec<String>, String> {
    let Some(value) = var(name)? else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err(format!(
            "{name} lists only blanks: leave it empty for no rule"
        ));
    }
    Ok(items)
}

fn tag_ids(name: &str) -> Result<Vec<u32>, String> {
    list(name)?
        .iter()
        .map(|id| {
            id.parse()
                .map_err(|_| format!("{name}: {id:?} is not a tag id"))
        })
        .collect()
}

/// `groups`: `departments`, `tags` or both, comma-separated.
fn groups() -> Result<Option<Vec<GroupKind>>, String> {
    let kinds = list("groups")?
        .iter()
        .map(|kind| match kind.to_ascii_lowercase().as_str() {
            "departments" => Ok(GroupKind::Department),
            "tags" => Ok(GroupKind::Tag),
            _ => Err(format!("groups: {kind:?} is not departments or tags")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!kinds.is_empty()).then_some(kinds))
}

/// `signing_keys`: `id:secret,id2:secret2`, newest first. A problem names
/// the entry's position, never its text.
fn signing_keys() -> Result<Vec<SigningKey>, String> {
    let Some(value) = var("signing_keys")? else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .enumerate()
        .map(|(index, entry)| match entry.trim().split_once(':') {
            Some((id, secret)) if !id.trim().is_empty() => Ok(SigningKey {
                id: id.trim().to_owned(),
                secret: secret.trim().to_owned(),
            }),
            _ => Err(format!(
                "signing_keys: key {} is not written id:secret",
                index + 1
            )),
        })
        .collect()
}
