//! The gateway's Prometheus metrics, in the text exposition format
//! (prometheus-client), served on a listen address of their own
//! (`metrics_listen`) so they never share the public port.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `wecom_auth_http_requests_total` | counter | `route`, `status` |
//! | `wecom_auth_http_request_duration_seconds` | histogram | `route` |
//! | `wecom_auth_instances_in_flight` | gauge | |
//! | `wecom_auth_instance_pool_slots` | gauge | |
//! | `wecom_auth_instances_refused_total` | counter | (pool full: 503) |
//! | `wecom_auth_wecom_requests_total` | counter | `api`, `errcode` |
//! | `wecom_auth_wecom_request_duration_seconds` | histogram | `api` |
//! | `wecom_auth_store_operations_total` | counter | `op` |
//! | `wecom_auth_store_errors_total` | counter | `op` |
//!
//! `route` is the component's route (`login`, `callback`, `verify`, ...,
//! `site` outside the route prefix); `api` WeCom's API path after
//! `/cgi-bin/` (`gettoken`, `auth/getuserinfo`, ...); `errcode` WeCom's
//! errcode, `http-<status>` for a non-200 answer, `unreadable` for a body
//! without one, `transport` when no answer came. Labels come from fixed
//! sets or bounded shapes: a client cannot grow the series.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use host_drafts::keyvalue::{KeyValueBackend, Op};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrcode {
    api: String,
    errcode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

/// At most this many (api, errcode) series; later errcodes count as `other`.
const MAX_WECOM_SERIES: usize = 256;

/// 0.5 ms to ~16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of one gateway.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<RouteLabel, Histogram>,
    in_flight: Gauge,
    refused: Counter,
    wecom_requests: Family<ApiErrcode, Counter>,
    /// Series of `wecom_requests` created (about: racing creations count twice).
    wecom_series: AtomicUsize,
    wecom_latency: Family<ApiLabel, Histogram>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a gateway with `pool_slots` instance slots over `store`.
    pub fn new(pool_slots: u32, store: KeyValueBackend) -> Arc<Self> {
        let mut registry = Registry::with_prefix("wecom_auth");
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time from the request to the response head, by route",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "instances_in_flight",
            "Component instances running now",
            in_flight.clone(),
        );
        let slots = Gauge::<i64>::default();
        slots.set(i64::from(pool_slots));
        registry.register(
            "instance_pool_slots",
            "Component instances the pooling allocator can hold at once",
            slots,
        );
        let refused = Counter::default();
        registry.register(
            "instances_refused",
            "Requests answered 503 because every instance slot was taken",
            refused.clone(),
        );
        let wecom_requests = Family::<ApiErrcode, Counter>::default();
        registry.register(
            "wecom_requests",
            "Outbound calls to WeCom, by API and errcode",
            wecom_requests.clone(),
        );
        let wecom_latency =
            Family::<ApiLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "wecom_request_duration_seconds",
            "Time of an outbound call to WeCom, by API",
            wecom_latency.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(store)));
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            in_flight,
            refused,
            wecom_requests,
            wecom_series: AtomicUsize::new(0),
            wecom_latency,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// One request answered.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(elapsed.as_secs_f64());
    }

    /// An instance starts (`+1`) or ends (`-1`).
    pub fn instances(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// A request refused for want of an instance slot.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// One outbound call to WeCom: `path` its URL path, `errcode` as in the
    /// module docs.
    pub fn wecom_request(&self, path: &str, errcode: String, elapsed: Duration) {
        let api = api_of(path);
        let labels = ApiErrcode { api, errcode };
        // Errcodes come from the far side: past a bound, new ones are `other`.
        let known = self.wecom_requests.get(&labels).is_some();
        let labels =
            if known || self.wecom_series.fetch_add(1, Ordering::Relaxed) < MAX_WECOM_SERIES {
                labels
            } else {
                ApiErrcode {
                    errcode: "other".to_owned(),
                    ..labels
                }
            };
        let api = labels.api.clone();
        self.wecom_latency
            .get_or_create(&ApiLabel { api: api.clone() })
            .observe(elapsed.as_secs_f64());
        self.wecom_requests.get_or_create(&labels).inc();
    }
}

/// WeCom's API name from a URL path: `/cgi-bin/auth/getuserinfo` →
/// `auth/getuserinfo`; any other shape → `other`.
fn api_of(path: &str) -> String {
    match path.strip_prefix("/cgi-bin/") {
        Some(api)
            if (1..=40).contains(&api.len())
                && api
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'/') =>
        {
            api.to_owned()
        }
        _ => "other".to_owned(),
    }
}

/// The route label of a request path: the component's route under
/// `route_prefix`, `site` outside it.
pub fn route_of(path: &str, route_prefix: &str) -> &'static str {
    let Some(rest) = path.strip_prefix(route_prefix) else {
        return "site";
    };
    let segment = rest
        .strip_prefix('/')
        .unwrap_or(rest)
        .split('/')
        .next()
        .unwrap_or_default();
    if !rest.is_empty() && !rest.starts_with('/') {
        return "site";
    }
    match segment {
        "" => "login-page",
        "login" => "login",
        "callback" => "callback",
        "logout" => "logout",
        "me" => "me",
        "verify" => "verify",
        "admin" => "admin",
        "ping" => "ping",
        "ready" => "ready",
        _ => "other",
    }
}

/// The store's operation and error counts, read at each scrape.
#[derive(Debug)]
struct StoreCollector(KeyValueBackend);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let faults = self.0.faults();
        for (name, help, read) in [
            (
                "store_operations",
                "wasi:keyvalue operations, by operation",
                (|f, op| f.count(op)) as fn(&host_drafts::keyvalue::Faults, Op) -> u64,
            ),
            (
                "store_errors",
                "wasi:keyvalue operations that answered an error, by operation",
                |f, op| f.errors(op),
            ),
        ] {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for op in Op::ALL {
                let labels = [("op", op.name())];
                let metric = family.encode_family(&labels)?;
                ConstCounter::new(read(faults, op)).encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_apis_make_bounded_labels() {
        for (path, route) in [
            ("/auth/wecom", "login-page"),
            ("/auth/wecom/", "login-page"),
            ("/auth/wecom/login", "login"),
            ("/auth/wecom/verify/some/original", "verify"),
            ("/auth/wecom/admin/users/x", "admin"),
            ("/auth/wecomx", "site"),
            ("/auth/wecom/anything-else", "other"),
            ("/", "site"),
        ] {
            assert_eq!(route_of(path, "/auth/wecom"), route, "{path}");
        }
        assert_eq!(api_of("/cgi-bin/auth/getuserinfo"), "auth/getuserinfo");
        assert_eq!(api_of("/cgi-bin/gettoken"), "gettoken");
        assert_eq!(api_of("/cgi-bin/%2e%2e"), "other");
        assert_eq!(api_of("/elsewhere"), "other");
    }

    #[test]
    fn the_exposition_holds_every_family() {
        let metrics = Metrics::new(10, KeyValueBackend::default());
        metrics.request("verify", 200, Duration::from_millis(2));
        metrics.wecom_request("/cgi-bin/gettoken", "0".into(), Duration::from_millis(3));
        let text = metrics.render();
        for line in [
            "wecom_auth_http_requests_total{route=\"verify\",status=\"200\"} 1",
            "wecom_auth_instance_pool_slots 10",
            "wecom_auth_wecom_requests_total{api=\"gettoken\",errcode=\"0\"} 1",
            "wecom_auth_store_errors_total{op=\"get\"} 0",
            "wecom_auth_http_request_duration_seconds_count{route=\"verify\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
