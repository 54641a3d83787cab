//! Probes for orchestrators (Kubernetes, SpinKube, load balancers):
//! `{prefix}/ping` says the component answers (liveness: even with broken
//! settings), `{prefix}/ready` that it can serve logins (readiness: the
//! settings parse and the key-value store answers a read, with the
//! warnings of guards that cannot work as configured). Cheap enough for a
//! probe every second, never needing a session, never revealing a setting.

use super::context::Env;
use super::message::{RETRY_AFTER_SECONDS, Response};
use crate::core::ports::{KeyValue, StoreError};
use crate::core::warnings::{self, CasCheck};

/// The key `/ready` reads: absent or not, a read that answers is enough.
const PROBE_KEY: &str = "ready-probe";

/// `{"status", "reason"?, "warnings"?}`.
#[derive(serde::Serialize)]
struct Readiness<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// The names of the guards that cannot work as configured, seen within
    /// the hour (not their details, which name settings, nor when: the
    /// probe is public; the setup check and the log give them).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [&'a str],
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

/// `{prefix}/ready` with usable settings: 200 when the store answers,
/// listing by name the warnings noticed within the hour (`core/warnings.rs`:
/// a guard that cannot work as configured still serves logins); else 503
/// naming the store (never its error, which may name a host). Every half
/// hour it checks the store's compare-and-swap too (`warnings.rs`); else four
/// reads.
pub fn ready<K: KeyValue, T>(env: &Env<'_, K, T>) -> Response {
    let (kv, now) = (env.kv, env.now);
    // The store check, when due (claimed first, so the probes that follow
    // only read): its outcome is a warning, never this probe's answer.
    let claimed = warnings::claim_compare_and_swap_check(kv, now);
    let log = match claimed {
        Ok(true) => {
            match warnings::check_compare_and_swap(kv, &hex::encode(&env.random[..16]), now) {
                Ok(CasCheck::Overwrites { log, .. }) => log,
                Ok(CasCheck::Compares) => None,
                Err(e) => Some(format!(
                    "wecom-auth: /ready: the store check failed: {}",
                    e.0
                )),
            }
        }
        _ => None,
    };
    // A store that does not answer the claim's read is not ready either.
    let read = claimed.and_then(|_| warnings::active(kv, now));
    let mut response = match read {
        Ok(noticed) => {
            let names: Vec<&str> = noticed.iter().map(|n| n.warning.as_str()).collect();
            let readiness = Readiness {
                status: "ready",
                reason: None,
                warnings: &names,
            };
            Response::json(200, &readiness)
        }
        Err(e) => {
            let mut response = not_ready("the key-value store does not answer");
            response.log = Some(format!("wecom-auth: /ready: key-value store: {}", e.0));
            return response;
        }
    };
    response.log = log;
    response
}

/// 503 `{"status": "unavailable", "reason": ...}`.
pub fn not_ready(reason: &str) -> Response {
    Response::json(
        503,
        &Readiness {
            status: "unavailable",
            reason: Some(reason),
            warnings: &[],
        },
    )
    .with_header("retry-after", RETRY_AFTER_SECONDS.to_string())
}
