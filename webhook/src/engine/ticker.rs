//! The epoch timer that enforces policies' time limits, awake only while a guest runs.
//!
//! wasmtime's epoch interruption needs something to advance the engine's epoch. A
//! thread that ticks every [`EPOCH_TICK`] forever wakes a thousand times a second on an
//! idle server, which on a small node costs a core's caches and scheduler time exactly
//! when a lone admission request arrives (docs/performance.md, "Through the API
//! server"). This one ticks only while at least one [`Running`] guard is alive, and
//! parks otherwise. A deadline is counted in ticks from when its store was set up
//! (inside a guard), so parking between evaluations never shortens or stretches one.

use super::EPOCH_TICK;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use wasmtime::Engine as WasmEngine;

#[derive(Default)]
struct State {
    running: usize,
    stopped: bool,
    /// The timer thread is waiting for a guard (what the tests observe).
    parked: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Owns the timer thread; stops it when dropped.
pub struct EpochTicker {
    shared: Arc<Shared>,
}

/// While alive, the epoch advances.
pub struct Running {
    shared: Arc<Shared>,
}

impl EpochTicker {
    pub fn start(engine: WasmEngine) -> std::io::Result<EpochTicker> {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("plate-epoch".into())
            .spawn(move || tick(&worker, &engine))?;
        Ok(EpochTicker { shared })
    }

    /// Keeps the epoch advancing until the guard is dropped.
    pub fn running(&self) -> Running {
        let mut state = self.shared.lock();
        state.running += 1;
        if state.running == 1 {
            self.shared.wake.notify_one();
        }
        Running {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    // A panic while holding this lock cannot leave the counter half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn tick(shared: &Shared, engine: &WasmEngine) {
    loop {
        {
            let mut state = shared.lock();
            while state.running == 0 && !state.stopped {
                state.parked = true;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.parked = false;
            if state.stopped {
                return;
            }
        }
        std::thread::sleep(EPOCH_TICK);
        engine.increment_epoch();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.running = state.running.saturating_sub(1);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn epoch_advances(engine: &WasmEngine, within: Duration) -> bool {
        // The epoch is not readable; a store whose deadline is one tick away tells.
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
        // About ten seconds of counting down: long enough that only an interrupt ends
        // it early, bounded so that a ticker that never wakes fails the test, not hangs it.
        let wasm = wat::parse_str(
            r#"(module (func (export "spin") (local i64)
                 (local.set 0 (i64.const 10000000000))
                 (loop (local.set 0 (i64.sub (local.get 0) (i64.const 1)))
                       (br_if 0 (i64.ne (local.get 0) (i64.const 0))))))"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let module = wasmtime::Module::new(engine, wasm).unwrap_or_else(|e| panic!("{e}"));
        let instance =
            wasmtime::Instance::new(&mut store, &module, &[]).unwrap_or_else(|e| panic!("{e}"));
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        match spin.call(&mut store, ()) {
            Ok(()) => false,
            Err(e) => {
                assert_eq!(
                    e.downcast_ref::<wasmtime::Trap>(),
                    Some(&wasmtime::Trap::Interrupt),
                    "{e:#}"
                );
                start.elapsed() < within
            }
        }
    }

    fn engine() -> WasmEngine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        WasmEngine::new(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_epoch_advances_while_a_guard_is_alive() {
        let engine = engine();
        let ticker = EpochTicker::start(engine.clone()).unwrap_or_else(|e| panic!("{e}"));
        let running = ticker.running();
        assert!(epoch_advances(&engine, Duration::from_secs(5)));
        drop(running);
    }

    #[test]
    fn the_ticker_parks_when_nothing_runs_and_wakes_for_the_next_guard() {
        let engine = engine();
        let ticker = EpochTicker::start(engine.clone()).unwrap_or_else(|e| panic!("{e}"));
        drop(ticker.running());
        let start = Instant::now();
        while !ticker.shared.lock().parked {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the timer never parked"
            );
            std::thread::yield_now();
        }
        // Parked now; a new guard must wake it, or the spin runs to its end.
        let _running = ticker.running();
        assert!(epoch_advances(&engine, Duration::from_secs(5)));
    }
}
