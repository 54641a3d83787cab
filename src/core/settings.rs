//! Authenticator settings: what the caller passes, checked into what the rest of
//! the core uses. Every error names the authenticator and the field.

use std::fmt;

use url::Url;

use super::access::{self, Access, GroupKinds, RuleSet, Rules};
use super::return_path;

pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";
pub const DEFAULT_OAUTH_BASE: &str = "https://open.weixin.qq.com";
pub const DEFAULT_SSO_BASE: &str = "https://login.work.weixin.qq.com";
pub const DEFAULT_ROUTE_PREFIX: &str = "/auth/wecom";
pub const DEFAULT_REDIRECT_PATH: &str = "/";
pub const DEFAULT_SESSION_LIFETIME: u32 = 8 * 3600;
pub const DEFAULT_STATE_LIFETIME: u32 = 10 * 60;
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
pub const MAX_SIGNING_KEYS: usize = 8;
pub const DEFAULT_API_TIMEOUT_MS: u32 = 10_000;
pub const DEFAULT_SESSION_COOKIE: &str = "wecom_auth_session";
const API_TIMEOUT_RANGE: (u32, u32) = (100, 60_000);
const SESSION_LIFETIME_RANGE: (u32, u32) = (60, 30 * 24 * 3600);
const STATE_LIFETIME_RANGE: (u32, u32) = (60, 3600);

/// A secret string: usable, never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: String,
    pub secret: Secret,
}

/// The settings as the caller gives them: the WIT `settings` record, or the
/// front's variables read with [`Settings::set`]. Each field is one
/// [`Field`], the one list of settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub corp_id: String,
    pub agent_id: String,
    pub secret: Secret,
    pub origin: String,
    pub redirect_path: Option<String>,
    pub auto_login: bool,
    pub auto_signup: bool,
    pub api_base: Option<String>,
    pub oauth_base: Option<String>,
    pub sso_base: Option<String>,
    pub signing_keys: Vec<SigningKey>,
    pub session_lifetime_seconds: Option<u32>,
    pub state_lifetime_seconds: Option<u32>,
    pub route_prefix: Option<String>,
    pub api_timeout_ms: Option<u32>,
    pub session_cookie_name: Option<String>,
    pub session_cookie_domain: Option<String>,
    /// Sibling hosts a login may return to (`crm.example.com`,
    /// `*.example.com`), all under `session_cookie_domain`. The typed API
    /// leaves it empty: its callers return to relative paths.
    pub return_hosts: Vec<String>,
    /// Who may enter: userids, department ids (`=12` for 12 alone, else its
    /// subtree) and tag ids ([`access::Rules`]), one entry each.
    pub allowed_users: Vec<String>,
    pub allowed_departments: Vec<String>,
    pub allowed_tags: Vec<u32>,
    pub denied_users: Vec<String>,
    pub denied_departments: Vec<String>,
    pub denied_tags: Vec<u32>,
    /// Seconds, 30 to 86 400; default 300.
    pub access_facts_max_age_seconds: Option<u32>,
    /// The groups the identity carries.
    pub groups: GroupKinds,
}

impl Settings {
    /// Sets `field` from its text form, as a variable holds it (Spin
    /// variables, the gateway's config): booleans `true/false/1/0/yes/no/on/off`
    /// (any case), whole numbers, lists comma-separated
    /// ([`access::split_list`]), signing keys `id:secret,id2:secret2`. The
    /// error says what is wrong, never quoting a secret.
    pub fn set(&mut self, field: Field, text: &str) -> Result<(), String> {
        let text = text.trim();
        let number = || {
            text.parse::<u32>()
                .map_err(|_| "must be a whole number".to_owned())
        };
        let tags = || access::parse_tags(&access::split_list(text)).map_err(entry_problem);
        match field {
            Field::Name => self.name = text.to_owned(),
            Field::CorpId => self.corp_id = text.to_owned(),
            Field::AgentId => self.agent_id = text.to_owned(),
            Field::Secret => self.secret = Secret::new(text),
            Field::Origin => self.origin = text.to_owned(),
            Field::RedirectPath => self.redirect_path = Some(text.to_owned()),
            Field::AutoLogin => self.auto_login = parse_bool(text)?,
            Field::AutoSignup => self.auto_signup = parse_bool(text)?,
            Field::ApiBase => self.api_base = Some(text.to_owned()),
            Field::OauthBase => self.oauth_base = Some(text.to_owned()),
            Field::SsoBase => self.sso_base = Some(text.to_owned()),
            Field::SigningKeys => {
                // The well-formed keys are kept, so their own problems (too
                // short) are reported beside the malformed entry.
                let (keys, malformed) = parse_signing_keys(text);
                self.signing_keys = keys;
                if let Some(why) = malformed {
                    return Err(why);
                }
            }
            Field::SessionLifetimeSeconds => self.session_lifetime_seconds = Some(number()?),
            Field::StateLifetimeSeconds => self.state_lifetime_seconds = Some(number()?),
            Field::RoutePrefix => self.route_prefix = Some(text.to_owned()),
            Field::ApiTimeoutMs => self.api_timeout_ms = Some(number()?),
            Field::SessionCookieName => self.session_cookie_name = Some(text.to_owned()),
            Field::SessionCookieDomain => self.session_cookie_domain = Some(text.to_owned()),
            // No host is no host (unlike a rule list, where blanks only
            // would silently let everyone in).
            Field::ReturnHosts => {
                self.return_hosts = access::split_list(text);
                self.return_hosts.retain(|host| !host.is_empty());
            }
            Field::AllowedUsers => self.allowed_users = access::split_list(text),
            Field::AllowedDepartments => self.allowed_departments = access::split_list(text),
            Field::AllowedTags => self.allowed_tags = tags()?,
            Field::DeniedUsers => self.denied_users = access::split_list(text),
            Field::DeniedDepartments => self.denied_departments = access::split_list(text),
            Field::DeniedTags => self.denied_tags = tags()?,
            Field::AccessFactsMaxAgeSeconds => self.access_facts_max_age_seconds = Some(number()?),
            Field::Groups => {
                self.groups = GroupKinds::parse(text)
                    .map_err(|why| format!("{why}: list departments, tags or both"))?
            }
            Field::Authenticators | Field::SigningKeyId(_) | Field::SigningKeySecret(_) => {
                return Err(format!("{field} is not set on its own"));
            }
        }
        Ok(())
    }
}

/// `true/false/1/0/yes/no/on/off`, any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false (also 1/0, yes/no, on/off)".into()),
    }
}

/// `id:secret,id2:secret2`, the first signs: the well-formed keys, and which
/// entries are malformed (by position, never their text).
fn parse_signing_keys(text: &str) -> (Vec<SigningKey>, Option<String>) {
    let mut keys = Vec::new();
    let mut malformed = Vec::new();
    for (index, entry) in text.split(',').map(str::trim).enumerate() {
        match entry.split_once(':') {
            // Duplicate ids: check_all reports them with their position.
            Some((id, secret)) if !id.trim().is_empty() => keys.push(SigningKey {
                id: id.trim().to_owned(),
                secret: Secret::new(secret.trim()),
            }),
            _ => malformed.push((index + 1).to_string()),
        }
    }
    let problem = match malformed.as_slice() {
        [] => None,
        [one] => Some(format!("key {one} is not")),
        [all @ .., last] => Some(format!("keys {} and {last} are not", all.join(", "))),
    };
    let problem = problem.map(|which| {
        format!("{which} written id:secret (e.g. k1:<64 hex digits>); keys are separated by commas")
    });
    (keys, problem)
}

/// A rule list's problem without the list's name, which the field gives:
/// `tags: "x" is not a tag id` → `"x" is not a tag id`.
fn entry_problem(why: String) -> String {
    why.split_once(": ")
        .map_or(why.as_str(), |(_, rest)| rest)
        .to_owned()
}

/// Checked settings with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticator {
    pub name: String,
    pub corp_id: String,
    pub agent_id: String,
    pub secret: Secret,
    /// `scheme://host[:port]`, no trailing slash.
    pub origin: String,
    pub redirect_path: String,
    pub auto_login: bool,
    pub auto_signup: bool,
    /// Bases without a trailing slash.
    pub api_base: String,
    pub oauth_base: String,
    pub sso_base: String,
    /// Never empty; the first one signs.
    pub signing_keys: Vec<SigningKey>,
    pub session_lifetime: u32,
    pub state_lifetime: u32,
    pub route_prefix: String,
    pub api_timeout_ms: u32,
    pub session_cookie_name: String,
    /// Lowercase host name, without a leading dot.
    pub session_cookie_domain: Option<String>,
    /// Lowercase `host` or `*.domain`, each under `session_cookie_domain`.
    pub return_hosts: Vec<String>,
    /// Who may enter, and the groups the identity carries.
    pub access: Access,
}

impl Authenticator {
    /// Where its logins may land.
    pub fn landing(&self) -> return_path::Landing<'_> {
        return_path::Landing {
            route_prefix: &self.route_prefix,
            redirect_path: &self.redirect_path,
            origin: &self.origin,
            return_hosts: &self.return_hosts,
        }
    }

    /// The origin's `host[:port]`, as WeCom's trusted domain holds it.
    pub fn origin_host(&self) -> &str {
        self.origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, host)| host)
    }

    /// Whether cookies get the `Secure` attribute.
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }
}

/// A field of the settings, as the WIT `settings` record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The list of authenticators as a whole (none, or a duplicate name).
    Authenticators,
    Name,
    CorpId,
    AgentId,
    Secret,
    Origin,
    RedirectPath,
    AutoLogin,
    AutoSignup,
    ApiBase,
    OauthBase,
    SsoBase,
    /// The list of signing keys as a whole.
    SigningKeys,
    /// The id of the signing key at this index (from 0).
    SigningKeyId(usize),
    /// The secret of the signing key at this index (from 0).
    SigningKeySecret(usize),
    SessionLifetimeSeconds,
    StateLifetimeSeconds,
    RoutePrefix,
    ApiTimeoutMs,
    SessionCookieName,
    SessionCookieDomain,
    ReturnHosts,
    AllowedUsers,
    AllowedDepartments,
    AllowedTags,
    DeniedUsers,
    DeniedDepartments,
    DeniedTags,
    AccessFactsMaxAgeSeconds,
    Groups,
}

/// Where the HTTP front reads a setting from (Spin variables, the gateway's
/// config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `<authenticator>_<variable>`, else the plain `<variable>`.
    Authenticator,
    /// The plain `<variable>` only: shared by every authenticator.
    Global,
    /// Not a variable (the names come from `authenticators`).
    None,
}

impl Field {
    /// Every setting, in the WIT record's order: the one list that the
    /// front's variables, `spin.toml` (checked by a test) and the typed API
    /// follow.
    pub const SETTINGS: [Field; 27] = [
        Field::Name,
        Field::CorpId,
        Field::AgentId,
        Field::Secret,
        Field::Origin,
        Field::RedirectPath,
        Field::AutoLogin,
        Field::AutoSignup,
        Field::ApiBase,
        Field::OauthBase,
        Field::SsoBase,
        Field::SigningKeys,
        Field::SessionLifetimeSeconds,
        Field::StateLifetimeSeconds,
        Field::RoutePrefix,
        Field::ApiTimeoutMs,
        Field::SessionCookieName,
        Field::SessionCookieDomain,
        Field::ReturnHosts,
        Field::AllowedUsers,
        Field::AllowedDepartments,
        Field::AllowedTags,
        Field::DeniedUsers,
        Field::DeniedDepartments,
        Field::DeniedTags,
        Field::AccessFactsMaxAgeSeconds,
        Field::Groups,
    ];

    /// The access rule lists, allow (users, departments, tags), then deny:
    /// a proxy's `/verify` rules take their variables' names.
    pub const RULE_LISTS: [Field; 6] = [
        Field::AllowedUsers,
        Field::AllowedDepartments,
        Field::AllowedTags,
        Field::DeniedUsers,
        Field::DeniedDepartments,
        Field::DeniedTags,
    ];

    /// Whether `variable` is this setting's variable ([`Field::variable`]),
    /// compared without building it.
    pub fn is_variable(self, variable: &str) -> bool {
        let own = self
            .name()
            .bytes()
            .map(|b| if b == b'-' { b'_' } else { b });
        own.eq(variable.bytes())
    }

    /// Where the front reads it from.
    pub fn scope(self) -> Scope {
        match self {
            Field::RoutePrefix
            | Field::SessionCookieName
            | Field::SessionCookieDomain
            | Field::ReturnHosts => Scope::Global,
            Field::Name | Field::Authenticators => Scope::None,
            // The parts of a key are read with `signing-keys`.
            _ => Scope::Authenticator,
        }
    }

    /// The variable's name, the record field's with `_` for `-`
    /// (`corp-id` → `corp_id`), appended to `out` (the front builds
    /// `<authenticator>_<variable>` on every request without allocating).
    pub fn push_variable(self, out: &mut String) {
        out.extend(self.name().chars().map(|c| if c == '-' { '_' } else { c }));
    }

    /// [`Field::push_variable`] as a new string.
    pub fn variable(self) -> String {
        let mut out = String::new();
        self.push_variable(&mut out);
        out
    }

    /// The record field's name: `corp-id`; a key's parts are `signing-keys`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Authenticators => "authenticators",
            Field::Name => "name",
            Field::CorpId => "corp-id",
            Field::AgentId => "agent-id",
            Field::Secret => "secret",
            Field::Origin => "origin",
            Field::RedirectPath => "redirect-path",
            Field::AutoLogin => "auto-login",
            Field::AutoSignup => "auto-signup",
            Field::ApiBase => "api-base",
            Field::OauthBase => "oauth-base",
            Field::SsoBase => "sso-base",
            Field::SigningKeys | Field::SigningKeyId(_) | Field::SigningKeySecret(_) => {
                "signing-keys"
            }
            Field::SessionLifetimeSeconds => "session-lifetime-seconds",
            Field::StateLifetimeSeconds => "state-lifetime-seconds",
            Field::RoutePrefix => "route-prefix",
            Field::ApiTimeoutMs => "api-timeout-ms",
            Field::SessionCookieName => "session-cookie-name",
            Field::SessionCookieDomain => "session-cookie-domain",
            Field::ReturnHosts => "return-hosts",
            Field::AllowedUsers => "allowed-users",
            Field::AllowedDepartments => "allowed-departments",
            Field::AllowedTags => "allowed-tags",
            Field::DeniedUsers => "denied-users",
            Field::DeniedDepartments => "denied-departments",
            Field::DeniedTags => "denied-tags",
            Field::AccessFactsMaxAgeSeconds => "access-facts-max-age-seconds",
            Field::Groups => "groups",
        }
    }

    /// The signing key a field belongs to: its index (from 0) and the part.
    pub fn signing_key(self) -> Option<(usize, &'static str)> {
        match self {
            Field::SigningKeyId(index) => Some((index, "id")),
            Field::SigningKeySecret(index) => Some((index, "secret")),
            _ => None,
        }
    }
}

/// `corp-id`; `signing-keys[1].secret` for a part of one key.
impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signing_key() {
            Some((index, part)) => write!(f, "{}[{index}].{part}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// One problem of one authenticator's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The authenticator's name as given (may be empty or invalid).
    pub authenticator: String,
    pub field: Field,
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "authenticator {:?}, field {}: {}",
            self.authenticator, self.field, self.message
        )
    }
}

impl std::error::Error for SettingsError {}

/// Collects the problems of one authenticator.
struct Problems<'a> {
    authenticator: &'a str,
    found: Vec<SettingsError>,
}

impl Problems<'_> {
    fn add(&mut self, field: Field, message: impl Into<String>) {
        self.found.push(SettingsError {
            authenticator: self.authenticator.to_owned(),
            field,
            message: message.into(),
        });
    }
}

impl Settings {
    /// Checks one authenticator; returns every problem found.
    pub fn check(&self) -> Result<Authenticator, Vec<SettingsError>> {
        let mut problems = Problems {
            authenticator: &self.name,
            found: Vec::new(),
        };
        check_identifier(&mut problems, Field::Name, &self.name, 64);
        check_corp_id(&mut problems, &self.corp_id);
        if self.agent_id.is_empty() {
            problems.add(
                Field::AgentId,
                "is empty: copy the AgentId from 应用管理 → your app",
            );
        } else if self.agent_id.len() > 20 || !self.agent_id.bytes().all(|b| b.is_ascii_digit()) {
            problems.add(
                Field::AgentId,
                "must be the app's numeric AgentId, e.g. 1000002",
            );
        }
        if self.secret.expose().is_empty() {
            problems.add(
                Field::Secret,
                "is empty: copy the app's Secret from 应用管理 → your app",
            );
        } else if self.secret.expose().len() > 256
            || self
                .secret
                .expose()
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            problems.add(
                Field::Secret,
                "is not a WeCom app Secret (too long, or holds blanks or controls)",
            );
        }
        let origin = check_origin(&mut problems, &self.origin);
        let redirect_path = match &self.redirect_path {
            None => DEFAULT_REDIRECT_PATH.to_owned(),
            Some(path) => match return_path::sanitize(path) {
                Some(safe) if safe == *path => safe,
                Some(safe) => {
                    problems.add(
                        Field::RedirectPath,
                        format!("write it in its plain form: {safe}"),
                    );
                    safe
                }
                None => {
                    problems.add(
                        Field::RedirectPath,
                        "must be a path on the app's origin starting with a single /, e.g. /workspace",
                    );
                    String::new()
                }
            },
        };
        let api_base = check_base(
            &mut problems,
            Field::ApiBase,
            &self.api_base,
            DEFAULT_API_BASE,
        );
        let oauth_base = check_base(
            &mut problems,
            Field::OauthBase,
            &self.oauth_base,
            DEFAULT_OAUTH_BASE,
        );
        let sso_base = check_base(
            &mut problems,
            Field::SsoBase,
            &self.sso_base,
            DEFAULT_SSO_BASE,
        );
        check_signing_keys(&mut problems, &self.signing_keys);
        let session_lifetime = check_lifetime(
            &mut problems,
            Field::SessionLifetimeSeconds,
            self.session_lifetime_seconds,
            DEFAULT_SESSION_LIFETIME,
            SESSION_LIFETIME_RANGE,
        );
        let state_lifetime = check_lifetime(
            &mut problems,
            Field::StateLifetimeSeconds,
            self.state_lifetime_seconds,
            DEFAULT_STATE_LIFETIME,
            STATE_LIFETIME_RANGE,
        );
        let route_prefix = match &self.route_prefix {
            None => DEFAULT_ROUTE_PREFIX.to_owned(),
            Some(prefix) => {
                let well_formed = prefix.len() > 1
                    && prefix.len() <= 128
                    && prefix.starts_with('/')
                    && !prefix.ends_with('/')
                    && !prefix.contains("//")
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
                if !well_formed {
                    problems.add(
                        Field::RoutePrefix,
                        "must be a path like /auth/wecom: starts with /, no trailing /, only letters, digits, - _ .",
                    );
                }
                prefix.clone()
            }
        };
        let api_timeout_ms = check_lifetime(
            &mut problems,
            Field::ApiTimeoutMs,
            self.api_timeout_ms,
            DEFAULT_API_TIMEOUT_MS,
            API_TIMEOUT_RANGE,
        );
        let session_cookie_name = match &self.session_cookie_name {
            None => DEFAULT_SESSION_COOKIE.to_owned(),
            Some(name) => {
                check_identifier(&mut problems, Field::SessionCookieName, name, 64);
                name.clone()
            }
        };
        let session_cookie_domain = check_cookie_domain(
            &mut problems,
            self.session_cookie_domain.as_deref(),
            &origin,
        );
        let return_hosts = check_return_hosts(
            &mut problems,
            &self.return_hosts,
            session_cookie_domain.as_deref(),
        );
        let access = check_access(&mut problems, self);
        if !problems.found.is_empty() {
            return Err(problems.found);
        }
        Ok(Authenticator {
            name: self.name.clone(),
            corp_id: self.corp_id.clone(),
            agent_id: self.agent_id.clone(),
            secret: self.secret.clone(),
            origin,
            redirect_path,
            auto_login: self.auto_login,
            auto_signup: self.auto_signup,
            api_base,
            oauth_base,
            sso_base,
            signing_keys: self.signing_keys.clone(),
            session_lifetime,
            state_lifetime,
            route_prefix,
            api_timeout_ms,
            session_cookie_name,
            session_cookie_domain,
            return_hosts,
            access,
        })
    }
}

/// A parsed rule list, or the problem (the field names the list).
fn listed<T: Default>(problems: &mut Problems<'_>, field: Field, parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|why| {
        problems.add(field, entry_problem(why));
        T::default()
    })
}

/// The access rules, the bound on the facts' age and the groups.
fn check_access(problems: &mut Problems<'_>, s: &Settings) -> Access {
    let rules = Rules {
        allow: RuleSet {
            users: listed(
                problems,
                Field::AllowedUsers,
                access::parse_users(&s.allowed_users),
            ),
            departments: listed(
                problems,
                Field::AllowedDepartments,
                access::parse_departments(&s.allowed_departments),
            ),
            tags: s.allowed_tags.clone(),
        },
        deny: RuleSet {
            users: listed(
                problems,
                Field::DeniedUsers,
                access::parse_users(&s.denied_users),
            ),
            departments: listed(
                problems,
                Field::DeniedDepartments,
                access::parse_departments(&s.denied_departments),
            ),
            tags: s.denied_tags.clone(),
        },
    };
    let (low, high) = access::FACTS_MAX_AGE_RANGE;
    let facts_max_age = match s.access_facts_max_age_seconds {
        None => access::DEFAULT_FACTS_MAX_AGE,
        Some(seconds) if (low..=high).contains(&seconds) => u64::from(seconds),
        Some(_) => {
            problems.add(
                Field::AccessFactsMaxAgeSeconds,
                format!("must be from {low} to {high} seconds"),
            );
            access::DEFAULT_FACTS_MAX_AGE
        }
    };
    Access {
        rules,
        facts_max_age,
        groups: s.groups,
    }
}

/// Checks several authenticators together: each one, unique names, at most one
/// with auto-login.
pub fn check_all(all: &[Settings]) -> Result<Vec<Authenticator>, Vec<SettingsError>> {
    let mut found = Vec::new();
    let mut checked = Vec::with_capacity(all.len());
    if all.is_empty() {
        found.push(SettingsError {
            authenticator: String::new(),
            field: Field::Authenticators,
            message: "no authenticator is configured".into(),
        });
    }
    for (index, settings) in all.iter().enumerate() {
        let earlier = &all[..index];
        if earlier
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(&settings.name))
        {
            found.push(SettingsError {
                authenticator: settings.name.clone(),
                field: Field::Name,
                message: "is used by another authenticator: names must be unique".into(),
            });
        }
        if settings.auto_login && earlier.iter().any(|e| e.auto_login) {
            let first = earlier
                .iter()
                .find(|e| e.auto_login)
                .map(|e| e.name.as_str());
            found.push(SettingsError {
                authenticator: settings.name.clone(),
                field: Field::AutoLogin,
                message: format!(
                    "is already on for authenticator {:?}: at most one authenticator may log in silently",
                    first.unwrap_or_default()
                ),
            });
        }
        match settings.check() {
            Ok(authenticator) => checked.push(authenticator),
            Err(problems) => found.extend(problems),
        }
    }
    if found.is_empty() {
        Ok(checked)
    } else {
        Err(found)
    }
}

fn check_identifier(problems: &mut Problems<'_>, field: Field, value: &str, max: usize) {
    if value.is_empty() {
        problems.add(field, "is empty");
    } else if value.len() > max
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.add(field, format!("must be 1 to {max} letters, digits, - or _"));
    }
}

fn check_corp_id(problems: &mut Problems<'_>, corp_id: &str) {
    if corp_id.is_empty() {
        problems.add(
            Field::CorpId,
            "is empty: copy the Company ID from 我的企业 → 企业信息",
        );
    } else if corp_id.len() > 64 || !corp_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        problems.add(
            Field::CorpId,
            "must be the Company ID (letters and digits, e.g. ww0123456789abcdef) from 我的企业",
        );
    }
}

/// `scheme://host[:port]` with nothing else; returns it as given.
fn check_origin(problems: &mut Problems<'_>, origin: &str) -> String {
    const EXAMPLE: &str = "e.g. https://apps.example.com or http://127.0.0.1:8080";
    let Ok(url) = Url::parse(origin) else {
        problems.add(
            Field::Origin,
            format!("is not a URL: write scheme://host[:port], {EXAMPLE}"),
        );
        return String::new();
    };
    if !matches!(url.scheme(), "http" | "https") {
        problems.add(Field::Origin, format!("must use http or https, {EXAMPLE}"));
        return String::new();
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != origin {
        problems.add(
            Field::Origin,
            format!(
                "must be scheme://host[:port] and nothing else (no path, trailing slash, user, query, default port or upper case; a non-ASCII host name in punycode); did you mean {serialized}?"
            ),
        );
    }
    serialized
}

/// An http(s) base URL, optionally with a path (egress proxies); no query,
/// fragment or user info. Returned without a trailing slash.
fn check_base(
    problems: &mut Problems<'_>,
    field: Field,
    value: &Option<String>,
    default: &str,
) -> String {
    let Some(value) = value else {
        return default.to_owned();
    };
    let well_formed = Url::parse(value).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
    });
    if !well_formed {
        problems.add(
            field,
            format!("must be an http(s) URL without query or user info, e.g. {default}"),
        );
    }
    value.trim_end_matches('/').to_owned()
}

fn check_signing_keys(problems: &mut Problems<'_>, keys: &[SigningKey]) {
    if keys.is_empty() {
        problems.add(
            Field::SigningKeys,
            format!(
                "is empty: give at least one key of {MIN_SIGNING_KEY_BYTES} or more random bytes"
            ),
        );
    }
    if keys.len() > MAX_SIGNING_KEYS {
        problems.add(
            Field::SigningKeys,
            format!("holds more than {MAX_SIGNING_KEYS} keys"),
        );
    }
    for (index, key) in keys.iter().enumerate() {
        check_identifier(problems, Field::SigningKeyId(index), &key.id, 32);
        if keys[..index].iter().any(|k| k.id == key.id) {
            problems.add(Field::SigningKeyId(index), "is used by another key");
        }
        let length = key.secret.expose().len();
        if length < MIN_SIGNING_KEY_BYTES {
            problems.add(
                Field::SigningKeySecret(index),
                format!("is {length} bytes: use at least {MIN_SIGNING_KEY_BYTES} random bytes"),
            );
        }
    }
}

/// Sibling hosts must share the session cookie (sit under its `Domain`), or
/// a member returned there would not be signed in.
fn check_return_hosts(
    problems: &mut Problems<'_>,
    hosts: &[String],
    cookie_domain: Option<&str>,
) -> Vec<String> {
    let mut checked = Vec::new();
    for host in hosts {
        let host = host.trim().to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let well_formed = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let under_cookie = cookie_domain
            .is_some_and(|domain| name == domain || name.ends_with(&format!(".{domain}")));
        if !well_formed {
            problems.add(
                Field::ReturnHosts,
                format!("{host:?} is not a host name or *.domain"),
            );
        } else if !under_cookie {
            problems.add(
                Field::ReturnHosts,
                format!("{host:?} must be under session-cookie-domain (set it to the shared parent domain)"),
            );
        } else {
            checked.push(host);
        }
    }
    checked
}

/// A cookie `Domain` must be the origin's host or a parent of it, or browsers
/// drop the cookie.
fn check_cookie_domain(
    problems: &mut Problems<'_>,
    domain: Option<&str>,
    origin: &str,
) -> Option<String> {
    let domain = domain?.trim_start_matches('.').to_ascii_lowercase();
    let host = Url::parse(origin)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    let well_formed = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let covers_origin = host == domain || host.ends_with(&format!(".{domain}"));
    if !well_formed || !covers_origin {
        problems.add(
            Field::SessionCookieDomain,
            format!("must be the origin's host or a parent domain of it (origin host: {host})"),
        );
    }
    Some(domain)
}

/// A duration within `(min, max)`, in the unit its field name ends with.
fn check_lifetime(
    problems: &mut Problems<'_>,
    field: Field,
    value: Option<u32>,
    default: u32,
    (min, max): (u32, u32),
) -> u32 {
    let value = value.unwrap_or(default);
    if !(min..=max).contains(&value) {
        let unit = if field == Field::ApiTimeoutMs {
            "milliseconds"
        } else {
            "seconds"
        };
        problems.add(field, format!("must be between {min} and {max} {unit}"));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::example::settings as sample;

    fn fields(errors: &[SettingsError]) -> Vec<String> {
        errors.iter().map(|e| e.field.to_string()).collect()
    }

    #[test]
    fn access_rules_and_groups_are_read_from_text_and_checked_field_by_field() {
        let mut good = sample("a");
        for (field, text) in [
            (Field::AllowedDepartments, "2, =3"),
            (Field::AllowedTags, "7"),
            (Field::DeniedUsers, "LiSi"),
            (Field::Groups, "departments,tags"),
            (Field::AccessFactsMaxAgeSeconds, "60"),
        ] {
            good.set(field, text).unwrap();
        }
        let good = good.check().unwrap();
        assert_eq!(good.access.rules.allow.departments.len(), 2);
        assert_eq!(good.access.rules.allow.tags, [7]);
        assert_eq!(good.access.rules.deny.users, ["lisi"]);
        assert!(good.access.groups.tags && good.access.groups.departments);
        assert_eq!(good.access.facts_max_age, 60);
        assert_eq!(sample("a").check().unwrap().access.facts_max_age, 300);

        // Text that is no tag id or group kind is refused as it is read.
        let mut text = sample("a");
        let why = text.set(Field::DeniedTags, "7,x").unwrap_err();
        assert_eq!(why, "\"x\" is not a tag id");
        let why = text.set(Field::Groups, "roles").unwrap_err();
        assert!(
            why.contains("\"roles\" is not departments or tags"),
            "{why}"
        );

        let bad = Settings {
            allowed_departments: vec!["2".into(), "finance".into()],
            allowed_users: vec!["a b".into()],
            access_facts_max_age_seconds: Some(5),
            ..sample("a")
        }
        .check()
        .unwrap_err();
        assert_eq!(
            fields(&bad),
            [
                "allowed-users",
                "allowed-departments",
                "access-facts-max-age-seconds"
            ]
        );
        assert!(bad[1].message.contains("\"finance\""), "{}", bad[1].message);
    }

    #[test]
    fn a_list_entry_is_one_entry_and_only_text_is_split_at_commas() {
        // Given as a list (the typed API), `alice,bob` is one entry: not a
        // userid, so refused, never two members let in.
        let listed = Settings {
            allowed_users: vec!["alice,bob".into()],
            ..sample("a")
        };
        let errors = listed.check().unwrap_err();
        assert_eq!(fields(&errors), ["allowed-users"]);
        assert!(
            errors[0].message.contains("\"alice,bob\""),
            "{}",
            errors[0].message
        );
        // A blank entry is refused by name, never read as "no rule".
        let blank = Settings {
            denied_departments: vec![" ".into()],
            ..sample("a")
        };
        assert_eq!(fields(&blank.check().unwrap_err()), ["denied-departments"]);
        // Read from a variable's text, the commas separate entries.
        let mut text = sample("a");
        text.set(Field::AllowedUsers, "alice, bob").unwrap();
        let checked = text.check().unwrap();
        assert_eq!(checked.access.rules.allow.users, ["alice", "bob"]);
        let mut blanks = sample("a");
        blanks.set(Field::AllowedUsers, " , ").unwrap();
        assert_eq!(fields(&blanks.check().unwrap_err()), ["allowed-users"]);
    }

    #[test]
    fn every_setting_is_read_from_its_variable() {
        // Each setting of the one list has a variable that `set` reads.
        for field in Field::SETTINGS {
            assert!(!matches!(
                field,
                Field::Authenticators | Field::SigningKeyId(_) | Field::SigningKeySecret(_)
            ));
            let text = match field {
                Field::AutoLogin | Field::AutoSignup => "true",
                Field::SigningKeys => "k1:secret",
                Field::SessionLifetimeSeconds
                | Field::StateLifetimeSeconds
                | Field::ApiTimeoutMs
                | Field::AccessFactsMaxAgeSeconds
                | Field::AllowedTags
                | Field::DeniedTags => "60",
                Field::Groups => "tags",
                _ => "x",
            };
            let mut settings = Settings::default();
            settings.set(field, text).unwrap();
            assert_ne!(settings, Settings::default(), "{field} was not set");
        }
        // Each setting is in the list once.
        for (index, field) in Field::SETTINGS.iter().enumerate() {
            assert!(!Field::SETTINGS[..index].contains(field), "{field} twice");
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let a = sample("corp").check().unwrap();
        assert_eq!(a.redirect_path, "/");
        assert_eq!(a.api_base, DEFAULT_API_BASE);
        assert_eq!(a.oauth_base, DEFAULT_OAUTH_BASE);
        assert_eq!(a.sso_base, DEFAULT_SSO_BASE);
        assert_eq!(a.route_prefix, "/auth/wecom");
        assert_eq!(a.session_lifetime, 8 * 3600);
        assert_eq!(a.state_lifetime, 600);
        assert!(a.is_https());
    }

    #[test]
    fn origins_must_be_scheme_host_port_only() {
        for good in [
            "https://apps.example.com",
            "http://127.0.0.1:8080",
            "https://[::1]:8443",
        ] {
            let s = Settings {
                origin: good.into(),
                ..sample("a")
            };
            assert!(s.check().is_ok(), "{good}");
        }
        for bad in [
            "",
            "apps.example.com",
            "https://apps.example.com/",
            "https://apps.example.com/app",
            "https://apps.example.com?x=1",
            "https://user@apps.example.com",
            "https://apps.example.com:443",
            "HTTPS://Apps.Example.com",
            "ftp://apps.example.com",
            "javascript:alert(1)",
            "https://",
        ] {
            let s = Settings {
                origin: bad.into(),
                ..sample("a")
            };
            let errors = s.check().unwrap_err();
            assert_eq!(fields(&errors), ["origin"], "{bad}");
            assert_eq!(errors[0].authenticator, "a");
        }
    }

    #[test]
    fn each_field_is_named_in_its_error() {
        let s = Settings {
            name: "bad name".into(),
            corp_id: "".into(),
            agent_id: "10x".into(),
            secret: Secret::new(""),
            redirect_path: Some("//evil.com".into()),
            api_base: Some("qyapi".into()),
            oauth_base: Some("https://x?y=1".into()),
            sso_base: Some("https://u:p@x".into()),
            signing_keys: vec![
                SigningKey {
                    id: "k1".into(),
                    secret: Secret::new("short"),
                },
                SigningKey {
                    id: "k1".into(),
                    secret: Secret::new("x".repeat(32)),
                },
            ],
            session_lifetime_seconds: Some(1),
            state_lifetime_seconds: Some(100_000),
            route_prefix: Some("auth/".into()),
            ..sample("x")
        };
        let errors = s.check().unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "name",
                "corp-id",
                "agent-id",
                "secret",
                "redirect-path",
                "api-base",
                "oauth-base",
                "sso-base",
                "signing-keys[0].secret",
                "signing-keys[1].id",
                "session-lifetime-seconds",
                "state-lifetime-seconds",
                "route-prefix",
            ]
        );
    }

    #[test]
    fn signing_keys_are_required_and_bounded() {
        let none = Settings {
            signing_keys: vec![],
            ..sample("a")
        };
        assert_eq!(fields(&none.check().unwrap_err()), ["signing-keys"]);
        let keys = (0..9)
            .map(|i| SigningKey {
                id: format!("k{i}"),
                secret: Secret::new("k".repeat(40)),
            })
            .collect();
        let many = Settings {
            signing_keys: keys,
            ..sample("a")
        };
        assert_eq!(fields(&many.check().unwrap_err()), ["signing-keys"]);
    }

    #[test]
    fn names_are_unique_and_only_one_authenticator_logs_in_silently() {
        let a = Settings {
            auto_login: true,
            ..sample("main")
        };
        let b = Settings {
            auto_login: true,
            ..sample("other")
        };
        let c = sample("MAIN");
        let errors = check_all(&[a.clone(), b, c]).unwrap_err();
        assert_eq!(fields(&errors), ["auto-login", "name"]);
        assert_eq!(errors[0].authenticator, "other");
        assert!(errors[0].message.contains("\"main\""));
        assert_eq!(errors[1].authenticator, "MAIN");
        assert_eq!(check_all(&[a, sample("other")]).unwrap().len(), 2);
        assert_eq!(fields(&check_all(&[]).unwrap_err()), ["authenticators"]);
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let mut s = sample("a");
        s.origin = "bad".into();
        let shown = format!("{s:?} {:?}", s.check().unwrap_err());
        let checked = format!("{:?}", sample("a").check().unwrap());
        for text in [shown, checked] {
            assert!(!text.contains("DO-NOT-LEAK"), "{text}");
            assert!(text.contains("[redacted]"));
        }
        assert_eq!(Secret::new("x").to_string(), "[redacted]");
    }

    #[test]
    fn durations_name_their_unit() {
        let s = Settings {
            api_timeout_ms: Some(5),
            session_lifetime_seconds: Some(5),
            ..sample("a")
        };
        let errors = s.check().unwrap_err();
        assert_eq!(
            fields(&errors),
            ["session-lifetime-seconds", "api-timeout-ms"]
        );
        assert!(errors[0].message.ends_with("seconds"));
        assert!(errors[1].message.ends_with("milliseconds"));
    }

    #[test]
    fn a_non_ascii_origin_asks_for_punycode() {
        let unicode = Settings {
            origin: "https://应用.example.com".into(),
            ..sample("corp")
        };
        let errors = unicode.check().unwrap_err();
        assert_eq!(fields(&errors), ["origin"]);
        assert!(
            errors[0].message.contains("punycode")
                && errors[0]
                    .message
                    .ends_with("did you mean https://xn--exto61c.example.com?"),
            "{}",
            errors[0].message
        );
        let punycode = Settings {
            origin: "https://xn--kxae4bafwg.example.com".into(),
            ..sample("corp")
        };
        assert!(punycode.check().is_ok());
    }

    #[test]
    fn return_hosts_must_share_the_session_cookie() {
        let without = Settings {
            return_hosts: vec!["crm.example.com".into()],
            ..sample("corp")
        };
        assert_eq!(fields(&without.check().unwrap_err()), ["return-hosts"]);
        let with = Settings {
            session_cookie_domain: Some("example.com".into()),
            return_hosts: vec!["CRM.example.com".into(), "*.tools.example.com".into()],
            ..sample("corp")
        };
        assert_eq!(
            with.check().unwrap().return_hosts,
            ["crm.example.com", "*.tools.example.com"]
        );
        let outside = Settings {
            session_cookie_domain: Some("example.com".into()),
            return_hosts: vec!["evil.com".into(), "bad host".into()],
            ..sample("corp")
        };
        assert_eq!(
            fields(&outside.check().unwrap_err()),
            ["return-hosts", "return-hosts"]
        );
    }

    #[test]
    fn a_session_cookie_domain_must_cover_the_origin() {
        let ok = Settings {
            session_cookie_domain: Some(".Example.com".into()),
            ..sample("a")
        };
        assert_eq!(
            ok.check().unwrap().session_cookie_domain.as_deref(),
            Some("example.com")
        );
        let foreign = Settings {
            session_cookie_domain: Some("evil.com".into()),
            ..sample("a")
        };
        assert_eq!(
            fields(&foreign.check().unwrap_err()),
            ["session-cookie-domain"]
        );
    }

    #[test]
    fn bases_lose_their_trailing_slash_and_may_carry_a_path() {
        let s = Settings {
            api_base: Some("http://127.0.0.1:9000/".into()),
            sso_base: Some("https://egress.internal/wecom-sso/".into()),
            ..sample("a")
        };
        let a = s.check().unwrap();
        assert_eq!(a.api_base, "http://127.0.0.1:9000");
        assert_eq!(a.sso_base, "https://egress.internal/wecom-sso");
    }
}
