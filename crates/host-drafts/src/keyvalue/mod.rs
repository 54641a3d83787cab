//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch): the draft Spin 3 and 4
//! implement, which wasmtime-wasi-keyvalue does not, over three backends:
//!
//! - [`MemoryStore`]: in memory, for tests and throwaway gateways;
//! - [`SqliteStore`]: one SQLite file, durable (the engine of Spin's default store);
//! - [`RedisStore`]: a Redis server, shared by several gateway instances.
//!
//! Gateways can reuse it: build a [`KeyValueBackend`] once, link with
//! [`add_to_linker`] and hand out a [`KeyValueView`] from each store's data.
//! Every backend counts operations and can inject faults ([`Faults`]).

mod bindings;
mod faults;
mod handles;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use self::bindings::wasi::keyvalue::{atomics, batch, store};
use self::handles::Seen;
use self::shared::{Common, Outcome, Swap};

pub use self::bindings::wasi::keyvalue::store::Error;
pub use self::faults::{FaultTiming, Faults, INJECTED_FAULT, Op};
pub use self::handles::{Bucket, Cas};
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use self::shared::{CasMode, DEFAULT_STORE, LIST_PAGE};
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteStore;

/// The store every instance of a host shares: cheap to clone.
#[derive(Debug, Clone)]
pub enum KeyValueBackend {
    Memory(Arc<MemoryStore>),
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<SqliteStore>),
    #[cfg(feature = "redis")]
    Redis(Arc<RedisStore>),
}

/// Calls the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            KeyValueBackend::Memory($store) => $call,
            #[cfg(feature = "sqlite")]
            KeyValueBackend::Sqlite($store) => $call,
            #[cfg(feature = "redis")]
            KeyValueBackend::Redis($store) => $call,
        }
    };
}

impl Default for KeyValueBackend {
    /// In memory, strict CAS, the bucket `default`.
    fn default() -> Self {
        KeyValueBackend::memory(CasMode::Strict)
    }
}

impl KeyValueBackend {
    /// In memory, serving the bucket `default`.
    pub fn memory(mode: CasMode) -> Self {
        KeyValueBackend::Memory(Arc::new(MemoryStore::new(mode, &[DEFAULT_STORE])))
    }

    /// A SQLite file (created if needed), serving the bucket `default`.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(path: impl AsRef<std::path::Path>, mode: CasMode) -> anyhow::Result<Self> {
        Ok(KeyValueBackend::Sqlite(Arc::new(SqliteStore::open(
            path,
            mode,
            &[DEFAULT_STORE],
        )?)))
    }

    /// A Redis server at `url`, serving the bucket `default` (keys `default:<key>`).
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str, mode: CasMode) -> anyhow::Result<Self> {
        Ok(KeyValueBackend::Redis(Arc::new(
            RedisStore::connect(url, mode, &[DEFAULT_STORE]).await?,
        )))
    }

    /// `memory`, `sqlite` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyValueBackend::Memory(_) => "memory",
            #[cfg(feature = "sqlite")]
            KeyValueBackend::Sqlite(_) => "sqlite",
            #[cfg(feature = "redis")]
            KeyValueBackend::Redis(_) => "redis",
        }
    }

    /// The memory store, when this is one (tests read and seed it directly).
    pub fn as_memory(&self) -> Option<&Arc<MemoryStore>> {
        #[allow(unreachable_patterns)] // with neither feature, memory is all there is
        match self {
            KeyValueBackend::Memory(store) => Some(store),
            _ => None,
        }
    }

    fn common(&self) -> &Common {
        dispatch!(self, store => store.common())
    }

    pub fn mode(&self) -> CasMode {
        self.common().mode
    }

    /// Whether `open(name)` succeeds.
    pub fn serves(&self, name: &str) -> bool {
        self.common().known.contains(name)
    }

    /// Fault injection, operation and error counts of the host functions.
    pub fn faults(&self) -> &Faults {
        &self.common().faults
    }

    // Direct access for operators and tests: every backend, no faults, not counted.

    /// Reads a key.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, store::Error> {
        dispatch!(self, store => store.op_get(bucket, key).await)
    }

    /// Writes a key.
    pub async fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), store::Error> {
        dispatch!(self, store => store.op_set(bucket, key, value.to_vec()).await)
    }

    /// Deletes a key.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), store::Error> {
        dispatch!(self, store => store.op_delete(bucket, key).await)
    }

    /// Every key of `bucket` (all pages).
    pub async fn keys(&self, bucket: &str) -> Result<Vec<String>, store::Error> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = dispatch!(self, store => store.op_list_keys(bucket, cursor).await)?;
            all.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Counts `op`, injects a fault if one is due, else runs `work`.
    async fn guarded<T>(&self, op: Op, work: impl Future<Output = Outcome<T>>) -> Outcome<T> {
        let outcome = match self.faults().enter(op) {
            Some(FaultTiming::Before) => Err(faults::injected_fault()),
            Some(FaultTiming::After) => match work.await {
                Ok(_) => Err(faults::injected_fault()),
                Err(e) => Err(e),
            },
            None => work.await,
        };
        if outcome.is_err() {
            self.faults().failed(op);
        }
        outcome
    }

    async fn swap(
        &self,
        bucket: &str,
        key: &str,
        seen: Option<&Seen>,
        value: Vec<u8>,
    ) -> Outcome<Swap> {
        if seen.is_none() && self.mode() == CasMode::UpsertWhenAbsent {
            dispatch!(self, store => store.op_set(bucket, key, value).await)?;
            return Ok(Swap::Done);
        }
        dispatch!(self, store => store.op_swap(bucket, key, seen, value).await)
    }
}

impl From<Arc<MemoryStore>> for KeyValueBackend {
    fn from(store: Arc<MemoryStore>) -> Self {
        KeyValueBackend::Memory(store)
    }
}

#[cfg(feature = "sqlite")]
impl From<Arc<SqliteStore>> for KeyValueBackend {
    fn from(store: Arc<SqliteStore>) -> Self {
        KeyValueBackend::Sqlite(store)
    }
}

#[cfg(feature = "redis")]
impl From<Arc<RedisStore>> for KeyValueBackend {
    fn from(store: Arc<RedisStore>) -> Self {
        KeyValueBackend::Redis(store)
    }
}

/// What the keyvalue host functions need from the store data.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub store: &'a KeyValueBackend,
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
        if !self.store.serves(&identifier) {
            return Ok(Err(store::Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(Bucket { name: identifier })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::Get, async {
                dispatch!(kv, store => store.op_get(&name, &key).await)
            })
            .await)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::Set, async {
                dispatch!(kv, store => store.op_set(&name, &key, value).await)
            })
            .await)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::Delete, async {
                dispatch!(kv, store => store.op_delete(&name, &key).await)
            })
            .await)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<bool> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::Exists, async {
                dispatch!(kv, store => store.op_exists(&name, &key).await)
            })
            .await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        let page = kv
            .guarded(Op::ListKeys, async {
                dispatch!(kv, store => store.op_list_keys(&name, cursor).await)
            })
            .await;
        Ok(page.map(|page| store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        }))
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
        let kv = self.store;
        Ok(kv
            .guarded(Op::Increment, async {
                dispatch!(kv, store => store.op_increment(&name, &key, delta).await)
            })
            .await)
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        let kv = self.store;
        let outcome = kv
            .guarded(
                Op::Swap,
                kv.swap(&cas.bucket, &cas.key, cas.seen.as_ref(), value),
            )
            .await;
        match outcome {
            Ok(Swap::Done) => Ok(Ok(())),
            Ok(Swap::Conflict(now)) => {
                let fresh = self.table.push(Cas { seen: now, ..cas })?;
                Ok(Err(atomics::CasError::CasFailed(fresh)))
            }
            Err(error) => Ok(Err(atomics::CasError::StoreError(error))),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Resource<Cas>> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        let seen = kv
            .guarded(Op::CasNew, async {
                dispatch!(kv, store => store.op_observe(&name, &key).await)
            })
            .await;
        match seen {
            Ok(seen) => Ok(Ok(self.table.push(Cas {
                bucket: name,
                key,
                seen,
            })?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn current(&mut self, cas: Resource<Cas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Ok(self
            .table
            .get(&cas)?
            .seen
            .as_ref()
            .map(|seen| seen.value.clone())))
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
        let kv = self.store;
        Ok(kv
            .guarded(Op::GetMany, async {
                dispatch!(kv, store => store.op_get_many(&name, keys).await)
            })
            .await)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::SetMany, async {
                dispatch!(kv, store => store.op_set_many(&name, key_values).await)
            })
            .await)
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> KvResult<()> {
        let name = self.bucket_name(&bucket)?;
        let kv = self.store;
        Ok(kv
            .guarded(Op::DeleteMany, async {
                dispatch!(kv, store => store.op_delete_many(&name, keys).await)
            })
            .await)
    }
}
