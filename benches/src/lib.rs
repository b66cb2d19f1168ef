//! Shared pieces of the AIVM benchmarks: timing, workloads and adversarial modules.

pub mod adversarial;
pub mod operators;
pub mod timing;
pub mod workloads;
