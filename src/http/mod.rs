//! The HTTP front: the component's `wasi:http/incoming-handler` as a pure
//! function of a request, the configuration (Spin variables), the store, the
//! transport, the time and some randomness. The WASI glue (`guest`) converts WASI types to
//! and from [`Request`] and [`Response`]; everything here is tested natively.
//!
//! Routes (under `route_prefix`, default `/auth/wecom`):
//!
//! | route | answer |
//! |---|---|
//! | `GET {prefix}` or `{prefix}/` | login page listing the authenticators |
//! | `GET {prefix}/login[?authenticator=&return_to=&flow=]` | 302 to WeCom, pre-auth cookie |
//! | `GET {prefix}/callback?code=&state=` | 302 to the return path, session cookie; a silent in-client login of a member not bound yet: 302 to WeCom's consent (`snsapi_privateinfo`) |
//! | `POST {prefix}/logout[?return_to=]` | the user's sessions ended everywhere and the cookie cleared, 303; a POST from another origin is 403 (`same_origin.rs`) |
//! | `GET {prefix}/logout[?return_to=]` | this browser's cookie cleared, 302 (a link on another site cannot end sessions) |
//! | `GET {prefix}/me` | JSON of the session's user, or 401 |
//! | `* {prefix}/verify[/original path][?redirect=1]` | forward auth (`forward_auth.rs`): 200 with identity headers, or 401 with `X-WeCom-Login` (302 to login with `redirect=1` for page navigations) |
//! | `{prefix}/admin/...` | admin API (bearer `admin_token`) |
//! | `/login`, `/callback` over a rate limit (`limits.rs`) | 429 with `Retry-After` |
//! | `GET {prefix}/ping`, `{prefix}/ready` | probes (`probes.rs`): 200, or 503 with the reason |
//! | `GET /`, protected paths | signed-in page, auto-login or 302 to login |
//!
//! Anything else is 404.

mod admin;
mod audit;
mod config;
mod context;
mod errors;
mod events;
mod forward_auth;
mod html;
mod limits;
mod message;
mod probes;
mod routes;
mod rules;
mod same_origin;
mod warnings;

#[cfg(test)]
mod tests;

use crate::core::error::Category;
use crate::core::ports::{KeyValue, Transport};

pub use self::config::{
    ConfigMap, ConfigProblem, FrontConfig, authenticator_variables, global_variables, parse_config,
};
pub use self::context::{Env, RANDOM_LEN};
pub use self::html::escape_html;
pub use self::message::{
    Deferred, MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_TARGET, Request, Response,
    identity_header_value,
};

/// The work a request left for after its answer was sent
/// ([`Response::deferred`]): a returning member's profile refresh. Answers
/// the lines for stderr: an audit line (`session-ended`) when WeCom refused
/// the member and the early session ended, else a log line when the refresh
/// failed. Never a secret.
pub fn after_response<K: KeyValue, T: Transport>(
    deferred: &Deferred,
    kv: &K,
    transport: &T,
    now: u64,
) -> Option<String> {
    let authenticator = &deferred.authenticator;
    let e =
        crate::core::login::refresh_profile(authenticator, &deferred.refresh, now, transport, kv)
            .err()?;
    if !matches!(
        e.category(),
        Category::AccessDenied | Category::Misconfigured
    ) {
        return Some(format!("wecom-auth: profile refresh after a login: {e}"));
    }
    let event = audit::Event {
        ts: now,
        event: "session-ended",
        authenticator: Some(&authenticator.name),
        wecom_userid: Some(deferred.refresh.wecom_userid()),
        request_id: deferred.request_id.clone(),
        detail: Some("WeCom refused the member's profile after an early login"),
        ..audit::Event::default()
    };
    Some(event.failed(&e).line())
}

/// Answers one request. Never panics on any input.
pub fn handle<K: KeyValue, T: Transport>(request: &Request, env: &Env<'_, K, T>) -> Response {
    let mut response = routes::dispatch(request, env);
    message::finish(&mut response, request);
    response
}
