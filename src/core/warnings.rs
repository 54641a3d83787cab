//! Guards that cannot work as configured, said aloud instead of switched
//! off in silence. A request that notices one records it in the store
//! (`warnings/<name>`, so every instance's `/ready` sees it); `/ready`
//! lists those seen within the last [`ACTIVE_SECONDS`] in its `warnings`
//! field, the setup check fails on them, and the log has one line when one
//! is first seen (again after an hour without it).
//!
//! | warning | noticed when | what stops working |
//! |---|---|---|
//! | `client-address-header` | a login request lacks the configured client-address header, or it holds no address | `rate_limit_per_client` for those requests |
//! | `compare-and-swap` | a swap on a stale handle overwrote a newer value ([`check_compare_and_swap`]) | one user per member under concurrent first logins |
//! | `clock` | WeCom's `Date` differs from this host's clock by over [`MAX_CLOCK_SKEW`] | the lifetimes of login states, sessions and cached facts |
//! | `api-timeout` | the host refused a WeCom call's timeouts (`wasi:http` `request-options`) | `api_timeout_ms`: a slow WeCom holds requests as long as the host lets it |

use super::ports::{KeyValue, StoreError, Swap, decode, set_json};
use super::texts;
use serde::{Deserialize, Serialize};

/// A warning stays listed this long after it was last noticed (s).
pub const ACTIVE_SECONDS: u64 = 3600;
/// A warning noticed again is written back at most this often (s): a
/// misconfigured proxy costs one read per request, not a write.
const REFRESH_SECONDS: u64 = 60;
/// The largest difference from WeCom's clock taken for network delay and
/// the `Date` header's one-second grain (s). Cached facts trust a record up
/// to a minute ahead of this host's clock too.
pub const MAX_CLOCK_SKEW: i64 = 60;

/// A guard that cannot work as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    ClientAddressHeader,
    CompareAndSwap,
    Clock,
    ApiTimeout,
}

impl Warning {
    pub const ALL: [Warning; 4] = [
        Warning::ClientAddressHeader,
        Warning::CompareAndSwap,
        Warning::Clock,
        Warning::ApiTimeout,
    ];

    /// Its name in `/ready`, the setup check and the log.
    pub fn name(self) -> &'static str {
        match self {
            Warning::ClientAddressHeader => "client-address-header",
            Warning::CompareAndSwap => "compare-and-swap",
            Warning::Clock => "clock",
            Warning::ApiTimeout => "api-timeout",
        }
    }

    fn key(self) -> String {
        format!("warnings/{}", self.name())
    }
}

/// A warning as recorded. As JSON: `{"warning", "detail", "first_seen",
/// "last_seen"}` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noticed {
    pub warning: String,
    /// What does not work and what to change; never a header's value.
    pub detail: String,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl Noticed {
    /// Seen within the last hour (a time ahead of `now`, from an instance
    /// whose clock runs ahead, counts as now).
    fn is_active(&self, now: u64) -> bool {
        now < self.last_seen.min(now).saturating_add(ACTIVE_SECONDS)
    }
}

/// Records that `warning` holds at `now`, for the reason `detail`.
/// Answers the log line when it is news (not noticed within the last
/// [`ACTIVE_SECONDS`]). One read; a write at most once a minute. A store
/// that fails loses the record and the line, not the request.
pub fn notice(kv: &impl KeyValue, warning: Warning, detail: &str, now: u64) -> Option<String> {
    let key = warning.key();
    // A store that fails is reported by every route that needs it; this
    // notice waits for it rather than logging at each request meanwhile.
    let earlier = kv.get(&key).ok()?;
    let active = earlier
        .and_then(|bytes| decode::<Noticed>(&key, &bytes).ok())
        .filter(|n| n.is_active(now));
    if let Some(n) = &active
        && now < n.last_seen.saturating_add(REFRESH_SECONDS)
    {
        return None;
    }
    let record = Noticed {
        warning: warning.name().to_owned(),
        detail: detail.to_owned(),
        first_seen: active.as_ref().map_or(now, |n| n.first_seen),
        last_seen: now,
    };
    // Logged once recorded: a write that fails is tried (and logged) again.
    set_json(kv, &key, &record).ok()?;
    active
        .is_none()
        .then(|| format!("wecom-auth: warning: {}: {detail}", warning.name()))
}

/// Forgets `warning`: a live check found the guard working.
pub fn clear(kv: &impl KeyValue, warning: Warning) -> Result<(), StoreError> {
    kv.delete(&warning.key())
}

/// The warnings noticed within the last [`ACTIVE_SECONDS`], in
/// [`Warning::ALL`]'s order. One read each; an unreadable record is none.
pub fn active(kv: &impl KeyValue, now: u64) -> Result<Vec<Noticed>, StoreError> {
    let mut found = Vec::new();
    for warning in Warning::ALL {
        let key = warning.key();
        if let Some(bytes) = kv.get(&key)?
            && let Ok(noticed) = decode::<Noticed>(&key, &bytes)
            && noticed.is_active(now)
        {
            found.push(noticed);
        }
    }
    Ok(found)
}

/// When `/ready` last started the store check (a [`Checked`] record only).
const CAS_CHECK_KEY: &str = "warnings/compare-and-swap-check";
/// The key the store check swaps on (its values are the check's own).
const CAS_PROBE_KEY: &str = "warnings/compare-and-swap-probe";
/// How often `/ready` checks the store's compare-and-swap (s): well within
/// [`ACTIVE_SECONDS`], so a store that stays broken stays listed.
pub const CAS_CHECK_SECONDS: u64 = 1800;

/// When the store check last started.
#[derive(Serialize, Deserialize)]
struct Checked {
    at: u64,
}

/// What [`check_compare_and_swap`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum CasCheck {
    Compares,
    /// A swap on a stale handle landed: why it matters and what to use,
    /// and the log line when this is news.
    Overwrites {
        detail: String,
        log: Option<String>,
    },
}

/// Claims the store check at `now` when it is due (never run, or not within
/// [`CAS_CHECK_SECONDS`]): records the start first, so the probes that
/// follow read it and do not check again. One read; one write when due.
/// Errors: the read's (a store that does not answer).
pub fn claim_compare_and_swap_check(kv: &impl KeyValue, now: u64) -> Result<bool, StoreError> {
    let last = kv
        .get(CAS_CHECK_KEY)?
        .and_then(|bytes| serde_json::from_slice::<Checked>(&bytes).ok());
    let due = last.is_none_or(|c| now >= c.at.saturating_add(CAS_CHECK_SECONDS) || c.at > now + 60);
    // A store that refuses the write (Redis at `maxmemory` still answers
    // reads) is not checked now: the check writes too.
    let claimed = due
        && serde_json::to_vec(&Checked { at: now })
            .is_ok_and(|bytes| kv.set(CAS_CHECK_KEY, &bytes).is_ok());
    Ok(claimed)
}

/// Whether the store's compare-and-swap compares: a handle reads the key
/// (present), another write changes it, then a swap on the stale handle must not land
/// (wasi:keyvalue `atomics.swap`). Spin 3.6's Redis store reports a
/// conflict even when it wrote, so what the key holds afterwards is what
/// counts, not what the swap answered. `probe`: bytes unique to this check
/// (concurrent checks on other instances only add conflicts). Records the
/// outcome: a store that overwrites becomes [`Warning::CompareAndSwap`], one
/// that compares clears it. Seven or eight store operations.
pub fn check_compare_and_swap(
    kv: &impl KeyValue,
    probe: &str,
    now: u64,
) -> Result<CasCheck, StoreError> {
    let stale = format!("{probe}/stale");
    let newer = format!("{probe}/newer");
    // On a key that exists: Spin's SQLite store swaps an absent key as an
    // upsert (the directory is built for that: first writes need no
    // compare), updates of existing records are what must compare.
    kv.set(CAS_PROBE_KEY, format!("{probe}/first").as_bytes())?;
    let cas = kv.cas(CAS_PROBE_KEY)?;
    kv.cas_current(&cas)?;
    kv.set(CAS_PROBE_KEY, newer.as_bytes())?;
    let swap = kv.swap(cas, stale.as_bytes())?;
    let landed = kv.get(CAS_PROBE_KEY)?.as_deref() == Some(stale.as_bytes());
    if !landed {
        clear(kv, Warning::CompareAndSwap)?;
        return Ok(CasCheck::Compares);
    }
    let answered = match swap {
        Swap::Done => "answered done",
        Swap::Conflict(_) => "answered a conflict",
    };
    let detail = format!(
        "{} (A swap on a stale handle wrote over a newer value and {answered}.)",
        texts::CAS_OVERWRITES.en
    );
    let log = notice(kv, Warning::CompareAndSwap, &detail, now);
    Ok(CasCheck::Overwrites { detail, log })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::MemoryKv;

    const NOW: u64 = 1_790_000_000;

    #[test]
    fn a_warning_is_logged_once_refreshed_each_minute_and_forgotten_after_an_hour() {
        let kv = MemoryKv::default();
        let w = Warning::Clock;
        assert!(
            notice(&kv, w, "off", NOW)
                .unwrap()
                .contains("warning: clock: off")
        );
        assert_eq!(notice(&kv, w, "off", NOW + 30), None);
        assert_eq!(active(&kv, NOW + 30).unwrap()[0].last_seen, NOW);
        assert_eq!(notice(&kv, w, "off more", NOW + 61), None);
        let seen = &active(&kv, NOW + 61).unwrap()[0];
        assert_eq!((seen.first_seen, seen.last_seen), (NOW, NOW + 61));
        assert_eq!(seen.detail, "off more");
        assert!(active(&kv, NOW + 61 + ACTIVE_SECONDS).unwrap().is_empty());
        assert!(notice(&kv, w, "off", NOW + 61 + ACTIVE_SECONDS).is_some());
        // A store that fails: no record, no line at every request.
        let broken = MemoryKv::default();
        broken.faults().fail_op(host_drafts::keyvalue::Op::Get, 10);
        assert_eq!(notice(&broken, w, "off", NOW), None);
    }

    #[test]
    fn the_compare_and_swap_check_tells_a_store_that_overwrites() {
        let strict = MemoryKv::default();
        let misreporting = MemoryKv::default();
        misreporting.misreport_swaps.set(true);
        for kv in [&strict, &misreporting] {
            assert!(claim_compare_and_swap_check(kv, NOW).unwrap());
            assert!(
                !claim_compare_and_swap_check(kv, NOW).unwrap(),
                "claimed once"
            );
            assert_eq!(
                check_compare_and_swap(kv, "p1", NOW).unwrap(),
                CasCheck::Compares
            );
            assert!(!claim_compare_and_swap_check(kv, NOW + 10).unwrap());
            assert!(claim_compare_and_swap_check(kv, NOW + CAS_CHECK_SECONDS).unwrap());
        }
        let overwriting = MemoryKv::default();
        overwriting.overwrite_swaps.set(true);
        let CasCheck::Overwrites { detail, log } =
            check_compare_and_swap(&overwriting, "p2", NOW).unwrap()
        else {
            panic!("an overwriting store passed");
        };
        assert!(detail.contains("answered done"), "{detail}");
        assert!(log.unwrap().contains("compare-and-swap"));
        assert_eq!(
            active(&overwriting, NOW).unwrap()[0].warning,
            "compare-and-swap"
        );
        overwriting.overwrite_swaps.set(false);
        assert_eq!(
            check_compare_and_swap(&overwriting, "p3", NOW + 1).unwrap(),
            CasCheck::Compares
        );
        assert!(active(&overwriting, NOW + 1).unwrap().is_empty());
    }
}
