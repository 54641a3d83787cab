//! Outgoing HTTP of the component, as `wasi:http/outgoing-handler` sends it:
//! every request is recorded (tests assert what the component sent) and, when
//! its host is routed, forwarded over loopback (e.g. WeCom's hosts to the
//! simulator). Unrouted hosts are refused: tests never reach the internet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::uri::{Authority, Scheme, Uri};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::simulator::SimulatorHandle;

/// One request as the component sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The URI the component asked for (before any rerouting).
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every request sent through hooks made from it, in order.
#[derive(Debug, Clone, Default)]
pub struct OutgoingLog(Arc<Mutex<Vec<RecordedRequest>>>);

impl OutgoingLog {
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn push(&self, request: RecordedRequest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }
}

/// Where requests to a host go instead.
#[derive(Debug, Clone)]
pub enum Route {
    /// Plain HTTP to this authority on loopback, e.g. the simulator's `127.0.0.1:PORT`.
    Forward(Authority),
    /// Answered by the simulator in-process: no socket, for benches that
    /// measure the component rather than loopback.
    InProcess(SimulatorHandle),
}

/// Where requests to each host go: `qyapi.weixin.qq.com` → the simulator.
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<HashMap<String, Route>>);

impl Routes {
    /// Forwards each host to its authority.
    pub fn new(routes: impl IntoIterator<Item = (String, Authority)>) -> Self {
        Self::to(
            routes
                .into_iter()
                .map(|(host, authority)| (host, Route::Forward(authority))),
        )
    }

    pub fn to(routes: impl IntoIterator<Item = (String, Route)>) -> Self {
        Routes(Arc::new(routes.into_iter().collect()))
    }

    /// Where requests to the host of `uri` go instead, if rerouted.
    pub fn target(&self, uri: &Uri) -> Option<&Route> {
        self.0.get(uri.host()?)
    }
}

/// The `WasiHttpHooks` a store gets: records, then forwards or refuses.
#[derive(Debug, Clone, Default)]
pub struct RecordingHooks {
    pub log: OutgoingLog,
    pub routes: Routes,
}

pub type ResponseFuture = Box<dyn Future<Output = Answer> + Send>;

impl WasiHttpHooks for RecordingHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let log = self.log.clone();
        let routes = self.routes.clone();
        Box::new(async move {
            let (parts, body) = request.into_parts();
            // Always drain the body: a guest that is still writing it would
            // otherwise see its connection reset.
            let body = body.collect().await?.to_bytes();
            log.push(RecordedRequest {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.to_string(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            });
            send_routed(
                &routes,
                http::Request::from_parts(parts, body),
                options,
                false,
            )
            .await
        })
    }
}

/// Sends `request` where `routes` say: forwarded over plain HTTP to a loopback
/// authority, or answered by the simulator in-process. An unrouted host is
/// refused, or (`pass_unrouted`, a gateway) sent as is.
pub async fn send_routed(
    routes: &Routes,
    request: http::Request<Bytes>,
    options: Option<RequestOptions>,
    pass_unrouted: bool,
) -> Answer {
    let (mut parts, body) = request.into_parts();
    match routes.target(&parts.uri).cloned() {
        Some(Route::Forward(authority)) => {
            let mut uri = parts.uri.into_parts();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(authority);
            parts.uri = Uri::from_parts(uri).map_err(|_| Error::HttpRequestUriInvalid)?;
        }
        Some(Route::InProcess(simulator)) => {
            return answer_in_process(&simulator, http::Request::from_parts(parts, body)).await;
        }
        None if pass_unrouted => {}
        None => return Err(Error::HttpRequestDenied),
    }
    let request = http::Request::from_parts(parts, self::body(body));
    let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
    Ok((
        response.map(BodyExt::boxed_unsync),
        Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
    ))
}

/// What `WasiHttpHooks::send_request` answers.
pub type Answer = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// The simulator's answer to `request`, as `send_request` returns it.
pub async fn answer_in_process(
    simulator: &SimulatorHandle,
    request: http::Request<Bytes>,
) -> Answer {
    let response = simulator
        .answer_in_process(request)
        .await
        .ok_or(Error::ConnectionTerminated)?;
    let done: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
    Ok((response.map(self::body), done))
}

/// Bytes as a `WasiBody`, for hosts that build requests themselves.
pub fn body(bytes: impl Into<Bytes>) -> WasiBody {
    Full::new(bytes.into())
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync()
}
