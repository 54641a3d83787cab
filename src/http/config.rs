//! The front's configuration from `wasi:config/store` (Spin variables): parsed
//! into authenticator [`Settings`], checked with [`settings::check_all`], and
//! every problem reported under the name of the variable to fix.
//!
//! Rules:
//! - An empty value is unset (Spin declares defaults as `""`); values are trimmed.
//! - Each setting of [`Field::SETTINGS`] is the variable of its name with
//!   `_` for `-` (`corp-id` → `corp_id`), read as [`Settings::set`] reads
//!   text (booleans, numbers, comma lists, `signing_keys` as
//!   `id:secret,id2:secret2`).
//! - Global: [`global_variables`] (`authenticators`, default `wecom`, a comma
//!   list; `admin_token`, `protected_paths`, `route_prefix`, the session
//!   cookie, forward-auth and renewal settings).
//! - Per authenticator `NAME`: `NAME_<variable>`, else the plain `<variable>`
//!   ([`authenticator_variables`]).

use crate::core::contact_changes::LeaverAction;
use crate::core::events::CallbackKeys;
use crate::core::flow::InClientScope;
use crate::core::session::Renewal;
use crate::core::settings::{self, Authenticator, Field, Scope, Secret, Settings, SettingsError};

/// Configuration as `wasi:config/store` `get-all` gives it.
pub type ConfigMap = std::collections::BTreeMap<String, String>;

pub const DEFAULT_AUTHENTICATORS: &str = "wecom";
pub const MAX_AUTHENTICATORS: usize = 16;
pub const MIN_ADMIN_TOKEN: usize = 16;
const MAX_ADMIN_TOKEN: usize = 512;
const MAX_PROTECTED_PATHS: usize = 64;
const MAX_DISPLAY_NAME: usize = 64;
const MAX_NAME: usize = 32;

/// One configured authenticator.
#[derive(Debug, Clone)]
pub struct Entry {
    pub authenticator: Authenticator,
    /// `display_name`, if set.
    pub display_name: Option<String>,
    /// `in_client_scope`: what an in-client login asks WeCom for first.
    /// [`InClientScope::Base`] (the default) is silent for a member already
    /// bound; [`InClientScope::PrivateInfo`] asks every member's consent, so
    /// `getuserdetail`'s fields are read at each login (email and avatar
    /// refreshed, a mobile the user lacks filled in).
    pub in_client_scope: InClientScope,
    /// `callback_token` and `callback_aes_key`: WeCom's callbacks to
    /// `{prefix}/events` are taken (None: that route is 404).
    pub callback: Option<CallbackKeys>,
    /// `leaver_action`: what a leaver's binding becomes.
    pub leaver_action: LeaverAction,
}

/// The checked configuration of the front.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// In the order of `authenticators`; never empty.
    pub entries: Vec<Entry>,
    /// None: the admin API is off.
    pub admin_token: Option<Secret>,
    /// Path prefixes guarded by auto-login, each starting with `/`.
    pub protected_paths: Vec<String>,
    pub route_prefix: String,
    /// The identity header conventions `/verify` answers in; never empty.
    pub identity_headers: Vec<HeaderConvention>,
    /// Sliding sessions: `session_refresh_seconds`, `session_max_seconds`.
    pub renewal: Renewal,
    /// Paths (and methods) `/verify` passes without a session.
    pub public_paths: Vec<PublicPath>,
    /// Whether `/verify` passes CORS preflights (`OPTIONS` with
    /// `Access-Control-Request-Method`) without a session.
    pub allow_preflight: bool,
    /// Login request rates: `rate_limit_per_client`,
    /// `rate_limit_per_authenticator`, `client_address_header`.
    pub rate_limits: RateLimits,
    /// `login_panel_script`: where WeCom's JS-SDK is loaded from to draw
    /// its login panel on the login page ([`FrontConfig::login_panel`]);
    /// None (`off`): a button that goes to WeCom's login page.
    pub login_panel_script: Option<LoginPanelScript>,
}

/// The script that draws WeCom's login panel (`ww.createWWLoginPanel`, doc
/// 98478): `login_panel_script`, and `login_panel_script_integrity` when
/// the script is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPanelScript {
    /// An `https` URL (`http` on a loopback host: the simulator's stand-in)
    /// of one file: a host of `[a-z0-9.-]` or an IPv4 address, a path not
    /// ending in `/`, no query, credentials or fragment, so that it stands
    /// in the page's CSP as exactly that script (CSP Level 3, host-source
    /// with a path).
    pub url: String,
    /// Subresource Integrity (`sha256-`, `sha384-` or `sha512-` and the
    /// base64 digest, W3C SRI): the browser runs the script only if it
    /// matches (the script is then fetched with CORS). None: whatever the
    /// URL serves runs on the login page's origin.
    pub integrity: Option<String>,
}

impl LoginPanelScript {
    /// Whether it is WeCom's own JS-SDK, which frames WeCom's web login
    /// page whatever `sso_base` says.
    pub fn is_wecoms(&self) -> bool {
        self.url == DEFAULT_LOGIN_PANEL_SCRIPT
    }

    fn parse_url(text: &str) -> Result<Option<String>, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let problem = "must be the https URL of one script (http only on 127.0.0.1 or localhost), \
                       without a query, or off";
        let url = url::Url::parse(text).map_err(|_| problem.to_owned())?;
        let (named, loopback) = match url.host() {
            Some(url::Host::Domain(name)) => (
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
                name == "localhost",
            ),
            Some(url::Host::Ipv4(ip)) => (true, ip.is_loopback()),
            // A CSP host-source cannot name an IPv6 address.
            _ => (false, false),
        };
        let scheme_fits = match url.scheme() {
            "https" => true,
            "http" => loopback,
            _ => false,
        };
        if !named
            || !scheme_fits
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path().ends_with('/')
            || url.as_str().contains(['\'', ';', ',', '*'])
        {
            return Err(problem.to_owned());
        }
        Ok(Some(url.into()))
    }

    fn parse_integrity(text: &str) -> Result<String, String> {
        let digest = ["sha256-", "sha384-", "sha512-"]
            .iter()
            .find_map(|algorithm| text.strip_prefix(algorithm));
        match digest {
            Some(digest)
                if !digest.is_empty()
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
            {
                Ok(text.to_owned())
            }
            _ => Err(
                "must be sha256-, sha384- or sha512- and the base64 digest of the script \
                      (e.g. openssl dgst -sha384 -binary file.js | base64)"
                    .to_owned(),
            ),
        }
    }
}

/// WeCom's JS-SDK (`@wecom/jssdk`, doc 98478) on WeCom's CDN.
pub const DEFAULT_LOGIN_PANEL_SCRIPT: &str =
    "https://wwcdn.weixin.qq.com/node/open/js/wecom-jssdk-2.0.2.js";

/// How many login requests are let through per minute (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// `/login` and `/callback` requests per client address.
    pub per_client: u32,
    /// `/callback` requests per authenticator: each costs WeCom calls, and
    /// WeCom allows a company 10 000 calls of one API a minute (doc 90312).
    pub per_authenticator: u32,
    /// The request header holding the client address (lower case), set by
    /// the host or a trusted proxy; a client must not be able to set it.
    pub client_address_header: String,
}

/// 30 logins a minute from one address (a login is two requests): a busy
/// office behind one NAT logs in in the morning without meeting it.
pub const DEFAULT_RATE_PER_CLIENT: u32 = 60;
/// 3 000 logins a minute (up to 3 calls of one API each) stays well under
/// WeCom's 10 000 calls of one API a minute per company (doc 90312).
pub const DEFAULT_RATE_PER_AUTHENTICATOR: u32 = 3000;
/// Spin sets it to the peer's `ip:port`; so does the reference gateway.
pub const DEFAULT_CLIENT_ADDRESS_HEADER: &str = "spin-client-addr";

/// A path prefix `/verify` passes without a session, for one method or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPath {
    /// Upper case; None: every method.
    pub method: Option<String>,
    /// Starts with `/`; segment-wise (`/static` covers `/static/x`, not `/staticx`).
    pub prefix: String,
}

/// A family of identity headers that proxies' users already configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderConvention {
    /// `X-WeCom-UserId`, `X-WeCom-Authenticator`, `X-User-Id`, `-Name`,
    /// `-Email`, `-Mobile` (ours).
    Wecom,
    /// `X-Auth-Request-User`, `-Email`, `-Preferred-Username` (oauth2-proxy's
    /// `--set-xauthrequest`).
    Oauth2Proxy,
    /// `Remote-User`, `Remote-Name`, `Remote-Email` (Authelia, Authentik).
    Remote,
}

impl HeaderConvention {
    /// The setting's words: `wecom`, `oauth2-proxy`, `remote` (`authelia` too).
    fn parse(word: &str) -> Option<Self> {
        match word {
            "wecom" => Some(HeaderConvention::Wecom),
            "oauth2-proxy" | "oauth2_proxy" => Some(HeaderConvention::Oauth2Proxy),
            "remote" | "authelia" | "authentik" => Some(HeaderConvention::Remote),
            _ => None,
        }
    }
}

impl FrontConfig {
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.authenticator.name == name)
    }

    /// The script that draws WeCom's login panel for `entry`, if any: None
    /// when it is off, and for WeCom's own JS-SDK when `sso_base` is not
    /// WeCom's (the SDK frames WeCom's login page, which the page's CSP
    /// would then refuse: a blank panel).
    pub fn login_panel(&self, entry: &Entry) -> Option<&LoginPanelScript> {
        self.login_panel_script.as_ref().filter(|script| {
            !script.is_wecoms() || entry.authenticator.sso_base == settings::DEFAULT_SSO_BASE
        })
    }

    /// The authenticator that logs WeCom-browser visitors in silently.
    pub fn auto_login(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.authenticator.auto_login)
    }

    /// The session cookie's name (shared by every authenticator).
    pub fn session_cookie_name(&self) -> &str {
        &self.entries[0].authenticator.session_cookie_name
    }

    /// Whether `path` is a protected path or below one (segment-wise: `/app`
    /// covers `/app` and `/app/x`, not `/apple`).
    pub fn is_protected(&self, path: &str) -> bool {
        self.protected_paths
            .iter()
            .any(|prefix| is_under(path, prefix))
    }
}

/// Whether `path` is `prefix` or below it, segment-wise: `/app` covers `/app`
/// and `/app/x`, not `/apple`; `/static/` covers what starts with it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| prefix.ends_with('/') || rest.starts_with('/'))
}

/// A problem with one variable. Never quotes a secret value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// The variable to fix, e.g. `corp_id` or `hq_corp_id`.
    pub variable: String,
    /// The authenticator concerned, for per-authenticator variables.
    pub authenticator: Option<String>,
    pub problem: String,
}

/// The front's own global variables (Spin variables), beside the settings
/// shared by every authenticator ([`Scope::Global`]).
const FRONT_VARIABLES: [&str; 13] = [
    "authenticators",
    "admin_token",
    "protected_paths",
    "identity_headers",
    "session_refresh_seconds",
    "session_max_seconds",
    "public_paths",
    "allow_preflight",
    "rate_limit_per_client",
    "rate_limit_per_authenticator",
    "client_address_header",
    "login_panel_script",
    "login_panel_script_integrity",
];
/// The front's own per-authenticator variables: the name on the login
/// page, what an in-client login asks WeCom for first, and WeCom's
/// callbacks (the app's Token and EncodingAESKey, what a leaver's binding
/// becomes).
const DISPLAY_NAME: &str = "display_name";
const IN_CLIENT_SCOPE: &str = "in_client_scope";
const CALLBACK_TOKEN: &str = "callback_token";
const CALLBACK_AES_KEY: &str = "callback_aes_key";
const LEAVER_ACTION: &str = "leaver_action";
const FRONT_AUTHENTICATOR_VARIABLES: [&str; 5] = [
    DISPLAY_NAME,
    IN_CLIENT_SCOPE,
    CALLBACK_TOKEN,
    CALLBACK_AES_KEY,
    LEAVER_ACTION,
];

/// Every global variable the front reads: its own, then the settings shared
/// by every authenticator. `spin.toml` must declare each
/// (`host-test/tests/spin_world.rs` checks it against this list).
pub fn global_variables() -> Vec<String> {
    let shared = Field::SETTINGS
        .into_iter()
        .filter(|f| f.scope() == Scope::Global)
        .map(Field::variable);
    FRONT_VARIABLES
        .map(str::to_owned)
        .into_iter()
        .chain(shared)
        .collect()
}

/// Every per-authenticator variable (`<name>_<variable>`, else the plain
/// `<variable>`): the settings of [`Scope::Authenticator`], in the one
/// list's order, then the front's own ([`FRONT_AUTHENTICATOR_VARIABLES`]).
pub fn authenticator_variables() -> Vec<String> {
    Field::SETTINGS
        .into_iter()
        .filter(|f| f.scope() == Scope::Authenticator)
        .map(Field::variable)
        .chain(FRONT_AUTHENTICATOR_VARIABLES.map(str::to_owned))
        .collect()
}

/// The front's own settings of one authenticator.
struct FrontOwn {
    display_name: Option<String>,
    in_client_scope: InClientScope,
    callback: Option<CallbackKeys>,
    leaver_action: LeaverAction,
}

/// Reads the front's own variables of authenticator `name` (one of `count`);
/// each problem names the variable to fix.
fn front_own<'a>(reader: &mut Reader<'a>, own: &mut String, name: &str, count: usize) -> FrontOwn {
    // The variable's name is spelled out only for a problem.
    let at = |key: &str, found| variable(name, count, key, found).0;
    let (value, found) = source(reader, own, name, DISPLAY_NAME);
    let display_name = value.and_then(|v| {
        check_display_name(v)
            .map_err(|why| reader.problem(&at(DISPLAY_NAME, found), Some(name), why))
            .ok()
    });
    let (value, found) = source(reader, own, name, IN_CLIENT_SCOPE);
    let in_client_scope = value.map_or(InClientScope::Base, |v| {
        InClientScope::parse(v).unwrap_or_else(|| {
            reader.problem(
                &at(IN_CLIENT_SCOPE, found),
                Some(name),
                "must be snsapi_base (silent for members already bound) or snsapi_privateinfo (the member's consent at every login)",
            );
            InClientScope::Base
        })
    });
    let (token, token_found) = source(reader, own, name, CALLBACK_TOKEN);
    let (aes_key, aes_key_found) = source(reader, own, name, CALLBACK_AES_KEY);
    let callback = match (token, aes_key) {
        (None, None) => None,
        (Some(token), Some(aes_key)) => CallbackKeys::new(token, aes_key)
            .map_err(|(field, why)| {
                let found = if field == CALLBACK_TOKEN {
                    token_found
                } else {
                    aes_key_found
                };
                reader.problem(&at(field, found), Some(name), why);
            })
            .ok(),
        (Some(_), None) => {
            reader.problem(
                &at(CALLBACK_AES_KEY, aes_key_found),
                Some(name),
                "must be set with callback_token (the app's EncodingAESKey)",
            );
            None
        }
        (None, Some(_)) => {
            reader.problem(
                &at(CALLBACK_TOKEN, token_found),
                Some(name),
                "must be set with callback_aes_key (the app's Token)",
            );
            None
        }
    };
    let (value, found) = source(reader, own, name, LEAVER_ACTION);
    let leaver_action = value.map_or(LeaverAction::default(), |v| {
        LeaverAction::parse(v).unwrap_or_else(|| {
            reader.problem(
                &at(LEAVER_ACTION, found),
                Some(name),
                "must be unbind (the binding goes), disable (the user is disabled) or keep (the binding stays); sessions end either way",
            );
            LeaverAction::default()
        })
    });
    FrontOwn {
        display_name,
        in_client_scope,
        callback,
        leaver_action,
    }
}

/// Renew a session in use once it is an hour old...
pub const DEFAULT_SESSION_REFRESH: u32 = 3600;
/// ...but never past a week after the login.
pub const DEFAULT_SESSION_MAX: u32 = 7 * 24 * 3600;

struct Reader<'a> {
    map: &'a ConfigMap,
    problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.map
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, variable: &str, authenticator: Option<&str>, problem: impl Into<String>) {
        let problem = ConfigProblem {
            variable: variable.to_owned(),
            authenticator: authenticator.map(str::to_owned),
            problem: problem.into(),
        };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }
}

/// Where one authenticator's field was read from: `<name>_<field>`, the
/// plain `<field>`, or neither. The variable's name is spelled out only when
/// a problem is reported ([`variable`]): parsing runs on every request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Own,
    Plain,
    Unset,
}

/// The value of `key` for the authenticator `name`, and where it came from.
/// `own` is scratch space for the `<name>_<key>` spelling.
fn source<'a>(
    reader: &Reader<'a>,
    own: &mut String,
    name: &str,
    key: &str,
) -> (Option<&'a str>, Origin) {
    own.clear();
    own.push_str(name);
    own.push('_');
    own.push_str(key);
    if let Some(value) = reader.get(own) {
        return (Some(value), Origin::Own);
    }
    match reader.get(key) {
        Some(value) => (Some(value), Origin::Plain),
        None => (None, Origin::Unset),
    }
}

/// The variable to name for field `key` of the authenticator `name` (one of
/// `count`), and for an unset one what to say instead of "is empty".
fn variable(name: &str, count: usize, key: &str, origin: Origin) -> (String, Option<String>) {
    let own = format!("{name}_{key}");
    match origin {
        Origin::Own => (own, None),
        Origin::Plain => (key.to_owned(), None),
        Origin::Unset => {
            // With one authenticator the plain variable is the one to set.
            let (variable, other) = if count == 1 {
                (key.to_owned(), own)
            } else {
                (own, key.to_owned())
            };
            (variable, Some(format!("is not set (nor is {other})")))
        }
    }
}

/// Reads and checks the configuration. Every problem found is returned.
pub fn parse_config(map: &ConfigMap) -> Result<FrontConfig, Vec<ConfigProblem>> {
    let mut reader = Reader {
        map,
        problems: Vec::new(),
    };
    let names = authenticator_names(&mut reader);
    let route_prefix = reader.get("route_prefix").map(str::to_owned);
    let admin_token = admin_token(&mut reader);
    let protected_paths = protected_paths(&mut reader);
    let identity_headers = identity_headers(&mut reader);
    let renewal = renewal(&mut reader);
    let public_paths = public_paths(&mut reader);
    let allow_preflight = reader
        .get("allow_preflight")
        .map(settings::parse_bool)
        .transpose()
        .unwrap_or_else(|why| {
            reader.problem("allow_preflight", None, why);
            None
        })
        .unwrap_or(false);
    let rate_limits = rate_limits(&mut reader);
    let login_panel_script = login_panel_script(&mut reader);

    let mut all = Vec::with_capacity(names.len());
    // Per authenticator: where each of the settings came from.
    let mut sources: Vec<[Origin; Field::SETTINGS.len()]> = Vec::with_capacity(names.len());
    let (mut own, mut key) = (String::new(), String::new());
    let mut front = Vec::with_capacity(names.len());
    for name in &names {
        let mut s = Settings {
            name: name.clone(),
            ..Settings::default()
        };
        let mut origins = [Origin::Unset; Field::SETTINGS.len()];
        for (field, origin) in Field::SETTINGS.into_iter().zip(&mut origins) {
            key.clear();
            field.push_variable(&mut key);
            let (value, found, who) = match field.scope() {
                Scope::Authenticator => {
                    let (value, found) = source(&reader, &mut own, name, &key);
                    (value, found, Some(name.as_str()))
                }
                Scope::Global => (reader.get(&key), Origin::Plain, None),
                Scope::None => continue,
            };
            *origin = found;
            if let Some(value) = value
                && let Err(why) = s.set(field, value)
            {
                let (variable, _) = variable(name, names.len(), &key, found);
                reader.problem(&variable, who, why);
            }
        }
        front.push(front_own(&mut reader, &mut own, name, names.len()));
        all.push(s);
        sources.push(origins);
    }
    let checked = match settings::check_all(&all) {
        Ok(checked) => Some(checked),
        Err(errors) => {
            for error in errors {
                report(&mut reader, &names, &sources, error);
            }
            None
        }
    };
    match checked {
        Some(checked) if reader.problems.is_empty() => Ok(FrontConfig {
            entries: checked
                .into_iter()
                .zip(front)
                .map(|(authenticator, own)| Entry {
                    authenticator,
                    display_name: own.display_name,
                    in_client_scope: own.in_client_scope,
                    callback: own.callback,
                    leaver_action: own.leaver_action,
                })
                .collect(),
            admin_token,
            protected_paths,
            identity_headers,
            renewal,
            public_paths,
            allow_preflight,
            rate_limits,
            login_panel_script,
            route_prefix: route_prefix.unwrap_or_else(|| settings::DEFAULT_ROUTE_PREFIX.into()),
        }),
        _ => Err(reader.problems),
    }
}

/// Maps a settings error to the variable it came from.
fn report(
    reader: &mut Reader<'_>,
    names: &[String],
    sources: &[[Origin; Field::SETTINGS.len()]],
    error: SettingsError,
) {
    let index = names.iter().position(|n| *n == error.authenticator);
    let who = index.map(|i| names[i].as_str());
    // `signing-keys[1].secret` → `signing_keys`, "key 2 (secret): ..."
    let detail = error
        .field
        .signing_key()
        .map(|(index, part)| format!("key {} ({part})", index + 1));
    let key = error.field.variable();
    match error.field.scope() {
        Scope::None => reader.problem(
            "authenticators",
            None,
            format!(
                "{}: {}",
                quoted_or_empty(&error.authenticator),
                error.message
            ),
        ),
        Scope::Global => reader.problem(&key, None, error.message),
        _ => {
            let setting = Field::SETTINGS
                .iter()
                .position(|f| f.name() == error.field.name());
            let (variable, unset) = match (index, setting) {
                (Some(i), Some(f)) => variable(&names[i], names.len(), &key, sources[i][f]),
                _ => (key.clone(), None),
            };
            let message = match (unset, detail) {
                (Some(unset), _) => match error.message.strip_prefix("is empty") {
                    Some(rest) => format!("{unset}{rest}"),
                    None => format!("{unset}: {}", error.message),
                },
                (None, Some(detail)) => format!("{detail}: {}", error.message),
                (None, None) => error.message,
            };
            reader.problem(&variable, who, message)
        }
    }
}

fn quoted_or_empty(name: &str) -> String {
    if name.is_empty() {
        "an empty name".into()
    } else {
        format!("{name:?}")
    }
}

/// Names must be usable in Spin variable names: `NAME_corp_id`.
fn authenticator_names(reader: &mut Reader<'_>) -> Vec<String> {
    let raw = reader
        .get("authenticators")
        .unwrap_or(DEFAULT_AUTHENTICATORS);
    let mut names: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !is_variable_word(name) || name.len() > MAX_NAME {
            reader.problem(
                "authenticators",
                None,
                format!(
                    "{:?} is not a valid authenticator name: use 1 to {MAX_NAME} lowercase letters, \
                     digits and single underscores, starting with a letter (Spin variable names \
                     are built from it, e.g. NAME_corp_id)",
                    truncated(name, 40)
                ),
            );
        } else if names.iter().any(|n| n == name) {
            reader.problem("authenticators", None, format!("{name:?} is listed twice"));
        } else {
            names.push(name.to_owned());
        }
    }
    if names.len() > MAX_AUTHENTICATORS {
        reader.problem(
            "authenticators",
            None,
            format!("lists more than {MAX_AUTHENTICATORS} authenticators"),
        );
        names.truncate(MAX_AUTHENTICATORS);
    }
    if names.is_empty() && reader.problems.is_empty() {
        reader.problem("authenticators", None, "names no authenticator");
    }
    names
}

/// `[a-z][a-z0-9]*(_[a-z0-9]+)*`: what Spin accepts inside a variable name.
fn is_variable_word(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && !name.ends_with('_')
        && !name.contains("__")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn admin_token(reader: &mut Reader<'_>) -> Option<Secret> {
    let token = reader.get("admin_token")?;
    if token.len() < MIN_ADMIN_TOKEN || token.len() > MAX_ADMIN_TOKEN {
        reader.problem(
            "admin_token",
            None,
            format!(
                "must be {MIN_ADMIN_TOKEN} to {MAX_ADMIN_TOKEN} characters (e.g. openssl rand -hex 32), \
                 or empty to turn the admin API off"
            ),
        );
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        reader.problem(
            "admin_token",
            None,
            "must be visible ASCII only (no blanks), e.g. openssl rand -hex 32",
        );
        return None;
    }
    Some(Secret::new(token))
}

/// `session_refresh_seconds` (0: never renew) and `session_max_seconds`.
fn renewal(reader: &mut Reader<'_>) -> Renewal {
    let mut read = |name: &str, default: u32, range: std::ops::RangeInclusive<u32>| {
        let value = reader.get(name).map(str::trim).filter(|v| !v.is_empty());
        match value.map(str::parse::<u32>) {
            None => default,
            Some(Ok(n)) if range.contains(&n) => n,
            Some(_) => {
                let (min, max) = (range.start(), range.end());
                reader.problem(
                    name,
                    None,
                    format!("must be a number of seconds from {min} to {max}"),
                );
                default
            }
        }
    };
    let after_seconds = read(
        "session_refresh_seconds",
        DEFAULT_SESSION_REFRESH,
        0..=30 * 24 * 3600,
    );
    let max_seconds = read(
        "session_max_seconds",
        DEFAULT_SESSION_MAX,
        60..=365 * 24 * 3600,
    );
    Renewal {
        after_seconds,
        max_seconds,
    }
}

/// `rate_limit_per_client`, `rate_limit_per_authenticator` (requests a
/// minute, 0: none) and `client_address_header` (a header name).
fn login_panel_script(reader: &mut Reader<'_>) -> Option<LoginPanelScript> {
    let url = reader
        .get("login_panel_script")
        .unwrap_or(DEFAULT_LOGIN_PANEL_SCRIPT);
    let url = LoginPanelScript::parse_url(url).unwrap_or_else(|why| {
        reader.problem("login_panel_script", None, why);
        None
    });
    let integrity = reader.get("login_panel_script_integrity").and_then(|text| {
        LoginPanelScript::parse_integrity(text)
            .map_err(|why| reader.problem("login_panel_script_integrity", None, why))
            .ok()
    });
    url.map(|url| LoginPanelScript { url, integrity })
}

fn rate_limits(reader: &mut Reader<'_>) -> RateLimits {
    let mut read = |name: &str, default: u32| {
        let value = reader.get(name).map(str::trim).filter(|v| !v.is_empty());
        match value.map(str::parse::<u32>) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                reader.problem(
                    name,
                    None,
                    "must be a whole number of requests a minute (0: no limit)",
                );
                default
            }
        }
    };
    let per_client = read("rate_limit_per_client", DEFAULT_RATE_PER_CLIENT);
    let per_authenticator = read(
        "rate_limit_per_authenticator",
        DEFAULT_RATE_PER_AUTHENTICATOR,
    );
    let header = reader
        .get("client_address_header")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(DEFAULT_CLIENT_ADDRESS_HEADER)
        .to_ascii_lowercase();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.len() > 64 || !header.bytes().all(token) {
        reader.problem(
            "client_address_header",
            None,
            "must be one header name, e.g. spin-client-addr or x-real-ip",
        );
    }
    RateLimits {
        per_client,
        per_authenticator,
        client_address_header: header,
    }
}

/// `public_paths`: comma-separated `[METHOD ]/prefix` entries.
fn public_paths(reader: &mut Reader<'_>) -> Vec<PublicPath> {
    let Some(raw) = reader.get("public_paths") else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for (index, item) in raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (method, prefix) = match item.split_once(char::is_whitespace) {
            Some((method, prefix)) => (Some(method.to_ascii_uppercase()), prefix.trim()),
            None => (None, item),
        };
        let method_ok = method.as_deref().is_none_or(|m| {
            !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_alphabetic())
        });
        let prefix_ok = prefix.starts_with('/')
            && !prefix.starts_with("//")
            && prefix.len() <= 256
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"?#\\%".contains(&b))
            && !prefix
                .split('/')
                .any(|segment| segment == "." || segment == "..");
        if method_ok && prefix_ok {
            paths.push(PublicPath {
                method,
                prefix: prefix.to_owned(),
            });
        } else {
            reader.problem(
                "public_paths",
                None,
                format!(
                    "entry {} is not [METHOD ]/prefix, like /health or GET /static/ (no query, %, dot segments or backslash)",
                    index + 1
                ),
            );
        }
    }
    if paths.len() > MAX_PROTECTED_PATHS {
        reader.problem(
            "public_paths",
            None,
            format!("lists more than {MAX_PROTECTED_PATHS} entries"),
        );
    }
    paths
}

/// `identity_headers`: comma-separated conventions, default `wecom`.
fn identity_headers(reader: &mut Reader<'_>) -> Vec<HeaderConvention> {
    let Some(raw) = reader.get("identity_headers") else {
        return vec![HeaderConvention::Wecom];
    };
    let mut conventions = Vec::new();
    for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match HeaderConvention::parse(&word.to_ascii_lowercase()) {
            Some(c) if !conventions.contains(&c) => conventions.push(c),
            Some(_) => {}
            None => reader.problem(
                "identity_headers",
                None,
                format!(
                    "{:?} is not a header convention: use wecom, oauth2-proxy or remote (comma-separated)",
                    truncated(word, 32)
                ),
            ),
        }
    }
    if conventions.is_empty() {
        conventions.push(HeaderConvention::Wecom);
    }
    conventions
}

fn protected_paths(reader: &mut Reader<'_>) -> Vec<String> {
    let Some(raw) = reader.get("protected_paths") else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for (index, path) in raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let well_formed = path.starts_with('/')
            && !path.starts_with("//")
            && path.len() <= 256
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"?#\\%".contains(&b));
        if well_formed {
            paths.push(path.to_owned());
        } else {
            reader.problem(
                "protected_paths",
                None,
                format!(
                    "entry {} is not a path prefix like /app: start with a single /, no query, \
                     blanks, % or backslash",
                    index + 1
                ),
            );
        }
    }
    if paths.len() > MAX_PROTECTED_PATHS {
        reader.problem(
            "protected_paths",
            None,
            format!("lists more than {MAX_PROTECTED_PATHS} paths"),
        );
    }
    paths
}

fn check_display_name(value: &str) -> Result<String, String> {
    if value.chars().count() > MAX_DISPLAY_NAME || value.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {MAX_DISPLAY_NAME} characters without control characters"
        ));
    }
    Ok(value.to_owned())
}

fn truncated(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ConfigMap {
        crate::example::variables()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    fn with(mut map: ConfigMap, pairs: &[(&str, &str)]) -> ConfigMap {
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        map
    }

    fn variables(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.variable.as_str()).collect()
    }

    #[test]
    fn the_plain_variables_make_one_authenticator_named_wecom() {
        let config = parse_config(&base()).unwrap();
        assert_eq!(config.entries.len(), 1);
        let a = &config.entries[0].authenticator;
        assert_eq!(a.name, "wecom");
        assert_eq!(a.route_prefix, "/auth/wecom");
        assert!(!a.auto_login);
        assert!(config.admin_token.is_none());
        assert_eq!(config.route_prefix, "/auth/wecom");
    }

    #[test]
    fn empty_values_are_unset_and_defaults_apply() {
        let map = with(
            base(),
            &[
                ("authenticators", ""),
                ("route_prefix", " "),
                ("admin_token", ""),
                ("protected_paths", ""),
                ("session_cookie_domain", ""),
                ("redirect_path", ""),
                ("auto_login", ""),
                ("session_lifetime_seconds", ""),
                ("display_name", ""),
            ],
        );
        let config = parse_config(&map).unwrap();
        assert_eq!(config.entries[0].authenticator.redirect_path, "/");
        assert_eq!(config.entries[0].authenticator.session_lifetime, 8 * 3600);
        assert_eq!(config.entries[0].display_name, None);
    }

    #[test]
    fn per_authenticator_variables_fall_back_to_the_plain_ones() {
        let map = with(
            base(),
            &[
                ("authenticators", "hq, branch"),
                ("branch_corp_id", "wwbranch0000000001"),
                ("branch_agent_id", "1000009"),
                ("hq_auto_login", "YES"),
                ("branch_display_name", "分公司"),
                ("protected_paths", "/app, /docs/"),
                ("admin_token", "0123456789abcdef0123"),
            ],
        );
        let config = parse_config(&map).unwrap();
        let hq = &config.find("hq").unwrap().authenticator;
        let branch = config.find("branch").unwrap();
        assert_eq!(hq.corp_id, "ww0123456789abcdef");
        assert!(hq.auto_login);
        assert_eq!(branch.authenticator.corp_id, "wwbranch0000000001");
        assert_eq!(branch.authenticator.agent_id, "1000009");
        assert!(!branch.authenticator.auto_login);
        assert_eq!(branch.display_name.as_deref(), Some("分公司"));
        assert_eq!(config.auto_login().unwrap().authenticator.name, "hq");
        assert!(config.is_protected("/app"));
        assert!(config.is_protected("/app/x"));
        assert!(!config.is_protected("/apple"));
        assert!(config.is_protected("/docs/a"));
        assert!(!config.is_protected("/docs"));
        assert!(config.admin_token.is_some());
    }

    #[test]
    fn problems_name_the_variable_to_fix_and_never_a_secret() {
        let map = with(
            base(),
            &[
                ("authenticators", "hq,branch"),
                ("hq_origin", "https://apps.example.com/"),
                ("auto_login", "maybe"),
                ("branch_signing_keys", "k1:short,nocolon"),
                ("session_lifetime_seconds", "8h"),
                ("route_prefix", "auth"),
                ("admin_token", "short"),
                ("protected_paths", "/ok,relative"),
            ],
        );
        let problems = parse_config(&map).unwrap_err();
        let vars = variables(&problems);
        for expected in [
            "hq_origin",
            "auto_login",
            "branch_signing_keys",
            "session_lifetime_seconds",
            "route_prefix",
            "admin_token",
            "protected_paths",
        ] {
            assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
        }
        // The route prefix is one global problem, not one per authenticator.
        assert_eq!(vars.iter().filter(|v| **v == "route_prefix").count(), 1);
        let shown = format!("{problems:?}");
        assert!(
            !shown.contains("DO-NOT-LEAK") && !shown.contains("short,"),
            "{shown}"
        );
        let key = problems
            .iter()
            .find(|p| p.variable == "branch_signing_keys" && p.problem.contains("key 1"))
            .unwrap();
        assert!(key.problem.contains("32"), "{key:?}");
    }

    #[test]
    fn every_malformed_signing_key_is_named_and_blank_return_hosts_are_none() {
        let map = with(
            base(),
            &[
                (
                    "signing_keys",
                    "nocolon,k1:signing-key-DO-NOT-LEAK-0123456789abcdef,:x",
                ),
                ("return_hosts", " , "),
            ],
        );
        let problems = parse_config(&map).unwrap_err();
        assert_eq!(variables(&problems), ["signing_keys"]);
        assert!(
            problems[0]
                .problem
                .starts_with("keys 1 and 3 are not written id:secret"),
            "{problems:?}"
        );
        assert!(!format!("{problems:?}").contains("DO-NOT-LEAK"));
        let config = parse_config(&with(base(), &[("return_hosts", " , ")])).unwrap();
        assert!(config.entries[0].authenticator.return_hosts.is_empty());
    }

    #[test]
    fn unset_required_variables_name_both_spellings() {
        let mut map = base();
        map.remove("corp_id");
        let problems = parse_config(&map).unwrap_err();
        assert_eq!(variables(&problems), ["corp_id"]);
        assert!(
            problems[0].problem.contains("wecom_corp_id"),
            "{problems:?}"
        );

        let map = with(base(), &[("authenticators", "hq,branch"), ("corp_id", "")]);
        let problems = parse_config(&map).unwrap_err();
        assert_eq!(variables(&problems), ["hq_corp_id", "branch_corp_id"]);
        assert!(problems[0].problem.contains("(nor is corp_id)"));
    }

    #[test]
    fn authenticator_names_follow_the_spin_variable_rule() {
        for bad in ["Main", "a-b", "1st", "a__b", "a_", "名字", "a b"] {
            let map = with(base(), &[("authenticators", bad)]);
            let problems = parse_config(&map).unwrap_err();
            assert_eq!(variables(&problems)[0], "authenticators", "{bad}");
            assert!(problems[0].problem.contains("lowercase"), "{bad}");
        }
        let map = with(base(), &[("authenticators", "a,a")]);
        assert!(parse_config(&map).unwrap_err()[0].problem.contains("twice"));
        let map = with(base(), &[("authenticators", "corp_2,x9")]);
        assert_eq!(parse_config(&map).unwrap().entries.len(), 2);
    }

    #[test]
    fn two_auto_login_authenticators_are_refused() {
        let map = with(base(), &[("authenticators", "a,b"), ("auto_login", "on")]);
        let problems = parse_config(&map).unwrap_err();
        assert_eq!(variables(&problems), ["auto_login"]);
        assert_eq!(problems[0].authenticator.as_deref(), Some("b"));
    }

    #[test]
    fn booleans_and_numbers_parse_every_usual_spelling() {
        for (value, expected) in [("1", true), ("On", true), ("no", false), ("FALSE", false)] {
            let map = with(base(), &[("auto_signup", value)]);
            assert_eq!(
                parse_config(&map).unwrap().entries[0]
                    .authenticator
                    .auto_signup,
                expected
            );
        }
        let map = with(base(), &[("state_lifetime_seconds", "-5")]);
        assert_eq!(
            variables(&parse_config(&map).unwrap_err()),
            ["state_lifetime_seconds"]
        );
    }

    #[test]
    fn signing_keys_rotate_and_trim() {
        let map = with(
            base(),
            &[(
                "signing_keys",
                " k2:the-new-key-the-new-key-the-new-key! , k1:signing-key-DO-NOT-LEAK-0123456789abcdef ",
            )],
        );
        let keys = &parse_config(&map).unwrap().entries[0]
            .authenticator
            .signing_keys;
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].id, "k2");
        assert_eq!(
            keys[1].secret.expose(),
            "signing-key-DO-NOT-LEAK-0123456789abcdef"
        );
    }
}
