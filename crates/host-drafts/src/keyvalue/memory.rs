//! The in-memory backend: one map behind one lock, shared by every instance.
//! Every write takes a fresh version under the lock, and a swap compares the
//! version its CAS saw under that same lock, so CAS is atomic across instances.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use super::faults::Faults;
use super::handles::Seen;
use super::shared::{CasMode, Common, KeyPage, LIST_PAGE, Outcome, Swap, parse_counter};

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    version: u64,
}

#[derive(Debug, Default)]
struct Buckets {
    data: HashMap<String, BTreeMap<String, Entry>>,
    next_version: u64,
}

impl Buckets {
    fn write(&mut self, bucket: &str, key: &str, value: Vec<u8>) {
        self.next_version += 1;
        let version = self.next_version;
        self.data
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), Entry { value, version });
    }

    fn read(&self, bucket: &str, key: &str) -> Option<&Entry> {
        self.data.get(bucket)?.get(key)
    }

    fn seen(&self, bucket: &str, key: &str) -> Option<Seen> {
        self.read(bucket, key).map(|entry| Seen {
            value: entry.value.clone(),
            version: entry.version,
        })
    }

    fn remove(&mut self, bucket: &str, key: &str) {
        if let Some(keys) = self.data.get_mut(bucket) {
            keys.remove(key);
        }
    }
}

/// The data behind every bucket, shared by all instances (one `Store` per call).
#[derive(Debug)]
pub struct MemoryStore {
    common: Common,
    buckets: Mutex<Buckets>,
}

impl MemoryStore {
    /// A store that opens the named buckets (Spin's `key_value_stores`), e.g. `["default"]`.
    pub fn new(mode: CasMode, known: &[&str]) -> Self {
        MemoryStore {
            common: Common::new(mode, known),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // A panic elsewhere must not wedge every later call.
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn common(&self) -> &Common {
        &self.common
    }

    /// Fault injection and operation counts of the host functions.
    pub fn faults(&self) -> &Faults {
        &self.common.faults
    }

    /// Reads a key directly, bypassing faults and counters (for tests and operators).
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock().read(bucket, key).map(|e| e.value.clone())
    }

    /// Writes a key directly, bypassing faults and counters (for tests and operators).
    pub fn set(&self, bucket: &str, key: &str, value: &[u8]) {
        self.lock().write(bucket, key, value.to_vec());
    }

    /// Deletes a key directly (for tests and operators).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.lock().remove(bucket, key);
    }

    /// Every key of `bucket`, in order (for tests and operators).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.lock()
            .data
            .get(bucket)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What `key` holds and its version (every write takes a fresh one): what
    /// a compare-and-swap sees, for embedders that call the store directly.
    pub fn versioned(&self, bucket: &str, key: &str) -> Option<(u64, Vec<u8>)> {
        self.lock()
            .read(bucket, key)
            .map(|entry| (entry.version, entry.value.clone()))
    }

    /// Writes `value` if `key` still holds the version `expected` (`None`:
    /// still absent), atomically; else answers what it holds now. Strict on
    /// an absent key whatever the store's [`CasMode`].
    pub fn swap_versioned(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
    ) -> Result<(), Option<(u64, Vec<u8>)>> {
        let mut buckets = self.lock();
        let now = buckets.read(bucket, key).map(|entry| entry.version);
        if now != expected {
            return Err(buckets
                .read(bucket, key)
                .map(|entry| (entry.version, entry.value.clone())));
        }
        buckets.write(bucket, key, value.to_vec());
        Ok(())
    }

    /// How many keys `bucket` holds.
    pub fn len(&self, bucket: &str) -> usize {
        self.lock().data.get(bucket).map_or(0, BTreeMap::len)
    }

    pub fn is_empty(&self, bucket: &str) -> bool {
        self.len(bucket) == 0
    }

    pub(crate) async fn op_get(&self, bucket: &str, key: &str) -> Outcome<Option<Vec<u8>>> {
        Ok(self.get(bucket, key))
    }

    pub(crate) async fn op_set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Outcome<()> {
        self.lock().write(bucket, key, value);
        Ok(())
    }

    pub(crate) async fn op_delete(&self, bucket: &str, key: &str) -> Outcome<()> {
        self.delete(bucket, key);
        Ok(())
    }

    pub(crate) async fn op_exists(&self, bucket: &str, key: &str) -> Outcome<bool> {
        Ok(self.lock().read(bucket, key).is_some())
    }

    pub(crate) async fn op_list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Outcome<KeyPage> {
        let buckets = self.lock();
        let Some(keys) = buckets.data.get(bucket) else {
            return Ok(KeyPage::default());
        };
        let after = cursor.as_deref().unwrap_or("");
        let page: Vec<String> = keys
            .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
            .take(LIST_PAGE + 1)
            .map(|(key, _)| key.clone())
            .collect();
        Ok(KeyPage::from_sorted(page))
    }

    pub(crate) async fn op_increment(&self, bucket: &str, key: &str, delta: i64) -> Outcome<i64> {
        self.increment(bucket, key, delta)
    }

    /// Adds `delta` to the counter at `key` (absent: 0), atomically, as
    /// `wasi:keyvalue/atomics.increment` does; for embedders calling directly.
    pub fn increment(&self, bucket: &str, key: &str, delta: i64) -> Outcome<i64> {
        let mut buckets = self.lock();
        let current = parse_counter(key, buckets.read(bucket, key).map(|e| &e.value[..]))?;
        let next = super::shared::add(key, current, delta)?;
        buckets.write(bucket, key, next.to_string().into_bytes());
        Ok(next)
    }

    pub(crate) async fn op_observe(&self, bucket: &str, key: &str) -> Outcome<Option<Seen>> {
        Ok(self.lock().seen(bucket, key))
    }

    /// Swaps when the key still holds the version `seen` was taken at (or is
    /// still absent), all under the lock.
    pub(crate) async fn op_swap(
        &self,
        bucket: &str,
        key: &str,
        seen: Option<&Seen>,
        value: Vec<u8>,
    ) -> Outcome<Swap> {
        let mut buckets = self.lock();
        let unchanged = match (seen, buckets.read(bucket, key)) {
            (None, None) => true,
            (Some(seen), Some(now)) => seen.version == now.version,
            _ => false,
        };
        if unchanged {
            buckets.write(bucket, key, value);
            Ok(Swap::Done)
        } else {
            Ok(Swap::Conflict(buckets.seen(bucket, key)))
        }
    }

    pub(crate) async fn op_get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Outcome<Vec<(String, Option<Vec<u8>>)>> {
        let buckets = self.lock();
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = buckets.read(bucket, &key).map(|e| e.value.clone());
                (key, value)
            })
            .collect())
    }

    pub(crate) async fn op_set_many(
        &self,
        bucket: &str,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Outcome<()> {
        let mut buckets = self.lock();
        for (key, value) in key_values {
            buckets.write(bucket, &key, value);
        }
        Ok(())
    }

    pub(crate) async fn op_delete_many(&self, bucket: &str, keys: Vec<String>) -> Outcome<()> {
        let mut buckets = self.lock();
        for key in keys {
            buckets.remove(bucket, &key);
        }
        Ok(())
    }
}
