//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) over an in-memory store:
//! the draft Spin 3 and 4 implement, which wasmtime-wasi-keyvalue does not.
//!
//! Gateways can reuse it: link with [`add_to_linker`] and hand out a
//! [`KeyValueView`] from the store data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// How compare-and-swap treats a key that did not exist when the CAS was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasMode {
    /// The swap succeeds only if the key is still absent.
    Strict,
    /// The swap is an unconditional upsert, as in Spin's default SQLite store.
    UpsertWhenAbsent,
}

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

/// The data behind every bucket, shared by all instances (one `Store` per call).
#[derive(Debug)]
pub struct MemoryStore {
    mode: CasMode,
    known: HashSet<String>,
    buckets: Mutex<Buckets>,
}

/// Keys returned per `list-keys` page.
const LIST_PAGE: usize = 1000;

impl MemoryStore {
    /// A store that opens the named buckets (Spin's `key_value_stores`), e.g. `["default"]`.
    pub fn new(mode: CasMode, known: &[&str]) -> Self {
        MemoryStore {
            mode,
            known: known.iter().map(|name| (*name).to_owned()).collect(),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // A panic elsewhere must not wedge every later call.
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads a key directly (for tests and operators).
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let buckets = self.lock();
        buckets.data.get(bucket)?.get(key).map(|e| e.value.clone())
    }

    /// Writes a key directly (for tests and operators).
    pub fn set(&self, bucket: &str, key: &str, value: &[u8]) {
        let mut buckets = self.lock();
        buckets.write(bucket, key, value.to_vec());
    }
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
}

/// An open bucket: the name of the store it reads.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// A compare-and-swap handle: what the key held when it was taken.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    key: String,
    /// `None`: the key was absent.
    seen: Option<Entry>,
}

/// What the keyvalue host functions need from the store data.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub store: &'a MemoryStore,
}

/// Marker for `add_to_linker`: the data of the keyvalue interfaces is a [`KeyValueView`].
pub struct WasiKeyValue;

impl HasData for WasiKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Links store, atomics and batch into `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, WasiKeyValue>(linker, view)?;
    atomics::add_to_linker::<T, WasiKeyValue>(linker, view)?;
    batch::add_to_linker::<T, WasiKeyValue>(linker, view)?;
    Ok(())
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

impl KeyValueView<'_> {
    fn bucket_name(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<Bucket>> {
        if !self.store.known.contains(&identifier) {
            return Ok(Err(store::Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(Bucket { name: identifier })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        Ok(Ok(self.store.get(&name, &key)))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        self.store.lock().write(&name, &key, value);
        Ok(Ok(()))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        if let Some(keys) = self.store.lock().data.get_mut(&name) {
            keys.remove(&key);
        }
        Ok(Ok(()))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<bool> {
        let name = self.bucket_name(&bucket)?;
        Ok(Ok(self.store.lock().read(&name, &key).is_some()))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let buckets = self.store.lock();
        let Some(keys) = buckets.data.get(&name) else {
            return Ok(Ok(store::KeyResponse {
                keys: Vec::new(),
                cursor: None,
            }));
        };
        let after = cursor.as_deref().unwrap_or("");
        let page: Vec<String> = keys
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take(LIST_PAGE + 1)
            .map(|(key, _)| key.clone())
            .collect();
        let (keys, cursor) = if page.len() > LIST_PAGE {
            let keys = page[..LIST_PAGE].to_vec();
            let cursor = keys.last().cloned();
            (keys, cursor)
        } else {
            (page, None)
        };
        Ok(Ok(store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let name = self.bucket_name(&bucket)?;
        let mut buckets = self.store.lock();
        let current = match buckets.read(&name, &key) {
            None => 0,
            Some(entry) => match std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(number) => number,
                None => {
                    return Ok(Err(store::Error::Other(format!(
                        "key {key:?} does not hold an integer"
                    ))));
                }
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Ok(Err(store::Error::Other(format!(
                "incrementing {key:?} overflows"
            ))));
        };
        buckets.write(&name, &key, next.to_string().into_bytes());
        Ok(Ok(next))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        let mut buckets = self.store.lock();
        let now = buckets.read(&cas.bucket, &cas.key).cloned();
        let unchanged = match (&cas.seen, &now) {
            (None, _) if self.store.mode == CasMode::UpsertWhenAbsent => true,
            (None, None) => true,
            (Some(seen), Some(now)) => seen.version == now.version,
            _ => false,
        };
        if unchanged {
            buckets.write(&cas.bucket, &cas.key, value);
            return Ok(Ok(()));
        }
        drop(buckets);
        let fresh = self.table.push(Cas { seen: now, ..cas })?;
        Ok(Err(atomics::CasError::CasFailed(fresh)))
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Resource<Cas>> {
        let name = self.bucket_name(&bucket)?;
        let seen = self.store.lock().read(&name, &key).cloned();
        Ok(Ok(self.table.push(Cas {
            bucket: name,
            key,
            seen,
        })?))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Ok(self
            .table
            .get(&cas)?
            .seen
            .as_ref()
            .map(|e| e.value.clone())))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let name = self.bucket_name(&bucket)?;
        let buckets = self.store.lock();
        Ok(Ok(keys
            .into_iter()
            .map(|key| {
                let value = buckets.read(&name, &key).map(|e| e.value.clone());
                (key, value)
            })
            .collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let mut buckets = self.store.lock();
        for (key, value) in key_values {
            buckets.write(&name, &key, value);
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        if let Some(stored) = self.store.lock().data.get_mut(&name) {
            for key in keys {
                stored.remove(&key);
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomics::{Host as _, HostCas as _};
    use batch::Host as _;
    use store::{Host as _, HostBucket as _};

    struct Fixture {
        table: ResourceTable,
        store: MemoryStore,
    }

    impl Fixture {
        fn new(mode: CasMode) -> Self {
            Fixture {
                table: ResourceTable::new(),
                store: MemoryStore::new(mode, &["default"]),
            }
        }

        fn view(&mut self) -> KeyValueView<'_> {
            KeyValueView {
                table: &mut self.table,
                store: &self.store,
            }
        }
    }

    async fn open(view: &mut KeyValueView<'_>) -> Resource<Bucket> {
        view.open("default".into()).await.unwrap().unwrap()
    }

    fn borrow(bucket: &Resource<Bucket>) -> Resource<Bucket> {
        Resource::new_borrow(bucket.rep())
    }

    #[tokio::test]
    async fn only_configured_stores_open() {
        let mut f = Fixture::new(CasMode::Strict);
        let mut view = f.view();
        assert!(matches!(
            view.open("other".into()).await.unwrap(),
            Err(store::Error::NoSuchStore)
        ));
        assert!(view.open("default".into()).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn set_get_exists_delete_and_list_in_pages() {
        let mut f = Fixture::new(CasMode::Strict);
        let mut view = f.view();
        let bucket = open(&mut view).await;
        for i in 0..(LIST_PAGE + 5) {
            view.set(borrow(&bucket), format!("k{i:05}"), vec![1])
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            view.get(borrow(&bucket), "k00003".into())
                .await
                .unwrap()
                .unwrap(),
            Some(vec![1])
        );
        assert!(
            view.exists(borrow(&bucket), "k00003".into())
                .await
                .unwrap()
                .unwrap()
        );
        view.delete(borrow(&bucket), "k00003".into())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !view
                .exists(borrow(&bucket), "k00003".into())
                .await
                .unwrap()
                .unwrap()
        );
        let first = view
            .list_keys(borrow(&bucket), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.keys.len(), LIST_PAGE);
        let second = view
            .list_keys(borrow(&bucket), first.cursor)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((second.keys.len(), second.cursor), (4, None));
    }

    #[tokio::test]
    async fn increment_counts_in_decimal_and_refuses_non_numbers() {
        let mut f = Fixture::new(CasMode::Strict);
        let mut view = f.view();
        let bucket = open(&mut view).await;
        assert_eq!(
            view.increment(borrow(&bucket), "n".into(), 5)
                .await
                .unwrap()
                .unwrap(),
            5
        );
        assert_eq!(
            view.increment(borrow(&bucket), "n".into(), -2)
                .await
                .unwrap()
                .unwrap(),
            3
        );
        view.set(borrow(&bucket), "s".into(), b"abc".to_vec())
            .await
            .unwrap()
            .unwrap();
        assert!(
            view.increment(borrow(&bucket), "s".into(), 1)
                .await
                .unwrap()
                .is_err()
        );
    }

    #[tokio::test]
    async fn batch_reads_writes_and_deletes() {
        let mut f = Fixture::new(CasMode::Strict);
        let mut view = f.view();
        let bucket = open(&mut view).await;
        view.set_many(
            borrow(&bucket),
            vec![("a".into(), vec![1]), ("b".into(), vec![2])],
        )
        .await
        .unwrap()
        .unwrap();
        let got = view
            .get_many(borrow(&bucket), vec!["a".into(), "z".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            [("a".to_owned(), Some(vec![1])), ("z".to_owned(), None)]
        );
        view.delete_many(borrow(&bucket), vec!["a".into(), "b".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.store.get("default", "b"), None);
    }

    /// Two writers take a CAS on the same key, then both swap: the second must
    /// lose and get a fresh CAS that sees the first writer's value.
    async fn race(mode: CasMode, existing: Option<&[u8]>) -> (bool, bool, Vec<u8>) {
        let mut f = Fixture::new(mode);
        if let Some(value) = existing {
            f.store.set("default", "user", value);
        }
        let mut view = f.view();
        let bucket = open(&mut view).await;
        let first = atomics::HostCas::new(&mut view, borrow(&bucket), "user".into())
            .await
            .unwrap()
            .unwrap();
        let second = atomics::HostCas::new(&mut view, borrow(&bucket), "user".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            view.current(Resource::new_borrow(second.rep()))
                .await
                .unwrap()
                .unwrap()
                .as_deref(),
            existing
        );
        let first_won = view.swap(first, b"first".to_vec()).await.unwrap().is_ok();
        let second_won = match view.swap(second, b"second".to_vec()).await.unwrap() {
            Ok(()) => true,
            Err(atomics::CasError::CasFailed(fresh)) => {
                let seen = view
                    .current(Resource::new_borrow(fresh.rep()))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    seen.as_deref(),
                    Some(&b"first"[..]),
                    "a failed CAS returns the latest value"
                );
                false
            }
            Err(atomics::CasError::StoreError(e)) => panic!("{e:?}"),
        };
        (
            first_won,
            second_won,
            f.store.get("default", "user").unwrap(),
        )
    }

    #[tokio::test]
    async fn cas_on_an_existing_key_lets_exactly_one_writer_win_in_both_modes() {
        for mode in [CasMode::Strict, CasMode::UpsertWhenAbsent] {
            assert_eq!(
                race(mode, Some(b"old")).await,
                (true, false, b"first".to_vec()),
                "{mode:?}"
            );
        }
    }

    #[tokio::test]
    async fn cas_on_an_absent_key_is_strict_or_an_upsert_as_in_spins_sqlite_store() {
        assert_eq!(
            race(CasMode::Strict, None).await,
            (true, false, b"first".to_vec())
        );
        // Spin's SQLite store: both "create if absent" swaps succeed; the last write stays.
        assert_eq!(
            race(CasMode::UpsertWhenAbsent, None).await,
            (true, true, b"second".to_vec())
        );
    }

    #[tokio::test]
    async fn a_delete_between_cas_and_swap_is_a_conflict() {
        let mut f = Fixture::new(CasMode::Strict);
        f.store.set("default", "k", b"v");
        let mut view = f.view();
        let bucket = open(&mut view).await;
        let cas = atomics::HostCas::new(&mut view, borrow(&bucket), "k".into())
            .await
            .unwrap()
            .unwrap();
        view.delete(borrow(&bucket), "k".into())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            view.swap(cas, b"w".to_vec()).await.unwrap(),
            Err(atomics::CasError::CasFailed(_))
        ));
    }
}
