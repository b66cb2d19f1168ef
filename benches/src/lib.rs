//! Shared pieces of the AIVM benchmarks: timing, workloads and adversarial modules.

/// The allocator of the `aivm` binary (node/src/main.rs), so the benchmarks measure what the
/// node runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod adversarial;
pub mod operators;
pub mod timing;
pub mod workloads;
