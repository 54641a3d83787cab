//! What a contact change (通讯录变更事件, doc 90970) does here, once its
//! callback is checked and decrypted ([`super::events`]):
//!
//! - `delete_user`, or `update_user` to disabled (`Status` 2) or left (5):
//!   every session of the bound user ends at once (the session generation
//!   moves on, on every instance); with [`LeaverAction::Unbind`] (the
//!   default) the binding goes too. For an hour the member's logins wait
//!   for WeCom's answer.
//! - `update_user` with `NewUserID`: the binding follows the new userid (a
//!   stale binding of that userid goes, its user's sessions ended).
//! - `update_user` otherwise (departments): the member's cached facts and
//!   view are dropped, so the rules and groups use WeCom's at the next
//!   request.
//! - `update_tag`: the tag's cached members and the named members' views
//!   are dropped.
//! - Departments created, moved or deleted: the department tree is dropped
//!   (members' views follow within `access_facts_max_age_seconds`).
//! - Events of members never seen: nothing stored.
//!
//! Each message is handled once: its `msg_signature` is remembered for the
//! replay window ([`CALLBACKS_SEEN`], swept like the used states).
//!
//! | key | value |
//! |---|---|
//! | `callback-seen/<msg_signature>` | `{"expires_at": unix s}` |
//! | `callbacks-seen/...` | the sweep's bookkeeping |

use serde::{Deserialize, Serialize};

use super::directory::{self, Binding};
use super::error::AuthError;
use super::events::{ContactChange, MAX_CLOCK_DISTANCE_SECONDS};
use super::expiring::Family;
use super::facts;
use super::ports::{KeyValue, get_json, set_json};
use super::settings::Authenticator;

/// What happens to a leaver's binding (`leaver_action`). Sessions end
/// either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeaverAction {
    /// The user and the binding stay: a member enabled again logs in to the
    /// same user; but WeCom may give a deleted member's userid to someone
    /// else, who would then log in as the leaver (after
    /// [`directory::DENIED_SECONDS`]).
    Keep,
    /// The binding goes; the user stays for the app (its data). A member
    /// with that userid later starts from the mobile match: the same person
    /// finds their user again, another does not.
    #[default]
    Unbind,
    /// The user is disabled and the binding goes: no login reaches the
    /// user, not a sign-up of that userid nor a mobile match, until an admin
    /// provisions it again.
    Disable,
}

impl LeaverAction {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "keep" => Some(LeaverAction::Keep),
            "unbind" => Some(LeaverAction::Unbind),
            "disable" => Some(LeaverAction::Disable),
            _ => None,
        }
    }
}

/// Ends leaver `binding` of user `user_id`: marked left first (a login
/// finishing meanwhile waits for WeCom, which refuses the member), every
/// session ended, then `action` done. Whether `action` changed anything
/// (a binding removed, a user disabled). The contact changes and the
/// directory sync both end leavers here.
pub fn end_leaver(
    kv: &impl KeyValue,
    binding: &Binding,
    user_id: &str,
    action: LeaverAction,
    now: u64,
) -> Result<bool, AuthError> {
    directory::mark_left(kv, binding)?;
    match action {
        LeaverAction::Keep => {
            directory::end_sessions(kv, user_id, now)?;
            Ok(false)
        }
        LeaverAction::Unbind => {
            directory::end_sessions(kv, user_id, now)?;
            directory::unbind(kv, binding, now)
        }
        // Disabled (its sessions end with it), and unbound: a sync never
        // takes the binding for a leaver again once an admin enables it.
        LeaverAction::Disable => {
            let disabled = directory::disable(kv, user_id, now)?;
            directory::unbind(kv, binding, now)?;
            Ok(disabled)
        }
    }
}

/// What a contact change did, for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The member's sessions ended (and the binding went, with `Unbind`).
    SessionsEnded { user_id: String },
    /// The binding moved to the new userid.
    Renamed { user_id: String },
    /// Cached facts were dropped.
    FactsDropped,
    /// Nothing of ours: a member never seen, or a change we do not act on.
    Nothing,
}

impl Applied {
    pub fn outcome(&self) -> &'static str {
        match self {
            Applied::SessionsEnded { .. } => "sessions-ended",
            Applied::Renamed { .. } => "renamed",
            Applied::FactsDropped => "facts-dropped",
            Applied::Nothing => "ignored",
        }
    }
}

/// The markers of callbacks handled, swept once their timestamp is out of
/// the replay window: 10-minute windows, the first sweep an hour back.
pub static CALLBACKS_SEEN: Family = Family {
    name: "callbacks-seen",
    window_seconds: 600,
    first_sweep_windows_back: 6,
    key_of: seen_key,
};

#[derive(Serialize, Deserialize)]
struct Seen {
    expires_at: u64,
}

fn seen_key(msg_signature: &str) -> String {
    format!("callback-seen/{msg_signature}")
}

/// Whether a callback with this `msg_signature` was handled already.
pub fn delivered_before(kv: &impl KeyValue, msg_signature: &str) -> Result<bool, AuthError> {
    Ok(get_json::<Seen>(kv, &seen_key(msg_signature))?.is_some())
}

/// Marks a callback handled, until its `timestamp` leaves the replay
/// window; after it was applied, so a delivery that failed half way is
/// taken again when WeCom retries. `msg_signature` is hex SHA-1 (checked
/// by the caller).
pub fn mark_delivered(
    kv: &impl KeyValue,
    msg_signature: &str,
    timestamp: u64,
    now: u64,
) -> Result<(), AuthError> {
    let expires_at = timestamp.max(now) + MAX_CLOCK_DISTANCE_SECONDS;
    set_json(kv, &seen_key(msg_signature), &Seen { expires_at })?;
    // Numbered for the sweep. Losing this only leaves the marker behind.
    CALLBACKS_SEEN.register(kv, expires_at, msg_signature);
    if msg_signature.as_bytes().first().is_some_and(|b| *b < b'2') {
        // One delivery in eight sweeps a bounded number of old markers.
        let _ = CALLBACKS_SEEN.sweep(kv, now);
    }
    Ok(())
}

/// Applies `change` for `authenticator`'s members.
pub fn apply(
    authenticator: &Authenticator,
    change: &ContactChange,
    leaver: LeaverAction,
    now: u64,
    kv: &impl KeyValue,
) -> Result<Applied, AuthError> {
    let member = |userid: &str| Binding {
        authenticator: authenticator.name.clone(),
        wecom_userid: userid.to_owned(),
    };
    match change.change_type.as_str() {
        "delete_user" | "update_user" => {
            let Some(userid) = change.user_id.as_deref().filter(|u| !u.is_empty()) else {
                return Ok(Applied::Nothing);
            };
            facts::forget_member(kv, authenticator, userid)?;
            let mut binding = member(userid);
            let mut renamed = None;
            let new = change.new_user_id.as_deref();
            if let Some(new) = new.filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(userid)) {
                facts::forget_member(kv, authenticator, new)?;
                let new = member(new);
                renamed = directory::rename_binding(kv, &binding, &new, now)?.map(|user| user.id);
                binding = new;
            }
            if change.member_gone() {
                let Some(user) = directory::find_by_binding(kv, &binding)? else {
                    return Ok(Applied::Nothing);
                };
                end_leaver(kv, &binding, &user.id, leaver, now)?;
                return Ok(Applied::SessionsEnded { user_id: user.id });
            }
            Ok(match renamed {
                Some(user_id) => Applied::Renamed { user_id },
                None => Applied::FactsDropped,
            })
        }
        "update_tag" => {
            let Some(tag) = change.tag_id.as_deref().and_then(|t| t.parse::<u32>().ok()) else {
                return Ok(Applied::Nothing);
            };
            facts::forget_tag(kv, authenticator, tag)?;
            for userid in change.tag_members() {
                facts::forget_member(kv, authenticator, userid)?;
            }
            Ok(Applied::FactsDropped)
        }
        "create_party" | "update_party" | "delete_party" => {
            facts::forget_tree(kv, authenticator)?;
            Ok(Applied::FactsDropped)
        }
        _ => Ok(Applied::Nothing),
    }
}
