//! The directory sync: for deployments that cannot receive WeCom's
//! callbacks, and to repair missed ones ([`super::contact_changes`]).
//! WeCom's members the app may see (`user/list_id`, doc 96067, 10 000 a
//! page) against the users bound to them: a bound member WeCom no longer
//! lists is a leaver (every session of the user ends, the binding goes with
//! [`LeaverAction::Unbind`]); the others' departments, as the list gives
//! them, become their cached facts, and the cached department tree goes
//! (the next request reads it: one `department/simplelist`).
//!
//! WeCom calls: one `user/list_id` per 10 000 entries (a member per
//! department: a company of 10 000 takes 1 or 2, plus `gettoken` when no
//! token is cached). Nothing is changed unless every page came, and a list
//! that would end more than a tenth of the bound members (or any, when it
//! lists no one) is refused unless forced: an app whose permission or
//! visible range changed looks like that. Safe to run on several instances
//! at once: members already ended are not ended again.

use std::collections::BTreeMap;

use serde::Serialize;

use super::contact_changes::{self, LeaverAction};
use super::directory;
use super::error::AuthError;
use super::facts;
use super::ports::{KeyValue, Transport};
use super::settings::Authenticator;
use super::wecom::WecomApi;

/// Pages of `user/list_id` read at most (10 000 members each): a cursor
/// that never ends is an error, not a loop.
const MAX_PAGES: usize = 100;
/// Users read from the store per step.
const USER_PAGE: u32 = 200;

/// What a sync found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub authenticator: String,
    /// Members WeCom lists for the app.
    pub listed: usize,
    /// Our bindings to this authenticator's members.
    pub bound: usize,
    /// Bound members WeCom no longer lists: their users' sessions ended.
    pub sessions_ended: usize,
    /// Of those, bindings removed (`leaver_action = unbind`).
    pub unbound: usize,
    /// Of those, users disabled (`leaver_action = disable`).
    pub disabled: usize,
    /// `user/list_id` pages read.
    pub wecom_pages: usize,
}

/// How a sync may act.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    pub leaver: LeaverAction,
    /// Act even when WeCom's list would make many bound members leavers
    /// ([`too_many_leavers`]): an app whose visible range was narrowed on
    /// purpose.
    pub force: bool,
}

/// Whether `leavers` of `bound` members is more than a sync should end on
/// its own: any when WeCom listed no one (a permission or visible-range
/// problem looks like that), else more than a tenth and more than 10.
pub fn too_many_leavers(listed: usize, bound: usize, leavers: usize) -> bool {
    (listed == 0 && leavers > 0) || (leavers > 10 && leavers * 10 > bound)
}

pub fn sync_directory(
    authenticator: &Authenticator,
    options: SyncOptions,
    now: u64,
    transport: &impl Transport,
    kv: &impl KeyValue,
) -> Result<SyncReport, AuthError> {
    let api = WecomApi {
        authenticator,
        transport,
        kv,
        now,
    };
    let mut report = SyncReport {
        authenticator: authenticator.name.clone(),
        ..SyncReport::default()
    };
    // Userids compare ignoring ASCII case, as bindings do; with each
    // member's departments, the freshest facts there are.
    let mut listed: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        if report.wecom_pages == MAX_PAGES {
            return Err(AuthError::WecomUnavailable(
                "user/list_id: its cursor did not end after 100 pages".into(),
            ));
        }
        let page = api.user_list_id(&cursor)?;
        report.wecom_pages += 1;
        for entry in page.dept_user {
            // A third-party app's list gives open_userids: no binding names them.
            let userid = entry.userid.filter(|u| !u.is_empty()).ok_or_else(|| {
                AuthError::WecomUnavailable(
                    "user/list_id gave an entry without a userid (a third-party app's list?)"
                        .into(),
                )
            })?;
            let departments = listed.entry(userid.to_ascii_lowercase()).or_default();
            departments.extend(entry.department);
        }
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    report.listed = listed.len();
    // Read first: who is bound, who left. (A member who joins WeCom and
    // logs in between the list and this pass is ended once, and logs in
    // again: the next sync lists them.)
    let mut kept = Vec::new();
    let mut leavers = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = directory::list(kv, after.as_deref(), USER_PAGE)?;
        for user in page.users {
            // Disabled users are leavers already: no live binding.
            if user.disabled {
                continue;
            }
            for binding in &user.bindings {
                if binding.authenticator != authenticator.name {
                    continue;
                }
                report.bound += 1;
                match listed.get(&binding.wecom_userid.to_ascii_lowercase()) {
                    Some(departments) => kept.push((binding.clone(), departments.clone())),
                    // Already ended by an event or an earlier sync.
                    None if directory::recently_denied(kv, binding, now) => {}
                    None => leavers.push((binding.clone(), user.id.clone())),
                }
            }
        }
        match page.cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if !options.force && too_many_leavers(report.listed, report.bound, leavers.len()) {
        return Err(AuthError::Conflict(format!(
            "WeCom's list would end the sessions of {} of {} bound members: check the app's \
             visible range and contacts permission, or sync with force",
            leavers.len(),
            report.bound
        )));
    }
    for (binding, departments) in kept {
        facts::record_departments(&api, &binding.wecom_userid, departments)?;
    }
    // The department tree too: the next request reads WeCom's (one
    // `department/simplelist`), so moved departments reach the rules.
    facts::forget_tree(kv, authenticator)?;
    for (binding, user_id) in leavers {
        let changed = contact_changes::end_leaver(kv, &binding, &user_id, options.leaver, now)?;
        report.sessions_ended += 1;
        let count = match options.leaver {
            LeaverAction::Keep => continue,
            LeaverAction::Unbind => &mut report.unbound,
            LeaverAction::Disable => &mut report.disabled,
        };
        *count += usize::from(changed);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::directory::{Binding, Profile, find_by_binding, resolve_login};
    use crate::core::ports::MemoryKv;
    use crate::core::wecom::tests::{Scripted, TOKEN_OK};
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    fn unbind() -> SyncOptions {
        SyncOptions {
            leaver: LeaverAction::Unbind,
            force: false,
        }
    }

    /// Authenticator `corp`'s binding of member `userid`.
    fn member(userid: &str) -> Binding {
        Binding {
            authenticator: "corp".into(),
            wecom_userid: userid.into(),
        }
    }

    /// zhangsan and lisi bound to users of authenticator `corp`.
    fn bound() -> MemoryKv {
        let kv = MemoryKv::default();
        for (userid, mobile) in [("zhangsan", "13800000000"), ("lisi", "13900000001")] {
            let binding = member(userid);
            let profile = Profile {
                name: Some(userid.into()),
                mobile: Some(mobile.into()),
                ..Profile::default()
            };
            let policy = crate::core::directory::MatchPolicy {
                auto_signup: true,
                web_login: false,
            };
            resolve_login(&kv, &binding, &profile, policy, NOW - 60).unwrap();
        }
        kv
    }

    fn generation(kv: &MemoryKv, userid: &str) -> u64 {
        find_by_binding(kv, &member(userid))
            .unwrap()
            .unwrap()
            .session_generation
    }

    /// Pages follow the cursor; a member WeCom no longer lists (lisi) is a
    /// leaver, compared ignoring ASCII case.
    #[test]
    fn the_pages_follow_the_cursor_and_an_unlisted_member_is_a_leaver() {
        let a = sample("corp").check().unwrap();
        let kv = bound();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"errmsg":"ok","next_cursor":"c2","dept_user":[{"userid":"ZhangSan","department":1}]}"#)
            .json(r#"{"errcode":0,"errmsg":"ok","next_cursor":"","dept_user":[{"userid":"wangwu","department":2}]}"#);
        let report = sync_directory(&a, unbind(), NOW, &t, &kv).unwrap();
        assert_eq!(
            (
                report.listed,
                report.bound,
                report.sessions_ended,
                report.unbound,
                report.wecom_pages
            ),
            (2, 2, 1, 1, 2)
        );
        assert_eq!(t.paths(), ["gettoken", "user/list_id", "user/list_id"]);
        let second = String::from_utf8(t.sent.borrow()[2].body.clone().unwrap()).unwrap();
        assert!(second.contains(r#""cursor":"c2""#), "{second}");
        assert_eq!(generation(&kv, "zhangsan"), 0);
        let lisi = member("lisi");
        assert_eq!(find_by_binding(&kv, &lisi).unwrap(), None, "unbound");
    }

    /// A WeCom that fails half way ends no session: a partial list is no
    /// list.
    #[test]
    fn a_list_that_does_not_come_whole_ends_nothing() {
        let a = sample("corp").check().unwrap();
        let kv = bound();
        let t = Scripted::default()
            .json(TOKEN_OK)
            .json(r#"{"errcode":0,"errmsg":"ok","next_cursor":"c2","dept_user":[{"userid":"zhangsan","department":1}]}"#)
            .json(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#);
        assert!(sync_directory(&a, SyncOptions::default(), NOW, &t, &kv).is_err());
        assert_eq!(
            (generation(&kv, "zhangsan"), generation(&kv, "lisi")),
            (0, 0)
        );
    }

    /// A list of no one, or of open_userids, ends nothing: the first is
    /// refused unless forced, the second is an error.
    #[test]
    fn an_empty_or_foreign_list_ends_nothing_unless_forced() {
        let a = sample("corp").check().unwrap();
        let kv = bound();
        let empty = r#"{"errcode":0,"errmsg":"ok","next_cursor":"","dept_user":[]}"#;
        let t = Scripted::default().json(TOKEN_OK).json(empty);
        let refused = sync_directory(&a, SyncOptions::default(), NOW, &t, &kv).unwrap_err();
        assert!(matches!(refused, AuthError::Conflict(_)), "{refused:?}");
        assert_eq!(
            (generation(&kv, "zhangsan"), generation(&kv, "lisi")),
            (0, 0)
        );
        let t = Scripted::default().json(
            r#"{"errcode":0,"errmsg":"ok","next_cursor":"","dept_user":[{"open_userid":"woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA","department":1}]}"#,
        );
        assert!(sync_directory(&a, SyncOptions::default(), NOW, &t, &kv).is_err());
        assert_eq!(
            (generation(&kv, "zhangsan"), generation(&kv, "lisi")),
            (0, 0)
        );
        let forced = SyncOptions {
            force: true,
            ..SyncOptions::default()
        };
        let t = Scripted::default().json(empty);
        let report = sync_directory(&a, forced, NOW, &t, &kv).unwrap();
        assert_eq!(report.sessions_ended, 2);
        // Ended already: a second run ends no one again.
        let t = Scripted::default().json(empty);
        let again = sync_directory(&a, forced, NOW + 1, &t, &kv).unwrap();
        assert_eq!(again.sessions_ended, 0);
    }

    #[test]
    fn many_leavers_are_too_many_a_few_are_not() {
        assert!(too_many_leavers(0, 1, 1));
        assert!(!too_many_leavers(5, 2, 1));
        assert!(!too_many_leavers(1_000, 1_000, 10));
        assert!(too_many_leavers(1_000, 1_000, 101));
        assert!(!too_many_leavers(10_000, 1_000, 100));
    }

    /// With `Disable`, the leaver's user is disabled and loses the binding;
    /// a second run leaves it alone.
    #[test]
    fn a_disabled_leaver_loses_the_binding_and_is_not_ended_twice() {
        let a = sample("corp").check().unwrap();
        let kv = bound();
        let list = r#"{"errcode":0,"errmsg":"ok","next_cursor":"","dept_user":[{"userid":"zhangsan","department":1}]}"#;
        let disable = SyncOptions {
            leaver: LeaverAction::Disable,
            force: false,
        };
        let lisi = member("lisi");
        let user = find_by_binding(&kv, &lisi).unwrap().unwrap();
        let t = Scripted::default().json(TOKEN_OK).json(list);
        let report = sync_directory(&a, disable, NOW, &t, &kv).unwrap();
        assert_eq!(
            (report.sessions_ended, report.disabled, report.unbound),
            (1, 1, 0)
        );
        assert_eq!(find_by_binding(&kv, &lisi).unwrap(), None);
        let user = crate::core::directory::find_by_id(&kv, &user.id)
            .unwrap()
            .unwrap();
        assert!(user.disabled);
        let t = Scripted::default().json(list);
        let again = sync_directory(&a, disable, NOW + 3_700, &t, &kv).unwrap();
        assert_eq!(again.sessions_ended, 0);
    }
}
