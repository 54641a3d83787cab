//! `wasi:http/incoming-handler`: converts the WASI request into the front's
//! [`Request`], hands it the configuration (`wasi:config/store`), the store,
//! the transport, the clock and randomness, and writes the [`Response`] back.
//! Nothing here decides anything.

use super::bindings::Component;
use super::bindings::exports::wasi::http::incoming_handler::Guest;
use super::bindings::wasi::config::store as config;
use super::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use super::bindings::wasi::io::streams::StreamError;
use super::environment::{now_seconds, random_array, stopwatch};
use super::http_client::WasiTransport;
use super::keyvalue::WasiKv;
use super::streams::write_all;
use crate::core::ports::Transport;
use crate::http::{
    self, ConfigMap, Env, MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, Request, Response,
};

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let elapsed_ms = stopwatch();
        let request = read_request(&request);
        let map: Result<ConfigMap, String> = config::get_all()
            .map(|pairs| pairs.into_iter().collect())
            .map_err(|e| match e {
                config::Error::Upstream(why) | config::Error::Io(why) => why,
            });
        let kv = WasiKv::lazy();
        let random = random_array();
        // One transport type for the whole core (see `Transport for &T`).
        let transport: &dyn Transport = &WasiTransport;
        let env = Env {
            config: map.as_ref().map_err(String::as_str),
            kv: &kv,
            transport: &transport,
            now: now_seconds(),
            random: &random,
            elapsed_ms: &elapsed_ms,
        };
        let mut response = http::handle(&request, &env);
        if let Some(line) = &response.log {
            log(line);
        }
        if let Some(line) = &response.audit {
            log(line);
        }
        let deferred = response.deferred.take();
        write_response(response, response_out);
        // The answer is sent (the body finished): the host has it on its
        // way while the rest runs.
        if let Some(deferred) = deferred
            && let Some(line) = http::after_response(&deferred, &kv, &transport, env.now)
        {
            log(&line);
        }
    }
}

fn read_request(request: &IncomingRequest) -> Request {
    let method = match request.method() {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(other) => other.to_ascii_uppercase(),
    };
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    // Past the limits the front answers 431; keep one entry more than allowed.
    let mut headers = Vec::new();
    let mut header_bytes = 0;
    for (name, value) in request.headers().entries() {
        header_bytes += name.len() + value.len();
        if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES + 1 {
            break;
        }
        headers.push((name, String::from_utf8_lossy(&value).into_owned()));
    }
    let mut body = Vec::new();
    let mut body_truncated = false;
    // The stream is dropped before its body (declared later, dropped first).
    if matches!(method.as_str(), "POST" | "PUT" | "PATCH")
        && let Ok(incoming) = request.consume()
        && let Ok(stream) = incoming.stream()
    {
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY {
                        body_truncated = true;
                        break;
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => {
                    body_truncated = true;
                    break;
                }
            }
        }
    }
    Request {
        method,
        path_and_query,
        headers,
        body,
        body_truncated,
    }
}

fn write_response(response: Response, out: ResponseOutparam) {
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let (fields, status, body) = match Fields::from_list(&headers) {
        Ok(fields) => (fields, response.status, response.body),
        Err(_) => {
            log("wecom-auth: the host refused the response headers");
            (Fields::new(), 500, b"internal error\n".to_vec())
        }
    };
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(status);
    let Ok(outgoing_body) = outgoing.body() else {
        ResponseOutparam::set(out, Ok(outgoing));
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(stream) = outgoing_body.write() {
        let _ = write_all(&stream, &body);
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}

/// Writes one log or audit line to stderr, where hosts collect the
/// component's output: in one write, so lines of instances running at once
/// never interleave; a host that refuses it loses the line, never the
/// request (`eprintln!` would panic).
fn log(line: &str) {
    use std::io::Write as _;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = std::io::stderr().write_all(&bytes);
}
