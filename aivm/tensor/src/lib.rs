//! # aivm-tensor: the kernels, at the bottom
//!
//! Pure integer and fixed-point kernels on slices, with the rounding written in
//! `spec/opcodes.md` and `spec/inference.md`, so every CPU path and every backend gives the
//! same bits. Nothing here knows about backends, tensors as values, models or the VM; every
//! other aivm crate builds on this one (see ARCHITECTURE.md).
//!
//! - [`fixed`]: Q16/Q30 fixed-point helpers (exp, log2, rounding division, saturation).
//! - [`matmul`]: int8 × int8 → i32 products on the scalar, AVX2 and AVX-512 VNNI paths.
//! - [`gemm`]: the packed int8 GEMM of inference (weights packed once, activations streamed).
//! - [`rows`]: a few rows against an unpacked weight (a verifier's recomputed decode GEMMs).
//! - [`kl`]: the per-element log ratios of KL_DIVERGE.
//! - [`cpu`]: what this CPU can run, detected once per process.

pub mod cpu;
pub mod fixed;
pub mod gemm;
pub mod kl;
pub mod matmul;
pub mod resident;
pub mod rows;

use thiserror::Error;

/// Why a kernel refused its arguments (checked before any work).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("bad argument: {0}")]
    Argument(String),
}

/// Deterministic pseudo-random int8 data for tests and benchmarks (a 64-bit LCG's top byte;
/// the same bytes on every machine).
pub fn lcg_bytes(seed: u64, len: usize) -> Vec<i8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as i8
        })
        .collect()
}
