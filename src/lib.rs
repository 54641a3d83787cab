//! wecom-auth: "Log in with WeCom" (企业微信) as a WebAssembly component.
//!
//! - [`core`]: the pure login logic (settings, browser detection, state, URLs,
//!   return paths), plain Rust, unit-tested natively.
//! - `edge`: the thin edge that exports the WIT interface `wecom:auth/login`
//!   and takes time and randomness from WASI. Built for `wasm32` only: natively
//!   the crate is the core alone (export names like `wecom:auth/login@0.1.0#...`
//!   are not valid native symbols).

pub mod core;
#[cfg(target_arch = "wasm32")]
mod edge;
