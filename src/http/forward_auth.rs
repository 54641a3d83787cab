//! `{prefix}/verify`: forward auth, one contract for every proxy.
//!
//! | proxy | how it asks | what it passes back |
//! |---|---|---|
//! | Nginx `auth_request` | `GET /verify`, `X-Original-URI: $request_uri` (recipe) | 2xx: the request goes on, with the identity headers it copies (`auth_request_set`); 401: `error_page 401` redirects to `X-WeCom-Login` |
//! | Traefik `forwardAuth` | the original method on `/verify?redirect=1`, `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` | 2xx: `authResponseHeaders`; anything else goes to the browser as is (so a 302 to log in) |
//! | Caddy `forward_auth` | `GET /verify?redirect=1`, `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto` | 2xx: `copy_headers`; anything else to the client |
//! | Envoy / Istio / Gateway API `ExternalAuth` (HTTP service) | the original method on `/verify` + the original path (path-prefix mode: `/verify/app/report?id=7`), `X-Envoy-Original-Path` when rewritten | 2xx: `allowed_upstream_headers`; anything else to the client |
//! | Nginx ingress | `X-Original-URL: https://host/path?q`, `X-Original-Method` | as Nginx |
//!
//! Answers: **200** with the identity headers for a live session; without
//! one, **401** (JSON) — for a page navigation with `X-WeCom-Login`, the
//! login path that returns to the original request, or, when the proxy hands
//! the answer to the browser (`?redirect=1`), a **302** to it. A script
//! (`fetch`/XHR), which cannot follow a redirect to a login page, always
//! gets the bare 401.
//! The original request's path comes, first found, from `X-Forwarded-Uri`,
//! `X-Original-URI`, `X-Original-URL`, `X-Envoy-Original-Path`, the path
//! after `/verify`; `X-Forwarded-Prefix` (a prefix the proxy stripped) goes
//! in front.

use super::config::{FrontConfig, HeaderConvention, is_under};
use super::message::{self, Request, Response};
use crate::core::access::{Group, GroupKind};
use crate::core::login::Session;
use crate::core::return_path;
use crate::core::settings::Authenticator;

/// On a 401 to a page navigation: the login path that returns to the
/// original request (Nginx: `auth_request_set $wecom_login
/// $upstream_http_x_wecom_login`); absent for scripts.
pub const LOGIN_HEADER: &str = "x-wecom-login";

/// The original request's path and query, as the member's browser will
/// want to come back to it (not yet sanitized).
pub fn original_path(request: &Request, after_verify: &str) -> Option<String> {
    let path = ["x-forwarded-uri", "x-original-uri"]
        .into_iter()
        .find_map(|name| request.header(name))
        .map(str::to_owned)
        .or_else(|| request.header("x-original-url").map(path_of_url))
        .or_else(|| request.header("x-envoy-original-path").map(str::to_owned))
        .or_else(|| {
            // Path-prefix mode: the query of this request is the original's.
            let (_, query) = request.split_target();
            after_verify.starts_with('/').then(|| match query {
                Some(query) => format!("{after_verify}?{query}"),
                None => after_verify.to_owned(),
            })
        })?;
    let prefix = request
        .header("x-forwarded-prefix")
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("");
    Some(format!("{prefix}{path}"))
}

/// `https://host/path?q` → `/path?q`; a path stays as it is.
fn path_of_url(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(at) => rest[at..].to_owned(),
            None => "/".to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The original request's method: `X-Forwarded-Method` (Traefik, Caddy),
/// `X-Original-Method` (Nginx ingress), else the method of this request
/// (Envoy sends the original one).
pub fn original_method(request: &Request) -> String {
    ["x-forwarded-method", "x-original-method"]
        .into_iter()
        .find_map(|name| request.header(name))
        .unwrap_or(&request.method)
        .trim()
        .to_ascii_uppercase()
}

/// Whether the original request may pass without a session: a public path
/// (and method), or a CORS preflight when those are let through. The path is
/// matched after dot segments are resolved (`/static/../admin` is `/admin`)
/// and segment-wise; an encoded slash never matches one.
pub fn is_public(request: &Request, after_verify: &str, config: &FrontConfig) -> bool {
    let method = original_method(request);
    if config.allow_preflight
        && method == "OPTIONS"
        && request.header("access-control-request-method").is_some()
    {
        return true;
    }
    if config.public_paths.is_empty() {
        return false;
    }
    let Some(path) = return_path(request, after_verify) else {
        return false;
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    config.public_paths.iter().any(|public| {
        public.method.as_deref().is_none_or(|m| m == method) && is_under(path, &public.prefix)
    })
}

/// A script (`fetch`, XHR, an API client) rather than a page navigation: it
/// cannot follow a redirect to a login page and needs the 401.
pub fn is_script(request: &Request) -> bool {
    let fetch_mode = request.header("sec-fetch-mode");
    request
        .header("x-requested-with")
        .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"))
        || fetch_mode.is_some_and(|mode| !mode.eq_ignore_ascii_case("navigate"))
        || request.prefers_json()
}

/// The return path for the login of a refused request: the original
/// request's path when it is a safe one.
pub fn return_path(request: &Request, after_verify: &str) -> Option<String> {
    original_path(request, after_verify).and_then(|path| return_path::sanitize(&path))
}

/// Where the login of a refused request should return: the original
/// request's path, or, for a sibling host (`X-Forwarded-Host` other than the
/// app's), its absolute URL; the login checks it against `return_hosts`.
pub fn return_target(
    request: &Request,
    after_verify: &str,
    authenticator: &Authenticator,
) -> Option<String> {
    let path = return_path(request, after_verify)?;
    match request.header("x-forwarded-host").map(str::trim) {
        Some(host)
            if !host.eq_ignore_ascii_case(authenticator.origin_host())
                && !host.contains(['/', '@', '\\']) =>
        {
            let scheme = request
                .header("x-forwarded-proto")
                .filter(|p| matches!(*p, "http" | "https"))
                .unwrap_or(if authenticator.is_https() {
                    "https"
                } else {
                    "http"
                });
            Some(format!("{scheme}://{host}{path}"))
        }
        _ => Some(path),
    }
}

/// The member's groups as the group headers list them: `dept:<id>`,
/// `tag:<id>`, and `tag-name:<name>` where WeCom gives the name.
pub fn group_names(groups: &[Group]) -> Vec<String> {
    let mut names = Vec::with_capacity(groups.len() * 2);
    for group in groups {
        names.push(group.key());
        if let (GroupKind::Tag, Some(name)) = (group.kind, &group.name) {
            names.push(format!("tag-name:{name}"));
        }
    }
    names
}

/// 200 with the identity headers of `session`, in each convention asked for.
/// Values are percent-encoded UTF-8 ([`message::identity_header_value`]);
/// the groups (when the `groups` setting asks for some) a comma-separated
/// list of such values ([`message::identity_list_value`]).
pub fn granted(session: &Session, conventions: &[HeaderConvention]) -> Response {
    let claims = &session.verified.claims;
    let user = &session.user;
    let names = group_names(&session.groups);
    let groups =
        (!names.is_empty()).then(|| message::identity_list_value(names.iter().map(String::as_str)));
    let mut response = Response::new(200);
    let mut add = |name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            response
                .headers
                .push((name.to_owned(), message::identity_header_value(value)));
        }
    };
    for convention in conventions {
        match convention {
            HeaderConvention::Wecom => {
                add("x-wecom-userid", Some(&claims.wecom_userid));
                add("x-wecom-authenticator", Some(&claims.authenticator));
                add("x-user-id", Some(&user.id));
                add("x-user-name", Some(&user.name));
                add("x-user-email", user.email.as_deref());
                add("x-user-mobile", user.mobile.as_deref());
            }
            HeaderConvention::Oauth2Proxy => {
                add("x-auth-request-user", Some(&user.id));
                add(
                    "x-auth-request-preferred-username",
                    Some(&claims.wecom_userid),
                );
                add("x-auth-request-email", user.email.as_deref());
            }
            HeaderConvention::Remote => {
                add("remote-user", Some(&user.id));
                add("remote-name", Some(&user.name));
                add("remote-email", user.email.as_deref());
            }
        }
    }
    if let Some(groups) = groups {
        for convention in conventions {
            let name = match convention {
                HeaderConvention::Wecom => "x-wecom-groups",
                HeaderConvention::Oauth2Proxy => "x-auth-request-groups",
                HeaderConvention::Remote => "remote-groups",
            };
            response.headers.push((name.to_owned(), groups.clone()));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path_and_query: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn the_original_path_comes_from_whatever_the_proxy_sends() {
        for (target, after, headers, expected) in [
            (
                "/auth/wecom/verify/app/report?id=7",
                "/app/report",
                vec![],
                "/app/report?id=7",
            ),
            (
                "/auth/wecom/verify",
                "",
                vec![("X-Forwarded-Uri", "/a?b=1&c=2")],
                "/a?b=1&c=2",
            ),
            (
                "/auth/wecom/verify",
                "",
                vec![("X-Original-URI", "/n?x=%2F")],
                "/n?x=%2F",
            ),
            (
                "/auth/wecom/verify",
                "",
                vec![("X-Original-URL", "https://apps.example.com/i/j?k=1")],
                "/i/j?k=1",
            ),
            (
                "/auth/wecom/verify",
                "",
                vec![("X-Envoy-Original-Path", "/e?f=1")],
                "/e?f=1",
            ),
            (
                "/auth/wecom/verify",
                "",
                vec![
                    ("X-Forwarded-Prefix", "/crm/"),
                    ("X-Forwarded-Uri", "/deals?id=3"),
                ],
                "/crm/deals?id=3",
            ),
        ] {
            let got = original_path(&request(target, &headers), after);
            assert_eq!(got.as_deref(), Some(expected), "{headers:?}");
        }
        assert_eq!(original_path(&request("/auth/wecom/verify", &[]), ""), None);
        // A prefix that would make the path leave the origin is ignored.
        let sneaky = request(
            "/auth/wecom/verify",
            &[
                ("X-Forwarded-Prefix", "//evil.com"),
                ("X-Forwarded-Uri", "/a"),
            ],
        );
        assert_eq!(return_path(&sneaky, "").as_deref(), Some("/a"));
        let absolute = request("/v", &[("X-Forwarded-Uri", "https://evil.com/x")]);
        assert_eq!(return_path(&absolute, ""), None);
    }

    #[test]
    fn scripts_are_told_apart_from_page_navigations() {
        for script in [
            vec![("X-Requested-With", "XMLHttpRequest")],
            vec![("Sec-Fetch-Mode", "cors")],
            vec![("Sec-Fetch-Mode", "no-cors")],
            vec![("Accept", "application/json")],
        ] {
            assert!(is_script(&request("/v", &script)), "{script:?}");
        }
        for page in [
            vec![],
            vec![
                ("Sec-Fetch-Mode", "navigate"),
                ("Accept", "text/html,*/*;q=0.8"),
            ],
            vec![("Accept", "*/*")],
        ] {
            assert!(!is_script(&request("/v", &page)), "{page:?}");
        }
    }
}
