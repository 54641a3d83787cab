//! Probes for orchestrators (Kubernetes, SpinKube, load balancers):
//! `{prefix}/ping` says the component answers (liveness: even with broken
//! settings), `{prefix}/ready` that it can serve logins (readiness: the
//! settings parse and the key-value store answers a read). Cheap enough for
//! a probe every second, never needing a session, never revealing a setting.

use super::message::Response;
use crate::core::ports::{KeyValue, StoreError};

/// The key `/ready` reads: absent or not, a read that answers is enough.
const PROBE_KEY: &str = "ready-probe";

/// `{"status", "reason"?}`.
#[derive(serde::Serialize)]
struct Readiness<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Whether `path` is `{prefix}/ping` or `{prefix}/ready` for `prefix`.
pub fn probe_of<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    matches!(rest, "/ping" | "/ready").then_some(rest)
}

/// `{prefix}/ping`: 200 `ok`.
pub fn ping() -> Response {
    Response::new(200)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_body("ok\n")
}

/// Whether the store answers a read (absent or not, an answer is enough).
pub fn store_answers(kv: &impl KeyValue) -> Result<(), StoreError> {
    kv.get(PROBE_KEY).map(drop)
}

/// `{prefix}/ready` with usable settings: 200 when the store answers a read,
/// else 503 naming the store (never its error, which may name a host).
pub fn ready(kv: &impl KeyValue) -> Response {
    match store_answers(kv) {
        Ok(()) => Response::json(
            200,
            &Readiness {
                status: "ready",
                reason: None,
            },
        ),
        Err(e) => {
            let mut response = not_ready("the key-value store does not answer");
            response.log = Some(format!("wecom-auth: /ready: key-value store: {}", e.0));
            response
        }
    }
}

/// 503 `{"status": "unavailable", "reason": ...}`.
pub fn not_ready(reason: &str) -> Response {
    Response::json(
        503,
        &Readiness {
            status: "unavailable",
            reason: Some(reason),
        },
    )
    .with_header("retry-after", "5")
}
