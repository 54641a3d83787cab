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
//! - [`example`]: the sample authenticator of the docs, the demo and the tests.

// On wasm32 the component is `no_std`: std's runtime (panic printing,
// stdio, environment, the seeded hasher) and the WASI CLI imports it brings
// cost 22 KB of the shipped component and nothing here needs them. The guest
// brings the heap (wasi-libc's malloc, as std uses), the panic handler and
// stderr. Natively the crate links std (tests, the benches' native rows).
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod core;
pub mod example;
#[cfg(target_arch = "wasm32")]
mod guest;
pub mod http;
mod prelude;
