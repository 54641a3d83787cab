//! The server: accepts connections, and for every request instantiates the
//! component from one `ProxyPre` in a fresh `Store` and calls its
//! `wasi:http/incoming-handler`.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use host_drafts::keyvalue::{CasMode, KeyValueBackend};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::cache::{CacheOutcome, load_component};
use crate::config::{GatewayConfig, StoreSpec};
use crate::engine::{EngineOptions, POOL_SLOTS, engine, wasmtime_error};
use crate::log::LogFormat;
use crate::metrics::{Metrics, route_of};
use crate::outbound::{AllowedHost, GatewayHooks};
use crate::state::{HostState, Variables, linker};

/// Opens the store `spec` names.
pub async fn open_store(spec: &StoreSpec, mode: CasMode) -> anyhow::Result<KeyValueBackend> {
    Ok(match spec {
        StoreSpec::Memory => KeyValueBackend::memory(mode),
        StoreSpec::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || KeyValueBackend::sqlite(path, mode))
                .await
                .context("opening the SQLite store")??
        }
        StoreSpec::Redis(url) => KeyValueBackend::redis(url, mode).await?,
        StoreSpec::Backend(backend) => backend.clone(),
    })
}

/// How long starting took, up to accepting connections.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Engine, component, linking, store and socket.
    pub total: Duration,
    /// Reading and compiling (or loading the precompiled) component.
    pub component: Duration,
    pub cache: CacheOutcome,
}

impl fmt::Display for ColdStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cold start {:.1} ms (component {:.1} ms: {})",
            self.total.as_secs_f64() * 1e3,
            self.component.as_secs_f64() * 1e3,
            self.cache
        )
    }
}

/// What every request shares.
struct Shared {
    pre: ProxyPre<HostState>,
    keyvalue: KeyValueBackend,
    variables: Variables,
    hooks: GatewayHooks,
    access_log: bool,
    component_log: bool,
    log_format: LogFormat,
    request_timeout: Duration,
    served: AtomicU64,
    metrics: Option<Arc<Metrics>>,
    /// For the `route` of metrics and JSON access lines.
    route_prefix: String,
}

/// The gateway.
pub struct Gateway;

impl Gateway {
    /// Loads and links the component, opens the store, binds the socket and
    /// serves on the current tokio runtime until the handle is dropped.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<GatewayHandle> {
        let started = Instant::now();
        let allowed = config.outbound_allow_list()?;
        let engine = engine(EngineOptions { pooling: true })
            .map_err(wasmtime_error)
            .context("creating the engine")?;
        let loaded = {
            let engine = engine.clone();
            let path = config.component.clone();
            let cache_dir = config.precompiled_cache_dir.clone();
            tokio::task::spawn_blocking(move || {
                load_component(&engine, &path, cache_dir.as_deref())
            })
            .await
            .context("loading the component")??
        };
        let pre = linker(&engine)
            .map_err(wasmtime_error)
            .context("linking the host interfaces")?
            .instantiate_pre(&loaded.component)
            .map_err(wasmtime_error)
            .context("linking the component")?;
        let pre = ProxyPre::new(pre).map_err(wasmtime_error).context(
            "the component does not export wasi:http/incoming-handler@0.2.x (its HTTP front)",
        )?;
        let keyvalue = open_store(&config.store, config.cas_mode).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (metrics, metrics_listener) = match config.metrics_listen {
            Some(listen) => {
                let listener = TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening for metrics on {listen}"))?;
                (
                    Some(Metrics::new(POOL_SLOTS, keyvalue.clone())),
                    Some(listener),
                )
            }
            None => (None, None),
        };
        let metrics_addr = match &metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let route_prefix = config
            .variables
            .get("route_prefix")
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_ROUTE_PREFIX)
            .to_owned();
        let shared = Arc::new(Shared {
            pre,
            keyvalue: keyvalue.clone(),
            variables: Arc::new(config.variables.clone()),
            hooks: GatewayHooks::new(allowed, config.routes.clone())
                .with_metrics(metrics.clone())
                .with_log_format(config.log_format),
            access_log: config.access_log,
            component_log: config.component_log,
            log_format: config.log_format,
            request_timeout: config.request_timeout,
            served: AtomicU64::new(0),
            metrics: metrics.clone(),
            route_prefix,
        });
        let cold_start = ColdStart {
            total: started.elapsed(),
            component: loaded.elapsed,
            cache: loaded.outcome,
        };
        let (stop, stopped) = oneshot::channel();
        let (metrics_stop, metrics_stopped) = oneshot::channel();
        if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
            tokio::spawn(serve_metrics(listener, metrics, metrics_stopped));
        }
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(GatewayHandle {
            addr,
            metrics_addr,
            metrics_stop: Some(metrics_stop),
            shared,
            cold_start,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running gateway; dropping it stops it (open connections are cut).
pub struct GatewayHandle {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    metrics_stop: Option<oneshot::Sender<()>>,
    shared: Arc<Shared>,
    cold_start: ColdStart,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// The bound address (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the metrics are served (`GET /metrics`), when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The store the component sees (tests seed it and inject faults).
    pub fn keyvalue(&self) -> &KeyValueBackend {
        &self.shared.keyvalue
    }

    /// The outbound allow-list in force.
    pub fn allowed_outbound_hosts(&self) -> &[AllowedHost] {
        self.shared.hooks.allowed()
    }

    pub fn cold_start(&self) -> &ColdStart {
        &self.cold_start
    }

    /// Requests answered so far.
    pub fn requests_served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Stops accepting, cuts open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.metrics_stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.metrics_stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("addr", &self.addr)
            .field("store", &self.shared.keyvalue.kind())
            .finish_non_exhaustive()
    }
}

/// `GET /metrics` on the metrics address: the text exposition.
async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let metrics = metrics.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let (status, body) = if request.uri().path() == "/metrics" {
                                (200, metrics.render())
                            } else {
                                (404, "GET /metrics\n".to_owned())
                            };
                            let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = http::StatusCode::from_u16(status)
                                .unwrap_or(http::StatusCode::NOT_FOUND);
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(METRICS_CONTENT_TYPE),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What prometheus-client writes: OpenMetrics text, which Prometheus reads.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    // Dropping the set (on stop) aborts every connection still open.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, shared.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    eprintln!("{}", shared.log_format.error(&format!("accept failed: {e}")));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // As Spin does: the component counts login rates per client address.
    let peer = http::HeaderValue::from_str(&peer.to_string()).ok();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let shared = shared.clone();
        // Replaced, never appended: a client cannot choose its own address.
        match &peer {
            Some(peer) => request.headers_mut().insert(CLIENT_ADDRESS, peer.clone()),
            None => request.headers_mut().remove(CLIENT_ADDRESS),
        };
        async move { Ok::<_, Infallible>(shared.handle(request).await) }
    });
    // Client resets and malformed requests end the connection; nothing to log.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Why the gateway answered itself instead of the component.
enum Failure {
    BadRequest,
    Busy,
    Timeout,
    Internal,
}

impl Failure {
    fn response(self) -> hyper::Response<HyperOutgoingBody> {
        let (status, text) = match self {
            Failure::BadRequest => (400, "bad request\n"),
            Failure::Busy => (503, "busy, retry shortly\n"),
            Failure::Timeout => (504, "the login service timed out\n"),
            Failure::Internal => (500, "internal error\n"),
        };
        let body = Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync();
        let mut response = hyper::Response::new(body);
        *response.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// The component's default route prefix (its `route_prefix` variable).
const DEFAULT_ROUTE_PREFIX: &str = "/auth/wecom";

/// The header carrying the peer's `ip:port` to the component, as Spin's HTTP
/// trigger names it.
pub const CLIENT_ADDRESS: &str = "spin-client-addr";

/// At most this much of a path goes into the access log.
const LOGGED_PATH: usize = 200;

impl Shared {
    fn log_error(&self, message: &str) {
        eprintln!("{}", self.log_format.error(message));
    }

    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        if self.component_log {
            wasi.inherit_stderr();
        }
        HostState::new(
            wasi.build(),
            self.keyvalue.clone(),
            self.variables.clone(),
            self.hooks.clone(),
        )
        .into_store(self.pre.engine())
    }

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = request.method().clone();
        // The path only: queries carry codes and states.
        let path: String = request.uri().path().chars().take(LOGGED_PATH).collect();
        let response = match self.clone().run(request, &method, &path).await {
            Ok(response) => response,
            Err(failure) => failure.response(),
        };
        self.served.fetch_add(1, Ordering::SeqCst);
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        let route = route_of(&path, &self.route_prefix);
        if let Some(metrics) = &self.metrics {
            metrics.request(route, status, elapsed);
        }
        if self.access_log {
            let line = self
                .log_format
                .access(method.as_str(), &path, route, status, elapsed);
            println!("{line}");
        }
        response
    }

    async fn run(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
        method: &http::Method,
        path: &str,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Failure> {
        let mut store = self.new_store();
        let (sender, receiver) = oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(|_| Failure::BadRequest)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|_| Failure::Internal)?;
        let pre = self.pre.clone();
        let in_flight = InFlight::new(self.metrics.clone());
        // The instance runs in a task of its own, so it can go on streaming
        // the body after the response head is sent.
        let mut task = tokio::spawn(async move {
            let _in_flight = in_flight;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        });
        match tokio::time::timeout(self.request_timeout, receiver).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(code))) => {
                self.log_error(&format!(
                    "{method} {path}: the component answered an error: {code:?}"
                ));
                Err(Failure::Internal)
            }
            Ok(Err(_)) => {
                // The outparam was dropped unset: the call failed or trapped.
                let failure = match (&mut task).await {
                    Ok(Ok(())) => {
                        self.log_error(&format!("{method} {path}: the component set no response"));
                        Failure::Internal
                    }
                    Ok(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                        if let Some(metrics) = &self.metrics {
                            metrics.refused();
                        }
                        Failure::Busy
                    }
                    Ok(Err(e)) => {
                        self.log_error(&format!("{method} {path}: the component failed: {e:#}"));
                        Failure::Internal
                    }
                    Err(e) => {
                        self.log_error(&format!("{method} {path}: the request task failed: {e}"));
                        Failure::Internal
                    }
                };
                Err(failure)
            }
            Err(_elapsed) => {
                task.abort();
                self.log_error(&format!(
                    "{method} {path}: no response within {:?}",
                    self.request_timeout
                ));
                Err(Failure::Timeout)
            }
        }
    }
}

/// Counts an instance in flight for as long as it lives.
struct InFlight(Option<Arc<Metrics>>);

impl InFlight {
    fn new(metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.instances(1);
        }
        InFlight(metrics)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(metrics) = &self.0 {
            metrics.instances(-1);
        }
    }
}
