//! The admin API under `{prefix}/admin`, for provisioning "existing users"
//! before their first login. Off (404) unless `admin_token` is set; every call
//! needs `Authorization: Bearer <admin_token>`, compared in constant time.
//!
//! | route | |
//! |---|---|
//! | `GET /admin/users?cursor=&limit=` | a page of users (limit 1..=1000, default 100) |
//! | `POST /admin/users` | create or update one user (`{id?, name, mobile?, email?}`) |
//! | `GET /admin/users/<id>` | one user |
//! | `DELETE /admin/users/<id>` | delete a user and their bindings |
//! | `POST /admin/users/import` | many users: a JSON array, or CSV `name,mobile,email[,id]` |
//! | `DELETE /admin/bindings/<authenticator>/<wecom_userid>` | unbind a member |
//! | `GET /admin/links` | the WeCom console links of each authenticator |

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::audit::{self, Audited as _};
use super::context::Ctx;
use super::errors::{ErrorJson, log_line, method_not_allowed, not_found};
use super::message::Response;
use super::probes;
use super::same_origin;
use super::warnings::clock_detail;
use crate::core::browser::Language;
use crate::core::directory::{self, Binding, User, UserInput, UserQuery};
use crate::core::error::AuthError;
use crate::core::login;
use crate::core::ports::{KeyValue, Transport};
use crate::core::settings::{self, Secret};
use crate::core::setup;
use crate::core::sync;
use crate::core::texts;
use crate::core::warnings::{self, CasCheck, MAX_CLOCK_SKEW, Warning};
use serde::{Deserialize, Serialize};

/// Most users one import takes.
pub const MAX_IMPORT_ROWS: usize = 10_000;
const DEFAULT_LIMIT: u32 = 100;

pub(super) fn handle<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>, rest: &str) -> Response {
    let Some(token) = &ctx.config.admin_token else {
        // Off: as if there were no such route.
        return not_found(ctx);
    };
    if !authorized(ctx.request.header("authorization"), token) {
        let error = ErrorJson::plain(
            "session-invalid",
            401,
            "missing or wrong admin token: send Authorization: Bearer <admin_token>",
        );
        return Response::json(401, &error.body())
            .with_header("www-authenticate", "Bearer realm=\"wecom-auth admin\"");
    }
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let method = ctx.request.method.as_str();
    // Changes are audited; reads are not.
    let change = match (method, segments.as_slice()) {
        ("POST", ["users"]) => Some("upsert-user"),
        ("POST", ["users", "import"]) => Some("import-users"),
        ("DELETE", ["users", _]) => Some("delete-user"),
        ("DELETE", ["bindings", _, _]) => Some("unbind"),
        ("POST", ["sync"]) => Some("sync-directory"),
        _ => None,
    };
    if change.is_some()
        && let Some(refused) = same_origin::refused(ctx, "admin")
    {
        return refused;
    }
    let result = match (method, segments.as_slice()) {
        ("GET", ["users"]) => list(ctx),
        ("POST", ["users"]) => upsert_one(ctx),
        ("POST", ["users", "import"]) => import(ctx),
        ("GET", ["users", id]) => decoded(id).and_then(|id| find(ctx, &id)),
        ("DELETE", ["users", id]) => decoded(id).and_then(|id| delete(ctx, &id)),
        ("DELETE", ["bindings", authenticator, userid]) => {
            decoded(authenticator).and_then(|a| decoded(userid).and_then(|u| unbind(ctx, a, u)))
        }
        ("GET", ["links"]) => Ok(links(ctx)),
        ("GET", ["setup"]) => Ok(setup(ctx)),
        ("POST", ["sync"]) => sync(ctx),
        (_, ["users"]) => return method_not_allowed(ctx, &["GET", "POST"]),
        (_, ["users", "import"]) => return method_not_allowed(ctx, &["POST"]),
        (_, ["users", _]) => return method_not_allowed(ctx, &["GET", "DELETE"]),
        (_, ["bindings", _, _]) => return method_not_allowed(ctx, &["DELETE"]),
        (_, ["links"] | ["setup"]) => return method_not_allowed(ctx, &["GET"]),
        (_, ["sync"]) => return method_not_allowed(ctx, &["POST"]),
        _ => Err(AuthError::NotFound("no such admin route".into())),
    };
    let audited = |response: Response, event: audit::Event<'_>| match change {
        Some(action) => response.audited(&audit::Event {
            detail: Some(action),
            ..event
        }),
        None => response,
    };
    match result {
        Ok(response) => {
            let status_ok = response.status < 400;
            let outcome = if status_ok { "ok" } else { "refused" };
            audited(response, audit::Event::of(ctx, "admin", outcome))
        }
        Err(e) => {
            let mut response = Response::json(e.status(), &admin_error(&e).body());
            response.log = log_line(ctx, &e);
            audited(
                response,
                audit::Event::of(ctx, "admin", "refused").failed(&e),
            )
        }
    }
}

/// `Bearer <token>`, compared as SHA-256 digests in constant time (so
/// neither the content nor the length of the token leaks through timing).
fn authorized(header: Option<&str>, token: &Secret) -> bool {
    let Some((scheme, given)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let given = Sha256::digest(given.trim().as_bytes());
    let expected = Sha256::digest(token.expose().as_bytes());
    given.as_slice().ct_eq(expected.as_slice()).into()
}

/// The admin's error: the common fields plus what exactly went wrong.
fn admin_error(e: &AuthError) -> ErrorJson<'static> {
    ErrorJson {
        detail: Some(e.to_string()),
        ..ErrorJson::of(e, Language::En)
    }
}

fn decoded(segment: &str) -> Result<String, AuthError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| AuthError::bad_request("path", "is not UTF-8 once percent-decoded"))
}

fn list<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Result<Response, AuthError> {
    let limit = match ctx.params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse()
            .map_err(|_| AuthError::bad_request("limit", "must be a whole number"))?,
    };
    let page = directory::list(ctx.env.kv, ctx.params.get("cursor"), limit)?;
    #[derive(Serialize)]
    struct Page<'a> {
        users: &'a [User],
        cursor: Option<&'a str>,
    }
    let body = Page {
        users: &page.users,
        cursor: page.cursor.as_deref(),
    };
    Ok(Response::json(200, &body))
}

/// What the admin sends for one user: `{id?, name, mobile?, email?}`,
/// strings or null. Any other field is refused, so a misspelt one is not
/// silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a user {id?, name, mobile?, email?}")]
struct UserJson {
    id: Option<String>,
    name: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
}

/// The body as a `T`, or a 400 naming what was expected, the field that is
/// wrong (`[3].mobile` in an import) and what serde_json found wrong there,
/// with its line and column, never quoting a value (bodies hold mobile
/// numbers). `objects` says which JSON shape the body must have: serde's
/// records also read arrays, field by position, which no admin sends.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    expected: &str,
    objects: fn(&serde_json::Value) -> bool,
) -> Result<T, AuthError> {
    let refused = |path: String, e: &serde_json::Error| {
        let at = match path.as_str() {
            "" | "." => String::new(),
            path => format!(" at `{path}`"),
        };
        AuthError::bad_request("body", format!("is not {expected}{at}: {}", unquoted(e)))
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| refused(String::new(), &e))?;
    if !objects(&value) {
        return Err(AuthError::bad_request("body", format!("is not {expected}")));
    }
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
        .map_err(|e| refused(e.path().to_string(), e.inner()))
}

/// serde_json's message without the value it quotes: `invalid type:
/// integer `13800000000`, expected a string at line 1 column 22` →
/// `invalid type, expected a string at line 1 column 22`.
fn unquoted(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.split_once(", expected ") {
        Some((found, expected)) if found.starts_with("invalid ") => {
            let kind = found.split_once(':').map_or(found, |(kind, _)| kind);
            format!("{kind}, expected {expected}")
        }
        _ => text,
    }
}

impl From<UserJson> for UserInput {
    fn from(u: UserJson) -> Self {
        UserInput {
            id: u.id.filter(|id| !id.is_empty()),
            name: u.name.unwrap_or_default(),
            mobile: u.mobile,
            email: u.email,
        }
    }
}

fn upsert_one<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Result<Response, AuthError> {
    let input: UserJson = json_body(
        &ctx.request.body,
        "a user {id?, name, mobile?, email?}",
        serde_json::Value::is_object,
    )?;
    let user = directory::upsert(ctx.env.kv, &input.into(), ctx.env.now, &row_random(ctx, 0))?;
    Ok(Response::json(200, &user))
}

/// Ten random bytes per imported row (ids of users without a mobile number),
/// derived from the request's randomness.
fn row_random<K, T>(ctx: &Ctx<'_, '_, K, T>, row: usize) -> [u8; 10] {
    let digest = Sha256::new()
        .chain_update(b"wecom-auth import row\0")
        .chain_update(ctx.env.random)
        .chain_update((row as u64).to_le_bytes())
        .finalize();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&digest[..10]);
    bytes
}

fn find<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>, id: &str) -> Result<Response, AuthError> {
    match directory::find(ctx.env.kv, &UserQuery::Id(id.to_owned()))? {
        Some(user) => Ok(Response::json(200, &user)),
        None => Err(AuthError::NotFound("no user with that id".into())),
    }
}

fn delete<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>, id: &str) -> Result<Response, AuthError> {
    if directory::delete(ctx.env.kv, id)? {
        #[derive(Serialize)]
        struct Deleted<'a> {
            deleted: &'a str,
        }
        Ok(Response::json(200, &Deleted { deleted: id }))
    } else {
        Err(AuthError::NotFound("no user with that id".into()))
    }
}

fn unbind<K: KeyValue, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: String,
    wecom_userid: String,
) -> Result<Response, AuthError> {
    let binding = Binding {
        authenticator,
        wecom_userid,
    };
    if directory::unbind(ctx.env.kv, &binding, ctx.env.now)? {
        #[derive(Serialize)]
        struct Unbound<'a> {
            unbound: &'a Binding,
        }
        Ok(Response::json(200, &Unbound { unbound: &binding }))
    } else {
        Err(AuthError::NotFound("no such binding".into()))
    }
}

/// One authenticator's console links.
#[derive(Serialize)]
struct Links<'a> {
    authenticator: &'a str,
    display_name: Option<&'a str>,
    auto_login: bool,
    callback_url: String,
    desktop_homepage: String,
    mobile_homepage: String,
    plain_homepage: Option<String>,
}

fn links<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    #[derive(Serialize)]
    struct All<'a> {
        authenticators: Vec<Links<'a>>,
    }
    let authenticators = ctx
        .config
        .entries
        .iter()
        .map(|entry| {
            let links = login::homepage_links(&entry.authenticator);
            Links {
                authenticator: &entry.authenticator.name,
                display_name: entry.display_name.as_deref(),
                auto_login: entry.authenticator.auto_login,
                callback_url: links.callback_url,
                desktop_homepage: links.desktop_homepage,
                mobile_homepage: links.mobile_homepage,
                plain_homepage: links.plain_homepage,
            }
        })
        .collect();
    Response::json(200, &All { authenticators })
}

// ---- setup check ----

/// `GET {prefix}/admin/setup`: per authenticator, what the WeCom console must
/// hold and the live checks ([`setup::check`]); and the store. 200 when every
/// check passes, else 503.
/// `POST sync[?authenticator=NAME][&force=true]`: the directory sync
/// ([`sync::sync_directory`]) of one authenticator or each, each on its
/// own: `{"ok": bool, "reports": [{authenticator, listed, bound,
/// sessions_ended, unbound, disabled, wecom_pages} | {authenticator,
/// error}]}`; 200
/// when every one ran, 502 (WeCom), 503 (store) or 409 (too many leavers:
/// `force`) for the first that did not.
fn sync<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Result<Response, AuthError> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Outcome<'a> {
        Done(sync::SyncReport),
        Failed {
            authenticator: &'a str,
            error: ErrorJson<'static>,
        },
    }
    #[derive(Serialize)]
    struct Reports<'a> {
        ok: bool,
        reports: Vec<Outcome<'a>>,
    }
    let wanted = ctx.params.get("authenticator");
    if let Some(name) = wanted
        && ctx.config.find(name).is_none()
    {
        return Err(AuthError::NotFound("no authenticator of that name".into()));
    }
    let force = match ctx.params.get("force") {
        None => false,
        Some(text) => {
            settings::parse_bool(text).map_err(|why| AuthError::bad_request("force", why))?
        }
    };
    let env = ctx.env;
    let mut status = 200;
    let reports = ctx
        .config
        .entries
        .iter()
        .filter(|entry| wanted.is_none_or(|name| entry.authenticator.name == name))
        .map(|entry| {
            let options = sync::SyncOptions {
                leaver: entry.leaver_action,
                force,
            };
            match sync::sync_directory(
                &entry.authenticator,
                options,
                env.now,
                env.transport,
                env.kv,
            ) {
                Ok(report) => Outcome::Done(report),
                Err(e) => {
                    if status == 200 {
                        status = e.status();
                    }
                    Outcome::Failed {
                        authenticator: &entry.authenticator.name,
                        error: admin_error(&e),
                    }
                }
            }
        })
        .collect();
    let ok = status == 200;
    Ok(Response::json(status, &Reports { ok, reports }))
}

fn setup<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>) -> Response {
    /// `{authenticator, console, checks}`: the report's fields beside the name.
    #[derive(Serialize)]
    struct Authenticator<'a> {
        authenticator: &'a str,
        #[serde(flatten)]
        report: setup::Report,
    }
    #[derive(Serialize)]
    struct Setup<'a> {
        ok: bool,
        authenticators: Vec<Authenticator<'a>>,
        store: setup::Check,
        /// Guards that cannot work as configured (`core/warnings.rs`).
        guards: Vec<setup::Check>,
    }
    let env = ctx.env;
    let authenticators: Vec<Authenticator> = ctx
        .config
        .entries
        .iter()
        .map(|entry| Authenticator {
            authenticator: &entry.authenticator.name,
            report: setup::check(&entry.authenticator, env.transport, env.kv, env.now),
        })
        .collect();
    let store = setup::Check::of(
        "store",
        probes::store_answers(env.kv).map_err(AuthError::from),
    );
    let guards = guard_checks(ctx);
    let ok =
        store.ok && guards.iter().all(|c| c.ok) && authenticators.iter().all(|a| a.report.ok());
    Response::json(
        if ok { 200 } else { 503 },
        &Setup {
            ok,
            authenticators,
            store,
            guards,
        },
    )
}

/// The guards that may not work as configured (`core/warnings.rs`): the
/// store's compare-and-swap and the clock checked live (the clock by the
/// `gettoken` answers just read), the client address as login requests
/// met it within the hour (this request may come another way).
fn guard_checks<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Vec<setup::Check> {
    let env = ctx.env;
    let failed = |warning: Warning, detail: &str, zh: &str| {
        setup::Check::failed(warning.name(), detail.to_owned(), zh.to_owned())
    };
    let passed = |warning: Warning| setup::Check::of(warning.name(), Ok(()));
    let probe = hex::encode(&env.random[..16]);
    let cas = match warnings::check_compare_and_swap(env.kv, &probe, env.now) {
        Ok(CasCheck::Compares) => passed(Warning::CompareAndSwap),
        Ok(CasCheck::Overwrites { detail, log }) => {
            if let Some(line) = log {
                ctx.notices.push(line);
            }
            failed(Warning::CompareAndSwap, &detail, texts::CAS_OVERWRITES.zh)
        }
        Err(e) => setup::Check::of(Warning::CompareAndSwap.name(), Err(e.into())),
    };
    let noticed = match warnings::active(env.kv, env.now) {
        Ok(noticed) => noticed,
        Err(e) => {
            let unread = |w: Warning| setup::Check::of(w.name(), Err(e.clone().into()));
            return vec![
                cas,
                unread(Warning::ClientAddressHeader),
                unread(Warning::Clock),
                unread(Warning::ApiTimeout),
            ];
        }
    };
    let earlier = |warning: Warning| noticed.iter().find(|n| n.warning == warning.name());
    let header = &ctx.config.rate_limits.client_address_header;
    let client = match earlier(Warning::ClientAddressHeader) {
        Some(n) => failed(
            Warning::ClientAddressHeader,
            &n.detail,
            &format!(
                "登录请求缺少 {header} 请求头或其中不是 IP 地址，按客户端的限流（rate_limit_per_client）对其不生效；请让代理把客户端地址写入 {header}，或把 client_address_header 设为代理所写的请求头"
            ),
        ),
        None => passed(Warning::ClientAddressHeader),
    };
    let clock = match ctx.notices.clock_skew() {
        // Set right: what other requests noticed is over.
        Some(skew) if skew.abs() <= MAX_CLOCK_SKEW => {
            let _ = warnings::clear(env.kv, Warning::Clock);
            passed(Warning::Clock)
        }
        skew => match skew
            .map(clock_detail)
            .or_else(|| earlier(Warning::Clock).map(|n| n.detail.clone()))
        {
            Some(detail) => failed(Warning::Clock, &detail, texts::CLOCK_OFF.zh),
            None => passed(Warning::Clock),
        },
    };
    let timeouts = match earlier(Warning::ApiTimeout) {
        Some(n) => failed(
            Warning::ApiTimeout,
            &n.detail,
            texts::API_TIMEOUT_REFUSED.zh,
        ),
        None => passed(Warning::ApiTimeout),
    };
    vec![cas, client, clock, timeouts]
}

// ---- import ----

fn import<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Result<Response, AuthError> {
    let kind = ctx
        .request
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // (position label, position, the row or why it is unusable)
    let rows: Vec<(&str, usize, Result<UserInput, AuthError>)> = match kind.as_str() {
        "application/json" => json_rows(&ctx.request.body)?,
        "text/csv" => csv_rows(&ctx.request.body)?,
        _ => {
            let error = ErrorJson::plain(
                "bad-request",
                415,
                "send Content-Type: application/json (an array of users) or text/csv (header name,mobile,email)",
            );
            return Ok(Response::json(415, &error.body()));
        }
    };
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(AuthError::bad_request(
            "body",
            format!("holds more than {MAX_IMPORT_ROWS} users: split it"),
        ));
    }
    let (mut imported, mut failed) = (0usize, 0usize);
    let mut results = Vec::with_capacity(rows.len());
    for (index, (label, position, row)) in rows.into_iter().enumerate() {
        let outcome = row.and_then(|input| {
            directory::upsert(ctx.env.kv, &input, ctx.env.now, &row_random(ctx, index))
        });
        let mut result = Row {
            line: None,
            index: None,
            ok: false,
            id: None,
            error: None,
        };
        match label {
            "line" => result.line = Some(position),
            _ => result.index = Some(position),
        }
        match outcome {
            Ok(user) => {
                imported += 1;
                result.ok = true;
                result.id = Some(user.id);
            }
            Err(e) => {
                failed += 1;
                result.error = Some(admin_error(&e));
            }
        }
        results.push(result);
    }
    Ok(Response::json(
        200,
        &Imported {
            imported,
            failed,
            results,
        },
    ))
}

/// What an import answers: counts, then one result per row.
#[derive(Serialize)]
struct Imported {
    imported: usize,
    failed: usize,
    results: Vec<Row>,
}

/// `{line?, index?, ok, id?, error?}`.
#[derive(Serialize)]
struct Row {
    /// CSV: the line the row starts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    /// JSON: the position in the array (from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'static>>,
}

type Rows = Vec<(&'static str, usize, Result<UserInput, AuthError>)>;

/// A JSON array of users. A row of the wrong shape fails the whole import
/// (JSON cannot be resynchronised after an error); rows that only fail
/// validation (mobile number, name) are reported one by one.
fn json_rows(body: &[u8]) -> Result<Rows, AuthError> {
    let users: Vec<UserJson> = json_body(
        body,
        "an array of users {id?, name, mobile?, email?}",
        |value| {
            value
                .as_array()
                .is_some_and(|users| users.iter().all(|u| u.is_object()))
        },
    )?;
    Ok(users
        .into_iter()
        .enumerate()
        .map(|(index, user)| ("index", index, Ok(user.into())))
        .collect())
}

/// The columns an import understands (English or Chinese headers).
fn column(header: &str) -> Option<&'static str> {
    match header.trim().to_ascii_lowercase().as_str() {
        "id" => Some("id"),
        "name" | "姓名" | "名字" => Some("name"),
        "mobile" | "phone" | "手机" | "手机号" | "手机号码" => Some("mobile"),
        "email" | "邮箱" | "电子邮箱" => Some("email"),
        _ => None,
    }
}

fn csv_rows(body: &[u8]) -> Result<Rows, AuthError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| AuthError::bad_request("body", "is not UTF-8 (save the CSV as UTF-8)"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = parse_csv(text).into_iter().filter(|r| !r.is_blank());
    let Some(header) = records.next() else {
        return Ok(Vec::new());
    };
    if let Some(why) = &header.error {
        return Err(AuthError::bad_request(
            "header",
            format!("line {}: {why}", header.line),
        ));
    }
    let mut columns = Vec::with_capacity(header.fields.len());
    for name in &header.fields {
        match column(name) {
            Some(c) if columns.contains(&Some(c)) => {
                return Err(AuthError::bad_request(
                    "header",
                    format!("names the column {c} twice"),
                ));
            }
            Some(c) => columns.push(Some(c)),
            None if name.trim().is_empty() => columns.push(None),
            None => {
                return Err(AuthError::bad_request(
                    "header",
                    format!(
                        "has an unknown column {:?}: use name,mobile,email (and optionally id)",
                        name.chars().take(40).collect::<String>()
                    ),
                ));
            }
        }
    }
    if !columns.contains(&Some("name")) {
        return Err(AuthError::bad_request(
            "header",
            "has no name column: the first line must be name,mobile,email",
        ));
    }
    Ok(records
        .map(|record| {
            let row = match record.error {
                Some(why) => Err(AuthError::bad_request("row", why)),
                None if record.fields.len() != columns.len() => Err(AuthError::bad_request(
                    "row",
                    format!(
                        "has {} fields, the header {}",
                        record.fields.len(),
                        columns.len()
                    ),
                )),
                None => {
                    let mut input = UserInput::default();
                    for (value, column) in record.fields.into_iter().zip(&columns) {
                        let value = value.trim();
                        let value = (!value.is_empty()).then(|| value.to_owned());
                        match column {
                            Some("id") => input.id = value,
                            Some("name") => input.name = value.unwrap_or_default(),
                            Some("mobile") => input.mobile = value,
                            Some("email") => input.email = value,
                            _ => {}
                        }
                    }
                    Ok(input)
                }
            };
            ("line", record.line, row)
        })
        .collect())
}

/// One CSV record and the line it starts on.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    line: usize,
    fields: Vec<String>,
    error: Option<String>,
}

impl Record {
    #[cfg(test)]
    fn is_blank_fields(r: &(usize, Vec<String>, Option<String>)) -> bool {
        r.2.is_none() && r.1.iter().all(|f| f.trim().is_empty())
    }

    fn is_blank(&self) -> bool {
        self.error.is_none() && self.fields.iter().all(|f| f.trim().is_empty())
    }
}

/// RFC 4180 CSV by `csv-core` (`,` separates, `"` quotes, `""` inside is a
/// quote, quoted fields may span lines; CRLF, LF or CR end a record). As in
/// spreadsheets, a stray quote inside an unquoted field is kept as text; a
/// quoted field still open at the end of the input is an error of its record.
fn parse_csv(text: &str) -> Vec<Record> {
    use csv_core::ReadRecordResult;

    let bytes = text.as_bytes();
    let mut reader = csv_core::Reader::new();
    let mut records = Vec::new();
    // A record's fields are never longer than the input.
    let mut output = vec![0; bytes.len() + 1];
    let mut ends = vec![0; 16];
    // CRLF, LF and CR each end one line.
    let line_ends = |text: &str| {
        text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count()
    };
    let (mut at, mut line, mut counted) = (0, 1, 0);
    while at < bytes.len() {
        let (mut read, mut written, mut fields) = (0, 0, 0);
        loop {
            let input = &bytes[at + read..];
            let (result, nin, nout, nend) =
                reader.read_record(input, &mut output[written..], &mut ends[fields..]);
            read += nin;
            written += nout;
            fields += nend;
            match result {
                ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                // All of the input was given: an empty read tells it ended.
                ReadRecordResult::InputEmpty if !input.is_empty() => {}
                ReadRecordResult::InputEmpty | ReadRecordResult::OutputFull => {
                    if input.is_empty() && nend == 0 && nout == 0 {
                        break;
                    }
                }
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        let raw = &text[at..at + read];
        // The record starts after the line ends the reader skipped.
        let start = at + (raw.len() - raw.trim_start_matches(['\r', '\n']).len());
        line += line_ends(&text[counted..start]);
        counted = start;
        let record = Record {
            line,
            fields: (0..fields)
                .map(|i| {
                    let from = if i == 0 { 0 } else { ends[i - 1] };
                    String::from_utf8_lossy(&output[from..ends[i]]).into_owned()
                })
                .collect(),
            // Quotes pair up in a record whose quoted fields all closed.
            error: (at + read == bytes.len() && raw.matches('"').count() % 2 == 1)
                .then(|| "a quoted field is never closed".to_owned()),
        };
        records.push(record);
        if read == 0 {
            break;
        }
        at += read;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(usize, Vec<String>, Option<String>)> {
        parse_csv(text)
            .into_iter()
            .map(|r| (r.line, r.fields, r.error))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn csv_quotes_escapes_and_multiline_fields() {
        let parsed =
            fields("name,mobile\r\n\"Zhang, San\",138\n\"say \"\"hi\"\"\",\"a\nb\"\nlast,1");
        assert_eq!(
            parsed,
            [
                (1, strings(&["name", "mobile"]), None),
                (2, strings(&["Zhang, San", "138"]), None),
                (3, strings(&["say \"hi\"", "a\nb"]), None),
                (5, strings(&["last", "1"]), None),
            ]
        );
    }

    proptest::proptest! {
        /// Any text ends, with records in line order; text without quotes
        /// splits exactly at commas and line ends.
        #[test]
        fn csv_reads_any_text(text in "[a,\"\r\n 张]{0,40}") {
            let records = parse_csv(&text);
            let lines = text.matches('\n').count() + text.matches('\r').count() + 1;
            proptest::prop_assert!(records.windows(2).all(|w| w[0].line < w[1].line));
            proptest::prop_assert!(records.iter().all(|r| r.line <= lines));
            if !text.contains('"') {
                let expected: Vec<Vec<String>> = text
                    .split(['\r', '\n'])
                    .filter(|line| !line.is_empty())
                    .map(|line| line.split(',').map(str::to_owned).collect())
                    .collect();
                let got: Vec<Vec<String>> = records
                    .into_iter()
                    .filter(|r| !(r.fields.len() <= 1 && r.fields.iter().all(String::is_empty)))
                    .map(|r| r.fields)
                    .collect();
                proptest::prop_assert_eq!(got, expected);
            }
        }
    }

    #[test]
    fn csv_stray_quotes_are_text_and_an_open_quote_is_reported() {
        let parsed = fields("a\"b,c\n\"x\"y,z\nok,1\n\"open,2\nlost,3");
        assert_eq!(parsed[0], (1, strings(&["a\"b", "c"]), None));
        assert_eq!(parsed[1], (2, strings(&["xy", "z"]), None));
        assert_eq!(parsed[2], (3, strings(&["ok", "1"]), None));
        assert_eq!(parsed[3].0, 4);
        assert!(parsed[3].2.as_deref().unwrap().contains("never closed"));
        assert_eq!(fields(""), []);
        assert!(fields("\n\n").iter().all(Record::is_blank_fields));
    }

    #[test]
    fn bearer_tokens_compare_whole() {
        let token = Secret::new("0123456789abcdef0123");
        assert!(authorized(Some("Bearer 0123456789abcdef0123"), &token));
        assert!(authorized(Some("bearer  0123456789abcdef0123 "), &token));
        for wrong in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer 0123456789abcdef012"),
            Some("Bearer 0123456789abcdef01234"),
            Some("Basic 0123456789abcdef0123"),
            Some("0123456789abcdef0123"),
        ] {
            assert!(!authorized(wrong, &token), "{wrong:?}");
        }
    }
}
