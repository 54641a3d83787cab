//! The facts access rules need ([`super::access`]), from WeCom's own APIs,
//! cached in the key-value store for a bounded age: a member moved out of a
//! department loses access at most `max_age` seconds later. A login
//! refreshes the member's own departments. Any refusal or failure of WeCom
//! fails closed: no facts, no access.
//!
//! | key | value |
//! |---|---|
//! | `access-facts/<corp>/<agent>/member/<userid, lowercase>` | `{"at": unix s, "departments": [id]}` |
//! | `access-facts/<corp>/<agent>/tree` | `{"at", "tree": [[id, parentid]]}` |
//! | `access-facts/<corp>/<agent>/tag/<tagid>` | `{"at", "users": [userid], "departments": [id]}` |
//! | `<any of the above>/refused` | `{"at", "errcode"}`: WeCom refused it, remembered for [`REFUSAL_SECONDS`] |
//!
//! One key per member, per tag and one tree per app, overwritten: bounded by
//! the company's size (a refusal key per id a rule names: bounded by the
//! configured rules and 8 tags per `/verify`, but a proxy can name many ids
//! over time; each key is one small record).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::access::{Facts, Rules, TagMembers};
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
struct Tag {
    users: Vec<String>,
    departments: Vec<u32>,
}

fn prefix<T: Transport, K: KeyValue>(api: &WecomApi<'_, T, K>) -> String {
    format!(
        "access-facts/{}/{}",
        api.authenticator.corp_id, api.authenticator.agent_id
    )
}

/// The cached value at `key` if younger than `max_age` at `now`, else what
/// `fetch` gets from WeCom, cached. A failed cache write costs a refetch.
fn cached<T, K, V>(
    api: &WecomApi<'_, T, K>,
    key: &str,
    max_age: u64,
    fetch: impl FnOnce() -> Result<V, AuthError>,
) -> Result<V, AuthError>
where
    T: Transport,
    K: KeyValue,
    V: Serialize + DeserializeOwned + Clone,
{
    // A record from a clock running ahead is not trusted for longer.
    if let Ok(Some(hit)) = get_json::<Cached<V>>(api.kv, key)
        && api.now < hit.at.saturating_add(max_age)
        && hit.at <= api.now.saturating_add(60)
    {
        return Ok(hit.value);
    }
    // WeCom's refusal (an unknown tag, no permission) is remembered for a
    // minute: a proxy rule naming a bad id does not cost a call per request.
    let refusal_key = format!("{key}/refused");
    if let Ok(Some(refused)) = get_json::<Cached<Refused>>(api.kv, &refusal_key)
        && api.now < refused.at.saturating_add(REFUSAL_SECONDS)
        && refused.at <= api.now.saturating_add(60)
    {
        return Err(AuthError::Wecom(WecomError {
            errcode: refused.value.errcode,
            errmsg: "refused a moment ago (remembered for a minute)".into(),
            api: "access facts",
        }));
    }
    let value = match fetch() {
        Ok(value) => value,
        Err(AuthError::Wecom(e)) => {
            let record = Cached {
                at: api.now,
                value: Refused { errcode: e.errcode },
            };
            let _ = set_json(api.kv, &refusal_key, &record);
            return Err(AuthError::Wecom(e));
        }
        Err(e) => return Err(e),
    };
    let record = Cached {
        at: api.now,
        value: value.clone(),
    };
    let _ = set_json(api.kv, key, &record);
    Ok(value)
}

/// What `rules` need to know of member `userid`, from the cache when younger
/// than `max_age` seconds, else from WeCom (`user/get`,
/// `department/simplelist`, `tag/get`). `fresh_departments`: the member's
/// departments a login just read (they replace the cached ones). No WeCom
/// call when the rules need nothing or everything is cached.
pub fn gather<T: Transport, K: KeyValue>(
    api: &WecomApi<'_, T, K>,
    rules: &Rules,
    userid: &str,
    fresh_departments: Option<Vec<u32>>,
    max_age: u64,
) -> Result<Facts, AuthError> {
    let mut facts = Facts {
        userid: userid.to_owned(),
        ..Facts::default()
    };
    if !rules.needs_departments() {
        return Ok(facts);
    }
    let prefix = prefix(api);
    let member_key = format!("{prefix}/member/{}", userid.to_ascii_lowercase());
    facts.departments = match fresh_departments {
        Some(departments) => {
            let record = Cached {
                at: api.now,
                value: MemberDepartments {
                    departments: departments.clone(),
                },
            };
            let _ = set_json(api.kv, &member_key, &record);
            departments
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
    for &tagid in rules.allow.tags.iter().chain(&rules.deny.tags) {
        if facts.tags.iter().any(|t| t.tagid == tagid) {
            continue;
        }
        let tag = cached(api, &format!("{prefix}/tag/{tagid}"), max_age, || {
            let TagMembers {
                users, departments, ..
            } = api.tag_members(tagid)?;
            Ok(Tag { users, departments })
        })?;
        facts.tags.push(TagMembers {
            tagid,
            users: tag.users,
            departments: tag.departments,
        });
    }
    Ok(facts)
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
        let facts = gather(&api(NOW), &rules(), "zhangsan", None, 300).unwrap();
        assert_eq!(facts.departments, [4]);
        assert_eq!(rules().evaluate(&facts), Verdict::Allowed);
        assert_eq!(
            t.paths(),
            ["gettoken", "user/get", "department/simplelist", "tag/get"]
        );
        // Cached: no call at all.
        let again = gather(&api(NOW + 299), &rules(), "ZhangSan", None, 300).unwrap();
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
        let moved = gather(&later, &rules(), "zhangsan", None, 300).unwrap();
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
        assert!(gather(&none, &by_user, "zhangsan", None, 300).is_ok());
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
        let refused = gather(&api, &rules(), "zhangsan", Some(vec![4]), 300).unwrap_err();
        assert!(
            matches!(refused, AuthError::Wecom(ref e) if e.errcode == 60011),
            "{refused:?}"
        );
        assert_eq!(t.paths(), ["gettoken", "department/simplelist"]);
        let key = format!("access-facts/{}/{}/member/zhangsan", a.corp_id, a.agent_id);
        assert!(kv.keys().contains(&key), "the login's departments are kept");
    }
}
