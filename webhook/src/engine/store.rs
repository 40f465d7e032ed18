//! What one evaluation's wasmtime `Store` carries: the memory limit (enforced as a
//! resource limiter, remembering that it tripped so the trap is reported as "memory
//! limit"), the lookups the evaluation may make, and for WASI guests their
//! restricted WASI context and captured output.

use super::lookup::LookupScope;
use super::wasi::WasiSandbox;
use wasmtime::ResourceLimiter;

/// Tables are only used for indirect calls; no honest policy needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

pub struct StoreState {
    memory_limit: usize,
    memory_exceeded: bool,
    /// Present when the evaluation may look up objects.
    pub lookup: Option<LookupScope>,
    /// Present for modules that import WASI.
    pub wasi: Option<Box<WasiSandbox>>,
}

impl StoreState {
    pub fn new(memory_limit: usize, lookup: Option<LookupScope>) -> Self {
        StoreState {
            memory_limit,
            memory_exceeded: false,
            lookup,
            wasi: None,
        }
    }

    /// The WASI context, made (granting nothing, output discarded into an unread
    /// buffer) if the evaluation has none: only a module the engine did not mark
    /// as a WASI guest could call WASI without one, and the linker refuses those.
    pub fn wasi_ctx(&mut self) -> &mut wasmtime_wasi::p1::WasiP1Ctx {
        &mut self
            .wasi
            .get_or_insert_with(|| Box::new(WasiSandbox::new("policy")))
            .ctx
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_limit_traps_and_is_remembered() {
        let mut state = StoreState::new(1 << 20, None);
        assert!(matches!(state.memory_growing(0, 1 << 20, None), Ok(true)));
        assert!(!state.memory_exceeded());
        assert!(state.memory_growing(1 << 20, (1 << 20) + 1, None).is_err());
        assert!(state.memory_exceeded());
        assert!(matches!(
            state.table_growing(0, MAX_TABLE_ELEMENTS + 1, None),
            Ok(false)
        ));
    }
}
