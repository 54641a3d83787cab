//! Loads the built component as a gateway would: one `Engine`, one
//! `InstancePre` linked once, and a fresh `Store` (and instance) per call, as
//! Spin does per request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{WecomAuth, WecomAuthPre, login};
use crate::config::{self, ConfigView};
use crate::keyvalue::{self, KeyValueBackend, KeyValueView, MemoryStore};
use crate::outgoing::{OutgoingLog, RecordingHooks, Routes};

/// Per-instance memory cap: the component needs about 1 MiB.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// Bytes of each pooled memory and table reset in place rather than released.
const KEEP_RESIDENT: usize = 1 << 20;
/// Pooling allocator slots: concurrent component instances one engine can hold.
/// Each needs a few core instances, tables and memories (Rust std's WASI adapter).
const POOL_SLOTS: u32 = 1000;
const CORE_PER_COMPONENT: u32 = 4;

/// Everything one call's `Store` holds.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: RecordingHooks,
    keyvalue: KeyValueBackend,
    config: Arc<BTreeMap<String, String>>,
    limits: StoreLimits,
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
            hooks: &mut self.hooks,
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
        values: &state.config,
    }
}

/// The wall clock instances see: the system clock plus an adjustable skew, so
/// tests can let a login state expire without waiting.
#[derive(Debug, Clone, Default)]
pub struct SkewedClock(Arc<AtomicI64>);

impl SkewedClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

impl HostWallClock for SkewedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let real = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let skew = self.0.load(Ordering::SeqCst);
        if skew >= 0 {
            real + Duration::from_secs(skew as u64)
        } else {
            real.saturating_sub(Duration::from_secs(skew.unsigned_abs()))
        }
    }
}

/// How to build the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Pre-reserve instance slots (what a busy gateway does); on-demand otherwise.
    pub pooling: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { pooling: true }
    }
}

pub fn engine(options: EngineOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    if options.pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * CORE_PER_COMPONENT)
            .total_memories(POOL_SLOTS * CORE_PER_COMPONENT)
            .total_tables(POOL_SLOTS * CORE_PER_COMPONENT)
            .total_stacks(POOL_SLOTS)
            .max_memory_size(MEMORY_LIMIT)
            // Reset only the pages a call dirtied, with memset, and keep them
            // mapped: no madvise and no page faults on the next use of a slot.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}

/// The component, loaded and linked once.
pub struct ComponentHost {
    pre: WecomAuthPre<HostState>,
    /// The key-value store every instance shares (in memory, strict CAS, unless
    /// built with [`ComponentHost::from_component_with`]).
    pub keyvalue: KeyValueBackend,
    /// What instances read through `wasi:config/store`.
    pub config: Arc<BTreeMap<String, String>>,
    /// Every outgoing request of every instance.
    pub outgoing: OutgoingLog,
    /// Where outgoing requests are forwarded.
    pub routes: Routes,
    pub clock: SkewedClock,
}

impl ComponentHost {
    /// Compiles and links the component at `path` (e.g. [`crate::COMPONENT_PATH`]).
    pub fn load(engine: &Engine, path: impl AsRef<Path>) -> wasmtime::Result<Self> {
        let path = path.as_ref();
        let component = Component::from_file(engine, path)
            .with_context(|| format!("loading the component {}", path.display()))?;
        Self::from_component(engine, &component)
    }

    /// Links `component` over an in-memory key-value store with strict CAS.
    pub fn from_component(engine: &Engine, component: &Component) -> wasmtime::Result<Self> {
        Self::from_component_with(engine, component, KeyValueBackend::default())
    }

    /// Links `component` over the given key-value store (memory, SQLite, Redis).
    pub fn from_component_with(
        engine: &Engine,
        component: &Component,
        keyvalue: KeyValueBackend,
    ) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        keyvalue::add_to_linker(&mut linker, keyvalue_view)?;
        config::add_to_linker(&mut linker, config_view)?;
        let pre = WecomAuthPre::new(linker.instantiate_pre(component)?)?;
        Ok(ComponentHost {
            pre,
            keyvalue,
            config: Arc::default(),
            outgoing: OutgoingLog::default(),
            routes: Routes::default(),
            clock: SkewedClock::default(),
        })
    }

    /// The in-memory store, when the host runs on one (the default): tests
    /// seed and read it directly, e.g. `host.memory().unwrap().get("default", key)`.
    pub fn memory(&self) -> Option<&Arc<MemoryStore>> {
        self.keyvalue.as_memory()
    }

    /// A fresh store for one call.
    pub fn new_store(&self) -> Store<HostState> {
        let wasi = WasiCtx::builder().wall_clock(self.clock.clone()).build();
        let state = HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: RecordingHooks {
                log: self.outgoing.clone(),
                routes: self.routes.clone(),
            },
            keyvalue: self.keyvalue.clone(),
            config: self.config.clone(),
            limits: StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        store
    }

    /// A fresh instance in a fresh store.
    pub async fn instantiate(&self) -> wasmtime::Result<(WecomAuth, Store<HostState>)> {
        let mut store = self.new_store();
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok((instance, store))
    }

    pub async fn detect_wecom_browser(
        &self,
        user_agent: &str,
    ) -> wasmtime::Result<login::BrowserInfo> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_detect_wecom_browser(&mut store, user_agent)
            .await
    }

    pub async fn authorize_url(
        &self,
        settings: &login::Settings,
        request: &login::AuthorizeRequest,
    ) -> wasmtime::Result<Result<login::Authorization, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_authorize_url(&mut store, settings, request)
            .await
    }

    pub async fn handle_callback(
        &self,
        settings: &login::Settings,
        request: &login::CallbackRequest,
    ) -> wasmtime::Result<Result<login::LoginSuccess, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_handle_callback(&mut store, settings, request)
            .await
    }

    pub async fn verify_session(
        &self,
        settings: &login::Settings,
        token: &str,
    ) -> wasmtime::Result<Result<login::Session, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_verify_session(&mut store, settings, token)
            .await
    }

    pub async fn homepage_links(
        &self,
        settings: &login::Settings,
    ) -> wasmtime::Result<Result<login::ConsoleLinks, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_homepage_links(&mut store, settings)
            .await
    }

    pub async fn validate_settings(
        &self,
        authenticators: &[login::Settings],
    ) -> wasmtime::Result<Result<(), Vec<login::SettingsError>>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_validate_settings(&mut store, authenticators)
            .await
    }
}
