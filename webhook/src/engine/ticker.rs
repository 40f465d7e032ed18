//! The epoch timer that enforces policies' time limits, awake only while a guest runs.
//!
//! wasmtime's epoch interruption needs something to advance the engine's epoch. A
//! thread that ticks every [`EPOCH_TICK`] forever wakes a thousand times a second on an
//! idle server, which on a small node costs a core's caches and scheduler time exactly
//! when a lone admission request arrives (docs/performance.md, "Through the API
//! server"). This one ticks only while at least one [`Running`] guard is alive. A
//! deadline is counted in ticks from when its store was set up (inside a guard), so
//! pausing between evaluations never shortens or stretches one.
//!
//! On Linux the ticks come from a periodic timerfd. A guard arms it when it is not
//! armed; the timer thread disarms it at a tick that finds no guard alive. So a
//! request pays one `timerfd_settime` call however many policies it runs (each
//! reprograms a timer, a VM exit on a virtual machine: ~7 us here, which is why it is
//! not paid per policy, nor again to disarm), and the thread wakes once, a tick later,
//! off the request's path. Waking a parked thread instead (a condition variable) is a
//! cross-core wake-up on the request's path whenever a policy starts after idle.

use super::EPOCH_TICK;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use wasmtime::Engine as WasmEngine;

#[derive(Default)]
struct State {
    running: usize,
    stopped: bool,
    /// The timer is set to tick (Linux; the timer thread unsets it).
    armed: bool,
    /// The timer thread is waiting with no guard alive (what the tests observe).
    parked: bool,
    /// Times the timer thread was woken, and times a guard armed the timer (what the
    /// tests observe).
    wakes: u64,
    arms: u64,
}

struct Shared {
    state: Mutex<State>,
    alarm: alarm::Alarm,
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            alarm: alarm::Alarm::new()?,
        });
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
        if !state.armed {
            state.armed = true;
            state.arms += 1;
            self.shared.alarm.start();
        }
        Running {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    // A panic while holding this lock cannot leave the counter half-written.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn tick(shared: &Shared, engine: &WasmEngine) {
    loop {
        {
            let mut state = shared.lock();
            if state.stopped {
                return;
            }
            state.parked = state.running == 0;
            // Waits for a guard where the alarm needs the lock to do so.
            state = shared.alarm.wait_for_guard(state);
            if state.stopped {
                return;
            }
        }
        let ticks = shared.alarm.wait_tick();
        {
            let mut state = shared.lock();
            state.parked = false;
            state.wakes += 1;
            if state.running == 0 && !state.stopped {
                // Nothing runs: stop ticking until the next guard.
                state.armed = false;
                shared.alarm.stop();
            }
        }
        // A late wake-up (a busy machine) counts every tick that passed, so a time
        // limit stays wall-clock time.
        for _ in 0..ticks {
            engine.increment_epoch();
        }
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
        let mut state = self.shared.lock();
        state.stopped = true;
        self.shared.alarm.shut_down();
    }
}

#[cfg(target_os = "linux")]
mod alarm {
    //! A periodic timerfd: armed by the thread that starts an evaluation, read and
    //! disarmed by the timer thread.

    use super::{EPOCH_TICK, State};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::MutexGuard;
    use std::time::Duration;

    pub struct Alarm {
        fd: OwnedFd,
    }

    fn timespec(d: Duration) -> libc::timespec {
        libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        }
    }

    impl Alarm {
        pub fn new() -> std::io::Result<Alarm> {
            // SAFETY: timerfd_create takes no pointers; a non-negative result is a new
            // descriptor that nothing else owns.
            let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned here alone.
            Ok(Alarm {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        }

        /// Arms the timer: `first`, then every `interval` (zero: once, or disarm).
        fn set(&self, first: Duration, interval: Duration) {
            let spec = libc::itimerspec {
                it_value: timespec(first),
                it_interval: timespec(interval),
            };
            // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
            let result = unsafe {
                libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            // It fails only for a bad descriptor or bad values, neither possible here.
            if result != 0 {
                tracing::error!(error = %std::io::Error::last_os_error(), "cannot set the epoch timer; policy time limits may not hold");
            }
        }

        /// Ticks from now on.
        pub fn start(&self) {
            self.set(EPOCH_TICK, EPOCH_TICK);
        }

        /// No more ticks.
        pub fn stop(&self) {
            self.set(Duration::ZERO, Duration::ZERO);
        }

        /// Wakes the timer thread at once so it sees `stopped`.
        pub fn shut_down(&self) {
            self.set(Duration::from_nanos(1), Duration::ZERO);
        }

        /// The timer thread needs no guard to wait: a disarmed timer blocks its read.
        pub fn wait_for_guard<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
            state
        }

        /// Blocks until the timer fires; the ticks that passed since the last read.
        pub fn wait_tick(&self) -> u64 {
            loop {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a u64 the call owns.
                let n = unsafe {
                    libc::read(
                        self.fd.as_raw_fd(),
                        (&mut expirations as *mut u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if n == std::mem::size_of::<u64>() as isize {
                    return expirations;
                }
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    // Not expected of a timerfd; a tick rather than a busy loop.
                    tracing::error!(%error, "cannot read the epoch timer");
                    std::thread::sleep(EPOCH_TICK);
                    return 1;
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod alarm {
    //! Elsewhere: the timer thread parks on a condition variable while no guard is
    //! alive and sleeps one tick at a time while one is.

    use super::{EPOCH_TICK, State};
    use std::sync::{Condvar, MutexGuard, PoisonError};

    pub struct Alarm {
        wake: Condvar,
    }

    impl Alarm {
        pub fn new() -> std::io::Result<Alarm> {
            Ok(Alarm {
                wake: Condvar::new(),
            })
        }

        pub fn start(&self) {
            self.wake.notify_one();
        }

        pub fn stop(&self) {}

        pub fn shut_down(&self) {
            self.wake.notify_one();
        }

        pub fn wait_for_guard<'a>(
            &self,
            mut state: MutexGuard<'a, State>,
        ) -> MutexGuard<'a, State> {
            while state.running == 0 && !state.stopped {
                state.parked = true;
                // Parked: the next guard must wake this thread.
                state.armed = false;
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.wakes += 1;
            }
            state
        }

        pub fn wait_tick(&self) -> u64 {
            std::thread::sleep(EPOCH_TICK);
            1
        }
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

    /// Waits (bounded) until the timer thread waits with the timer stopped: the state
    /// a lone request finds after idle.
    fn wait_until_idle(ticker: &EpochTicker) {
        let start = Instant::now();
        loop {
            {
                let state = ticker.shared.lock();
                if state.parked && !state.armed {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the timer never stopped"
            );
            std::thread::yield_now();
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
        wait_until_idle(&ticker);
        // Idle now; a new guard must start the ticks again, or the spin runs to its end.
        let _running = ticker.running();
        assert!(epoch_advances(&engine, Duration::from_secs(5)));
    }

    #[test]
    fn policies_run_back_to_back_arm_the_timer_once() {
        let engine = engine();
        let ticker = EpochTicker::start(engine.clone()).unwrap_or_else(|e| panic!("{e}"));
        let guards = 40;
        for _ in 0..guards {
            // The policies of one request, each a guard that lives microseconds: the
            // first arms the timer; the others find it armed (a call each to arm and
            // disarm it measured ~7 us apiece on a virtual machine).
            drop(ticker.running());
        }
        // Some slack for a tick that falls inside the burst and finds nothing running.
        let arms = ticker.shared.lock().arms;
        assert!(
            arms < guards / 4,
            "the timer was armed {arms} times for {guards} guards"
        );
        // After the burst the timer thread stops ticking, and the next guard is served.
        wait_until_idle(&ticker);
        let _running = ticker.running();
        assert!(epoch_advances(&engine, Duration::from_secs(5)));
    }
}
