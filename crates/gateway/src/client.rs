//! Outbound HTTP with pooled keep-alive connections (hyper-util's client):
//! per origin, at most [`MAX_IDLE_PER_ORIGIN`] idle connections kept for
//! [`IDLE_TIMEOUT`], TLS by rustls with the system's roots (webpki's when
//! the system has none), the request's own timeouts (wasi:http
//! `request-options`) honoured. Spin pools outbound connections the same
//! way; opening one per request costs a TCP and a TLS handshake (3 round
//! trips to `qyapi.weixin.qq.com`) on every WeCom call.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What `WasiHttpHooks::send_request` answers: the response, and the
/// connection's remaining I/O.
pub type Answer = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// Idle connections kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 32;
/// How long an idle connection is kept (WeCom's servers close theirs later).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// When a request names no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest a new connection may take (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled HTTP(S) client; clones share the pool.
#[derive(Clone, Debug)]
pub struct OutboundClient(Arc<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>);

impl OutboundClient {
    /// A client with a pool of its own.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // Connecting alone never waits longer than this, whatever the
        // request's combined deadline.
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = match HttpsConnectorBuilder::new().with_native_roots() {
            Ok(builder) => builder,
            // A minimal container without CA certificates.
            Err(_) => {
                eprintln!(
                    "gateway: no CA certificates on this system; outbound TLS trusts the bundled webpki roots"
                );
                HttpsConnectorBuilder::new().with_webpki_roots()
            }
        }
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        OutboundClient(Arc::new(client))
    }

    /// The process's shared client (its pool shared by every gateway and
    /// hook in the process).
    pub fn shared() -> Self {
        static SHARED: OnceLock<OutboundClient> = OnceLock::new();
        SHARED.get_or_init(OutboundClient::new).clone()
    }

    /// Sends `request` on a pooled connection (a new one when none is idle):
    /// connecting and the response head within the connect plus first-byte
    /// timeouts, each body chunk within the between-bytes timeout.
    pub async fn send(&self, request: http::Request<Bytes>, options: RequestOptions) -> Answer {
        let connect = options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(DEFAULT_TIMEOUT)
            // Tokio refuses a zero interval.
            .max(Duration::from_nanos(1));
        let response = tokio::time::timeout(
            connect.saturating_add(first_byte),
            self.0.request(request.map(Full::new)),
        )
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(|e| classify(&e))?;
        let mut timeout = tokio::time::interval(between_bytes);
        timeout.reset();
        let response = response.map(|incoming| TimedBody { incoming, timeout }.boxed_unsync());
        Ok((response, Box::new(async { Ok(()) })))
    }
}

/// The wasi:http error code of a failed exchange, from the error's causes.
fn classify(error: &hyper_util::client::legacy::Error) -> Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    return Error::ConnectionTerminated;
                }
                _ => {}
            }
        }
        let text = e.to_string();
        if text.contains("certificate") {
            return Error::TlsCertificateError;
        }
        if text.contains("dns error") || text.contains("failed to lookup") {
            return Error::DestinationNotFound;
        }
        cause = e.source();
    }
    if error.is_connect() {
        Error::ConnectionRefused
    } else {
        Error::HttpProtocolError
    }
}

impl Default for OutboundClient {
    fn default() -> Self {
        OutboundClient::shared()
    }
}

/// A response body that fails when no chunk comes within the interval.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
