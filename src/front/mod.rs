//! The HTTP front: the component's `wasi:http/incoming-handler` as a pure
//! function of a request, the configuration (Spin variables), the store, the
//! transport, the time and some randomness. The edge converts WASI types to
//! and from [`Request`] and [`Response`]; everything here is tested natively.
//!
//! Routes (under `route_prefix`, default `/auth/wecom`):
//!
//! | route | answer |
//! |---|---|
//! | `GET {prefix}` or `{prefix}/` | login page listing the authenticators |
//! | `GET {prefix}/login[?authenticator=&return_to=&flow=]` | 302 to WeCom, pre-auth cookie |
//! | `GET {prefix}/callback?code=&state=` | 302 to the return path, session cookie |
//! | `POST|GET {prefix}/logout[?return_to=]` | session cookie cleared, 303/302 |
//! | `GET {prefix}/me` | JSON of the session's user, or 401 |
//! | `* {prefix}/verify[?redirect=1]` | forward auth: 200 with identity headers, or 401 (302 to login with `redirect=1`) |
//! | `{prefix}/admin/...` | admin API (bearer `admin_token`) |
//! | `GET /`, protected paths | signed-in page, auto-login or 302 to login |
//!
//! Anything else is 404.

mod admin;
mod config;
mod html;
mod http;
mod routes;

pub use config::{FIELDS as AUTHENTICATOR_VARIABLES, GLOBAL_VARIABLES};

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::core::ports::{KeyValue, Transport};

pub use config::{ConfigProblem, FrontConfig, parse_config};
pub use html::escape_html;
pub use http::identity_header_value;

/// Randomness one request may use: a login attempt's state and cookie take
/// [`crate::core::state::RANDOM_BYTES`]; admin imports derive per-row ids from it.
pub const RANDOM_LEN: usize = 64;
/// Longest request body read (CSV imports); the edge stops reading beyond it.
pub const MAX_BODY: usize = 1 << 20;
/// Longest path with query.
pub const MAX_TARGET: usize = 8 * 1024;
/// Most header fields, and most bytes in all of them together.
pub const MAX_HEADERS: usize = 128;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Configuration as `wasi:config/store` `get-all` gives it.
pub type ConfigMap = HashMap<String, String>;

/// An incoming HTTP request, fully read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// E.g. `/auth/wecom/callback?code=..&state=..`.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The edge stopped reading the body at [`MAX_BODY`].
    pub body_truncated: bool,
}

/// The answer to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A line for the operator's log (stderr), for server-side failures.
    /// Never holds a secret.
    pub log: Option<String>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name`, e.g. each `Set-Cookie`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a request may use besides itself.
pub struct Env<'a, K, T> {
    /// The configuration, or why it could not be read.
    pub config: Result<&'a ConfigMap, &'a str>,
    pub kv: &'a K,
    pub transport: &'a T,
    /// Unix seconds.
    pub now: u64,
    pub random: &'a [u8; RANDOM_LEN],
}

/// Answers one request. Never panics on any input.
pub fn handle<K: KeyValue, T: Transport>(request: &Request, env: &Env<'_, K, T>) -> Response {
    let mut response = routes::dispatch(request, env);
    http::finish(&mut response, request);
    response
}
