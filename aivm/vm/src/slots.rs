//! A counting semaphore over the pooling allocator's instance slots.
//!
//! wasmtime's pool fails an instantiation when every slot is taken; on a validator that failure
//! would depend on how many calls happen to run at once (executor threads, RPC queries), which
//! no other validator sees. Calls take a slot here first and wait for one instead.

use parking_lot::{Condvar, Mutex};

pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A taken slot, given back on drop.
pub struct Slot<'a>(&'a Slots);

impl Slots {
    pub fn new(n: usize) -> Self {
        Slots { free: Mutex::new(n.max(1)), freed: Condvar::new() }
    }

    /// Wait for a free slot.
    pub fn acquire(&self) -> Slot<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.freed.wait(&mut free);
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_holders_than_slots() {
        let slots = Slots::new(2);
        let (live, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let _g = slots.acquire();
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::hint::spin_loop();
                        live.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }
}
