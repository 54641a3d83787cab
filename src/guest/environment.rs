//! What WASI gives every call besides its arguments: the clocks and
//! randomness.

use super::bindings::wasi;
use crate::core::state::RANDOM_BYTES;

pub fn now_seconds() -> u64 {
    wasi::clocks::wall_clock::now().seconds
}

/// A stopwatch started now: milliseconds elapsed on `wasi:clocks/monotonic-clock`.
pub fn stopwatch() -> impl Fn() -> u64 {
    let started = wasi::clocks::monotonic_clock::now();
    move || wasi::clocks::monotonic_clock::now().saturating_sub(started) / 1_000_000
}

pub fn random_bytes() -> [u8; RANDOM_BYTES] {
    random_array()
}

/// `N` bytes from `wasi:random`. WASI promises exactly the length asked for;
/// a host that breaks that promise must not get predictable ids: trap instead.
pub fn random_array<const N: usize>() -> [u8; N] {
    wasi::random::random::get_random_bytes(N as u64)
        .try_into()
        .expect("wasi:random/get-random-bytes returned a different length than asked for")
}
