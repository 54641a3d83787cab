//! The demo: the WeCom simulator with a sample company, the reference gateway
//! serving the component against it, and a directory seeded so every path of
//! a login can be tried by hand (or by the browser test):
//!
//! | member | what happens |
//! |---|---|
//! | 张三 `zhangsan` | bound to the provisioned user `alice`: QR login works at once |
//! | 李四 `lisi` | provisioned as `bob` (mobile `+86 139 0000 0001`), not bound: QR login asks for a first login in WeCom; in-client login binds |
//!
//! A login refreshes the user's profile from WeCom: `alice` shows as 张三 once
//! 张三 has logged in. Mobiles are stored normalised (`13900000001`).
//! | 王五 `wangwu` | declines to share the mobile number: in-client login signs up a new user |
//! | 赵六 `zhaoliu` | outside the app's visible range: refused |
//! | 外部访客 `outsider` | not a member of the company: refused |
//!
//! Departments: 1 示例科技 → 2 研发部 → 4 平台组, 1 → 3 财务部; 张三 is in 1 and
//! 2, the others in 1 (赵六 in 3); the tag 7 运维 holds 李四 and 平台组: try
//! `/auth/wecom/verify?allowed_departments=2` (张三 allowed) and `=3` (refused).
//! Groups are on: `/auth/wecom/me` lists 张三's as `dept:1`, `dept:2`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;

use host_drafts::keyvalue::testing::free_port;
use host_drafts::keyvalue::{CasMode, KeyValueBackend};
use wecom_auth_gateway::config::DEFAULT_CACHE_DIR;
use wecom_auth_gateway::{
    EngineOptions, Gateway, GatewayConfig, GatewayHandle, Routes, StoreSpec, engine, open_store,
    wasmtime_error,
};
use wecom_simulator::{
    CallbackConfig, Endpoint, LOGIN_PANEL_SCRIPT, Model, Simulator, SimulatorHandle,
    callback_params,
};

use crate::bindings::login::{AuthorizeRequest, CallbackRequest, Settings, SigningKey, UserInput};
use crate::host::ComponentHost;

/// The authenticator's name (a Spin variable prefix, so lowercase).
pub const AUTHENTICATOR: &str = "wecom";
/// Demo only: printed, never a real secret.
pub const ADMIN_TOKEN: &str = "demo-admin-token-0123456789";
/// The demo app's callback Token and EncodingAESKey (接收消息 → API 接收):
/// the simulated console sends its contact changes to `/auth/wecom/events`.
pub const CALLBACK_TOKEN: &str = "DemoToken2026";
pub const CALLBACK_AES_KEY: &str = "dGhlIGRlbW8ncyBFbmNvZGluZ0FFU0tleSwgMzIgYnl";
const SIGNING_KEY: &str = "demo-signing-key-not-for-production-0123456789";
/// The WeCom client's User-Agent (Android), for the scripted first login.
pub const WECOM_USER_AGENT: &str = "Mozilla/5.0 (Linux; Android 14; PGU110 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1 NetType/WIFI Language/zh";

pub struct DemoOptions {
    /// The gateway's port (0: a free one).
    pub port: u16,
    /// The simulator's port (0: a free one).
    pub simulator_port: u16,
    pub store: StoreSpec,
    pub access_log: bool,
    pub precompiled_cache_dir: Option<PathBuf>,
    /// Where the gateway serves Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Variables set over the demo's (e.g. limits off for a bench).
    pub extra_variables: Vec<(String, String)>,
}

impl Default for DemoOptions {
    /// What `cargo run -p host-test --bin demo` uses.
    fn default() -> Self {
        DemoOptions {
            port: 8080,
            simulator_port: 8089,
            store: StoreSpec::Sqlite(PathBuf::from(".wecom-auth/demo.db")),
            access_log: true,
            precompiled_cache_dir: Some(PathBuf::from(DEFAULT_CACHE_DIR)),
            metrics_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9090))),
            extra_variables: Vec::new(),
        }
    }
}

impl DemoOptions {
    /// Free ports, an in-memory store, quiet: for tests.
    pub fn for_tests() -> Self {
        DemoOptions {
            port: 0,
            simulator_port: 0,
            store: StoreSpec::Memory,
            access_log: false,
            precompiled_cache_dir: None,
            metrics_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            extra_variables: Vec::new(),
        }
    }
}

pub struct Demo {
    pub gateway: GatewayHandle,
    pub simulator: SimulatorHandle,
}

impl Demo {
    pub async fn start(options: DemoOptions) -> anyhow::Result<Demo> {
        // WeCom checks the callback host against the app's trusted domain, so
        // the gateway's address must be known before the simulator starts.
        let port = match options.port {
            0 => free_port()?,
            port => port,
        };
        let origin = format!("http://127.0.0.1:{port}");
        let mut model = Model::sample().with_trusted_domain(&format!("127.0.0.1:{port}"));
        // Its contact changes come to the demo's callback URL.
        for agent in &mut model.corps[0].agents {
            agent.callback = Some(CallbackConfig {
                url: format!("{origin}/auth/wecom/events"),
                token: CALLBACK_TOKEN.into(),
                encoding_aes_key: CALLBACK_AES_KEY.into(),
            });
        }
        let simulator = Simulator::start_on(model, options.simulator_port)
            .await
            .context("starting the WeCom simulator")?;
        let store = open_store(&options.store, CasMode::Strict).await?;
        let mut variables = variables(&origin, &simulator.base_url());
        variables.extend(options.extra_variables);
        let config = GatewayConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            store: StoreSpec::Backend(store.clone()),
            access_log: options.access_log,
            // The audit trail shows beside the access log.
            component_log: options.access_log,
            precompiled_cache_dir: options.precompiled_cache_dir,
            metrics_listen: options.metrics_listen,
            ..GatewayConfig::in_process(crate::COMPONENT_PATH, variables)
        }
        .allow_outbound(simulator.base_url());
        let gateway = Gateway::start(config)
            .await
            .context("starting the gateway")?;
        seed(&simulator, store, &origin).await?;
        Ok(Demo { gateway, simulator })
    }

    /// The app's URL: what a member opens.
    pub fn url(&self) -> String {
        self.gateway.url()
    }
}

/// The Spin variables of the demo (what `spin.toml` / the gateway's TOML sets).
pub fn variables(origin: &str, simulator: &str) -> BTreeMap<String, String> {
    // The sample authenticator is the simulator's sample app (same corp,
    // agent, Secret), here on the demo's origin with a key of its own.
    wecom_auth::example::variables()
        .into_iter()
        .chain([
            ("authenticators", AUTHENTICATOR.to_owned()),
            ("origin", origin.to_owned()),
            ("signing_keys", format!("demo:{SIGNING_KEY}")),
            ("auto_login", "true".to_owned()),
            ("auto_signup", "true".to_owned()),
            ("api_base", simulator.to_owned()),
            ("oauth_base", simulator.to_owned()),
            ("sso_base", simulator.to_owned()),
            // WeCom's login panel, drawn by the simulator's stand-in JS-SDK.
            (
                "login_panel_script",
                format!("{simulator}{}", Endpoint::LoginPanelScript.path()),
            ),
            (
                "login_panel_script_integrity",
                login_panel_script_integrity(),
            ),
            ("admin_token", ADMIN_TOKEN.to_owned()),
            ("callback_token", CALLBACK_TOKEN.to_owned()),
            ("callback_aes_key", CALLBACK_AES_KEY.to_owned()),
            ("display_name", "示例科技 · WeCom".to_owned()),
            // Groups in /verify's headers and /me: dept:<id>, tag:<id>.
            ("groups", "departments,tags".to_owned()),
        ])
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// The stand-in JS-SDK's Subresource Integrity (`sha384-<base64>`), as a
/// deployment pins the copy it serves.
fn login_panel_script_integrity() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha384::digest(LOGIN_PANEL_SCRIPT.as_bytes());
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The same authenticator as the typed functions take it.
pub fn settings(origin: &str, simulator: &str) -> Settings {
    // The example app is the simulator's sample app (same corp, agent, Secret).
    Settings {
        origin: origin.into(),
        auto_login: true,
        auto_signup: true,
        api_base: Some(simulator.into()),
        oauth_base: Some(simulator.into()),
        sso_base: Some(simulator.into()),
        signing_keys: vec![SigningKey {
            id: "demo".into(),
            secret: SIGNING_KEY.into(),
        }],
        ..crate::example::settings(AUTHENTICATOR)
    }
}

/// Provisions `alice` and `bob` through the typed functions and binds 张三 to
/// `alice` with one scripted in-client login. Idempotent: a restart on the
/// same store changes nothing.
async fn seed(
    simulator: &SimulatorHandle,
    store: KeyValueBackend,
    origin: &str,
) -> anyhow::Result<()> {
    let engine = engine(EngineOptions { pooling: false }).map_err(wasmtime_error)?;
    let component = wasmtime::component::Component::from_file(&engine, crate::COMPONENT_PATH)
        .map_err(wasmtime_error)?;
    let mut host =
        ComponentHost::from_component_with(&engine, &component, store).map_err(wasmtime_error)?;
    host.routes = Routes::new([(
        "127.0.0.1".to_owned(),
        simulator.addr().to_string().parse()?,
    )]);
    for (id, name, mobile) in [
        ("alice", "Alice Zhang", "+86 138 0000 0000"),
        ("bob", "Bob Li", "+86 139 0000 0001"),
    ] {
        let (instance, mut store) = host.instantiate().await.map_err(wasmtime_error)?;
        let input = UserInput {
            id: Some(id.into()),
            name: name.into(),
            mobile: Some(mobile.into()),
            email: None,
        };
        instance
            .wecom_auth_login()
            .call_upsert_user(&mut store, &input)
            .await
            .map_err(wasmtime_error)?
            .map_err(|e| anyhow::anyhow!("provisioning {id}: {e:?}"))?;
    }
    let settings = settings(origin, &simulator.base_url());
    let request = AuthorizeRequest {
        user_agent: WECOM_USER_AGENT.into(),
        return_to: None,
        force_flow: None,
        language: None,
        pre_auth_cookie: None,
    };
    let auth = host
        .authorize_url(&settings, &request)
        .await
        .map_err(wasmtime_error)?
        .map_err(|e| anyhow::anyhow!("authorize-url: {e:?}"))?;
    let location = simulator.login(&auth.url, "zhangsan").await?;
    let params = callback_params(&location).context("the simulator gave no code")?;
    let callback = CallbackRequest {
        code: params.code,
        state: params.state,
        pre_auth_cookie: Some(auth.pre_auth_cookie.value),
        user_agent: WECOM_USER_AGENT.into(),
    };
    host.handle_callback(&settings, &callback)
        .await
        .map_err(wasmtime_error)?
        .map_err(|e| anyhow::anyhow!("binding 张三: {e:?}"))?;
    Ok(())
}
