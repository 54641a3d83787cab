//! wecom-auth: "Log in with WeCom" (企业微信) as a WebAssembly component.
//!
//! - [`core`]: the pure login logic (settings, browser detection, state, URLs,
//!   return paths), plain Rust, unit-tested natively.
//! - [`http`]: the HTTP front (login page, `/login`, `/callback`, `/verify`,
//!   admin API) as a pure function of a request and its environment, on the
//!   same core; configured by `wasi:config` variables.
//! - `guest`: the WASI glue, the guest side of the WIT: exports
//!   `wecom:auth/login` and `wasi:http/incoming-handler`, implements the
//!   core's ports over `wasi:keyvalue` and `wasi:http/outgoing-handler`, and
//!   takes configuration, time and randomness from WASI. Built for `wasm32`
//!   only: natively the crate is the core and the HTTP front (export names
//!   like `wecom:auth/login@0.1.0#...` are not valid native symbols).
//! - `example` (feature `example`, and in the crate's own tests): the sample
//!   authenticator of the docs, the demo and the tests, with its made-up
//!   secrets; never part of the shipped component.

pub mod core;
#[cfg(any(test, feature = "example"))]
pub mod example;
#[cfg(target_arch = "wasm32")]
mod guest;
pub mod http;
