//! What the backends share: the CAS mode, pages of keys, what a CAS saw, and
//! the counter format of `increment`.

use std::collections::HashSet;

use super::bindings::wasi::keyvalue::store;
use super::faults::Faults;
use super::handles::Seen;

/// How compare-and-swap treats a key that did not exist when the CAS was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CasMode {
    /// The swap succeeds only if the key is still absent.
    #[default]
    Strict,
    /// The swap is an unconditional upsert, as in Spin's default SQLite store.
    UpsertWhenAbsent,
}

/// Keys returned per `list-keys` page (Redis: the `SCAN` count hint).
pub const LIST_PAGE: usize = 1000;

/// The bucket Spin components open by default.
pub const DEFAULT_STORE: &str = "default";

pub(crate) type Outcome<T> = Result<T, store::Error>;

/// What the backends share: CAS mode, the buckets that open, faults and counts.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) mode: CasMode,
    pub(crate) known: HashSet<String>,
    pub(crate) faults: Faults,
}

impl Common {
    pub(crate) fn new(mode: CasMode, known: &[&str]) -> Self {
        Common {
            mode,
            known: known.iter().map(|name| (*name).to_owned()).collect(),
            faults: Faults::default(),
        }
    }
}

/// The end of a swap: done, or a conflict with what the key holds now.
pub(crate) enum Swap {
    Done,
    Conflict(Option<Seen>),
}

/// One page of `list-keys`.
#[derive(Debug, Default)]
pub(crate) struct KeyPage {
    pub(crate) keys: Vec<String>,
    pub(crate) cursor: Option<String>,
}

impl KeyPage {
    /// From up to `LIST_PAGE + 1` keys in order: one more than a page means a
    /// next page, which starts after the last key returned.
    pub(crate) fn from_sorted(mut keys: Vec<String>) -> Self {
        if keys.len() > LIST_PAGE {
            keys.truncate(LIST_PAGE);
            let cursor = keys.last().cloned();
            KeyPage { keys, cursor }
        } else {
            KeyPage { keys, cursor: None }
        }
    }
}

/// A counter as `increment` stores it: decimal text; absent is 0.
pub(crate) fn parse_counter(key: &str, value: Option<&[u8]>) -> Outcome<i64> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| store::Error::Other(format!("key {key:?} does not hold an integer")))
}

pub(crate) fn add(key: &str, current: i64, delta: i64) -> Outcome<i64> {
    current
        .checked_add(delta)
        .ok_or_else(|| store::Error::Other(format!("incrementing {key:?} overflows")))
}
