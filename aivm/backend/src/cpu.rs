//! The CPU backend: the reference kernels (`tensor::ops`, `tensor::matmul`, `model::gemm`),
//! with the fastest SIMD path this CPU has.

use super::{Backend, BackendError, BackendKind, Elems, Weights};
use crate::tensor::ops::{self, NormKind};
use aivm_tensor::gemm::{gemm, Packed};
use aivm_tensor::matmul::{matmul_i8_on, SimdPath};

/// Kernels on this CPU: `path` for the int8 products, `threads` for the inference GEMMs.
#[derive(Clone, Copy, Debug)]
pub struct CpuBackend {
    pub path: SimdPath,
    pub threads: usize,
}

impl CpuBackend {
    /// One thread, the best path (VNNI, else whatever the CPU has): what the plain
    /// `tensor::ops` functions and the VM use.
    pub const SERIAL: CpuBackend = CpuBackend { path: SimdPath::Avx512Vnni, threads: 1 };

    /// The best path with `threads` GEMM threads (0 = all available).
    pub fn with_threads(threads: usize) -> Self {
        let threads = if threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { threads };
        Self { path: SimdPath::detect(), threads }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::with_threads(0)
    }
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn host_threads(&self) -> usize {
        self.threads
    }

    fn infallible(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let path = if SimdPath::available().contains(&self.path) { self.path } else { SimdPath::detect() };
        format!("cpu ({path:?}, {} threads)", self.threads)
    }

    fn matmul(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, BackendError> {
        matmul_i8_on(self.path, a, b, m, k, n).map_err(|e| BackendError::Config(e.to_string()))
    }

    fn prepare(&self, w: &[i8], n: usize, k: usize) -> Result<Weights, BackendError> {
        Ok(Weights { n, k, owner: BackendKind::Cpu, inner: Box::new(Packed::resident(w, n, k)) })
    }

    fn gemm(&self, x: &[i8], m: usize, w: &Weights, y: &mut [i32]) -> Result<(), BackendError> {
        gemm(x, m, w.get::<Packed>(BackendKind::Cpu)?, y, self.path, self.threads);
        Ok(())
    }

    fn quantize(&self, x: &[i32], scale_q16: i32) -> Result<Vec<i8>, BackendError> {
        Ok(ops::cpu::quantize(x, scale_q16))
    }

    fn dequantize(&self, x: Elems<'_>, scale_q16: i32) -> Result<Vec<i32>, BackendError> {
        Ok(ops::cpu::dequantize(x, scale_q16))
    }

    fn norm(&self, x: &[i32], row: usize, kind: NormKind, eps_q16: i32) -> Result<Vec<i32>, BackendError> {
        Ok(ops::cpu::norm(x, row, kind, eps_q16))
    }

    fn softmax(&self, x: &[i32], row: usize) -> Result<Vec<i32>, BackendError> {
        Ok(ops::cpu::softmax(x, row))
    }

    fn kl_log_ratios(&self, p: &[i32], q: &[i32]) -> Result<Vec<i64>, BackendError> {
        Ok(aivm_tensor::kl::log_ratios(p, q))
    }
}
