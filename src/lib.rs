//! wecom-auth: "Log in with WeCom" (企业微信) as a WebAssembly component.
//!
//! - [`core`]: the pure login logic (settings, browser detection, state, URLs,
//!   return paths), plain Rust, unit-tested natively.
//! - `wit_edge`: the thin edge that exports the WIT interface `wecom:auth/login`
//!   and takes time and randomness from WASI.

pub mod core;
mod wit_edge;
