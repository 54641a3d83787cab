//! What WASI gives every call besides its arguments: the wall clock and
//! randomness.

use super::bindings::wasi;
use crate::core::state::RANDOM_BYTES;

pub fn now_seconds() -> u64 {
    wasi::clocks::wall_clock::now().seconds
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
