//! The admin's setup check: what the WeCom console must hold for an
//! authenticator, and the live checks the server can make: a fresh
//! `gettoken` with the configured corp id and Secret (40013, 40001, 60020
//! with the IP WeCom saw), `agent/get` with the agent id (40056, 301002;
//! doc 90227), the trusted domain WeCom holds against the origin's host
//! (a mismatch is 50001 at the first login), the app enabled. Each failure
//! names the console setting and the value to enter, in English and
//! Chinese; never the Secret. Served by `GET {prefix}/admin/setup` and the
//! typed `check-setup`.

use super::error::AuthError;
use super::login::{self, ConsoleLinks};
use super::ports::{KeyValue, Transport};
use super::settings::Authenticator;
use super::wecom::WecomApi;
use serde::Serialize;

/// One live check: ok, or WeCom's errcode and what to fix. As JSON:
/// `{"check", "ok", "errcode"?, "hint_en"?, "hint_zh"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `gettoken`, `agent`, `trusted-domain`, `agent-enabled`, `store`,
    /// and the warnings' names (`compare-and-swap`, `client-address-header`, `clock`).
    pub check: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint_en: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint_zh: Option<String>,
}

impl Check {
    /// A check from its outcome: an error's errcode and admin hints.
    pub fn of(check: &'static str, result: Result<(), AuthError>) -> Check {
        match result {
            Ok(()) => Check {
                check,
                ok: true,
                errcode: None,
                hint_en: None,
                hint_zh: None,
            },
            Err(e) => Check {
                check,
                ok: false,
                errcode: match &e {
                    AuthError::Wecom(w) => Some(w.errcode),
                    _ => None,
                },
                hint_zh: e.admin_hint_zh(),
                hint_en: e.admin_hint().or_else(|| Some(e.to_string())),
            },
        }
    }

    /// A failed check that names no errcode: what is wrong, in both languages.
    pub fn failed(check: &'static str, hint_en: String, hint_zh: String) -> Check {
        Check {
            check,
            ok: false,
            errcode: None,
            hint_en: Some(hint_en),
            hint_zh: Some(hint_zh),
        }
    }
}

/// What the console must hold for one authenticator. As JSON, the links'
/// fields sit beside the others: `{"trusted_domain", "callback_url",
/// "desktop_homepage", "mobile_homepage", "plain_homepage"?, "domain_check_file"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Console {
    /// 可信域名 and 授权回调域: the origin's `host[:port]`.
    pub trusted_domain: String,
    #[serde(flatten)]
    pub links: ConsoleLinks,
    /// Where the domain-ownership file WeCom offers must be served.
    pub domain_check_file: String,
}

/// The setup of one authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub console: Console,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Checks one authenticator's setup against WeCom (1 to 2 calls: `gettoken`,
/// then `agent/get` once the credentials work).
pub fn check(
    authenticator: &Authenticator,
    transport: &impl Transport,
    kv: &impl KeyValue,
    now: u64,
) -> Report {
    let origin_host = authenticator.origin_host();
    let console = Console {
        trusted_domain: origin_host.to_owned(),
        links: login::homepage_links(authenticator),
        domain_check_file: format!(
            "{}/WW_verify_<token>.txt: serve the file WeCom offers when you set the trusted domain",
            authenticator.origin
        ),
    };
    let api = WecomApi {
        authenticator,
        transport,
        kv,
        now,
    };
    let credentials = api.check_credentials();
    let usable = credentials.is_ok();
    let mut checks = vec![Check::of("gettoken", credentials)];
    if usable {
        checks.extend(agent_checks(&api, origin_host));
    }
    Report { console, checks }
}

/// `agent/get` with the configured agent id, and what it says of the
/// console: the trusted domain and whether the app is enabled.
fn agent_checks<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    origin_host: &str,
) -> Vec<Check> {
    let info = match api.agent() {
        Ok(info) => info,
        Err(e) => return vec![Check::of("agent", Err(e))],
    };
    let held = info.redirect_domain.unwrap_or_default();
    let domain = if held.eq_ignore_ascii_case(origin_host) {
        Check::of("trusted-domain", Ok(()))
    } else {
        let shown = if held.is_empty() {
            "(none)"
        } else {
            held.as_str()
        };
        Check::failed(
            "trusted-domain",
            format!(
                "the app's trusted domain is {shown}: set 应用管理 → your app → 网页授权及JS-SDK → \
                 可信域名 (and 企业微信授权登录 → 授权回调域) to {origin_host}, or logins fail with 50001"
            ),
            format!(
                "本应用的可信域名当前为 {shown}，请在 应用管理 → 本应用 → 网页授权及JS-SDK → 可信域名\
                 （以及 企业微信授权登录 → 授权回调域）中设为 {origin_host}，否则登录会报 50001"
            ),
        )
    };
    let mut checks = vec![Check::of("agent", Ok(())), domain];
    if info.close == Some(1) {
        checks.push(Check::failed(
            "agent-enabled",
            "the app is disabled: enable it in 应用管理 → your app (启用)".into(),
            "本应用已停用，请在 应用管理 → 本应用 中启用".into(),
        ));
    }
    checks
}
