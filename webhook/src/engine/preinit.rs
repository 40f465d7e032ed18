//! Pre-initialization of WASI reactors (Go's `wasip1` `-buildmode=c-shared`
//! modules): their `_initialize` export starts the language runtime and runs every
//! init function, which costs a Go module about a millisecond, too much to pay per
//! request. At load, wasmtime-wizer runs it once and snapshots the instance's memory
//! and globals into a new module that starts where `_initialize` ended; that module
//! is what the engine compiles and instantiates per evaluation, so every request
//! still gets a sandbox no earlier request touched, its memory mapped copy-on-write
//! from the snapshot.
//!
//! The initialization runs in its own small engine (unoptimised code: it runs once)
//! with the same restricted WASI, no lookups (the answer is an error), the largest
//! memory a policy may have and a fuel budget, so a module whose init loops or grows
//! without end fails to load with a message instead of hanging the loader.

use super::config::MAX_MEMORY_MIB;
use super::store::StoreState;
use super::wasi::{I32Exit, WasiSandbox};
use super::{LoadError, host, wasi};
use std::panic::{AssertUnwindSafe, catch_unwind};
use wasmtime::{Config, Engine, Instance, Linker, Module, OptLevel, Store, Trap, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

/// The export a WASI reactor is initialized with.
pub const INIT_FUNC: &str = "_initialize";

/// The export of a WASI command (a program with a `main`), which cannot be a policy.
pub const COMMAND_FUNC: &str = "_start";

/// Fuel for `_initialize`: some seconds of work; Go's runtime start needs a
/// thousandth of it.
const INIT_FUEL: u64 = 4_000_000_000;

/// Runs `_initialize` of `bytes` once and returns the snapshot module.
pub fn snapshot(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    // wasmtime-wizer asserts on malformed input in places; a panic is a refusal.
    match catch_unwind(AssertUnwindSafe(|| run(bytes))) {
        Ok(result) => result,
        Err(_) => Err(LoadError::Preinit(
            "the pre-initializer failed on this module (wasmtime-wizer panicked)".into(),
        )),
    }
}

fn preinit_error(what: &str) -> impl Fn(wasmtime::Error) -> LoadError + '_ {
    move |e| LoadError::Preinit(format!("{what}: {e:#}"))
}

fn run(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    let mut config = Config::new();
    config
        .cranelift_opt_level(OptLevel::None)
        .consume_fuel(true)
        .max_wasm_stack(512 << 10);
    let engine = Engine::new(&config).map_err(preinit_error("cannot configure its engine"))?;
    let mut linker = Linker::new(&engine);
    host::define(&mut linker).map_err(preinit_error("cannot link the host functions"))?;
    wasi::define(&mut linker).map_err(preinit_error("cannot link WASI"))?;

    let mut wizer = Wizer::new();
    wizer.init_func(INIT_FUNC);
    let (context, instrumented) = wizer
        .instrument(bytes)
        .map_err(preinit_error("cannot be prepared for pre-initialization"))?;
    let module =
        Module::new(&engine, &instrumented).map_err(preinit_error("cannot be compiled"))?;

    let memory_limit = usize::try_from(MAX_MEMORY_MIB << 20).unwrap_or(usize::MAX);
    let mut state = StoreState::new(memory_limit, None);
    let sandbox = WasiSandbox::new("policy");
    let (stdout, stderr) = (sandbox.stdout.clone(), sandbox.stderr.clone());
    state.wasi = Some(Box::new(sandbox));
    let mut store = Store::new(&engine, state);
    store.limiter(|state| state);
    store
        .set_fuel(INIT_FUEL)
        .map_err(preinit_error("cannot set its fuel"))?;
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(preinit_error("cannot be instantiated"))?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_FUNC)
        .map_err(preinit_error("has no usable _initialize"))?;
    let result = init.call(&mut store, ());
    for (stream, captured) in [("stdout", &stdout), ("stderr", &stderr)] {
        if !captured.is_empty() {
            let (text, dropped) = captured.text();
            tracing::info!(stream, dropped_bytes = dropped, output = %text, "policy output while initializing");
        }
    }
    if let Err(e) = result {
        return Err(LoadError::Preinit(init_failure(&store, &e, &stderr)));
    }
    let mut state = Snapshot {
        store: &mut store,
        instance,
        missing: None,
    };
    let snapshot = futures::executor::block_on(wizer.snapshot(&context, &mut state))
        .map_err(preinit_error("cannot be snapshotted"))?;
    if let Some(missing) = state.missing {
        return Err(LoadError::Preinit(format!(
            "cannot be snapshotted: {missing}"
        )));
    }
    Ok(snapshot)
}

/// Why `_initialize` ended without finishing, for a person.
fn init_failure(
    store: &Store<StoreState>,
    error: &wasmtime::Error,
    stderr: &wasi::Captured,
) -> String {
    let said = first_line(&stderr.text().0);
    if store.data().memory_exceeded() {
        return format!(
            "_initialize exceeded the largest memory a policy may have ({MAX_MEMORY_MIB} MiB)"
        );
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return match said {
            Some(line) => format!("_initialize exited with status {}: {line}", exit.0),
            None => format!("_initialize exited with status {}", exit.0),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            "_initialize did not finish within its budget (an endless loop in an init function?)"
                .into()
        }
        Some(trap) => format!("_initialize trapped: {trap}"),
        None => format!("_initialize failed: {error:#}"),
    }
}

/// The first line of a guest's error output that says something.
pub fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(line[..end].to_string())
}

/// The instance state wizer reads; names it cannot find are remembered (wizer's
/// own implementation panics on them).
struct Snapshot<'a> {
    store: &'a mut Store<StoreState>,
    instance: Instance,
    missing: Option<String>,
}

impl InstanceState for Snapshot<'_> {
    async fn global_get(&mut self, name: &str, _type_hint: ValType) -> SnapshotVal {
        let value = self
            .instance
            .get_global(&mut *self.store, name)
            .map(|global| global.get(&mut *self.store));
        match value {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            _ => {
                self.missing = Some(format!("global {name:?} is missing or of a reference type"));
                SnapshotVal::I32(0)
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing = Some(format!("memory {name:?} is missing"));
                contents(&[]);
            }
        }
    }
}
