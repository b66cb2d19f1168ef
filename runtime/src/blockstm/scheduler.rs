//! The collaborative scheduler of Block-STM: threads take execution and validation tasks
//! from two shared atomic indices, lowest transaction first.
//!
//! Transaction status (per incarnation):
//!
//! ```text
//!   ReadyToExecute(i) ──try_incarnate──▶ Executing(i) ──finish_execution──▶ Executed(i)
//!         ▲                                   │                                 │
//!         │                         add_dependency                    try_validation_abort
//!         │                                   ▼                                 ▼
//!         └──────── set_ready_status ──── Aborting(i) ◀───────────────────────────┘
//!                  (incarnation i+1)
//! ```

use crate::blockstm::types::{Incarnation, TxIdx, Version};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

#[derive(Debug)]
struct TxState {
    incarnation: Incarnation,
    status: Status,
}

/// Work for a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Execution(Version),
    Validation(Version),
}

pub struct Scheduler {
    block_size: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    decrease_cnt: AtomicUsize,
    num_active_tasks: AtomicUsize,
    done_marker: AtomicBool,
    dependencies: Vec<Mutex<Vec<TxIdx>>>,
    states: Vec<Mutex<TxState>>,
}

impl Scheduler {
    pub fn new(block_size: usize) -> Self {
        Self {
            block_size,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active_tasks: AtomicUsize::new(0),
            done_marker: AtomicBool::new(block_size == 0),
            dependencies: (0..block_size).map(|_| Mutex::new(Vec::new())).collect(),
            states: (0..block_size).map(|_| Mutex::new(TxState { incarnation: 0, status: Status::ReadyToExecute })).collect(),
        }
    }

    pub fn done(&self) -> bool {
        self.done_marker.load(SeqCst)
    }

    fn decrease_execution_idx(&self, target: TxIdx) {
        self.execution_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    fn decrease_validation_idx(&self, target: TxIdx) {
        self.validation_idx.fetch_min(target, SeqCst);
        self.decrease_cnt.fetch_add(1, SeqCst);
    }

    /// Done when both indices are past the block, no task is in flight, and no index was
    /// decreased while we looked.
    fn check_done(&self) {
        let observed = self.decrease_cnt.load(SeqCst);
        if self.execution_idx.load(SeqCst).min(self.validation_idx.load(SeqCst)) >= self.block_size
            && self.num_active_tasks.load(SeqCst) == 0
            && observed == self.decrease_cnt.load(SeqCst)
        {
            self.done_marker.store(true, SeqCst);
        }
    }

    /// ReadyToExecute → Executing, if it is ready.
    fn try_incarnate(&self, tx: TxIdx) -> Option<Version> {
        if tx < self.block_size {
            let mut s = self.states[tx].lock();
            if s.status == Status::ReadyToExecute {
                s.status = Status::Executing;
                return Some(Version { tx_idx: tx, incarnation: s.incarnation });
            }
        }
        None
    }

    fn next_version_to_execute(&self) -> Option<Version> {
        if self.execution_idx.load(SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let tx = self.execution_idx.fetch_add(1, SeqCst);
        let v = self.try_incarnate(tx);
        if v.is_none() {
            self.num_active_tasks.fetch_sub(1, SeqCst);
        }
        v
    }

    fn next_version_to_validate(&self) -> Option<Version> {
        if self.validation_idx.load(SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, SeqCst);
        let tx = self.validation_idx.fetch_add(1, SeqCst);
        if tx < self.block_size {
            let s = self.states[tx].lock();
            if s.status == Status::Executed {
                return Some(Version { tx_idx: tx, incarnation: s.incarnation });
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    /// The next task, preferring validation of lower transactions.
    pub fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(SeqCst) < self.execution_idx.load(SeqCst) {
            self.next_version_to_validate().map(Task::Validation)
        } else {
            self.next_version_to_execute().map(Task::Execution)
        }
    }

    /// `tx` read an ESTIMATE of `blocking`. Returns false if `blocking` has meanwhile
    /// finished executing (then `tx` should simply re-read).
    pub fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        let mut deps = self.dependencies[blocking].lock();
        if self.states[blocking].lock().status == Status::Executed {
            return false;
        }
        {
            let mut s = self.states[tx].lock();
            debug_assert_eq!(s.status, Status::Executing);
            s.status = Status::Aborting;
        }
        deps.push(tx);
        drop(deps);
        self.num_active_tasks.fetch_sub(1, SeqCst);
        true
    }

    fn set_ready_status(&self, tx: TxIdx) {
        let mut s = self.states[tx].lock();
        debug_assert_eq!(s.status, Status::Aborting);
        s.incarnation += 1;
        s.status = Status::ReadyToExecute;
    }

    /// Executing → Executed; wake dependents; maybe hand back a validation task.
    pub fn finish_execution(&self, v: Version, wrote_new_location: bool) -> Option<Task> {
        {
            let mut s = self.states[v.tx_idx].lock();
            debug_assert_eq!((s.status, s.incarnation), (Status::Executing, v.incarnation));
            s.status = Status::Executed;
        }
        let deps = std::mem::take(&mut *self.dependencies[v.tx_idx].lock());
        if let Some(&min) = deps.iter().min() {
            for &d in &deps {
                self.set_ready_status(d);
            }
            self.decrease_execution_idx(min);
        }
        if self.validation_idx.load(SeqCst) > v.tx_idx {
            if wrote_new_location {
                // Later transactions may have read around the new key: revalidate them all.
                self.decrease_validation_idx(v.tx_idx);
            } else {
                return Some(Task::Validation(v));
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }

    /// Executed(i) → Aborting(i), once per incarnation; true if this call did it.
    pub fn try_validation_abort(&self, v: Version) -> bool {
        let mut s = self.states[v.tx_idx].lock();
        if s.incarnation == v.incarnation && s.status == Status::Executed {
            s.status = Status::Aborting;
            true
        } else {
            false
        }
    }

    /// After validating `v`; if it was aborted, schedule its next incarnation.
    pub fn finish_validation(&self, tx: TxIdx, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(SeqCst) > tx {
                if let Some(v) = self.try_incarnate(tx) {
                    return Some(Task::Execution(v));
                }
            }
        }
        self.num_active_tasks.fetch_sub(1, SeqCst);
        None
    }
}
