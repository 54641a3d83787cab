//! Who may enter, in the front: an authenticator's rules (`allowed_*`,
//! `denied_*`) at login and at `/verify`, and at `/verify` also the proxy's
//! own (`?allowed_departments=12,34&allowed_tags=7&allowed_users=a,b`, as
//! oauth2-proxy's `/oauth2/auth?allowed_groups=`): both must let the member
//! in. Facts come from WeCom, cached (`core/facts.rs`); when WeCom will not
//! give them, the answer fails closed. A refusal is 403, naming only the
//! class of rule that refused.

use super::audit::{self, Audited as _};
use super::config::Entry;
use super::context::Ctx;
use super::errors::{ErrorJson, error_response};
use super::html::{self, ErrorPage};
use super::message::Response;
use crate::core::access::{Refusal, RuleClass, RuleSet, Rules, Verdict};
use crate::core::facts;
use crate::core::ports::{KeyValue, Transport};
use crate::core::texts::{self, Text};
use crate::core::wecom::WecomApi;

/// The proxy's rules of this `/verify` request, or a 400 naming the bad list.
pub(super) fn from_query<K, T>(ctx: &Ctx<'_, '_, K, T>) -> Result<Rules, Box<Response>> {
    let get = |name: String| ctx.params.get(&name).unwrap_or_default().to_owned();
    let parse = |prefix: &str| {
        RuleSet::parse(
            &get(format!("{prefix}_users")),
            &get(format!("{prefix}_departments")),
            &get(format!("{prefix}_tags")),
        )
    };
    match (parse("allowed"), parse("denied")) {
        (Ok(allow), Ok(deny)) => Ok(Rules { allow, deny }),
        (Err(why), _) | (_, Err(why)) => Err(Box::new(Response::json(
            400,
            &ErrorJson::plain("bad-request", 400, &why).body(),
        ))),
    }
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
    let facts = match facts::gather(&api, &needs, userid, fresh_departments, entry.facts_max_age) {
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
    let (text, class): (Text, &'static str) = match refusal {
        Refusal::DeniedBy(RuleClass::User) => (texts::REFUSED_BY_USER_RULE, "user"),
        Refusal::DeniedBy(RuleClass::Department) => {
            (texts::REFUSED_BY_DEPARTMENT_RULE, "department")
        }
        Refusal::DeniedBy(RuleClass::Tag) => (texts::REFUSED_BY_TAG_RULE, "tag"),
        Refusal::NotAllowed => (texts::NOT_ALLOWED_BY_RULES, "not-allowed"),
    };
    let message = text.get(ctx.language);
    let response = if ctx.json {
        let mut error = ErrorJson::plain("access-denied", 403, message);
        error.detail = Some(format!("rule: {class}"));
        Response::json(403, &error.body())
    } else {
        let page = ErrorPage {
            title: texts::TITLE_NO_ACCESS.get(ctx.language),
            message,
            status: 403,
            errcode: None,
            admin: Vec::new(),
            retry: None,
        };
        Response::html(403, html::error_page(ctx.language, &page))
    };
    let event = audit::Event {
        authenticator: Some(authenticator),
        wecom_userid: Some(userid),
        category: Some("access-denied"),
        detail: Some(match refusal {
            Refusal::DeniedBy(RuleClass::User) => "denied by a user rule",
            Refusal::DeniedBy(RuleClass::Department) => "denied by a department rule",
            Refusal::DeniedBy(RuleClass::Tag) => "denied by a tag rule",
            Refusal::NotAllowed => "no allow rule matched",
        }),
        ..audit::Event::of(ctx, "access-refused", "refused")
    };
    response.audited(&event)
}
