//! The sample authenticator ([`wecom_auth::example`]) as the typed WIT API
//! takes it.

use crate::bindings::login::{Settings, SigningKey};

use wecom_auth::example::{AGENT_ID, CORP_ID, ORIGIN, SIGNING_KEY_ID};
pub use wecom_auth::example::{APP_SECRET, SIGNING_KEY};

/// The authenticator `name`, all optional fields at their defaults.
pub fn settings(name: &str) -> Settings {
    Settings {
        name: name.into(),
        corp_id: CORP_ID.into(),
        agent_id: AGENT_ID.into(),
        secret: APP_SECRET.into(),
        origin: ORIGIN.into(),
        redirect_path: None,
        auto_login: false,
        auto_signup: false,
        api_base: None,
        oauth_base: None,
        sso_base: None,
        signing_keys: vec![SigningKey {
            id: SIGNING_KEY_ID.into(),
            secret: SIGNING_KEY.into(),
        }],
        session_lifetime_seconds: None,
        state_lifetime_seconds: None,
        route_prefix: None,
        api_timeout_ms: None,
        session_cookie_name: None,
        session_cookie_domain: None,
        access_rules: None,
        access_facts_max_age_seconds: None,
        groups: None,
    }
}
