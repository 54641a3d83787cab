//! State changes only from our own pages (CSRF): ending a user's sessions
//! (`POST {prefix}/logout`) and the admin API's changes are refused when a
//! browser says the request comes from another origin. Browsers send
//! `Sec-Fetch-Site` on every request (Fetch Metadata) and `Origin` on every
//! POST and DELETE; a sibling host under a shared `session_cookie_domain`
//! is the same *site*, so its POSTs carry the `SameSite=Lax` cookie: the
//! origin, not the site, decides. A request with neither header does not
//! come from a browser (curl, a proxy's own call) and no page can forge it.

use super::audit::{self, Audited as _};
use super::context::Ctx;
use super::errors::refusal_answer;
use super::message::Response;
use crate::core::texts;

/// None when the request may change state; else the 403 to answer (nothing
/// changed) with its audit line of `event`.
pub(super) fn refused<K, T>(ctx: &Ctx<'_, '_, K, T>, event: &str) -> Option<Response> {
    let why = refusal(ctx)?;
    let title = texts::TITLE_CROSS_SITE;
    let response = refusal_answer(
        ctx,
        403,
        "cross-site",
        title,
        texts::CROSS_SITE,
        Some(why.into()),
    );
    Some(response.audited(&audit::Event {
        category: Some("cross-site"),
        detail: Some(why),
        ..audit::Event::of(ctx, event, "refused")
    }))
}

/// Why the request is refused as cross-origin, or None when it may change
/// state. Fetch Metadata decides where the browser sends it (`same-origin`,
/// or `none` when the user typed it): our pages answer with
/// `Referrer-Policy: no-referrer`, under which browsers send `Origin: null`
/// with a same-origin form POST (Fetch, "serializing a request origin").
/// Without it (older browsers), `Origin` must be one of the authenticators'
/// origins. A request with neither is not a browser's.
fn refusal<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<&'static str> {
    let request = ctx.request;
    if let Some(site) = request.header("sec-fetch-site") {
        return match site.trim() {
            "same-origin" | "none" => None,
            _ => Some("the request comes from another site"),
        };
    }
    let origin = request.header("origin")?.trim();
    let ours = ctx
        .config
        .entries
        .iter()
        .any(|entry| entry.authenticator.origin.eq_ignore_ascii_case(origin));
    (!ours).then_some("the request comes from another origin")
}
