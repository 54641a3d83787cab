//! What the core needs from the outside, as traits: a key-value store with
//! compare-and-swap (`wasi:keyvalue` in the component) and an HTTP client
//! (`wasi:http/outgoing-handler`). The WASI glue implements them; tests use
//! [`MemoryKv`] and scripted transports.

use super::error::AuthError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed store operation; the text names the operation, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e.0)
    }
}

/// What compare-and-swap answered.
pub enum Swap<C> {
    Done,
    /// Someone wrote first: a fresh handle that sees their value.
    Conflict(C),
}

/// A bucket of `wasi:keyvalue@0.2.0-draft2`. No `list-keys` and no
/// `get-many`: Spin 3.6's Redis store answers the first with `KEYS *` (the
/// whole database) and fails the second (it sends `KEYS` with the keys as
/// arguments; `host-test/tests/spin.rs` counts the WeCom calls that cost),
/// so nothing here needs them.
pub trait KeyValue {
    type Cas;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Takes a compare-and-swap handle: what `key` holds now.
    fn cas(&self, key: &str) -> Result<Self::Cas, StoreError>;
    fn cas_current(&self, cas: &Self::Cas) -> Result<Option<Vec<u8>>, StoreError>;
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap<Self::Cas>, StoreError>;
    /// Adds `delta` to the counter at `key` atomically (absent: 0) and answers
    /// the sum; `delta = 0` reads it.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
}

/// Conflicts one update may meet before giving up: each means another writer
/// made progress, so this bounds the work, not correctness.
const MAX_CAS_ATTEMPTS: usize = 100;

/// Reads a JSON record; an unreadable one is a store error (never a panic).
/// Records written by earlier releases read too: the fields added since
/// are `#[serde(default)]`.
pub fn get_json<T: DeserializeOwned>(
    kv: &impl KeyValue,
    key: &str,
) -> Result<Option<T>, AuthError> {
    match kv.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(key, &bytes).map(Some),
    }
}

pub fn set_json<T: Serialize>(kv: &impl KeyValue, key: &str, value: &T) -> Result<(), AuthError> {
    Ok(kv.set(key, &encode(value)?)?)
}

/// A JSON record's bytes read back; unreadable is a store error that says
/// whether the bytes are JSON at all and where serde_json stopped, never
/// quoting them (records hold mobile numbers, serde_json's messages quote
/// values).
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "JSON, but not a record this version reads (a field missing or of another type)"
            }
            _ => "not JSON",
        };
        AuthError::Store(format!(
            "record {key:?} is unreadable: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A record's JSON bytes. serde_json refuses only maps keyed by other than
/// strings, which no record has; should one, it is a store error, not a panic.
fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, AuthError> {
    serde_json::to_vec(value).map_err(|e| AuthError::Store(format!("a record is not JSON: {e}")))
}

/// What an update wants done with the record it was shown.
pub enum Update<T> {
    Write(T),
    /// Nothing to change: no write.
    Keep,
}

/// Read-modify-write of one JSON record with compare-and-swap, retried on
/// conflict. `change` sees the current record (None: absent) and may run
/// several times. Returns what was written (or kept) and whether it wrote.
pub fn update_json<T, K>(
    kv: &K,
    key: &str,
    mut change: impl FnMut(Option<&T>) -> Result<Update<T>, AuthError>,
) -> Result<(Option<T>, bool), AuthError>
where
    T: Serialize + DeserializeOwned,
    K: KeyValue,
{
    // The typed part only decodes and encodes; the loop is built once.
    let mut last: Option<T> = None;
    let wrote = update_bytes(kv, key, &mut |current| {
        let current: Option<T> = current.map(|bytes| decode(key, bytes)).transpose()?;
        match change(current.as_ref())? {
            Update::Keep => {
                last = current;
                Ok(None)
            }
            Update::Write(next) => {
                let bytes = encode(&next)?;
                last = Some(next);
                Ok(Some(bytes))
            }
        }
    })?;
    Ok((last, wrote))
}

/// Given the current record (None: absent), the bytes to write (None: keep).
type ChangeBytes<'a> = dyn FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, AuthError> + 'a;

/// The compare-and-swap loop of [`update_json`] on raw records: `change`
/// answers the bytes to write (None: keep). Whether it wrote.
fn update_bytes<K: KeyValue>(
    kv: &K,
    key: &str,
    change: &mut ChangeBytes<'_>,
) -> Result<bool, AuthError> {
    let mut cas = kv.cas(key)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = kv.cas_current(&cas)?;
        let Some(bytes) = change(current.as_deref())? else {
            return Ok(false);
        };
        match kv.swap(cas, &bytes)? {
            Swap::Done => return Ok(true),
            // A conflict whose key now holds exactly what this swap wrote:
            // the write landed and the host misreported it (Spin 3.6's Redis
            // store sends `UNWATCH key`, which Redis refuses, after every
            // EXEC). Any other writer's value differs and is retried against.
            Swap::Conflict(fresh) if kv.cas_current(&fresh)?.as_deref() == Some(&bytes) => {
                return Ok(true);
            }
            Swap::Conflict(fresh) => cas = fresh,
        }
    }
    Err(AuthError::Store(format!(
        "{key:?} kept changing under {MAX_CAS_ATTEMPTS} attempts to update it"
    )))
}

/// An HTTP request to the WeCom server API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub post: bool,
    /// Holds the access token in its query: never log it.
    pub url: String,
    /// JSON body of a POST.
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Date` header as Unix seconds (RFC 9110 §6.6.1): WeCom's clock,
    /// which this host's is checked against. None: absent or unreadable.
    pub date: Option<u64>,
    /// The host refused this request's timeouts (`wasi:http`
    /// `request-options`): `api_timeout_ms` did not bound it.
    pub timeouts_refused: bool,
}

/// Sends one request and reads the whole answer. The error says what failed
/// (connect, timeout, reset) and never repeats the URL.
pub trait Transport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String>;

    /// Sends every request at once and answers each, in order: independent
    /// calls cost one round trip together. By default one after another.
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, String>> {
        requests.iter().map(|request| self.send(request)).collect()
    }
}

/// A reference sends as what it refers to: the component passes
/// `&dyn Transport` everywhere, so the generic core is built once, not once
/// per transport type (tens of KB of the component).
impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        (**self).send(request)
    }

    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, String>> {
        (**self).send_all(requests)
    }
}

/// The in-memory store of the host crate (`host-drafts`, the one the harness
/// and the gateway run on) as a core bucket, for native tests: real
/// compare-and-swap and the same fault injection.
#[cfg(test)]
pub struct MemoryKv {
    store: host_drafts::keyvalue::MemoryStore,
    /// Swaps that write, then answer a conflict (as Spin 3.6's Redis store does).
    pub misreport_swaps: std::cell::Cell<bool>,
    /// Swaps that write whatever the key holds now: a store without
    /// compare-and-swap.
    pub overwrite_swaps: std::cell::Cell<bool>,
}

#[cfg(test)]
mod memory {
    use host_drafts::keyvalue::{CasMode, DEFAULT_STORE, FaultTiming, Faults, MemoryStore, Op};

    use super::{KeyValue, MemoryKv, StoreError, Swap};

    impl Default for MemoryKv {
        fn default() -> Self {
            MemoryKv {
                store: MemoryStore::new(CasMode::Strict, &[DEFAULT_STORE]),
                misreport_swaps: std::cell::Cell::new(false),
                overwrite_swaps: std::cell::Cell::new(false),
            }
        }
    }

    /// A compare-and-swap handle: the version and value the key held.
    pub struct MemoryCas {
        key: String,
        seen: Option<(u64, Vec<u8>)>,
    }

    impl MemoryKv {
        pub fn keys(&self) -> Vec<String> {
            self.store.keys(DEFAULT_STORE)
        }

        pub fn faults(&self) -> &Faults {
            self.store.faults()
        }

        /// Fails the `n`-th write from now (0 = the next one), once.
        pub fn fail_write_at(&self, n: u64) {
            self.faults().fail_nth_write(n + 1);
        }

        /// Runs `work` unless a fault strikes `op` (before or after it).
        fn guarded<T>(&self, op: Op, key: &str, work: impl FnOnce() -> T) -> Result<T, StoreError> {
            let fault = || StoreError(format!("injected fault at {op:?} of {key:?}"));
            match self.faults().enter(op) {
                Some(FaultTiming::Before) => Err(fault()),
                Some(FaultTiming::After) => {
                    work();
                    Err(fault())
                }
                None => Ok(work()),
            }
        }
    }

    impl KeyValue for MemoryKv {
        type Cas = MemoryCas;

        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.guarded(Op::Get, key, || self.store.get(DEFAULT_STORE, key))
        }

        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.guarded(Op::Set, key, || self.store.set(DEFAULT_STORE, key, value))
        }

        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.guarded(Op::Delete, key, || self.store.delete(DEFAULT_STORE, key))
        }

        fn cas(&self, key: &str) -> Result<MemoryCas, StoreError> {
            let seen =
                self.guarded(Op::CasNew, key, || self.store.versioned(DEFAULT_STORE, key))?;
            Ok(MemoryCas {
                key: key.to_owned(),
                seen,
            })
        }

        fn cas_current(&self, cas: &MemoryCas) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(cas.seen.as_ref().map(|(_, v)| v.clone()))
        }

        fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            self.guarded(Op::Increment, key, || {
                self.store.increment(DEFAULT_STORE, key, delta)
            })?
            .map_err(|e| StoreError(format!("increment: {e:?}")))
        }

        fn swap(&self, cas: MemoryCas, value: &[u8]) -> Result<Swap<MemoryCas>, StoreError> {
            let expected = if self.overwrite_swaps.get() {
                self.store
                    .versioned(DEFAULT_STORE, &cas.key)
                    .map(|(v, _)| v)
            } else {
                cas.seen.as_ref().map(|(version, _)| *version)
            };
            let outcome = self.guarded(Op::Swap, &cas.key, || {
                self.store
                    .swap_versioned(DEFAULT_STORE, &cas.key, expected, value)
            })?;
            Ok(match outcome {
                Ok(()) if self.misreport_swaps.get() => Swap::Conflict(MemoryCas {
                    seen: self.store.versioned(DEFAULT_STORE, &cas.key),
                    key: cas.key,
                }),
                Ok(()) => Swap::Done,
                Err(now) => Swap::Conflict(MemoryCas {
                    key: cas.key,
                    seen: now,
                }),
            })
        }
    }
}

/// The bytes of a stored record as today's release writes it
/// (`testdata/stored/<file>`), for the tests that hold each layout.
#[cfg(test)]
pub(crate) fn stored_record(file: &str) -> Vec<u8> {
    let path = format!("{}/testdata/stored/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads the stored record `file` as a `T` and checks that writing it back
/// gives the same bytes: records written by today's release read, and what
/// this one writes, today's release reads.
#[cfg(test)]
pub(crate) fn assert_layout_kept<T: Serialize + DeserializeOwned>(file: &str) -> T {
    let bytes = stored_record(file);
    let record: T = decode(file, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        String::from_utf8(encode(&record).unwrap()).unwrap(),
        String::from_utf8(bytes).unwrap(),
        "{file} is written as it was"
    );
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_record_says_whether_it_is_json_without_quoting_it() {
        let kv = MemoryKv::default();
        kv.set("user/u-1", br#"{"mobile":"13800000000"}"#).unwrap();
        kv.set("user/u-2", b"\x00garbage 13800000000").unwrap();
        let message = |key| match get_json::<Vec<u32>>(&kv, key) {
            Err(AuthError::Store(message)) => message,
            other => panic!("{other:?}"),
        };
        let layout = message("user/u-1");
        assert!(
            layout.contains("\"user/u-1\"") && layout.contains("not a record this version reads"),
            "{layout}"
        );
        let garbage = message("user/u-2");
        assert!(garbage.contains("not JSON (line 1, column 1)"), "{garbage}");
        assert!(!layout.contains("138") && !garbage.contains("138"));
    }

    #[test]
    fn update_json_retries_on_conflict_and_keeps_without_writing() {
        let kv = MemoryKv::default();
        let (written, wrote) = update_json::<u32, _>(&kv, "n", |current| {
            // Another writer sneaks in on the first attempt.
            if current.is_none() && kv.get("n").unwrap().is_none() {
                kv.set("n", b"5").unwrap();
            }
            Ok(Update::Write(current.copied().unwrap_or(0) + 1))
        })
        .unwrap();
        assert_eq!((written, wrote), (Some(6), true));
        let (kept, wrote) = update_json::<u32, _>(&kv, "n", |_| Ok(Update::Keep)).unwrap();
        assert_eq!((kept, wrote), (Some(6), false));
    }

    #[test]
    fn a_swap_that_wrote_but_answered_a_conflict_counts_as_done() {
        let kv = MemoryKv::default();
        kv.misreport_swaps.set(true);
        let (written, wrote) = update_json::<u32, _>(&kv, "n", |current| {
            Ok(Update::Write(current.map_or(1, |n| n + 1)))
        })
        .unwrap();
        assert_eq!((written, wrote), (Some(1), true));
        let (written, _) = update_json::<u32, _>(&kv, "n", |current| {
            Ok(Update::Write(current.map_or(1, |n| n + 1)))
        })
        .unwrap();
        assert_eq!(
            written,
            Some(2),
            "one increment per update, not one per retry"
        );
        assert_eq!(kv.faults().count(host_drafts::keyvalue::Op::Swap), 2);
    }

    #[test]
    fn unreadable_records_are_store_errors() {
        let kv = MemoryKv::default();
        kv.set("k", b"not json").unwrap();
        assert!(matches!(
            get_json::<u32>(&kv, "k"),
            Err(AuthError::Store(_))
        ));
    }

    #[test]
    fn injected_faults_fail_exactly_one_write() {
        let kv = MemoryKv::default();
        kv.fail_write_at(1);
        kv.set("a", b"1").unwrap();
        assert!(kv.set("b", b"1").is_err());
        kv.set("c", b"1").unwrap();
        assert_eq!(kv.keys(), ["a", "c"]);
    }
}
