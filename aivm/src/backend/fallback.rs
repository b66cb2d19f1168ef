//! `AIVM_BACKEND_FALLBACK=cpu`: a device backend whose failures are retried on the CPU.
//!
//! Both give the same bits, so falling back changes only speed. Weights the device could not
//! take (out of memory) are prepared on the CPU instead and stay there.

use super::{Backend, BackendError, BackendKind, CpuBackend, Elems, Weights};
use crate::tensor::ops::NormKind;

pub struct Fallback<B> {
    primary: B,
    cpu: CpuBackend,
}

impl<B: Backend> Fallback<B> {
    pub fn new(primary: B, cpu: CpuBackend) -> Self {
        Self { primary, cpu }
    }

    fn run<T>(&self, op: &str, f: impl Fn(&dyn Backend) -> Result<T, BackendError>) -> Result<T, BackendError> {
        f(&self.primary).or_else(|e| {
            eprintln!("aivm: {op} failed on {} ({e}); running it on the CPU", self.primary.describe());
            f(&self.cpu)
        })
    }
}

impl<B: Backend> Backend for Fallback<B> {
    fn kind(&self) -> BackendKind {
        self.primary.kind()
    }

    fn describe(&self) -> String {
        format!("{} (CPU fallback)", self.primary.describe())
    }

    fn matmul(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, BackendError> {
        self.run("matmul", |be| be.matmul(a, b, m, k, n))
    }

    fn prepare(&self, w: &[i8], n: usize, k: usize) -> Result<Weights, BackendError> {
        self.run("weight upload", |be| be.prepare(w, n, k))
    }

    fn gemm(&self, x: &[i8], m: usize, w: &Weights, y: &mut [i32]) -> Result<(), BackendError> {
        if w.owner == BackendKind::Cpu {
            return self.cpu.gemm(x, m, w, y);
        }
        // Device weights have no CPU copy here: a device failure mid-run is reported.
        self.primary.gemm(x, m, w, y)
    }

    fn quantize(&self, x: &[i32], scale_q16: i32) -> Result<Vec<i8>, BackendError> {
        self.run("quantize", |be| be.quantize(x, scale_q16))
    }

    fn dequantize(&self, x: Elems<'_>, scale_q16: i32) -> Result<Vec<i32>, BackendError> {
        self.run("dequantize", |be| be.dequantize(x, scale_q16))
    }

    fn norm(&self, x: &[i32], row: usize, kind: NormKind, eps_q16: i32) -> Result<Vec<i32>, BackendError> {
        self.run("norm", |be| be.norm(x, row, kind, eps_q16))
    }

    fn softmax(&self, x: &[i32], row: usize) -> Result<Vec<i32>, BackendError> {
        self.run("softmax", |be| be.softmax(x, row))
    }

    fn kl_log_ratios(&self, p: &[i32], q: &[i32]) -> Result<Vec<i64>, BackendError> {
        self.run("kl", |be| be.kl_log_ratios(p, q))
    }
}
