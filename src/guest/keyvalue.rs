//! The core's [`KeyValue`] over `wasi:keyvalue@0.2.0-draft2`, bucket `default`.

use std::cell::OnceCell;

use crate::core::ports::{KeyValue, StoreError, Swap};

use super::bindings::wasi::keyvalue::{atomics, store};

/// The store every piece of state lives in (Spin: `key_value_stores = ["default"]`).
pub const STORE_NAME: &str = "default";

/// The bucket, opened at once ([`WasiKv::open`]) or on first use
/// ([`WasiKv::lazy`], for the HTTP front, where most routes need no store).
/// One type for both, so the core's generic code is compiled once.
pub struct WasiKv {
    opened: OnceCell<Result<store::Bucket, StoreError>>,
}

impl WasiKv {
    pub fn open() -> Result<Self, StoreError> {
        let bucket = open_bucket()?;
        Ok(WasiKv {
            opened: OnceCell::from(Ok(bucket)),
        })
    }

    pub fn lazy() -> Self {
        WasiKv {
            opened: OnceCell::new(),
        }
    }

    fn bucket(&self) -> Result<&store::Bucket, StoreError> {
        self.opened
            .get_or_init(open_bucket)
            .as_ref()
            .map_err(Clone::clone)
    }
}

fn open_bucket() -> Result<store::Bucket, StoreError> {
    store::open(STORE_NAME).map_err(|e| failed("open", e))
}

fn failed(operation: &str, error: store::Error) -> StoreError {
    StoreError(match error {
        store::Error::NoSuchStore => format!(
            "{operation}: there is no key-value store {STORE_NAME:?} (Spin: key_value_stores = [\"default\"])"
        ),
        store::Error::AccessDenied => format!(
            "{operation}: access to the key-value store {STORE_NAME:?} denied (Spin: key_value_stores = [\"default\"])"
        ),
        store::Error::Other(why) => format!("{operation}: {why}"),
    })
}

impl KeyValue for WasiKv {
    type Cas = atomics::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket()?.get(key).map_err(|e| failed("get", e))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket()?.set(key, value).map_err(|e| failed("set", e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket()?.delete(key).map_err(|e| failed("delete", e))
    }

    fn cas(&self, key: &str) -> Result<atomics::Cas, StoreError> {
        atomics::Cas::new(self.bucket()?, key).map_err(|e| failed("cas", e))
    }

    fn cas_current(&self, cas: &atomics::Cas) -> Result<Option<Vec<u8>>, StoreError> {
        cas.current().map_err(|e| failed("cas current", e))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(self.bucket()?, key, delta).map_err(|e| failed("increment", e))
    }

    fn swap(&self, cas: atomics::Cas, value: &[u8]) -> Result<Swap<atomics::Cas>, StoreError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Swap::Done),
            Err(atomics::CasError::CasFailed(fresh)) => Ok(Swap::Conflict(fresh)),
            Err(atomics::CasError::StoreError(e)) => Err(failed("swap", e)),
        }
    }
}
