//! Loads the built component as a gateway would: one `Engine`, one
//! `InstancePre` linked once by the gateway's linker, and a fresh `Store`
//! (and instance) per call, as Spin does per request.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use host_drafts::keyvalue::{KeyValueBackend, MemoryStore};
use wasmtime::component::Component;
use wasmtime::error::Context as _;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{HostWallClock, WasiCtx};
use wecom_auth_gateway::Routes;
use wecom_auth_gateway::state::{HostState, Variables, linker};

use crate::bindings::{Harness, HarnessPre, login};
use crate::outgoing::{OutgoingLog, RecordingHooks};

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

/// The component, loaded and linked once.
pub struct ComponentHost {
    pre: HarnessPre<HostState>,
    /// The key-value store every instance shares (in memory, strict CAS, unless
    /// built with [`ComponentHost::from_component_with`]).
    pub keyvalue: KeyValueBackend,
    /// What instances read through `wasi:config/store`.
    pub config: Variables,
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
        let pre = HarnessPre::new(linker(engine)?.instantiate_pre(component)?)?;
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
        let hooks = RecordingHooks {
            log: self.outgoing.clone(),
            routes: self.routes.clone(),
        };
        let wasi = WasiCtx::builder().wall_clock(self.clock.clone()).build();
        HostState::new(wasi, self.keyvalue.clone(), self.config.clone(), hooks)
            .into_store(self.pre.engine())
    }

    /// A fresh instance in a fresh store.
    pub async fn instantiate(&self) -> wasmtime::Result<(Harness, Store<HostState>)> {
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

    pub async fn check_setup(
        &self,
        settings: &login::Settings,
    ) -> wasmtime::Result<Result<login::SetupReport, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_check_setup(&mut store, settings)
            .await
    }

    pub async fn sync_directory(
        &self,
        settings: &login::Settings,
        options: login::SyncOptions,
    ) -> wasmtime::Result<Result<login::SyncReport, login::AuthError>> {
        let (instance, mut store) = self.instantiate().await?;
        instance
            .wecom_auth_login()
            .call_sync_directory(&mut store, settings, options)
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
