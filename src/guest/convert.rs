//! Conversions between the generated WIT types and the core's.

use crate::core::access::{Group, GroupKind, GroupKinds, Refusal, RuleClass};
use crate::core::browser::{BrowserInfo, ClientKind, Language, Platform};
use crate::core::cookie::Cookie;
use crate::core::directory::{Binding, Outcome, User, UserInput, UserPage, UserQuery};
use crate::core::error::AuthError;
use crate::core::flow::LoginFlow;
use crate::core::login::{Authorization, ConsoleLinks, LoginSuccess, Member, Session};
use crate::core::settings::{self, Secret, SettingsError, SigningKey};
use crate::core::setup;
use crate::core::state::StateRejection;
use crate::core::sync::SyncReport;

use super::bindings::exports::wecom::auth::login as wit;

/// The WIT record as the core's settings, field for field: lists stay
/// lists (never joined into text to be split again). Destructured, so a
/// field added to the record must be handled here.
impl From<wit::Settings> for settings::Settings {
    fn from(s: wit::Settings) -> Self {
        let wit::Settings {
            name,
            corp_id,
            agent_id,
            secret,
            origin,
            redirect_path,
            auto_login,
            auto_signup,
            api_base,
            oauth_base,
            sso_base,
            signing_keys,
            session_lifetime_seconds,
            state_lifetime_seconds,
            route_prefix,
            api_timeout_ms,
            session_cookie_name,
            session_cookie_domain,
            access_rules,
            access_facts_max_age_seconds,
            groups,
        } = s;
        let wit::AccessRules {
            allowed_users,
            allowed_departments,
            allowed_tags,
            denied_users,
            denied_departments,
            denied_tags,
        } = access_rules.unwrap_or(wit::AccessRules {
            allowed_users: Vec::new(),
            allowed_departments: Vec::new(),
            allowed_tags: Vec::new(),
            denied_users: Vec::new(),
            denied_departments: Vec::new(),
            denied_tags: Vec::new(),
        });
        let groups = groups.unwrap_or_default();
        settings::Settings {
            name,
            corp_id,
            agent_id,
            secret: Secret::new(secret),
            origin,
            redirect_path,
            auto_login,
            auto_signup,
            api_base,
            oauth_base,
            sso_base,
            signing_keys: signing_keys
                .into_iter()
                .map(|k| SigningKey {
                    id: k.id,
                    secret: Secret::new(k.secret),
                })
                .collect(),
            session_lifetime_seconds,
            state_lifetime_seconds,
            route_prefix,
            api_timeout_ms,
            session_cookie_name,
            session_cookie_domain,
            // The typed API's callers return to relative paths.
            return_hosts: Vec::new(),
            allowed_users,
            allowed_departments,
            allowed_tags,
            denied_users,
            denied_departments,
            denied_tags,
            access_facts_max_age_seconds,
            groups: GroupKinds {
                departments: groups.contains(&wit::GroupKind::Department),
                tags: groups.contains(&wit::GroupKind::Tag),
            },
        }
    }
}

impl From<SyncReport> for wit::SyncReport {
    fn from(r: SyncReport) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        wit::SyncReport {
            listed: count(r.listed),
            bound: count(r.bound),
            sessions_ended: count(r.sessions_ended),
            unbound: count(r.unbound),
            disabled: count(r.disabled),
            wecom_pages: count(r.wecom_pages),
        }
    }
}

impl From<Group> for wit::Group {
    fn from(g: Group) -> Self {
        wit::Group {
            key: g.key(),
            kind: match g.kind {
                GroupKind::Department => wit::GroupKind::Department,
                GroupKind::Tag => wit::GroupKind::Tag,
            },
            id: g.id,
            name: g.name,
        }
    }
}

impl From<BrowserInfo> for wit::BrowserInfo {
    fn from(info: BrowserInfo) -> Self {
        wit::BrowserInfo {
            client: match info.client {
                ClientKind::WecomMobile => wit::ClientKind::WecomMobile,
                ClientKind::WecomDesktop => wit::ClientKind::WecomDesktop,
                ClientKind::Wechat => wit::ClientKind::Wechat,
                ClientKind::Browser => wit::ClientKind::Browser,
            },
            platform: match info.platform {
                Platform::Ios => wit::Platform::Ios,
                Platform::Android => wit::Platform::Android,
                Platform::Harmony => wit::Platform::Harmony,
                Platform::Windows => wit::Platform::Windows,
                Platform::Macos => wit::Platform::Macos,
                Platform::Linux => wit::Platform::Linux,
                Platform::Unknown => wit::Platform::Unknown,
            },
            wecom_version: info.wecom_version,
            private_deployment: info.private_deployment,
            language: info.language.map(Into::into),
        }
    }
}

impl From<Language> for wit::Language {
    fn from(language: Language) -> Self {
        match language {
            Language::Zh => wit::Language::Zh,
            Language::En => wit::Language::En,
        }
    }
}

impl From<wit::Language> for Language {
    fn from(language: wit::Language) -> Self {
        match language {
            wit::Language::Zh => Language::Zh,
            wit::Language::En => Language::En,
        }
    }
}

impl From<LoginFlow> for wit::LoginFlow {
    fn from(flow: LoginFlow) -> Self {
        match flow {
            LoginFlow::InClient => wit::LoginFlow::InClient,
            LoginFlow::Web => wit::LoginFlow::Web,
        }
    }
}

impl From<wit::LoginFlow> for LoginFlow {
    fn from(flow: wit::LoginFlow) -> Self {
        match flow {
            wit::LoginFlow::InClient => LoginFlow::InClient,
            wit::LoginFlow::Web => LoginFlow::Web,
        }
    }
}

impl From<Cookie> for wit::Cookie {
    fn from(c: Cookie) -> Self {
        wit::Cookie {
            name: c.name,
            value: c.value,
            max_age_seconds: c.max_age_seconds,
            set_cookie: c.set_cookie,
        }
    }
}

impl From<Authorization> for wit::Authorization {
    fn from(a: Authorization) -> Self {
        wit::Authorization {
            url: a.url,
            flow: a.flow.into(),
            pre_auth_cookie: a.pre_auth_cookie.into(),
            return_to: a.return_to,
        }
    }
}

impl From<ConsoleLinks> for wit::ConsoleLinks {
    fn from(links: ConsoleLinks) -> Self {
        wit::ConsoleLinks {
            callback_url: links.callback_url,
            desktop_homepage: links.desktop_homepage,
            mobile_homepage: links.mobile_homepage,
            plain_homepage: links.plain_homepage,
        }
    }
}

impl From<setup::Report> for wit::SetupReport {
    fn from(report: setup::Report) -> Self {
        let console = report.console;
        wit::SetupReport {
            trusted_domain: console.trusted_domain,
            links: console.links.into(),
            checks: report
                .checks
                .into_iter()
                .map(|c| wit::SetupCheck {
                    check: c.check.to_owned(),
                    ok: c.ok,
                    errcode: c.errcode,
                    hint_en: c.hint_en,
                    hint_zh: c.hint_zh,
                })
                .collect(),
        }
    }
}

impl From<SettingsError> for wit::SettingsError {
    fn from(e: SettingsError) -> Self {
        wit::SettingsError {
            authenticator: e.authenticator,
            field: e.field.to_string(),
            message: e.message,
        }
    }
}

impl From<StateRejection> for wit::StateRejection {
    fn from(rejection: StateRejection) -> Self {
        match rejection {
            StateRejection::MissingCookie => wit::StateRejection::MissingCookie,
            StateRejection::Malformed => wit::StateRejection::Malformed,
            StateRejection::WrongAuthenticator => wit::StateRejection::WrongAuthenticator,
            StateRejection::BadSignature => wit::StateRejection::BadSignature,
            StateRejection::Expired => wit::StateRejection::Expired,
            StateRejection::AlreadyUsed => wit::StateRejection::AlreadyUsed,
        }
    }
}

impl From<AuthError> for wit::AuthError {
    fn from(error: AuthError) -> Self {
        use crate::core::browser::Language;
        use crate::core::error::Category;
        let category = match error.category() {
            Category::BadRequest => wit::ErrorCategory::BadRequest,
            Category::LoginRejected => wit::ErrorCategory::LoginRejected,
            Category::AccessDenied => wit::ErrorCategory::AccessDenied,
            Category::SessionInvalid => wit::ErrorCategory::SessionInvalid,
            Category::WecomUnavailable => wit::ErrorCategory::WecomUnavailable,
            Category::StoreUnavailable => wit::ErrorCategory::StoreUnavailable,
            Category::Misconfigured => wit::ErrorCategory::Misconfigured,
            Category::Conflict => wit::ErrorCategory::Conflict,
            Category::NotFound => wit::ErrorCategory::NotFound,
        };
        let status = error.status();
        let message_en = error.member_message(Language::En).to_owned();
        let message_zh = error.member_message(Language::Zh).to_owned();
        let admin_hint = error.admin_hint();
        let detail = match error {
            AuthError::InvalidSettings(e) => wit::ErrorDetail::InvalidSettings(e.into()),
            AuthError::BadRequest { field, message } => {
                wit::ErrorDetail::BadRequest(wit::RequestError {
                    field: field.into(),
                    message,
                })
            }
            AuthError::StateRejected(r) => wit::ErrorDetail::StateRejected(r.into()),
            AuthError::Wecom(e) => wit::ErrorDetail::Wecom(wit::WecomError {
                errcode: e.errcode,
                errmsg: e.errmsg,
                api: e.api.into(),
            }),
            AuthError::WecomUnavailable(why) => wit::ErrorDetail::WecomUnavailable(why),
            AuthError::NotAMember => wit::ErrorDetail::NotAMember,
            AuthError::UserNotFound => wit::ErrorDetail::UserNotFound,
            AuthError::UserDisabled => wit::ErrorDetail::UserDisabled,
            AuthError::FirstLoginInClient => wit::ErrorDetail::FirstLoginInClient,
            // The typed `authorize-url` asks for snsapi_privateinfo, so its
            // callbacks never meet this: the nearest detail, should one.
            AuthError::ConsentNeeded => wit::ErrorDetail::FirstLoginInClient,
            AuthError::SessionRejected(why) => wit::ErrorDetail::SessionRejected(why.into()),
            AuthError::UserGone => wit::ErrorDetail::UserGone,
            AuthError::Conflict(why) => wit::ErrorDetail::Conflict(why),
            AuthError::NotFound(what) => wit::ErrorDetail::NotFound(what),
            AuthError::Store(why) => wit::ErrorDetail::Store(why),
            AuthError::AccessRefused { refusal, .. } => {
                wit::ErrorDetail::AccessRefused(match refusal {
                    Refusal::DeniedBy(RuleClass::User) => wit::AccessRefusal::DeniedByUser,
                    Refusal::DeniedBy(RuleClass::Department) => {
                        wit::AccessRefusal::DeniedByDepartment
                    }
                    Refusal::DeniedBy(RuleClass::Tag) => wit::AccessRefusal::DeniedByTag,
                    Refusal::NotAllowed => wit::AccessRefusal::NotAllowed,
                })
            }
        };
        wit::AuthError {
            category,
            status,
            detail,
            message_en,
            message_zh,
            admin_hint,
        }
    }
}

impl From<Binding> for wit::Binding {
    fn from(b: Binding) -> Self {
        wit::Binding {
            authenticator: b.authenticator,
            wecom_userid: b.wecom_userid,
        }
    }
}

impl From<wit::Binding> for Binding {
    fn from(b: wit::Binding) -> Self {
        Binding {
            authenticator: b.authenticator,
            wecom_userid: b.wecom_userid,
        }
    }
}

impl From<User> for wit::User {
    fn from(u: User) -> Self {
        wit::User {
            id: u.id,
            name: u.name,
            mobile: u.mobile,
            email: u.email,
            avatar: u.avatar,
            bindings: u.bindings.into_iter().map(Into::into).collect(),
            created_by_signup: u.created_by_signup,
            created_at: u.created_at,
            updated_at: u.updated_at,
            disabled: u.disabled,
        }
    }
}

impl From<wit::UserInput> for UserInput {
    fn from(u: wit::UserInput) -> Self {
        UserInput {
            id: u.id,
            name: u.name,
            mobile: u.mobile,
            email: u.email,
        }
    }
}

impl From<wit::UserQuery> for UserQuery {
    fn from(q: wit::UserQuery) -> Self {
        match q {
            wit::UserQuery::Id(id) => UserQuery::Id(id),
            wit::UserQuery::Mobile(m) => UserQuery::Mobile(m),
            wit::UserQuery::Binding(b) => UserQuery::Binding(b.into()),
        }
    }
}

impl From<UserPage> for wit::UserPage {
    fn from(p: UserPage) -> Self {
        wit::UserPage {
            users: p.users.into_iter().map(Into::into).collect(),
            cursor: p.cursor,
        }
    }
}

impl From<Member> for wit::Member {
    fn from(m: Member) -> Self {
        wit::Member {
            wecom_userid: m.wecom_userid,
            name: m.name,
            mobile: m.mobile,
            email: m.email,
            avatar: m.avatar,
            gender: m.gender,
        }
    }
}

impl From<LoginSuccess> for wit::LoginSuccess {
    fn from(s: LoginSuccess) -> Self {
        wit::LoginSuccess {
            authenticator: s.authenticator,
            user: s.user.into(),
            member: s.member.into(),
            outcome: match s.outcome {
                Outcome::Existing => wit::LoginOutcome::Existing,
                Outcome::NewlyBound => wit::LoginOutcome::NewlyBound,
                Outcome::Created => wit::LoginOutcome::Created,
            },
            session_cookie: s.session_cookie.into(),
            cleared_pre_auth_cookie: s.cleared_pre_auth_cookie.into(),
            redirect_to: s.redirect_to,
        }
    }
}

impl From<Session> for wit::Session {
    fn from(s: Session) -> Self {
        wit::Session {
            authenticator: s.verified.claims.authenticator,
            wecom_userid: s.verified.claims.wecom_userid,
            issued_at: s.verified.claims.issued_at,
            expires_at: s.verified.claims.expires_at,
            key_id: s.verified.key_id,
            user: s.user.into(),
            groups: s.groups.into_iter().map(Into::into).collect(),
        }
    }
}
