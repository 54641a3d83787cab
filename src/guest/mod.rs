//! The WASI glue, the guest side of the WIT (wasm32 only): exports
//! `wecom:auth/login` and `wasi:http/incoming-handler`, implements the core's
//! ports over WASI (key-value, outgoing HTTP), and reads the clock and
//! randomness. Nothing here decides anything.

mod bindings;
mod convert;
mod environment;
mod http_client;
mod incoming;
mod keyvalue;
mod login;
mod streams;

use bindings::Component;

bindings::export!(Component with_types_in bindings);
