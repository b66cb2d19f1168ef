//! A device backend whose failures are retried on the CPU (`AIVM_BACKEND_FALLBACK=cpu`, and
//! always inside the VM: see `Vm::with_backend`).
//!
//! Both give the same bits, so falling back changes only speed. Weights are prepared on both
//! (a GEMM that fails on the device reruns on the CPU copy); weights the device could not take
//! (out of memory) live on the CPU only.

use super::{Backend, BackendError, BackendKind, CpuBackend, Elems, Weights};
use crate::tensor::ops::NormKind;
use std::sync::Arc;

pub struct Fallback {
    primary: Arc<dyn Backend>,
    cpu: CpuBackend,
}

/// One weight matrix on the device and on the CPU.
struct Both {
    device: Weights,
    cpu: Weights,
}

impl Fallback {
    pub fn new(primary: Arc<dyn Backend>, cpu: CpuBackend) -> Self {
        Self { primary, cpu }
    }

    fn run<T>(&self, op: &str, f: impl Fn(&dyn Backend) -> Result<T, BackendError>) -> Result<T, BackendError> {
        f(&*self.primary).or_else(|e| {
            eprintln!("aivm: {op} failed on {} ({e}); running it on the CPU", self.primary.describe());
            f(&self.cpu)
        })
    }
}

impl Backend for Fallback {
    fn kind(&self) -> BackendKind {
        self.primary.kind()
    }

    fn infallible(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{} (CPU fallback)", self.primary.describe())
    }

    fn matmul(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, BackendError> {
        self.run("matmul", |be| be.matmul(a, b, m, k, n))
    }

    fn prepare(&self, w: &[i8], n: usize, k: usize) -> Result<Weights, BackendError> {
        let cpu = self.cpu.prepare(w, n, k)?;
        match self.primary.prepare(w, n, k) {
            Ok(device) => Ok(Weights { n, k, owner: BackendKind::OpenCl, inner: Box::new(Both { device, cpu }) }),
            Err(e) => {
                eprintln!("aivm: weight upload failed on {} ({e}); keeping this matrix on the CPU", self.primary.describe());
                Ok(cpu)
            }
        }
    }

    fn gemm(&self, x: &[i8], m: usize, w: &Weights, y: &mut [i32]) -> Result<(), BackendError> {
        if w.owner == BackendKind::Cpu {
            return self.cpu.gemm(x, m, w, y);
        }
        let both = w.get::<Both>(BackendKind::OpenCl)?;
        self.primary.gemm(x, m, &both.device, y).or_else(|e| {
            eprintln!("aivm: gemm failed on {} ({e}); running it on the CPU", self.primary.describe());
            self.cpu.gemm(x, m, &both.cpu, y)
        })
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
