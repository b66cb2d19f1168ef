//! Where a node's CPU goes: thread CPU time (not wall time, which two busy cores and a dozen
//! threads would inflate) added up per part of the transaction path, for the devnet's report
//! (`aivm_cpu`, BENCHMARKS.md). Each thread keeps the part it is in; entering a part inside
//! another pauses the outer one, so every nanosecond counts once. What no part claims is the
//! consensus engine, p2p and the rest (the process total minus the parts).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A part of the transaction path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Part {
    /// Decoding and ed25519 checks (admission, gossip, peers' blocks).
    Signatures = 0,
    /// Running transactions (Block-STM or sequential).
    Execution,
    /// The Jellyfish Merkle update.
    StateTree,
    /// Writing committed blocks to RocksDB.
    Storage,
    /// Mempool admission, selection and refresh.
    Mempool,
    /// JSON-RPC serving, except the signature checks it asks for.
    Rpc,
}

pub const PARTS: [Part; 6] = [Part::Signatures, Part::Execution, Part::StateTree, Part::Storage, Part::Mempool, Part::Rpc];

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Signatures => "signatures",
            Part::Execution => "execution",
            Part::StateTree => "state_tree",
            Part::Storage => "storage",
            Part::Mempool => "mempool",
            Part::Rpc => "rpc",
        }
    }
}

static NANOS: [AtomicU64; PARTS.len()] = [const { AtomicU64::new(0) }; PARTS.len()];

thread_local! {
    /// The part this thread is in and the thread CPU time when it entered (or resumed) it.
    static CURRENT: Cell<Option<(Part, u64)>> = const { Cell::new(None) };
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_ns() -> u64 {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process, in nanoseconds.
pub fn process_ns() -> u64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn charge(part: Part, ns: u64) {
    NANOS[part as usize].fetch_add(ns, Ordering::Relaxed);
}

/// Being in a part until dropped (see [`enter`]).
pub struct InPart {
    outer: Option<(Part, u64)>,
    part: Part,
}

/// Count this thread's CPU time toward `part` until the guard drops, pausing the part it was in.
pub fn enter(part: Part) -> InPart {
    let now = thread_ns();
    let outer = CURRENT.with(|c| c.replace(Some((part, now))));
    if let Some((p, since)) = outer {
        charge(p, now.saturating_sub(since));
    }
    InPart { outer: outer.map(|(p, _)| (p, now)), part }
}

impl Drop for InPart {
    fn drop(&mut self) {
        let now = thread_ns();
        if let Some((p, since)) = CURRENT.with(|c| c.replace(self.outer.map(|(p, _)| (p, now)))) {
            debug_assert_eq!(p, self.part);
            charge(p, now.saturating_sub(since));
        }
    }
}

/// Run `f` counted toward `part`.
pub fn measure<R>(part: Part, f: impl FnOnce() -> R) -> R {
    let _g = enter(part);
    f()
}

/// Totals so far: nanoseconds per part (in [`PARTS`] order) and the process's CPU time.
pub fn snapshot() -> ([u64; PARTS.len()], u64) {
    let parts = std::array::from_fn(|i| NANOS[i].load(Ordering::Relaxed));
    (parts, process_ns())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn `ms` of this thread's CPU time (wall time would vary with the machine's load).
    fn spin(ms: u64) {
        let t = thread_ns();
        let mut x = 0u64;
        while thread_ns() - t < ms * 1_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    /// Nested parts count once each: the inner part's time is not also the outer's.
    #[test]
    fn nested_parts_count_once() {
        let (before, _) = snapshot();
        measure(Part::Rpc, || {
            spin(30);
            measure(Part::Signatures, || spin(30));
            spin(30);
        });
        let (after, _) = snapshot();
        let rpc = after[Part::Rpc as usize] - before[Part::Rpc as usize];
        let sigs = after[Part::Signatures as usize] - before[Part::Signatures as usize];
        // Other tests may add signature time concurrently; RPC time is only this test's.
        assert!((60_000_000..90_000_000).contains(&rpc), "rpc {rpc}");
        assert!(sigs >= 25_000_000, "signatures {sigs}");
    }
}
