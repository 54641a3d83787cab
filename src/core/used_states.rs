//! The single-use record of login states: a marker per state (keyed by its
//! nonce) written before WeCom is called, so a state logs in at most once,
//! and completed with whom it logged in, so WeCom's known double opening of
//! a callback gets the finished login again.
//!
//! The markers are short-lived keys of the family [`USED_STATES`]
//! ([`super::expiring`]), swept once their states have expired.
//!
//! | key | value |
//! |---|---|
//! | `used-state/<hex nonce>` | `{"expires_at": unix s, "finished": {"user_id", "wecom_userid"} \| null}` |
//! | `used-states/...` | the sweep's bookkeeping; slots hold the hex nonce |

use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::expiring::Family;
use super::ports::{KeyValue, get_json, set_json};
use super::state::VerifiedState;

const USED_STATE_PREFIX: &str = "used-state/";

/// The used-state markers as short-lived keys: 5-minute windows, the first
/// sweep an hour back (the longest state lifetime).
pub static USED_STATES: Family = Family {
    name: "used-states",
    window_seconds: 300,
    first_sweep_windows_back: 12,
    key_of: marker_key,
};

/// What the marker of a used state holds.
#[derive(Serialize, Deserialize)]
struct UsedState {
    expires_at: u64,
    finished: Option<FinishedLogin>,
    /// A silent login that sent the member to the consent: a second
    /// opening of its callback goes there too. Absent in earlier layouts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    consent_asked: bool,
}

/// Whom a finished login logged in, in which session generation, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedLogin {
    pub user_id: String,
    pub wecom_userid: String,
    /// The user's session generation then: a logout since ends the repeat.
    pub generation: u64,
    /// Unix seconds.
    pub at: u64,
}

/// What claiming a state found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never used: it is marked used now; go on with the login.
    Fresh,
    /// Used by a login that finished: this one.
    Finished(FinishedLogin),
    /// Used by a silent login that sent the member to the consent.
    ConsentAsked,
    /// Used by a login that did not finish (or is still running).
    Used,
}

/// The key of a state's marker.
pub fn used_state_key(verified: &VerifiedState) -> String {
    marker_key(&hex::encode(verified.nonce))
}

fn marker_key(hex_nonce: &str) -> String {
    format!("{USED_STATE_PREFIX}{hex_nonce}")
}

/// Marks the state used, unless it already was.
pub fn claim(kv: &impl KeyValue, verified: &VerifiedState) -> Result<Claim, AuthError> {
    let key = used_state_key(verified);
    match get_json::<UsedState>(kv, &key)? {
        Some(UsedState {
            finished: Some(finished),
            ..
        }) => return Ok(Claim::Finished(finished)),
        Some(UsedState {
            consent_asked: true,
            ..
        }) => return Ok(Claim::ConsentAsked),
        Some(_) => return Ok(Claim::Used),
        None => {}
    }
    set_json(
        kv,
        &key,
        &UsedState {
            expires_at: verified.expires_at,
            finished: None,
            consent_asked: false,
        },
    )?;
    // Numbered for the sweep. Losing this only leaves the marker behind.
    USED_STATES.register(kv, verified.expires_at, &hex::encode(verified.nonce));
    Ok(Claim::Fresh)
}

/// Records whom the state's login logged in. Losing this write only costs the
/// duplicate-callback convenience, so its error is the caller's to ignore.
pub fn finish(
    kv: &impl KeyValue,
    verified: &VerifiedState,
    finished: FinishedLogin,
) -> Result<(), AuthError> {
    set_json(
        kv,
        &used_state_key(verified),
        &UsedState {
            expires_at: verified.expires_at,
            finished: Some(finished),
            consent_asked: false,
        },
    )
}

/// Records that the state's silent login sent the member to the consent.
/// Losing this write costs a second opening of the callback an error page.
pub fn consent_asked(kv: &impl KeyValue, verified: &VerifiedState) -> Result<(), AuthError> {
    set_json(
        kv,
        &used_state_key(verified),
        &UsedState {
            expires_at: verified.expires_at,
            finished: None,
            consent_asked: true,
        },
    )
}

/// Deletes the markers of expired states, a bounded number at a time
/// ([`Family::sweep`]); returns how many it deleted.
pub fn sweep(kv: &impl KeyValue, now: u64) -> Result<usize, AuthError> {
    USED_STATES.sweep(kv, now)
}

#[cfg(test)]
mod tests {
    use host_drafts::keyvalue::Op;

    use super::*;
    use crate::core::expiring::{CLOCK_MARGIN_SECONDS, SWEEP_BUDGET};
    use crate::core::flow::LoginFlow;
    use crate::core::ports::MemoryKv;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn markers_of_todays_layout_read_and_are_written_the_same() {
        let open: UsedState = crate::core::ports::assert_layout_kept("used-state.json");
        assert!(open.finished.is_none());
        let done: UsedState = crate::core::ports::assert_layout_kept("used-state.finished.json");
        assert_eq!(done.finished.unwrap().generation, 2);
    }

    fn state(n: u32, expires_at: u64) -> VerifiedState {
        let mut nonce = [0; 12];
        nonce[..4].copy_from_slice(&n.to_be_bytes());
        VerifiedState {
            nonce,
            expires_at,
            return_to: "/".into(),
            flow: LoginFlow::Web,
            scope: crate::core::flow::InClientScope::Base,
            remaining_cookie: String::new(),
        }
    }

    #[test]
    fn a_state_is_claimed_once_and_a_finished_one_is_found_again() {
        let kv = MemoryKv::default();
        let s = state(1, NOW + 600);
        assert_eq!(claim(&kv, &s).unwrap(), Claim::Fresh);
        assert_eq!(claim(&kv, &s).unwrap(), Claim::Used);
        let who = FinishedLogin {
            user_id: "u".into(),
            wecom_userid: "w".into(),
            generation: 0,
            at: NOW,
        };
        finish(&kv, &s, who.clone()).unwrap();
        assert_eq!(claim(&kv, &s).unwrap(), Claim::Finished(who));
    }

    #[test]
    fn sweeps_remove_expired_markers_in_bounded_steps_without_listing() {
        let kv = MemoryKv::default();
        // 200 logins over 20 minutes, their states living 10 minutes.
        for n in 0..200u32 {
            let at = NOW + u64::from(n) * 6;
            assert_eq!(claim(&kv, &state(n, at + 600)).unwrap(), Claim::Fresh);
        }
        let live = state(999, NOW + 3000);
        claim(&kv, &live).unwrap();
        let later = NOW + 1200 + 600 + USED_STATES.window_seconds + CLOCK_MARGIN_SECONDS;
        let mut total = 0;
        let mut sweeps = 0;
        loop {
            let swept = sweep(&kv, later).unwrap();
            assert!(swept <= SWEEP_BUDGET as usize);
            total += swept;
            sweeps += 1;
            if swept == 0 {
                break;
            }
        }
        assert_eq!(total, 200, "after {sweeps} sweeps");
        assert_eq!(kv.faults().count(Op::ListKeys), 0, "never lists the store");
        let left: Vec<String> = kv.keys();
        assert!(
            left.iter().all(|k| k == "used-states/sweep"
                || k.contains(&USED_STATES.window(NOW + 3000).to_string())
                || *k == used_state_key(&live)),
            "{left:?}"
        );
        assert_eq!(
            claim(&kv, &live).unwrap(),
            Claim::Used,
            "a live marker stays"
        );
    }
}
