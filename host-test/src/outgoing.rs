//! Outgoing HTTP of the component, as `wasi:http/outgoing-handler` sends it:
//! every request is recorded (tests assert what the component sent) and, when
//! its host is routed, forwarded over loopback (e.g. WeCom's hosts to the
//! simulator). Unrouted hosts are refused: tests never reach the internet.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};
use wecom_auth_gateway::OutboundClient;
use wecom_auth_gateway::routes::{InProcess, ResponseFuture, Route, Routes, send_routed};
use wecom_simulator::SimulatorHandle;

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

    /// The requests from the `n`-th on (0-based), e.g. those not seen yet.
    pub fn requests_since(&self, n: usize) -> Vec<RecordedRequest> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all[n.min(all.len())..].to_vec()
    }

    /// How many requests were recorded.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// The `WasiHttpHooks` a store gets: records, then forwards or refuses.
#[derive(Debug, Clone, Default)]
pub struct RecordingHooks {
    pub log: OutgoingLog,
    pub routes: Routes,
}

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
                &OutboundClient::shared(),
                &routes,
                http::Request::from_parts(parts, body),
                options,
                false,
            )
            .await
        })
    }
}

/// The simulator as an in-process route: answers without a socket (benches
/// that measure the component rather than loopback).
#[derive(Debug, Clone)]
pub struct SimulatorRoute(pub SimulatorHandle);

impl InProcess for SimulatorRoute {
    fn answer(
        &self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Option<http::Response<Bytes>>> + Send + '_>> {
        Box::pin(self.0.answer_in_process(request))
    }
}

impl SimulatorRoute {
    /// A route to `simulator`, in-process.
    pub fn route(simulator: &SimulatorHandle) -> Route {
        Route::InProcess(Arc::new(SimulatorRoute(simulator.clone())))
    }
}
