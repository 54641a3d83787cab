//! The gateway's settings: its own (`[gateway]`) and the component's variables
//! (`[variables]`), from a TOML file, overridden by `WECOM_AUTH_<KEY>`
//! environment variables (as Spin's `SPIN_VARIABLE_<NAME>`), then by flags.
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:3000"
//! component = "wecom_auth.wasm"          # relative paths: to this file's directory
//! store = "sqlite:.wecom-auth/sqlite_key_value.db"   # | "memory" | "redis://host:6379"
//! cas_mode = "strict"                    # | "upsert-when-absent" (as Spin's SQLite store)
//! allowed_outbound_hosts = ["https://qyapi.weixin.qq.com"]
//! precompiled_cache_dir = ".wecom-auth/precompiled"
//! metrics_listen = "127.0.0.1:9090"      # Prometheus: GET /metrics (default: off)
//! log_format = "text"                    # | "json": the gateway's access and error lines
//!
//! [variables]
//! authenticators = "wecom"
//! corp_id = "ww0123456789abcdef"
//! secret = "..."                          # better: WECOM_AUTH_SECRET in the environment
//! ```
//!
//! The gateway does not interpret variables; it hands them to the component
//! through `wasi:config/store`. Values of keys ending in `secret`,
//! `signing_keys` or `admin_token` never appear in `Debug` output or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http::uri::Authority;
use serde::Deserialize;

use crate::log::LogFormat;
use crate::outbound::AllowedHost;
use crate::routes::Routes;
use host_drafts::keyvalue::{CasMode, KeyValueBackend};

/// Prefix of environment variables that set component variables:
/// `WECOM_AUTH_CORP_ID=...` sets `corp_id`.
pub const ENV_PREFIX: &str = "WECOM_AUTH_";
/// Environment variables under this prefix are the gateway's own flags
/// (`WECOM_AUTH_GATEWAY_LISTEN`, ...), never component variables.
pub const GATEWAY_ENV_PREFIX: &str = "WECOM_AUTH_GATEWAY_";
/// Names under [`ENV_PREFIX`] that are not variables either.
const RESERVED_ENV: &[&str] = &["WECOM_AUTH_COMPONENT"];
/// `WECOM_AUTH_REQUIRE_REDIS`, `..._WASM_OPT` and the like: the test harness's
/// and the build's switches, never component variables.
const REQUIRE_ENV_PREFIX: &str = "WECOM_AUTH_REQUIRE_";

/// Where the gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);
/// The default store: one SQLite file (as Spin's `.spin/sqlite_key_value.db`).
pub const DEFAULT_SQLITE_PATH: &str = ".wecom-auth/sqlite_key_value.db";
/// The default cache of precompiled components.
pub const DEFAULT_CACHE_DIR: &str = ".wecom-auth/precompiled";
/// Where `cargo run -p wecom-auth-dist` puts the shipped component (cargo's
/// build, then `wasm-opt`), relative to the workspace root.
pub const DEFAULT_COMPONENT: &str = "target/dist/wecom_auth.wasm";
/// The WeCom server API, always an allowed outbound host by default.
pub const WECOM_API: &str = "https://qyapi.weixin.qq.com";

const REDACTED: &str = "<redacted>";

/// Whether a variable holds a secret: its name ends in `secret`,
/// `signing_keys` or `admin_token` (`secret`, `hq_secret`, `signing_keys`, ...).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "signing_keys", "admin_token"]
        .iter()
        .any(|suffix| key.ends_with(suffix))
}

/// The variables with every secret value replaced by `<redacted>`: safe to print.
pub fn redacted(variables: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    variables
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(key) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

/// A Spin-style variable name: a lowercase letter, then lowercase letters,
/// digits and `_`.
pub fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Which key-value store the gateway serves the component.
#[derive(Clone)]
pub enum StoreSpec {
    /// In memory: gone when the gateway stops.
    Memory,
    /// One SQLite file, created if needed (durable; the default).
    Sqlite(PathBuf),
    /// A Redis server, `redis://[:password@]host[:port][/db]`.
    Redis(String),
    /// A store built by the caller (tests seed it, inject faults, share it).
    Backend(KeyValueBackend),
}

impl Default for StoreSpec {
    fn default() -> Self {
        StoreSpec::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH))
    }
}

impl FromStr for StoreSpec {
    type Err = anyhow::Error;

    /// `memory`, `sqlite` (the default file), `sqlite:<path>`, `redis://...`.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text == "memory" {
            Ok(StoreSpec::Memory)
        } else if text == "sqlite" {
            Ok(StoreSpec::default())
        } else if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                bail!("store `sqlite:` needs a path, e.g. sqlite:{DEFAULT_SQLITE_PATH}");
            }
            Ok(StoreSpec::Sqlite(PathBuf::from(path)))
        } else if text.starts_with("redis://") {
            Ok(StoreSpec::Redis(text.to_owned()))
        } else {
            // Never echo the text: it may be a URL with a password.
            bail!("unknown store: use `memory`, `sqlite:<path>` or `redis://host:port`")
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreSpec::Redis(url) => f.write_str(&redact_url(url)),
            StoreSpec::Backend(backend) => write!(f, "{} (given)", backend.kind()),
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `redis://user:pass@host:6379/0` → `redis://<redacted>@host:6379/0`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{REDACTED}@{host}"),
        None => url.to_owned(),
    }
}

/// Everything the gateway needs to start.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Where to listen (loopback by default; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The component (`.wasm`).
    pub component: PathBuf,
    /// The key-value store (default: SQLite, [`DEFAULT_SQLITE_PATH`]).
    pub store: StoreSpec,
    /// CAS on an absent key: strict (default) or an upsert as in Spin's SQLite store.
    pub cas_mode: CasMode,
    /// What the component reads through `wasi:config/store`.
    pub variables: BTreeMap<String, String>,
    /// Outbound destinations, `scheme://host[:port]` (default: [`WECOM_API`]).
    /// The origin of every `api_base` / `<name>_api_base` variable is added.
    pub allowed_outbound_hosts: Vec<String>,
    /// Where precompiled components are cached (`None`: compile at every start).
    pub precompiled_cache_dir: Option<PathBuf>,
    /// Outbound requests to these hosts go to a loopback authority instead
    /// (plain HTTP), e.g. `qyapi.weixin.qq.com` → the simulator. Tests use it.
    pub routes: Routes,
    /// One line per request on stdout: method, path (no query), status, µs.
    pub access_log: bool,
    /// The component's stderr (its audit trail, one JSON line per login
    /// event, and its failure lines) on the gateway's stderr.
    pub component_log: bool,
    /// Longest a request may take before the gateway answers 504.
    pub request_timeout: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The gateway's own lines: text or JSON.
    pub log_format: LogFormat,
}

impl Default for GatewayConfig {
    /// The binary's defaults: `127.0.0.1:3000`, SQLite in `.wecom-auth/`,
    /// [`DEFAULT_COMPONENT`], precompiled cache in `.wecom-auth/`.
    fn default() -> Self {
        GatewayConfig {
            listen: DEFAULT_LISTEN,
            component: PathBuf::from(DEFAULT_COMPONENT),
            store: StoreSpec::default(),
            cas_mode: CasMode::Strict,
            variables: BTreeMap::new(),
            allowed_outbound_hosts: vec![WECOM_API.to_owned()],
            precompiled_cache_dir: Some(PathBuf::from(DEFAULT_CACHE_DIR)),
            routes: Routes::default(),
            access_log: true,
            component_log: true,
            request_timeout: Duration::from_secs(60),
            metrics_listen: None,
            log_format: LogFormat::Text,
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("component", &self.component)
            .field("store", &self.store)
            .field("cas_mode", &self.cas_mode)
            .field("variables", &redacted(&self.variables))
            .field("allowed_outbound_hosts", &self.allowed_outbound_hosts)
            .field("precompiled_cache_dir", &self.precompiled_cache_dir)
            .field("routes", &self.routes)
            .field("access_log", &self.access_log)
            .field("component_log", &self.component_log)
            .field("request_timeout", &self.request_timeout)
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    gateway: Section,
    #[serde(default)]
    variables: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    listen: Option<String>,
    component: Option<PathBuf>,
    store: Option<String>,
    cas_mode: Option<String>,
    allowed_outbound_hosts: Option<Vec<String>>,
    precompiled_cache_dir: Option<PathBuf>,
    access_log: Option<bool>,
    component_log: Option<bool>,
    request_timeout_seconds: Option<u64>,
    metrics_listen: Option<String>,
    log_format: Option<String>,
}

impl GatewayConfig {
    /// For running in-process (tests, demos, benches) with the component at
    /// `component`: a free loopback port,
    /// an in-memory store, no precompiled cache, no access log.
    pub fn in_process(component: impl Into<PathBuf>, variables: BTreeMap<String, String>) -> Self {
        GatewayConfig {
            component: component.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store: StoreSpec::Memory,
            variables,
            precompiled_cache_dir: None,
            access_log: false,
            component_log: false,
            ..GatewayConfig::default()
        }
    }

    /// Serves this store (e.g. one the test keeps a handle on).
    pub fn with_store(mut self, store: StoreSpec) -> Self {
        self.store = store;
        self
    }

    /// Serves this component instead of the one built from this tree.
    pub fn with_component(mut self, path: impl Into<PathBuf>) -> Self {
        self.component = path.into();
        self
    }

    /// Also allows `scheme://host[:port]` outbound.
    pub fn allow_outbound(mut self, host: impl Into<String>) -> Self {
        self.allowed_outbound_hosts.push(host.into());
        self
    }

    /// Sends requests for `host` to `target` (`127.0.0.1:PORT`, plain HTTP).
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Caches precompiled components in `dir`.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.precompiled_cache_dir = Some(dir.into());
        self
    }

    /// Reads `path`; relative paths in it are relative to its directory.
    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::from_toml_str(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a config file's text; relative paths are resolved against `base`.
    pub fn from_toml_str(text: &str, base: &Path) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let mut config = GatewayConfig::default();
        let section = file.gateway;
        if let Some(listen) = section.listen {
            config.listen = parse_listen(&listen)?;
        }
        if let Some(component) = section.component {
            config.component = base.join(component);
        }
        if let Some(store) = section.store {
            config.store = match store.parse()? {
                StoreSpec::Sqlite(path) => StoreSpec::Sqlite(base.join(path)),
                other => other,
            };
        }
        if let Some(mode) = section.cas_mode {
            config.cas_mode = parse_cas_mode(&mode)?;
        }
        if let Some(hosts) = section.allowed_outbound_hosts {
            for host in &hosts {
                host.parse::<AllowedHost>()
                    .with_context(|| format!("[gateway] allowed_outbound_hosts: {host:?}"))?;
            }
            config.allowed_outbound_hosts = hosts;
        }
        if let Some(dir) = section.precompiled_cache_dir {
            config.precompiled_cache_dir = Some(base.join(dir));
        }
        if let Some(access_log) = section.access_log {
            config.access_log = access_log;
        }
        if let Some(component_log) = section.component_log {
            config.component_log = component_log;
        }
        if let Some(seconds) = section.request_timeout_seconds {
            config.request_timeout = Duration::from_secs(seconds.max(1));
        }
        if let Some(listen) = section.metrics_listen {
            config.metrics_listen = Some(
                listen
                    .parse()
                    .with_context(|| format!("[gateway] metrics_listen: {listen:?}"))?,
            );
        }
        if let Some(format) = section.log_format {
            config.log_format = format.parse().context("[gateway] log_format")?;
        }
        for (key, value) in file.variables {
            if !is_variable_name(&key) {
                bail!(
                    "[variables] {key:?}: names are a lowercase letter, then lowercase \
                     letters, digits and `_`"
                );
            }
            let value = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(x) => x.to_string(),
                _ => bail!("[variables] {key}: the value must be a string"),
            };
            config.variables.insert(key, value);
        }
        Ok(config)
    }

    /// Applies `WECOM_AUTH_<KEY>=value` (any case; `<KEY>` lowercased is the
    /// variable) from `vars`, overriding the file. `WECOM_AUTH_GATEWAY_*` are
    /// the gateway's flags and skipped here.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        for (name, value) in vars {
            let Some(name) = name.as_ref().to_str() else {
                continue;
            };
            let upper = name.to_ascii_uppercase();
            if !upper.starts_with(ENV_PREFIX)
                || upper.starts_with(GATEWAY_ENV_PREFIX)
                || RESERVED_ENV.contains(&upper.as_str())
                || upper.starts_with(REQUIRE_ENV_PREFIX)
            {
                continue;
            }
            let key = upper[ENV_PREFIX.len()..].to_ascii_lowercase();
            if !is_variable_name(&key) {
                bail!(
                    "environment variable {name}: {ENV_PREFIX} is followed by a letter, \
                     then letters, digits and `_`"
                );
            }
            let Some(value) = value.as_ref().to_str() else {
                bail!("environment variable {name} is not valid UTF-8");
            };
            self.variables.insert(key, value.to_owned());
        }
        Ok(())
    }

    /// The file at `path` (if any), then the process environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => GatewayConfig::default(),
        };
        config.apply_env(std::env::vars_os())?;
        Ok(config)
    }

    /// The outbound allow-list: [`Self::allowed_outbound_hosts`] plus the
    /// origin of every `api_base` / `<name>_api_base` variable.
    pub fn outbound_allow_list(&self) -> anyhow::Result<Vec<AllowedHost>> {
        let mut list = Vec::new();
        for host in &self.allowed_outbound_hosts {
            list.push(
                host.parse::<AllowedHost>()
                    .with_context(|| format!("allowed outbound host {host:?}"))?,
            );
        }
        for (key, value) in &self.variables {
            if key == "api_base" || key.ends_with("_api_base") {
                let origin = AllowedHost::origin_of(value)
                    .with_context(|| format!("variable {key} is not a URL"))?;
                if !list.contains(&origin) {
                    list.push(origin);
                }
            }
        }
        Ok(list)
    }

    /// A route, parsed: `host` → `127.0.0.1:PORT`.
    pub fn route(host: &str, target: &str) -> anyhow::Result<(String, Authority)> {
        let target = target
            .parse::<Authority>()
            .with_context(|| format!("route target {target:?}"))?;
        Ok((host.to_ascii_lowercase(), target))
    }
}

fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    text.parse()
        .with_context(|| format!("listen address {text:?} (expected e.g. 127.0.0.1:3000)"))
}

/// `strict` or `upsert-when-absent`.
pub fn parse_cas_mode(text: &str) -> anyhow::Result<CasMode> {
    match text {
        "strict" => Ok(CasMode::Strict),
        "upsert-when-absent" | "upsert_when_absent" => Ok(CasMode::UpsertWhenAbsent),
        _ => bail!("cas_mode {text:?}: use `strict` or `upsert-when-absent`"),
    }
}

/// A TOML error by line and column only: the parser's own message quotes the
/// offending line, which may hold a secret.
fn toml_error(text: &str, error: &toml::de::Error) -> anyhow::Error {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            anyhow::anyhow!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => anyhow::anyhow!("invalid TOML: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised() {
        for key in [
            "secret",
            "hq_secret",
            "signing_keys",
            "branch_signing_keys",
            "admin_token",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["corp_id", "secretary", "api_base", "signing_key_id"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn redis_passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://user:hunter2@db:6379/0"),
            "redis://<redacted>@db:6379/0"
        );
        assert_eq!(redact_url("redis://db:6379"), "redis://db:6379");
        let spec: StoreSpec = "redis://:hunter2@db".parse().unwrap();
        assert!(!format!("{spec} {spec:?}").contains("hunter2"));
        let err = "rediss://:hunter2@db".parse::<StoreSpec>().unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"));
    }

    #[test]
    fn toml_errors_do_not_quote_the_line() {
        let text = "[variables]\nsecret = \"hunter2\nx = 1\n";
        let err = GatewayConfig::from_toml_str(text, Path::new("")).unwrap_err();
        let shown = format!("{err:#} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
    }
}
