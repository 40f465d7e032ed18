//! The wasmtime configuration of the engine, written once: the runtime engine
//! (`Engine::new`) and the build-time precompiler of the built-in policies
//! (webhook/build.rs includes this file) must agree, or the precompiled built-ins
//! do not load (they are then compiled at load, which is only slower). This file
//! uses nothing of the crate but wasmtime, so build.rs can include it.

use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes at the start of each pooled linear memory that stay mapped between
/// instances: the pages an instance dirtied there are reset by memset (found with
/// Linux's PAGEMAP_SCAN) instead of being unmapped, so the next instance neither
/// page-faults them in nor makes the kernel flush TLBs on every core. A policy
/// built with the SDK starts with 1 MiB (stack, data, heap), all of it covered.
pub const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Pool slots kept warm (mapped, with a module's memory image) while no instance uses
/// them. wasmtime's default, 100, makes the pool prefer a never-used slot to a warm one
/// of another module, so over hours the set of used slots creeps toward the whole pool
/// (128), each keeping ~120 KiB resident: the 60-minute soak's RSS grew 15% that way,
/// one slot at a time whenever concurrency peaked. With 16 the used slots stay near the
/// peak number of concurrent evaluations plus 16 (enough for each of a typical set's
/// policies to find a slot of its own module), reached in the first minutes.
pub const MAX_UNUSED_WARM_SLOTS: u32 = 16;

/// The largest memory limit a policy may ask for.
pub const MAX_MEMORY_MIB: u64 = 1024;

/// The engine's configuration, with a pool of `instances` instances.
pub fn wasmtime_config(instances: u32) -> Config {
    let instances = instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size((MAX_MEMORY_MIB as usize) << 20)
        // Keep a little of each slot's memory mapped so reuse needs no page faults.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(MAX_UNUSED_WARM_SLOTS.min(instances))
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `PLATE_WASM_PERFMAP=1`: guest functions named in /tmp/perf-PID.map, so `perf`
    // profiles show which policy code runs (docs/performance.md, "How to measure").
    if std::env::var_os("PLATE_WASM_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}
