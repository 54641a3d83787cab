//! Return paths: where the browser goes after login. Only same-origin relative
//! paths survive; everything else is refused, so there is no open redirect.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

/// Longer return paths are refused.
pub const MAX_RETURN_PATH: usize = 2048;

/// Non-ASCII is percent-encoded rather than refused (`/文档` is a fine path);
/// controls and blanks never get this far.
const NON_ASCII: &AsciiSet = CONTROLS;

/// Returns the path to redirect to, or `None` when `candidate` could leave the
/// origin (or is not a plain path). The result always starts with exactly one `/`
/// and holds only visible ASCII.
pub fn sanitize(candidate: &str) -> Option<String> {
    if candidate.is_empty() || candidate.len() > MAX_RETURN_PATH {
        return None;
    }
    // Browsers drop tab/CR/LF inside URLs (`/\t/evil.com` becomes `//evil.com`)
    // and read a backslash as a slash: refuse them, and blanks, outright.
    if candidate.chars().any(char::is_whitespace) || !is_local_path(candidate) {
        return None;
    }
    // The same check on every decoding layer: a later hop (a framework that
    // decodes before redirecting) must not find `//`, `/\` or a control either.
    let mut layer = candidate.to_owned();
    let mut settled = false;
    for _ in 0..4 {
        let decoded = percent_decode_str(&layer).decode_utf8_lossy().into_owned();
        if decoded == layer {
            settled = true;
            break;
        }
        if !is_local_path(&decoded) {
            return None;
        }
        layer = decoded;
    }
    if !settled {
        return None;
    }
    let encoded = utf8_percent_encode(candidate, NON_ASCII).to_string();
    // Resolve against a placeholder origin: dot segments collapse, and anything
    // that would change the origin shows up as a different host.
    let base = Url::parse("https://return-path.invalid/").ok()?;
    let resolved = base.join(&encoded).ok()?;
    if resolved.origin() != base.origin() || resolved.cannot_be_a_base() {
        return None;
    }
    let mut path = resolved.path().to_owned();
    if let Some(query) = resolved.query() {
        path.push('?');
        path.push_str(query);
    }
    if let Some(fragment) = resolved.fragment() {
        path.push('#');
        path.push_str(fragment);
    }
    is_local_path(&path).then_some(path)
}

/// `/` not followed by a second slash (of any kind), backslash or blank, and no
/// control or backslash anywhere.
fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some(c) if c == '/' || c.is_whitespace() || is_unicode_slash(c))
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

/// Characters that some URL parsers or renderers fold into `/` or `\`.
fn is_unicode_slash(c: char) -> bool {
    matches!(
        c,
        '\u{2044}' | '\u{2215}' | '\u{FF0F}' | '\u{29F8}' | '\u{FE68}' | '\u{FF3C}' | '\u{2216}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open-redirect payloads (the project's own corpus, shared with host-test).
    const PAYLOADS: &str = include_str!("../../testdata/open-redirect-payloads.json");

    /// An oracle independent of `sanitize`: after a browser resolves `path`
    /// against the app, is it still on the app's origin?
    fn stays_on_origin(path: &str) -> bool {
        let app = Url::parse("https://app.example.com/some/page").unwrap();
        path.starts_with('/')
            && !path.starts_with("//")
            && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
            && app.join(path).is_ok_and(|u| u.origin() == app.origin())
    }

    #[test]
    fn every_open_redirect_payload_is_refused_or_made_safe() {
        let payloads: Vec<String> = serde_json::from_str(PAYLOADS).unwrap();
        assert!(payloads.len() >= 30);
        for payload in &payloads {
            if let Some(safe) = sanitize(payload) {
                assert!(stays_on_origin(&safe), "{payload:?} became {safe:?}");
            }
        }
    }

    #[test]
    fn ordinary_paths_survive_in_their_plain_form() {
        for (input, expected) in [
            ("/", "/"),
            ("/dashboard", "/dashboard"),
            ("/a/b?x=1&y=%2F#frag", "/a/b?x=1&y=%2F#frag"),
            ("/a/../b", "/b"),
            ("/@evil.com", "/@evil.com"),
            ("/文档", "/%E6%96%87%E6%A1%A3"),
            ("/search?q=a%20b", "/search?q=a%20b"),
        ] {
            assert_eq!(sanitize(input).as_deref(), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn the_classics_are_refused_outright() {
        for payload in [
            "//evil.com",
            "/\\evil.com",
            "/%2F%2Fevil.com",
            "/%5Cevil",
            "/\t/evil.com",
            "javascript:alert(1)",
            "https://evil.com",
            "/\u{FF0F}evil.com",
            "/%252F%252Fevil.com",
            "/a/../..//evil.com",
        ] {
            assert_eq!(sanitize(payload), None, "{payload:?}");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(MAX_RETURN_PATH))), None);
    }
}
