//! Per-evaluation limits (time, memory) and the store state that enforces memory.

use super::EPOCH_TICK;
use super::context::LookupScope;
use wasmtime::ResourceLimiter;

/// Limits of one policy, from its policy-set entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mib: u64,
}

impl Default for Limits {
    /// The SPEC defaults: 250 ms and 64 MiB.
    fn default() -> Self {
        Limits {
            timeout_ms: 250,
            memory_mib: 64,
        }
    }
}

impl Limits {
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// Epoch ticks until the deadline: rounded up, plus one because the current
    /// tick may be almost over when the evaluation starts.
    pub fn epoch_ticks(&self) -> u64 {
        let tick_ms = EPOCH_TICK.as_millis().max(1) as u64;
        self.timeout_ms.div_ceil(tick_ms).saturating_add(1)
    }
}

/// Store data: enforces the memory limit and remembers that it did, so a trap
/// caused by it is reported as "memory limit", not as a generic trap.
pub struct StoreState {
    memory_limit: usize,
    memory_exceeded: bool,
    /// Present when the evaluation may look up context objects.
    pub lookup: Option<LookupScope>,
}

/// Tables are only used for indirect calls; no honest policy needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl StoreState {
    pub fn new(memory_limit: usize, lookup: Option<LookupScope>) -> Self {
        StoreState {
            memory_limit,
            memory_exceeded: false,
            lookup,
        }
    }

    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            // An error (not `Ok(false)`) traps at once: a guest allocator that
            // ignores failed growth cannot keep running past its limit.
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_limit);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
