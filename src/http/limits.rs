//! Limits on login requests (`rate_limit.rs` counts): per client address on
//! `/login` and `/callback`, per authenticator on callbacks whose state
//! verified (each costs WeCom calls). Over a limit: 429 with `Retry-After`
//! (RFC 6585 §4), audited with the counted address. A request without a
//! client address is not counted, and that is a warning (`warnings.rs`).

use super::audit::{self, Audited as _};
use super::context::Ctx;
use super::errors::refusal_answer;
use super::message::Response;
use super::warnings::client_address_detail;
use crate::core::ports::KeyValue;
use crate::core::rate_limit::{self, Limited, Scope};
use crate::core::texts;
use crate::core::warnings::Warning;

/// Counts this login request against its client address's limit; `Some(429)`
/// when it is over.
pub(super) fn check_client<K: KeyValue, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<Response> {
    let limits = &ctx.config.rate_limits;
    if limits.per_client == 0 {
        return None;
    }
    // The last value: a host that appends its own (Spin adds
    // `spin-client-addr` after the client's headers) is the one to trust.
    let header = &limits.client_address_header;
    let value = ctx.request.last_header(header);
    let Some(client) = value.and_then(rate_limit::client_address) else {
        // Not counted (one shared count would let one client lock every
        // other out), but never in silence: `/ready`, the setup check and
        // the log say the limit is off for such requests.
        let detail = client_address_detail(header, value.is_some());
        let env = ctx.env;
        ctx.notices
            .notice(env.kv, Warning::ClientAddressHeader, &detail, env.now);
        return None;
    };
    count(ctx, Scope::Client(client), limits.per_client, None)
}

/// Counts a callback whose state verified (signed by us, bound to this
/// browser) against its authenticator's limit, just before WeCom is called:
/// forged callbacks cannot spend the budget.
pub(super) fn check_authenticator<K: KeyValue, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: &str,
) -> Option<Response> {
    let scope = Scope::Authenticator(authenticator.to_owned());
    let per_minute = ctx.config.rate_limits.per_authenticator;
    count(ctx, scope, per_minute, Some(authenticator))
}

fn count<K: KeyValue, T>(
    ctx: &Ctx<'_, '_, K, T>,
    scope: Scope,
    per_minute: u32,
    authenticator: Option<&str>,
) -> Option<Response> {
    let env = ctx.env;
    // One request in 8 sweeps closed windows when it opens one: a login
    // from a new address opens two keys (a counter and its slot), and a
    // sweep deletes at most `SWEEP_BUDGET` (64); one in 16 let a run of bad
    // luck leave the sweep behind for a while.
    let sweep = env.random[0] < 32;
    // A store that does not answer fails the login with its own error.
    match rate_limit::hit(env.kv, &scope, per_minute, env.now, sweep) {
        Ok(Some(limited)) => Some(too_many(ctx, &limited, authenticator)),
        _ => None,
    }
}

fn too_many<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    limited: &Limited,
    authenticator: Option<&str>,
) -> Response {
    let message = match limited.scope {
        Scope::Client(_) => texts::TOO_MANY_FROM_CLIENT,
        Scope::Authenticator(_) => texts::TOO_MANY_FOR_APP,
    };
    let title = texts::TITLE_TOO_MANY_REQUESTS;
    let response = refusal_answer(ctx, 429, "rate-limited", title, message, None);
    let event = audit::Event {
        authenticator,
        client_address: match &limited.scope {
            Scope::Client(address) => Some(address.as_str()),
            Scope::Authenticator(_) => None,
        },
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
