//! Host implementations of the two WASI drafts Spin implements, for wasmtime
//! embedders (a gateway that loads a component written for Spin):
//!
//! - [`keyvalue`]: `wasi:keyvalue@0.2.0-draft2` (store, atomics with
//!   compare-and-swap, batch) over memory, SQLite (Spin's default engine and
//!   table) or Redis (features `sqlite`, `redis`). wasmtime-wasi-keyvalue
//!   implements `@0.2.0-draft` instead, without compare-and-swap.
//! - [`config`]: `wasi:config/store@0.2.0-draft-2024-09-27`, the interface Spin
//!   serves its variables through (wasmtime-wasi-config implements `@0.2.0-rc.1`).
//!
//! One dependency, two `add_to_linker` calls beside wasmtime-wasi's:
//!
//! ```no_run
//! # fn link<T: Send + 'static>(linker: &mut wasmtime::component::Linker<T>,
//! #     kv: fn(&mut T) -> host_drafts::keyvalue::KeyValueView<'_>,
//! #     config: fn(&mut T) -> host_drafts::config::ConfigView<'_>) -> wasmtime::Result<()> {
//! host_drafts::keyvalue::add_to_linker(linker, kv)?;
//! host_drafts::config::add_to_linker(linker, config)?;
//! # Ok(()) }
//! ```
//!
//! The generated bindings stay private: embedders see the views, the backends
//! and the linker functions only.

pub mod config;
pub mod keyvalue;
