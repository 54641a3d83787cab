//! wecom-auth: "Log in with WeCom" (企业微信) as a WebAssembly component.
//!
//! - [`core`]: the pure login logic (settings, browser detection, state, URLs,
//!   return paths), plain Rust, unit-tested natively.
//! - [`front`]: the HTTP front (login page, `/login`, `/callback`, `/verify`,
//!   admin API) as a pure function of a request and its environment, on the
//!   same core; configured by `wasi:config` variables.
//! - `edge`: the thin edge that exports the WIT interface `wecom:auth/login`
//!   and `wasi:http/incoming-handler`, and takes configuration, time and
//!   randomness from WASI. Built for `wasm32` only: natively the crate is the
//!   core and the front (export names like `wecom:auth/login@0.1.0#...` are
//!   not valid native symbols).

pub mod core;
#[cfg(target_arch = "wasm32")]
mod edge;
pub mod front;
