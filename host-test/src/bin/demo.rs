//! A walk through the component as a gateway drives it: loads the built `.wasm`
//! in wasmtime, checks a configuration, prints the console links, starts logins
//! from three browsers and verifies one callback state (and refuses a forged one).
//!
//! Run: `cargo run -p host-test --bin demo`

use host_test::bindings::login::{AuthorizeRequest, CallbackRequest, Settings};
use host_test::host::{ComponentHost, EngineOptions, engine};
use host_test::{COMPONENT_PATH, example};

const BROWSERS: [(&str, &str); 3] = [
    (
        "WeCom on Android",
        "Mozilla/5.0 (Linux; Android 14; PGU110) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1 Language/zh",
    ),
    (
        "WeCom on Windows",
        "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.5304.110 Safari/537.36 Language/en wxwork/4.1.10 (MicroMessenger/6.2) WindowsWechat",
    ),
    (
        "Chrome on Linux",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
];

/// The example authenticator, with a workbench redirect link and silent login.
fn demo_settings() -> Settings {
    Settings {
        redirect_path: Some("/workspace".into()),
        auto_login: true,
        ..example::settings("corp")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> wasmtime::Result<()> {
    let engine = engine(EngineOptions::default())?;
    let host = ComponentHost::load(&engine, COMPONENT_PATH)?;
    println!("component: {COMPONENT_PATH}\n");
    let settings = demo_settings();

    let mut twin = demo_settings();
    twin.origin = "https://apps.example.com/".into();
    println!("== validate-settings");
    println!(
        "  [corp]: {:?}",
        host.validate_settings(std::slice::from_ref(&settings))
            .await?
    );
    if let Err(errors) = host.validate_settings(&[settings.clone(), twin]).await? {
        for e in errors {
            println!(
                "  [corp, corp with a bad origin]: {} / {}: {}",
                e.authenticator, e.field, e.message
            );
        }
    }

    println!("\n== homepage-links (paste into the WeCom admin console)");
    match host.homepage_links(&settings).await? {
        Ok(links) => {
            println!("  callback URL:     {}", links.callback_url);
            println!("  desktop homepage: {}", links.desktop_homepage);
            println!("  mobile homepage:  {}", links.mobile_homepage);
            if let Some(plain) = links.plain_homepage {
                println!("  plain homepage:   {plain} (auto-login is on)");
            }
        }
        Err(e) => println!("  error: {e:?}"),
    }

    let mut last = None;
    for (label, user_agent) in BROWSERS {
        println!("\n== {label}");
        let info = host.detect_wecom_browser(user_agent).await?;
        println!(
            "  detect-wecom-browser: {:?} on {:?}, WeCom {}, language {:?}",
            info.client,
            info.platform,
            info.wecom_version.as_deref().unwrap_or("-"),
            info.language
        );
        let request = AuthorizeRequest {
            user_agent: user_agent.into(),
            return_to: Some("/reports?month=11".into()),
            force_flow: None,
            language: None,
        };
        match host.authorize_url(&settings, &request).await? {
            Ok(auth) => {
                println!("  authorize-url ({:?}): 302 to {}", auth.flow, auth.url);
                println!("  Set-Cookie: {}", auth.pre_auth_cookie.set_cookie);
                println!("  after login: {}", auth.return_to);
                last = Some(auth);
            }
            Err(e) => println!("  error: {e:?}"),
        }
    }

    if let Some(auth) = last {
        println!("\n== handle-callback");
        let state = auth
            .url
            .split("state=")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let genuine = CallbackRequest {
            code: "CODE_FROM_WECOM".into(),
            state,
            pre_auth_cookie: Some(auth.pre_auth_cookie.value.clone()),
            user_agent: BROWSERS[2].1.into(),
        };
        let forged = CallbackRequest {
            pre_auth_cookie: Some("0000000000000000.%2F".into()),
            ..genuine.clone()
        };
        for (label, request) in [
            ("this browser's cookie", genuine),
            ("another browser's cookie", forged),
        ] {
            let outcome = host.handle_callback(&settings, &request).await?;
            let shown = match outcome {
                Ok(login) => format!("logged in as {}", login.user.id),
                Err(e) => format!("refused ({}): {:?}", e.status, e.detail),
            };
            println!("  with {label}: {shown}");
        }
    }
    println!(
        "\noutgoing requests to WeCom so far: {}",
        host.outgoing.requests().len()
    );
    Ok(())
}
