//! Typed errors. Every failure a contract can cause is one of these, never a panic.

use crate::tensor::TensorError;
use thiserror::Error;

/// Why a module was refused at deploy time.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValidationError {
    #[error("module is {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed wasm: {0}")]
    Malformed(String),
    #[error("import {module}::{name} is not allowed (only the \"aivm\" namespace is)")]
    ForbiddenImport { module: String, name: String },
    #[error("unknown host function aivm::{0}")]
    UnknownImport(String),
    #[error("module must export a memory named \"memory\"")]
    MissingMemory,
    #[error("module exports no entry point (a function of type [] -> [])")]
    NoEntryPoints,
    #[error("{what} count {count} exceeds limit {limit}")]
    Limit { what: &'static str, count: u64, limit: u64 },
    #[error("feature not allowed: {0}")]
    Feature(String),
}

/// Misuse of the host ABI by a contract. Each one traps the call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HostError {
    #[error("guest memory access out of bounds: ptr {ptr} len {len}")]
    OutOfBounds { ptr: u32, len: u32 },
    #[error("{what} is {len} bytes, limit {limit}")]
    TooLong { what: &'static str, len: u32, limit: u32 },
    #[error("contract has no exported memory")]
    NoMemory,
    #[error("no result to read")]
    NoResult,
    #[error("tensor error: {0}")]
    Tensor(#[from] TensorError),
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error("return data already set")]
    ReturnTwice,
    #[error("{what}: a call may make at most {max_count} totalling {max_bytes} bytes")]
    CallLimit { what: &'static str, max_count: usize, max_bytes: usize },
    /// The tensor backend failed (classified as [`VmError::Backend`], never a contract outcome).
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
}

/// Why a call failed. The call's state changes and events are always discarded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VmError {
    #[error("invalid module: {0}")]
    Validation(#[from] ValidationError),
    #[error("compilation failed: {0}")]
    Compile(String),
    #[error("out of gas")]
    OutOfGas,
    #[error("entry point {0:?} not found or not of type [] -> []")]
    NoSuchEntry(String),
    /// `instantiate` runs once, inside the deploy that installs the contract (so nobody can
    /// initialise a contract before its deployer); a call naming it is refused.
    #[error("entry point \"instantiate\" runs only when the contract is deployed")]
    InstantiateOnly,
    #[error("contract aborted: {0}")]
    Abort(String),
    #[error("contract reverted: {0}")]
    Revert(String),
    #[error("host call failed: {0}")]
    Host(#[from] HostError),
    #[error("wasm trap: {0}")]
    Trap(String),
    #[error("resource limit: {0}")]
    Resource(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The node's tensor backend (an OpenCL device) failed mid-call. Like [`VmError::Blocked`]
    /// this is about the machine, not the transaction: it must never become a receipt; the
    /// node retries on another backend or stops.
    #[error("tensor backend failed: {0}")]
    Backend(String),
    /// The machine could not run the call now (every pooled instance slot is taken). About the
    /// machine, not the transaction: it never becomes a receipt; the executor retries or
    /// abandons the whole block.
    #[error("no free instance slot: {0}")]
    Busy(String),
    /// A state read hit an unfinished transaction of a parallel block (see
    /// [`crate::host::ReadBlocked`]); the executor re-runs the call, it never reaches a receipt.
    #[error("state read blocked on an unfinished transaction")]
    Blocked,
    /// A query ran past its wall-clock deadline ([`crate::Vm::query`]). Consensus calls have
    /// none; were one ever to see this, it is the machine's doing, never a receipt.
    #[error("the call ran past its wall-clock deadline")]
    Deadline,
}

impl VmError {
    /// A short machine-readable kind, used in the CLI's JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            VmError::Validation(_) => "validation",
            VmError::Compile(_) => "compile",
            VmError::OutOfGas => "out_of_gas",
            VmError::NoSuchEntry(_) => "no_such_entry",
            VmError::InstantiateOnly => "instantiate_only",
            VmError::Abort(_) => "abort",
            VmError::Revert(_) => "revert",
            VmError::Host(_) => "host",
            VmError::Trap(_) => "trap",
            VmError::Resource(_) => "resource",
            VmError::Internal(_) => "internal",
            VmError::Backend(_) => "backend",
            VmError::Blocked => "blocked",
            VmError::Busy(_) => "busy",
            VmError::Deadline => "deadline",
        }
    }

    /// Whether this error is about the machine running the call rather than the call itself
    /// (a device, the instance pool, a broken invariant). Such errors must never decide a
    /// consensus result: they abort the block's execution instead of becoming a receipt.
    pub fn is_machine_fault(&self) -> bool {
        matches!(self, VmError::Backend(_) | VmError::Busy(_) | VmError::Internal(_) | VmError::Deadline)
    }
}
