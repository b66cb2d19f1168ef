//! Running a block: the Block-STM worker loop, and the sequential executor that is its
//! test oracle, its benchmark baseline, and the path for small blocks.

use crate::blockstm::mv_memory::{lock, Hasher, MvMemory};
use crate::blockstm::scheduler::{Scheduler, Task};
use crate::blockstm::types::{Storage, TxVm, Version};
use crate::blockstm::view::{MvView, SeqView};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

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
pub fn execute_sequential<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>>(
    vm: &Vm,
    txs: &[Vm::Tx],
    storage: &S,
) -> BlockOutput<Vm::Key, Vm::Output, Vm::Value> {
    let mut state: HashMap<Vm::Key, Vm::Value, Hasher> = HashMap::with_hasher(Hasher::new());
    let mut outputs = Vec::with_capacity(txs.len());
    for tx in txs {
        let mut view = SeqView { writes: &state, storage };
        // A sequential view never reports a dependency.
        let Ok((out, writes)) = vm.execute(tx, &mut view) else { unreachable!("sequential reads cannot block") };
        outputs.push(out);
        state.extend(writes);
    }
    let mut writes: Vec<_> = state.into_iter().collect();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    BlockOutput { outputs, writes }
}

/// Execute with Block-STM on `threads` worker threads. The result equals
/// [`execute_sequential`]'s for every deterministic VM.
pub fn execute_parallel<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>>(
    vm: &Vm,
    txs: &[Vm::Tx],
    storage: &S,
    threads: usize,
) -> (BlockOutput<Vm::Key, Vm::Output, Vm::Value>, ExecStats) {
    let n = txs.len();
    let mv = MvMemory::new(n);
    let scheduler = Scheduler::new(n);
    let outputs: Vec<Mutex<Option<Vm::Output>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let counters = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
    let worker = Worker { vm, txs, storage, mv: &mv, scheduler: &scheduler, outputs: &outputs, counters: &counters };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| worker.run());
        }
    });
    let outputs = outputs
        .into_iter()
        .map(|o| o.into_inner().unwrap_or_else(|e| e.into_inner()))
        .map(|o| o.unwrap_or_else(|| unreachable!("every transaction executes before the scheduler is done")))
        .collect();
    let mut writes = mv.into_final_writes();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    let [e, v, a, d] = counters.map(AtomicUsize::into_inner);
    (BlockOutput { outputs, writes }, ExecStats { executions: e, validations: v, aborts: a, dependency_waits: d })
}

struct Worker<'a, Vm: TxVm, S> {
    vm: &'a Vm,
    txs: &'a [Vm::Tx],
    storage: &'a S,
    mv: &'a MvMemory<Vm::Key, Vm::Value>,
    scheduler: &'a Scheduler,
    outputs: &'a [Mutex<Option<Vm::Output>>],
    /// executions, validations, aborts, dependency waits
    counters: &'a [AtomicUsize; 4],
}

impl<Vm: TxVm, S: Storage<Vm::Key, Vm::Value>> Worker<'_, Vm, S> {
    fn run(&self) {
        let mut task: Option<Task> = None;
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execution(v)) => self.try_execute(v),
                Some(Task::Validation(v)) => self.needs_reexecution(v),
                None => {
                    let t = self.scheduler.next_task();
                    if t.is_none() {
                        std::thread::yield_now();
                    }
                    t
                }
            };
        }
    }

    fn try_execute(&self, v: Version) -> Option<Task> {
        loop {
            self.counters[0].fetch_add(1, Relaxed);
            let mut view = MvView { tx_idx: v.tx_idx, mv: self.mv, storage: self.storage, reads: Vec::new() };
            match self.vm.execute(&self.txs[v.tx_idx], &mut view) {
                Err(e) => {
                    self.counters[3].fetch_add(1, Relaxed);
                    if self.scheduler.add_dependency(v.tx_idx, e.blocking) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: read again.
                }
                Ok((out, writes)) => {
                    *lock(&self.outputs[v.tx_idx]) = Some(out);
                    let wrote_new = self.mv.record(v, view.reads, writes);
                    return self.scheduler.finish_execution(v, wrote_new);
                }
            }
        }
    }

    fn needs_reexecution(&self, v: Version) -> Option<Task> {
        self.counters[1].fetch_add(1, Relaxed);
        let valid = self.mv.validate_read_set(v.tx_idx);
        let aborted = !valid && self.scheduler.try_validation_abort(v);
        if aborted {
            self.counters[2].fetch_add(1, Relaxed);
            self.mv.convert_writes_to_estimates(v.tx_idx);
        }
        self.scheduler.finish_validation(v.tx_idx, aborted)
    }
}
