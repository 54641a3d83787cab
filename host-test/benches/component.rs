//! Per-call cost of the component as a gateway pays it: a fresh store and
//! instance from the `InstancePre` (pooling allocator, and on-demand for
//! comparison), then one export call; the same core functions natively for the
//! ratio; the size of the release component. Run: `cargo bench -p host-test`.
//! Prints a Markdown table (median, p99, mean) to paste into docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use host_test::bindings::login::{
    AccessRules, AuthorizeRequest, CallbackRequest, GroupKind, Settings,
};
use host_test::host::ComponentHost;
use host_test::outgoing::SimulatorRoute;
use host_test::{COMPONENT_PATH, example};
use wecom_auth::core::{browser, login};
use wecom_auth_gateway::Routes;
use wecom_auth_gateway::{EngineOptions, engine};
use wecom_simulator::{Endpoint, Model, Simulator, SimulatorHandle, callback_params};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;
const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)  Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/zh ColorScheme/Light wwmver/3.26.13.714";

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Stats {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean,
    }
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {:.2} µs | {:.2} µs | {:.2} µs |",
        s.median.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.mean.as_secs_f64() * 1e6
    );
}

async fn measure_async<F, Fut>(mut call: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..WARMUP {
        call().await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        call().await;
        samples.push(start.elapsed());
    }
    stats(samples)
}

fn measure(mut call: impl FnMut()) -> Stats {
    for _ in 0..WARMUP {
        call();
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        call();
        samples.push(start.elapsed());
    }
    stats(samples)
}

const CALLBACK_SAMPLES: usize = 2_000;
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A login up to the callback: `authorize-url`, then the member picked on the
/// simulator's page (a real GET). Not timed.
async fn started(
    host: &ComponentHost,
    sim: &SimulatorHandle,
    settings: &Settings,
    user_agent: &str,
) -> CallbackRequest {
    let request = AuthorizeRequest {
        user_agent: user_agent.into(),
        return_to: None,
        force_flow: None,
        language: None,
        pre_auth_cookie: None,
    };
    let auth = host
        .authorize_url(settings, &request)
        .await
        .unwrap()
        .unwrap();
    let location = sim.login(&auth.url, "zhangsan").await.unwrap();
    let params = callback_params(&location).unwrap();
    CallbackRequest {
        code: params.code,
        state: params.state,
        pre_auth_cookie: Some(auth.pre_auth_cookie.value),
        user_agent: user_agent.into(),
    }
}

/// The simulator, and the component (pooling) with WeCom answering
/// in-process through the simulator's handlers, no socket.
async fn in_process() -> wasmtime::Result<(SimulatorHandle, ComponentHost)> {
    let sim = Simulator::start(Model::sample()).await?;
    let engine = engine(EngineOptions { pooling: true })?;
    let mut host = ComponentHost::load(&engine, COMPONENT_PATH)?;
    host.routes = Routes::to([(
        "qyapi.weixin.qq.com".to_owned(),
        SimulatorRoute::route(&sim),
    )]);
    Ok((sim, host))
}

/// `handle-callback` with WeCom answering in-process (the simulator's handlers,
/// no socket): the component's own time per login, plus the WeCom calls it
/// makes. The token is warm (one in-client login signed the member up first).
async fn callbacks() -> wasmtime::Result<()> {
    let (sim, host) = in_process().await?;
    let settings = Settings {
        auto_signup: true,
        ..example::settings("corp")
    };
    let first = started(&host, &sim, &settings, UA).await;
    host.handle_callback(&settings, &first).await?.unwrap();
    for (label, user_agent) in [("web/QR", CHROME), ("in-client", UA)] {
        sim.reset_calls();
        let mut samples = Vec::with_capacity(CALLBACK_SAMPLES);
        for _ in 0..CALLBACK_SAMPLES {
            let request = started(&host, &sim, &settings, user_agent).await;
            let start = Instant::now();
            black_box(host.handle_callback(&settings, &request).await?.unwrap());
            samples.push(start.elapsed());
        }
        let api_calls = [
            Endpoint::GetToken,
            Endpoint::GetUserInfo,
            Endpoint::GetUserDetail,
            Endpoint::UserGet,
        ]
        .map(|e| sim.calls(e))
        .iter()
        .sum::<u64>();
        row(
            &format!(
                "instantiate + handle-callback, {label} login, warm token ({CALLBACK_SAMPLES} samples; WeCom calls per login: {})",
                api_calls as f64 / CALLBACK_SAMPLES as f64
            ),
            &stats(samples),
        );
    }
    Ok(())
}

/// `verify-session` as `/verify` runs it: a fresh instance, the token's
/// check, the user read, and the rules and groups from the member's cached
/// view (the first call of each row fetched it; WeCom answers in-process).
async fn sessions() -> wasmtime::Result<()> {
    let (sim, host) = in_process().await?;
    let plain = Settings {
        auto_signup: true,
        ..example::settings("corp")
    };
    let request = started(&host, &sim, &plain, UA).await;
    let token = host
        .handle_callback(&plain, &request)
        .await?
        .unwrap()
        .session_cookie
        .value;
    // 张三 is in department 2, under 1.
    let ruled = Settings {
        access_rules: Some(AccessRules {
            allowed_users: Vec::new(),
            allowed_departments: vec!["1".into()],
            allowed_tags: Vec::new(),
            denied_users: Vec::new(),
            denied_departments: Vec::new(),
            denied_tags: Vec::new(),
        }),
        ..plain.clone()
    };
    let grouped = Settings {
        groups: Some(vec![GroupKind::Department, GroupKind::Tag]),
        ..plain.clone()
    };
    for (label, settings) in [
        ("no rules", &plain),
        ("a department rule", &ruled),
        ("groups (departments, tags)", &grouped),
    ] {
        host.verify_session(settings, &token).await?.unwrap();
        let s = measure_async(|| async {
            black_box(
                host.verify_session(settings, &token)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        })
        .await;
        row(&format!("instantiate + verify-session, {label}"), &s);
    }
    Ok(())
}

fn main() -> wasmtime::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let size = std::fs::metadata(COMPONENT_PATH)?.len();
    println!("component: {COMPONENT_PATH}");
    println!(
        "component size: {size} bytes ({:.1} KiB)\n",
        size as f64 / 1024.0
    );
    println!("| per call ({SAMPLES} samples) | median | p99 | mean |");
    println!("|---|---|---|---|");

    let request = AuthorizeRequest {
        user_agent: UA.into(),
        return_to: Some("/reports?q=1".into()),
        force_flow: None,
        language: None,
        pre_auth_cookie: None,
    };
    let settings = example::settings("corp");
    for (label, pooling) in [("pooling", true), ("on-demand", false)] {
        if !host_test::bench_row_selected(label) {
            continue;
        }
        let engine = engine(EngineOptions { pooling })?;
        let host = ComponentHost::load(&engine, COMPONENT_PATH)?;
        runtime.block_on(async {
            let s = measure_async(|| async {
                black_box(host.instantiate().await.unwrap());
            })
            .await;
            row(&format!("instantiate ({label})"), &s);
            let s = measure_async(|| async {
                black_box(host.detect_wecom_browser(UA).await.unwrap());
            })
            .await;
            row(&format!("instantiate + detect-wecom-browser ({label})"), &s);
            let s = measure_async(|| async {
                black_box(
                    host.authorize_url(&settings, &request)
                        .await
                        .unwrap()
                        .unwrap(),
                );
            })
            .await;
            row(&format!("instantiate + authorize-url ({label})"), &s);
        });
    }

    if host_test::bench_row_selected("callback") {
        runtime.block_on(callbacks())?;
    }
    if host_test::bench_row_selected("verify-session") {
        runtime.block_on(sessions())?;
    }

    if !host_test::bench_row_selected("native") {
        return Ok(());
    }
    let s = measure(|| {
        black_box(browser::detect(black_box(UA)));
    });
    row("native core: detect", &s);
    let native_settings = wecom_auth::example::settings("corp");
    let native_request = login::AuthorizeRequest {
        user_agent: UA.into(),
        return_to: Some("/reports?q=1".into()),
        ..login::AuthorizeRequest::default()
    };
    let s = measure(|| {
        let authenticator = black_box(&native_settings).check().unwrap();
        black_box(
            login::authorize(&authenticator, &native_request, 1_790_000_000, &[7; 28]).unwrap(),
        );
    });
    row("native core: check settings + authorize", &s);
    let variables: wecom_auth::http::ConfigMap =
        host_test::demo::variables("https://apps.example.com", "http://127.0.0.1:9")
            .into_iter()
            .collect();
    let s = measure(|| {
        black_box(wecom_auth::http::parse_config(black_box(&variables)).unwrap());
    });
    row("native front: parse the demo's variables", &s);
    Ok(())
}
