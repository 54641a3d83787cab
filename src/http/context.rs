//! What one request may use: its environment (configuration, store, WeCom,
//! clock, randomness) and, once parsed, its context.

use super::config::{ConfigMap, FrontConfig};
use super::message::{Params, Request};
use super::warnings::Notices;
use crate::core::browser::Language;

/// Randomness one request may use: a login attempt's state and cookie take
/// [`crate::core::state::RANDOM_BYTES`]; admin imports derive per-row ids from it.
pub const RANDOM_LEN: usize = 64;
/// What a request may use besides itself.
pub struct Env<'a, K, T> {
    /// The configuration, or why it could not be read.
    pub config: Result<&'a ConfigMap, &'a str>,
    pub kv: &'a K,
    pub transport: &'a T,
    /// Unix seconds.
    pub now: u64,
    pub random: &'a [u8; RANDOM_LEN],
    /// Milliseconds since the request came in (a monotonic clock), for the
    /// audit trail's `duration_ms`.
    pub elapsed_ms: &'a dyn Fn() -> u64,
}

/// One request with its configuration, parsed once.
pub struct Ctx<'a, 'e, K, T> {
    pub request: &'a Request,
    pub env: &'a Env<'e, K, T>,
    pub config: &'a FrontConfig,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub params: Params,
    pub language: Language,
    /// Whether the request named a language (query, UA or Accept-Language).
    pub language_known: bool,
    pub json: bool,
    /// Warnings this request noticed, for the log.
    pub notices: &'a Notices,
}
