//! The single-use record of login states: a marker per state (keyed by its
//! nonce) written before WeCom is called, so a state logs in at most once,
//! and completed with whom it logged in, so WeCom's known double opening of
//! a callback gets the finished login again. The store has no expiry: an
//! occasional sweep removes markers of states that can no longer come back.
//!
//! Keys: `used-state/<hex nonce>` → `{"expires_at": unix s, "finished": {"user_id", "wecom_userid"} | null}`.

use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::ports::{KeyValue, all_keys, get_json, set_json};
use super::state::VerifiedState;

const USED_STATE_PREFIX: &str = "used-state/";

/// What the marker of a used state holds.
#[derive(Serialize, Deserialize)]
struct UsedState {
    expires_at: u64,
    #[serde(default)]
    finished: Option<FinishedLogin>,
}

/// Whom a finished login logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedLogin {
    pub user_id: String,
    pub wecom_userid: String,
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
    format!("{USED_STATE_PREFIX}{}", hex::encode(verified.nonce))
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
        },
    )
}

/// Deletes the markers whose states have expired; returns how many.
pub fn sweep(kv: &impl KeyValue, now: u64) -> Result<usize, AuthError> {
    let mut swept = 0;
    for key in all_keys(kv)?
        .into_iter()
        .filter(|key| key.starts_with(USED_STATE_PREFIX))
    {
        // An unreadable marker is as spent as an expired one.
        let expired = get_json::<UsedState>(kv, &key)
            .map_or(true, |marker| marker.is_none_or(|m| m.expires_at <= now));
        if expired {
            kv.delete(&key)?;
            swept += 1;
        }
    }
    Ok(swept)
}
