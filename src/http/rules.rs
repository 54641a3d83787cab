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
use super::config::{Entry, RULE_LISTS};
use super::context::Ctx;
use super::errors::{ErrorJson, error_response, refusal_answer};
use super::message::Response;
use crate::core::access::{Refusal, RuleClass, RuleSet, Rules, Verdict};
use crate::core::facts;
use crate::core::ports::{KeyValue, Transport};
use crate::core::texts;
use crate::core::wecom::WecomApi;

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
        let Some(at) = RULE_LISTS.iter().position(|l| *l == key) else {
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

/// Lets member `userid` of `entry` in (None), or answers why not (403, or
/// the WeCom error when the facts cannot be had). No WeCom call when the
/// rules need no facts or the facts are cached. `fresh_departments`: the
/// member's departments a login just read from WeCom.
pub(super) fn refusal<K: KeyValue, T: Transport>(
    ctx: &Ctx<'_, '_, K, T>,
    entry: &Entry,
    userid: &str,
    request_rules: &Rules,
    fresh_departments: Option<Vec<u32>>,
) -> Option<Response> {
    let sets = [&entry.rules, request_rules];
    if sets.iter().all(|r| r.is_empty()) {
        return None;
    }
    // One gathering for the facts every set needs.
    let mut needs = Rules::default();
    for rules in sets {
        needs.allow.departments.extend(&rules.allow.departments);
        needs.allow.departments.extend(&rules.deny.departments);
        needs.allow.tags.extend(&rules.allow.tags);
        needs.allow.tags.extend(&rules.deny.tags);
    }
    let api = WecomApi {
        authenticator: &entry.authenticator,
        transport: ctx.env.transport,
        kv: ctx.env.kv,
        now: ctx.env.now,
    };
    // A tree that lacks one of the member's departments or an ancestor
    // (created since it was cached) is fetched again once.
    let gathered = facts::gather(&api, &needs, userid, fresh_departments, entry.facts_max_age)
        .and_then(|facts| {
            if facts.is_complete() {
                Ok(facts)
            } else {
                facts::gather(&api, &needs, userid, None, 0)
            }
        });
    let facts = match gathered {
        Ok(facts) => facts,
        Err(e) => {
            let event = audit::Event {
                authenticator: Some(&entry.authenticator.name),
                wecom_userid: Some(userid),
                detail: Some("the access rules need facts WeCom did not give"),
                ..audit::Event::of(ctx, "access-refused", "refused")
            }
            .failed(&e);
            return Some(error_response(ctx, &e, None).audited(&event));
        }
    };
    // Still incomplete: a deny rule above the member could not match, so
    // deny rules fail closed too.
    let denies_by_tree = sets
        .iter()
        .any(|r| !r.deny.departments.is_empty() || !r.deny.tags.is_empty());
    if !facts.is_complete() && denies_by_tree {
        return Some(refused(
            ctx,
            &entry.authenticator.name,
            userid,
            Refusal::NotAllowed,
        ));
    }
    sets.iter().find_map(|rules| match rules.evaluate(&facts) {
        Verdict::Denied(why) => Some(refused(ctx, &entry.authenticator.name, userid, why)),
        Verdict::Allowed => None,
    })
}

fn refused<K, T>(
    ctx: &Ctx<'_, '_, K, T>,
    authenticator: &str,
    userid: &str,
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
        wecom_userid: Some(userid),
        category: Some("access-denied"),
        detail: Some(audited),
        ..audit::Event::of(ctx, "access-refused", "refused")
    };
    response.audited(&event)
}
