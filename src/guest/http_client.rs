//! The core's [`Transport`] over `wasi:http/outgoing-handler`: a request, or
//! several in flight at once (waited for together with `wasi:io/poll`), each
//! answer read whole, bounded by the authenticator's API timeout.

use url::Url;

use crate::core::ports::{HttpRequest, HttpResponse, Transport};
use crate::core::wecom::MAX_CONTACT_ANSWER_BYTES;

use super::bindings::wasi::http::outgoing_handler;
use super::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use super::bindings::wasi::io::poll::{self, Pollable};
use super::bindings::wasi::io::streams::StreamError;
use super::streams::write_all;

pub struct WasiTransport;

const NANOS_PER_MS: u64 = 1_000_000;

impl Transport for WasiTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        let pending = start(request)?;
        pending.response.subscribe().block();
        finish(&pending)
    }

    /// Every request in flight at once: one `wasi:io/poll` wait for all
    /// their answers, then each body read.
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, String>> {
        let started: Vec<Result<Pending, String>> = requests.iter().map(start).collect();
        loop {
            let waiting: Vec<Pollable> = started
                .iter()
                .filter_map(|pending| pending.as_ref().ok())
                .map(|pending| &pending.response)
                .filter(|response| !response.subscribe().ready())
                .map(FutureIncomingResponse::subscribe)
                .collect();
            if waiting.is_empty() {
                break;
            }
            let refs: Vec<&Pollable> = waiting.iter().collect();
            poll::poll(&refs);
        }
        started
            .into_iter()
            .map(|pending| pending.and_then(|pending| finish(&pending)))
            .collect()
    }
}

/// A request sent, its answer to come.
struct Pending {
    response: FutureIncomingResponse,
    /// The host refused the request's timeouts.
    timeouts_refused: bool,
}

/// Sends the request head and body; the answer comes later.
fn start(request: &HttpRequest) -> Result<Pending, String> {
    // Errors below never repeat the URL: its query holds the access token.
    let url = Url::parse(&request.url).map_err(|_| "the API URL is invalid".to_owned())?;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err("the API URL is not http(s)".into()),
    };
    let authority = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err("the API URL has no host".into()),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut headers: Vec<(String, Vec<u8>)> = vec![("accept".into(), b"application/json".to_vec())];
    if request.body.is_some() {
        headers.push(("content-type".into(), b"application/json".to_vec()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|_| "the host refused the request headers".to_owned())?;
    let outgoing = OutgoingRequest::new(fields);
    let method = if request.post {
        Method::Post
    } else {
        Method::Get
    };
    let set =
        |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("the host refused the {what}"));
    set(outgoing.set_method(&method), "method")?;
    set(outgoing.set_scheme(Some(&scheme)), "scheme")?;
    set(outgoing.set_authority(Some(&authority)), "authority")?;
    set(outgoing.set_path_with_query(Some(&path)), "path")?;
    let options = RequestOptions::new();
    let timeout = Some(u64::from(request.timeout_ms) * NANOS_PER_MS);
    // A host may not support a timeout; the others still apply, and the
    // answer says so (a warning, `core/warnings.rs`).
    let refused = [
        options.set_connect_timeout(timeout),
        options.set_first_byte_timeout(timeout),
        options.set_between_bytes_timeout(timeout),
    ]
    .iter()
    .any(Result::is_err);
    let body = outgoing
        .body()
        .map_err(|()| "the request body was taken".to_owned())?;
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| format!("sending failed: {}", error_code(&e)))?;
    {
        let stream = body
            .write()
            .map_err(|()| "the request body stream was taken".to_owned())?;
        if let Some(bytes) = &request.body {
            write_all(&stream, bytes)
                .map_err(|e| format!("writing the request failed: {}", stream_error(e)))?;
        }
    }
    OutgoingBody::finish(body, None)
        .map_err(|e| format!("finishing the request failed: {}", error_code(&e)))?;
    Ok(Pending {
        response: pending,
        timeouts_refused: refused,
    })
}

/// The answer of a request whose response head has arrived (or failed):
/// the whole body, up to just past [`MAX_CONTACT_ANSWER_BYTES`] (the largest
/// any API may answer; each API's own limit is checked by the core).
fn finish(pending: &Pending) -> Result<HttpResponse, String> {
    let response = loop {
        match pending.response.get() {
            Some(answer) => break answer,
            None => pending.response.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "the response was already taken".to_owned())?
        .map_err(|e| error_code(&e).to_owned())?;
    let status = response.status();
    let date = date(&response.headers());
    let incoming = response
        .consume()
        .map_err(|()| "the response body was taken".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "the response body stream was taken".to_owned())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_CONTACT_ANSWER_BYTES {
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the answer failed: {}", stream_error(e))),
        }
    }
    Ok(HttpResponse {
        status,
        body,
        date,
        timeouts_refused: pending.timeouts_refused,
    })
}

/// The `Date` header as Unix seconds (an IMF-fixdate, or the obsolete
/// forms RFC 9110 §5.6.7 says to accept).
fn date(headers: &Fields) -> Option<u64> {
    let values = headers.get("date");
    let text = std::str::from_utf8(values.first()?).ok()?;
    let at = httpdate::parse_http_date(text.trim()).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// What failed, in a few words (wasi:http's `error-code` has 40 variants,
/// some with fields that could name hosts).
fn error_code(e: &ErrorCode) -> &'static str {
    match e {
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => "DNS failed",
        ErrorCode::DestinationNotFound | ErrorCode::DestinationUnavailable => {
            "the destination is unreachable"
        }
        ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => {
            "the host refused the destination (allowed outbound hosts)"
        }
        ErrorCode::ConnectionRefused => "connection refused",
        ErrorCode::ConnectionTerminated => "connection reset",
        ErrorCode::ConnectionTimeout => "connecting timed out",
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => "the answer timed out",
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => "TLS failed",
        _ => "the HTTP exchange failed",
    }
}

fn stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
