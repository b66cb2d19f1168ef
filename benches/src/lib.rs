//! Shared pieces of the AIVM benchmarks: timing and workloads.

pub mod timing;
pub mod workloads;
