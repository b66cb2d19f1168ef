//! Shared pieces of the AIVM benchmarks: timing, workloads and adversarial modules.

pub mod adversarial;
pub mod timing;
pub mod workloads;
