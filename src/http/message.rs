//! The HTTP types: a request fully read, the answer to send; reading
//! requests (headers, cookies, query, language, content negotiation) and
//! building responses with the protective headers every answer carries.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::form_urlencoded;

use crate::core::browser::{self, Language, MAX_USER_AGENT, truncate_at_char_boundary};
use crate::core::login::PendingRefresh;
use crate::core::settings::Authenticator;

/// Longest request body read (CSV imports); the WASI glue stops reading beyond it.
pub const MAX_BODY: usize = 1 << 20;
/// Longest path with query.
pub const MAX_TARGET: usize = 8 * 1024;
/// Most header fields, and most bytes in all of them together.
pub const MAX_HEADERS: usize = 128;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// An incoming HTTP request, fully read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// E.g. `/auth/wecom/callback?code=..&state=..`.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The WASI glue stopped reading the body at [`MAX_BODY`].
    pub body_truncated: bool,
}

/// The answer to send.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A line for the operator's log (stderr), for server-side failures.
    /// Never holds a secret.
    pub log: Option<String>,
    /// The audit line of this request (JSON, `audit.rs`), for stderr.
    pub audit: Option<String>,
    /// Work for after the answer is sent ([`crate::http::after_response`]).
    pub deferred: Option<Deferred>,
}

/// Work a request leaves for after its answer is sent: a returning member's
/// profile refresh (`ProfileRefresh::AfterAnswer`).
#[derive(Debug, Clone)]
pub struct Deferred {
    pub authenticator: Authenticator,
    pub refresh: PendingRefresh,
    /// The request's id, for the audit line of what follows.
    pub request_id: String,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name`, e.g. each `Set-Cookie`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Retry-After` of a 502 or 503 that names none (s): a store restarting,
/// WeCom slow or busy.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// What every answer carries: nothing is cached, sniffed, framed, or given a
/// referrer (the callback URL holds `code` and `state`); pages load nothing.
const PROTECTIVE_HEADERS: [(&str, &str); 5] = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
];

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json; charset=utf-8";

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last header called `name`: what the nearest host or proxy set
    /// when it appends to what the client sent (Spin's `spin-client-addr`,
    /// HAProxy's `X-Forwarded-For`).
    pub fn last_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rfind(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of cookie `name`, across all `Cookie` headers, in order
    /// (a browser may send two, e.g. a host-only and a domain cookie). By
    /// hand: the `cookie` crate would bring a date library into the component
    /// for a split on `;` and `=` (property-tested in `tests/properties.rs`).
    pub fn cookies<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(move |pair| {
                let (n, v) = pair.trim().split_once('=')?;
                (n.trim() == name).then(|| v.trim().trim_matches('"'))
            })
            .take(8)
    }

    pub fn cookie<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.cookies(name).next()
    }

    /// The User-Agent, cut to what the core judges.
    pub fn user_agent(&self) -> &str {
        truncate_at_char_boundary(self.header("user-agent").unwrap_or(""), MAX_USER_AGENT)
    }

    /// The path (before `?`) and the query (after it, if any).
    pub fn split_target(&self) -> (&str, Option<&str>) {
        let target = self.path_and_query.split('#').next().unwrap_or_default();
        match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        }
    }

    /// Whether the client asked for JSON rather than HTML (`Accept`).
    pub fn prefers_json(&self) -> bool {
        let Some(accept) = self.header("accept") else {
            return false;
        };
        let (mut json, mut html) = (0, 0);
        for (media, q) in weighted(accept) {
            if media.eq_ignore_ascii_case("application/json") {
                json = json.max(q);
            } else if media.eq_ignore_ascii_case("text/html") {
                html = html.max(q);
            }
        }
        json > 0 && json > html
    }
}

/// Query (or form) parameters.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        Params(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .take(64)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// `a;q=0.5, b` → (a, 500), (b, 1000); at most 32 entries.
fn weighted(header: &str) -> impl Iterator<Item = (&str, u16)> {
    header.split(',').take(32).filter_map(|item| {
        let mut parts = item.split(';');
        let value = parts.next()?.trim();
        if value.is_empty() {
            return None;
        }
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1000, quality);
        Some((value, q))
    })
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths; anything else is
/// 0. Exact, with no float rounding (property-tested in
/// `tests/properties.rs`).
fn quality(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => thousandths,
        "1" => 1000,
        _ => 0,
    }
}

/// The language of pages: `?lang=`, else the WeCom (or WeChat) UA's
/// `Language/` hint, else `Accept-Language` (`zh*` ⇒ zh, else en). The flag
/// says whether the request named one at all.
pub fn language(request: &Request, params: &Params) -> (Language, bool) {
    if let Some(lang) = params.get("lang").and_then(browser::parse_language_tag) {
        return (lang, true);
    }
    if let Some(lang) = browser::detect(request.user_agent()).language {
        return (lang, true);
    }
    let Some(header) = request.header("accept-language") else {
        return (Language::En, false);
    };
    let mut best: Option<(&str, u16)> = None;
    for (tag, q) in weighted(header) {
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((tag, q));
        }
    }
    match best {
        // By bytes: a tag is client text, and `zé` has no char boundary at 2.
        Some((tag, _))
            if tag
                .as_bytes()
                .get(..2)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"zh")) =>
        {
            (Language::Zh, true)
        }
        Some(_) => (Language::En, true),
        None => (Language::En, false),
    }
}

/// Bytes of identity header values that get percent-encoded: controls,
/// non-ASCII (UTF-8 bytes), `%` itself, and `+` (form decoders read it as a
/// blank), so decoding is unambiguous with any URL decoder.
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b'%').add(b'+');

/// An identity header value: printable ASCII as is but `%` and `+`, every
/// other byte percent-encoded UTF-8 (`张三` → `%E5%BC%A0%E4%B8%89`,
/// `a+b@x.cn` → `a%2Bb@x.cn`). Any URL decoder gets the value back: RFC 3986
/// percent-decoding, and form decoding too (which reads `+` as a blank).
pub fn identity_header_value(value: &str) -> String {
    utf8_percent_encode(value, HEADER_VALUE).to_string()
}

/// [`HEADER_VALUE`] and `,`, which separates the items of a list.
const LIST_ITEM: &AsciiSet = &HEADER_VALUE.add(b',');

/// An identity header holding a list (the groups): each item encoded as
/// [`identity_header_value`] and its commas too, joined by `,`
/// (oauth2-proxy's `X-Auth-Request-Groups`, Authelia's `Remote-Groups`).
pub fn identity_list_value<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let encoded: Vec<String> = items
        .into_iter()
        .map(|item| utf8_percent_encode(item, LIST_ITEM).to_string())
        .collect();
    encoded.join(",")
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            ..Response::default()
        }
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn html(status: u16, body: String) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), HTML.into())],
            body: body.into_bytes(),
            log: None,
            audit: None,
            deferred: None,
        }
    }

    /// `value` as a JSON body. Should serde_json refuse it (a map keyed by
    /// other than strings, which no answer has), a 500 says so.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Self {
        let (status, body) = match serde_json::to_vec(value) {
            Ok(body) => (status, body),
            Err(_) => (
                500,
                br#"{"error":{"category":"internal","status":500,"message":"internal error","admin_hint":null}}"#
                    .to_vec(),
            ),
        };
        Response {
            status,
            headers: vec![("content-type".into(), JSON.into())],
            body,
            log: None,
            audit: None,
            deferred: None,
        }
    }

    /// A redirect; `location` is a URL this component built or a sanitized path.
    pub fn redirect(status: u16, location: &str) -> Self {
        Response::new(status).with_header("location", location)
    }
}

/// Adds the protective headers (and `Retry-After` to a 502 or 503 without
/// one) and drops the body of HEAD answers.
pub fn finish(response: &mut Response, request: &Request) {
    for (name, value) in PROTECTIVE_HEADERS {
        if response.header(name).is_none() {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    // The store or WeCom did not answer (or WeCom was busy): a client, a
    // proxy or a member may try again shortly (RFC 9110 §10.2.3), and
    // nothing was half done.
    if matches!(response.status, 502 | 503) && response.header("retry-after").is_none() {
        let seconds = RETRY_AFTER_SECONDS.to_string();
        response.headers.push(("retry-after".to_owned(), seconds));
    }
    if request.method.eq_ignore_ascii_case("HEAD") {
        response.body.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path_and_query: "/".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn cookies_are_found_across_headers_and_pairs() {
        let r = request(&[
            ("Cookie", "a=1; wecom_auth_session=first"),
            ("cookie", "wecom_auth_session=second;b=2"),
        ]);
        assert_eq!(
            r.cookies("wecom_auth_session").collect::<Vec<_>>(),
            ["first", "second"]
        );
        assert_eq!(r.cookie("b"), Some("2"));
        assert_eq!(r.cookie("wecom_auth"), None);
    }

    #[test]
    fn accept_decides_json_or_html() {
        for (accept, json) in [
            ("application/json", true),
            ("text/html,application/xhtml+xml,*/*;q=0.8", false),
            ("*/*", false),
            ("application/json;q=0.9, text/html", false),
            ("text/html;q=0.5, application/json", true),
            ("application/json;q=0", false),
        ] {
            assert_eq!(
                request(&[("Accept", accept)]).prefers_json(),
                json,
                "{accept}"
            );
        }
        assert!(!request(&[]).prefers_json());
    }

    #[test]
    fn language_comes_from_the_query_the_wecom_ua_or_accept_language() {
        let none = Params::parse(None);
        let zh = |h: &[(&str, &str)]| language(&request(h), &none).0 == Language::Zh;
        assert!(zh(&[("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")]));
        assert!(zh(&[("Accept-Language", "en;q=0.5, zh-TW")]));
        assert!(!zh(&[("Accept-Language", "en-US,en;q=0.9")]));
        assert!(!zh(&[("Accept-Language", "fr")]));
        assert!(!zh(&[]));
        // Inside WeCom the UA's hint wins.
        assert!(!zh(&[
            ("Accept-Language", "zh-CN"),
            (
                "User-Agent",
                "Mozilla/5.0 (iPhone) Mobile wxwork/4.1 MicroMessenger/7 Language/en"
            ),
        ]));
        let lang = Params::parse(Some("lang=zh"));
        assert_eq!(language(&request(&[]), &lang), (Language::Zh, true));
    }

    /// A tag whose second character is not ASCII (or an invalid byte read as
    /// U+FFFD) once made the component panic slicing it at byte 2.
    #[test]
    fn language_tags_of_any_text_are_judged_without_panicking() {
        let none = Params::parse(None);
        for header in ["zé", "z\u{fffd}", "é", "中文", "zh\u{fffd}", "ž"] {
            let (lang, named) = language(&request(&[("Accept-Language", header)]), &none);
            assert_eq!(lang == Language::Zh, header.starts_with("zh"), "{header}");
            assert!(named, "{header}");
        }
    }

    #[test]
    fn qvalues_parse_by_hand() {
        for (text, q) in [
            ("1", 1000),
            ("1.000", 1000),
            ("0.5", 500),
            (" 0.05 ", 50),
            ("0", 0),
            ("0.1234", 0),
            ("2", 0),
            ("nan", 0),
            ("-1", 0),
            ("0.", 0),
            ("", 0),
        ] {
            assert_eq!(quality(text), q, "{text:?}");
        }
    }

    #[test]
    fn identity_values_encode_non_ascii_and_percent() {
        assert_eq!(identity_header_value("张三"), "%E5%BC%A0%E4%B8%89");
        assert_eq!(identity_header_value("Li Si 100%"), "Li Si 100%25");
        assert_eq!(identity_header_value("a\r\nX-Evil: 1"), "a%0D%0AX-Evil: 1");
    }
}
