//! Block-STM (Gelashvili et al., PPoPP 2023): optimistic parallel execution of a block whose
//! result is always exactly the sequential result.
//!
//! - [`types`]: `TxIdx`, `Incarnation`, `Version`, the [`TxVm`] trait a VM implements.
//! - [`mv_memory`]: the multi-version memory with ESTIMATE markers.
//! - [`scheduler`]: the collaborative scheduler (atomic execution/validation indices).
//! - [`view`]: the state a transaction reads during speculative execution.
//! - [`executor`]: the worker loop and the sequential executor (oracle, baseline, fallback).
//! - [`profile`]: time per step of the algorithm, for the benchmark.
//!
//! The executor is generic over the VM, so tests drive it with mock transactions.

pub mod executor;
pub mod mv_memory;
pub mod profile;
pub mod scheduler;
pub mod types;
pub mod view;

pub use executor::{execute_parallel, execute_sequential, BlockOutput, ExecStats};
pub use types::{Incarnation, ReadError, StateRead, Storage, TxIdx, TxVm, Version};
