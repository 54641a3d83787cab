//! The facts access rules and groups need ([`super::access`]), from
//! WeCom's own APIs, cached in the key-value store for a bounded age: a
//! member moved out of a department loses access at most `max_age` seconds
//! later. A login refreshes the member's own departments. Any refusal or
//! failure of WeCom fails closed: no facts, no access.
//!
//! | key | value |
//! |---|---|
//! | `access-facts/<corp>/<agent>/member/<userid, lowercase>` | `{"at": unix s, "departments": [id]}` |
//! | `access-facts/<corp>/<agent>/tree` | `{"at", "tree": [[id, parentid]]}` |
//! | `access-facts/<corp>/<agent>/tags` | `{"at", "tags": [[tagid, tagname]]}` (`tag/list`, for the groups) |
//! | `access-facts/<corp>/<agent>/tag/<tagid>` | `{"at", "name", "users": [userid], "departments": [id]}` |
//! | `<any of the above>/refused` | `{"at", "errcode"}`: WeCom refused it, remembered for [`REFUSAL_SECONDS`] |
//!
//! One key per member, per tag, one tree and one tag list per app,
//! overwritten: bounded by the company's size (a refusal key per id a rule
//! names: bounded by the configured rules and 8 tags per `/verify`, but a
//! proxy can name many ids over time; each key is one small record).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::access::{Access, Facts, Group, Refusal, Rules, TagMembers, Verdict};
use super::error::{AuthError, WecomError};
use super::ports::{KeyValue, Transport, get_json, set_json};
use super::wecom::WecomApi;

#[derive(Serialize, Deserialize)]
struct Cached<T> {
    /// Unix seconds when WeCom said it.
    at: u64,
    #[serde(flatten)]
    value: T,
}

/// How long WeCom's refusal of a fact is remembered, in seconds.
pub const REFUSAL_SECONDS: u64 = 60;
/// An incomplete tree is fetched again when older than this, in seconds.
pub const REFETCH_SECONDS: u64 = 60;

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
    #[serde(default)]
    name: Option<String>,
    users: Vec<String>,
    departments: Vec<u32>,
}

/// What to gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The member's departments and the tree.
    pub departments: bool,
    /// Tags whose members are needed (the rules name them).
    pub tags: Vec<u32>,
    /// Every tag of the company (`tag/list`), for the groups.
    pub all_tags: bool,
}

impl Needs {
    /// What evaluating every set of `rules` and telling `access`'s groups needs.
    pub fn of(access: &Access, rules: &[&Rules]) -> Needs {
        let mut needs = Needs {
            departments: access.groups.any(),
            tags: Vec::new(),
            all_tags: access.groups.tags,
        };
        for set in std::iter::once(&access.rules).chain(rules.iter().copied()) {
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
    format!(
        "access-facts/{}/{}",
        api.authenticator.corp_id, api.authenticator.agent_id
    )
}

/// A cache lookup.
enum Lookup<V> {
    Hit(V),
    /// WeCom refused it a moment ago.
    Refused(AuthError),
    Miss,
}

/// The cached value at `key` if younger than `max_age` at `now`, or the
/// refusal remembered there.
fn lookup<T, K, V>(api: &WecomApi<'_, T, K>, key: &str, max_age: u64) -> Lookup<V>
where
    T: Transport,
    K: KeyValue,
    V: DeserializeOwned,
{
    // A record from a clock running ahead is not trusted for longer.
    let fresh = |at: u64, age: u64| api.now < at.saturating_add(age) && at <= api.now + 60;
    if let Ok(Some(hit)) = get_json::<Cached<V>>(api.kv, key)
        && fresh(hit.at, max_age)
    {
        return Lookup::Hit(hit.value);
    }
    // WeCom's refusal (an unknown tag, no permission) is remembered for a
    // minute: a proxy rule naming a bad id does not cost a call per request.
    if let Ok(Some(refused)) = get_json::<Cached<Refused>>(api.kv, &format!("{key}/refused"))
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
/// failed cache write costs a refetch.
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
        Ok(value) => {
            let _ = set_json(api.kv, key, &Cached { at: api.now, value });
        }
        Err(AuthError::Wecom(e)) => {
            let value = Refused { errcode: e.errcode };
            let record = Cached { at: api.now, value };
            let _ = set_json(api.kv, &format!("{key}/refused"), &record);
        }
        Err(_) => {}
    }
    fetched
}

/// The cached value at `key`, else what `fetch` gets from WeCom, cached.
fn cached<T, K, V>(
    api: &WecomApi<'_, T, K>,
    key: &str,
    max_age: u64,
    fetch: impl FnOnce() -> Result<V, AuthError>,
) -> Result<V, AuthError>
where
    T: Transport,
    K: KeyValue,
    V: Serialize + DeserializeOwned,
{
    match lookup(api, key, max_age) {
        Lookup::Hit(value) => Ok(value),
        Lookup::Refused(e) => Err(e),
        Lookup::Miss => remember(api, key, fetch()),
    }
}

/// What `needs` asks of member `userid`, from the cache when younger than
/// `max_age` seconds, else from WeCom (`user/get`, `department/simplelist`,
/// `tag/list`, `tag/get` for the tags not cached, in flight together).
/// `fresh_departments`: the member's departments a login just read (they
/// replace the cached ones). No WeCom call when nothing is needed or
/// everything is cached.
pub fn gather<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    needs: &Needs,
    userid: &str,
    fresh_departments: Option<Vec<u32>>,
    max_age: u64,
) -> Result<Facts, AuthError> {
    let mut facts = Facts {
        userid: userid.to_owned(),
        ..Facts::default()
    };
    if needs.is_nothing() {
        return Ok(facts);
    }
    let prefix = prefix(api);
    let member_key = format!("{prefix}/member/{}", userid.to_ascii_lowercase());
    facts.departments = match fresh_departments {
        Some(departments) => {
            remember(api, &member_key, Ok(MemberDepartments { departments }))?.departments
        }
        None => {
            cached(api, &member_key, max_age, || {
                let departments = api.user(userid)?.department;
                Ok(MemberDepartments { departments })
            })?
            .departments
        }
    };
    facts.tree = cached(api, &format!("{prefix}/tree"), max_age, || {
        Ok(Tree {
            tree: api.department_tree()?,
        })
    })?
    .tree;
    let mut tagids = needs.tags.clone();
    if needs.all_tags {
        let listed = cached(api, &format!("{prefix}/tags"), max_age, || {
            Ok(TagList {
                tags: api.tag_list()?,
            })
        })?;
        for (tagid, _) in listed.tags {
            if !tagids.contains(&tagid) {
                tagids.push(tagid);
            }
        }
    }
    let tag_key = |tagid: u32| format!("{prefix}/tag/{tagid}");
    let mut missing = Vec::new();
    for tagid in tagids {
        match lookup::<T, K, Tag>(api, &tag_key(tagid), max_age) {
            Lookup::Hit(tag) => facts.tags.push(TagMembers {
                tagid,
                name: tag.name,
                users: tag.users,
                departments: tag.departments,
            }),
            Lookup::Refused(e) => return Err(e),
            Lookup::Miss => missing.push(tagid),
        }
    }
    for (tagid, fetched) in missing.iter().zip(api.tag_members(&missing)) {
        let fetched = fetched.map(|t| Tag {
            name: t.name,
            users: t.users,
            departments: t.departments,
        });
        let tag = remember(api, &tag_key(*tagid), fetched)?;
        facts.tags.push(TagMembers {
            tagid: *tagid,
            name: tag.name,
            users: tag.users,
            departments: tag.departments,
        });
    }
    Ok(facts)
}

/// Keeps the departments WeCom just told of member `userid` (a profile
/// refresh read them) as the freshest facts. A failed write costs a refetch.
pub fn record_departments<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    userid: &str,
    departments: Vec<u32>,
) {
    let key = format!("{}/member/{}", prefix(api), userid.to_ascii_lowercase());
    let _ = remember(api, &key, Ok(MemberDepartments { departments }));
}

/// Lets member `userid` in under `access`'s rules and each of `more` (a
/// proxy's own, at `/verify`), and answers the member's groups of the kinds
/// `access` asks for. One gathering serves all; a tree lacking one of the
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
    userid: &str,
    fresh_departments: Option<Vec<u32>>,
) -> Result<Vec<Group>, AuthError> {
    let needs = Needs::of(access, more);
    let sets: Vec<&Rules> = std::iter::once(&access.rules)
        .chain(more.iter().copied())
        .filter(|r| !r.is_empty())
        .collect();
    if needs.is_nothing() && sets.is_empty() {
        return Ok(Vec::new());
    }
    let mut facts = gather(api, &needs, userid, fresh_departments, access.facts_max_age)?;
    if !facts.is_complete() {
        let tree_only = Needs {
            departments: true,
            ..Needs::default()
        };
        // At most once a minute: an app whose visible range leaves out the
        // top of the tree sees an incomplete one for good.
        let again = gather(api, &tree_only, userid, None, REFETCH_SECONDS)?;
        (facts.departments, facts.tree) = (again.departments, again.tree);
    }
    // Still incomplete: a deny rule above the member could not match.
    let denies_by_tree = sets
        .iter()
        .any(|r| !r.deny.departments.is_empty() || !r.deny.tags.is_empty());
    if !facts.is_complete() && denies_by_tree {
        return Err(AuthError::AccessRefused(Refusal::NotAllowed));
    }
    for rules in sets {
        if let Verdict::Denied(why) = rules.evaluate(&facts) {
            return Err(AuthError::AccessRefused(why));
        }
    }
    Ok(facts.groups(access.groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::{RuleSet, Verdict};
    use crate::core::ports::MemoryKv;
    use crate::core::wecom::tests::{Scripted, TOKEN_OK};
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;
    const TREE: &str = r#"{"errcode":0,"errmsg":"ok","department_id":[{"id":1,"parentid":0,"order":1},{"id":2,"parentid":1,"order":1},{"id":4,"parentid":2,"order":1}]}"#;
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

    fn needs(rules: &Rules) -> Needs {
        Needs::of(&Access::default(), &[rules])
    }

    #[test]
    fn facts_are_fetched_once_then_served_from_the_cache_until_they_age() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(ZHANGSAN)
            .json(TREE)
            .json(TAG);
        let api = |now| WecomApi {
            authenticator: &a,
            transport: &t,
            kv: &kv,
            now,
        };
        let facts = gather(&api(NOW), &needs(&rules()), "zhangsan", None, 300).unwrap();
        assert_eq!(facts.departments, [4]);
        assert_eq!(rules().evaluate(&facts), Verdict::Allowed);
        assert_eq!(
            t.paths(),
            ["gettoken", "user/get", "department/simplelist", "tag/get"]
        );
        // Cached: no call at all.
        let again = gather(&api(NOW + 299), &needs(&rules()), "ZhangSan", None, 300).unwrap();
        assert_eq!(again.tree, facts.tree);
        assert_eq!(t.sent.borrow().len(), 4);
        // Aged: the member's departments again (moved to 财务部 meanwhile).
        let t2 = Scripted::default()
            .json(r#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","department":[3]}"#)
            .json(TREE)
            .json(TAG);
        let later = WecomApi {
            authenticator: &a,
            transport: &t2,
            kv: &kv,
            now: NOW + 301,
        };
        let moved = gather(&later, &needs(&rules()), "zhangsan", None, 300).unwrap();
        assert_eq!(moved.departments, [3]);
        assert!(matches!(rules().evaluate(&moved), Verdict::Denied(_)));
        // Rules that need nothing cost nothing.
        let by_user = Rules {
            allow: RuleSet::parse("zhangsan", "", "").unwrap(),
            deny: RuleSet::default(),
        };
        let t3 = Scripted::default();
        let none = WecomApi {
            authenticator: &a,
            transport: &t3,
            kv: &kv,
            now: NOW,
        };
        assert!(gather(&none, &needs(&by_user), "zhangsan", None, 300).is_ok());
        assert!(t3.sent.borrow().is_empty());
    }

    #[test]
    fn a_refusal_of_the_contact_data_fails_closed_and_a_login_refreshes_the_member() {
        let a = sample("corp").check().unwrap();
        let kv = MemoryKv::default();
        let t = Scripted::default().json(TOKEN_OK).json(
            r#"{"errcode":60011,"errmsg":"no privilege to access/modify contact/party/agent"}"#,
        );
        let api = WecomApi {
            authenticator: &a,
            transport: &t,
            kv: &kv,
            now: NOW,
        };
        // The member's departments come from the login; the tree is refused.
        let refused = gather(&api, &needs(&rules()), "zhangsan", Some(vec![4]), 300).unwrap_err();
        assert!(
            matches!(refused, AuthError::Wecom(ref e) if e.errcode == 60011),
            "{refused:?}"
        );
        assert_eq!(t.paths(), ["gettoken", "department/simplelist"]);
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
        let api = WecomApi {
            authenticator: &a,
            transport: &t,
            kv: &kv,
            now: NOW,
        };
        let access = Access {
            groups: crate::core::access::GroupKinds::parse("departments,tags").unwrap(),
            facts_max_age: 300,
            ..Access::default()
        };
        let groups = admit(&api, &access, &[], "zhangsan", Some(vec![4])).unwrap();
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
        let again = admit(&api, &access, &[], "zhangsan", None).unwrap();
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
        let api = |now| WecomApi {
            authenticator: &a,
            transport: &t,
            kv: &kv,
            now,
        };
        let deny_2 = Rules {
            allow: RuleSet::default(),
            deny: RuleSet::parse("", "2", "").unwrap(),
        };
        let access = Access {
            facts_max_age: 300,
            ..Access::default()
        };
        // Department 5 is in no tree: refused, and the tree is not fetched
        // again while younger than a minute.
        let refused = admit(&api(NOW), &access, &[&deny_2], "x", Some(vec![5])).unwrap_err();
        assert_eq!(refused, AuthError::AccessRefused(Refusal::NotAllowed));
        assert_eq!(t.paths(), ["gettoken", "department/simplelist"]);
        // A minute on: the member and the tree again, still refused.
        let refused = admit(&api(NOW + 61), &access, &[&deny_2], "x", None).unwrap_err();
        assert_eq!(refused, AuthError::AccessRefused(Refusal::NotAllowed));
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
        let denied = admit(&api, &access, &[&deny_2], "zhangsan", Some(vec![4])).unwrap_err();
        assert_eq!(
            denied,
            AuthError::AccessRefused(Refusal::DeniedBy(
                crate::core::access::RuleClass::Department
            ))
        );
    }
}
