//! # AIVM
//!
//! A deterministic, gas-metered WebAssembly VM for AI workloads, built on wasmtime.
//!
//! - [`config`]: the one function that builds the deterministic wasmtime `Config`.
//! - [`validate`]: static checks a module must pass before it is deployed.
//! - [`gas`]: the gas schedule (prices derived from measurements, `spec/gas.md`) and the
//!   per-call meter that reports gas by opcode.
//! - [`vm`]: deploy (validate, compile, cache) and call contracts.
//! - [`host`]: the host ABI (`spec/abi.md`) linked into every instance.
//! - [`tensor`] and [`verify`]: the opcode kernels (`spec/opcodes.md`), pure functions.
//! - [`backend`]: where the kernels run (CPU or OpenCL), bit-identical either way.

pub mod backend;
pub mod model;
pub mod tensor;
pub mod verify;
pub mod cache;
pub mod config;
pub mod deadline;
pub mod error;
pub mod gas;
pub mod host;
pub mod slots;
pub mod state;
pub mod validate;
pub mod vm;

pub use config::Limits;
pub use error::{HostError, ValidationError, VmError};
pub use gas::{GasReport, GasSchedule};
pub use host::{CallContext, Event, ReadBlocked, StateView, WriteSet};
pub use state::MemState;
pub use vm::{CallOutcome, CallRequest, Contract, Vm, INSTANTIATE_ENTRY};
