//! # aivm-backend: where tensor kernels run (the CPU, or an OpenCL device), and tensors
//!
//! The second floor: built on `aivm-tensor`'s kernels, used by `aivm-model` and the VM.
//! [`tensor`] holds tensors as values and the validated operations (`*_on`) that run on a
//! chosen [`Backend`].
//!
//! Every backend computes exactly the integer functions written in `spec/opcodes.md` and
//! `spec/inference.md`, so the choice changes speed, never a bit of a result: a validator on a
//! GPU and one on a laptop agree on every state root. The cross-backend property tests
//! (`opencl::tests`, `aivm/vm/tests/backends.rs`) hold the OpenCL kernels to that.
//!
//! Inputs reach a backend already validated (shapes, dtypes, scales; see `tensor::ops`), so a
//! backend only fails for reasons of its own: no device, a kernel that does not build, device
//! memory exhausted. Those are node faults, never contract outcomes ([`BackendError`]).
//!
//! Selection ([`BackendConfig`]): `AIVM_BACKEND=cpu|opencl` (default `cpu`),
//! `AIVM_OPENCL_DEVICE=<platform>:<device>` (default: the first GPU, else the first device),
//! `AIVM_OPENCL_MEM_LIMIT=<bytes>` (cap on one device buffer), `AIVM_OPENCL_GEMM=auto|rows|tiled`
//! (the many-row GEMM kernel; auto: tiled on GPUs, rows on CPU devices), and
//! `AIVM_BACKEND_FALLBACK=cpu` to run on the CPU when the OpenCL backend cannot.

pub mod cpu;
mod fallback;
pub mod opencl;
pub mod tensor;

pub use cpu::CpuBackend;
pub use fallback::Fallback;
pub use opencl::{list_devices, DeviceInfo, GemmKernel, OpenClBackend, OpenClConfig};

use crate::tensor::ops::NormKind;
use std::any::Any;
use std::sync::Arc;
use thiserror::Error;

/// Why a backend could not run an operation. None of these depends on the contract or the
/// model: they describe the machine, and a node reports them instead of a result.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    #[error("no OpenCL platform found ({0}); install an OpenCL driver (e.g. Debian's pocl-opencl-icd) or use AIVM_BACKEND=cpu")]
    NoPlatform(String),
    #[error("OpenCL device {0} not found; `aivm devices` lists what there is")]
    NoDevice(String),
    #[error("OpenCL kernels failed to build on {device}: {log}")]
    Build { device: String, log: String },
    #[error("device out of memory: {0}")]
    OutOfMemory(String),
    #[error("OpenCL error: {0}")]
    Device(String),
    #[error("backend configuration: {0}")]
    Config(String),
    #[error("weights were prepared by the {0} backend, not this one")]
    ForeignWeights(&'static str),
}

/// The backends there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    OpenCl,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::OpenCl => "opencl",
        }
    }

    pub fn parse(s: &str) -> Result<Self, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::Cpu),
            "opencl" | "ocl" | "gpu" => Ok(BackendKind::OpenCl),
            other => Err(BackendError::Config(format!("unknown backend {other:?} (expected cpu or opencl)"))),
        }
    }
}

/// Elements TENSOR_DEQUANTIZE accepts.
#[derive(Clone, Copy, Debug)]
pub enum Elems<'a> {
    I8(&'a [i8]),
    I32(&'a [i32]),
}

/// A weight matrix `W [n×k]` prepared by one backend for [`Backend::gemm`] (packed panels on
/// the CPU, a device buffer on OpenCL).
pub struct Weights {
    pub n: usize,
    pub k: usize,
    pub(crate) owner: BackendKind,
    pub(crate) inner: Box<dyn Any + Send + Sync>,
}

impl Weights {
    /// The backend-specific form, if `owner` prepared it.
    pub(crate) fn get<T: 'static>(&self, owner: BackendKind) -> Result<&T, BackendError> {
        if self.owner != owner {
            return Err(BackendError::ForeignWeights(self.owner.name()));
        }
        self.inner.downcast_ref::<T>().ok_or(BackendError::ForeignWeights(self.owner.name()))
    }
}

/// The kernels one backend provides. Each must return exactly the bits of [`CpuBackend`].
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// One line naming the backend and device, for logs and `--json` reports.
    fn describe(&self) -> String;

    /// Whether every operation always succeeds (the CPU, or a device with CPU fallback).
    fn infallible(&self) -> bool {
        false
    }

    /// Host threads the model's work outside the weight GEMMs (attention) may use. Speed only:
    /// results never depend on it.
    fn host_threads(&self) -> usize {
        1
    }

    /// TENSOR_MATMUL: `A [m×k] · B [k×n]` in i32 (dimensions checked by `check_dims`).
    fn matmul(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, BackendError>;

    /// Prepare `W [n×k]` (row-major, `k ≤ MAX_K`) for repeated [`Backend::gemm`] calls.
    fn prepare(&self, w: &[i8], n: usize, k: usize) -> Result<Weights, BackendError>;

    /// The inference GEMM `Y [m×n] = X [m×k] · Wᵀ`. Overwrites every element of `y` (the
    /// engine reuses its output buffers across layers without clearing them).
    fn gemm(&self, x: &[i8], m: usize, w: &Weights, y: &mut [i32]) -> Result<(), BackendError>;

    /// TENSOR_QUANTIZE of Q16 values by a positive Q16 scale.
    fn quantize(&self, x: &[i32], scale_q16: i32) -> Result<Vec<i8>, BackendError>;

    /// TENSOR_DEQUANTIZE by a positive Q16 scale.
    fn dequantize(&self, x: Elems<'_>, scale_q16: i32) -> Result<Vec<i32>, BackendError>;

    /// TENSOR_NORM of each `row`-long row (eps ≥ 0).
    fn norm(&self, x: &[i32], row: usize, kind: NormKind, eps_q16: i32) -> Result<Vec<i32>, BackendError>;

    /// TENSOR_SOFTMAX of each `row`-long row.
    fn softmax(&self, x: &[i32], row: usize) -> Result<Vec<i32>, BackendError>;

    /// KL_DIVERGE's per-element log ratios `log2_q30(p_i) − log2_q30(q_i)` (0 where `p_i = 0`).
    /// The caller has checked the inputs are non-negative and that `q_i > 0` wherever `p_i > 0`.
    fn kl_log_ratios(&self, p: &[i32], q: &[i32]) -> Result<Vec<i64>, BackendError>;
}

/// How a node picks its backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    pub kind: BackendKind,
    pub opencl: OpenClConfig,
    /// Run on the CPU when the chosen device cannot (no platform, build failure, out of memory).
    pub fallback_to_cpu: bool,
    /// CPU threads for the inference GEMMs (0 = all available).
    pub threads: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self { kind: BackendKind::Cpu, opencl: OpenClConfig::default(), fallback_to_cpu: false, threads: 0 }
    }
}

impl BackendConfig {
    /// The configuration the environment asks for (see the module docs).
    pub fn from_env() -> Result<Self, BackendError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`BackendConfig::from_env`] over any variable source (tests use a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, BackendError> {
        let mut c = Self::default();
        if let Some(v) = var("AIVM_BACKEND").filter(|v| !v.trim().is_empty()) {
            c.kind = BackendKind::parse(&v)?;
        }
        if let Some(v) = var("AIVM_OPENCL_DEVICE").filter(|v| !v.trim().is_empty()) {
            c.opencl.device = Some(opencl::DeviceSelector::parse(&v)?);
        }
        if let Some(v) = var("AIVM_OPENCL_MEM_LIMIT").filter(|v| !v.trim().is_empty()) {
            let n = v.trim().parse::<u64>().map_err(|_| BackendError::Config(format!("AIVM_OPENCL_MEM_LIMIT={v:?} is not a byte count")))?;
            c.opencl.mem_limit = Some(n);
        }
        if let Some(v) = var("AIVM_OPENCL_GEMM").filter(|v| !v.trim().is_empty()) {
            c.opencl.gemm = GemmKernel::parse(&v)?;
        }
        if let Some(v) = var("AIVM_BACKEND_FALLBACK").filter(|v| !v.trim().is_empty()) {
            c.fallback_to_cpu = match v.trim() {
                "cpu" | "1" | "yes" => true,
                "none" | "0" | "no" => false,
                other => return Err(BackendError::Config(format!("AIVM_BACKEND_FALLBACK={other:?} (expected cpu or none)"))),
            };
        }
        Ok(c)
    }

    /// Open the configured backend. With `fallback_to_cpu`, an OpenCL backend that cannot start
    /// gives the CPU one (the reason goes to stderr), and one that starts is wrapped so that later
    /// device failures also fall back.
    pub fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        let cpu = CpuBackend::with_threads(self.threads);
        match self.kind {
            BackendKind::Cpu => Ok(Arc::new(cpu)),
            BackendKind::OpenCl => match OpenClBackend::open(&self.opencl) {
                Ok(ocl) if self.fallback_to_cpu => Ok(Arc::new(Fallback::new(Arc::new(ocl), cpu))),
                Ok(ocl) => Ok(Arc::new(ocl)),
                Err(e) if self.fallback_to_cpu => {
                    eprintln!("aivm: OpenCL backend unavailable ({e}); falling back to the CPU as configured");
                    Ok(Arc::new(cpu))
                }
                Err(e) => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<BackendConfig, BackendError> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BackendConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn environment_selects_the_backend() {
        assert_eq!(cfg(&[]).unwrap().kind, BackendKind::Cpu);
        let c = cfg(&[
            ("AIVM_BACKEND", "OpenCL"),
            ("AIVM_OPENCL_DEVICE", "0:1"),
            ("AIVM_OPENCL_MEM_LIMIT", "1024"),
            ("AIVM_OPENCL_GEMM", "tiled"),
            ("AIVM_BACKEND_FALLBACK", "cpu"),
        ])
        .unwrap();
        assert_eq!(c.opencl.gemm, GemmKernel::Tiled);
        assert_eq!(c.kind, BackendKind::OpenCl);
        assert_eq!(c.opencl.device, Some(opencl::DeviceSelector { platform: 0, device: 1 }));
        assert_eq!(c.opencl.mem_limit, Some(1024));
        assert!(c.fallback_to_cpu);
        assert!(matches!(cfg(&[("AIVM_BACKEND", "tpu")]), Err(BackendError::Config(_))));
        assert!(matches!(cfg(&[("AIVM_OPENCL_DEVICE", "x")]), Err(BackendError::Config(_))));
        assert!(matches!(cfg(&[("AIVM_OPENCL_MEM_LIMIT", "-1")]), Err(BackendError::Config(_))));
        assert!(matches!(cfg(&[("AIVM_BACKEND_FALLBACK", "maybe")]), Err(BackendError::Config(_))));
        assert!(matches!(cfg(&[("AIVM_OPENCL_GEMM", "fast")]), Err(BackendError::Config(_))));
    }

    #[test]
    fn weights_refuse_a_foreign_backend() {
        let cpu = CpuBackend::with_threads(1);
        let w = cpu.prepare(&[1, 2, 3, 4], 2, 2).unwrap();
        assert!(matches!(w.get::<u8>(BackendKind::OpenCl), Err(BackendError::ForeignWeights("cpu"))));
    }
}
