//! The facts access rules and groups need ([`super::access`]), from
//! WeCom's own APIs, cached in the key-value store for a bounded age: a
//! member moved out of a department loses access at most `max_age` seconds
//! later. A login refreshes the member's own departments. Any refusal or
//! failure of WeCom fails closed: no facts, no access.
//!
//! | key | value |
//! |---|---|
//! | `access-facts/<corp>/<agent>/member/<userid, lowercase>` | `{"at": unix s, "value": {"departments": [id]}}` |
//! | `access-facts/<corp>/<agent>/tree` | `{"at", "value": {"tree": [[id, parentid]]}}` |
//! | `access-facts/<corp>/<agent>/tags` | `{"at", "value": {"tags": [[tagid, tagname]]}}` (`tag/list`, for the groups) |
//! | `access-facts/<corp>/<agent>/tag/<tagid>` | `{"at", "value": {"name", "users": [userid], "departments": [id]}}` |
//! | `access-facts/<corp>/<agent>/view/<userid, lowercase>` | `{"at": the oldest fact's, "departments", "tree": the member's way up, "tags": [tagid], "holding": [[tagid, name]], "all_tags"}`: what the rules and groups need of one member, read in one `get` |
//! | `<any of the above>/refused` | `{"at", "value": {"errcode"}}`: WeCom refused it, remembered for [`REFUSAL_SECONDS`] |
//!
//! A record this version cannot read (an older layout) is a cache miss.
//!
//! One key per member, per tag, one tree and one tag list per app,
//! overwritten: bounded by the company's size. A tag id a rule names is
//! checked against the cached tag list first, so made-up ids cost no call
//! and leave no key.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::access::{Access, Facts, Group, GroupKinds, Refusal, Rules, TagMembers, Verdict};
use super::error::{AuthError, WecomError, errcode};
use super::ports::{KeyValue, Transport, decode, set_json};
use super::settings::Authenticator;
use super::wecom::{FactAnswer, FactQuery, WecomApi};

#[derive(Serialize, Deserialize)]
struct Cached<T> {
    /// Unix seconds when WeCom said it.
    at: u64,
    value: T,
}

/// How long WeCom's refusal of a fact is remembered, in seconds.
const REFUSAL_SECONDS: u64 = 60;
/// An incomplete tree is fetched again when older than this, in seconds.
const REFETCH_SECONDS: u64 = 60;

#[derive(Clone, Serialize, Deserialize)]
struct Refused {
    errcode: i32,
}

#[derive(Clone, Serialize, Deserialize)]
struct MemberDepartments {
    departments: Vec<u32>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Tree {
    tree: Vec<(u32, u32)>,
}

#[derive(Clone, Serialize, Deserialize)]
struct TagList {
    tags: Vec<(u32, String)>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Tag {
    name: Option<String>,
    users: Vec<String>,
    departments: Vec<u32>,
}

/// What to gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Needs {
    /// The member's departments and the tree.
    departments: bool,
    /// Tags whose members are needed (the rules name them).
    tags: Vec<u32>,
    /// Every tag of the company (`tag/list`), for the groups.
    all_tags: bool,
}

impl Needs {
    /// What evaluating every set of `rules` and telling `groups` needs.
    fn of(rules: &[&Rules], groups: GroupKinds) -> Needs {
        let mut needs = Needs {
            departments: groups.any(),
            tags: Vec::new(),
            all_tags: groups.tags,
        };
        for set in rules.iter().copied() {
            needs.departments |= set.needs_departments();
            for tag in set.allow.tags.iter().chain(&set.deny.tags) {
                if !needs.tags.contains(tag) {
                    needs.tags.push(*tag);
                }
            }
        }
        needs
    }

    fn is_nothing(&self) -> bool {
        !self.departments && self.tags.is_empty() && !self.all_tags
    }
}

fn prefix<T: Transport, K: KeyValue>(api: &WecomApi<'_, T, K>) -> String {
    app_prefix(api.authenticator)
}

/// The cache's prefix for `authenticator`'s app (`access-facts/<corp>/<agent>`).
fn app_prefix(authenticator: &Authenticator) -> String {
    format!(
        "access-facts/{}/{}",
        authenticator.corp_id, authenticator.agent_id
    )
}

/// Drops `keys` and their refusals.
fn forget(kv: &impl KeyValue, keys: &[String]) -> Result<(), AuthError> {
    for key in keys {
        kv.delete(key)?;
        kv.delete(&format!("{key}/refused"))?;
    }
    Ok(())
}

fn app_keys(authenticator: &Authenticator, userid: &str) -> Keys {
    Keys {
        prefix: app_prefix(authenticator),
        userid: userid.to_ascii_lowercase(),
    }
}

/// Drops what is cached of member `userid` (departments and view), after
/// a contact change: the next request asks WeCom.
pub fn forget_member(
    kv: &impl KeyValue,
    authenticator: &Authenticator,
    userid: &str,
) -> Result<(), AuthError> {
    let keys = app_keys(authenticator, userid);
    forget(kv, &[keys.member(), keys.view()])
}

/// Drops the cached members of tag `tag`, and the tag list.
pub fn forget_tag(
    kv: &impl KeyValue,
    authenticator: &Authenticator,
    tag: u32,
) -> Result<(), AuthError> {
    let keys = app_keys(authenticator, "");
    forget(kv, &[keys.tag(tag), keys.tags()])
}

/// Drops the cached department tree.
pub fn forget_tree(kv: &impl KeyValue, authenticator: &Authenticator) -> Result<(), AuthError> {
    forget(kv, &[app_keys(authenticator, "").tree()])
}

/// A cache lookup.
enum Lookup<V> {
    Hit(V),
    /// WeCom refused it a moment ago.
    Refused(AuthError),
    Miss,
}

/// The cache records a gathering may use: each key and its refusal key.
/// One `get` each (no `get-many`: see [`KeyValue`]). A store that fails is
/// the request's error, never a miss: a miss asks WeCom again, so a failing
/// store would spend WeCom's call quota on every request, unseen.
struct Prefetched(Vec<(String, Vec<u8>)>);

impl Prefetched {
    fn read<T: Transport, K: KeyValue>(
        api: &WecomApi<'_, T, K>,
        keys: &[String],
    ) -> Result<Prefetched, AuthError> {
        let mut found = Vec::new();
        for key in keys
            .iter()
            .flat_map(|key| [key.clone(), format!("{key}/refused")])
        {
            if let Some(value) = api.kv.get(&key)? {
                found.push((key, value));
            }
        }
        Ok(Prefetched(found))
    }

    fn decoded<V: DeserializeOwned>(&self, key: &str) -> Option<V> {
        let (_, bytes) = self.0.iter().find(|(k, _)| k == key)?;
        decode(key, bytes).ok()
    }
}

/// The value at `key` (read in `records`) if younger than `max_age` at
/// `now`, or the refusal remembered there.
fn lookup<T, K, V>(
    api: &WecomApi<'_, T, K>,
    records: &Prefetched,
    key: &str,
    max_age: u64,
    oldest: &Cell<u64>,
) -> Lookup<V>
where
    T: Transport,
    K: KeyValue,
    V: DeserializeOwned,
{
    // A record from a clock running ahead by more than a minute is not
    // trusted (within a minute: at most that much past the bound).
    let fresh = |at: u64, age: u64| api.now < at.saturating_add(age) && at <= api.now + 60;
    if let Some(hit) = records.decoded::<Cached<V>>(key)
        && fresh(hit.at, max_age)
    {
        oldest.set(oldest.get().min(hit.at));
        return Lookup::Hit(hit.value);
    }
    // WeCom's refusal (an unknown tag, no permission) is remembered for a
    // minute: a proxy rule naming a bad id does not cost a call per request.
    if let Some(refused) = records.decoded::<Cached<Refused>>(&format!("{key}/refused"))
        && fresh(refused.at, REFUSAL_SECONDS)
    {
        return Lookup::Refused(AuthError::Wecom(WecomError {
            errcode: refused.value.errcode,
            errmsg: "refused a moment ago (remembered for a minute)".into(),
            api: "access facts",
        }));
    }
    Lookup::Miss
}

/// Caches what WeCom answered for `key`: the value, or its refusal. A
/// cache write that fails is the request's error: taken for done, every
/// request after it would ask WeCom again (a store refusing writes, such as
/// Redis at `maxmemory`, still answers reads).
fn remember<T, K, V>(
    api: &WecomApi<'_, T, K>,
    key: &str,
    fetched: Result<V, AuthError>,
) -> Result<V, AuthError>
where
    T: Transport,
    K: KeyValue,
    V: Serialize,
{
    match &fetched {
        Ok(value) => set_json(api.kv, key, &Cached { at: api.now, value })?,
        // A refusal of the fact itself, not of the token (gettoken's errors
        // are every call's).
        Err(AuthError::Wecom(e)) if e.api != "gettoken" => {
            let value = Refused { errcode: e.errcode };
            let record = Cached { at: api.now, value };
            set_json(api.kv, &format!("{key}/refused"), &record)?;
        }
        Err(_) => {}
    }
    fetched
}

/// What `needs` asks of member `userid`, from the cache when younger than
/// `max_age` seconds, else from WeCom, what is missing asked for together:
/// the member's departments (`user/get`), the tree
/// (`department/simplelist`), the tag list (`tag/list`) and the tags the
/// rules name (`tag/get`) in one round trip, then the listed tags not
/// cached in a second. `fresh_departments`: the member's departments a
/// login just read (they replace the cached ones). No WeCom call when
/// nothing is needed or everything is cached. Every answer is cached (a
/// refusal for [`REFUSAL_SECONDS`]); the first error is returned. `oldest`
/// is lowered to the time WeCom told the oldest fact served from the cache
/// (facts asked of WeCom now count as now).
fn gather<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    needs: &Needs,
    userid: &str,
    fresh_departments: Option<Vec<u32>>,
    max_age: u64,
    oldest: &Cell<u64>,
) -> Result<Facts, AuthError> {
    let mut facts = Facts {
        userid: userid.to_owned(),
        ..Facts::default()
    };
    if needs.is_nothing() {
        return Ok(facts);
    }
    let keys = Keys {
        prefix: prefix(api),
        userid: userid.to_ascii_lowercase(),
    };
    // What may be cached, read in one go.
    let mut wanted_keys = vec![keys.tree()];
    if fresh_departments.is_none() {
        wanted_keys.push(keys.member());
    }
    if needs.all_tags || !needs.tags.is_empty() {
        wanted_keys.push(keys.tags());
    }
    let records = Prefetched::read(api, &wanted_keys)?;
    let mut ask = Vec::new();
    match fresh_departments {
        Some(departments) => {
            let fresh = MemberDepartments { departments };
            facts.departments = remember(api, &keys.member(), Ok(fresh))?.departments;
        }
        None => {
            match lookup::<T, K, MemberDepartments>(api, &records, &keys.member(), max_age, oldest)
            {
                Lookup::Hit(member) => facts.departments = member.departments,
                Lookup::Refused(e) => return Err(e),
                Lookup::Miss => ask.push(FactQuery::Departments(userid.to_owned())),
            }
        }
    }
    match lookup::<T, K, Tree>(api, &records, &keys.tree(), max_age, oldest) {
        Lookup::Hit(tree) => facts.tree = tree.tree,
        Lookup::Refused(e) => return Err(e),
        Lookup::Miss => ask.push(FactQuery::Tree),
    }
    // The tag list serves the groups, and vets the tags a rule names: an id
    // not in it is refused without a `tag/get` (a proxy naming made-up ids
    // costs no WeCom call and leaves no key).
    let mut listed = None;
    if needs.all_tags || !needs.tags.is_empty() {
        match lookup::<T, K, TagList>(api, &records, &keys.tags(), max_age, oldest) {
            Lookup::Hit(list) => listed = Some(list.tags),
            Lookup::Refused(e) => return Err(e),
            Lookup::Miss => ask.push(FactQuery::Tags),
        }
    }
    let listed_ids = |list: &[(u32, String)]| list.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    if let Some(list) = &listed
        && let Some(unknown) = needs.tags.iter().find(|id| !listed_ids(list).contains(id))
    {
        return Err(AuthError::Wecom(WecomError {
            errcode: errcode::INVALID_TAG,
            errmsg: format!("tag {unknown} is not among the company's tags (tag/list)"),
            api: "tag/list",
        }));
    }
    let mut wanted = needs.tags.clone();
    if needs.all_tags {
        let more = listed.as_deref().map(listed_ids).unwrap_or_default();
        wanted.extend(more.into_iter().filter(|id| !needs.tags.contains(id)));
    }
    ask.extend(cached_tags(
        api,
        &keys,
        &mut facts,
        &wanted,
        &needs.tags,
        max_age,
        oldest,
    )?);
    let mut first_error = None;
    let rule_tags = &needs.tags;
    let newly_listed = ask_and_remember(api, &keys, &mut facts, &ask, rule_tags, &mut first_error);
    // The tag list just came: its tags not yet at hand, in a second round.
    if let Some(list) = newly_listed
        && needs.all_tags
        && first_error.is_none()
    {
        let more: Vec<u32> = listed_ids(&list)
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        let ask = cached_tags(api, &keys, &mut facts, &more, &needs.tags, max_age, oldest)?;
        ask_and_remember(api, &keys, &mut facts, &ask, rule_tags, &mut first_error);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(facts),
    }
}

/// The cache keys of one app's facts.
struct Keys {
    prefix: String,
    /// Lowercase: userids compare ignoring ASCII case.
    userid: String,
}

impl Keys {
    fn member(&self) -> String {
        format!("{}/member/{}", self.prefix, self.userid)
    }
    fn tree(&self) -> String {
        format!("{}/tree", self.prefix)
    }
    fn tags(&self) -> String {
        format!("{}/tags", self.prefix)
    }
    fn tag(&self, tagid: u32) -> String {
        format!("{}/tag/{tagid}", self.prefix)
    }
    fn view(&self) -> String {
        format!("{}/view/{}", self.prefix, self.userid)
    }
}

/// What the rules and groups need of one member ([`Facts::reduced`]): one
/// small record, read in one `get` while younger than the bound counted
/// from the oldest fact it was made of (`at`), instead of the tree and
/// every tag. Kept flat and lean: it is read on every request.
#[derive(Serialize, Deserialize)]
struct View {
    at: u64,
    departments: Vec<u32>,
    /// The departments on the member's way up, `(id, parentid)`.
    tree: Vec<(u32, u32)>,
    /// Every tag it was made with.
    tags: Vec<u32>,
    /// Those holding the member, with their names.
    holding: Vec<(u32, Option<String>)>,
    /// Made with every tag of the company (the groups' tags).
    all_tags: bool,
}

impl View {
    fn of(facts: &Facts, all_tags: bool, at: u64) -> View {
        let reduced = facts.reduced();
        View {
            at,
            departments: reduced.departments,
            tree: reduced.tree,
            tags: reduced.tags.iter().map(|t| t.tagid).collect(),
            holding: reduced
                .tags
                .into_iter()
                .filter(|t| !t.users.is_empty())
                .map(|t| (t.tagid, t.name))
                .collect(),
            all_tags,
        }
    }

    /// Whether it holds what `needs` asks for.
    fn covers(&self, needs: &Needs) -> bool {
        (self.all_tags || !needs.all_tags) && needs.tags.iter().all(|id| self.tags.contains(id))
    }

    /// Adds what `earlier` (same member, same way up) covered and this does
    /// not; dated by the older of the two.
    fn merge(&mut self, earlier: View) {
        self.at = self.at.min(earlier.at);
        self.all_tags |= earlier.all_tags;
        for tagid in earlier.tags {
            if !self.tags.contains(&tagid) {
                self.tags.push(tagid);
                if let Some(held) = earlier.holding.iter().find(|(id, _)| *id == tagid) {
                    self.holding.push(held.clone());
                }
            }
        }
    }

    fn facts(&self, userid: &str) -> Facts {
        let holding = &self.holding;
        Facts {
            userid: userid.to_owned(),
            departments: self.departments.clone(),
            tree: self.tree.clone(),
            tags: self
                .tags
                .iter()
                .map(|&tagid| {
                    let held = holding.iter().find(|(id, _)| *id == tagid);
                    TagMembers {
                        tagid,
                        name: held.and_then(|(_, name)| name.clone()),
                        users: held.map(|_| vec![userid.to_owned()]).unwrap_or_default(),
                        departments: Vec::new(),
                    }
                })
                .collect(),
        }
    }
}

/// Puts the cached tags among `tagids` into `facts`; answers the queries
/// for the others. A remembered refusal is the error.
fn cached_tags<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    keys: &Keys,
    facts: &mut Facts,
    tagids: &[u32],
    rule_tags: &[u32],
    max_age: u64,
    oldest: &Cell<u64>,
) -> Result<Vec<FactQuery>, AuthError> {
    let tagids: Vec<u32> = tagids
        .iter()
        .copied()
        .filter(|id| !facts.tags.iter().any(|t| t.tagid == *id))
        .collect();
    let tag_keys: Vec<String> = tagids.iter().map(|id| keys.tag(*id)).collect();
    let records = Prefetched::read(api, &tag_keys)?;
    let mut ask = Vec::new();
    for (&tagid, key) in tagids.iter().zip(&tag_keys) {
        match lookup::<T, K, Tag>(api, &records, key, max_age, oldest) {
            Lookup::Hit(tag) => facts.tags.push(TagMembers {
                tagid,
                name: tag.name,
                users: tag.users,
                departments: tag.departments,
            }),
            // A listed tag no rule names, gone since (40068): no group.
            Lookup::Refused(AuthError::Wecom(e))
                if e.errcode == errcode::INVALID_TAG && !rule_tags.contains(&tagid) => {}
            Lookup::Refused(e) => return Err(e),
            Lookup::Miss if !ask.contains(&FactQuery::Tag(tagid)) => {
                ask.push(FactQuery::Tag(tagid))
            }
            Lookup::Miss => {}
        }
    }
    Ok(ask)
}

/// Asks WeCom `queries` together, caches every answer (or refusal), puts
/// them into `facts`, keeps the first error; answers the tag list if asked.
/// A listed tag no rule names that is gone (40068: deleted since the list
/// was cached) is left out of the groups, not an error.
fn ask_and_remember<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    keys: &Keys,
    facts: &mut Facts,
    queries: &[FactQuery],
    rule_tags: &[u32],
    first_error: &mut Option<AuthError>,
) -> Option<Vec<(u32, String)>> {
    if queries.is_empty() {
        return None;
    }
    let mut listed = None;
    for (query, answer) in queries.iter().zip(api.contact_facts(queries)) {
        let kept = match (query, answer) {
            (FactQuery::Departments(_), answer) => {
                let answer = answer.and_then(|a| match a {
                    FactAnswer::Departments(departments) => Ok(MemberDepartments { departments }),
                    _ => Err(mismatch()),
                });
                remember(api, &keys.member(), answer).map(|m| facts.departments = m.departments)
            }
            (FactQuery::Tree, answer) => {
                let answer = answer.and_then(|a| match a {
                    FactAnswer::Tree(tree) => Ok(Tree { tree }),
                    _ => Err(mismatch()),
                });
                remember(api, &keys.tree(), answer).map(|t| facts.tree = t.tree)
            }
            (FactQuery::Tags, answer) => {
                let answer = answer.and_then(|a| match a {
                    FactAnswer::Tags(tags) => Ok(TagList { tags }),
                    _ => Err(mismatch()),
                });
                remember(api, &keys.tags(), answer).map(|l| listed = Some(l.tags))
            }
            (FactQuery::Tag(tagid), Err(AuthError::Wecom(e)))
                if e.errcode == errcode::INVALID_TAG && !rule_tags.contains(tagid) =>
            {
                Ok(())
            }
            (FactQuery::Tag(tagid), answer) => {
                let answer = answer.and_then(|a| match a {
                    FactAnswer::Tag(t) => Ok(Tag {
                        name: t.name,
                        users: t.users,
                        departments: t.departments,
                    }),
                    _ => Err(mismatch()),
                });
                remember(api, &keys.tag(*tagid), answer).map(|tag| {
                    facts.tags.push(TagMembers {
                        tagid: *tagid,
                        name: tag.name,
                        users: tag.users,
                        departments: tag.departments,
                    })
                })
            }
        };
        if let Err(e) = kept {
            first_error.get_or_insert(e);
        }
    }
    listed
}

fn mismatch() -> AuthError {
    AuthError::WecomUnavailable("a contact answer of another kind".into())
}

fn refused(refusal: Refusal, userid: &str) -> AuthError {
    AuthError::AccessRefused {
        refusal,
        wecom_userid: userid.to_owned(),
    }
}

/// Keeps the departments WeCom just told of member `userid` (a profile
/// refresh read them) as the freshest facts. Errors: the store's (the view
/// left in place would admit by the old departments).
pub fn record_departments<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    userid: &str,
    departments: Vec<u32>,
) -> Result<(), AuthError> {
    let keys = Keys {
        prefix: prefix(api),
        userid: userid.to_ascii_lowercase(),
    };
    remember(api, &keys.member(), Ok(MemberDepartments { departments }))?;
    // The member's view was made with the old departments.
    Ok(api.kv.delete(&keys.view())?)
}

/// Lets member `userid` in under `access`'s rules and each of `more` (a
/// proxy's own, at `/verify`), and answers the member's groups of the
/// kinds `groups` names (a login tells none: it gathers only what its
/// rules need). One gathering serves all; a tree lacking one of the
/// member's departments or an ancestor (created since it was cached) is
/// fetched again once, and when it stays incomplete deny rules fail closed.
///
/// Errors: [`AuthError::AccessRefused`] naming the class of rule that
/// refused; WeCom's error when the facts cannot be had (60011: the app may
/// not read the contacts the rules need); the store's.
pub fn admit<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    access: &Access,
    more: &[&Rules],
    groups: GroupKinds,
    userid: &str,
    fresh_departments: Option<Vec<u32>>,
) -> Result<Vec<Group>, AuthError> {
    let sets: Vec<&Rules> = std::iter::once(&access.rules)
        .chain(more.iter().copied())
        .filter(|r| !r.is_empty())
        .collect();
    let needs = Needs::of(&sets, groups);
    if needs.is_nothing() && sets.is_empty() {
        return Ok(Vec::new());
    }
    let max_age = access.facts_max_age;
    let keys = Keys {
        prefix: prefix(api),
        userid: userid.to_ascii_lowercase(),
    };
    // A deny rule by department or tag on an incomplete tree needs the
    // whole tree (`can_place`), which the view does not keep.
    let denies_by_tree = sets
        .iter()
        .any(|r| !r.deny.departments.is_empty() || !r.deny.tags.is_empty());
    // A view still within the bound (an incomplete one: within the minute
    // after which the full path would fetch the tree again).
    let fresh = |view: &View, complete: bool| {
        let bound = if complete {
            max_age
        } else {
            max_age.min(REFETCH_SECONDS)
        };
        api.now < view.at.saturating_add(bound) && view.at <= api.now + 60
    };
    // A store that fails is the error; a view it cannot read (another
    // release's layout) is made again.
    let earlier = if needs.departments {
        let key = keys.view();
        api.kv
            .get(&key)?
            .and_then(|bytes| decode::<View>(&key, &bytes).ok())
    } else {
        None
    };
    if fresh_departments.is_none()
        && let Some(view) = &earlier
        && view.covers(&needs)
    {
        let facts = view.facts(userid);
        let complete = facts.is_complete();
        if fresh(view, complete) && (complete || !denies_by_tree) {
            return judge(&facts, &sets, groups, userid);
        }
    }
    let oldest = Cell::new(api.now);
    let mut facts = gather(api, &needs, userid, fresh_departments, max_age, &oldest)?;
    // Rules by userid alone need no tree: nothing to complete.
    if needs.departments && !facts.is_complete() {
        let tree_only = Needs {
            departments: true,
            ..Needs::default()
        };
        // At most once a minute: an app whose visible range leaves out the
        // top of the tree sees an incomplete one for good.
        let again = gather(api, &tree_only, userid, None, REFETCH_SECONDS, &oldest)?;
        (facts.departments, facts.tree) = (again.departments, again.tree);
    }
    // Kept unless it could never serve (incomplete, and a deny rule needs
    // the whole tree). A failed write costs the next request the whole
    // reading.
    if needs.departments && (facts.is_complete() || !denies_by_tree) {
        let mut view = View::of(&facts, needs.all_tags, oldest.get());
        // What an earlier view of the same member covered stays covered, so
        // requests with other needs do not take turns rewriting it.
        if let Some(earlier) = earlier
            && earlier.departments == view.departments
            && earlier.tree == view.tree
            && fresh(&earlier, facts.is_complete())
        {
            view.merge(earlier);
        }
        set_json(api.kv, &keys.view(), &view)?;
    }
    // Still incomplete: a deny rule on a department the tree does not hold
    // could concern a department above the member it does not hold either.
    if needs.departments && !facts.is_complete() && sets.iter().any(|r| !facts.can_place(&r.deny)) {
        return Err(refused(Refusal::NotAllowed, userid));
    }
    judge(&facts, &sets, groups, userid)
}

/// Every set of rules on `facts`, then the member's groups.
fn judge(
    facts: &Facts,
    sets: &[&Rules],
    groups: GroupKinds,
    userid: &str,
) -> Result<Vec<Group>, AuthError> {
    for rules in sets {
        if let Verdict::Denied(why) = rules.evaluate(facts) {
            return Err(refused(why, userid));
        }
    }
    Ok(facts.groups(groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::{RuleSet, Verdict};
    use crate::core::ports::MemoryKv;
    use crate::core::wecom::tests::{Scripted, TOKEN_OK};
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn cached_facts_and_views_of_todays_layout_read_and_are_written_the_same() {
        use crate::core::ports::assert_layout_kept;
        let member: Cached<MemberDepartments> = assert_layout_kept("facts.member.json");
        assert_eq!(member.value.departments, [3, 7]);
        let tree: Cached<Tree> = assert_layout_kept("facts.tree.json");
        assert_eq!(tree.value.tree.len(), 3);
        let tags: Cached<TagList> = assert_layout_kept("facts.tags.json");
        assert_eq!(tags.value.tags[1], (9, "财务".to_string()));
        let tag: Cached<Tag> = assert_layout_kept("facts.tag.json");
        assert_eq!(tag.value.users, ["zhangsan"]);
        let refused: Cached<Refused> = assert_layout_kept("facts.refused.json");
        assert_eq!(refused.value.errcode, 60011);
        let view: View = assert_layout_kept("facts.view.json");
        assert_eq!(view.holding[1], (9, None));
        assert!(view.all_tags);
    }
    const TREE: &str = r#"{"errcode":0,"errmsg":"ok","department_id":[{"id":1,"parentid":0,"order":1},{"id":2,"parentid":1,"order":1},{"id":4,"parentid":2,"order":1}]}"#;
    const TAGS: &str = r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":7,"tagname":"运维"}]}"#;
    const TAG: &str =
        r#"{"errcode":0,"errmsg":"ok","tagname":"运维","userlist":[],"partylist":[4]}"#;
    const ZHANGSAN: &str =
        r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[4]}"#;

    fn rules() -> Rules {
        Rules {
            allow: RuleSet::parse("", "2", "7").unwrap(),
            deny: RuleSet::default(),
        }
    }

    fn at<'a>(
        a: &'a crate::core::settings::Authenticator,
        t: &'a Scripted,
        kv: &'a MemoryKv,
        now: u64,
    ) -> WecomApi<'a, Scripted, MemoryKv> {
        WecomApi {
            authenticator: a,
            transport: t,
            kv,
            now,
        }
    }

    /// [`gather`] with facts trusted for 300 s, the age left untracked.
    fn gather_for(
        api: &WecomApi<'_, Scripted, MemoryKv>,
        needs: &Needs,
        userid: &str,
        fresh_departments: Option<Vec<u32>>,
    ) -> Result<Facts, AuthError> {
        gather(api, needs, userid, fresh_departments, 300, &Cell::new(NOW))
    }

    /// Access with no rules of its own and facts trusted for `max_age` s.
    fn bounded(max_age: u64) -> Access {
        Access {
            facts_max_age: max_age,
            ..Access::default()
        }
    }

    fn needs(rules: &Rules) -> Needs {
        Needs::of(&[rules], GroupKinds::default())
    }

    #[test]
    fn facts_are_fetched_once_then_served_from_the_cache_until_they_age() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(ZHANGSAN)
            .json(TREE)
            .json(TAGS)
            .json(TAG);
        let api = |now| at(&a, &t, &kv, now);
        let facts = gather_for(&api(NOW), &needs(&rules()), "zhangsan", None).unwrap();
        assert_eq!(facts.departments, [4]);
        assert_eq!(rules().evaluate(&facts), Verdict::Allowed);
        assert_eq!(
            t.paths(),
            [
                "gettoken",
                "user/get",
                "department/simplelist",
                "tag/list",
                "tag/get"
            ]
        );
        // Cached: no call at all.
        let again = gather_for(&api(NOW + 299), &needs(&rules()), "ZhangSan", None).unwrap();
        assert_eq!(again.tree, facts.tree);
        assert_eq!(t.sent.borrow().len(), 5);
        // Aged: the member's departments again (moved to 财务部 meanwhile).
        let t2 = Scripted::default()
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","department":[3]}"#)
            .json(TREE)
            .json(TAGS)
            .json(TAG);
        let later = at(&a, &t2, &kv, NOW + 301);
        let moved = gather_for(&later, &needs(&rules()), "zhangsan", None).unwrap();
        assert_eq!(moved.departments, [3]);
        assert!(matches!(rules().evaluate(&moved), Verdict::Denied(_)));
        // Rules that need nothing cost nothing.
        let by_user = Rules {
            allow: RuleSet::parse("zhangsan", "", "").unwrap(),
            deny: RuleSet::default(),
        };
        let t3 = Scripted::default();
        let none = at(&a, &t3, &kv, NOW);
        assert!(gather_for(&none, &needs(&by_user), "zhangsan", None).is_ok());
        assert!(t3.sent.borrow().is_empty());
    }

    #[test]
    fn a_refusal_of_the_contact_data_fails_closed_and_a_login_refreshes_the_member() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default().json(TOKEN_OK).json(
            r#"{"errcode":60011,"errmsg":"no privilege to access/modify contact/party/agent"}"#,
        );
        let api = at(&a, &t, &kv, NOW);
        // The member's departments come from the login; the tree is refused.
        let refused = gather_for(&api, &needs(&rules()), "zhangsan", Some(vec![4])).unwrap_err();
        assert!(
            matches!(refused, AuthError::Wecom(ref e) if e.errcode == 60011),
            "{refused:?}"
        );
        // The tree, the tag list and the tag were asked for together.
        assert_eq!(
            t.paths(),
            ["gettoken", "department/simplelist", "tag/list", "tag/get"]
        );
        let key = format!("access-facts/{}/{}/member/zhangsan", a.corp_id, a.agent_id);
        assert!(kv.keys().contains(&key), "the login's departments are kept");
    }

    /// The groups: every tag of the company (`tag/list`), its members in
    /// flight together, all cached; the departments above the member.
    #[test]
    fn groups_list_the_departments_above_and_every_tag_holding_the_member() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(TREE)
            .json(r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":7,"tagname":"运维"},{"tagid":9,"tagname":"财务"}]}"#)
            .json(TAG)
            .json(r#"{"errcode":0,"errmsg":"ok","tagname":"财务","userlist":[],"partylist":[3]}"#);
        let api = at(&a, &t, &kv, NOW);
        let access = bounded(300);
        let kinds = GroupKinds::parse("departments,tags").unwrap();
        let groups = admit(&api, &access, &[], kinds, "zhangsan", Some(vec![4])).unwrap();
        let keys: Vec<String> = groups.iter().map(Group::key).collect();
        assert_eq!(keys, ["dept:4", "dept:2", "dept:1", "tag:7"]);
        assert_eq!(groups[3].name.as_deref(), Some("运维"));
        assert_eq!(
            t.paths(),
            [
                "gettoken",
                "department/simplelist",
                "tag/list",
                "tag/get",
                "tag/get"
            ]
        );
        // Cached: the same groups without a call.
        let again = admit(&api, &access, &[], kinds, "zhangsan", None).unwrap();
        assert_eq!(again, groups);
        assert_eq!(t.sent.borrow().len(), 5);
    }

    /// A deny rule whose tree stays incomplete refuses; a refusal names
    /// the class of rule.
    #[test]
    fn admit_evaluates_every_set_and_fails_closed_on_an_incomplete_tree() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(TREE)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"x","department":[5]}"#)
            .json(TREE);
        let api = |now| at(&a, &t, &kv, now);
        let deny = |departments| Rules {
            allow: RuleSet::default(),
            deny: RuleSet::parse("", departments, "").unwrap(),
        };
        let (deny_2, deny_9) = (deny("2"), deny("9"));
        let none = GroupKinds::default();
        let access = bounded(300);
        // Department 5 is in no tree: a deny rule on 9, which the tree does
        // not hold either, could be above it: refused. The tree is not
        // fetched again while younger than a minute.
        let refused = admit(&api(NOW), &access, &[&deny_9], none, "x", Some(vec![5])).unwrap_err();
        assert_eq!(refused, super::refused(Refusal::NotAllowed, "x"));
        assert_eq!(t.paths(), ["gettoken", "department/simplelist"]);
        // 5 is not in the tree: it may be new, and under 2. Refused too.
        assert_eq!(
            admit(&api(NOW), &access, &[&deny_2], none, "x", None),
            Err(super::refused(Refusal::NotAllowed, "x"))
        );
        // A minute on: the member and the tree again, still refused.
        let refused = admit(&api(NOW + 61), &access, &[&deny_9], none, "x", None).unwrap_err();
        assert_eq!(refused, super::refused(Refusal::NotAllowed, "x"));
        assert_eq!(
            t.paths(),
            [
                "gettoken",
                "department/simplelist",
                "user/get",
                "department/simplelist"
            ]
        );
        let api = api(NOW + 61);
        // The proxy's rules after the settings': a deny names its class.
        let denied = admit(&api, &access, &[&deny_2], none, "zhangsan", Some(vec![4])).unwrap_err();
        assert_eq!(
            denied,
            super::refused(
                Refusal::DeniedBy(crate::core::access::RuleClass::Department),
                "zhangsan"
            )
        );
    }

    /// A tag a rule names that the company's tag list does not hold is
    /// refused without a `tag/get` (and no key is left for it); a listed
    /// tag deleted since (40068) is left out of the groups.
    #[test]
    fn tags_are_vetted_against_the_tag_list() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(TREE)
            .json(r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":7,"tagname":"运维"},{"tagid":8,"tagname":"旧"}]}"#)
            .json(TAG)
            .json(r#"{"errcode":40068,"errmsg":"invalid tagid"}"#)
            .json(r#"{"errcode":40068,"errmsg":"invalid tagid"}"#);
        let api = at(&a, &t, &kv, NOW);
        let access = bounded(300);
        let kinds = GroupKinds::parse("departments,tags").unwrap();
        let groups = admit(&api, &access, &[], kinds, "zhangsan", Some(vec![4])).unwrap();
        let keys: Vec<String> = groups.iter().map(Group::key).collect();
        assert_eq!(keys, ["dept:4", "dept:2", "dept:1", "tag:7"]);
        let calls = t.sent.borrow().len();
        let made_up = Rules {
            allow: RuleSet::parse("", "", "7,123456").unwrap(),
            deny: RuleSet::default(),
        };
        let none = GroupKinds::default();
        let refused = admit(&api, &access, &[&made_up], none, "zhangsan", None).unwrap_err();
        assert!(
            matches!(refused, AuthError::Wecom(ref e) if e.errcode == 40068),
            "{refused:?}"
        );
        assert_eq!(
            t.sent.borrow().len(),
            calls,
            "no WeCom call for a made-up id"
        );
        assert!(
            !kv.keys()
                .iter()
                .any(|k| k.ends_with("/123456") || k.contains("/123456/")),
            "{:?}",
            kv.keys()
        );
        // A rule naming the deleted tag 8 is refused (and remembered); the
        // groups still leave it out instead of failing.
        let deleted = Rules {
            allow: RuleSet::parse("", "", "8").unwrap(),
            deny: RuleSet::default(),
        };
        let refused = admit(&api, &access, &[&deleted], none, "zhangsan", None).unwrap_err();
        assert!(matches!(refused, AuthError::Wecom(ref e) if e.errcode == 40068));
        let again = admit(&api, &access, &[], kinds, "zhangsan", None).unwrap();
        assert_eq!(again, groups);
        // Rules by userid alone need no fact: no call.
        let by_user = Rules {
            allow: RuleSet::parse("zhangsan", "", "").unwrap(),
            deny: RuleSet::default(),
        };
        let calls = t.sent.borrow().len();
        assert_eq!(
            admit(&api, &access, &[&by_user], none, "zhangsan", None),
            Ok(vec![])
        );
        assert_eq!(t.sent.borrow().len(), calls);
    }

    /// A store that fails a read on the facts path (the member's view, a
    /// cached fact) is the request's error, never a cache miss: a miss asks
    /// WeCom, so a failing store would spend the call quota unseen.
    #[test]
    fn a_store_that_fails_a_facts_read_is_the_error_and_costs_no_wecom_call() {
        use host_drafts::keyvalue::{FaultTiming, Op};
        let a = sample("corp").check().unwrap();
        let access = bounded(300);
        let engineering = Rules {
            allow: RuleSet::parse("", "2", "").unwrap(),
            deny: RuleSet::default(),
        };
        let none = GroupKinds::default();
        // Every read before WeCom would be asked: the member's view, the
        // cached tree and the member's departments (each with its refusal
        // record), then the access token.
        for skip in 0..6 {
            let kv = MemoryKv::default();
            kv.faults()
                .fail_op_with(Op::Get, skip, 1, FaultTiming::Before);
            let t = Scripted::default();
            let api = at(&a, &t, &kv, NOW);
            let got = admit(&api, &access, &[&engineering], none, "zhangsan", None);
            assert!(
                matches!(&got, Err(AuthError::Store(e)) if e.contains("injected fault")),
                "read {skip}: {got:?}"
            );
            assert!(t.sent.borrow().is_empty(), "read {skip}: WeCom was called");
        }
    }

    /// A store that refuses writes but answers reads (Redis at `maxmemory`)
    /// fails the request: a cache write taken for done would send every
    /// later request to WeCom again.
    #[test]
    fn a_store_that_refuses_facts_writes_is_the_error() {
        use host_drafts::keyvalue::Op;
        let a = sample("corp").check().unwrap();
        let engineering = Rules {
            allow: RuleSet::parse("", "2", "").unwrap(),
            deny: RuleSet::default(),
        };
        let kv = MemoryKv::default();
        let t = Scripted::default().json(TOKEN_OK).json(ZHANGSAN).json(TREE);
        kv.faults().fail_op(Op::Set, 1000);
        let api = at(&a, &t, &kv, NOW);
        let none = GroupKinds::default();
        let got = admit(&api, &bounded(300), &[&engineering], none, "zhangsan", None);
        assert!(matches!(&got, Err(AuthError::Store(_))), "{got:?}");
        // A profile refresh's departments too: the old view would stay.
        let got = record_departments(&api, "zhangsan", vec![4]);
        assert!(matches!(&got, Err(AuthError::Store(_))), "{got:?}");
    }

    /// The member's view is bounded by the oldest fact it was made of: a
    /// view written later from facts cached earlier expires with them, and
    /// a profile refresh's departments replace it.
    #[test]
    fn the_view_expires_with_its_oldest_fact() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(ZHANGSAN)
            .json(TREE)
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","department":[3]}"#)
            .json(TREE);
        let api = |now| at(&a, &t, &kv, now);
        let access = bounded(300);
        let engineering = Rules {
            allow: RuleSet::parse("", "2", "").unwrap(),
            deny: RuleSet::default(),
        };
        let none = GroupKinds::default();
        let view = format!("access-facts/{}/{}/view/zhangsan", a.corp_id, a.agent_id);
        assert!(admit(&api(NOW), &access, &[&engineering], none, "zhangsan", None).is_ok());
        assert!(kv.keys().contains(&view));
        // Written again later from the same cached facts: still from NOW.
        kv.delete(&view).unwrap();
        assert!(
            admit(
                &api(NOW + 200),
                &access,
                &[&engineering],
                none,
                "zhangsan",
                None
            )
            .is_ok()
        );
        assert_eq!(t.sent.borrow().len(), 3, "served from the cache");
        // Past the bound of the oldest fact: asked again (moved to 3).
        let moved = admit(
            &api(NOW + 301),
            &access,
            &[&engineering],
            none,
            "zhangsan",
            None,
        );
        assert_eq!(moved, Err(super::refused(Refusal::NotAllowed, "zhangsan")));
        assert_eq!(t.sent.borrow().len(), 5);
        // A profile refresh's departments replace the view.
        record_departments(&api(NOW + 302), "ZhangSan", vec![4]).unwrap();
        assert!(!kv.keys().contains(&view));
    }

    /// Requests with other needs widen the member's view instead of taking
    /// turns rewriting it; an incomplete view is trusted only for the
    /// minute after which the tree would be fetched again.
    #[test]
    fn the_view_is_widened_and_an_incomplete_one_kept_a_minute() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(ZHANGSAN)
            .json(TREE)
            .json(r#"{"errcode":0,"errmsg":"ok","taglist":[{"tagid":7,"tagname":"运维"},{"tagid":8,"tagname":"财务"}]}"#)
            .json(TAG)
            .json(r#"{"errcode":0,"errmsg":"ok","tagname":"财务","userlist":[{"userid":"zhangsan"}],"partylist":[]}"#);
        let api = |now| at(&a, &t, &kv, now);
        let access = bounded(300);
        let tag = |id: &str| Rules {
            allow: RuleSet::parse("", "", id).unwrap(),
            deny: RuleSet::default(),
        };
        let none = GroupKinds::default();
        admit(&api(NOW), &access, &[&tag("7")], none, "zhangsan", None).unwrap();
        // Another rule's tag: read in full, then kept beside the first.
        admit(&api(NOW + 1), &access, &[&tag("8")], none, "zhangsan", None).unwrap();
        let key = format!("access-facts/{}/{}/view/zhangsan", a.corp_id, a.agent_id);
        let view: View = crate::core::ports::get_json(&kv, &key).unwrap().unwrap();
        assert_eq!(view.tags, [8, 7]);
        // 运维 (7) holds zhangsan's 平台组 (4); 财务 (8) zhangsan.
        assert_eq!(
            view.holding,
            [(8, Some("财务".to_owned())), (7, Some("运维".to_owned()))]
        );
        assert_eq!(view.at, NOW);
        let calls = t.sent.borrow().len();
        admit(&api(NOW + 2), &access, &[&tag("7")], none, "zhangsan", None).unwrap();
        assert_eq!(t.sent.borrow().len(), calls);
        // A rule's tag that the groups list too is one group, not two.
        let all = GroupKinds::parse("tags").unwrap();
        let groups = admit(&api(NOW + 3), &access, &[&tag("7")], all, "zhangsan", None).unwrap();
        let keys: Vec<String> = groups.iter().map(Group::key).collect();
        assert_eq!(keys, ["tag:7", "tag:8"]);

        // A member in 5, which the tree does not hold: the view is used for
        // a minute, then the tree is asked for again.
        let x = r#"{"errcode":0,"errmsg":"ok","userid":"x","department":[5]}"#;
        let t2 = Scripted::default().json(x).json(TREE).json(x).json(TREE);
        let engineering = Rules {
            allow: RuleSet::parse("", "2", "").unwrap(),
            deny: RuleSet::default(),
        };
        let api2 = |now| at(&a, &t2, &kv, now);
        kv.delete(&format!("access-facts/{}/{}/tree", a.corp_id, a.agent_id))
            .unwrap();
        let refused = admit(&api2(NOW + 2), &access, &[&engineering], none, "x", None);
        assert!(refused.is_err());
        assert_eq!(t2.sent.borrow().len(), 2, "user/get and the tree");
        admit(&api2(NOW + 30), &access, &[&engineering], none, "x", None).unwrap_err();
        assert_eq!(t2.sent.borrow().len(), 2, "within the minute: the view");
        admit(&api2(NOW + 70), &access, &[&engineering], none, "x", None).unwrap_err();
        assert_eq!(
            t2.paths(),
            [
                "user/get",
                "department/simplelist",
                "user/get",
                "department/simplelist"
            ],
            "after it: the member and the tree again"
        );
    }
}
