//! The engine's instance pool, handed out as slots. The pool holds one instance per
//! evaluation slot plus [`LOAD_SLOTS`] more, reserved for loading (checking a
//! module's ABI version, validating settings): with every evaluation slot busy, a
//! reload still finds room, and a request holding a slot always finds an instance.

use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Instances reserved for loading. Loads beyond this many at once wait for each other.
pub const LOAD_SLOTS: u32 = 2;

/// The right to run evaluations, one at a time, for as long as it is held.
pub struct EvaluationSlot {
    _permit: OwnedSemaphorePermit,
}

/// Evaluation slots: async for the server (waiting does not block a thread).
pub struct EvaluationSlots {
    semaphore: Arc<Semaphore>,
}

impl EvaluationSlots {
    pub fn new(count: u32) -> Self {
        EvaluationSlots {
            semaphore: Arc::new(Semaphore::new(count.max(1) as usize)),
        }
    }

    /// Waits for a free slot. None only if the pool was closed, which it never is.
    pub async fn acquire(&self) -> Option<EvaluationSlot> {
        Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .ok()
            .map(|permit| EvaluationSlot { _permit: permit })
    }

    /// Waits for a free slot on the calling thread (the one-shot commands).
    pub fn acquire_blocking(&self) -> Option<EvaluationSlot> {
        futures::executor::block_on(self.acquire())
    }

    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// Load slots: loading is synchronous (it compiles), so a plain counting semaphore.
pub struct LoadSlots {
    free: Mutex<u32>,
    released: Condvar,
}

/// One reserved instance, returned when dropped.
pub struct LoadSlot<'a> {
    slots: &'a LoadSlots,
}

impl LoadSlots {
    pub fn new() -> Self {
        LoadSlots {
            free: Mutex::new(LOAD_SLOTS),
            released: Condvar::new(),
        }
    }

    pub fn acquire(&self) -> LoadSlot<'_> {
        // A poisoned count is still a count.
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        LoadSlot { slots: self }
    }
}

impl Default for LoadSlots {
    fn default() -> Self {
        LoadSlots::new()
    }
}

impl Drop for LoadSlot<'_> {
    fn drop(&mut self) {
        let mut free = self.slots.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.slots.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_slots_are_counted_and_returned() {
        let slots = EvaluationSlots::new(2);
        let a = slots.acquire_blocking();
        let b = slots.acquire_blocking();
        assert!(a.is_some() && b.is_some());
        assert_eq!(slots.available(), 0);
        drop(a);
        assert_eq!(slots.available(), 1);
    }

    #[test]
    fn a_load_waits_for_a_free_load_slot() {
        let slots = Arc::new(LoadSlots::new());
        let held: Vec<LoadSlot<'_>> = (0..LOAD_SLOTS).map(|_| slots.acquire()).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = Arc::clone(&slots);
        let thread = std::thread::spawn(move || {
            let _slot = waiting.acquire();
            let _ = tx.send(());
        });
        // The waiter cannot get a slot while all are held...
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(50))
                .is_err()
        );
        drop(held);
        // ...and gets one once they are released.
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok());
        let _ = thread.join();
    }
}
