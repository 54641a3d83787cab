//! The sample authenticator: the self-built app `1000002` of the sample
//! company `ww0123456789abcdef` (the WeCom simulator's sample company), for
//! the docs, the demo and every test. Its secrets are spelled to be easy to
//! search for: a test that finds `DO-NOT-LEAK` in an output has found a leak.

use crate::core::settings::{Secret, Settings, SigningKey};

pub const CORP_ID: &str = "ww0123456789abcdef";
pub const AGENT_ID: &str = "1000002";
pub const APP_SECRET: &str = "app-secret-DO-NOT-LEAK-0123456789";
pub const SIGNING_KEY_ID: &str = "k1";
pub const SIGNING_KEY: &str = "signing-key-DO-NOT-LEAK-0123456789abcdef";
pub const ORIGIN: &str = "https://apps.example.com";

/// The authenticator `name` for [`ORIGIN`], every optional field at its default.
pub fn settings(name: &str) -> Settings {
    Settings {
        name: name.into(),
        corp_id: CORP_ID.into(),
        agent_id: AGENT_ID.into(),
        secret: Secret::new(APP_SECRET),
        origin: ORIGIN.into(),
        signing_keys: vec![SigningKey {
            id: SIGNING_KEY_ID.into(),
            secret: Secret::new(SIGNING_KEY),
        }],
        ..Settings::default()
    }
}

/// The same authenticator as the HTTP front's variables (Spin variables,
/// `wasi:config`): `corp_id`, `agent_id`, `secret`, `origin`, `signing_keys`.
pub fn variables() -> Vec<(&'static str, String)> {
    vec![
        ("corp_id", CORP_ID.to_owned()),
        ("agent_id", AGENT_ID.to_owned()),
        ("secret", APP_SECRET.to_owned()),
        ("origin", ORIGIN.to_owned()),
        ("signing_keys", format!("{SIGNING_KEY_ID}:{SIGNING_KEY}")),
    ]
}
