//! What one request's (or one call's) `Store` holds, and the linker that
//! gives a component everything it imports: wasmtime-wasi (p2),
//! wasmtime-wasi-http (outgoing only), and the two Spin drafts from
//! `host-drafts`. The gateway, the test harness and the benches all build
//! their stores here.

use std::collections::BTreeMap;
use std::sync::Arc;

use host_drafts::config::{self, ConfigView};
use host_drafts::keyvalue::{self, KeyValueBackend, KeyValueView};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::engine::MEMORY_LIMIT;

/// The variables a component reads through `wasi:config/store` (Spin variables).
pub type Variables = Arc<BTreeMap<String, String>>;

/// Everything one `Store` holds.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Box<dyn WasiHttpHooks>,
    keyvalue: KeyValueBackend,
    variables: Variables,
    limits: StoreLimits,
}

impl HostState {
    /// A state over the shared store and variables, sending outgoing HTTP
    /// through `hooks`. `wasi` holds what the call sees of the host: the
    /// gateway's gives clocks, randomness and (optionally) stderr, never
    /// stdio in, environment, arguments or files.
    pub fn new(
        wasi: WasiCtx,
        keyvalue: KeyValueBackend,
        variables: Variables,
        hooks: impl WasiHttpHooks + 'static,
    ) -> Self {
        HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Box::new(hooks),
            keyvalue,
            variables,
            limits: StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build(),
        }
    }

    /// A store holding this state, its memory capped at [`MEMORY_LIMIT`].
    pub fn into_store(self, engine: &Engine) -> Store<HostState> {
        let mut store = Store::new(engine, self);
        store.limiter(|state| &mut state.limits);
        store
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: self.hooks.as_mut(),
        }
    }
}

fn keyvalue_view(state: &mut HostState) -> KeyValueView<'_> {
    KeyValueView {
        table: &mut state.table,
        store: &state.keyvalue,
    }
}

fn config_view(state: &mut HostState) -> ConfigView<'_> {
    ConfigView {
        values: &state.variables,
    }
}

/// A linker with every import of the wecom-auth world (and of Spin's
/// `http-trigger` world that it uses): WASI p2, outgoing HTTP, the two drafts.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    keyvalue::add_to_linker(&mut linker, keyvalue_view)?;
    config::add_to_linker(&mut linker, config_view)?;
    Ok(linker)
}
