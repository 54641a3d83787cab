//! What the integration tests share: the component compiled once per test
//! binary, a fresh host (own store data, clock, log) per test, sample settings.

#![allow(dead_code)]

pub mod http;
pub mod spin;

use std::sync::OnceLock;

use host_test::COMPONENT_PATH;
use host_test::bindings::login::AuthorizeRequest;
use host_test::host::ComponentHost;
use wasmtime::Engine;
use wasmtime::component::Component;
use wecom_auth_gateway::{EngineOptions, engine};

#[allow(unused_imports)] // not every test binary needs all of them
pub use host_test::example::{APP_SECRET, SIGNING_KEY, settings};

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

pub fn authorize_request(user_agent: &str, return_to: Option<&str>) -> AuthorizeRequest {
    AuthorizeRequest {
        user_agent: user_agent.into(),
        return_to: return_to.map(Into::into),
        force_flow: None,
        language: None,
        pre_auth_cookie: None,
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
