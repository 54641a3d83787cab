//! One suite, every backend: the same `wasi:keyvalue@0.2.0-draft2` behaviour, through
//! the host functions a component calls: memory, SQLite (a file), and Redis (a
//! real `redis-server` on a free loopback port; skipped loudly when it is not
//! installed, a failure when `WECOM_AUTH_REQUIRE_REDIS=1`).

use std::collections::BTreeSet;

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::testing::{RedisServer, TempDir};
use super::{Bucket, CasMode, INJECTED_FAULT, KeyValueBackend, KeyValueView, LIST_PAGE, Op};
use wasmtime::component::{Resource, ResourceTable};

use atomics::{Host as _, HostCas as _};
use batch::Host as _;
use store::{Host as _, HostBucket as _};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Sqlite,
    Redis,
}

/// A backend and what must outlive it (its file or its server).
struct Backend {
    kv: KeyValueBackend,
    _dir: Option<TempDir>,
    _server: Option<RedisServer>,
}

/// A fresh, empty backend; `None` when Redis is not installed (skip).
async fn open(kind: Kind, mode: CasMode) -> Option<Backend> {
    Some(match kind {
        Kind::Memory => Backend {
            kv: KeyValueBackend::memory(mode),
            _dir: None,
            _server: None,
        },
        Kind::Sqlite => {
            let dir = TempDir::new("kv").expect("temp dir");
            Backend {
                kv: KeyValueBackend::sqlite(dir.join("kv.db"), mode).expect("sqlite opens"),
                _dir: Some(dir),
                _server: None,
            }
        }
        Kind::Redis => {
            let server = RedisServer::start().expect("redis-server starts")?;
            Backend {
                kv: KeyValueBackend::redis(&server.url(), mode)
                    .await
                    .expect("redis connects"),
                _dir: None,
                _server: Some(server),
            }
        }
    })
}

macro_rules! open_or_skip {
    ($kind:expr, $mode:expr) => {
        match open($kind, $mode).await {
            Some(backend) => backend,
            None => return,
        }
    };
}

/// What one component instance holds: its own resource table.
struct Instance {
    table: ResourceTable,
    kv: KeyValueBackend,
}

impl Instance {
    fn new(kv: &KeyValueBackend) -> Self {
        Instance {
            table: ResourceTable::new(),
            kv: kv.clone(),
        }
    }

    fn view(&mut self) -> KeyValueView<'_> {
        KeyValueView {
            table: &mut self.table,
            store: &self.kv,
        }
    }

    async fn bucket(&mut self) -> Resource<Bucket> {
        self.view()
            .open("default".into())
            .await
            .unwrap()
            .expect("default opens")
    }
}

fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

async fn only_configured_stores_open(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let mut instance = Instance::new(&backend.kv);
    assert!(matches!(
        instance.view().open("other".into()).await.unwrap(),
        Err(store::Error::NoSuchStore)
    ));
    instance.bucket().await;
}

async fn set_get_exists_delete(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let mut instance = Instance::new(&backend.kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    let binary = vec![0, 159, 146, 150, 255, b':', 0];
    view.set(borrow(&bucket), "user:ü/1".into(), binary.clone())
        .await
        .unwrap()
        .unwrap();
    view.set(borrow(&bucket), "empty".into(), Vec::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.get(borrow(&bucket), "user:ü/1".into())
            .await
            .unwrap()
            .unwrap(),
        Some(binary)
    );
    assert_eq!(
        view.get(borrow(&bucket), "empty".into())
            .await
            .unwrap()
            .unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        view.get(borrow(&bucket), "missing".into())
            .await
            .unwrap()
            .unwrap(),
        None
    );
    assert!(
        view.exists(borrow(&bucket), "empty".into())
            .await
            .unwrap()
            .unwrap()
    );
    view.delete(borrow(&bucket), "empty".into())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !view
            .exists(borrow(&bucket), "empty".into())
            .await
            .unwrap()
            .unwrap()
    );
    // Deleting what is not there is no error.
    view.delete(borrow(&bucket), "empty".into())
        .await
        .unwrap()
        .unwrap();
    // The direct API sees the same data.
    assert_eq!(
        backend.kv.keys("default").await.unwrap(),
        ["user:ü/1".to_owned()]
    );
}

async fn list_keys_in_pages(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let total = LIST_PAGE + 5;
    let expected: BTreeSet<String> = (0..total).map(|i| format!("k{i:05}")).collect();
    let mut instance = Instance::new(&backend.kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    let pairs: Vec<(String, Vec<u8>)> = expected.iter().map(|k| (k.clone(), vec![1])).collect();
    for chunk in pairs.chunks(200) {
        view.set_many(borrow(&bucket), chunk.to_vec())
            .await
            .unwrap()
            .unwrap();
    }
    // Another bucket's keys never show up.
    backend.kv.set("other", "k00000x", b"x").await.unwrap();

    let mut seen = BTreeSet::new();
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = view
            .list_keys(borrow(&bucket), cursor)
            .await
            .unwrap()
            .unwrap();
        pages.push(page.keys.len());
        seen.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 1000, "list-keys never ends");
    }
    assert_eq!(seen, expected);
    if kind != Kind::Redis {
        // Ordered backends: full pages, then the rest.
        assert_eq!(pages, [LIST_PAGE, 5]);
    }
}

async fn increment_counts_in_decimal(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let mut instance = Instance::new(&backend.kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    for (delta, expected) in [(5, 5), (-2, 3), (0, 3)] {
        assert_eq!(
            view.increment(borrow(&bucket), "n".into(), delta)
                .await
                .unwrap()
                .unwrap(),
            expected
        );
    }
    assert_eq!(
        view.get(borrow(&bucket), "n".into())
            .await
            .unwrap()
            .unwrap(),
        Some(b"3".to_vec())
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
    view.set(
        borrow(&bucket),
        "max".into(),
        i64::MAX.to_string().into_bytes(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        view.increment(borrow(&bucket), "max".into(), 1)
            .await
            .unwrap()
            .is_err(),
        "overflow is an error"
    );
}

async fn batch_reads_writes_and_deletes(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let mut instance = Instance::new(&backend.kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    view.set_many(
        borrow(&bucket),
        vec![("a".into(), vec![1]), ("b".into(), vec![2])],
    )
    .await
    .unwrap()
    .unwrap();
    let got = view
        .get_many(borrow(&bucket), vec!["a".into(), "z".into(), "b".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        [
            ("a".to_owned(), Some(vec![1])),
            ("z".to_owned(), None),
            ("b".to_owned(), Some(vec![2]))
        ]
    );
    view.delete_many(borrow(&bucket), vec!["a".into(), "b".into(), "z".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(backend.kv.get("default", "b").await.unwrap(), None);
    // Empty batches are fine.
    view.set_many(borrow(&bucket), Vec::new())
        .await
        .unwrap()
        .unwrap();
    view.delete_many(borrow(&bucket), Vec::new())
        .await
        .unwrap()
        .unwrap();
    assert!(
        view.get_many(borrow(&bucket), Vec::new())
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

/// Two instances take a CAS on one key, then both swap. Returns who won and
/// what the key holds; the loser's fresh CAS must see the winner's value, and
/// a retry with it must win.
async fn race(kind: Kind, mode: CasMode, existing: Option<&[u8]>) -> Option<(bool, bool, Vec<u8>)> {
    let backend = open(kind, mode).await?;
    if let Some(value) = existing {
        backend.kv.set("default", "user", value).await.unwrap();
    }
    let mut first = Instance::new(&backend.kv);
    let mut second = Instance::new(&backend.kv);
    let b1 = first.bucket().await;
    let b2 = second.bucket().await;
    let cas1 = first
        .view()
        .new(borrow(&b1), "user".into())
        .await
        .unwrap()
        .unwrap();
    let cas2 = second
        .view()
        .new(borrow(&b2), "user".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second
            .view()
            .current(borrow(&cas2))
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        existing
    );
    let first_won = first
        .view()
        .swap(cas1, b"first".to_vec())
        .await
        .unwrap()
        .is_ok();
    let second_won = match second.view().swap(cas2, b"second".to_vec()).await.unwrap() {
        Ok(()) => true,
        Err(atomics::CasError::CasFailed(fresh)) => {
            let latest = second
                .view()
                .current(borrow(&fresh))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(latest.as_deref(), Some(&b"first"[..]), "{kind:?} {mode:?}");
            // Retrying with the fresh CAS wins, and is undone to keep the result comparable.
            second
                .view()
                .swap(fresh, b"first".to_vec())
                .await
                .unwrap()
                .expect("a retry with the fresh CAS wins");
            false
        }
        Err(atomics::CasError::StoreError(e)) => panic!("{e:?}"),
    };
    let stored = backend.kv.get("default", "user").await.unwrap().unwrap();
    Some((first_won, second_won, stored))
}

async fn cas_on_an_existing_key_lets_exactly_one_writer_win(kind: Kind) {
    for mode in [CasMode::Strict, CasMode::UpsertWhenAbsent] {
        let Some(outcome) = race(kind, mode, Some(b"old")).await else {
            return;
        };
        assert_eq!(outcome, (true, false, b"first".to_vec()), "{mode:?}");
    }
}

async fn cas_on_an_absent_key_is_strict_or_an_upsert(kind: Kind) {
    let Some(strict) = race(kind, CasMode::Strict, None).await else {
        return;
    };
    assert_eq!(strict, (true, false, b"first".to_vec()));
    // As Spin's SQLite store: both "create if absent" swaps succeed; the last write stays.
    let upsert = race(kind, CasMode::UpsertWhenAbsent, None).await.unwrap();
    assert_eq!(upsert, (true, true, b"second".to_vec()));
}

async fn a_delete_between_cas_and_swap_is_a_conflict(kind: Kind) {
    for mode in [CasMode::Strict, CasMode::UpsertWhenAbsent] {
        let backend = open_or_skip!(kind, mode);
        backend.kv.set("default", "k", b"v").await.unwrap();
        let mut instance = Instance::new(&backend.kv);
        let bucket = instance.bucket().await;
        let mut view = instance.view();
        let cas = view
            .new(borrow(&bucket), "k".into())
            .await
            .unwrap()
            .unwrap();
        view.delete(borrow(&bucket), "k".into())
            .await
            .unwrap()
            .unwrap();
        match view.swap(cas, b"w".to_vec()).await.unwrap() {
            Err(atomics::CasError::CasFailed(fresh)) => {
                assert_eq!(view.current(fresh).await.unwrap().unwrap(), None);
            }
            other => panic!("{kind:?} {mode:?}: {:?}", other.is_ok()),
        }
        assert_eq!(backend.kv.get("default", "k").await.unwrap(), None);
    }
}

const TASKS: usize = 50;
const ROUNDS: usize = 20;

/// 50 instances × 20 increments by a CAS loop (read, +1, swap, retry on
/// conflict with the fresh CAS): not one update is lost.
async fn concurrent_cas_increments_lose_no_update(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let (total, conflicts) = cas_increments(std::slice::from_ref(&backend.kv)).await;
    assert_eq!(
        total,
        (TASKS * ROUNDS).to_string(),
        "{kind:?} ({conflicts} conflicts retried)"
    );
    assert!(conflicts > 0, "{kind:?}: the writers never raced");
}

/// Runs the CAS-increment tasks, spread over `stores` (all views of one
/// store); returns the final counter and the conflicts retried.
async fn cas_increments(stores: &[KeyValueBackend]) -> (String, usize) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let kv = stores[task % stores.len()].clone();
            tokio::spawn(async move {
                let mut instance = Instance::new(&kv);
                let bucket = instance.bucket().await;
                let mut view = instance.view();
                let mut conflicts = 0usize;
                for _ in 0..ROUNDS {
                    let mut cas = view
                        .new(borrow(&bucket), "counter".into())
                        .await
                        .unwrap()
                        .unwrap();
                    loop {
                        // Let the other instances run between read and swap.
                        tokio::task::yield_now().await;
                        let current = view.current(borrow(&cas)).await.unwrap().unwrap();
                        let n: u64 = current
                            .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
                            .unwrap_or(0);
                        match view
                            .swap(cas, (n + 1).to_string().into_bytes())
                            .await
                            .unwrap()
                        {
                            Ok(()) => break,
                            Err(atomics::CasError::CasFailed(fresh)) => {
                                conflicts += 1;
                                cas = fresh;
                            }
                            Err(atomics::CasError::StoreError(e)) => panic!("{e:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let total = stores[0].get("default", "counter").await.unwrap().unwrap();
    (String::from_utf8(total).unwrap(), conflicts)
}

/// The same with `increment`, which must be atomic by itself.
async fn concurrent_increments_lose_no_update(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let kv = backend.kv.clone();
            tokio::spawn(async move {
                let mut instance = Instance::new(&kv);
                let bucket = instance.bucket().await;
                for _ in 0..ROUNDS {
                    instance
                        .view()
                        .increment(borrow(&bucket), "hits".into(), 1)
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        backend.kv.get("default", "hits").await.unwrap(),
        Some((TASKS * ROUNDS).to_string().into_bytes())
    );
}

/// The k-th write fails with "injected fault" and writes nothing; a retry
/// succeeds; counters see every call.
async fn injected_faults_fail_one_write_then_retry_cleanly(kind: Kind) {
    let backend = open_or_skip!(kind, CasMode::Strict);
    let faults = backend.kv.faults();
    let mut instance = Instance::new(&backend.kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    faults.fail_nth_write(2);
    view.set(borrow(&bucket), "a".into(), vec![1])
        .await
        .unwrap()
        .unwrap();
    let cas = view
        .new(borrow(&bucket), "a".into())
        .await
        .unwrap()
        .unwrap();
    match view.swap(cas, vec![2]).await.unwrap() {
        Err(atomics::CasError::StoreError(store::Error::Other(message))) => {
            assert_eq!(message, INJECTED_FAULT)
        }
        other => panic!("expected the injected fault, got ok={:?}", other.is_ok()),
    }
    assert_eq!(backend.kv.get("default", "a").await.unwrap(), Some(vec![1]));
    // The retry, with a new CAS, goes through.
    let cas = view
        .new(borrow(&bucket), "a".into())
        .await
        .unwrap()
        .unwrap();
    view.swap(cas, vec![2]).await.unwrap().unwrap();
    assert_eq!(backend.kv.get("default", "a").await.unwrap(), Some(vec![2]));

    // A lost reply: applied, yet reported as failed.
    faults.fail_next_write_after_applying();
    assert!(
        view.set(borrow(&bucket), "b".into(), vec![3])
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(backend.kv.get("default", "b").await.unwrap(), Some(vec![3]));

    // Reads can fail too.
    faults.fail_op(Op::Get, 1);
    assert!(
        view.get(borrow(&bucket), "a".into())
            .await
            .unwrap()
            .is_err()
    );
    assert!(view.get(borrow(&bucket), "a".into()).await.unwrap().is_ok());

    faults.fail_writes_after(0);
    assert!(
        view.delete(borrow(&bucket), "a".into())
            .await
            .unwrap()
            .is_err()
    );
    assert!(
        view.increment(borrow(&bucket), "n".into(), 1)
            .await
            .unwrap()
            .is_err()
    );
    faults.clear();
    view.delete(borrow(&bucket), "a".into())
        .await
        .unwrap()
        .unwrap();

    // set, swap ×2, set, delete ×2, increment; cas.new ×2, get ×2.
    assert_eq!((faults.writes(), faults.reads()), (7, 4));
    assert_eq!(faults.count(Op::Swap), 2);
    assert_eq!(faults.injected(), 5);
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Kind::Memory).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Kind::Sqlite).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Kind::Redis).await
                }
            )*
        }
    };
}

every_backend!(
    only_configured_stores_open,
    set_get_exists_delete,
    list_keys_in_pages,
    increment_counts_in_decimal,
    batch_reads_writes_and_deletes,
    cas_on_an_existing_key_lets_exactly_one_writer_win,
    cas_on_an_absent_key_is_strict_or_an_upsert,
    a_delete_between_cas_and_swap_is_a_conflict,
    concurrent_cas_increments_lose_no_update,
    concurrent_increments_lose_no_update,
    injected_faults_fail_one_write_then_retry_cleanly,
);

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = TempDir::new("kv-reopen").unwrap();
    let path = dir.join("nested/dir/kv.db");
    {
        let kv = KeyValueBackend::sqlite(&path, CasMode::Strict).unwrap();
        let mut instance = Instance::new(&kv);
        let bucket = instance.bucket().await;
        let mut view = instance.view();
        view.set(borrow(&bucket), "user".into(), b"alice".to_vec())
            .await
            .unwrap()
            .unwrap();
        view.increment(borrow(&bucket), "n".into(), 41)
            .await
            .unwrap()
            .unwrap();
    }
    let kv = KeyValueBackend::sqlite(&path, CasMode::Strict).unwrap();
    let mut instance = Instance::new(&kv);
    let bucket = instance.bucket().await;
    let mut view = instance.view();
    assert_eq!(
        view.get(borrow(&bucket), "user".into())
            .await
            .unwrap()
            .unwrap(),
        Some(b"alice".to_vec())
    );
    assert_eq!(
        view.increment(borrow(&bucket), "n".into(), 1)
            .await
            .unwrap()
            .unwrap(),
        42
    );
}

/// Two connections to one file (as two gateway processes would have): CAS
/// stays atomic through SQLite's own locking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cas_is_atomic_across_connections_to_one_file() {
    let dir = TempDir::new("kv-shared").unwrap();
    let path = dir.join("kv.db");
    let one = KeyValueBackend::sqlite(&path, CasMode::Strict).unwrap();
    let two = KeyValueBackend::sqlite(&path, CasMode::Strict).unwrap();
    let (total, conflicts) = cas_increments(&[one, two]).await;
    assert_eq!(total, (TASKS * ROUNDS).to_string(), "{conflicts} conflicts");
}

#[tokio::test]
async fn sqlite_uses_spins_table() {
    let dir = TempDir::new("kv-schema").unwrap();
    let path = dir.join("kv.db");
    let kv = KeyValueBackend::sqlite(&path, CasMode::Strict).unwrap();
    kv.set("default", "k", b"v").await.unwrap();
    drop(kv);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (store, key, value): (String, String, Vec<u8>) = conn
        .query_row("SELECT store, key, value FROM spin_key_value", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (store.as_str(), key.as_str(), &value[..]),
        ("default", "k", &b"v"[..])
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn redis_keys_are_namespaced_by_store() {
    let Some(server) = RedisServer::start().unwrap() else {
        return;
    };
    let kv = KeyValueBackend::redis(&server.url(), CasMode::Strict)
        .await
        .unwrap();
    kv.set("default", "user:1", b"v").await.unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Option<Vec<u8>> = ::redis::cmd("GET")
        .arg("default:user:1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(raw, Some(b"v".to_vec()));
}
