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
/// or `none` when the user typed it). Without it (older browsers, plain-http
/// origins), `Origin` must be one of the authenticators' origins: the
/// signed-in page's `Referrer-Policy: same-origin` makes its logout form
/// send the real one, where our other pages' `no-referrer` would send
/// `null`. With neither header, a form body is refused (a browser too old to
/// send `Origin`), anything else is a script's.
fn refusal<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Option<&'static str> {
    let request = ctx.request;
    if let Some(site) = request.header("sec-fetch-site") {
        return match site.trim() {
            "same-origin" | "none" => None,
            _ => Some("the request comes from another site"),
        };
    }
    let Some(origin) = request.header("origin") else {
        let kind = request.header("content-type").unwrap_or_default();
        let form = [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
        ]
        .iter()
        .any(|form| kind.trim().to_ascii_lowercase().starts_with(form));
        return form.then_some("a form sent without Origin");
    };
    let ours = ctx.config.entries.iter().any(|entry| {
        entry
            .authenticator
            .origin
            .eq_ignore_ascii_case(origin.trim())
    });
    (!ours).then_some("the request comes from another origin")
}
