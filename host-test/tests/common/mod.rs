//! What the integration tests share: the component compiled once per test
//! binary, a fresh host (own store data, clock, log) per test, sample settings.

#![allow(dead_code)]

use std::sync::OnceLock;

use host_test::COMPONENT_PATH;
use host_test::bindings::login::{AuthorizeRequest, Settings, SigningKey};
use host_test::host::{ComponentHost, EngineOptions, engine};
use wasmtime::Engine;
use wasmtime::component::Component;

pub const APP_SECRET: &str = "app-secret-DO-NOT-LEAK-0123456789";
pub const SIGNING_KEY: &str = "signing-key-DO-NOT-LEAK-0123456789abcdef";
pub const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const WECOM_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; PGU110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/6.2 TBS/046913 Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1 NetType/4G Language/zh Lang/zh ColorScheme/Dark";

fn compiled() -> &'static (Engine, Component) {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let engine = engine(EngineOptions::default()).expect("engine");
        let component =
            Component::from_file(&engine, COMPONENT_PATH).expect("the built component loads");
        (engine, component)
    })
}

/// A host of its own for one test, over the shared compiled component.
pub fn host() -> ComponentHost {
    let (engine, component) = compiled();
    ComponentHost::from_component(engine, component).expect("the component links")
}

pub fn engine_and_component() -> &'static (Engine, Component) {
    compiled()
}

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
    }
}

pub fn authorize_request(user_agent: &str, return_to: Option<&str>) -> AuthorizeRequest {
    AuthorizeRequest {
        user_agent: user_agent.into(),
        return_to: return_to.map(Into::into),
        force_flow: None,
        language: None,
    }
}

/// The value of query parameter `name` in `url`, still percent-encoded.
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
