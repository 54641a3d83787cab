//! The reference gateway: settings (TOML, environment, redaction), the
//! outbound allow-list, store selection, the precompiled cache, and serving
//! HTTP through a component's `wasi:http/incoming-handler`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemorySection,
    MemoryType, Module, TypeSection, ValType,
};
use wasmtime::Engine;

use host_drafts::keyvalue::testing::{RedisServer, TempDir};
use host_drafts::keyvalue::{CasMode, KeyValueBackend};
use host_test::COMPONENT_PATH;
use wasmtime_wasi_http::{Error as HttpError, WasiHttpHooks};
use wecom_auth_gateway::config::{DEFAULT_COMPONENT, DEFAULT_SQLITE_PATH, WECOM_API};
use wecom_auth_gateway::routes::{Routes, body};
use wecom_auth_gateway::{
    AllowedHost, CacheOutcome, Gateway, GatewayConfig, GatewayHooks, StoreSpec, cache,
    is_secret_key, load_component, open_store, redacted,
};
use wecom_auth_gateway::{EngineOptions, engine};

const SECRET: &str = "app-secret-hunter2-0123456789";
const SIGNING: &str = "k1:signing-key-hunter3-0123456789abcdef0123";
const ADMIN: &str = "admin-token-hunter4";

fn variables() -> BTreeMap<String, String> {
    [
        ("authenticators", "wecom,hq"),
        ("corp_id", "ww0123456789abcdef"),
        ("secret", SECRET),
        ("hq_secret", SECRET),
        ("signing_keys", SIGNING),
        ("admin_token", ADMIN),
        ("origin", "https://apps.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn assert_no_secret(text: &str) {
    for secret in [SECRET, SIGNING, ADMIN, "hunter"] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

// ---- settings ----------------------------------------------------------------

const TOML: &str = r#"
[gateway]
listen = "127.0.0.1:8123"
component = "wecom_auth.wasm"
store = "sqlite:state/kv.db"
cas_mode = "upsert-when-absent"
allowed_outbound_hosts = ["https://qyapi.weixin.qq.com", "https://*.corp.example:8443"]
precompiled_cache_dir = "cache"

[variables]
authenticators = "wecom"
corp_id = "ww0123456789abcdef"
agent_id = 1000002
auto_login = true
secret = "app-secret-hunter2-0123456789"
api_base = "http://127.0.0.1:9090/"
"#;

#[test]
fn a_toml_file_sets_gateway_and_variables_relative_to_itself() {
    let dir = TempDir::new("gw-config").unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, TOML).unwrap();
    let config = GatewayConfig::from_file(&file).unwrap();
    assert_eq!(
        config.listen,
        "127.0.0.1:8123".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.component, dir.join("wecom_auth.wasm"));
    assert!(
        matches!(&config.store, StoreSpec::Sqlite(path) if *path == dir.join("state/kv.db")),
        "{:?}",
        config.store
    );
    assert_eq!(config.cas_mode, CasMode::UpsertWhenAbsent);
    assert_eq!(config.precompiled_cache_dir, Some(dir.join("cache")));
    assert_eq!(config.variables["agent_id"], "1000002");
    assert_eq!(config.variables["auto_login"], "true");
    assert_eq!(config.variables["secret"], SECRET);
}

#[test]
fn environment_variables_override_the_file_and_gateway_flags_are_not_variables() {
    let mut config = GatewayConfig::from_toml_str(TOML, Path::new("/srv")).unwrap();
    config
        .apply_env([
            ("WECOM_AUTH_CORP_ID", "ww_from_env"),
            ("WECOM_AUTH_HQ_SECRET", "s"),
            ("wecom_auth_display_name", "Portal"),
            ("WECOM_AUTH_GATEWAY_LISTEN", "0.0.0.0:1"),
            ("WECOM_AUTH_REQUIRE_REDIS", "1"),
            ("SPIN_VARIABLE_CORP_ID", "ignored"),
            ("HOME", "/root"),
        ])
        .unwrap();
    assert_eq!(config.variables["corp_id"], "ww_from_env");
    assert_eq!(config.variables["hq_secret"], "s");
    assert_eq!(config.variables["display_name"], "Portal");
    assert!(!config.variables.contains_key("gateway_listen"));
    assert!(!config.variables.contains_key("require_redis"));
    assert_eq!(
        config.listen.port(),
        8123,
        "env does not set gateway flags here"
    );

    let err = config.apply_env([("WECOM_AUTH_9LIVES", "x")]).unwrap_err();
    assert!(format!("{err}").contains("WECOM_AUTH_9LIVES"));
}

#[test]
fn defaults_are_loopback_durable_sqlite_and_the_wecom_api() {
    let config = GatewayConfig::default();
    assert!(config.listen.ip().is_loopback());
    assert!(
        matches!(&config.store, StoreSpec::Sqlite(path) if path == Path::new(DEFAULT_SQLITE_PATH))
    );
    assert_eq!(config.cas_mode, CasMode::Strict);
    assert_eq!(config.allowed_outbound_hosts, [WECOM_API]);
    assert_eq!(config.component, Path::new(DEFAULT_COMPONENT));
    let in_process = GatewayConfig::in_process(COMPONENT_PATH, BTreeMap::new());
    assert_eq!(in_process.listen.port(), 0);
    assert!(matches!(in_process.store, StoreSpec::Memory));
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let mut config = GatewayConfig::in_process(COMPONENT_PATH, variables());
    config.store = "redis://:hunter5@db:6379".parse().unwrap();
    let shown = format!("{config:?} {config:#?} {}", config.store);
    assert_no_secret(&shown);
    assert!(
        shown.contains("ww0123456789abcdef"),
        "non-secrets stay visible"
    );
    assert!(!shown.contains("hunter5"));
    let shown = format!("{:?}", redacted(&config.variables));
    assert_no_secret(&shown);
    assert!(shown.contains("<redacted>"));
    assert!(is_secret_key("branch_signing_keys") && !is_secret_key("corp_id"));

    // A syntax error on a secret's line, and a bad value under a secret key.
    for text in [
        "[variables]\nsecret = \"app-secret-hunter2-0123456789\n",
        "[variables]\nsecret = [\"app-secret-hunter2-0123456789\"]\n",
        "[gateway]\nstore = \"rediss://:hunter2@db\"\n",
    ] {
        let err = GatewayConfig::from_toml_str(text, Path::new("")).unwrap_err();
        assert_no_secret(&format!("{err:#} {err:?}"));
    }
}

#[test]
fn malformed_settings_are_refused_by_name() {
    for (text, expected) in [
        ("[gateway]\nlisten = \"nowhere\"\n", "listen"),
        ("[gateway]\nunknown = 1\n", "unknown"),
        ("[gateway]\nstore = \"postgres://x\"\n", "store"),
        ("[gateway]\ncas_mode = \"loose\"\n", "cas_mode"),
        (
            "[gateway]\nallowed_outbound_hosts = [\"qyapi.weixin.qq.com\"]\n",
            "allowed_outbound_hosts",
        ),
        ("[variables]\nCorp_Id = \"x\"\n", "Corp_Id"),
        ("[variables]\n[variables.nested]\nx = 1\n", "nested"),
    ] {
        let err = GatewayConfig::from_toml_str(text, Path::new("")).unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.contains(expected), "{text:?}: {shown}");
    }
}

// ---- outbound allow-list ----------------------------------------------------------

#[test]
fn the_allow_list_is_the_wecom_api_plus_every_api_base() {
    let mut variables = variables();
    variables.insert("api_base".into(), "http://127.0.0.1:9090".into());
    variables.insert(
        "hq_api_base".into(),
        "https://proxy.corp.example/wecom".into(),
    );
    let config = GatewayConfig::in_process(COMPONENT_PATH, variables);
    let list = config.outbound_allow_list().unwrap();
    let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "https://qyapi.weixin.qq.com",
            "http://127.0.0.1:9090",
            "https://proxy.corp.example:443"
        ]
    );
    let allowed = |uri: &str| list.iter().any(|a| a.allows(&uri.parse().unwrap()));
    assert!(allowed("https://qyapi.weixin.qq.com/cgi-bin/gettoken"));
    assert!(allowed("http://127.0.0.1:9090/cgi-bin/user/getuserinfo"));
    assert!(allowed("https://proxy.corp.example/wecom/cgi-bin/gettoken"));
    assert!(!allowed("http://qyapi.weixin.qq.com/cgi-bin/gettoken"));
    assert!(!allowed("http://127.0.0.1:9091/"));
    assert!(!allowed("https://open.weixin.qq.com/"));

    let mut bad = GatewayConfig::in_process(COMPONENT_PATH, BTreeMap::new());
    bad.variables.insert("api_base".into(), "not a url".into());
    assert!(bad.outbound_allow_list().is_err());
}

/// A loopback HTTP server answering `200 ok from <path>`, draining bodies.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_owned();
                        let _ = request.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(format!("ok from {path}")),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn send(hooks: &mut GatewayHooks, uri: &str) -> Result<(u16, String), HttpError> {
    let request = http::Request::builder()
        .uri(uri)
        .body(body(Bytes::from_static(b"payload")))
        .unwrap();
    let (response, io) =
        Box::into_pin(hooks.send_request(request, None, Box::new(async { Ok(()) }))).await?;
    let status = response.status().as_u16();
    let text = response.into_body().collect().await?.to_bytes();
    let _ = Box::into_pin(io).await;
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

#[tokio::test]
async fn outbound_requests_go_only_to_allowed_hosts_and_follow_routes() {
    let server = echo_server().await;
    let allowed: AllowedHost = format!("http://{server}").parse().unwrap();
    let mut hooks = GatewayHooks::new(
        vec![allowed, WECOM_API.parse().unwrap()],
        Routes::new([(
            "qyapi.weixin.qq.com".to_owned(),
            server.to_string().parse().unwrap(),
        )]),
    );
    assert_eq!(
        send(&mut hooks, &format!("http://{server}/cgi-bin/x?token=t"))
            .await
            .unwrap(),
        (200, "ok from /cgi-bin/x".to_owned())
    );
    // Allowed as https://qyapi..., then routed to the loopback server.
    assert_eq!(
        send(
            &mut hooks,
            "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpsecret=s"
        )
        .await
        .unwrap(),
        (200, "ok from /cgi-bin/gettoken".to_owned())
    );
    for denied in [
        "https://evil.example/steal",
        "http://qyapi.weixin.qq.com/cgi-bin/gettoken",
        "http://127.0.0.1:1/",
    ] {
        assert!(
            matches!(
                send(&mut hooks, denied).await,
                Err(HttpError::HttpRequestDenied)
            ),
            "{denied}"
        );
    }
}

// ---- stores ---------------------------------------------------------------------

#[test]
fn store_specs_parse() {
    assert!(matches!(
        "memory".parse::<StoreSpec>().unwrap(),
        StoreSpec::Memory
    ));
    assert!(
        matches!("sqlite:/var/lib/kv.db".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite(p) if p == Path::new("/var/lib/kv.db"))
    );
    assert!(
        matches!("sqlite".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite(p) if p == Path::new(DEFAULT_SQLITE_PATH))
    );
    assert!(matches!(
        "redis://127.0.0.1:6379".parse::<StoreSpec>().unwrap(),
        StoreSpec::Redis(_)
    ));
    for bad in ["", "sqlite:", "mysql://x", "Memory"] {
        assert!(bad.parse::<StoreSpec>().is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn the_store_named_is_the_store_opened() {
    let memory = open_store(&StoreSpec::Memory, CasMode::UpsertWhenAbsent)
        .await
        .unwrap();
    assert_eq!(
        (memory.kind(), memory.mode()),
        ("memory", CasMode::UpsertWhenAbsent)
    );

    let dir = TempDir::new("gw-store").unwrap();
    let path = dir.join("deep/kv.db");
    let sqlite = open_store(&StoreSpec::Sqlite(path.clone()), CasMode::Strict)
        .await
        .unwrap();
    assert_eq!(sqlite.kind(), "sqlite");
    sqlite.set("default", "k", b"v").await.unwrap();
    assert!(path.is_file());

    let given = KeyValueBackend::memory(CasMode::Strict);
    given.set("default", "seed", b"1").await.unwrap();
    let same = open_store(
        &StoreSpec::Backend(given.clone()),
        CasMode::UpsertWhenAbsent,
    )
    .await
    .unwrap();
    assert_eq!(
        same.get("default", "seed").await.unwrap(),
        Some(b"1".to_vec())
    );

    if let Some(server) = RedisServer::start().unwrap() {
        let redis = open_store(&StoreSpec::Redis(server.url()), CasMode::Strict)
            .await
            .unwrap();
        assert_eq!(redis.kind(), "redis");
        redis.set("default", "k", b"v").await.unwrap();
        assert_eq!(
            redis.get("default", "k").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
    let unreachable = format!(
        "redis://:hunter2@127.0.0.1:{}",
        host_drafts::keyvalue::testing::free_port().unwrap()
    );
    let err = open_store(&StoreSpec::Redis(unreachable), CasMode::Strict)
        .await
        .unwrap_err();
    assert_no_secret(&format!("{err:#}"));
}

// ---- precompiled cache ------------------------------------------------------------

fn pooled_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| engine(EngineOptions { pooling: true }).expect("engine"))
}

/// A core module exporting `exports` (name, params, results), every function
/// `unreachable`, plus a memory and `cabi_realloc`.
fn trapping_module(exports: &[(&str, &[ValType], &[ValType])]) -> Vec<u8> {
    let mut types = TypeSection::new();
    let mut functions = FunctionSection::new();
    let mut exported = ExportSection::new();
    let mut code = CodeSection::new();
    let realloc: (&str, &[ValType], &[ValType]) =
        ("cabi_realloc", &[ValType::I32; 4], &[ValType::I32]);
    for (index, (name, params, results)) in exports.iter().chain([&realloc]).enumerate() {
        let index = index as u32;
        types
            .ty()
            .function(params.iter().copied(), results.iter().copied());
        functions.function(index);
        exported.export(name, ExportKind::Func, index);
        let mut body = Function::new([]);
        body.instruction(&Instruction::Unreachable);
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    exported.export("memory", ExportKind::Memory, 0);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exported)
        .section(&code);
    module.finish()
}

/// `module` as a component of `world` in `resolve`.
fn componentize(
    mut module: Vec<u8>,
    resolve: &wit_parser::Resolve,
    world: wit_parser::WorldId,
) -> Vec<u8> {
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

/// A component exporting `wasi:http/incoming-handler@0.2.6` whose handler
/// traps: enough to drive the gateway's plumbing.
fn trapping_proxy_component() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    // The project's WIT, for its vendored WASI 0.2.6 packages.
    resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .unwrap();
    let http = resolve
        .packages
        .iter()
        .find(|(_, package)| package.name.namespace == "wasi" && package.name.name == "http")
        .map(|(id, _)| id)
        .expect("wit/deps vendors wasi:http");
    let world = resolve.select_world(&[http], Some("proxy")).unwrap();
    let module = trapping_module(&[(
        "wasi:http/incoming-handler@0.2.6#handle",
        &[ValType::I32, ValType::I32],
        &[],
    )]);
    componentize(module, &resolve, world)
}

#[test]
fn the_precompiled_cache_misses_once_then_hits_and_survives_corruption() {
    let dir = TempDir::new("gw-cache").unwrap();
    let wasm = dir.join("proxy.wasm");
    std::fs::write(&wasm, trapping_proxy_component()).unwrap();
    let cache_dir = dir.join("cache");
    let engine = pooled_engine();

    let first = load_component(engine, &wasm, Some(&cache_dir)).unwrap();
    let CacheOutcome::Miss(written) = first.outcome else {
        panic!("{}", first.outcome)
    };
    assert!(written.is_file() && written.extension().unwrap() == "cwasm");
    assert_eq!(
        written,
        cache::cache_path(&cache_dir, engine, &std::fs::read(&wasm).unwrap())
    );

    let second = load_component(engine, &wasm, Some(&cache_dir)).unwrap();
    assert_eq!(second.outcome, CacheOutcome::Hit(written.clone()));

    // Another component gets another entry.
    let mut other = std::fs::read(&wasm).unwrap();
    // A custom section `note` holding one byte: id 0, size 6, name length 4.
    other.extend_from_slice(&[0, 6, 4, b'n', b'o', b't', b'e', 0]);
    let other_wasm = dir.join("other.wasm");
    std::fs::write(&other_wasm, &other).unwrap();
    let third = load_component(engine, &other_wasm, Some(&cache_dir)).unwrap();
    assert!(
        matches!(&third.outcome, CacheOutcome::Miss(path) if *path != written),
        "{}",
        third.outcome
    );

    // A corrupt artifact is replaced, never trusted.
    // (A new file: loaded artifacts are mapped, so never truncate one in place.)
    drop(second);
    std::fs::remove_file(&written).unwrap();
    std::fs::write(&written, b"garbage").unwrap();
    let fourth = load_component(engine, &wasm, Some(&cache_dir)).unwrap();
    assert_eq!(fourth.outcome, CacheOutcome::Miss(written.clone()));
    let fifth = load_component(engine, &wasm, Some(&cache_dir)).unwrap();
    assert_eq!(fifth.outcome, CacheOutcome::Hit(written));

    let none = load_component(engine, &wasm, None).unwrap();
    assert_eq!(none.outcome, CacheOutcome::Disabled);
    assert!(load_component(engine, &dir.join("missing.wasm"), None).is_err());
}

// ---- serving --------------------------------------------------------------------

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_component_gets_500_and_the_gateway_keeps_serving() {
    let dir = TempDir::new("gw-serve").unwrap();
    let wasm = dir.join("proxy.wasm");
    std::fs::write(&wasm, trapping_proxy_component()).unwrap();
    let config = GatewayConfig::in_process(COMPONENT_PATH, variables())
        .with_component(&wasm)
        .with_cache_dir(dir.join("cache"));
    let gateway = Gateway::start(config).await.unwrap();
    assert!(gateway.addr().ip().is_loopback() && gateway.addr().port() != 0);
    assert!(gateway.cold_start().to_string().starts_with("cold start"));
    for _ in 0..3 {
        let (status, text) = get(gateway.addr(), "/auth/wecom/callback?code=c&state=s").await;
        assert_eq!((status, text.as_str()), (500, "internal error\n"));
    }
    assert_eq!(gateway.requests_served(), 3);
    let addr = gateway.addr();
    gateway.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err(), "stopped listening");
}

#[tokio::test]
async fn a_component_without_an_http_front_is_refused_at_start() {
    let dir = TempDir::new("gw-nofront").unwrap();
    // A typed export only: no wasi:http/incoming-handler.
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str("t.wit", "package t:t; world w { export f: func() -> u32; }")
        .unwrap();
    let world = resolve.select_world(&[pkg], Some("w")).unwrap();
    let component = componentize(
        trapping_module(&[("f", &[], &[ValType::I32])]),
        &resolve,
        world,
    );
    let wasm = dir.join("typed-only.wasm");
    std::fs::write(&wasm, component).unwrap();
    let err = Gateway::start(
        GatewayConfig::in_process(COMPONENT_PATH, BTreeMap::new()).with_component(&wasm),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("incoming-handler"), "{err:#}");
}

fn example_variables() -> BTreeMap<String, String> {
    let settings = host_test::example::settings("wecom");
    [
        ("authenticators", "wecom".to_owned()),
        ("corp_id", settings.corp_id.clone()),
        ("agent_id", settings.agent_id.clone()),
        ("secret", host_test::example::APP_SECRET.to_owned()),
        ("origin", settings.origin.clone()),
        (
            "signing_keys",
            format!("k1:{}", host_test::example::SIGNING_KEY),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The built wecom-auth component behind the gateway, over a SQLite store,
/// twice: the second start loads the precompiled component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_component_answers_over_http_and_restarts_from_the_cache() {
    let dir = TempDir::new("gw-real").unwrap();
    let config = GatewayConfig::in_process(COMPONENT_PATH, example_variables())
        .with_store(StoreSpec::Sqlite(dir.join("kv.db")))
        .with_cache_dir(dir.join("cache"));
    let gateway = Gateway::start(config.clone()).await.unwrap();
    assert!(
        matches!(gateway.cold_start().cache, CacheOutcome::Miss(_)),
        "{}",
        gateway.cold_start()
    );
    for path in ["/", "/auth/wecom/login?return_to=/x", "/nope"] {
        let (status, text) = get(gateway.addr(), path).await;
        assert!(
            (200..500).contains(&status),
            "{path}: the component answered {status} {text:?}"
        );
        assert_no_secret(&text);
        assert!(!text.contains("DO-NOT-LEAK"), "{text}");
    }
    assert_eq!(gateway.keyvalue().kind(), "sqlite");
    gateway.shutdown().await;

    let again = Gateway::start(config).await.unwrap();
    assert!(
        matches!(again.cold_start().cache, CacheOutcome::Hit(_)),
        "{}",
        again.cold_start()
    );
    let (status, _) = get(again.addr(), "/").await;
    assert!((200..500).contains(&status), "{status}");
}

/// The HTTP front's routes through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_front_serves_login_and_verify_through_the_gateway() {
    let gateway = Gateway::start(GatewayConfig::in_process(
        COMPONENT_PATH,
        example_variables(),
    ))
    .await
    .unwrap();
    let (status, _) = get(gateway.addr(), "/auth/wecom/login?return_to=/x").await;
    assert!((200..400).contains(&status), "login: {status}");
    let (status, _) = get(gateway.addr(), "/auth/wecom/verify").await;
    assert_eq!(status, 401, "no session, no identity");
}

/// The gateway's metrics after a scripted run: a QR login, `/verify`, a
/// refused login, a rate-limited one; counters by route and status, WeCom
/// calls by API and errcode, store operations, instances in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_wecom_calls_and_store_operations_of_a_scripted_run() {
    use common::http::{Browser, send};
    use host_test::demo::{Demo, DemoOptions};

    let demo = Demo::start(DemoOptions::for_tests()).await.unwrap();
    let at = demo.gateway.addr();
    let mut member = Browser::new(common::CHROME);
    let landed = member.log_in(at, at, &demo.simulator, "zhangsan").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(
        member.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
    let mut stranger = Browser::new(common::CHROME);
    let refused = stranger.log_in(at, at, &demo.simulator, "outsider").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let metrics = demo.gateway.metrics_addr().expect("metrics are served");
    let scraped = send(metrics, "GET", "/metrics", &[], b"").await.unwrap();
    assert_eq!(scraped.status, 200);
    assert!(
        scraped
            .header("content-type")
            .unwrap()
            .contains("openmetrics")
    );
    let text = scraped.body;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value(r#"wecom_auth_http_requests_total{route="login",status="302"}"#),
        2.0
    );
    assert_eq!(
        value(r#"wecom_auth_http_requests_total{route="callback",status="302"}"#),
        1.0
    );
    assert_eq!(
        value(r#"wecom_auth_http_requests_total{route="callback",status="403"}"#),
        1.0
    );
    assert_eq!(
        value(r#"wecom_auth_http_requests_total{route="verify",status="200"}"#),
        1.0
    );
    assert_eq!(
        value(r#"wecom_auth_http_request_duration_seconds_count{route="callback"}"#),
        2.0
    );
    // QR logins: auth/getuserinfo each (the token is warm from seeding).
    assert_eq!(
        value(r#"wecom_auth_wecom_requests_total{api="auth/getuserinfo",errcode="0"}"#),
        2.0
    );
    assert!(value(r#"wecom_auth_store_operations_total{op="get"}"#) > 0.0);
    assert_eq!(value(r#"wecom_auth_store_errors_total{op="get"}"#), 0.0);
    assert_eq!(value("wecom_auth_instances_in_flight"), 0.0);
    assert!(value("wecom_auth_instance_pool_slots") > 0.0);
    // Labels name routes and APIs, never a query.
    assert!(
        !text.contains("access_token") && !text.contains('?'),
        "{text}"
    );
}

/// Outbound connections to WeCom are pooled: sequential logins through the
/// gateway reuse one keep-alive connection instead of paying a handshake on
/// every WeCom call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_reuse_pooled_keep_alive_connections_to_wecom() {
    use common::http::Browser;
    use host_test::demo::{Demo, DemoOptions};
    use wecom_simulator::Network;

    let demo = Demo::start(DemoOptions::for_tests()).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    sim.set_network(Network::new(std::time::Duration::from_millis(2), 2));
    sim.reset_calls();
    for _ in 0..5 {
        let mut member = Browser::new(common::CHROME);
        let landed = member.log_in(at, at, sim, "zhangsan").await;
        assert_eq!(landed.status, 302, "{}", landed.body);
    }
    assert_eq!(sim.api_calls(), 5, "one auth/getuserinfo per QR login");
    assert!(
        sim.connections() <= 1,
        "{} new connections for 5 sequential calls",
        sim.connections()
    );
}

/// An in-client login sends `auth/getuserdetail` and `user/get` together:
/// the simulator sees both in flight before answering either, so the login
/// costs 2 round trips to WeCom, not 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_wecom_calls_of_a_login_are_in_flight_together() {
    use common::http::Browser;
    use host_test::demo::{Demo, DemoOptions, WECOM_USER_AGENT};
    use wecom_simulator::{Endpoint, Network};

    let demo = Demo::start(DemoOptions::for_tests()).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    // Long enough that two calls sent one after the other never overlap.
    sim.set_network(Network::new(std::time::Duration::from_millis(150), 0));
    sim.reset_calls();
    let mut phone = Browser::new(WECOM_USER_AGENT);
    let started = std::time::Instant::now();
    let landed = phone.log_in(at, at, sim, "lisi").await;
    let took = started.elapsed();
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(sim.calls(Endpoint::GetUserDetail), 1);
    // The silent round's check, then the profile beside getuserdetail.
    assert_eq!(sim.calls(Endpoint::UserGet), 2);
    assert_eq!(
        sim.max_concurrent_api_calls(),
        2,
        "getuserdetail and user/get in flight together"
    );
    eprintln!("in-client login at a modelled 150 ms round trip: {took:?}");
}

/// The demo without its groups, whose `/verify` would read the member's
/// departments with `user/get` of its own.
async fn demo_without_groups() -> host_test::demo::Demo {
    use host_test::demo::{Demo, DemoOptions};
    let options = DemoOptions {
        extra_variables: vec![("groups".into(), String::new())],
        ..DemoOptions::for_tests()
    };
    Demo::start(options).await.unwrap()
}

/// A returning member inside WeCom is answered once `auth/getuserinfo` is
/// in (a silent login: no page of WeCom's): the profile call (`user/get`)
/// runs after the answer was sent, and the profile it fetches still
/// reaches the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_member_is_answered_before_the_profile_refresh() {
    use common::http::{Browser, send};
    use host_test::demo::{ADMIN_TOKEN, WECOM_USER_AGENT};
    use wecom_simulator::{Endpoint, Fault};

    // No groups: the one user/get counted is the refresh's.
    let demo = demo_without_groups().await;
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    sim.update_model(|model| model.corps[0].member_mut("zhangsan").unwrap().name = "张三丰".into());
    // The profile calls take a second each; the login must not wait for them.
    sim.fault(Endpoint::GetUserDetail, Fault::latency_ms(1000));
    sim.fault(Endpoint::UserGet, Fault::latency_ms(1000));
    sim.reset_calls();
    let mut phone = Browser::new(WECOM_USER_AGENT);
    let landed = phone.log_in(at, at, sim, "zhangsan").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    assert_eq!(sim.calls(Endpoint::GetUserInfo), 1);
    // Profile calls that arrived and were answered (each takes a second).
    let answered = (sim.calls(Endpoint::GetUserDetail) + sim.calls(Endpoint::UserGet))
        .saturating_sub(sim.api_calls_in_flight());
    assert_eq!(answered, 0, "answered before the profile refresh was done");
    assert_eq!(
        phone.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
    // Then the refresh lands.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut name = String::new();
    for _ in 0..100 {
        let alice = send(
            at,
            "GET",
            "/auth/wecom/admin/users/alice",
            &[("authorization", &auth)],
            b"",
        )
        .await
        .unwrap();
        name = alice.json()["name"].as_str().unwrap_or_default().to_owned();
        if name == "张三丰" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        name, "张三丰",
        "the profile fetched after the answer is kept"
    );
    // A silent login gives no ticket: the refresh reads what needs no
    // consent (`user/get`), never `getuserdetail`.
    assert_eq!(sim.calls(Endpoint::GetUserDetail), 0);
    assert_eq!(sim.calls(Endpoint::UserGet), 1);
    assert_eq!(sim.consent_pages_shown(), 0);
}

/// Silent means silent: 100 in-client logins of a bound member show no
/// consent screen (every one did while each login asked for
/// `snsapi_privateinfo`), each one `auth/getuserinfo` before the answer and
/// one `user/get` after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_in_client_logins_of_a_bound_member_show_no_consent_screen() {
    use common::http::Browser;
    use host_test::demo::{Demo, DemoOptions, WECOM_USER_AGENT};
    use wecom_simulator::Endpoint;

    // No groups (the one user/get counted is the refresh's); every login
    // comes from 127.0.0.1: no per-client limit.
    let options = DemoOptions {
        extra_variables: vec![
            ("groups".into(), String::new()),
            ("rate_limit_per_client".into(), "0".into()),
        ],
        ..DemoOptions::for_tests()
    };
    let demo = Demo::start(options).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    sim.reset_calls();
    for n in 0..100 {
        let mut phone = Browser::new(WECOM_USER_AGENT);
        let landed = phone.log_in(at, at, sim, "zhangsan").await;
        assert_eq!(landed.status, 302, "login {n}: {}", landed.body);
        assert!(
            phone.cookies.contains_key("wecom_auth_session"),
            "login {n}"
        );
    }
    assert_eq!(sim.consent_pages_shown(), 0);
    assert_eq!(sim.silent_authorizations(), 100);
    assert_eq!(sim.calls(Endpoint::GetUserInfo), 100);
    assert_eq!(sim.calls(Endpoint::GetUserDetail), 0);
    // The refreshes after the answers (each may still be in flight).
    for _ in 0..100 {
        if sim.calls(Endpoint::UserGet) == 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sim.calls(Endpoint::UserGet), 100);
}

/// A returning member whom WeCom no longer shows the app (moved out of the
/// visible range: `user/get` answers 60011) is answered early, but the
/// refresh after the answer ends the session: the next `/verify` is 401,
/// as the login would have been refused had it waited; the member's next
/// login waits for the profile and shows the refusal (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_out_of_range_loses_the_early_session_when_the_refresh_is_refused() {
    use common::http::Browser;
    use host_test::demo::WECOM_USER_AGENT;
    use wecom_simulator::Endpoint;

    // No groups: the one user/get counted is the refresh's.
    let demo = demo_without_groups().await;
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    sim.update_model(|model| model.corps[0].member_mut("zhangsan").unwrap().visible = false);
    sim.reset_calls();
    let mut phone = Browser::new(WECOM_USER_AGENT);
    let landed = phone.log_in(at, at, sim, "zhangsan").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let mut status = 0;
    for _ in 0..100 {
        status = phone.request(at, "GET", "/auth/wecom/verify").await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, 401,
        "the session ended once WeCom refused the profile"
    );
    assert_eq!(sim.calls(Endpoint::UserGet), 1);
    // The next login waits for the profile, and the refusal shows: no loop
    // of sessions that end at once.
    let mut again = Browser::new(WECOM_USER_AGENT);
    let refused = again.log_in(at, at, sim, "zhangsan").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(!again.cookies.contains_key("wecom_auth_session"));
}

/// A WeCom-client browser the demo logged in as member `userid`.
async fn signed_in(demo: &host_test::demo::Demo, userid: &str) -> common::http::Browser {
    let mut phone = common::http::Browser::new(host_test::demo::WECOM_USER_AGENT);
    let at = demo.gateway.addr();
    let landed = phone.log_in(at, at, &demo.simulator, userid).await;
    assert_eq!(landed.status, 302, "{userid}: {}", landed.body);
    phone
}

/// A member deleted in WeCom's console loses access at once: the simulator
/// sends `delete_user` to the demo's callback URL, encrypted and signed
/// with the app's keys, and the next `/verify` of the member's session is
/// 401. A renamed member keeps their user; a member moved between
/// departments is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_deleted_in_wecom_is_refused_at_the_next_verify() {
    use host_test::demo::{Demo, DemoOptions};

    let demo = Demo::start(DemoOptions::for_tests()).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    let mut phone = signed_in(&demo, "zhangsan").await;
    assert_eq!(
        phone.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );

    let sent = std::time::Instant::now();
    let deliveries = sim.remove_member("zhangsan").await;
    let delivered = sent.elapsed();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert_eq!(deliveries[0].attempts, 1);
    let refused = phone.request(at, "GET", "/auth/wecom/verify").await;
    let first_refusal = sent.elapsed();
    assert_eq!(refused.status, 401, "{}", refused.body);
    eprintln!(
        "delete_user: delivered in {delivered:?}, the member's /verify refused {first_refusal:?} after WeCom sent it"
    );

    // lisi (bound to bob by mobile) is renamed: the next login finds bob.
    signed_in(&demo, "lisi").await;
    let deliveries = sim.rename_member("lisi", "li.si").await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    let mut renamed = signed_in(&demo, "li.si").await;
    let me = renamed.request(at, "GET", "/auth/wecom/me").await.json();
    assert_eq!(me["user"]["id"], "bob", "{me}");
    assert_eq!(me["wecom_userid"], "li.si");

    // A move between departments: acknowledged at once.
    let deliveries = sim.move_member("li.si", &[3]).await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
}

/// A member moved out of the department the rules allow: WeCom's
/// `update_user` drops the member's cached facts, so the next `/verify`
/// reads the new departments and refuses (403), well before
/// `access_facts_max_age_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_moved_out_of_an_allowed_department_is_refused_at_the_next_verify() {
    use host_test::demo::{Demo, DemoOptions};

    let options = DemoOptions {
        // 研发部 (2) and below; the facts may be an hour old.
        extra_variables: vec![
            ("allowed_departments".into(), "2".into()),
            ("access_facts_max_age_seconds".into(), "3600".into()),
        ],
        ..DemoOptions::for_tests()
    };
    let demo = Demo::start(options).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    let mut phone = signed_in(&demo, "zhangsan").await;
    assert_eq!(
        phone.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
    // To 财务部 (3).
    let deliveries = sim.move_member("zhangsan", &[3]).await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    let refused = phone.request(at, "GET", "/auth/wecom/verify").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// The directory sync repairs a missed event: a member removed while the
/// callback URL was down keeps a session until `POST admin/sync` compares
/// WeCom's `user/list_id` with the bindings and ends it. A company of
/// 10 000 members costs 2 `user/list_id` calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_sync_ends_the_session_of_a_leaver_whose_event_was_missed() {
    use common::http::send;
    use host_test::demo::{ADMIN_TOKEN, Demo, DemoOptions};
    use wecom_simulator::{Endpoint, Member};

    let demo = Demo::start(DemoOptions::for_tests()).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    let mut phone = signed_in(&demo, "zhangsan").await;
    let mut other = signed_in(&demo, "lisi").await;
    // Removed with no event delivered; a company of 10 000 more members.
    sim.update_model(|model| {
        let corp = &mut model.corps[0];
        corp.members.retain(|m| m.userid != "zhangsan");
        for n in 0..10_000 {
            corp.members.push(Member {
                userid: format!("m{n:05}"),
                name: format!("成员{n}"),
                department: vec![2],
                ..Member::default()
            });
        }
    });
    assert_eq!(
        phone.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
    sim.reset_calls();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let synced = send(
        at,
        "POST",
        "/auth/wecom/admin/sync",
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(synced.status, 200, "{}", synced.body);
    let report = &synced.json()["reports"][0];
    assert_eq!(report["authenticator"], "wecom");
    assert_eq!(report["sessions_ended"], 1, "{report}");
    assert_eq!(report["bound"], 2, "{report}");
    assert!(report["listed"].as_u64().unwrap() > 10_000, "{report}");
    let pages = sim.calls(Endpoint::UserListId);
    eprintln!(
        "directory sync of a company of 10 004 members: {pages} user/list_id calls, {} WeCom calls in all; {report}",
        sim.api_calls()
    );
    assert_eq!(pages, 2);
    assert_eq!(
        phone.request(at, "GET", "/auth/wecom/verify").await.status,
        401
    );
    assert_eq!(
        other.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
    // A second run (another instance, say) changes nothing more.
    let again = send(
        at,
        "POST",
        "/auth/wecom/admin/sync",
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(
        again.json()["reports"][0]["sessions_ended"],
        0,
        "{}",
        again.body
    );
    assert_eq!(
        other.request(at, "GET", "/auth/wecom/verify").await.status,
        200
    );
}

/// A member disabled in WeCom (`update_user` with `Status` 2) loses the
/// session at once; a member taken out of the tag a rule allows is refused
/// at the next `/verify` (the tag's cached members dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_member_and_a_member_taken_out_of_a_tag_are_refused_at_once() {
    use host_test::demo::{Demo, DemoOptions};

    let options = DemoOptions {
        extra_variables: vec![("access_facts_max_age_seconds".into(), "3600".into())],
        ..DemoOptions::for_tests()
    };
    let demo = Demo::start(options).await.unwrap();
    let at = demo.gateway.addr();
    let sim = &demo.simulator;
    let mut zhangsan = signed_in(&demo, "zhangsan").await;
    let deliveries = sim.disable_member("zhangsan").await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert_eq!(
        zhangsan
            .request(at, "GET", "/auth/wecom/verify")
            .await
            .status,
        401
    );

    // 李四 holds tag 7 (运维); a proxy's rule allows that tag.
    let mut lisi = signed_in(&demo, "lisi").await;
    let ruled = "/auth/wecom/verify?allowed_tags=7";
    assert_eq!(lisi.request(at, "GET", ruled).await.status, 200);
    let deliveries = sim.change_tag(7, &[], &["lisi"]).await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    let refused = lisi.request(at, "GET", ruled).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}
