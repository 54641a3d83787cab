//! A small HTTP/1.1 client for tests that talk to real servers over
//! loopback (Spin, Nginx, Caddy): one request per connection, and a browser
//! with a cookie jar.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use wecom_simulator::SimulatorHandle;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::copy_from_slice(body)))?)
        .await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A browser: a User-Agent and a cookie jar, talking to whichever instance
/// it is given (as behind a load balancer).
pub struct Browser {
    pub user_agent: &'static str,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(user_agent: &'static str) -> Self {
        Browser {
            user_agent,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn request(&mut self, at: SocketAddr, method: &str, target: &str) -> Reply {
        self.request_with(at, method, target, &[], b"").await
    }

    /// [`Browser::request`] with more headers and a body (a form post).
    pub async fn request_with(
        &mut self,
        at: SocketAddr,
        method: &str,
        target: &str,
        more: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let target = match target.find("/auth/") {
            Some(at) if target.starts_with("http") => &target[at..],
            _ => target,
        };
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![("user-agent", self.user_agent)];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        headers.extend_from_slice(more);
        let reply = send(at, method, target, &headers, body).await.unwrap();
        keep_cookies(&mut self.cookies, &reply.headers);
        reply
    }

    /// Starts a login on `start`, logs `who` in at WeCom, and brings the
    /// callback to `finish` (another instance behind the same origin). A
    /// silent in-client login of a member not bound yet goes to WeCom once
    /// more, for the consent (`snsapi_privateinfo`), and back to `finish`.
    pub async fn log_in(
        &mut self,
        start: SocketAddr,
        finish: SocketAddr,
        sim: &SimulatorHandle,
        who: &str,
    ) -> Reply {
        let begun = self.request(start, "GET", "/auth/wecom/login").await;
        assert_eq!(begun.status, 302, "{}", begun.body);
        let back = sim.login(begun.location(), who).await.unwrap();
        let answer = self.request(finish, "GET", &back).await;
        if answer.status != 302 || !answer.location().contains("scope=snsapi_privateinfo") {
            return answer;
        }
        let again = sim.login(answer.location(), who).await.unwrap();
        self.request(finish, "GET", &again).await
    }
}

/// What a browser keeps of an answer's `Set-Cookie`s: each cookie set, or
/// removed when cleared (`Max-Age=0`).
pub fn keep_cookies(jar: &mut BTreeMap<String, String>, headers: &[(String, String)]) {
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("set-cookie") {
            continue;
        }
        let pair = value.split(';').next().unwrap_or_default();
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if value.contains("Max-Age=0") {
            jar.remove(k);
        } else {
            jar.insert(k.to_owned(), v.to_owned());
        }
    }
}
