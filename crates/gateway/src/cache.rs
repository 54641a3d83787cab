//! Precompiled components on disk, for a fast cold start: the first start
//! compiles the `.wasm` and writes `<dir>/<key>.cwasm`; later starts of the
//! same engine configuration load that file instead of compiling.
//!
//! The key hashes the component's bytes together with
//! `Engine::precompile_compatibility_hash`, so a new component, a new wasmtime
//! or other engine settings never load a stale artifact.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::engine::wasmtime_error;

/// How the component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache configured: compiled.
    Disabled,
    /// Loaded from this precompiled file.
    Hit(PathBuf),
    /// Compiled, and written to this file for the next start.
    Miss(PathBuf),
    /// Compiled; the cache could not be used (the reason, without secrets).
    Unusable(String),
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOutcome::Disabled => f.write_str("compiled, no precompiled cache"),
            CacheOutcome::Hit(path) => write!(f, "precompiled cache hit {}", path.display()),
            CacheOutcome::Miss(path) => {
                write!(f, "compiled, precompiled cache written {}", path.display())
            }
            CacheOutcome::Unusable(why) => write!(f, "compiled, precompiled cache unusable: {why}"),
        }
    }
}

/// A loaded component and how long getting it took.
pub struct LoadedComponent {
    pub component: Component,
    pub outcome: CacheOutcome,
    pub elapsed: Duration,
}

/// The cache file name for `wasm` under `engine`: 128 bits of two keyed hashes.
pub fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let half = |salt: u64| {
        let mut hasher = DefaultHasher::new();
        salt.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        wasm.hash(&mut hasher);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// The path `wasm` is cached at in `dir`.
pub fn cache_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    dir.join(format!("{}.cwasm", cache_key(engine, wasm)))
}

/// Loads the component at `path`, through the cache in `cache_dir` if given.
/// Blocking (compiling takes seconds): call it off the async executor.
pub fn load_component(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> anyhow::Result<LoadedComponent> {
    let started = Instant::now();
    let wasm =
        std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
    let (component, outcome) = match cache_dir {
        None => (compile(engine, &wasm, path)?, CacheOutcome::Disabled),
        Some(dir) => through_cache(engine, &wasm, path, dir)?,
    };
    Ok(LoadedComponent {
        component,
        outcome,
        elapsed: started.elapsed(),
    })
}

fn compile(engine: &Engine, wasm: &[u8], path: &Path) -> anyhow::Result<Component> {
    Component::new(engine, wasm)
        .map_err(wasmtime_error)
        .with_context(|| format!("compiling the component {}", path.display()))
}

fn through_cache(
    engine: &Engine,
    wasm: &[u8],
    path: &Path,
    dir: &Path,
) -> anyhow::Result<(Component, CacheOutcome)> {
    let cached = cache_path(dir, engine, wasm);
    if cached.is_file() {
        // SAFETY: the file was written by `Engine::precompile_component` of an
        // engine with the same compatibility hash (it is in the name), into a
        // directory this gateway owns; wasmtime also checks its header and
        // refuses artifacts of other versions or settings.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit(cached))),
            Err(_) => {
                // Corrupt or foreign: compile again and overwrite it below.
                let _ = std::fs::remove_file(&cached);
            }
        }
    }
    let precompiled = match engine.precompile_component(wasm) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Err(wasmtime_error(e))
                .with_context(|| format!("compiling the component {}", path.display()));
        }
    };
    // SAFETY: these bytes come from `precompile_component` of this very engine.
    let component = unsafe { Component::deserialize(engine, &precompiled) }
        .map_err(wasmtime_error)
        .context("loading the freshly precompiled component")?;
    let outcome = match write_atomically(dir, &cached, &precompiled) {
        Ok(()) => CacheOutcome::Miss(cached),
        Err(e) => CacheOutcome::Unusable(format!("{e:#}")),
    };
    Ok((component, outcome))
}

/// Writes to a temporary file, then renames: a concurrent start never loads
/// half a file, and a running gateway's mapping of the old artifact (wasmtime
/// maps it) stays valid; rewriting it in place would crash that gateway (SIGBUS).
fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = target.with_extension(format!("cwasm.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, target).with_context(|| {
        let _ = std::fs::remove_file(&temporary);
        format!("renaming to {}", target.display())
    })
}
