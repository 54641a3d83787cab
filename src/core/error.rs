//! Every failure of the component: one type, a category that decides the HTTP
//! status, messages for the member (en, zh) and a hint for the admin.
//! Nothing here ever holds the Secret, an access token or a signing key.

use std::fmt;

use super::access::{Refusal, RuleClass};
use super::browser::Language;
use super::settings::{Field, SettingsError};
use super::state::StateRejection;
use super::texts::{self, Text};

/// An error answer (`errcode != 0`) from the WeCom server API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WecomError {
    pub errcode: i32,
    /// As WeCom sent it, with any secret or token removed.
    pub errmsg: String,
    /// The API that answered, e.g. `auth/getuserinfo`.
    pub api: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    InvalidSettings(SettingsError),
    BadRequest {
        field: &'static str,
        message: String,
    },
    StateRejected(StateRejection),
    Wecom(WecomError),
    WecomUnavailable(String),
    NotAMember,
    UserNotFound,
    /// The user was disabled when its member left WeCom (`leaver_action =
    /// disable`): no login reaches it until an admin provisions it again.
    UserDisabled,
    FirstLoginInClient,
    /// A silent in-client login (`snsapi_base`) of a member not bound yet:
    /// matching or signing them up needs the mobile, which only
    /// `snsapi_privateinfo` yields, with the member's consent. The HTTP
    /// front sends the browser back to WeCom for it.
    ConsentNeeded,
    SessionRejected(&'static str),
    UserGone,
    Conflict(String),
    NotFound(String),
    Store(String),
    /// An access rule refused the member: the class of rule (all the
    /// member is told) and the member's userid (for the audit line).
    AccessRefused {
        refusal: Refusal,
        wecom_userid: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    BadRequest,
    LoginRejected,
    AccessDenied,
    SessionInvalid,
    WecomUnavailable,
    StoreUnavailable,
    Misconfigured,
    Conflict,
    NotFound,
}

impl Category {
    /// The page title of an error of this category.
    pub fn title(self) -> Text {
        match self {
            Category::BadRequest => texts::TITLE_BAD_REQUEST,
            Category::LoginRejected => texts::TITLE_LOGIN_FAILED,
            Category::AccessDenied => texts::TITLE_CANNOT_LOG_IN,
            Category::SessionInvalid => texts::TITLE_NOT_SIGNED_IN,
            Category::WecomUnavailable => texts::TITLE_WECOM_UNAVAILABLE,
            Category::StoreUnavailable => texts::TITLE_SERVICE_UNAVAILABLE,
            Category::Misconfigured => texts::TITLE_MISCONFIGURED,
            Category::Conflict => texts::TITLE_CONFLICT,
            Category::NotFound => texts::TITLE_NOT_FOUND,
        }
    }

    /// What the member reads about an error of this category in general.
    pub fn message(self) -> Text {
        match self {
            Category::BadRequest => texts::REQUEST_INCOMPLETE,
            Category::LoginRejected => texts::LOGIN_LINK_INVALID,
            Category::AccessDenied => texts::OUTSIDE_VISIBLE_RANGE,
            Category::SessionInvalid => texts::SESSION_ENDED,
            Category::WecomUnavailable => texts::WECOM_UNAVAILABLE,
            Category::StoreUnavailable => texts::SERVICE_UNAVAILABLE,
            Category::Misconfigured => texts::MISCONFIGURED,
            Category::Conflict => texts::CONFLICT,
            Category::NotFound => texts::NOT_FOUND,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Category::BadRequest => 400,
            Category::LoginRejected | Category::SessionInvalid => 401,
            Category::AccessDenied => 403,
            Category::NotFound => 404,
            Category::Conflict => 409,
            Category::Misconfigured => 500,
            Category::WecomUnavailable => 502,
            Category::StoreUnavailable => 503,
        }
    }
}

/// WeCom errcodes a login meets, grouped by what the caller should do.
pub mod errcode {
    /// The cached access token is no longer good: fetch a new one, retry once.
    pub const TOKEN_INVALID: [i32; 3] = [40014, 42001, 41001];
    pub const SYSTEM_BUSY: i32 = -1;
    pub const INVALID_SECRET: i32 = 40001;
    pub const INVALID_CORP_ID: i32 = 40013;
    pub const INVALID_CODE: i32 = 40029;
    pub const CODE_USED: i32 = 42022;
    pub const INVALID_AGENT_ID: i32 = 40056;
    pub const RATE_LIMITED: i32 = 45009;
    pub const CONCURRENCY_LIMITED: i32 = 45033;
    pub const API_FORBIDDEN: i32 = 48002;
    pub const REDIRECT_UNTRUSTED: i32 = 50001;
    pub const MEMBER_OUT_OF_RANGE: i32 = 50002;
    pub const NO_PRIVILEGE_FOR_MEMBER: i32 = 60011;
    pub const UNTRUSTED_IP: i32 = 60020;
    pub const USER_NOT_VISIBLE: i32 = 60021;
    pub const NO_SUCH_USERID: i32 = 60111;
    pub const TICKET_EXPIRED: i32 = 84014;
    pub const TICKET_INVALID: i32 = 84015;
    /// `agent/get` of an app other than the token's (doc 90227).
    pub const ANOTHER_APP: i32 = 301002;
    /// `tag/get` of a tag that does not exist (doc 90213).
    pub const INVALID_TAG: i32 = 40068;
}

/// The first problem of one authenticator's settings, for a single call.
impl From<Vec<SettingsError>> for AuthError {
    fn from(problems: Vec<SettingsError>) -> Self {
        AuthError::InvalidSettings(problems.into_iter().next().unwrap_or(SettingsError {
            authenticator: String::new(),
            field: Field::Authenticators,
            message: "are invalid".into(),
        }))
    }
}

impl AuthError {
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        AuthError::BadRequest {
            field,
            message: message.into(),
        }
    }

    pub fn category(&self) -> Category {
        match self {
            AuthError::InvalidSettings(_) => Category::Misconfigured,
            AuthError::BadRequest { .. } => Category::BadRequest,
            AuthError::StateRejected(_) | AuthError::ConsentNeeded => Category::LoginRejected,
            AuthError::Wecom(e) => wecom_category(e.errcode),
            AuthError::WecomUnavailable(_) => Category::WecomUnavailable,
            AuthError::NotAMember
            | AuthError::UserNotFound
            | AuthError::UserDisabled
            | AuthError::FirstLoginInClient
            | AuthError::AccessRefused { .. } => Category::AccessDenied,
            AuthError::SessionRejected(_) | AuthError::UserGone => Category::SessionInvalid,
            AuthError::Conflict(_) => Category::Conflict,
            AuthError::NotFound(_) => Category::NotFound,
            AuthError::Store(_) => Category::StoreUnavailable,
        }
    }

    /// The HTTP status to answer with. Rate limits and "system busy" are 503
    /// (try again later); other WeCom failures 502.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Wecom(e)
                if matches!(
                    e.errcode,
                    errcode::SYSTEM_BUSY | errcode::RATE_LIMITED | errcode::CONCURRENCY_LIMITED
                ) =>
            {
                503
            }
            _ => self.category().status(),
        }
    }

    /// What to tell the member, in their language.
    pub fn member_message(&self, language: Language) -> &'static str {
        self.member_text().get(language)
    }

    /// What the member reads, in both languages.
    pub fn member_text(&self) -> Text {
        match self.category() {
            Category::BadRequest => texts::REQUEST_INCOMPLETE,
            Category::LoginRejected => match self {
                AuthError::StateRejected(StateRejection::Expired) => texts::LOGIN_EXPIRED,
                AuthError::StateRejected(StateRejection::MissingCookie) => {
                    texts::LOGIN_FROM_ANOTHER_BROWSER
                }
                _ => texts::LOGIN_LINK_INVALID,
            },
            Category::AccessDenied => match self {
                AuthError::NotAMember => texts::NOT_A_MEMBER,
                AuthError::UserNotFound => texts::USER_NOT_FOUND,
                AuthError::UserDisabled => texts::USER_DISABLED,
                AuthError::FirstLoginInClient => texts::FIRST_LOGIN_IN_CLIENT,
                AuthError::AccessRefused { refusal, .. } => match refusal {
                    Refusal::DeniedBy(RuleClass::User) => texts::REFUSED_BY_USER_RULE,
                    Refusal::DeniedBy(RuleClass::Department) => texts::REFUSED_BY_DEPARTMENT_RULE,
                    Refusal::DeniedBy(RuleClass::Tag) => texts::REFUSED_BY_TAG_RULE,
                    Refusal::NotAllowed => texts::NOT_ALLOWED_BY_RULES,
                },
                _ => texts::OUTSIDE_VISIBLE_RANGE,
            },
            category => category.message(),
        }
    }

    /// The admin hint in Chinese, for the console settings WeCom rollouts
    /// most often get wrong (the setup check shows both languages).
    pub fn admin_hint_zh(&self) -> Option<String> {
        let AuthError::Wecom(e) = self else {
            return None;
        };
        use errcode::*;
        Some(match e.errcode {
            UNTRUSTED_IP => {
                let ip = e.errmsg.split("from ip: ").nth(1).and_then(|rest| rest.split([',', ' ']).next());
                format!(
                    "60020：请在 应用管理 → 本应用 → 企业可信IP 中加入本服务器的出口IP{}",
                    ip.map(|ip| format!(" {ip}")).unwrap_or_default()
                )
            }
            REDIRECT_UNTRUSTED => {
                "50001：请把 应用管理 → 本应用 → 网页授权及JS-SDK → 可信域名（以及 企业微信授权登录 → 授权回调域）设为 origin 的域名（含端口）".into()
            }
            INVALID_CORP_ID => "40013：企业ID错误，请从 我的企业 → 企业信息 → 企业ID 复制".into(),
            INVALID_SECRET => "40001：Secret 错误或已重置，请从 应用管理 → 本应用 复制 Secret".into(),
            INVALID_AGENT_ID => "40056：AgentId 错误，请从 应用管理 → 本应用 复制 AgentId".into(),
            ANOTHER_APP => "301002：AgentId 与 Secret 不属于同一个应用，请从 应用管理 → 本应用 一并复制 AgentId 和 Secret".into(),
            NO_PRIVILEGE_FOR_MEMBER if is_contact_data(e.api) => {
                "60011：访问规则或分组需要读取部门树或标签，本应用无权读取：请在 应用管理 → 本应用 → 可见范围 中加入规则所涉及的部门和标签，或只按 userid 设置规则".into()
            }
            _ => return None,
        })
    }

    /// What the admin should fix, when the admin can fix something.
    pub fn admin_hint(&self) -> Option<String> {
        match self {
            AuthError::InvalidSettings(e) => Some(format!("fix the setting: {e}")),
            AuthError::Wecom(e) => wecom_admin_hint(e),
            AuthError::UserNotFound => Some(
                "provision the user with this mobile number (admin API), or turn auto-signup on; \
                 a member who declined to share the mobile number cannot be matched"
                    .into(),
            ),
            AuthError::UserDisabled => Some(
                "the user was disabled when its member left WeCom (leaver_action = disable); \
                 if the same person is back, provision the user again (admin API upsert or \
                 import); if WeCom gave the userid to someone else, leave it disabled"
                    .into(),
            ),
            AuthError::WecomUnavailable(_) => Some(
                "check that the gateway can reach the WeCom API (api-base) and is allowed to (outbound hosts)"
                    .into(),
            ),
            AuthError::Store(_) => {
                Some("check the key-value store `default` (e.g. Redis) is reachable".into())
            }
            _ => None,
        }
    }
}

fn wecom_category(code: i32) -> Category {
    use errcode::*;
    match code {
        INVALID_CODE | CODE_USED | TICKET_EXPIRED | TICKET_INVALID => Category::LoginRejected,
        MEMBER_OUT_OF_RANGE | NO_PRIVILEGE_FOR_MEMBER | USER_NOT_VISIBLE | NO_SUCH_USERID => {
            Category::AccessDenied
        }
        INVALID_SECRET | INVALID_CORP_ID | INVALID_AGENT_ID | ANOTHER_APP | INVALID_TAG
        | API_FORBIDDEN | REDIRECT_UNTRUSTED | UNTRUSTED_IP => Category::Misconfigured,
        _ => Category::WecomUnavailable,
    }
}

/// The APIs the access rules and groups read the contacts with (and the
/// refusal they remember).
fn is_contact_data(api: &str) -> bool {
    matches!(
        api,
        "department/simplelist" | "tag/get" | "tag/list" | "access facts"
    )
}

fn wecom_admin_hint(e: &WecomError) -> Option<String> {
    use errcode::*;
    let hint = match e.errcode {
        UNTRUSTED_IP => {
            let ip = e
                .errmsg
                .split("from ip: ")
                .nth(1)
                .and_then(|rest| rest.split([',', ' ']).next())
                .filter(|ip| !ip.is_empty());
            match ip {
                Some(ip) => format!(
                    "60020: add this server's outbound IP {ip} to the app's trusted IPs \
                     (应用管理 → your app → 企业可信IP)"
                ),
                None => "60020: add this server's outbound IP to the app's trusted IPs \
                         (应用管理 → your app → 企业可信IP)"
                    .into(),
            }
        }
        REDIRECT_UNTRUSTED => "50001: the callback host is not the app's trusted domain: set \
             应用管理 → your app → 网页授权及JS-SDK → 可信域名 (and 企业微信授权登录 → 授权回调域) \
             to the host of `origin`, port included"
            .into(),
        INVALID_CORP_ID => {
            "40013: corp-id is wrong: copy the Company ID from 我的企业 → 企业信息 → 企业ID".into()
        }
        INVALID_SECRET => {
            "40001: secret is wrong or was reset: copy the app's Secret from 应用管理 → your app"
                .into()
        }
        INVALID_AGENT_ID => {
            "40056: agent-id is wrong: copy the AgentId from 应用管理 → your app".into()
        }
        INVALID_TAG => "40068: a tag id in the access rules does not exist: check allowed_tags, \
             denied_tags and the proxy's /verify parameters against 通讯录 → 标签"
            .into(),
        ANOTHER_APP => "301002: agent-id names another app than the Secret's: copy the AgentId \
             and the Secret of the same app (应用管理 → your app)"
            .into(),
        API_FORBIDDEN => {
            "48002: the app may not call this API: use a self-built app (自建应用) of this company"
                .into()
        }
        NO_PRIVILEGE_FOR_MEMBER if is_contact_data(e.api) => {
            "60011: the access rules or groups need contact data this app may not read \
             (the department tree, a tag): add those departments and tags to the app's \
             visible range (应用管理 → your app → 可见范围), or use rules by userid only"
                .into()
        }
        MEMBER_OUT_OF_RANGE | NO_PRIVILEGE_FOR_MEMBER | USER_NOT_VISIBLE => format!(
            "{}: add the member to the app's visible range (应用管理 → your app → 可见范围)",
            e.errcode
        ),
        RATE_LIMITED | CONCURRENCY_LIMITED => format!(
            "{}: WeCom's frequency limit was hit; logins resume by themselves",
            e.errcode
        ),
        _ => return None,
    };
    Some(hint)
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::InvalidSettings(e) => write!(f, "invalid settings: {e}"),
            AuthError::BadRequest { field, message } => write!(f, "bad request: {field} {message}"),
            AuthError::StateRejected(r) => write!(f, "login state rejected: {r:?}"),
            AuthError::Wecom(e) => write!(f, "WeCom {} errcode {}: {}", e.api, e.errcode, e.errmsg),
            AuthError::WecomUnavailable(why) => write!(f, "WeCom unavailable: {why}"),
            AuthError::NotAMember => f.write_str("not a member of the company"),
            AuthError::UserNotFound => f.write_str("user not found (用户不存在)"),
            AuthError::UserDisabled => f.write_str("the user is disabled (its member left WeCom)"),
            AuthError::FirstLoginInClient => {
                f.write_str("first login must happen inside the WeCom client")
            }
            AuthError::ConsentNeeded => f.write_str(
                "a silent (snsapi_base) login of a member not yet bound: ask again with snsapi_privateinfo",
            ),
            AuthError::SessionRejected(why) => write!(f, "session rejected: {why}"),
            AuthError::UserGone => f.write_str("the session's user no longer exists"),
            AuthError::Conflict(why) => write!(f, "conflict: {why}"),
            AuthError::NotFound(what) => write!(f, "not found: {what}"),
            AuthError::Store(why) => write!(f, "key-value store failed: {why}"),
            AuthError::AccessRefused { refusal: why, .. } => {
                write!(f, "refused by the access rules: {}", why.name())
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// Removes each secret from `text` (WeCom echoes nothing secret today; this
/// keeps it that way should it start).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wecom(errcode: i32, errmsg: &str) -> AuthError {
        AuthError::Wecom(WecomError {
            errcode,
            errmsg: errmsg.into(),
            api: "auth/getuserinfo",
        })
    }

    #[test]
    fn each_errcode_maps_to_its_category_and_status() {
        for (code, category, status) in [
            (40029, Category::LoginRejected, 401),
            (42022, Category::LoginRejected, 401),
            (84014, Category::LoginRejected, 401),
            (84015, Category::LoginRejected, 401),
            (60020, Category::Misconfigured, 500),
            (50001, Category::Misconfigured, 500),
            (40013, Category::Misconfigured, 500),
            (40001, Category::Misconfigured, 500),
            (40056, Category::Misconfigured, 500),
            (60011, Category::AccessDenied, 403),
            (45009, Category::WecomUnavailable, 503),
            (-1, Category::WecomUnavailable, 503),
            (40014, Category::WecomUnavailable, 502),
            (99999, Category::WecomUnavailable, 502),
        ] {
            let e = wecom(code, "x");
            assert_eq!((e.category(), e.status()), (category, status), "{code}");
        }
        assert_eq!(AuthError::WecomUnavailable("timeout".into()).status(), 502);
        assert_eq!(AuthError::NotAMember.status(), 403);
        assert_eq!(AuthError::Store("get".into()).status(), 503);
    }

    #[test]
    fn admin_hints_name_the_console_setting() {
        let hint = wecom(
            60020,
            "not allow to access from your ip, hint: [1665572950354960143799549], from ip: 119.130.57.47, more info at https://open.work.weixin.qq.com/devtool/query?e=60020",
        )
        .admin_hint()
        .unwrap();
        assert!(
            hint.contains("119.130.57.47") && hint.contains("企业可信IP"),
            "{hint}"
        );
        for (code, needle) in [
            (50001, "可信域名"),
            (40013, "企业ID"),
            (40001, "Secret"),
            (40056, "AgentId"),
        ] {
            assert!(
                wecom(code, "").admin_hint().unwrap().contains(needle),
                "{code}"
            );
        }
        assert_eq!(wecom(40029, "").admin_hint(), None);
    }

    #[test]
    fn member_messages_come_in_both_languages() {
        let e = AuthError::UserNotFound;
        assert!(e.member_message(Language::Zh).contains("用户不存在"));
        assert!(e.member_message(Language::En).contains("user not found"));
        assert!(
            AuthError::FirstLoginInClient
                .member_message(Language::En)
                .contains("workbench")
        );
    }

    #[test]
    fn redact_removes_secrets() {
        assert_eq!(
            redact("token abcd1234 here", &["abcd1234", ""]),
            "token [redacted] here"
        );
    }
}
