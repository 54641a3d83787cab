//! `{prefix}/events` (`{prefix}/events/<name>` with several authenticators):
//! the app's callback URL in WeCom's console (接收消息 → API 接收). A `GET`
//! is WeCom's URL check (`msg_signature`, `timestamp`, `nonce`, `echostr`:
//! the decrypted echostr is the answer); a `POST` delivers an event
//! (`<xml><Encrypt>…</Encrypt></xml>`). Checked and decrypted by
//! [`crate::core::events`], applied by [`crate::core::contact_changes`].
//!
//! Answers: 200 (empty body, as WeCom expects) once handled; 400 for a
//! malformed request, 403 for a wrong signature, key, company or an old
//! timestamp, 409 for a message delivered before, 503 when the store does
//! not answer (WeCom retries). Each refusal and each change is an audit
//! line; nothing about the keys is said.

use super::audit::{self, Audited as _};
use super::config::Entry;
use super::context::Ctx;
use super::errors::{method_not_allowed, not_found, plain};
use super::message::Response;
use crate::core::contact_changes::{self, Applied};
use crate::core::events::{
    CallbackError, CallbackKeys, ContactChange, Envelope, MAX_EVENT_BODY, SignedQuery, is_echostr,
};
use crate::core::ports::{KeyValue, Transport};

pub(super) fn handle<K: KeyValue, T: Transport>(ctx: &Ctx<'_, '_, K, T>, after: &str) -> Response {
    let entry = match after.trim_end_matches('/') {
        "" if ctx.config.entries.len() == 1 => &ctx.config.entries[0],
        name => match name
            .strip_prefix('/')
            .and_then(|name| ctx.config.find(name))
        {
            Some(entry) => entry,
            None => return not_found(ctx),
        },
    };
    let Some(keys) = &entry.callback else {
        return not_found(ctx);
    };
    let query = SignedQuery {
        msg_signature: ctx.params.get("msg_signature").unwrap_or_default(),
        timestamp: ctx.params.get("timestamp").unwrap_or_default(),
        nonce: ctx.params.get("nonce").unwrap_or_default(),
    };
    match ctx.request.method.as_str() {
        "GET" => url_check(ctx, entry, keys, &query),
        "POST" => delivery(ctx, entry, keys, &query),
        _ => method_not_allowed(ctx, &["GET", "POST"]),
    }
}

/// WeCom's check of the URL, when the admin saves it: the echostr
/// decrypted proves we hold the keys.
fn url_check<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    keys: &CallbackKeys,
    query: &SignedQuery<'_>,
) -> Response {
    // Base64 has no spaces: a `+` a client left unencoded came as one.
    let echostr = ctx
        .params
        .get("echostr")
        .unwrap_or_default()
        .replace(' ', "+");
    let opened = checked(query)
        .and_then(|()| keys.open(query, &echostr, &entry.authenticator.corp_id, ctx.env.now))
        .and_then(|echo| {
            if is_echostr(&echo) {
                Ok(echo)
            } else {
                Err(CallbackError::Malformed("echostr is not one"))
            }
        });
    match opened {
        Ok(echo) => {
            let event = audit::Event {
                authenticator: Some(&entry.authenticator.name),
                detail: Some("WeCom checked the callback URL"),
                ..audit::Event::of(ctx, "callback", "ok")
            };
            plain_exact(200, echo).audited(&event)
        }
        Err(e) => refused(ctx, entry, &e),
    }
}

fn delivery<K: KeyValue, T: Transport>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    keys: &CallbackKeys,
    query: &SignedQuery<'_>,
) -> Response {
    let authenticator = &entry.authenticator;
    let body = &ctx.request.body;
    if ctx.request.body_truncated || body.len() > MAX_EVENT_BODY {
        return refused(
            ctx,
            entry,
            &CallbackError::Malformed("the body is too large"),
        );
    }
    let opened = checked(query)
        .and_then(|()| {
            std::str::from_utf8(body).map_err(|_| CallbackError::Malformed("the body is not UTF-8"))
        })
        .and_then(Envelope::parse)
        .and_then(|envelope| {
            keys.open(
                query,
                &envelope.encrypt,
                &authenticator.corp_id,
                ctx.env.now,
            )
        })
        .and_then(|message| ContactChange::parse(&message));
    let change = match opened {
        Ok(Some(change)) => change,
        // Another event or message: acknowledged, nothing done.
        Ok(None) => return Response::new(200),
        Err(e) => return refused(ctx, entry, &e),
    };
    let kv = ctx.env.kv;
    let signature = query.msg_signature;
    let at = query.timestamp.parse().unwrap_or(ctx.env.now);
    let applied = contact_changes::delivered_before(kv, signature).and_then(|before| {
        if before {
            return Ok(None);
        }
        let applied =
            contact_changes::apply(authenticator, &change, entry.leaver_action, ctx.env.now, kv)?;
        contact_changes::mark_delivered(kv, signature, at, ctx.env.now)?;
        Ok(Some(applied))
    });
    match applied {
        Ok(Some(applied)) => {
            let user_id = match &applied {
                Applied::SessionsEnded { user_id } | Applied::Renamed { user_id } => {
                    Some(user_id.as_str())
                }
                Applied::FactsDropped | Applied::Nothing => None,
            };
            let event = audit::Event {
                authenticator: Some(&authenticator.name),
                wecom_userid: change.user_id.as_deref(),
                user_id,
                detail: Some(change_detail(&change)),
                ..audit::Event::of(ctx, "contact-change", applied.outcome())
            };
            Response::new(200).audited(&event)
        }
        Ok(None) => refused(ctx, entry, &CallbackError::Replayed),
        Err(e) => {
            let mut response = plain(503, "the store did not answer; WeCom will retry");
            response.log = Some(format!("wecom-auth: a contact change was not applied: {e}"));
            response
        }
    }
}

/// The query's own shape, before any key is used.
fn checked(query: &SignedQuery<'_>) -> Result<(), CallbackError> {
    // Lowercase only, as WeCom sends it: the seen-marker is keyed by the
    // signature as given, so one signature has one spelling.
    if query.msg_signature.len() != 40
        || !query
            .msg_signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(CallbackError::Malformed(
            "msg_signature is missing or not lowercase hex SHA-1",
        ));
    }
    if query.timestamp.is_empty() || query.nonce.is_empty() || query.nonce.len() > 64 {
        return Err(CallbackError::Malformed("timestamp or nonce is missing"));
    }
    Ok(())
}

fn change_detail(change: &ContactChange) -> &'static str {
    match change.change_type.as_str() {
        "delete_user" => "delete_user",
        "update_user" if change.member_gone() => "update_user: disabled",
        "update_user" if change.new_user_id.is_some() => "update_user: new userid",
        "update_user" => "update_user",
        "create_user" => "create_user",
        "update_tag" => "update_tag",
        "create_party" => "create_party",
        "update_party" => "update_party",
        "delete_party" => "delete_party",
        _ => "another change",
    }
}

fn refused<K, T>(ctx: &Ctx<'_, '_, K, T>, entry: &Entry, e: &CallbackError) -> Response {
    let status = match e {
        CallbackError::Malformed(_) => 400,
        CallbackError::Replayed => 409,
        _ => 403,
    };
    let event = audit::Event {
        authenticator: Some(&entry.authenticator.name),
        detail: Some(e.reason()),
        ..audit::Event::of(ctx, "callback-refused", "refused")
    };
    plain(status, e.reason()).audited(&event)
}

/// A text answer of exactly `text` (WeCom compares the echostr byte for byte).
fn plain_exact(status: u16, text: String) -> Response {
    Response::new(status)
        .with_header("content-type", "text/plain; charset=utf-8")
        .with_body(text)
}
