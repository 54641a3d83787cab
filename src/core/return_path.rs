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
    // and read a backslash as a slash: refuse them outright (controls and
    // backslashes anywhere, a blank right after the first slash). Other blanks
    // are read as written: `/docs/Q3 report.pdf`, pasted unencoded, is one
    // path, and leaves here as `/docs/Q3%20report.pdf`.
    if !is_local_path(candidate) {
        return None;
    }
    if !local_on_every_layer(candidate) {
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
    // Dot segments collapsed can bring an encoded `//` to the front
    // (`/x/../%2F%2Fevil.com`): every layer of the result is checked too.
    local_on_every_layer(&path).then_some(path)
}

/// The same check on every decoding layer: a later hop (a framework that
/// decodes before redirecting) must not find `//`, `/\` or a control either.
fn local_on_every_layer(path: &str) -> bool {
    let mut layer = path.to_owned();
    for _ in 0..4 {
        if !is_local_path(&layer) {
            return false;
        }
        let decoded = percent_decode_str(&layer).decode_utf8_lossy().into_owned();
        if decoded == layer {
            return true;
        }
        layer = decoded;
    }
    false
}

/// Where a login of an authenticator may land.
#[derive(Debug, Clone, Copy)]
pub struct Landing<'a> {
    /// The component's own routes: never a landing.
    pub route_prefix: &'a str,
    /// Where a login lands when the return path is missing or refused.
    pub redirect_path: &'a str,
    /// `scheme://host[:port]` of the app.
    pub origin: &'a str,
    /// Sibling hosts an absolute return URL may name (`crm.example.com`,
    /// `*.example.com`: subdomains only); empty: relative paths only.
    pub return_hosts: &'a [String],
}

impl Landing<'_> {
    /// Where a login lands: `candidate` when it is a safe path (see
    /// [`sanitize`]) that is not one of the component's own routes, or an
    /// absolute URL on an allowed sibling host (same scheme, default port,
    /// no user info, its path as safe as a relative one); else
    /// `redirect_path`. Landing on `{route_prefix}/logout` would log the
    /// member straight out again, on the callback or login it would start over.
    pub fn resolve(&self, candidate: Option<&str>) -> String {
        candidate
            .and_then(|candidate| {
                if is_absolute(candidate) {
                    self.sibling(candidate)
                } else {
                    sanitize(candidate).filter(|path| !is_own_route(path, self.route_prefix))
                }
            })
            .unwrap_or_else(|| self.redirect_path.to_owned())
    }

    fn sibling(&self, candidate: &str) -> Option<String> {
        // Blanks and controls a browser would drop or fold are refused here too.
        if candidate
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return None;
        }
        let url = Url::parse(candidate).ok()?;
        let origin = Url::parse(self.origin).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let same_scheme = url.scheme() == origin.scheme();
        let plain = url.username().is_empty() && url.password().is_none() && url.port().is_none();
        if !same_scheme || !plain {
            return None;
        }
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        if let Some(fragment) = url.fragment() {
            path.push('#');
            path.push_str(fragment);
        }
        let path = sanitize(&path)?;
        if origin.host_str() == Some(host.as_str()) {
            return (!is_own_route(&path, self.route_prefix)).then_some(path);
        }
        let allowed = self
            .return_hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => *pattern == host,
            });
        allowed.then(|| format!("{}://{host}{path}", url.scheme()))
    }
}

/// Whether `candidate` is written as an absolute http(s) URL.
fn is_absolute(candidate: &str) -> bool {
    candidate.get(..8).is_some_and(|head| {
        let head = head.to_ascii_lowercase();
        head.starts_with("http://") || head.starts_with("https://")
    })
}

/// Whether a sanitized path is the route prefix or under it, as the router
/// would see it once any proxy decoded it.
fn is_own_route(path: &str, route_prefix: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    [path, &decoded].iter().any(|path| {
        path.strip_prefix(route_prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
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
            // Pasted unencoded: read as written.
            ("/docs/Q3 report.pdf", "/docs/Q3%20report.pdf"),
            (
                "/docs/Q3 report.pdf?v=2 final#p 3",
                "/docs/Q3%20report.pdf?v=2%20final#p%203",
            ),
            (
                "/文档/季度 报告",
                "/%E6%96%87%E6%A1%A3/%E5%AD%A3%E5%BA%A6%20%E6%8A%A5%E5%91%8A",
            ),
            ("/a\u{a0}b", "/a%C2%A0b"),
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
            "/ /evil.com",
            "/\u{a0}/evil.com",
            // Encoded slashes brought to the front by collapsing dot segments.
            "/x/../%2F%2Fevil.com",
            "/x/../%252F%252Fevil.com",
            "/%2e%2e/%EF%BC%8Fevil.com",
            "/x/../%E3%80%80/evil.com",
            "/a\rb",
            "/a\nb",
        ] {
            assert_eq!(sanitize(payload), None, "{payload:?}");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(MAX_RETURN_PATH))), None);
    }

    fn landing<'a>(return_hosts: &'a [String]) -> Landing<'a> {
        Landing {
            route_prefix: "/auth/wecom",
            redirect_path: "/home",
            origin: "https://apps.example.com",
            return_hosts,
        }
    }

    fn for_login(candidate: Option<&str>, route_prefix: &str, redirect_path: &str) -> String {
        Landing {
            route_prefix,
            redirect_path,
            origin: "https://apps.example.com",
            return_hosts: &[],
        }
        .resolve(candidate)
    }

    #[test]
    fn sibling_hosts_on_the_allow_list_are_landings_and_nothing_else_is() {
        let hosts = [
            "crm.example.com".to_owned(),
            "*.tools.example.com".to_owned(),
        ];
        let l = landing(&hosts);
        for (candidate, lands) in [
            (
                "https://crm.example.com/deals?id=3#x",
                "https://crm.example.com/deals?id=3#x",
            ),
            (
                "https://CRM.example.com/a%20b",
                "https://crm.example.com/a%20b",
            ),
            (
                "https://wiki.tools.example.com/",
                "https://wiki.tools.example.com/",
            ),
            ("https://apps.example.com/reports", "/reports"),
            ("https://apps.example.com/auth/wecom/logout", "/home"),
        ] {
            assert_eq!(l.resolve(Some(candidate)), lands, "{candidate}");
        }
        let payloads: Vec<String> = serde_json::from_str(PAYLOADS).unwrap();
        let sibling_tricks = [
            "https://evil.com/",
            "https://crm.example.com.evil.com/",
            "https://evil.com\\@crm.example.com/",
            "https://crm.example.com@evil.com/",
            "https://user:pw@crm.example.com/",
            "https://crm.example.com:8443/",
            "http://crm.example.com/",
            "https://crm.example.com./",
            "https://tools.example.com/",
            "https://.tools.example.com/",
            "https://evil.com#.tools.example.com",
            "https://crm.example.com//evil.com",
            "https://crm.example.com/%2F%2Fevil.com",
            "https://crm.example.com/\t/evil.com",
            "https:crm.example.com",
            "https://xn--crm-example-com.evil.com/",
        ];
        for payload in payloads.iter().map(String::as_str).chain(sibling_tricks) {
            let landed = l.resolve(Some(payload));
            let ok = landed == "/home"
                || (landed.starts_with('/') && !landed.starts_with("//"))
                || landed.starts_with("https://crm.example.com/") && !landed[24..].starts_with('/')
                || landed.starts_with("https://wiki.tools.example.com/");
            assert!(ok, "{payload:?} landed on {landed:?}");
        }
        for refused in &sibling_tricks[..12] {
            assert_eq!(l.resolve(Some(refused)), "/home", "{refused:?}");
        }
        // Without an allow-list, absolute URLs never land elsewhere.
        assert_eq!(
            landing(&[]).resolve(Some("https://crm.example.com/x")),
            "/home"
        );
    }

    #[test]
    fn a_login_never_returns_to_the_components_own_routes() {
        for own in [
            "/auth/wecom/logout",
            "/auth/wecom/logout/",
            "/auth/wecom/logout?return_to=/x",
            "/auth/wecom/callback?code=C&state=S",
            "/auth/wecom/login",
            "/auth/wecom/admin/users",
            "/auth/wecom",
            "/auth/wecom/",
            "/auth/wecom/%6Cogout",
            "/x/../auth/wecom/logout",
            "/auth/wecom/me",
        ] {
            assert_eq!(
                for_login(Some(own), "/auth/wecom", "/home"),
                "/home",
                "{own:?}"
            );
        }
        for other in [
            "/auth/wecomx",
            "/auth/wecom-docs/a",
            "/reports?next=/auth/wecom/logout",
        ] {
            assert_eq!(
                for_login(Some(other), "/auth/wecom", "/home"),
                other,
                "{other:?}"
            );
        }
        assert_eq!(for_login(None, "/auth/wecom", "/home"), "/home");
        assert_eq!(
            for_login(Some("//evil.com"), "/auth/wecom", "/home"),
            "/home"
        );
    }
}
