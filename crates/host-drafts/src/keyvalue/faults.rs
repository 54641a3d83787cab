//! Fault injection and operation counts, shared by every backend: a test can
//! make "the 3rd write of a login" fail, then retry cleanly, and assert how many
//! reads and writes a flow cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::bindings::wasi::keyvalue::store;

/// One host operation of `wasi:keyvalue` as a backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `bucket.get`
    Get,
    /// `bucket.exists`
    Exists,
    /// `bucket.list-keys`
    ListKeys,
    /// `batch.get-many`
    GetMany,
    /// `cas.new`: reads what the key holds.
    CasNew,
    /// `bucket.set`
    Set,
    /// `bucket.delete`
    Delete,
    /// `atomics.increment`
    Increment,
    /// `atomics.swap`, whether it wins or conflicts.
    Swap,
    /// `batch.set-many`
    SetMany,
    /// `batch.delete-many`
    DeleteMany,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Get,
        Op::Exists,
        Op::ListKeys,
        Op::GetMany,
        Op::CasNew,
        Op::Set,
        Op::Delete,
        Op::Increment,
        Op::Swap,
        Op::SetMany,
        Op::DeleteMany,
    ];

    /// Set, delete, increment, swap, set-many, delete-many.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Set | Op::Delete | Op::Increment | Op::Swap | Op::SetMany | Op::DeleteMany
        )
    }

    /// The WIT name, e.g. `get`, `cas.new`, `increment`: for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Exists => "exists",
            Op::ListKeys => "list-keys",
            Op::GetMany => "get-many",
            Op::CasNew => "cas.new",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Increment => "increment",
            Op::Swap => "swap",
            Op::SetMany => "set-many",
            Op::DeleteMany => "delete-many",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTiming {
    /// The operation does nothing and returns the error.
    Before,
    /// The operation is applied, then the error is returned (a lost reply:
    /// the caller cannot tell whether its write landed).
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matcher {
    AnyWrite,
    Only(Op),
}

impl Matcher {
    fn matches(self, op: Op) -> bool {
        match self {
            Matcher::AnyWrite => op.is_write(),
            Matcher::Only(only) => only == op,
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    /// Matching operations still let through before the rule strikes.
    skip: u64,
    /// Strikes left; `None`: every matching operation from then on.
    remaining: Option<u64>,
    timing: FaultTiming,
}

/// The message of every injected fault: `store::Error::Other("injected fault")`.
pub const INJECTED_FAULT: &str = "injected fault";

/// Fault injection and per-operation counters of one backend.
///
/// Rules apply in the order they were added; each matching operation advances
/// every rule's countdown, and the first rule due strikes.
#[derive(Debug, Default)]
pub struct Faults {
    counts: [AtomicU64; Op::ALL.len()],
    errors: [AtomicU64; Op::ALL.len()],
    injected: AtomicU64,
    rules: Mutex<Vec<Rule>>,
}

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, rule: Rule) {
        self.rules().push(rule);
    }

    /// The next write fails once (nothing is written).
    pub fn fail_next_write(&self) {
        self.fail_nth_write(1);
    }

    /// The `n`-th write from now fails once (1 = the next one); the writes
    /// before and after it succeed. `n = 0` is treated as 1.
    pub fn fail_nth_write(&self, n: u64) {
        self.add(Rule {
            matcher: Matcher::AnyWrite,
            skip: n.saturating_sub(1),
            remaining: Some(1),
            timing: FaultTiming::Before,
        });
    }

    /// `n` more writes succeed, then every write fails until [`Faults::clear`].
    pub fn fail_writes_after(&self, n: u64) {
        self.add(Rule {
            matcher: Matcher::AnyWrite,
            skip: n,
            remaining: None,
            timing: FaultTiming::Before,
        });
    }

    /// The next `times` calls of `op` (a read or a write) fail.
    pub fn fail_op(&self, op: Op, times: u64) {
        self.fail_op_with(op, 0, times, FaultTiming::Before);
    }

    /// The general form: after `skip` matching calls of `op`, the next `times`
    /// fail, before or after being applied.
    pub fn fail_op_with(&self, op: Op, skip: u64, times: u64, timing: FaultTiming) {
        if times == 0 {
            return;
        }
        self.add(Rule {
            matcher: Matcher::Only(op),
            skip,
            remaining: Some(times),
            timing,
        });
    }

    /// The next write is applied, but its caller gets the error (a lost reply).
    pub fn fail_next_write_after_applying(&self) {
        self.add(Rule {
            matcher: Matcher::AnyWrite,
            skip: 0,
            remaining: Some(1),
            timing: FaultTiming::After,
        });
    }

    /// Removes every pending fault.
    pub fn clear(&self) {
        self.rules().clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Calls of `op` so far (failed ones included).
    pub fn count(&self, op: Op) -> u64 {
        self.counts[op.index()].load(Ordering::SeqCst)
    }

    /// How many `op` calls answered an error so far (injected or the
    /// backend's own: Redis gone, SQLite busy).
    pub fn errors(&self, op: Op) -> u64 {
        self.errors[op.index()].load(Ordering::SeqCst)
    }

    /// Counts an `op` call that answered an error.
    pub fn failed(&self, op: Op) {
        self.errors[op.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// Read operations so far: get, exists, list-keys, get-many, cas.new.
    pub fn reads(&self) -> u64 {
        Op::ALL
            .iter()
            .filter(|op| !op.is_write())
            .map(|op| self.count(*op))
            .sum()
    }

    /// Write operations so far: set, delete, increment, swap, set-many, delete-many.
    pub fn writes(&self) -> u64 {
        Op::ALL
            .iter()
            .filter(|op| op.is_write())
            .map(|op| self.count(*op))
            .sum()
    }

    /// Zeroes the counters (pending faults stay).
    pub fn reset_counts(&self) {
        for count in &self.counts {
            count.store(0, Ordering::SeqCst);
        }
        self.injected.store(0, Ordering::SeqCst);
    }

    /// Counts `op` and says whether a fault strikes it: what every backend
    /// calls first, and what an embedder calling a store directly calls to
    /// see the same faults.
    pub fn enter(&self, op: Op) -> Option<FaultTiming> {
        self.counts[op.index()].fetch_add(1, Ordering::SeqCst);
        let mut rules = self.rules();
        if rules.is_empty() {
            return None;
        }
        let mut strike = None;
        for (at, rule) in rules.iter_mut().enumerate() {
            if !rule.matcher.matches(op) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
            } else if strike.is_none() {
                strike = Some((at, rule.timing));
            }
        }
        let (at, timing) = strike?;
        if let Some(remaining) = rules[at].remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                rules.remove(at);
            }
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(timing)
    }
}

pub(crate) fn injected_fault() -> store::Error {
    store::Error::Other(INJECTED_FAULT.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(faults: &Faults, ops: &[Op]) -> Vec<bool> {
        ops.iter().map(|op| faults.enter(*op).is_some()).collect()
    }

    #[test]
    fn the_nth_write_fails_once_and_reads_do_not_count_towards_it() {
        let faults = Faults::default();
        faults.fail_nth_write(2);
        assert_eq!(
            outcomes(
                &faults,
                &[Op::Get, Op::Set, Op::CasNew, Op::Swap, Op::Set, Op::Delete]
            ),
            [false, false, false, true, false, false]
        );
        assert_eq!(
            (faults.reads(), faults.writes(), faults.injected()),
            (2, 4, 1)
        );
    }

    #[test]
    fn writes_after_n_fail_until_cleared() {
        let faults = Faults::default();
        faults.fail_writes_after(1);
        assert_eq!(
            outcomes(&faults, &[Op::Set, Op::Set, Op::SetMany, Op::Get]),
            [false, true, true, false]
        );
        faults.clear();
        assert_eq!(outcomes(&faults, &[Op::Set]), [false]);
    }

    #[test]
    fn one_op_fails_the_given_number_of_times() {
        let faults = Faults::default();
        faults.fail_op(Op::Get, 2);
        assert_eq!(
            outcomes(&faults, &[Op::Set, Op::Get, Op::Get, Op::Get]),
            [false, true, true, false]
        );
        faults.fail_op_with(Op::Swap, 1, 1, FaultTiming::After);
        assert_eq!(faults.enter(Op::Swap), None);
        assert_eq!(faults.enter(Op::Swap), Some(FaultTiming::After));
        assert_eq!(faults.count(Op::Get), 3);
        faults.reset_counts();
        assert_eq!((faults.reads(), faults.writes()), (0, 0));
    }
}
