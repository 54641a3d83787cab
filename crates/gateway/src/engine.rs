//! The wasmtime engine a gateway runs components on: the component model and,
//! for a busy gateway, the pooling allocator with slots reserved up front.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Per-instance memory cap: the component needs about 1 MiB.
pub const MEMORY_LIMIT: usize = 64 << 20;
/// Bytes of each pooled memory and table reset in place rather than released.
const KEEP_RESIDENT: usize = 1 << 20;
/// Pooling allocator slots: concurrent component instances one engine can hold.
/// Each needs a few core instances, tables and memories (Rust std's WASI adapter).
pub const POOL_SLOTS: u32 = 1000;
const CORE_PER_COMPONENT: u32 = 4;

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

/// An engine for components; errors are wasmtime's (e.g. no virtual memory
/// for the pool).
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

/// wasmtime's own error type, as an `anyhow::Error` with its whole chain.
pub fn wasmtime_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:#}")
}
