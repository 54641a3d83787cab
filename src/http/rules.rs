//! Who may enter, in the front: an authenticator's rules (`allowed_*`,
//! `denied_*`) at login and at `/verify`, and at `/verify` also the proxy's
//! own (`?allowed_departments=12,34&allowed_tags=7&allowed_users=a,b`, as
//! oauth2-proxy's `/oauth2/auth?allowed_groups=`): both must let the member
//! in. Ids mean something within one company only: with several
//! authenticators the request names whose (`?authenticator=NAME`), and
//! sessions of any other are refused. Facts come from WeCom, cached (`core/facts.rs`); when WeCom will not
//! give them, the answer fails closed. A refusal is 403, naming only the
//! class of rule that refused.

use super::audit::{self, Audited as _};
use super::config::Entry;
use super::context::Ctx;
use super::errors::{ErrorJson, error_response, refusal_answer};
use super::message::Response;
use crate::core::access::{Refusal, RuleClass, RuleSet, Rules};
use crate::core::error::AuthError;
use crate::core::login::{self, Session};
use crate::core::ports::{KeyValue, Transport};
use crate::core::settings::Field;
use crate::core::texts;

/// At most this many entries in the lists of one `/verify` request, and
/// this many tags (each costs a `tag/get` when its members are not cached).
const MAX_REQUEST_ENTRIES: usize = 32;
const MAX_REQUEST_TAGS: usize = 8;

/// The proxy's rules of this `/verify` request, or a 400 naming the bad
/// list: an unknown `allowed_*`/`denied_*` name, a list given twice or
/// blank, too many entries. A mistyped rule never silently lets everyone in.
pub(super) fn from_query<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Result<Rules, Box<Response>> {
    let bad = |why: String| {
        Box::new(Response::json(
            400,
            &ErrorJson::plain("bad-request", 400, &why).body(),
        ))
    };
    let mut lists: [Option<String>; 6] = Default::default();
    let query = ctx.query.unwrap_or_default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !(key.starts_with("allowed_") || key.starts_with("denied_")) {
            continue;
        }
        let Some(at) = Field::RULE_LISTS.iter().position(|f| f.is_variable(&key)) else {
            return Err(bad(format!(
                "{key} is not a rule: use allowed_ or denied_ with users, departments or tags"
            )));
        };
        if lists[at].is_some() {
            return Err(bad(format!("{key} is given twice")));
        }
        if value.split(',').all(|item| item.trim().is_empty()) {
            return Err(bad(format!("{key} is empty")));
        }
        lists[at] = Some(value.into_owned());
    }
    let list = |at: usize| lists[at].as_deref().unwrap_or_default();
    let rules = match (
        RuleSet::parse(list(0), list(1), list(2)),
        RuleSet::parse(list(3), list(4), list(5)),
    ) {
        (Ok(allow), Ok(deny)) => Rules { allow, deny },
        (Err(why), _) | (_, Err(why)) => return Err(bad(why)),
    };
    let count = |set: &RuleSet| set.users.len() + set.departments.len() + set.tags.len();
    if count(&rules.allow) + count(&rules.deny) > MAX_REQUEST_ENTRIES
        || rules.allow.tags.len() + rules.deny.tags.len() > MAX_REQUEST_TAGS
    {
        return Err(bad(format!(
            "at most {MAX_REQUEST_ENTRIES} entries and {MAX_REQUEST_TAGS} tags per request"
        )));
    }
    Ok(rules)
}

/// `session` with the member's groups when its authenticator's rules and
/// `request_rules` let the member in, or the answer why not: 403 naming the
/// class of rule, or WeCom's error when the facts cannot be had. No WeCom
/// call when the rules and groups need no facts or the facts are cached.
pub(super) fn admit<K: KeyValue, T: Transport>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    session: Session,
    request_rules: &Rules,
) -> Result<Session, Box<Response>> {
    let userid = session.verified.claims.wecom_userid.clone();
    let env = ctx.env;
    let more = [request_rules];
    login::admit_session(
        &entry.authenticator,
        session,
        &more,
        env.now,
        env.transport,
        env.kv,
    )
    .map_err(|e| Box::new(refusal(ctx, &entry.authenticator.name, Some(&userid), &e)))
}

/// The answer to a member the access rules refused, or whose facts WeCom
/// would not give (`e`), with its `access-refused` audit line.
pub(super) fn refusal<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: &str,
    userid: Option<&str>,
    e: &AuthError,
) -> Response {
    match e {
        AuthError::AccessRefused {
            refusal,
            wecom_userid,
        } => refused(ctx, authenticator, Some(wecom_userid), *refusal),
        e => {
            let event = audit::Event {
                authenticator: Some(authenticator),
                wecom_userid: userid,
                detail: Some("the access rules or groups need facts WeCom did not give"),
                ..audit::Event::of(ctx, "access-refused", "refused")
            }
            .failed(e);
            error_response(ctx, e, None).audited(&event)
        }
    }
}

fn refused<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: &str,
    userid: Option<&str>,
    refusal: Refusal,
) -> Response {
    // One mapping: the member's text, the JSON detail, the audit detail.
    let (text, class, audited) = match refusal {
        Refusal::DeniedBy(RuleClass::User) => {
            (texts::REFUSED_BY_USER_RULE, "user", "denied by a user rule")
        }
        Refusal::DeniedBy(RuleClass::Department) => (
            texts::REFUSED_BY_DEPARTMENT_RULE,
            "department",
            "denied by a department rule",
        ),
        Refusal::DeniedBy(RuleClass::Tag) => {
            (texts::REFUSED_BY_TAG_RULE, "tag", "denied by a tag rule")
        }
        Refusal::NotAllowed => (
            texts::NOT_ALLOWED_BY_RULES,
            "not-allowed",
            "no allow rule matched",
        ),
    };
    let detail = Some(format!("rule: {class}"));
    let title = texts::TITLE_NO_ACCESS;
    let response = refusal_answer(ctx, 403, "access-denied", title, text, detail);
    let event = audit::Event {
        authenticator: Some(authenticator),
        wecom_userid: userid,
        category: Some("access-denied"),
        detail: Some(audited),
        ..audit::Event::of(ctx, "access-refused", "refused")
    };
    response.audited(&event)
}
