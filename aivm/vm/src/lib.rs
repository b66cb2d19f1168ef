//! # AIVM
//!
//! A deterministic, gas-metered WebAssembly VM for AI workloads, built on wasmtime.
//!
//! - [`config`]: the one function that builds the deterministic wasmtime `Config`.
//! - [`validate`]: static checks a module must pass before it is deployed.
//! - [`gas`]: the gas schedule (prices derived from measurements, `spec/gas.md`) and the
//!   per-call meter that reports gas by opcode.
//! - [`stack`]: the call-stack limit that depends on the wasm alone (injected before compiling).
//! - [`vm`]: deploy (validate, compile, cache) and call contracts.
//! - [`host`]: the host ABI (`spec/abi.md`) linked into every instance.
//! - [`verify`]: the VERIFY opcodes' primitives (hashes, KL, Merkle, signatures).
//!
//! The VM is the top floor of four crates (ARCHITECTURE.md): `aivm-tensor` (kernels),
//! `aivm-backend` (tensors and where they run), `aivm-model` (inference and its audit), and
//! this one. The lower floors are re-exported under the names they always had here.

/// Where tensor operations run: CPU or OpenCL, bit-identical (`aivm_backend`).
pub use aivm_backend as backend;
/// Tensors as values and their validated operations (`aivm_backend::tensor`).
pub use aivm_backend::tensor;
/// Models, inference, commitments and receipt audits (`aivm_model`).
pub use aivm_model as model;
/// TEE attestations: formats, the chain's policy, offline verification (`aivm_tee`).
pub use aivm_tee as tee;
/// The kernels at the bottom (`aivm_tensor`).
pub use aivm_tensor as kernels;

pub mod cache;
pub mod config;
pub mod deadline;
pub mod error;
pub mod gas;
pub mod host;
pub mod limiter;
pub mod slots;
pub mod stack;
pub mod state;
pub mod validate;
pub mod verify;
pub mod vm;

pub use config::Limits;
pub use error::{HostError, ValidationError, VmError};
pub use gas::{GasReport, GasSchedule};
pub use host::{
    contract_job_id, CallContext, Event, JobResult, MarketAction, MarketQuote, ReadBlocked, StateView, WriteSet, MAX_JOB_PROMPT, MAX_MARKET_ACTIONS,
};
pub use state::MemState;
pub use vm::{deploy_price, CallOutcome, CallRequest, Contract, Vm, INSTANTIATE_ENTRY};
/// The compiler's optimisation level ([`Vm::with_opt_level`], for tests).
pub use wasmtime::OptLevel;
