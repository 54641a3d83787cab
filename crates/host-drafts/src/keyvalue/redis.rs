//! The Redis backend (what Spin's runtime config offers for several instances):
//! a key `k` of bucket `s` is the Redis string `s:k`. One `ConnectionManager`
//! (multiplexed, reconnects by itself) serves every instance.
//!
//! Compare-and-swap is one Lua script: it compares what the key holds with the
//! value the CAS saw (or its absence) and sets the new value only when they are
//! equal, atomically on the server; on a conflict it returns the current value,
//! which the fresh CAS handle carries.
//!
//! `list-keys` pages with `SCAN` (its cursor is the page cursor): order is
//! unspecified and a key may be listed twice while Redis rehashes.

use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Client, RedisError, Value, cmd};

use super::bindings::wasi::keyvalue::store;
use super::faults::Faults;
use super::handles::Seen;
use super::shared::{CasMode, Common, KeyPage, LIST_PAGE, Outcome, Swap};

/// KEYS[1]: the key; ARGV[1]: "1" if the CAS saw a value, else "0";
/// ARGV[2]: the value seen; ARGV[3]: the new value.
/// Returns {1} when swapped, {0} or {0, current} on a conflict.
const SWAP_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
local unchanged
if ARGV[1] == '1' then
  unchanged = (current == ARGV[2])
else
  unchanged = (current == false)
end
if unchanged then
  redis.call('SET', KEYS[1], ARGV[3])
  return {1}
end
if current == false then
  return {0}
end
return {0, current}
";

/// A key-value store in a Redis server.
pub struct RedisStore {
    common: Common,
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never shown.
        f.debug_struct("RedisStore")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`), serving the
    /// named buckets, e.g. `["default"]`. Bucket names may not contain `:`.
    pub async fn connect(url: &str, mode: CasMode, known: &[&str]) -> anyhow::Result<Self> {
        if let Some(bad) = known.iter().find(|name| name.contains(':')) {
            anyhow::bail!("a Redis-backed store name may not contain ':' ({bad:?})");
        }
        // Errors of `Client::open` quote the URL, password included: keep them out.
        let client = Client::open(url)
            .map_err(|_| anyhow::anyhow!("invalid Redis URL (expected redis://host:port)"))?;
        // A lost connection is reconnected with one attempt, no backoff:
        // every command issued meanwhile waits for that attempt, so retries
        // held each request for the whole schedule (16 s per login with
        // Redis down, `host-test/tests/outages.rs`). Failing fast answers
        // 503 with Retry-After; the next command tries again.
        let config = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(0);
        // The first connection may wait for a Redis starting beside the
        // gateway: tried again for up to 15 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let conn = loop {
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(conn) => break conn,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    anyhow::bail!("connecting to Redis: no connection within 15 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        Ok(RedisStore {
            common: Common::new(mode, known),
            conn,
        })
    }

    pub(crate) fn common(&self) -> &Common {
        &self.common
    }

    /// Fault injection and operation counts of the host functions.
    pub fn faults(&self) -> &Faults {
        &self.common.faults
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) async fn op_get(&self, bucket: &str, key: &str) -> Outcome<Option<Vec<u8>>> {
        self.conn()
            .get(name(bucket, key))
            .await
            .map_err(redis_error)
    }

    pub(crate) async fn op_set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Outcome<()> {
        self.conn()
            .set(name(bucket, key), value)
            .await
            .map_err(redis_error)
    }

    pub(crate) async fn op_delete(&self, bucket: &str, key: &str) -> Outcome<()> {
        self.conn()
            .del(name(bucket, key))
            .await
            .map_err(redis_error)
    }

    pub(crate) async fn op_exists(&self, bucket: &str, key: &str) -> Outcome<bool> {
        self.conn()
            .exists(name(bucket, key))
            .await
            .map_err(redis_error)
    }

    pub(crate) async fn op_list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Outcome<KeyPage> {
        let position: u64 = match cursor.as_deref() {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| store::Error::Other("invalid list-keys cursor".into()))?,
        };
        let prefix = format!("{bucket}:");
        let (next, names): (u64, Vec<Vec<u8>>) = cmd("SCAN")
            .arg(position)
            .arg("MATCH")
            .arg(format!("{}*", glob_escape(&prefix)))
            .arg("COUNT")
            .arg(LIST_PAGE)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        let keys = names
            .into_iter()
            .filter_map(|name| String::from_utf8(name).ok())
            .filter_map(|name| name.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then(|| next.to_string()),
        })
    }

    pub(crate) async fn op_increment(&self, bucket: &str, key: &str, delta: i64) -> Outcome<i64> {
        self.conn()
            .incr(name(bucket, key), delta)
            .await
            .map_err(|e| store::Error::Other(format!("incrementing {key:?}: {e}")))
    }

    pub(crate) async fn op_observe(&self, bucket: &str, key: &str) -> Outcome<Option<Seen>> {
        Ok(self.op_get(bucket, key).await?.map(Seen::value))
    }

    pub(crate) async fn op_swap(
        &self,
        bucket: &str,
        key: &str,
        seen: Option<&Seen>,
        value: Vec<u8>,
    ) -> Outcome<Swap> {
        let (present, expected): (&str, &[u8]) = match seen {
            Some(seen) => ("1", &seen.value),
            None => ("0", b""),
        };
        let reply: Vec<Value> = cmd("EVAL")
            .arg(SWAP_SCRIPT)
            .arg(1)
            .arg(name(bucket, key))
            .arg(present)
            .arg(expected)
            .arg(value)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Swap::Done),
            [Value::Int(0)] => Ok(Swap::Conflict(None)),
            [Value::Int(0), Value::BulkString(current)] => {
                Ok(Swap::Conflict(Some(Seen::value(current.clone()))))
            }
            _ => Err(store::Error::Other(
                "unexpected reply of the Redis swap script".into(),
            )),
        }
    }

    pub(crate) async fn op_get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Outcome<Vec<(String, Option<Vec<u8>>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|key| name(bucket, key)).collect();
        let values: Vec<Option<Vec<u8>>> = cmd("MGET")
            .arg(&names)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        if values.len() != keys.len() {
            return Err(store::Error::Other("MGET answered the wrong count".into()));
        }
        Ok(keys.into_iter().zip(values).collect())
    }

    pub(crate) async fn op_set_many(
        &self,
        bucket: &str,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Outcome<()> {
        if key_values.is_empty() {
            return Ok(());
        }
        let mut mset = cmd("MSET");
        for (key, value) in key_values {
            mset.arg(name(bucket, &key)).arg(value);
        }
        mset.query_async(&mut self.conn())
            .await
            .map_err(redis_error)
    }

    pub(crate) async fn op_delete_many(&self, bucket: &str, keys: Vec<String>) -> Outcome<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = keys.iter().map(|key| name(bucket, key)).collect();
        self.conn().del(names).await.map_err(redis_error)
    }
}

fn name(bucket: &str, key: &str) -> String {
    format!("{bucket}:{key}")
}

/// Escapes `SCAN MATCH` glob characters.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn redis_error(error: RedisError) -> store::Error {
    store::Error::Other(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_bucket_name_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_echoing_it() {
        let err = RedisStore::connect("nonsense://:hunter2@x", CasMode::Strict, &["default"])
            .await
            .unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }
}
