//! Small URL helpers: query parsing, percent coding, the authority of an
//! absolute URL, appending to a redirect URI, and reading a callback Location.
//! Hand-written so the simulator needs no URL crate; lenient on bad input
//! (never panics), strict where WeCom is strict.

use std::fmt::Write as _;

/// The decoded pairs of a query string, in order. Lookups take the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%20y`; `+` is a space; pairs without `=` have an empty value.
    pub(crate) fn parse(raw: &str) -> Self {
        Self(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decodes (`+` as space). A malformed escape is kept literally;
/// bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// For an absolute `http://` or `https://` URL with a host: its authority
/// (`host[:port]`, lowercased, any userinfo dropped). `None` otherwise.
pub(crate) fn http_authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if host.is_empty() || host.contains([' ', '\\', '<', '>', '"']) {
        return None;
    }
    Some(authority.to_ascii_lowercase())
}

/// `url` with `params` appended to its query (`?` or `&`), before any fragment.
/// Values are percent-encoded.
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let mut out = base.to_owned();
    for (key, value) in params {
        let separator = if out.contains('?') {
            if out.ends_with('?') || out.ends_with('&') {
                ""
            } else {
                "&"
            }
        } else {
            "?"
        };
        out.push_str(separator);
        out.push_str(&percent_encode(key));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The path and query of `url` (absolute, or already a path), fragment dropped.
pub(crate) fn path_and_query(url: &str) -> String {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let path = match without_fragment.split_once("://") {
        Some((_, rest)) => match rest.find(['/', '?']) {
            Some(start) => &rest[start..],
            None => "/",
        },
        None => without_fragment,
    };
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The `code` and `state` WeCom put on a callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackParams {
    /// The one-time `code` (decoded).
    pub code: String,
    /// The `state` echoed back (decoded); empty when the login URL had none.
    pub state: String,
}

/// Pulls `code` and `state` out of a redirect `Location` (absolute or relative).
/// `None` without a non-empty `code`; a missing `state` reads as empty.
///
/// ```
/// use wecom_simulator::callback_params;
/// let p = callback_params("https://apps.example.com/cb?x=1&code=C0DE&state=S1").unwrap();
/// assert_eq!((p.code.as_str(), p.state.as_str()), ("C0DE", "S1"));
/// ```
pub fn callback_params(location: &str) -> Option<CallbackParams> {
    let without_fragment = location.split('#').next()?;
    let (_, raw_query) = without_fragment.split_once('?')?;
    let query = Query::parse(raw_query);
    let code = query.get("code").filter(|c| !c.is_empty())?.to_owned();
    let state = query.get("state").unwrap_or_default().to_owned();
    Some(CallbackParams { code, state })
}

/// WeCom's rule for `state`: `[A-Za-z0-9]`, at most 128 bytes (empty is fine).
pub(crate) fn valid_state(state: &str) -> bool {
    state.len() <= 128 && state.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_and_takes_the_first() {
        let q = Query::parse("a=1&b=x%20y+z&a=2&flag&redirect_uri=https%3A%2F%2Fh%2Fcb%3Fq%3D1");
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y z"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("redirect_uri"), Some("https://h/cb?q=1"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn decode_keeps_bad_escapes_and_never_panics() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%E5%BC%A0"), "张");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn encode_round_trips() {
        let raw = "https://a.example/cb?x=1&y=张 三#f";
        let encoded = percent_encode(raw);
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        );
        assert_eq!(percent_decode(&encoded), raw);
    }

    #[test]
    fn authority_of_http_urls_only() {
        assert_eq!(
            http_authority("https://Apps.Example.com/cb").as_deref(),
            Some("apps.example.com")
        );
        assert_eq!(
            http_authority("http://127.0.0.1:8080?x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            http_authority("https://user:pw@h.example:8443/").as_deref(),
            Some("h.example:8443")
        );
        assert_eq!(
            http_authority("http://[::1]:80/").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(http_authority("/relative/cb"), None);
        assert_eq!(http_authority("javascript://x/"), None);
        assert_eq!(http_authority("https:///nohost"), None);
        assert_eq!(http_authority("https://h:port/"), None);
    }

    #[test]
    fn append_respects_existing_query_and_fragment() {
        assert_eq!(
            append_query("https://h/cb", &[("code", "C"), ("state", "S")]),
            "https://h/cb?code=C&state=S"
        );
        assert_eq!(
            append_query("https://h/cb?x=1#top", &[("code", "C")]),
            "https://h/cb?x=1&code=C#top"
        );
        assert_eq!(
            append_query("https://h/cb?", &[("a", "b c")]),
            "https://h/cb?a=b%20c"
        );
    }

    #[test]
    fn path_and_query_of_urls() {
        assert_eq!(
            path_and_query(
                "https://open.weixin.qq.com/connect/oauth2/authorize?a=1#wechat_redirect"
            ),
            "/connect/oauth2/authorize?a=1"
        );
        assert_eq!(path_and_query("http://127.0.0.1:9?x=1"), "/?x=1");
        assert_eq!(path_and_query("/p?q"), "/p?q");
    }

    #[test]
    fn callback_params_of_a_location() {
        let p = callback_params("https://h/cb?next=%2F&code=abc&state=XYZ#frag").unwrap();
        assert_eq!(p.code, "abc");
        assert_eq!(p.state, "XYZ");
        assert_eq!(callback_params("/cb?code=abc").unwrap().state, "");
        assert_eq!(callback_params("/cb?state=abc"), None);
        assert_eq!(callback_params("/cb?code=&state=abc"), None);
        assert_eq!(callback_params("no query"), None);
    }

    #[test]
    fn state_rule() {
        assert!(valid_state(""));
        assert!(valid_state(&"a".repeat(128)));
        assert!(!valid_state(&"a".repeat(129)));
        assert!(!valid_state("a-b"));
        assert!(!valid_state("张"));
    }
}
