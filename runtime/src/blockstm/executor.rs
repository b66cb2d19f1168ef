//! Running a block: the Block-STM worker loop, and the sequential executor that is its
//! test oracle, its benchmark baseline, and the path for small blocks.

use crate::blockstm::mv_memory::{Hasher, MvMemory};
use crate::blockstm::profile::{timed, Step};
use crate::blockstm::scheduler::{Scheduler, Task};
use crate::blockstm::types::{Storage, TxVm, Version};
use crate::blockstm::view::{MvView, SeqView};
use parking_lot::Mutex;
use std::collections::HashMap;

/// A block's result: per-transaction outputs in block order and the final writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutput<K, O, V> {
    pub outputs: Vec<O>,
    /// Every key written by the block with its final value, sorted by key.
    pub writes: Vec<(K, V)>,
}

/// How much speculative work a parallel run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecStats {
    pub executions: usize,
    pub validations: usize,
    pub aborts: usize,
    pub dependency_waits: usize,
}

/// Execute in order, one transaction after another.
pub fn execute_sequential<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>>(vm: &Vm, txs: &[Vm::Tx], storage: &S) -> BlockOutput<Vm::Key, Vm::Output, Vm::Value> {
    let mut state: HashMap<Vm::Key, Vm::Value, Hasher> = HashMap::with_hasher(Hasher::new());
    let mut outputs = Vec::with_capacity(txs.len());
    for tx in txs {
        let mut view = SeqView { writes: &state, storage };
        // A sequential view never reports a dependency.
        let Ok((out, writes)) = timed(Step::Execute, || vm.execute(tx, &mut view)) else { unreachable!("sequential reads cannot block") };
        outputs.push(out);
        state.extend(writes);
    }
    let mut writes: Vec<_> = state.into_iter().collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    BlockOutput { outputs, writes }
}

/// What [`execute_parallel`] returns.
pub type ParallelOutput<Vm> = (BlockOutput<<Vm as TxVm>::Key, <Vm as TxVm>::Output, <Vm as TxVm>::Value>, ExecStats);

/// Execute with Block-STM on `threads` worker threads. The result equals
/// [`execute_sequential`]'s for every deterministic VM.
pub fn execute_parallel<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>>(vm: &Vm, txs: &[Vm::Tx], storage: &S, threads: usize) -> ParallelOutput<Vm> {
    let n = txs.len();
    let mv = MvMemory::new(n);
    let scheduler = Scheduler::new(n);
    let outputs: Vec<Mutex<Option<Vm::Output>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let worker = Worker { vm, txs, storage, mv: &mv, scheduler: &scheduler, outputs: &outputs };
    let mut stats = ExecStats::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(|| crate::cpu::measure(crate::cpu::Part::Execution, || worker.run()))).collect();
        for h in handles {
            // A worker panics only on a bug (a poisoned invariant); re-raise it here.
            let c = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            stats.executions += c.executions;
            stats.validations += c.validations;
            stats.aborts += c.aborts;
            stats.dependency_waits += c.dependency_waits;
        }
    });
    let outputs = outputs
        .into_iter()
        .map(|o| o.into_inner())
        .map(|o| o.unwrap_or_else(|| unreachable!("every transaction executes before the scheduler is done")))
        .collect();
    let mut writes = mv.into_final_writes();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    (BlockOutput { outputs, writes }, stats)
}

struct Worker<'a, Vm: TxVm, S> {
    vm: &'a Vm,
    txs: &'a [Vm::Tx],
    storage: &'a S,
    mv: &'a MvMemory<Vm::Key, Vm::Value>,
    scheduler: &'a Scheduler,
    outputs: &'a [Mutex<Option<Vm::Output>>],
}

impl<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>> Worker<'_, Vm, S> {
    /// Work until the block is done; returns this thread's counts (kept local: shared
    /// counters would bounce a cache line between cores on every task).
    fn run(&self) -> ExecStats {
        let mut stats = ExecStats::default();
        let mut task: Option<Task> = None;
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execution(v)) => self.try_execute(v, &mut stats),
                Some(Task::Validation(v)) => self.needs_reexecution(v, &mut stats),
                None => {
                    let t = timed(Step::Schedule, || self.scheduler.next_task());
                    if t.is_none() {
                        timed(Step::Idle, std::thread::yield_now);
                    }
                    t
                }
            };
        }
        stats
    }

    fn try_execute(&self, v: Version, stats: &mut ExecStats) -> Option<Task> {
        loop {
            stats.executions += 1;
            let mut view = MvView { tx_idx: v.tx_idx, mv: self.mv, storage: self.storage, reads: Vec::with_capacity(8) };
            match timed(Step::Execute, || self.vm.execute(&self.txs[v.tx_idx], &mut view)) {
                Err(e) => {
                    stats.dependency_waits += 1;
                    if timed(Step::Schedule, || self.scheduler.add_dependency(v.tx_idx, e.blocking)) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: read again.
                }
                Ok((out, writes)) => {
                    *self.outputs[v.tx_idx].lock() = Some(out);
                    let wrote_new = timed(Step::Record, || self.mv.record(v, view.reads, writes));
                    return timed(Step::Schedule, || self.scheduler.finish_execution(v, wrote_new));
                }
            }
        }
    }

    fn needs_reexecution(&self, v: Version, stats: &mut ExecStats) -> Option<Task> {
        stats.validations += 1;
        let valid = timed(Step::Validate, || self.mv.validate_read_set(v.tx_idx));
        let aborted = !valid && timed(Step::Schedule, || self.scheduler.try_validation_abort(v));
        if aborted {
            stats.aborts += 1;
            timed(Step::Record, || self.mv.convert_writes_to_estimates(v.tx_idx));
        }
        timed(Step::Schedule, || self.scheduler.finish_validation(v.tx_idx, aborted))
    }
}
