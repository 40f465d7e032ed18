//! The policy engine: wasmtime configured for many short, isolated evaluations.
//!
//! Each module is compiled once into an [`InstancePre`]; every evaluation gets a
//! fresh `Store` and instance from the pooling allocator (no state survives between
//! evaluations), an epoch deadline for its time limit and a resource limiter for its
//! memory limit. The engine owns the pool and hands it out as slots
//! ([`EvaluationSlot`]); loading uses instances reserved for it. Whatever the guest
//! does, the caller gets a `Result`.
//!
//! Modules: `abi` (exports, calls, verdict decoding), `limits`, `store` (per-store
//! state), `lookup` (context lookup answers), `host` (imports on the linker),
//! `slots` (the pool's accounting), `wasi` (restricted WASI for guests built for
//! it), `preinit` (WASI reactors initialized once at load), `cache` (compiled code
//! on disk, checked before it is trusted), `sections` (what a module imports and
//! exports, read before compiling).

mod abi;
mod cache;
mod config;
mod host;
pub mod inspect;
mod limits;
mod lookup;
mod preinit;
mod sections;
mod slots;
mod store;
mod ticker;
mod wasi;

pub use abi::{AnswerError, GuestVerdict, decode_verdict};
pub use limits::Limits;
pub use lookup::{LookupScope, LookupStats};
pub use slots::{EvaluationSlot, LOAD_SLOTS};

use abi::AbiExports;
use slots::{EvaluationSlots, LoadSlots};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::StoreState;
use thiserror::Error;
use ticker::{EpochTicker, Running};
use wasi::WasiSandbox;
use wasmtime::{Engine as WasmEngine, InstancePre, Linker, Module, Store, Trap};

/// How often the epoch advances; time limits are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

pub use config::MAX_MEMORY_MIB;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Instances that can exist at once (the pool size); evaluations beyond it wait.
    pub max_concurrent_instances: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_instances: 256,
        }
    }
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Config(String),
    #[error("cannot start the epoch timer thread: {0}")]
    Timer(std::io::Error),
}

/// Why a module cache directory cannot be used.
#[derive(Debug, Error)]
#[error("module cache {}: {source}", dir.display())]
pub struct CacheDirError {
    pub dir: std::path::PathBuf,
    pub source: std::io::Error,
}

/// Why a module could not be loaded. The caller adds the policy's name and file.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("is not a WebAssembly module (it does not start with the \\0asm magic bytes)")]
    NotWasm,
    #[error("is not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error(
        "imports {0}, which the host does not provide: policies may import \
         \"plate\".\"lookup_object\" and the WASI preview 1 functions of docs/abi.md"
    )]
    Imports(String),
    #[error(
        "is a WASI command (it exports _start, a program's main): a policy must be a \
         reactor; build Go with -buildmode=c-shared (docs/authoring-go.md)"
    )]
    WasiCommand,
    #[error("could not be pre-initialized: {0}")]
    Preinit(String),
    #[error("{0}")]
    Abi(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

/// Why one evaluation produced no verdict. Each becomes the policy's failure outcome.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EvalError {
    #[error("exceeded its time limit of {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    MemoryLimit(u64),
    #[error("overflowed its stack (too deep recursion)")]
    StackOverflow,
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an unreadable verdict: {0}")]
    BadVerdict(String),
    #[error("could not be given its input: {0}")]
    Input(String),
    #[error("reported an error: {0}")]
    Guest(String),
    #[error("exited with status {status} before answering{}", said.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Exit { status: i32, said: Option<String> },
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("could not be evaluated because of an internal error of plate-policy: {0}")]
    Internal(String),
}

impl EvalError {
    /// The metric `result` label: `timeout` for time limits, `error` for the rest.
    pub fn is_timeout(&self) -> bool {
        matches!(self, EvalError::Timeout(_))
    }
}

/// The shared wasmtime engine, its instance pool and its epoch timer.
pub struct Engine {
    engine: WasmEngine,
    linker: Linker<StoreState>,
    /// The WASI functions the linker defines.
    wasi_functions: std::collections::HashSet<String>,
    ticker: Arc<EpochTicker>,
    evaluation_slots: EvaluationSlots,
    load_slots: Arc<LoadSlots>,
}

impl Engine {
    pub fn new(config: &EngineConfig) -> Result<Engine, EngineError> {
        let evaluations = config.max_concurrent_instances.max(1);
        // One instance per evaluation slot, plus the ones loading reserves.
        let wasm_config = config::wasmtime_config(evaluations.saturating_add(LOAD_SLOTS));
        let engine =
            WasmEngine::new(&wasm_config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let ticker = Arc::new(EpochTicker::start(engine.clone()).map_err(EngineError::Timer)?);
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        wasi::define(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let wasi_functions = {
            let mut store = Store::new(&engine, StoreState::new(0, None));
            linker
                .iter(&mut store)
                .filter(|(module, _, _)| *module == wasi::MODULE)
                .map(|(_, name, _)| name.to_string())
                .collect()
        };
        Ok(Engine {
            engine,
            linker,
            wasi_functions,
            ticker,
            evaluation_slots: EvaluationSlots::new(evaluations),
            load_slots: Arc::new(LoadSlots::new()),
        })
    }

    /// Waits for an evaluation slot (None only if the pool is gone, which it never is).
    pub async fn evaluation_slot(&self) -> Option<EvaluationSlot> {
        self.evaluation_slots.acquire().await
    }

    /// Waits for an evaluation slot on this thread (the one-shot commands).
    pub fn evaluation_slot_blocking(&self) -> Option<EvaluationSlot> {
        self.evaluation_slots.acquire_blocking()
    }

    /// Evaluation slots free right now.
    pub fn free_evaluation_slots(&self) -> usize {
        self.evaluation_slots.available()
    }

    /// Compiles and checks a module: only provided imports, the ABI exports with the
    /// right signatures, and a declared ABI version the host speaks.
    pub fn load(&self, bytes: &[u8]) -> Result<PolicyModule, LoadError> {
        self.load_cached(bytes, None)
    }

    /// [`load`](Self::load), reusing machine code compiled earlier when `cache_dir`
    /// holds it (and storing it there otherwise). Compiling is most of a cold start.
    ///
    /// The directory must be writable only by this server: its files are loaded as
    /// native code.
    pub fn load_cached(
        &self,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<PolicyModule, LoadError> {
        self.load_module(bytes, None, cache_dir)
    }

    /// [`load_cached`](Self::load_cached), first trying `precompiled`: machine code
    /// of these very `bytes` compiled at build time (the built-in policies). When it
    /// does not fit this engine (wasmtime checks the version and configuration), the
    /// module is loaded as if there were none, never refused.
    pub fn load_module(
        &self,
        bytes: &[u8],
        precompiled: Option<&[u8]>,
        cache_dir: Option<&Path>,
    ) -> Result<PolicyModule, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        // SAFETY: `precompiled` is the output of `Engine::precompile_module` for
        // `bytes`, embedded in this binary by its own build (webhook/build.rs);
        // wasmtime checks its header and refuses artifacts of another version or
        // configuration, which then compile instead.
        let embedded = precompiled.and_then(|code| match unsafe { Module::deserialize(&self.engine, code) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::debug!(error = %e, "the precompiled module does not fit this engine; compiling it");
                None
            }
        });
        if let Some(module) = embedded {
            return self.checked(module, Origin::Precompiled);
        }
        let shape = sections::ModuleSections::read(bytes).map_err(LoadError::Invalid)?;
        // A WASI reactor is compiled (and cached) as its pre-initialized snapshot.
        let preinitialize = shape.imports_wasi() && shape.exports(preinit::INIT_FUNC);
        if shape.imports_wasi() && !preinitialize && shape.exports(preinit::COMMAND_FUNC) {
            return Err(LoadError::WasiCommand);
        }
        let digest = cache::digest(bytes);
        let cached = cache_dir.map(|dir| {
            dir.join(cache::file_name(
                &digest,
                self.engine.precompile_compatibility_hash(),
                preinitialize,
            ))
        });
        let from_cache = cached.as_ref().and_then(|path| {
            let code = cache::read(path, &digest)?;
            // SAFETY: `cache::read` returned the payload of an entry written by
            // `cache::write` for these very module bytes, checked against its
            // SHA-256 (a corrupt or foreign file is ignored); its name carries the
            // engine's compatibility hash, and wasmtime still checks the header and
            // refuses artifacts of another version or configuration.
            match unsafe { Module::deserialize(&self.engine, &code) } {
                Ok(module) => Some(module),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring unusable compiled module in the cache");
                    None
                }
            }
        });
        let origin = if from_cache.is_some() {
            Origin::Cache
        } else {
            Origin::Compiled
        };
        let module = match from_cache {
            Some(module) => module,
            None => {
                let snapshot;
                let code = if preinitialize {
                    snapshot = preinit::snapshot(bytes)?;
                    &snapshot[..]
                } else {
                    bytes
                };
                let module = Module::new(&self.engine, code)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                if let Some(path) = &cached {
                    cache::write(&module, path, &digest);
                }
                module
            }
        };
        self.checked(module, origin)
    }

    /// Checks a compiled module against the ABI and makes it ready to instantiate.
    fn checked(&self, module: Module, origin: Origin) -> Result<PolicyModule, LoadError> {
        let imports: Vec<String> = module
            .imports()
            .filter(|i| !self.provides(i.module(), i.name()))
            .map(|i| format!("{:?}.{:?}", i.module(), i.name()))
            .collect();
        if !imports.is_empty() {
            return Err(LoadError::Imports(imports.join(", ")));
        }
        let exports = AbiExports::find(&module).map_err(LoadError::Abi)?;
        let wasi = module.imports().any(|i| i.module() == wasi::MODULE);
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let mut policy = PolicyModule {
            pre,
            exports,
            engine: self.engine.clone(),
            ticker: Arc::clone(&self.ticker),
            load_slots: Arc::clone(&self.load_slots),
            abi_version: 0,
            origin,
            wasi,
        };
        policy.abi_version = policy.read_abi_version()?;
        Ok(policy)
    }

    /// True when `dir` is usable as a module cache (created if missing).
    pub fn prepare_cache_dir(dir: &Path) -> Result<(), CacheDirError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheDirError {
            dir: dir.to_path_buf(),
            source,
        })
    }
}

impl Engine {
    /// True for the imports the linker provides.
    fn provides(&self, module: &str, name: &str) -> bool {
        host::provides(module, name)
            || (module == wasi::MODULE && self.wasi_functions.contains(name))
    }
}

/// Where a module's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from its bytes by this process.
    Compiled,
    /// Read from the module cache directory (no compile).
    Cache,
    /// Compiled when this binary was built (the built-in policies).
    Precompiled,
}

/// A compiled, checked policy module, ready to instantiate.
pub struct PolicyModule {
    pre: InstancePre<StoreState>,
    exports: AbiExports,
    engine: WasmEngine,
    ticker: Arc<EpochTicker>,
    load_slots: Arc<LoadSlots>,
    abi_version: i32,
    origin: Origin,
    /// Imports WASI: each evaluation gets a restricted WASI context.
    wasi: bool,
}

/// A running instance for one evaluation.
struct Sandbox {
    store: Store<StoreState>,
    instance: wasmtime::Instance,
    /// The epoch advances (time limits hold) while a sandbox exists.
    _running: Running,
}

impl PolicyModule {
    /// The ABI version the module declared (1 or 2).
    pub fn abi_version(&self) -> i32 {
        self.abi_version
    }

    /// Whether its code was compiled or read from the cache.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether it imports WASI (and runs with the restricted WASI context).
    pub fn uses_wasi(&self) -> bool {
        self.wasi
    }

    fn sandbox(&self, limits: &Limits, lookup: Option<LookupScope>) -> Result<Sandbox, EvalError> {
        // Before the deadline is set: it counts ticks of a running timer.
        let running = self.ticker.running();
        let mut state = StoreState::new(limits.memory_bytes(), lookup);
        if self.wasi {
            state.wasi = Some(Box::new(WasiSandbox::new("policy")));
        }
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store.set_epoch_deadline(limits.epoch_ticks());
        store.epoch_deadline_trap();
        match self.pre.instantiate(&mut store) {
            Ok(instance) => Ok(Sandbox {
                store,
                instance,
                _running: running,
            }),
            Err(e) => Err(classify(&store, limits, e, EvalError::Instantiate)),
        }
    }

    fn read_abi_version(&self) -> Result<i32, LoadError> {
        let _slot = self.load_slots.acquire();
        // The ABI check is not the place for the entry's memory limit (a
        // pre-initialized module may start large): evaluations apply it.
        let limits = Limits {
            memory_mib: MAX_MEMORY_MIB,
            ..Limits::DEFAULT
        };
        let mut sandbox = self.sandbox(&limits, None).map_err(|e| match e {
            EvalError::Instantiate(message) => LoadError::Instantiate(message),
            other => LoadError::Instantiate(other.to_string()),
        })?;
        self.exports
            .abi_version(&mut sandbox.store, &sandbox.instance)
            .map_err(LoadError::Abi)
    }

    /// Calls `plate_validate_settings` in an instance reserved for loading;
    /// `Ok(Err(message))` is the policy's own rejection.
    pub fn validate_settings(
        &self,
        settings_json: &[u8],
        limits: &Limits,
    ) -> Result<Result<(), String>, EvalError> {
        let _slot = self.load_slots.acquire();
        let (bytes, _) = self.call(limits, &[settings_json], None, |exports| {
            exports.validate_settings
        });
        abi::decode_settings_answer(&bytes?).map_err(EvalError::BadVerdict)
    }

    /// One evaluation in a fresh sandbox, in the pool slot `_slot` holds. `input` is
    /// the ABI input document, given as pieces that are written into guest memory
    /// back to back (no concatenation copy). Lookups are allowed as `scope` says;
    /// also returns what they did.
    pub fn evaluate(
        &self,
        _slot: &EvaluationSlot,
        input: &[&[u8]],
        limits: &Limits,
        scope: Option<LookupScope>,
    ) -> (Result<GuestVerdict, EvalError>, LookupStats) {
        let (bytes, stats) = self.call(limits, input, scope, |exports| exports.validate);
        let result = bytes.and_then(|bytes| {
            abi::decode_verdict(self.abi_version, &bytes).map_err(|e| match e {
                AnswerError::Unreadable(m) => EvalError::BadVerdict(m),
                AnswerError::Guest(m) => EvalError::Guest(m),
            })
        });
        (result, stats)
    }

    fn call(
        &self,
        limits: &Limits,
        input: &[&[u8]],
        scope: Option<LookupScope>,
        entry: impl Fn(&AbiExports) -> wasmtime::ModuleExport,
    ) -> (Result<Vec<u8>, EvalError>, LookupStats) {
        let Sandbox {
            mut store,
            instance,
            _running,
        } = match self.sandbox(limits, scope) {
            Ok(sandbox) => sandbox,
            Err(e) => return (Err(e), LookupStats::default()),
        };
        let result = self
            .exports
            .call(&mut store, &instance, &entry(&self.exports), input);
        let result = match result {
            Ok(bytes) => Ok(bytes),
            Err(abi::CallError::Wasm(e)) => Err(classify(&store, limits, e, EvalError::Trap)),
            Err(abi::CallError::Input(message)) => Err(EvalError::Input(message)),
            Err(abi::CallError::Answer(message)) => Err(EvalError::BadVerdict(message)),
        };
        let state = store.data_mut();
        let scope = state.lookup.take();
        if let Some(sandbox) = state.wasi.take() {
            let policy = scope.as_ref().map_or("(loading)", |s| &*s.policy);
            log_output(policy, &sandbox);
        }
        (result, scope.map(|scope| scope.stats).unwrap_or_default())
    }
}

/// Turns a wasmtime error into the cause a person can act on.
fn classify(
    store: &Store<StoreState>,
    limits: &Limits,
    error: wasmtime::Error,
    other: fn(String) -> EvalError,
) -> EvalError {
    if store.data().memory_exceeded() {
        return EvalError::MemoryLimit(limits.memory_mib);
    }
    // What a WASI guest wrote to stderr last says why it stopped (a Go panic).
    let said = store
        .data()
        .wasi
        .as_ref()
        .and_then(|sandbox| preinit::first_line(&sandbox.stderr.text().0));
    if let Some(exit) = error.downcast_ref::<wasi::I32Exit>() {
        return EvalError::Exit {
            status: exit.0,
            said,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => EvalError::Timeout(limits.timeout_ms),
        Some(Trap::StackOverflow) => EvalError::StackOverflow,
        // The guest's own words first: a warning is cut at 119 characters.
        Some(trap) => EvalError::Trap(match said {
            Some(line) => format!("{line} ({trap})"),
            None => trap.to_string(),
        }),
        None => other(format!("{error:#}")),
    }
}

/// Logs what a WASI guest wrote, tagged with the policy's name.
fn log_output(policy: &str, sandbox: &WasiSandbox) {
    for (stream, captured) in [("stdout", &sandbox.stdout), ("stderr", &sandbox.stderr)] {
        if !captured.is_empty() {
            let (text, dropped) = captured.text();
            tracing::info!(policy, stream, dropped_bytes = dropped, output = %text, "policy output");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preinit::tests::{INIT_OK, reactor};
    use super::*;

    fn engine() -> Engine {
        Engine::new(&EngineConfig {
            max_concurrent_instances: 4,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_wasi_reactor_runs_from_its_initialized_snapshot_each_time_afresh() {
        let engine = engine();
        let module = engine
            .load(&reactor(preinit::INIT_FUNC, INIT_OK))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(module.uses_wasi());
        let slot = engine
            .evaluation_slot_blocking()
            .unwrap_or_else(|| panic!("no slot"));
        // The module traps unless initialized, and on any call but its instance's
        // first: two evaluations pass only from a snapshot, each in a new instance.
        for _ in 0..2 {
            let (verdict, _) = module.evaluate(&slot, &[b"{}"], &Limits::DEFAULT, None);
            assert_eq!(verdict.map(|v| v.violations.len()), Ok(0));
        }
    }

    #[test]
    fn a_wasi_command_is_refused_with_how_to_build_a_reactor() {
        let refused = engine()
            .load(&reactor(preinit::COMMAND_FUNC, INIT_OK))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("is a WASI command"), "{refused}");
        assert!(refused.contains("-buildmode=c-shared"), "{refused}");
    }
}
