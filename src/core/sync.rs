//! The directory sync: for deployments that cannot receive WeCom's
//! callbacks, and to repair missed ones ([`super::contact_changes`]).
//! WeCom's members the app may see (`user/list_id`, doc 96067, 10 000 a
//! page) against the users bound to them: a bound member WeCom no longer
//! lists is a leaver (every session of the user ends, the binding goes with
//! [`LeaverAction::Unbind`]); the others' cached facts are dropped, so the
//! next request reads WeCom's.
//!
//! WeCom calls: one `user/list_id` per 10 000 members (a company of 10 000:
//! 1, plus `gettoken` when no token is cached). Nothing is changed unless
//! every page came: a WeCom that fails half way ends no session. Safe to
//! run on several instances at once: a second run only repeats the same
//! changes (a generation moved twice).

use std::collections::BTreeSet;

use serde::Serialize;

use super::contact_changes::LeaverAction;
use super::directory::{self, Binding};
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
    /// `user/list_id` pages read.
    pub wecom_pages: usize,
}

pub fn sync_directory(
    authenticator: &Authenticator,
    leaver: LeaverAction,
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
    // Userids compare ignoring ASCII case, as bindings do.
    let mut listed = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        if report.wecom_pages == MAX_PAGES {
            return Err(AuthError::WecomUnavailable(
                "user/list_id: its cursor did not end after 100 pages".into(),
            ));
        }
        let page = api.user_list_id(&cursor)?;
        report.wecom_pages += 1;
        listed.extend(
            page.dept_user
                .into_iter()
                .filter_map(|entry| entry.userid)
                .map(|userid| userid.to_ascii_lowercase()),
        );
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    report.listed = listed.len();
    let mut after: Option<String> = None;
    loop {
        let page = directory::list(kv, after.as_deref(), USER_PAGE)?;
        for user in &page.users {
            let mine: Vec<&Binding> = user
                .bindings
                .iter()
                .filter(|b| b.authenticator == authenticator.name)
                .collect();
            for binding in mine {
                report.bound += 1;
                let userid = &binding.wecom_userid;
                facts::forget_member(kv, authenticator, userid)?;
                if listed.contains(&userid.to_ascii_lowercase()) {
                    continue;
                }
                directory::end_sessions(kv, &user.id, now)?;
                directory::mark_denied(kv, binding, now)?;
                report.sessions_ended += 1;
                if leaver == LeaverAction::Unbind && directory::unbind(kv, binding, now)? {
                    report.unbound += 1;
                }
            }
        }
        match page.cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::directory::{Profile, find_by_binding, resolve_login};
    use crate::core::ports::MemoryKv;
    use crate::core::wecom::tests::{Scripted, TOKEN_OK};
    use crate::example::settings as sample;

    const NOW: u64 = 1_790_000_000;

    /// zhangsan and lisi bound to users of authenticator `corp`.
    fn bound() -> MemoryKv {
        let kv = MemoryKv::default();
        for (userid, mobile) in [("zhangsan", "13800000000"), ("lisi", "13900000001")] {
            let binding = Binding {
                authenticator: "corp".into(),
                wecom_userid: userid.into(),
            };
            let profile = Profile {
                name: Some(userid.into()),
                mobile: Some(mobile.into()),
                ..Profile::default()
            };
            let policy = crate::core::directory::MatchPolicy {
                auto_signup: true,
                web_login: false,
            };
            resolve_login(&kv, &binding, &profile, policy, NOW).unwrap();
        }
        kv
    }

    fn generation(kv: &MemoryKv, userid: &str) -> u64 {
        let binding = Binding {
            authenticator: "corp".into(),
            wecom_userid: userid.into(),
        };
        find_by_binding(kv, &binding)
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
        let report = sync_directory(&a, LeaverAction::Unbind, NOW, &t, &kv).unwrap();
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
        let lisi = Binding {
            authenticator: "corp".into(),
            wecom_userid: "lisi".into(),
        };
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
        assert!(sync_directory(&a, LeaverAction::Keep, NOW, &t, &kv).is_err());
        assert_eq!(
            (generation(&kv, "zhangsan"), generation(&kv, "lisi")),
            (0, 0)
        );
    }
}
