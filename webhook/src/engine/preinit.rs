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
    snapshot_with_fuel(bytes, INIT_FUEL)
}

fn snapshot_with_fuel(bytes: &[u8], fuel: u64) -> Result<Vec<u8>, LoadError> {
    // wasmtime-wizer asserts on malformed input in places; a panic is a refusal.
    match catch_unwind(AssertUnwindSafe(|| run(bytes, fuel))) {
        Ok(result) => result,
        Err(_) => Err(LoadError::Preinit(
            "the pre-initializer failed on this module (wasmtime-wizer panicked)".into(),
        )),
    }
}

fn preinit_error(what: &str) -> impl Fn(wasmtime::Error) -> LoadError + '_ {
    move |e| LoadError::Preinit(format!("{what}: {e:#}"))
}

fn run(bytes: &[u8], fuel: u64) -> Result<Vec<u8>, LoadError> {
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
        .set_fuel(fuel)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WASI reactor in WAT: `_initialize` copies the verdict into place and sets
    /// a global; `plate_validate` traps unless both are there and unless it is the
    /// instance's first call. `INIT` is replaced by the initializer's body.
    pub const REACTOR: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "{\"valid\":true}")
      (data (i32.const 1000) "{\"allowed\":true}")
      (data (i32.const 300) "boom\n")
      (global $initialized (mut i32) (i32.const 0))
      (global $calls (mut i32) (i32.const 0))
      (global $next (mut i32) (i32.const 4096))
      (func (export "ENTRY") INIT)
      (func (export "plate_abi_version") (result i32) (i32.const 2))
      (func (export "plate_alloc") (param $len i32) (result i32)
        (local $ptr i32)
        (local.set $ptr (global.get $next))
        (global.set $next (i32.add (local.get $ptr) (local.get $len)))
        (local.get $ptr))
      (func (export "plate_validate_settings") (param i32 i32) (result i64)
        (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 14)))
      (func (export "plate_validate") (param i32 i32) (result i64)
        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
        (if (i32.ne (global.get $calls) (i32.const 1)) (then unreachable))
        (if (i32.eqz (global.get $initialized)) (then unreachable))
        (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16))))"#;

    /// Copies the verdict to offset 16 and marks the instance initialized.
    pub const INIT_OK: &str = "(memory.copy (i32.const 16) (i32.const 1000) (i32.const 16)) (global.set $initialized (i32.const 1))";
    const INIT_LOOP: &str = "(loop $l (br $l))";
    /// Writes "boom\n" to stderr (iovec at 200), then exits with status 7.
    const INIT_EXIT: &str = "(i32.store (i32.const 200) (i32.const 300)) (i32.store (i32.const 204) (i32.const 5)) (drop (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 220))) (call $proc_exit (i32.const 7))";

    pub fn reactor(entry: &str, init: &str) -> Vec<u8> {
        let text = REACTOR.replace("ENTRY", entry).replace("INIT", init);
        wat::parse_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_initializer_that_exits_loops_or_grows_without_end_is_refused_with_why() {
        let exit = snapshot(&reactor(INIT_FUNC, INIT_EXIT))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            exit.as_deref(),
            Some("could not be pre-initialized: _initialize exited with status 7: boom")
        );
        let endless = snapshot_with_fuel(&reactor(INIT_FUNC, INIT_LOOP), 1_000_000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            endless.contains("did not finish within its budget"),
            "{endless}"
        );
        let grows = snapshot(&reactor(
            INIT_FUNC,
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1024)) (i32.const -1))))",
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            grows.contains("exceeded the largest memory a policy may have"),
            "{grows}"
        );
        assert!(snapshot(&reactor(INIT_FUNC, INIT_OK)).is_ok());
    }

    #[test]
    fn first_lines_skip_blank_lines_and_are_bounded() {
        assert_eq!(
            first_line("\n  \npanic: x\ngoroutine 1"),
            Some("panic: x".into())
        );
        assert_eq!(first_line(" \n"), None);
        assert_eq!(first_line(&"é".repeat(400)).map(|l| l.len()), Some(300));
    }
}
