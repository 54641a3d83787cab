//! The SQLite backend: one file, durable across restarts, the engine of Spin's
//! default key-value store. The table is Spin's own,
//! `spin_key_value(store, key, value, PRIMARY KEY (store, key))`.
//!
//! Compare-and-swap compares the *value* a CAS saw with what the row holds now,
//! inside an `IMMEDIATE` transaction (atomic even when several processes share
//! the file), so no version column is needed: a swap wins exactly when the key
//! still holds what the caller read, which is what a read-modify-write needs.
//! In [`CasMode::Strict`] a CAS taken on an absent key wins only while the key is
//! still absent; Spin's own SQLite store instead upserts unconditionally there,
//! which [`CasMode::UpsertWhenAbsent`] reproduces.
//!
//! One connection behind a mutex, in WAL mode with `synchronous=NORMAL`
//! (committed writes survive a crash of the process), run on tokio's blocking
//! pool so the executor never waits on the disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::bindings::wasi::keyvalue::store;
use super::faults::Faults;
use super::handles::Seen;
use super::shared::{CasMode, Common, KeyPage, LIST_PAGE, Outcome, Swap, parse_counter};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
    ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";
const DELETE: &str = "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2";

/// A key-value store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    common: Common,
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

type Sql<T> = rusqlite::Result<T>;

impl SqliteStore {
    /// Opens (creating if needed, with its parent directories) the database at
    /// `path`, serving the named buckets (Spin's `key_value_stores`), e.g. `["default"]`.
    pub fn open(path: impl AsRef<Path>, mode: CasMode, known: &[&str]) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the SQLite store {}", path.display()))?;
        Self::prepare(&conn).with_context(|| format!("preparing {}", path.display()))?;
        Ok(SqliteStore {
            common: Common::new(mode, known),
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A private in-memory database (for tests): same SQL, nothing on disk.
    pub fn open_in_memory(mode: CasMode, known: &[&str]) -> anyhow::Result<Self> {
        let conn = Connection::open_in_memory()?;
        Self::prepare(&conn)?;
        Ok(SqliteStore {
            common: Common::new(mode, known),
            path: PathBuf::from(":memory:"),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn prepare(conn: &Connection) -> Sql<()> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // `journal_mode` answers with the mode; an in-memory database stays "memory".
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn common(&self) -> &Common {
        &self.common
    }

    /// Fault injection and operation counts of the host functions.
    pub fn faults(&self) -> &Faults {
        &self.common.faults
    }

    /// Runs `job` with the connection on the blocking pool (inline outside a runtime).
    async fn run<T, F>(&self, job: F) -> Outcome<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Outcome<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let job = move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            job(&mut conn)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(job)
                .await
                .map_err(|e| store::Error::Other(format!("sqlite worker failed: {e}")))?,
            Err(_) => job(),
        }
    }

    pub(crate) async fn op_get(&self, bucket: &str, key: &str) -> Outcome<Option<Vec<u8>>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |conn| read(conn, &bucket, &key).map_err(sql_error))
            .await
    }

    pub(crate) async fn op_set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Outcome<()> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |conn| write(conn, &bucket, &key, &value).map_err(sql_error))
            .await
    }

    pub(crate) async fn op_delete(&self, bucket: &str, key: &str) -> Outcome<()> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |conn| {
            conn.prepare_cached(DELETE)
                .and_then(|mut stmt| stmt.execute(params![bucket, key]))
                .map(drop)
                .map_err(sql_error)
        })
        .await
    }

    pub(crate) async fn op_exists(&self, bucket: &str, key: &str) -> Outcome<bool> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |conn| {
            conn.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")
                .and_then(|mut stmt| stmt.exists(params![bucket, key]))
                .map_err(sql_error)
        })
        .await
    }

    pub(crate) async fn op_list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Outcome<KeyPage> {
        let bucket = bucket.to_owned();
        let after = cursor.unwrap_or_default();
        let keys = self
            .run(move |conn| {
                let page = (|| {
                    let mut stmt = conn.prepare_cached(
                        "SELECT key FROM spin_key_value WHERE store = ?1 AND key > ?2
                         ORDER BY key LIMIT ?3",
                    )?;
                    let rows = stmt
                        .query_map(params![bucket, after, (LIST_PAGE + 1) as i64], |row| {
                            row.get::<_, String>(0)
                        })?;
                    rows.collect::<Sql<Vec<String>>>()
                })();
                page.map_err(sql_error)
            })
            .await?;
        Ok(KeyPage::from_sorted(keys))
    }

    pub(crate) async fn op_increment(&self, bucket: &str, key: &str, delta: i64) -> Outcome<i64> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let current = read(&tx, &bucket, &key).map_err(sql_error)?;
            let next = super::shared::add(&key, parse_counter(&key, current.as_deref())?, delta)?;
            write(&tx, &bucket, &key, next.to_string().as_bytes()).map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(next)
        })
        .await
    }

    pub(crate) async fn op_observe(&self, bucket: &str, key: &str) -> Outcome<Option<Seen>> {
        Ok(self.op_get(bucket, key).await?.map(Seen::value))
    }

    /// Swaps when the row still holds the value `seen` holds (or is still
    /// absent), in one `IMMEDIATE` transaction.
    pub(crate) async fn op_swap(
        &self,
        bucket: &str,
        key: &str,
        seen: Option<&Seen>,
        value: Vec<u8>,
    ) -> Outcome<Swap> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let expected = seen.map(|seen| seen.value.clone());
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let now = read(&tx, &bucket, &key).map_err(sql_error)?;
            if now != expected {
                return Ok(Swap::Conflict(now.map(Seen::value)));
            }
            write(&tx, &bucket, &key, &value).map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(Swap::Done)
        })
        .await
    }

    pub(crate) async fn op_get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Outcome<Vec<(String, Option<Vec<u8>>)>> {
        let bucket = bucket.to_owned();
        self.run(move |conn| {
            keys.into_iter()
                .map(|key| {
                    let value = read(conn, &bucket, &key)?;
                    Ok((key, value))
                })
                .collect::<Sql<Vec<_>>>()
                .map_err(sql_error)
        })
        .await
    }

    pub(crate) async fn op_set_many(
        &self,
        bucket: &str,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Outcome<()> {
        let bucket = bucket.to_owned();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            for (key, value) in &key_values {
                write(&tx, &bucket, key, value).map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)
        })
        .await
    }

    pub(crate) async fn op_delete_many(&self, bucket: &str, keys: Vec<String>) -> Outcome<()> {
        let bucket = bucket.to_owned();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            {
                let mut stmt = tx.prepare_cached(DELETE).map_err(sql_error)?;
                for key in &keys {
                    stmt.execute(params![bucket, key]).map_err(sql_error)?;
                }
            }
            tx.commit().map_err(sql_error)
        })
        .await
    }
}

fn read(conn: &Connection, bucket: &str, key: &str) -> Sql<Option<Vec<u8>>> {
    conn.prepare_cached(SELECT)?
        .query_row(params![bucket, key], |row| {
            // Spin writes BLOBs; accept TEXT too for files written by other tools.
            Ok(match row.get_ref(0)? {
                ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
                ValueRef::Integer(n) => n.to_string().into_bytes(),
                ValueRef::Real(x) => x.to_string().into_bytes(),
                ValueRef::Null => Vec::new(),
            })
        })
        .optional()
}

fn write(conn: &Connection, bucket: &str, key: &str, value: &[u8]) -> Sql<()> {
    conn.prepare_cached(UPSERT)?
        .execute(params![bucket, key, value])
        .map(drop)
}

fn sql_error(error: rusqlite::Error) -> store::Error {
    store::Error::Other(format!("sqlite: {error}"))
}
