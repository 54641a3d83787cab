//! Keys that live only for a while, on stores without expiry.
//!
//! The draft `wasi:keyvalue` has no time-to-live, and listing its keys is no
//! option (Spin's Redis store lists with `KEYS *`, the whole database,
//! blocking Redis). So each short-lived key is also numbered in the window of
//! time it expires in, with the store's atomic increment (no
//! compare-and-swap, no contention), and an occasional sweep walks the
//! expired windows slot by slot from a watermark, a bounded amount of work at
//! a time. Used-state markers ([`super::used_states`]) and rate-limit counters
//! ([`super::rate_limit`]) are the two families.
//!
//! | key | value |
//! |---|---|
//! | `<family>/<window>/count` | how many keys the window numbered (atomic increment) |
//! | `<family>/<window>/<n>` | JSON string naming key `n` (from 1), as the family writes it |
//! | `<family>/sweep` | `{"window", "slot"}`: where the next sweep starts |
//!
//! A window is [`Family::window_seconds`] long; window `w` holds the keys
//! that expire in `((w - 1)·W, w·W]`, so it is swept once `w·W <= now`.

use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::ports::{KeyValue, get_json, set_json};

/// Keys one sweep handles at most: about 2 store operations each, so a sweep
/// adds a bounded delay to the request it runs in.
pub const SWEEP_BUDGET: u32 = 64;
/// How far behind another instance's clock may be: its keys are not swept yet.
pub const CLOCK_MARGIN_SECONDS: u64 = 120;

/// A family of short-lived keys.
#[derive(Debug)]
pub struct Family {
    /// The prefix of the family's bookkeeping keys, e.g. `used-states`.
    pub name: &'static str,
    /// Length of a sweep window, in seconds.
    pub window_seconds: u64,
    /// Where the very first sweep starts, in windows back: the longest
    /// lifetime of a key of the family.
    pub first_sweep_windows_back: u64,
    /// The key to delete, from what a slot names (`|named| named.into()`
    /// when slots hold whole keys).
    pub key_of: fn(&str) -> String,
}

/// Where a sweep starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SweepPoint {
    window: u64,
    slot: i64,
}

impl Family {
    /// `<family>/<window>/count`.
    fn count_key(&self, window: u64) -> String {
        format!("{}/{window}/count", self.name)
    }

    fn slot_key(&self, window: u64, slot: i64) -> String {
        format!("{}/{window}/{slot}", self.name)
    }

    fn sweep_key(&self) -> String {
        format!("{}/sweep", self.name)
    }

    /// The window a key expiring at `expires_at` (Unix s) is numbered in.
    pub fn window(&self, expires_at: u64) -> u64 {
        expires_at.div_ceil(self.window_seconds)
    }

    /// Numbers a key (named by `named`, which [`Family::key_of`] maps back to
    /// the key) for deletion once `expires_at` (Unix s) has passed. Losing
    /// this only leaves the key behind.
    pub fn register(&self, kv: &impl KeyValue, expires_at: u64, named: &str) {
        let window = self.window(expires_at);
        if let Ok(slot) = kv.increment(&self.count_key(window), 1) {
            let _ = set_json(kv, &self.slot_key(window, slot), &named);
        }
    }

    /// Deletes the keys of windows that are over, from the watermark on, at
    /// most [`SWEEP_BUDGET`] at a time; returns how many it deleted. Running
    /// twice at once only repeats deletes.
    pub fn sweep(&self, kv: &impl KeyValue, now: u64) -> Result<usize, AuthError> {
        // Window `w` is over once `w·W <= now`; a margin spares instances whose
        // clocks run behind, which would still use those keys.
        let current = now.saturating_sub(CLOCK_MARGIN_SECONDS) / self.window_seconds;
        let sweep_key = self.sweep_key();
        let first = SweepPoint {
            window: current.saturating_sub(self.first_sweep_windows_back),
            slot: 1,
        };
        // An unreadable watermark starts afresh rather than stopping every sweep.
        let mut at = kv
            .get(&sweep_key)?
            .and_then(|bytes| serde_json::from_slice::<SweepPoint>(&bytes).ok())
            .unwrap_or(first);
        let mut budget = SWEEP_BUDGET;
        let mut swept = 0;
        while at.window <= current && budget > 0 {
            budget -= 1;
            // An increment by 0 reads the count in every store's own format.
            let count = kv.increment(&self.count_key(at.window), 0)?;
            while at.slot <= count && budget > 0 {
                let slot = self.slot_key(at.window, at.slot);
                if let Some(named) = get_json::<String>(kv, &slot)? {
                    kv.delete(&(self.key_of)(&named))?;
                    swept += 1;
                }
                kv.delete(&slot)?;
                at.slot += 1;
                budget = budget.saturating_sub(1);
            }
            if at.slot > count {
                kv.delete(&self.count_key(at.window))?;
                at = SweepPoint {
                    window: at.window + 1,
                    slot: 1,
                };
            }
        }
        set_json(kv, &sweep_key, &at)?;
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use host_drafts::keyvalue::Op;

    use super::*;
    use crate::core::ports::MemoryKv;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn the_sweep_point_of_todays_layout_reads_and_is_written_the_same() {
        let at: SweepPoint = crate::core::ports::assert_layout_kept("sweep-point.json");
        assert_eq!(
            at,
            SweepPoint {
                window: 5_882_490,
                slot: 3
            }
        );
    }

    static SHORT: Family = Family {
        name: "short",
        window_seconds: 60,
        first_sweep_windows_back: 5,
        key_of: |named| named.into(),
    };

    #[test]
    fn an_unreadable_watermark_starts_afresh_instead_of_stopping_sweeps() {
        let kv = MemoryKv::default();
        kv.set("thing/0", b"1").unwrap();
        SHORT.register(&kv, NOW, "thing/0");
        kv.set("short/sweep", b"not json").unwrap();
        let later = NOW + 60 + CLOCK_MARGIN_SECONDS;
        assert_eq!(SHORT.sweep(&kv, later).unwrap(), 1);
        assert_eq!(kv.get("thing/0").unwrap(), None);
    }

    #[test]
    fn sweeps_delete_expired_keys_in_bounded_steps_and_keep_live_ones() {
        let kv = MemoryKv::default();
        for n in 0..300u64 {
            let key = format!("thing/{n}");
            kv.set(&key, b"1").unwrap();
            SHORT.register(&kv, NOW + n, &key);
        }
        kv.set("thing/live", b"1").unwrap();
        SHORT.register(&kv, NOW + 3600, "thing/live");
        let later = NOW + 300 + 60 + CLOCK_MARGIN_SECONDS;
        let mut total = 0;
        loop {
            let swept = SHORT.sweep(&kv, later).unwrap();
            assert!(swept <= SWEEP_BUDGET as usize);
            total += swept;
            if swept == 0 {
                break;
            }
        }
        assert_eq!(total, 300);
        assert_eq!(kv.faults().count(Op::ListKeys), 0, "never lists the store");
        let live_window = SHORT.window(NOW + 3600).to_string();
        let left = kv.keys();
        assert!(
            left.iter()
                .all(|k| k == "short/sweep" || k == "thing/live" || k.contains(&live_window)),
            "{left:?}"
        );
    }
}
