//! Where outgoing requests to a host go instead of the host itself: forwarded
//! over plain HTTP to a loopback authority (a WeCom simulator, an egress
//! proxy), or answered in-process by anything that implements [`InProcess`]
//! (benches that measure the component rather than loopback).

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::{Authority, Scheme, Uri};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::client::OutboundClient;

/// Answers requests without a socket.
pub trait InProcess: Send + Sync + fmt::Debug {
    /// The answer to `request`; `None` stands for a dropped connection.
    fn answer(
        &self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Option<http::Response<Bytes>>> + Send + '_>>;
}

/// Where requests to a host go instead.
#[derive(Debug, Clone)]
pub enum Route {
    /// Plain HTTP to this authority, e.g. a simulator's `127.0.0.1:PORT`.
    Forward(Authority),
    /// Answered in-process: no socket.
    InProcess(Arc<dyn InProcess>),
}

/// Where requests to each host go: e.g. `qyapi.weixin.qq.com` → a simulator.
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

pub use crate::client::Answer;

/// The future `WasiHttpHooks::send_request` returns.
pub type ResponseFuture = Box<dyn Future<Output = Answer> + Send>;

/// Sends `request` where `routes` say, on `client`'s pooled connections. An
/// unrouted host is refused, or (`pass_unrouted`, a gateway) sent as is.
pub async fn send_routed(
    client: &OutboundClient,
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
        Some(Route::InProcess(answerer)) => {
            let response = answerer
                .answer(http::Request::from_parts(parts, body))
                .await
                .ok_or(Error::ConnectionTerminated)?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            return Ok((response.map(self::body), done));
        }
        None if pass_unrouted => {}
        None => return Err(Error::HttpRequestDenied),
    }
    client
        .send(
            http::Request::from_parts(parts, body),
            options.unwrap_or_default(),
        )
        .await
}

/// Bytes as a `WasiBody`, for hosts that build requests themselves.
pub fn body(bytes: impl Into<Bytes>) -> WasiBody {
    Full::new(bytes.into())
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync()
}
