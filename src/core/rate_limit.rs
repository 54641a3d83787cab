//! Request rates: how many login requests a client address, or an
//! authenticator, made this minute, counted in the key-value store so every
//! instance (Spin's, the gateway's) shares the count.
//!
//! Fixed one-minute windows counted with the store's atomic increment (one
//! store operation per request; no compare-and-swap, no contention). A
//! counter is a short-lived key of the family [`RATE_LIMITS`]
//! ([`super::expiring`]): numbered when its window opens, swept a few
//! minutes after it closes. A fixed window lets a client make up to twice
//! the limit across a window boundary; that is the price of one operation.
//!
//! | key | value |
//! |---|---|
//! | `rate/<scope>/<window>` | requests in minute `window` (Unix s / 60), atomic counter |
//! | `rate-limits/...` | the sweep's bookkeeping; slots hold whole keys |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::expiring::Family;
use super::ports::{KeyValue, StoreError};

/// Length of a counting window, in seconds.
pub const WINDOW_SECONDS: u64 = 60;

/// The counters as short-lived keys: windows of a minute, the first sweep
/// ten minutes back.
pub static RATE_LIMITS: Family = Family {
    name: "rate-limits",
    window_seconds: WINDOW_SECONDS,
    first_sweep_windows_back: 10,
    key_of: |named| named.to_owned(),
};

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A client address ([`client_address`]).
    Client(String),
    /// An authenticator, by name.
    Authenticator(String),
}

impl Scope {
    /// `client` or `authenticator`: the class of limit, for logs and pages.
    pub fn class(&self) -> &'static str {
        match self {
            Scope::Client(_) => "client",
            Scope::Authenticator(_) => "authenticator",
        }
    }

    fn key(&self, window: u64) -> String {
        match self {
            Scope::Client(address) => format!("rate/client/{address}/{window}"),
            Scope::Authenticator(name) => format!("rate/authenticator/{name}/{window}"),
        }
    }
}

/// A request over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    /// Seconds until the window closes: the `Retry-After` to answer (RFC 9110 §10.2.3).
    pub retry_after: u64,
}

/// Counts one request in `scope` at `now` (Unix s) against `per_minute`
/// (0: no limit, nothing counted). `sweep`: also sweep a bounded number of
/// closed windows' counters when this request opens a window (callers pass
/// it for about one request in 16, from its randomness).
///
/// Errors: the store's; callers let the request through (a store that does
/// not answer fails the login anyway, with its own error).
pub fn hit(
    kv: &impl KeyValue,
    scope: &Scope,
    per_minute: u32,
    now: u64,
    sweep: bool,
) -> Result<Option<Limited>, StoreError> {
    if per_minute == 0 {
        return Ok(None);
    }
    let window = now / WINDOW_SECONDS;
    let key = scope.key(window);
    let count = kv.increment(&key, 1)?;
    if count == 1 {
        let closes = (window + 1) * WINDOW_SECONDS;
        RATE_LIMITS.register(kv, closes, &key);
        if sweep {
            let _ = RATE_LIMITS.sweep(kv, now);
        }
    }
    Ok((count > i64::from(per_minute)).then(|| Limited {
        scope: scope.clone(),
        retry_after: (window + 1) * WINDOW_SECONDS - now,
    }))
}

/// The address to count a client by, from the header the host (Spin's
/// `spin-client-addr`, the reference gateway's) or a trusted proxy
/// (`X-Real-IP`, `X-Forwarded-For`) sets. A list counts by its last entry:
/// the one the nearest proxy added. An IPv6 client counts by its /64 (one
/// customer's network, RFC 6177), IPv4-mapped IPv6 as IPv4. None: not an
/// address (a header value never becomes a key unchecked).
pub fn client_address(header: &str) -> Option<String> {
    let last = header.rsplit(',').next()?.trim();
    let ip = last
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| last.parse::<IpAddr>())
        .or_else(|_| {
            last.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::-64", s[0], s[1], s[2], s[3])
            }
        },
    })
}

/// The IPv4 client inside an IPv6 address that carries one: IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::/96`, RFC 6052)
/// and 6to4 (`2002:AABB:CCDD::/48`, RFC 3056). Counting those by /64 would
/// put every NAT64 client in one bucket.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let [a, b] = match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => [hi, lo],
        [0x2002, hi, lo, ..] => [hi, lo],
        _ => return None,
    };
    let [a0, a1] = a.to_be_bytes();
    let [b0, b1] = b.to_be_bytes();
    Some(Ipv4Addr::new(a0, a1, b0, b1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::expiring::CLOCK_MARGIN_SECONDS;
    use crate::core::ports::MemoryKv;

    const NOW: u64 = 1_790_000_040;

    #[test]
    fn the_request_past_the_limit_is_refused_until_the_window_closes() {
        let kv = MemoryKv::default();
        let client = Scope::Client("203.0.113.7".into());
        for _ in 0..3 {
            assert_eq!(hit(&kv, &client, 3, NOW, false).unwrap(), None);
        }
        let limited = hit(&kv, &client, 3, NOW + 5, false).unwrap().unwrap();
        assert_eq!(limited.scope.class(), "client");
        let closes = (NOW / 60 + 1) * 60;
        assert_eq!(limited.retry_after, closes - (NOW + 5));
        // Another client, and the next window, count afresh.
        let other = Scope::Client("203.0.113.8".into());
        assert_eq!(hit(&kv, &other, 3, NOW + 5, false).unwrap(), None);
        assert_eq!(hit(&kv, &client, 3, closes, false).unwrap(), None);
        // 0: no limit, nothing written.
        let before = kv.keys().len();
        let unlimited = Scope::Authenticator("wecom".into());
        assert_eq!(hit(&kv, &unlimited, 0, NOW, true).unwrap(), None);
        assert_eq!(kv.keys().len(), before);
    }

    #[test]
    fn counters_of_closed_windows_are_swept_so_keys_stay_bounded() {
        let kv = MemoryKv::default();
        // A client address each second for an hour, each sweeping when it
        // opens a window (as one request in 16 does, for every address).
        for second in 0..3600u64 {
            let client = Scope::Client(format!("198.51.100.{}", second % 250));
            hit(&kv, &client, 10, NOW + second, second % 16 == 0).unwrap();
        }
        let live_windows = (60 + CLOCK_MARGIN_SECONDS) / 60 + 2;
        let counters = kv.keys().iter().filter(|k| k.starts_with("rate/")).count();
        assert!(
            counters as u64 <= live_windows * 60,
            "{counters} counters after an hour"
        );
        assert!(kv.keys().len() < 1000, "{} keys", kv.keys().len());
    }

    #[test]
    fn client_addresses_are_normalised_or_refused() {
        for (header, expected) in [
            ("203.0.113.7:51234", Some("203.0.113.7")),
            ("203.0.113.7", Some("203.0.113.7")),
            ("10.0.0.1, 198.51.100.2", Some("198.51.100.2")),
            ("[2001:db8:1:2:3:4:5:6]:443", Some("2001:db8:1:2::-64")),
            ("2001:db8:1:2:ffff::1", Some("2001:db8:1:2::-64")),
            ("[2001:db8::1]", Some("2001:db8:0:0::-64")),
            ("::ffff:192.0.2.1", Some("192.0.2.1")),
            ("64:ff9b::c000:201", Some("192.0.2.1")),
            ("[2002:c000:201::1]:80", Some("192.0.2.1")),
            ("unknown", None),
            ("", None),
            ("203.0.113.7/../x", None),
        ] {
            assert_eq!(client_address(header).as_deref(), expected, "{header}");
        }
    }
}
