//! Properties of the pure core over generated inputs: no open redirect from any
//! mix of the characters redirect tricks are made of, and no panic on any text.

use proptest::prelude::*;
use url::Url;
use wecom_auth::core::{browser, return_path, settings, state};

/// The characters open-redirect payloads are built from.
fn redirect_alphabet() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/", "\\", "%", "2", "5", "F", "f", "C", "c", "e", "E", "0", "9", ".", ":", "@", "a", "?",
        "#", "\t", "\n", " ", "\u{FF0F}", "\u{2215}", "é", "%2F", "%5C", "%25", "%2e", "//",
        "evil.com", "http:",
    ]);
    prop::collection::vec(pieces, 0..16).prop_map(|parts| parts.concat())
}

/// Independent of `sanitize`: the path stays on the app's origin once a browser
/// resolves it, and no decoding layer turns it into `//host` or `/\host`.
fn stays_on_origin(path: &str) -> bool {
    let app = Url::parse("https://app.example.com/some/page").unwrap();
    if !app.join(path).is_ok_and(|u| u.origin() == app.origin()) {
        return false;
    }
    let mut layer = path.to_owned();
    for _ in 0..4 {
        if !layer.starts_with('/') || layer.starts_with("//") || layer.starts_with("/\\") {
            return false;
        }
        layer = percent_encoding::percent_decode_str(&layer)
            .decode_utf8_lossy()
            .into_owned();
    }
    path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

fn authenticator() -> settings::Authenticator {
    settings::Settings {
        name: "corp".into(),
        corp_id: "ww0123456789abcdef".into(),
        agent_id: "1000002".into(),
        secret: settings::Secret::new("app-secret"),
        origin: "https://apps.example.com".into(),
        signing_keys: vec![settings::SigningKey {
            id: "k1".into(),
            secret: settings::Secret::new("0123456789abcdef0123456789abcdef"),
        }],
        ..settings::Settings::default()
    }
    .check()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn sanitized_paths_never_leave_the_origin(candidate in redirect_alphabet()) {
        if let Some(safe) = return_path::sanitize(&candidate) {
            prop_assert!(stays_on_origin(&safe), "{:?} became {:?}", candidate, safe);
        }
    }

    #[test]
    fn sanitize_and_detect_take_any_text(text in any::<String>()) {
        let _ = return_path::sanitize(&text);
        let _ = browser::detect(&text);
    }

    #[test]
    fn verify_takes_any_state_and_cookie(text in "[0-9a-fA-Fz%./]{0,130}", cookie in any::<Option<String>>()) {
        prop_assert!(state::verify(&authenticator(), &text, cookie.as_deref(), 0).is_err());
    }

    #[test]
    fn settings_checks_take_any_text(origin in any::<String>(), base in any::<String>(), prefix in any::<String>()) {
        let candidate = settings::Settings {
            origin,
            api_base: Some(base),
            route_prefix: Some(prefix),
            ..settings::Settings::default()
        };
        prop_assert!(candidate.check().is_err());
    }

    #[test]
    fn any_issued_state_fits_wecom_and_verifies_once_bound(random in any::<[u8; state::RANDOM_BYTES]>(), path in "/[a-z0-9/?=&%]{0,40}") {
        let authenticator = authenticator();
        let Some(path) = return_path::sanitize(&path) else { return Ok(()) };
        let issued = state::issue(&authenticator, &path, wecom_auth::core::flow::LoginFlow::InClient, 1_790_000_000, &random);
        prop_assert!(issued.state.len() <= state::MAX_STATE);
        prop_assert!(issued.state.bytes().all(|b| b.is_ascii_alphanumeric()));
        let verified = state::verify(&authenticator, &issued.state, Some(&issued.pre_auth_cookie), 1_790_000_001);
        prop_assert_eq!(verified.map(|v| v.return_to), Ok(path));
    }
}
