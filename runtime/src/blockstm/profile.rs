//! Where Block-STM's time goes, per part of the algorithm: its fixed cost per transaction
//! against sequential execution (`blockstm --profile`, BENCHMARKS.md). Off unless a benchmark
//! turns it on; when on, each timed step costs two clock reads, so the totals are an upper
//! bound on the small steps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A timed step. `Execute` includes the reads made during it (`MvRead`, `StorageRead`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Step {
    /// Running the transaction in the VM, its reads included.
    Execute = 0,
    /// Multi-version memory lookups and read-set recording (inside `Execute`).
    MvRead,
    /// Reads that fell through to storage (inside `Execute`).
    StorageRead,
    /// Recording an incarnation's writes and read set.
    Record,
    /// Validating read sets.
    Validate,
    /// The scheduler: taking tasks, finishing them, dependencies.
    Schedule,
    /// Waiting for work (no task ready).
    Idle,
}

pub const STEPS: [Step; 7] = [Step::Execute, Step::MvRead, Step::StorageRead, Step::Record, Step::Validate, Step::Schedule, Step::Idle];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Execute => "execute",
            Step::MvRead => "mv_read",
            Step::StorageRead => "storage_read",
            Step::Record => "record",
            Step::Validate => "validate",
            Step::Schedule => "schedule",
            Step::Idle => "idle",
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; STEPS.len()] = [const { AtomicU64::new(0) }; STEPS.len()];

/// Turn timing on or off, and clear the totals.
pub fn enable(on: bool) {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
    ON.store(on, Ordering::Relaxed);
}

/// Nanoseconds per step since [`enable`] (summed over threads).
pub fn totals() -> [(Step, u64); STEPS.len()] {
    std::array::from_fn(|i| (STEPS[i], NANOS[i].load(Ordering::Relaxed)))
}

/// Run `f`, timed as `step` when profiling is on.
#[inline]
pub(crate) fn timed<R>(step: Step, f: impl FnOnce() -> R) -> R {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let t = Instant::now();
    let r = f();
    NANOS[step as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}
