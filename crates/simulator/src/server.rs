//! The HTTP side: one hyper http1 server on loopback, a task per connection,
//! faults applied around the handlers; and a tiny client for `login`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::api::{self, ApiCall};
use super::endpoint::{Counters, Endpoint};
use super::faults::Fault;
use super::network::Traffic;
use super::pages::{self, ERRCODE_HEADER, PageReply};
use super::state::State;
use super::urls::Query;

/// Request bodies are read up to this size (WeCom's are tiny).
const MAX_BODY: usize = 64 * 1024;

/// What the server tasks and every handle share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Counters,
    pub(crate) addr: SocketAddr,
    pub(crate) traffic: Traffic,
}

impl Shared {
    /// The state, even if a panicking test thread poisoned the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The service's error: hyper closes the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault: connection dropped by the simulator")
    }
}

impl std::error::Error for DropConnection {}

type Reply = Response<Full<Bytes>>;

/// Accepts connections until `shutdown` changes or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // Out of descriptors or similar: back off a little.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            // The handshake's round trips come before the first answer.
            let fresh = Arc::new(AtomicBool::new(true));
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                let fresh = Arc::clone(&fresh);
                async move { respond(&shared, peer.ip(), request, &fresh).await }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn respond(
    shared: &Shared,
    peer: IpAddr,
    request: Request<Incoming>,
    fresh: &AtomicBool,
) -> Result<Reply, DropConnection> {
    let first = fresh.swap(false, Ordering::SeqCst);
    let api = Endpoint::from_path(request.uri().path()).is_some_and(Endpoint::is_api);
    let _in_flight = api.then(|| shared.traffic.enter());
    if api && first {
        shared.traffic.connections.fetch_add(1, Ordering::SeqCst);
    }
    if api {
        let network = shared.traffic.network();
        let round_trips = 1 + if first {
            network.new_connection_round_trips
        } else {
            0
        };
        if !network.rtt.is_zero() {
            tokio::time::sleep(network.rtt * round_trips).await;
        }
    }
    let (parts, body) = request.into_parts();
    // Always read the body, whatever the path, so keep-alive stays in step.
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut reply = answer(shared, peer, &parts.method, &parts.uri, &body).await?;
    // WeCom's clock, as its answers tell it (hyper would send the real
    // time): the simulator's, moved by `advance`.
    let date = httpdate::fmt_http_date(shared.lock().system_now());
    if let Ok(date) = HeaderValue::from_str(&date) {
        reply.headers_mut().insert(header::DATE, date);
    }
    Ok(reply)
}

/// One request, answered as the server would, without the network: what
/// [`respond`] does once the body is read (in-process hosts and benches use it).
pub(crate) async fn answer(
    shared: &Shared,
    peer: IpAddr,
    method: &Method,
    uri: &hyper::Uri,
    body: &Bytes,
) -> Result<Reply, DropConnection> {
    if let Some(reply) = super::console::answer(&shared.state, method, uri, body).await {
        return Ok(reply);
    }
    let Some(endpoint) = Endpoint::from_path(uri.path()) else {
        return Ok(status_only(StatusCode::NOT_FOUND));
    };
    shared.counters.hit(endpoint);
    let plan = shared.lock().faults.take(endpoint);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.outcome {
        Some(Fault::DropConnection) => return Err(DropConnection),
        Some(Fault::Http(status)) => return Ok(gateway_error(status)),
        Some(fault) => {
            if let Some(errcode) = fault.errcode() {
                let json = api::error_body(&mut shared.lock(), endpoint, errcode, peer);
                return Ok(json_reply(json));
            }
        }
        None => {}
    }
    let raw_query = uri.query().unwrap_or_default();
    if endpoint.is_api() {
        let query = Query::parse(raw_query);
        let call = ApiCall {
            endpoint,
            is_post: *method == Method::POST,
            query: &query,
            body,
            peer,
        };
        let json = api::answer(&mut shared.lock(), &call);
        let json = match plan.outcome {
            Some(Fault::MalformedJson) => malformed(&json),
            Some(Fault::TruncatedJson) => truncated(&json),
            _ => json,
        };
        Ok(json_reply(json))
    } else {
        let reply = pages::answer(&mut shared.lock(), endpoint, raw_query);
        Ok(page_reply(reply))
    }
}

fn status_only(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

fn with_type(mut reply: Reply, content_type: &'static str) -> Reply {
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

fn json_reply(json: String) -> Reply {
    with_type(
        Response::new(Full::new(Bytes::from(json))),
        "application/json; charset=UTF-8",
    )
}

fn html_reply(status: StatusCode, html: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(html)));
    *reply.status_mut() = status;
    with_type(reply, "text/html; charset=utf-8")
}

/// What a gateway in front of WeCom (Tencent's `stgw`) answers.
fn gateway_error(status: u16) -> Reply {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(StatusCode::is_server_error)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    html_reply(
        status,
        format!(
            "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

fn page_reply(reply: PageReply) -> Reply {
    match reply {
        PageReply::Page(html) => html_reply(StatusCode::OK, html),
        PageReply::Script(js) => {
            let mut reply = with_type(
                Response::new(Full::new(Bytes::from_static(js.as_bytes()))),
                "application/javascript; charset=utf-8",
            );
            // As a CDN answers: a page may check it with Subresource Integrity.
            reply.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            reply
        }
        PageReply::Error { errcode, html } => {
            let mut reply = html_reply(StatusCode::OK, html);
            if let Ok(value) = HeaderValue::from_str(&errcode.to_string()) {
                reply.headers_mut().insert(ERRCODE_HEADER, value);
            }
            reply
        }
        PageReply::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(value) => {
                let mut reply = status_only(StatusCode::FOUND);
                reply.headers_mut().insert(header::LOCATION, value);
                reply
            }
            Err(_) => html_reply(
                StatusCode::OK,
                "<p>redirect_uri cannot be sent as a Location</p>".into(),
            ),
        },
    }
}

/// The real body with one syntax error: `{"errcode"=0,...`.
pub(crate) fn malformed(json: &str) -> String {
    match json.split_once("\":") {
        Some((head, tail)) => format!("{head}\"={tail}"),
        None => format!("<{json}"),
    }
}

/// The first half of the real body.
pub(crate) fn truncated(json: &str) -> String {
    let mut cut = json.len() / 2;
    while !json.is_char_boundary(cut) {
        cut -= 1;
    }
    json[..cut].to_owned()
}

/// One GET over a fresh connection, the body read whole.
pub(crate) async fn get(addr: SocketAddr, path_and_query: &str) -> anyhow::Result<Response<Bytes>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(path_and_query)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mangled_bodies_do_not_parse() {
        let json = r#"{"errcode":0,"errmsg":"ok","userid":"张三"}"#;
        for bad in [
            malformed(json),
            truncated(json),
            truncated("{\"a\":\"张张张张\"}"),
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(&bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            malformed(json),
            r#"{"errcode"=0,"errmsg":"ok","userid":"张三"}"#
        );
        assert_eq!(truncated(""), "");
    }

    #[test]
    fn gateway_errors_are_5xx() {
        assert_eq!(gateway_error(502).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(gateway_error(503).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            gateway_error(200).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            gateway_error(9999).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
