//! The single-use record of login states: a marker per state (keyed by its
//! nonce) written before WeCom is called, so a state logs in at most once,
//! and completed with whom it logged in, so WeCom's known double opening of
//! a callback gets the finished login again.
//!
//! The store has no expiry, and listing its keys is no option (Spin's Redis
//! store lists with `KEYS *`, the whole database, blocking Redis): each
//! marker is also numbered in the window of time its state expires in, with
//! the store's atomic increment (no compare-and-swap, no contention), and an
//! occasional sweep walks the expired windows slot by slot from a watermark,
//! a bounded amount of work at a time.
//!
//! | key | value |
//! |---|---|
//! | `used-state/<hex nonce>` | `{"expires_at": unix s, "finished": {"user_id", "wecom_userid"} \| null}` |
//! | `used-states/<window>/count` | how many markers the window numbered (atomic increment) |
//! | `used-states/<window>/<n>` | the hex nonce of marker `n` (from 1) |
//! | `used-states/sweep` | `{"window", "slot"}`: where the next sweep starts |
//!
//! A window is [`WINDOW_SECONDS`] long; window `w` holds the states that
//! expire in `((w - 1)·W, w·W]`, so it is swept once `w·W <= now`.

use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::ports::{KeyValue, get_json, set_json};
use super::state::VerifiedState;

const USED_STATE_PREFIX: &str = "used-state/";
/// Length of a sweep window, in seconds.
pub const WINDOW_SECONDS: u64 = 300;
/// Markers (or empty windows) one sweep handles at most: about 2 store
/// operations each, so a sweep adds a bounded delay to the login it runs in.
pub const SWEEP_BUDGET: u32 = 64;
/// Where the very first sweep starts: an hour back (the longest state lifetime).
const FIRST_SWEEP_WINDOWS_BACK: u64 = 3600 / WINDOW_SECONDS;
const SWEEP_KEY: &str = "used-states/sweep";
/// How far behind another instance's clock may be: its states are not swept yet.
const CLOCK_MARGIN_SECONDS: u64 = 120;

/// What the marker of a used state holds.
#[derive(Serialize, Deserialize)]
struct UsedState {
    expires_at: u64,
    #[serde(default)]
    finished: Option<FinishedLogin>,
}

/// Whom a finished login logged in, in which session generation, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedLogin {
    pub user_id: String,
    pub wecom_userid: String,
    /// The user's session generation then: a logout since ends the repeat.
    #[serde(default)]
    pub generation: u64,
    /// Unix seconds.
    #[serde(default)]
    pub at: u64,
}

/// What claiming a state found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never used: it is marked used now; go on with the login.
    Fresh,
    /// Used by a login that finished: this one.
    Finished(FinishedLogin),
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
        Some(_) => return Ok(Claim::Used),
        None => {}
    }
    set_json(
        kv,
        &key,
        &UsedState {
            expires_at: verified.expires_at,
            finished: None,
        },
    )?;
    // Numbered for the sweep. Losing this only leaves the marker behind.
    let window = window_of(verified.expires_at);
    if let Ok(slot) = kv.increment(&count_key(window), 1) {
        let _ = set_json(kv, &slot_key(window, slot), &hex::encode(verified.nonce));
    }
    Ok(Claim::Fresh)
}

fn window_of(expires_at: u64) -> u64 {
    expires_at.div_ceil(WINDOW_SECONDS)
}

fn count_key(window: u64) -> String {
    format!("used-states/{window}/count")
}

fn slot_key(window: u64, slot: i64) -> String {
    format!("used-states/{window}/{slot}")
}

/// Where a sweep starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SweepPoint {
    window: u64,
    slot: i64,
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
        },
    )
}

/// Deletes the markers of expired states, from the watermark on, at most
/// [`SWEEP_BUDGET`] at a time; returns how many it deleted. Running twice at
/// once only repeats deletes.
pub fn sweep(kv: &impl KeyValue, now: u64) -> Result<usize, AuthError> {
    // Window `w` is over once `w·W <= now`; a margin spares instances whose
    // clocks run behind, which would still take those states.
    let current = now.saturating_sub(CLOCK_MARGIN_SECONDS) / WINDOW_SECONDS;
    let mut at = get_json::<SweepPoint>(kv, SWEEP_KEY)?.unwrap_or(SweepPoint {
        window: current.saturating_sub(FIRST_SWEEP_WINDOWS_BACK),
        slot: 1,
    });
    let mut budget = SWEEP_BUDGET;
    let mut swept = 0;
    while at.window <= current && budget > 0 {
        budget -= 1;
        // An increment by 0 reads the count in every store's own format.
        let count = kv.increment(&count_key(at.window), 0)?;
        while at.slot <= count && budget > 0 {
            let slot = slot_key(at.window, at.slot);
            if let Some(nonce) = get_json::<String>(kv, &slot)? {
                kv.delete(&marker_key(&nonce))?;
                swept += 1;
            }
            kv.delete(&slot)?;
            at.slot += 1;
            budget = budget.saturating_sub(1);
        }
        if at.slot > count {
            kv.delete(&count_key(at.window))?;
            at = SweepPoint {
                window: at.window + 1,
                slot: 1,
            };
        }
    }
    set_json(kv, SWEEP_KEY, &at)?;
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use host_drafts::keyvalue::Op;

    use super::*;
    use crate::core::flow::LoginFlow;
    use crate::core::ports::MemoryKv;

    const NOW: u64 = 1_790_000_000;

    fn state(n: u32, expires_at: u64) -> VerifiedState {
        let mut nonce = [0; 12];
        nonce[..4].copy_from_slice(&n.to_be_bytes());
        VerifiedState {
            nonce,
            expires_at,
            return_to: "/".into(),
            flow: LoginFlow::Web,
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
        let later = NOW + 1200 + 600 + WINDOW_SECONDS + CLOCK_MARGIN_SECONDS;
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
            left.iter().all(|k| k == SWEEP_KEY
                || k.contains(&window_of(NOW + 3000).to_string())
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
