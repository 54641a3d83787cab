//! One example authenticator, shared by the demo, the bench and the tests. Its
//! secrets are spelled to be easy to search for: a test that finds
//! `DO-NOT-LEAK` in an output has found a leak.

use crate::bindings::login::{Settings, SigningKey};

pub const APP_SECRET: &str = "app-secret-DO-NOT-LEAK-0123456789";
pub const SIGNING_KEY: &str = "signing-key-DO-NOT-LEAK-0123456789abcdef";

/// A valid authenticator named `name` for `https://apps.example.com`, all
/// optional fields at their defaults.
pub fn settings(name: &str) -> Settings {
    Settings {
        name: name.into(),
        corp_id: "ww0123456789abcdef".into(),
        agent_id: "1000002".into(),
        secret: APP_SECRET.into(),
        origin: "https://apps.example.com".into(),
        redirect_path: None,
        auto_login: false,
        auto_signup: false,
        api_base: None,
        oauth_base: None,
        sso_base: None,
        signing_keys: vec![SigningKey {
            id: "k1".into(),
            secret: SIGNING_KEY.into(),
        }],
        session_lifetime_seconds: None,
        state_lifetime_seconds: None,
        route_prefix: None,
        api_timeout_ms: None,
        session_cookie_name: None,
        session_cookie_domain: None,
    }
}
