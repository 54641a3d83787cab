//! The component's outgoing HTTP in the gateway: only to allowed destinations
//! (as Spin's `allowed_outbound_hosts`), never recorded or logged beyond the
//! destination of a refused request (bodies and URLs carry tokens and codes).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::uri::Uri;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::client::OutboundClient;
use crate::log::LogFormat;
use crate::metrics::Metrics;
use crate::routes::{ResponseFuture, Routes, send_routed};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `example.com` (lowercase; IPv6 in brackets).
    Exact(String),
    /// `*.example.com`: any subdomain (not `example.com` itself); holds `.example.com`.
    Subdomains(String),
    /// `*`
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port given: 80 for http, 443 for https.
    SchemeDefault,
    Exact(u16),
    /// `:*`
    Any,
}

/// One allowed destination: `scheme://host[:port]`, where scheme may be `*`,
/// host `*` or `*.domain`, and port `*`; a path is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `http`, `https`, or `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl FromStr for AllowedHost {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let Some((scheme, rest)) = text.trim().split_once("://") else {
            bail!("expected scheme://host[:port], e.g. https://qyapi.weixin.qq.com");
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            known @ ("http" | "https") => Some(known.to_owned()),
            _ => bail!("the scheme must be http, https or *"),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            bail!("no user info in an allowed host");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').context("unclosed [ in the host")?;
            (format!("[{inside}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (authority.to_owned(), None),
            }
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                bail!("a wildcard host is *.domain");
            }
            HostPattern::Subdomains(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            bail!("the host is a name, an address, *.domain or *");
        } else {
            HostPattern::Exact(host)
        };
        let port = match port {
            None => PortPattern::SchemeDefault,
            Some("*") => PortPattern::Any,
            Some(port) => PortPattern::Exact(port.parse().context("the port is a number or *")?),
        };
        Ok(AllowedHost { scheme, host, port })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_deref().unwrap_or("*"))?;
        f.write_str("://")?;
        match &self.host {
            HostPattern::Exact(host) => f.write_str(host)?,
            HostPattern::Subdomains(domain) => write!(f, "*{domain}")?,
            HostPattern::Any => f.write_str("*")?,
        }
        match self.port {
            PortPattern::SchemeDefault => Ok(()),
            PortPattern::Exact(port) => write!(f, ":{port}"),
            PortPattern::Any => f.write_str(":*"),
        }
    }
}

impl AllowedHost {
    /// Exactly the origin of `url` (e.g. an `api_base` with a path).
    pub fn origin_of(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.trim().parse().context("not a URL")?;
        let scheme = uri.scheme_str().context("no scheme")?.to_ascii_lowercase();
        let Some(default) = default_port(&scheme) else {
            bail!("the scheme must be http or https");
        };
        let host = uri.host().context("no host")?.to_ascii_lowercase();
        Ok(AllowedHost {
            port: PortPattern::Exact(uri.port_u16().unwrap_or(default)),
            scheme: Some(scheme),
            host: HostPattern::Exact(host),
        })
    }

    /// Whether a request to `uri` may go out.
    pub fn allows(&self, uri: &Uri) -> bool {
        let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let Some(scheme_port) = default_port(&scheme) else {
            return false;
        };
        let Some(host) = uri.host().map(str::to_ascii_lowercase) else {
            return false;
        };
        let port = uri.port_u16().unwrap_or(scheme_port);
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Exact(exact) => *exact == host,
            HostPattern::Subdomains(domain) => host.ends_with(domain.as_str()),
            HostPattern::Any => true,
        };
        let port_ok = match self.port {
            PortPattern::SchemeDefault => port == scheme_port,
            PortPattern::Exact(exact) => port == exact,
            PortPattern::Any => true,
        };
        scheme_ok && host_ok && port_ok
    }
}

/// Whether any entry of `list` allows `uri`.
pub fn is_allowed(list: &[AllowedHost], uri: &Uri) -> bool {
    list.iter().any(|allowed| allowed.allows(uri))
}

/// `scheme://host:port` of `uri`, for logs: never its path or query.
pub fn destination(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.host().unwrap_or("?");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Timeouts of outgoing requests when the component sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway's `WasiHttpHooks`: allow-list, optional loopback routes,
/// real sending on pooled connections ([`OutboundClient`]); nothing recorded.
#[derive(Debug, Clone)]
pub struct GatewayHooks {
    allowed: Arc<[AllowedHost]>,
    routes: Routes,
    client: OutboundClient,
    metrics: Option<Arc<Metrics>>,
    log_format: LogFormat,
}

impl GatewayHooks {
    pub fn new(allowed: Vec<AllowedHost>, routes: Routes) -> Self {
        GatewayHooks {
            allowed: allowed.into(),
            routes,
            client: OutboundClient::shared(),
            metrics: None,
            log_format: LogFormat::Text,
        }
    }

    /// Counts every outbound call in `metrics` (by WeCom API and errcode).
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Writes refusals in this format.
    pub fn with_log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    pub fn allowed(&self) -> &[AllowedHost] {
        &self.allowed
    }
}

impl WasiHttpHooks for GatewayHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let allowed = is_allowed(&self.allowed, request.uri());
        let routes = self.routes.clone();
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        let log_format = self.log_format;
        Box::new(async move {
            if !allowed {
                eprintln!(
                    "{}",
                    log_format.error(&format!(
                        "outbound request refused (not in allowed_outbound_hosts): {}",
                        destination(request.uri())
                    ))
                );
                return Err(Error::HttpRequestDenied);
            }
            let mut options = options.unwrap_or_default();
            options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
            options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
            options
                .between_bytes_timeout
                .get_or_insert(BETWEEN_BYTES_TIMEOUT);
            // Draining the body first also keeps a guest that is still
            // writing it from seeing a reset.
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let path = parts.uri.path().to_owned();
            let started = Instant::now();
            let answer = send_routed(
                &client,
                &routes,
                http::Request::from_parts(parts, body),
                Some(options),
                true,
            )
            .await;
            let Some(metrics) = metrics else {
                return answer;
            };
            // WeCom answers are small JSON: read the errcode, then hand the
            // same bytes on.
            let (errcode, answer) = match answer {
                Ok((response, io)) => {
                    // The connection is driven while the body is read.
                    let io = tokio::spawn(Box::into_pin(io));
                    let (parts, body) = response.into_parts();
                    let bytes = http_body_util::Limited::new(body, MAX_READ_ANSWER)
                        .collect()
                        .await
                        .map_err(|e| match e.downcast::<Error>() {
                            Ok(e) => *e,
                            Err(_) => Error::HttpResponseBodySize(None),
                        })?
                        .to_bytes();
                    let errcode = errcode_label(parts.status, &bytes);
                    let response = http::Response::from_parts(parts, crate::routes::body(bytes));
                    let io: Box<dyn Future<Output = Result<(), Error>> + Send> =
                        Box::new(async move { io.await.unwrap_or(Ok(())) });
                    (errcode, Ok((response, io)))
                }
                Err(e) => ("transport".to_owned(), Err(e)),
            };
            metrics.wecom_request(&path, errcode, started.elapsed());
            answer
        })
    }
}

/// The most of an answer read to find its errcode (WeCom's answers are a
/// few hundred bytes; the component itself reads at most 1 MiB).
const MAX_READ_ANSWER: usize = 1 << 20;

/// The `errcode` label of a WeCom answer (see [`crate::metrics`]).
fn errcode_label(status: http::StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        errcode: i64,
    }
    if status != http::StatusCode::OK {
        return format!("http-{}", status.as_u16());
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => answer.errcode.to_string(),
        Err(_) => "unreadable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rule: &str, uri: &str) -> bool {
        rule.parse::<AllowedHost>()
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn exact_hosts_match_scheme_host_and_default_port() {
        let rule = "https://qyapi.weixin.qq.com";
        assert!(allows(
            rule,
            "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=x"
        ));
        assert!(allows(rule, "https://QYAPI.weixin.qq.com:443/"));
        assert!(!allows(rule, "http://qyapi.weixin.qq.com/"));
        assert!(!allows(rule, "https://qyapi.weixin.qq.com:8443/"));
        assert!(!allows(rule, "https://qyapi.weixin.qq.com.evil.example/"));
        assert!(!allows(rule, "https://evil.example/?qyapi.weixin.qq.com"));
        assert!(allows("http://127.0.0.1:9090", "http://127.0.0.1:9090/x"));
        assert!(!allows("http://127.0.0.1:9090", "http://127.0.0.1:9091/x"));
        assert!(allows("http://[::1]:9090", "http://[::1]:9090/x"));
    }

    #[test]
    fn wildcards_cover_subdomains_schemes_and_ports() {
        assert!(allows("https://*.example.com", "https://a.b.example.com/"));
        assert!(!allows("https://*.example.com", "https://example.com/"));
        assert!(!allows("https://*.example.com", "https://badexample.com/"));
        assert!(allows("*://example.com", "http://example.com/"));
        assert!(allows("*://example.com", "https://example.com/"));
        assert!(!allows("*://example.com", "https://example.com:8443/"));
        assert!(allows("http://example.com:*", "http://example.com:1234/"));
        assert!(allows("https://*", "https://anything.example/"));
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "qyapi.weixin.qq.com",
            "ftp://example.com",
            "https://",
            "https://a*b.com",
            "https://*.",
            "https://example.com:port",
            "https://user:pw@example.com",
        ] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_origin_is_taken_from_a_url_with_a_path() {
        let origin = AllowedHost::origin_of("http://127.0.0.1:9090/cgi-bin").unwrap();
        assert_eq!(origin.to_string(), "http://127.0.0.1:9090");
        assert!(origin.allows(&"http://127.0.0.1:9090/cgi-bin/gettoken".parse().unwrap()));
        let origin = AllowedHost::origin_of("https://qyapi.weixin.qq.com").unwrap();
        assert_eq!(origin, "https://qyapi.weixin.qq.com:443".parse().unwrap());
    }

    #[test]
    fn destinations_in_logs_carry_no_path_or_query() {
        let uri: Uri = "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpsecret=s3cr3t"
            .parse()
            .unwrap();
        assert_eq!(destination(&uri), "https://qyapi.weixin.qq.com");
    }
}
