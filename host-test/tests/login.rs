//! The login functions, called through the built component in wasmtime: browser
//! detection, WeCom URLs, state and pre-auth cookie, return paths, settings.

mod common;

use std::time::Duration;

use common::{
    APP_SECRET, CHROME, SIGNING_KEY, WECOM_ANDROID, authorize_request, host, query_param, settings,
};
use host_test::bindings::login::{
    Authorization, CallbackRequest, ClientKind, ErrorDetail, Language, LoginFlow, Platform,
    StateRejection,
};
use host_test::host::ComponentHost;

const USER_AGENTS: &str = include_str!("../../testdata/user-agents.tsv");
const OPEN_REDIRECTS: &str = include_str!("../../testdata/open-redirect-payloads.json");

fn client_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::WecomMobile => "wecom-mobile",
        ClientKind::WecomDesktop => "wecom-desktop",
        ClientKind::Wechat => "wechat",
        ClientKind::Browser => "browser",
    }
}

#[tokio::test]
async fn every_corpus_user_agent_is_classified_through_the_component() {
    let host = host();
    let mut cases = 0;
    for line in USER_AGENTS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (expected, ua) = line.split_once('\t').unwrap();
        let info = host.detect_wecom_browser(ua).await.unwrap();
        assert_eq!(client_name(info.client), expected, "UA: {ua}");
        cases += 1;
    }
    assert!(cases >= 15);
}

#[tokio::test]
async fn detection_reports_platform_version_language_and_private_deployment() {
    let host = host();
    let android = host.detect_wecom_browser(WECOM_ANDROID).await.unwrap();
    assert_eq!(android.client, ClientKind::WecomMobile);
    assert_eq!(android.platform, Platform::Android);
    assert_eq!(android.wecom_version.as_deref(), Some("4.1.20"));
    assert_eq!(android.language, Some(Language::Zh));
    assert!(!android.private_deployment);
    let mac = host
        .detect_wecom_browser("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Language/en wxwork/4.1.15 (MicroMessenger/6.2) WeChat/2.0.4 Safari/605.1.15")
        .await
        .unwrap();
    assert_eq!(
        (mac.client, mac.platform),
        (ClientKind::WecomDesktop, Platform::Macos)
    );
    assert_eq!(mac.language, Some(Language::En));
    let private = host
        .detect_wecom_browser("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 wxworklocal/3.0.8 wwlocal/3.0.8 MicroMessenger/7.0.1")
        .await
        .unwrap();
    assert!(private.private_deployment);
    assert_eq!(private.wecom_version.as_deref(), Some("3.0.8"));
}

fn assert_wecom_state(state: &str) {
    assert!(!state.is_empty() && state.len() <= 128, "{state}");
    assert!(state.bytes().all(|b| b.is_ascii_alphanumeric()), "{state}");
}

#[tokio::test]
async fn inside_wecom_the_url_is_in_client_oauth_with_privateinfo_scope() {
    let host = host();
    let auth = host
        .authorize_url(&settings("corp"), &authorize_request(WECOM_ANDROID, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.flow, LoginFlow::InClient);
    let prefix = "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww0123456789abcdef\
                  &redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fwecom%2Fcallback\
                  &response_type=code&scope=snsapi_privateinfo&state=";
    assert!(auth.url.starts_with(prefix), "{}", auth.url);
    assert!(
        auth.url.ends_with("&agentid=1000002#wechat_redirect"),
        "{}",
        auth.url
    );
    assert_wecom_state(query_param(&auth.url, "state").unwrap());
}

#[tokio::test]
async fn elsewhere_the_url_is_web_login_with_the_language_hint() {
    let host = host();
    let web = host
        .authorize_url(&settings("corp"), &authorize_request(CHROME, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(web.flow, LoginFlow::Web);
    let prefix = "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww0123456789abcdef\
                  &agentid=1000002&redirect_uri=https%3A%2F%2Fapps.example.com%2Fauth%2Fwecom%2Fcallback&state=";
    assert!(web.url.starts_with(prefix), "{}", web.url);
    assert!(!web.url.contains("lang="));
    assert!(!web.url.contains("qrConnect"));

    let mut forced = authorize_request(WECOM_ANDROID, None);
    forced.force_flow = Some(LoginFlow::Web);
    let forced = host
        .authorize_url(&settings("corp"), &forced)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forced.flow, LoginFlow::Web);
    assert!(forced.url.ends_with("&lang=zh"), "{}", forced.url);
    assert_wecom_state(query_param(&forced.url, "state").unwrap());
}

#[tokio::test]
async fn simulator_bases_and_route_prefix_shape_the_urls() {
    let host = host();
    let mut s = settings("corp");
    s.origin = "http://127.0.0.1:8080".into();
    s.oauth_base = Some("http://127.0.0.1:9100".into());
    s.route_prefix = Some("/sso".into());
    let auth = host
        .authorize_url(&s, &authorize_request(WECOM_ANDROID, None))
        .await
        .unwrap()
        .unwrap();
    assert!(auth.url.starts_with(
        "http://127.0.0.1:9100/connect/oauth2/authorize?appid=ww0123456789abcdef&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fsso%2Fcallback&"
    ), "{}", auth.url);
    // Plain http origin: no Secure attribute, or the browser would drop the cookie.
    assert_eq!(
        auth.pre_auth_cookie.set_cookie,
        format!(
            "wecom_auth_login={}; Max-Age=600; Path=/sso; HttpOnly; SameSite=Lax",
            auth.pre_auth_cookie.value
        )
    );
}

#[tokio::test]
async fn nothing_secret_leaves_and_nothing_is_sent_to_wecom() {
    let host = host();
    let auth = host
        .authorize_url(&settings("corp"), &authorize_request(CHROME, Some("/x")))
        .await
        .unwrap()
        .unwrap();
    let shown = format!("{auth:?}");
    assert!(
        !shown.contains(APP_SECRET) && !shown.contains(SIGNING_KEY),
        "{shown}"
    );
    assert!(
        auth.pre_auth_cookie
            .set_cookie
            .contains("; HttpOnly; SameSite=Lax; Secure")
    );
    assert_eq!(auth.pre_auth_cookie.max_age_seconds, 600);
    assert!(
        host.outgoing.requests().is_empty(),
        "building a URL must not call WeCom"
    );
}

#[tokio::test]
async fn every_login_gets_fresh_randomness() {
    let host = host();
    let mut states = std::collections::HashSet::new();
    let mut cookies = std::collections::HashSet::new();
    for _ in 0..20 {
        let auth = host
            .authorize_url(&settings("corp"), &authorize_request(CHROME, None))
            .await
            .unwrap()
            .unwrap();
        states.insert(query_param(&auth.url, "state").unwrap().to_owned());
        cookies.insert(auth.pre_auth_cookie.value);
    }
    assert_eq!((states.len(), cookies.len()), (20, 20));
}

async fn start_login(host: &ComponentHost, name: &str, return_to: Option<&str>) -> Authorization {
    host.authorize_url(&settings(name), &authorize_request(CHROME, return_to))
        .await
        .unwrap()
        .unwrap()
}

fn callback(auth: &Authorization, cookie: Option<&str>) -> CallbackRequest {
    CallbackRequest {
        code: "CODE0123".into(),
        state: query_param(&auth.url, "state").unwrap().into(),
        pre_auth_cookie: cookie.map(Into::into),
        user_agent: CHROME.into(),
    }
}

async fn callback_error(
    host: &ComponentHost,
    name: &str,
    request: &CallbackRequest,
) -> ErrorDetail {
    host.handle_callback(&settings(name), request)
        .await
        .unwrap()
        .unwrap_err()
        .detail
}

#[tokio::test]
async fn a_state_verifies_only_with_its_own_browser_and_authenticator() {
    let host = host();
    let mine = start_login(&host, "corp", Some("/reports")).await;
    let theirs = start_login(&host, "corp", None).await;
    let own = callback(&mine, Some(&mine.pre_auth_cookie.value));

    // Verified: the component goes on to the code exchange, which this host
    // (no simulator routed) refuses.
    let ErrorDetail::WecomUnavailable(step) = callback_error(&host, "corp", &own).await else {
        panic!("a genuine state must verify");
    };
    assert!(step.starts_with("gettoken"), "{step}");

    // Another browser's cookie holds no entry for this login.
    let foreign = callback(&mine, Some(&theirs.pre_auth_cookie.value));
    assert!(matches!(
        callback_error(&host, "corp", &foreign).await,
        ErrorDetail::StateRejected(StateRejection::MissingCookie)
    ));
    // This login's entry with another binding does not verify.
    let (_, path) = mine.pre_auth_cookie.value.split_once('.').unwrap();
    let (theirs_id_and_binding, _) = theirs.pre_auth_cookie.value.split_once('.').unwrap();
    let swapped = format!(
        "{}{}.{path}",
        &mine.pre_auth_cookie.value[..8],
        &theirs_id_and_binding[8..]
    );
    assert!(matches!(
        callback_error(&host, "corp", &callback(&mine, Some(&swapped))).await,
        ErrorDetail::StateRejected(StateRejection::BadSignature)
    ));
    assert!(matches!(
        callback_error(&host, "corp", &callback(&mine, None)).await,
        ErrorDetail::StateRejected(StateRejection::MissingCookie)
    ));
    assert!(matches!(
        callback_error(&host, "other", &own).await,
        ErrorDetail::StateRejected(StateRejection::WrongAuthenticator)
    ));
}

#[tokio::test]
async fn a_tampered_or_forged_state_is_refused() {
    let host = host();
    let auth = start_login(&host, "corp", None).await;
    let genuine = callback(&auth, Some(&auth.pre_auth_cookie.value));
    let state = genuine.state.clone();
    // Flip one character of the MAC, of the expiry, of the nonce (after the
    // 8 characters that name the login's entry in the cookie).
    for index in [state.len() - 1, 12, 40] {
        let mut tampered = state.clone().into_bytes();
        tampered[index] = if tampered[index] == b'a' { b'b' } else { b'a' };
        let request = CallbackRequest {
            state: String::from_utf8(tampered).unwrap(),
            ..genuine.clone()
        };
        assert!(
            matches!(
                callback_error(&host, "corp", &request).await,
                ErrorDetail::StateRejected(StateRejection::BadSignature)
            ),
            "flip at {index}"
        );
    }
    for junk in ["", "abc", "Z".repeat(82).as_str(), "0".repeat(128).as_str()] {
        let request = CallbackRequest {
            state: junk.into(),
            ..genuine.clone()
        };
        assert!(
            matches!(
                callback_error(&host, "corp", &request).await,
                ErrorDetail::StateRejected(StateRejection::Malformed)
            ),
            "{junk}"
        );
    }
    // A state signed with another key (an attacker's own deployment) does not verify.
    let mut forger = settings("corp");
    forger.signing_keys[0].secret = "attacker-controlled-key-attacker-controlled".into();
    let forged = host
        .authorize_url(&forger, &authorize_request(CHROME, None))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        callback_error(
            &host,
            "corp",
            &callback(&forged, Some(&forged.pre_auth_cookie.value))
        )
        .await,
        ErrorDetail::StateRejected(StateRejection::BadSignature)
    ));
}

#[tokio::test]
async fn a_state_expires_after_its_lifetime_on_the_host_clock() {
    let host = host();
    let auth = start_login(&host, "corp", None).await;
    let request = callback(&auth, Some(&auth.pre_auth_cookie.value));
    host.clock.advance(Duration::from_secs(599));
    assert!(matches!(
        callback_error(&host, "corp", &request).await,
        ErrorDetail::WecomUnavailable(_)
    ));
    host.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        callback_error(&host, "corp", &request).await,
        ErrorDetail::StateRejected(StateRejection::Expired)
    ));
}

#[tokio::test]
async fn rotated_signing_keys_keep_logins_in_flight_valid() {
    let host = host();
    let auth = start_login(&host, "corp", None).await;
    let request = callback(&auth, Some(&auth.pre_auth_cookie.value));
    let mut rotated = settings("corp");
    rotated.signing_keys.insert(
        0,
        host_test::bindings::login::SigningKey {
            id: "k2".into(),
            secret: "a-brand-new-signing-key-a-brand-new-one".into(),
        },
    );
    let outcome = host.handle_callback(&rotated, &request).await.unwrap();
    assert!(
        matches!(
            outcome.as_ref().map_err(|e| &e.detail),
            Err(ErrorDetail::WecomUnavailable(_))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn oversized_inputs_are_refused_naming_the_field() {
    let host = host();
    let auth = start_login(&host, "corp", None).await;
    let genuine = callback(&auth, Some(&auth.pre_auth_cookie.value));
    for (request, field) in [
        (
            CallbackRequest {
                code: "c".repeat(513),
                ..genuine.clone()
            },
            "code",
        ),
        (
            CallbackRequest {
                code: String::new(),
                ..genuine.clone()
            },
            "code",
        ),
        (
            CallbackRequest {
                state: "s".repeat(129),
                ..genuine.clone()
            },
            "state",
        ),
        (
            CallbackRequest {
                user_agent: "u".repeat(5000),
                ..genuine.clone()
            },
            "user-agent",
        ),
        (
            CallbackRequest {
                pre_auth_cookie: Some("p".repeat(5000)),
                ..genuine.clone()
            },
            "pre-auth-cookie",
        ),
    ] {
        match callback_error(&host, "corp", &request).await {
            ErrorDetail::BadRequest(e) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let huge_ua = authorize_request(&"u".repeat(5000), None);
    match host
        .authorize_url(&settings("corp"), &huge_ua)
        .await
        .unwrap()
        .map_err(|e| e.detail)
    {
        Err(ErrorDetail::BadRequest(e)) => assert_eq!(e.field, "user-agent"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hostile_text_in_every_field_never_traps() {
    let host = host();
    let nasty = [
        "\u{0}",
        "\u{FFFF}\u{10FFFF}",
        "%",
        "%zz%",
        "é".repeat(3000).as_str(),
        "\r\n\t",
    ]
    .map(String::from);
    for text in &nasty {
        let _ = host.detect_wecom_browser(text).await.unwrap();
        let mut s = settings(text);
        s.origin = text.clone();
        let _ = host
            .authorize_url(&s, &authorize_request(text, Some(text)))
            .await
            .unwrap();
        let request = CallbackRequest {
            code: text.clone(),
            state: text.clone(),
            pre_auth_cookie: Some(text.clone()),
            user_agent: text.clone(),
        };
        let _ = host
            .handle_callback(&settings("corp"), &request)
            .await
            .unwrap();
        let _ = host.validate_settings(&[s]).await.unwrap();
    }
}

fn stays_on_origin(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[tokio::test]
async fn open_redirect_payloads_never_become_the_return_path() {
    let host = host();
    let payloads: Vec<String> = serde_json::from_str(OPEN_REDIRECTS).unwrap();
    assert!(payloads.len() >= 30);
    let mut s = settings("corp");
    s.redirect_path = Some("/home".into());
    for payload in &payloads {
        let auth = host
            .authorize_url(&s, &authorize_request(CHROME, Some(payload)))
            .await
            .unwrap()
            .unwrap();
        assert!(
            stays_on_origin(&auth.return_to),
            "{payload:?} became {:?}",
            auth.return_to
        );
        assert!(
            !auth.url.contains("evil"),
            "the return path must stay out of the WeCom URL"
        );
    }
    let kept = host
        .authorize_url(&s, &authorize_request(CHROME, Some("/reports?q=1#top")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.return_to, "/reports?q=1#top");
}

#[tokio::test]
async fn invalid_settings_name_the_authenticator_and_field_without_secrets() {
    let host = host();
    let mut bad_origin = settings("corp");
    bad_origin.origin = "https://apps.example.com/app/".into();
    match host
        .authorize_url(&bad_origin, &authorize_request(CHROME, None))
        .await
        .unwrap()
        .map_err(|e| e.detail)
    {
        Err(ErrorDetail::InvalidSettings(e)) => {
            assert_eq!(
                (e.authenticator.as_str(), e.field.as_str()),
                ("corp", "origin")
            );
            assert!(
                e.message.contains("https://apps.example.com"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }

    let mut first = settings("main");
    first.auto_login = true;
    let mut second = settings("backup");
    second.auto_login = true;
    let mut short_key = settings("MAIN");
    short_key.signing_keys[0].secret = "too-short".into();
    let errors = host
        .validate_settings(&[first.clone(), second, short_key])
        .await
        .unwrap()
        .unwrap_err();
    let named: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.authenticator.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("backup", "auto-login"),
            ("MAIN", "name"),
            ("MAIN", "signing-keys[0].secret")
        ]
    );
    let shown = format!("{errors:?}");
    assert!(
        !shown.contains("too-short") && !shown.contains(APP_SECRET),
        "{shown}"
    );

    assert!(
        host.validate_settings(&[first, settings("backup")])
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn homepage_links_give_the_admin_what_to_paste() {
    let host = host();
    let mut s = settings("corp");
    s.auto_login = true;
    let links = host.homepage_links(&s).await.unwrap().unwrap();
    assert_eq!(
        links.callback_url,
        "https://apps.example.com/auth/wecom/callback"
    );
    assert_eq!(
        links.desktop_homepage,
        "https://apps.example.com/auth/wecom/login?authenticator=corp"
    );
    assert_eq!(
        links.mobile_homepage,
        "https://apps.example.com/auth/wecom/login?authenticator=corp&flow=in-client"
    );
    assert_eq!(
        links.plain_homepage.as_deref(),
        Some("https://apps.example.com/")
    );
}
