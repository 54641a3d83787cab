//! Limits on login requests (`rate_limit.rs` counts): per client address on
//! `/login` and `/callback`, per authenticator on `/callback` (each costs
//! WeCom calls). Over a limit: 429 with `Retry-After` (RFC 6585 §4), audited.

use super::audit::{self, Audited as _};
use super::context::Ctx;
use super::errors::ErrorJson;
use super::html::{self, ErrorPage};
use super::message::Response;
use crate::core::ports::KeyValue;
use crate::core::rate_limit::{self, Limited, Scope};
use crate::core::texts;

/// Counts this request; `Some(429)` when it is over a limit. `authenticator`:
/// the callback's, which also counts against the authenticator's limit.
pub(super) fn check<K: KeyValue, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: Option<&str>,
) -> Option<Response> {
    let limits = &ctx.config.rate_limits;
    let env = ctx.env;
    // One request in 16 sweeps closed windows when it opens one.
    let sweep = env.random[0] < 16;
    let client = ctx
        .request
        .header(&limits.client_address_header)
        .and_then(rate_limit::client_address)
        .map(Scope::Client);
    // The client first: a sprayer's refused requests spend nobody's budget.
    let scopes = client
        .into_iter()
        .map(|s| (s, limits.per_client))
        .chain(authenticator.map(|name| {
            (
                Scope::Authenticator(name.to_owned()),
                limits.per_authenticator,
            )
        }));
    for (scope, per_minute) in scopes {
        // A store that does not answer fails the login with its own error.
        if let Ok(Some(limited)) = rate_limit::hit(env.kv, &scope, per_minute, env.now, sweep) {
            return Some(too_many(ctx, &limited, authenticator));
        }
    }
    None
}

fn too_many<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    limited: &Limited,
    authenticator: Option<&str>,
) -> Response {
    let message = match limited.scope {
        Scope::Client(_) => texts::TOO_MANY_FROM_CLIENT,
        Scope::Authenticator(_) => texts::TOO_MANY_FOR_APP,
    }
    .get(ctx.language);
    let response = if ctx.json {
        Response::json(429, &ErrorJson::plain("rate-limited", 429, message).body())
    } else {
        let page = ErrorPage {
            title: texts::TITLE_TOO_MANY_REQUESTS.get(ctx.language),
            message,
            status: 429,
            errcode: None,
            admin: Vec::new(),
            retry: None,
        };
        Response::html(429, html::error_page(ctx.language, &page))
    };
    let event = audit::Event {
        authenticator,
        category: Some("rate-limited"),
        detail: Some(match limited.scope {
            Scope::Client(_) => "per-client limit",
            Scope::Authenticator(_) => "per-authenticator limit",
        }),
        ..audit::Event::of(ctx, "rate-limited", "refused")
    };
    response
        .with_header("retry-after", limited.retry_after.to_string())
        .audited(&event)
}
