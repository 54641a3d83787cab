//! Properties of the pure core over generated inputs: no open redirect from any
//! mix of the characters redirect tricks are made of, and no panic on any text.

use proptest::prelude::*;
use url::Url;
use wecom_auth::core::{browser, return_path, settings, state};
use wecom_auth::http::Request;

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
    wecom_auth::example::settings("corp").check().unwrap()
}

/// A `q` parameter in thousandths, spelled as RFC 9110 allows (`0.5`, `1.000`).
fn qvalue() -> impl Strategy<Value = (u16, String)> {
    (0u16..=1000, 0usize..=3).prop_map(|(thousandths, digits)| {
        let text = match thousandths {
            1000 => format!("1.{}", "0".repeat(digits)),
            _ if digits == 0 => "0".to_owned(),
            _ => format!("0.{:03}", thousandths)[..2 + digits].to_owned(),
        };
        // What the spelling means: `0.25` with 1 digit reads `0.2`.
        let meant = match (thousandths, digits) {
            (1000, _) => 1000,
            (_, 0) => 0,
            (t, d) => t / 10u16.pow(3 - d as u32) * 10u16.pow(3 - d as u32),
        };
        (meant, text)
    })
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
    fn any_issued_state_fits_wecom_and_verifies_once_bound(
        random in any::<[u8; state::RANDOM_BYTES]>(),
        path in "/[a-z0-9/?=&%!. ]{0,40}",
        in_flight in "[0-9a-f!.%/a-z]{0,120}",
    ) {
        let authenticator = authenticator();
        let Some(path) = return_path::sanitize(&path) else { return Ok(()) };
        let attempt = state::Attempt {
            return_to: &path,
            flow: wecom_auth::core::flow::LoginFlow::InClient,
            scope: wecom_auth::core::flow::InClientScope::Base,
            restarted: false,
            in_flight: Some(&in_flight),
        };
        let issued = state::issue(&authenticator, &attempt, 1_790_000_000, &random);
        prop_assert!(issued.state.len() <= state::MAX_STATE);
        prop_assert!(issued.state.bytes().all(|b| b.is_ascii_alphanumeric()));
        prop_assert!(issued.pre_auth_cookie.bytes().all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b)));
        let verified = state::verify(&authenticator, &issued.state, Some(&issued.pre_auth_cookie), 1_790_000_001);
        prop_assert_eq!(verified.map(|v| v.return_to), Ok(path));
    }

    /// Our own `Accept` weights (kept by hand: float parsing would add
    /// kilobytes to the component): JSON wins exactly when its q beats HTML's.
    #[test]
    fn accept_weights_choose_json_exactly_when_it_outweighs_html(
        (json, json_text) in qvalue(),
        (html, html_text) in qvalue(),
        order in any::<bool>(),
    ) {
        let (first, second) = (
            format!("application/json;q={json_text}"),
            format!("text/html; q={html_text}"),
        );
        let accept = if order { format!("{first}, {second}") } else { format!("{second},{first}") };
        let request = Request {
            headers: vec![("Accept".into(), accept.clone())],
            ..Request::default()
        };
        prop_assert_eq!(request.prefers_json(), json > 0 && json > html, "{}", accept);
    }

    /// Our own cookie reading (kept by hand: the `cookie` crate brings a date
    /// library into the component): a cookie is found among any others, in
    /// any `Cookie` header, and never by a prefix or suffix of its name.
    #[test]
    fn a_cookie_is_read_whatever_surrounds_it(
        value in "[A-Za-z0-9._~-]{0,40}",
        others in prop::collection::vec(("[a-z_]{1,12}", "[A-Za-z0-9]{0,12}"), 0..6),
        at in 0usize..6,
        spaces in any::<bool>(),
    ) {
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(name, _)| name != "session")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        pairs.push("xsession=decoy; session_=decoy".to_owned());
        pairs.insert(at.min(pairs.len()), format!("session={value}"));
        let separator = if spaces { "; " } else { ";" };
        let request = Request {
            headers: vec![("cookie".into(), pairs.join(separator))],
            ..Request::default()
        };
        prop_assert_eq!(request.cookie("session"), Some(value.as_str()));
    }
}
