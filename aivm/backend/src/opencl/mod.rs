//! The OpenCL backend (crate `ocl`): the kernels of `kernels.cl` on any OpenCL 1.2 device, a
//! GPU through its vendor's driver or a CPU through pocl.
//!
//! Inference weights live on the device (uploaded once by [`Backend::prepare`]); each GEMM
//! sends its int8 activations and reads back the i32 products. The stateless tensor opcodes
//! copy their operands in and the result out on every call. Kernels are integer-only and are
//! held to the CPU's bits by the tests below and `aivm/vm/tests/backends.rs`.

use super::{Backend, BackendError, BackendKind, Elems, Weights};
use crate::tensor::ops::NormKind;
use ocl::core::Status;
use ocl::enums::{DeviceInfo as ClDeviceInfo, DeviceInfoResult};
use ocl::flags::{DeviceType, MemFlags};
use ocl::{Buffer, Context, Device, Kernel, OclPrm, Platform, Program, Queue};

/// The kernels (after the generated constant prelude, see [`source`]).
const KERNELS: &str = include_str!("kernels.cl");

/// The program every device builds: the fixed-point constants and tables of
/// `tensor::fixed`, written out from the Rust values, then `kernels.cl`.
pub fn source() -> String {
    use aivm_tensor::fixed::{EXP2_TABLE, EXP_CUTOFF_Q16, LN2_Q30, LOG2E_Q30, LOG2_TABLE, Q30_ONE};
    let table =
        |name: &str, t: &[i64]| format!("__constant long {name}[{}] = {{{}}};\n", t.len(), t.iter().map(|v| format!("{v}L")).collect::<Vec<_>>().join(", "));
    format!(
        "#define Q30_ONE {Q30_ONE}L\n#define LN2_Q30 {LN2_Q30}L\n#define LOG2E_Q30 {LOG2E_Q30}L\n#define EXP_CUTOFF_Q16 ({EXP_CUTOFF_Q16}L)\n{}{}{KERNELS}",
        table("EXP2_TABLE", &EXP2_TABLE),
        table("LOG2_TABLE", &LOG2_TABLE)
    )
}
/// Output tile side and work-group shape of `gemm_nt` (see kernels.cl).
const TILE: usize = 32;
const GROUP: usize = 8;
/// Below this many rows the GEMM always runs as `gemm_nt_rows` (one work-item per output).
const SMALL_M: usize = 8;

/// Which GEMM kernel runs GEMMs of `SMALL_M` rows or more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmKernel {
    /// `Tiled` on GPUs and accelerators, `Rows` on CPU devices.
    #[default]
    Auto,
    /// `gemm_nt_rows`: a dot product per work-item.
    Rows,
    /// `gemm_nt`: 32×32 tiles staged through local memory.
    Tiled,
}

impl GemmKernel {
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "rows" => Ok(Self::Rows),
            "tiled" => Ok(Self::Tiled),
            other => Err(BackendError::Config(format!("AIVM_OPENCL_GEMM={other:?} (expected auto, rows or tiled)"))),
        }
    }
}
/// Work-items per row of the row kernels (`RL` in kernels.cl).
const ROW_GROUP: usize = 64;
/// Work-group size of the elementwise kernels.
const ELEM_GROUP: usize = 64;

/// Which device to use: indices as `aivm devices` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSelector {
    pub platform: usize,
    pub device: usize,
}

impl DeviceSelector {
    /// `"<platform>:<device>"`, e.g. `0:1`.
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        let bad = || BackendError::Config(format!("OpenCL device {s:?} is not <platform>:<device>, e.g. 0:0"));
        let (p, d) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(Self { platform: p.parse().map_err(|_| bad())?, device: d.parse().map_err(|_| bad())? })
    }
}

impl std::fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.platform, self.device)
    }
}

/// OpenCL settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenClConfig {
    /// `None`: the first GPU of any platform, else the first device.
    pub device: Option<DeviceSelector>,
    /// Largest single device buffer this backend will ask for, in bytes (the device's own
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` applies too). Larger requests are [`BackendError::OutOfMemory`].
    pub mem_limit: Option<u64>,
    /// The GEMM kernel for many-row products (both give the same bits).
    pub gemm: GemmKernel,
}

/// One device as `aivm devices` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub selector: DeviceSelector,
    pub platform: String,
    pub platform_version: String,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub kind: &'static str,
    pub compute_units: u32,
    pub global_mem: u64,
    pub max_alloc: u64,
}

fn cl_err(e: ocl::Error) -> BackendError {
    match e.api_status() {
        Some(Status::CL_MEM_OBJECT_ALLOCATION_FAILURE | Status::CL_OUT_OF_RESOURCES | Status::CL_OUT_OF_HOST_MEMORY | Status::CL_INVALID_BUFFER_SIZE) => {
            BackendError::OutOfMemory(e.to_string())
        }
        _ => BackendError::Device(e.to_string()),
    }
}

/// Held while enumerating platforms and devices: ICD loaders (ocl-icd among them) initialise
/// lazily, and concurrent first calls were seen to report no devices at all.
static DISCOVERY: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Every platform, or [`BackendError::NoPlatform`] when the ICD loader finds none.
/// Call with [`DISCOVERY`] held.
fn platforms() -> Result<Vec<Platform>, BackendError> {
    // Ask once, directly: `ocl` retries "platform not found" for ten seconds (a workaround for
    // the concurrent-initialisation problem `DISCOVERY` already prevents).
    let mut count: ocl::core::ffi::cl_uint = 0;
    // SAFETY: a count-only query: no output array, a valid pointer for the count.
    let status = unsafe { ocl::core::ffi::clGetPlatformIDs(0, std::ptr::null_mut(), &mut count) };
    if status == Status::CL_PLATFORM_NOT_FOUND_KHR as i32 || (status == 0 && count == 0) {
        return Err(BackendError::NoPlatform("the OpenCL ICD loader found no installed driver".into()));
    }
    let ids = ocl::core::get_platform_ids().map_err(|e| BackendError::NoPlatform(first_line(&e.to_string())))?;
    if ids.is_empty() {
        return Err(BackendError::NoPlatform("the ICD loader lists no platforms".into()));
    }
    Ok(Platform::list_from_core(ids))
}

fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error").to_string()
}

fn device_type(d: &Device) -> DeviceType {
    match d.info(ClDeviceInfo::Type) {
        Ok(DeviceInfoResult::Type(t)) => t,
        _ => DeviceType::empty(),
    }
}

fn info_u64(d: &Device, what: ClDeviceInfo) -> u64 {
    match d.info(what) {
        Ok(DeviceInfoResult::MaxMemAllocSize(v) | DeviceInfoResult::GlobalMemSize(v)) => v,
        Ok(DeviceInfoResult::MaxComputeUnits(v)) => v as u64,
        _ => 0,
    }
}

/// All OpenCL devices, in `<platform>:<device>` order.
pub fn list_devices() -> Result<Vec<DeviceInfo>, BackendError> {
    let _guard = DISCOVERY.lock();
    let mut out = Vec::new();
    for (pi, p) in platforms()?.iter().enumerate() {
        let devices = Device::list_all(p).unwrap_or_default();
        for (di, d) in devices.iter().enumerate() {
            let t = device_type(d);
            out.push(DeviceInfo {
                selector: DeviceSelector { platform: pi, device: di },
                platform: p.name().unwrap_or_default(),
                platform_version: p.version().unwrap_or_default(),
                name: d.name().unwrap_or_default(),
                vendor: d.vendor().unwrap_or_default(),
                version: d.version().map(|v| v.to_string()).unwrap_or_default(),
                kind: if t.contains(DeviceType::GPU) {
                    "gpu"
                } else if t.contains(DeviceType::CPU) {
                    "cpu"
                } else if t.contains(DeviceType::ACCELERATOR) {
                    "accelerator"
                } else {
                    "other"
                },
                compute_units: info_u64(d, ClDeviceInfo::MaxComputeUnits) as u32,
                global_mem: info_u64(d, ClDeviceInfo::GlobalMemSize),
                max_alloc: info_u64(d, ClDeviceInfo::MaxMemAllocSize),
            });
        }
    }
    Ok(out)
}

/// A device with the AIVM program built on it.
pub struct OpenClBackend {
    queue: Queue,
    program: Program,
    name: String,
    /// Largest buffer we allocate (the device's limit and the configured one).
    max_alloc: u64,
    /// Many-row GEMMs use the tiled kernel (else `gemm_nt_rows`).
    tiled: bool,
}

/// The weights of one GEMM on the device.
struct DeviceWeights {
    buf: Buffer<i8>,
}

impl OpenClBackend {
    /// Open the configured device and build the kernels on it.
    pub fn open(config: &OpenClConfig) -> Result<Self, BackendError> {
        Self::open_with_source(config, &source())
    }

    /// [`OpenClBackend::open`] with another program (tests check how build failures surface).
    pub fn open_with_source(config: &OpenClConfig, source: &str) -> Result<Self, BackendError> {
        let guard = DISCOVERY.lock();
        let platforms = platforms()?;
        let (platform, device) = match config.device {
            Some(sel) => {
                let p = platforms.get(sel.platform).ok_or_else(|| BackendError::NoDevice(sel.to_string()))?;
                let d = Device::list_all(p).map_err(cl_err)?.get(sel.device).copied().ok_or_else(|| BackendError::NoDevice(sel.to_string()))?;
                (*p, d)
            }
            None => {
                let all: Vec<(Platform, Device)> =
                    platforms.iter().flat_map(|p| Device::list_all(p).unwrap_or_default().into_iter().map(move |d| (*p, d))).collect();
                let gpu = all.iter().find(|(_, d)| device_type(d).contains(DeviceType::GPU));
                *gpu.or(all.first()).ok_or_else(|| BackendError::NoDevice("(any)".into()))?
            }
        };
        let name = format!("{} / {}", platform.name().unwrap_or_default(), device.name().unwrap_or_default());
        let context = Context::builder().platform(platform).devices(device).build().map_err(cl_err)?;
        let queue = Queue::new(&context, device, None).map_err(cl_err)?;
        drop(guard);
        let program =
            Program::builder().src(source).devices(device).build(&context).map_err(|e| BackendError::Build { device: name.clone(), log: e.to_string() })?;
        let device_max = info_u64(&device, ClDeviceInfo::MaxMemAllocSize);
        let max_alloc = match config.mem_limit {
            Some(l) => l.min(device_max),
            None => device_max,
        };
        let tiled = match config.gemm {
            GemmKernel::Auto => !device_type(&device).contains(DeviceType::CPU),
            GemmKernel::Rows => false,
            GemmKernel::Tiled => true,
        };
        Ok(Self { queue, program, name, max_alloc, tiled })
    }

    /// The default device for tests and benchmarks, or `None` (after saying why on stderr) when
    /// this machine has no OpenCL platform at all. With `AIVM_REQUIRE_OPENCL=1` (as `make test`
    /// sets, after installing pocl) a missing platform is an error instead: CI never skips.
    pub fn open_or_skip(what: &str, config: &OpenClConfig) -> Result<Option<Self>, BackendError> {
        match Self::open(config) {
            Ok(b) => Ok(Some(b)),
            Err(BackendError::NoPlatform(why)) if std::env::var("AIVM_REQUIRE_OPENCL").map_or(true, |v| v != "1") => {
                eprintln!(
                    "SKIPPED {what}: no OpenCL platform on this machine ({why}). Install pocl-opencl-icd to run it; AIVM_REQUIRE_OPENCL=1 makes this an error."
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A device buffer of `len` elements, filled from `data` if given.
    fn buffer<T: OclPrm>(&self, len: usize, data: Option<&[T]>) -> Result<Buffer<T>, BackendError> {
        let bytes = (len.max(1) as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        if bytes > self.max_alloc {
            return Err(BackendError::OutOfMemory(format!("{bytes}-byte buffer exceeds the {}-byte limit of {}", self.max_alloc, self.name)));
        }
        let b = Buffer::<T>::builder().queue(self.queue.clone()).len(len.max(1));
        let b = match data {
            Some(d) => b.flags(MemFlags::new().read_only()).copy_host_slice(d),
            None => b.flags(MemFlags::new().read_write()),
        };
        b.build().map_err(cl_err)
    }

    fn read<T: OclPrm>(&self, buf: &Buffer<T>, out: &mut [T]) -> Result<(), BackendError> {
        let len = out.len();
        buf.read(out).len(len).enq().map_err(cl_err)
    }

    /// A kernel `name` over `global` work-items in groups of `local`; the caller adds the
    /// arguments in order and passes it to [`OpenClBackend::run`].
    fn kernel(&self, name: &str, global: [usize; 2], local: [usize; 2]) -> ocl::builders::KernelBuilder<'_> {
        let mut kb = Kernel::builder();
        kb.program(&self.program).name(name).queue(self.queue.clone()).global_work_size(global).local_work_size(local);
        kb
    }

    fn run(kb: &ocl::builders::KernelBuilder<'_>) -> Result<(), BackendError> {
        let kernel = kb.build().map_err(cl_err)?;
        // SAFETY: every buffer argument holds at least as many elements as the kernel indexes:
        // the kernels bound their indices by the lengths passed alongside, which the callers
        // derive from the same slices the buffers were made from.
        unsafe { kernel.enq() }.map_err(cl_err)
    }

    /// `Y = X · Wᵀ` with W already on the device.
    fn gemm_on(&self, x: &[i8], m: usize, w: &Buffer<i8>, n: usize, k: usize, y: &mut [i32]) -> Result<(), BackendError> {
        let (m32, n32, k32) = dims32(m, n, k)?;
        let xb = self.buffer(m * k, Some(x))?;
        let yb = self.buffer::<i32>(m * n, None)?;
        let mut kb = if m < SMALL_M || !self.tiled {
            self.kernel("gemm_nt_rows", [n.div_ceil(ELEM_GROUP) * ELEM_GROUP, m], [ELEM_GROUP, 1])
        } else {
            self.kernel("gemm_nt", [n.div_ceil(TILE) * GROUP, m.div_ceil(TILE) * GROUP], [GROUP, GROUP])
        };
        kb.arg(&xb).arg(w).arg(&yb).arg(m32).arg(n32).arg(k32);
        Self::run(&kb)?;
        self.read(&yb, y)
    }

    fn elementwise<I: OclPrm, O: OclPrm>(&self, name: &str, x: &[I], scale: i64) -> Result<Vec<O>, BackendError> {
        let xb = self.buffer(x.len(), Some(x))?;
        let ob = self.buffer::<O>(x.len(), None)?;
        let mut kb = self.kernel(name, [x.len().div_ceil(ELEM_GROUP) * ELEM_GROUP, 1], [ELEM_GROUP, 1]);
        kb.arg(&xb).arg(&ob).arg(scale).arg(x.len() as u64);
        Self::run(&kb)?;
        let mut out = vec![O::default(); x.len()];
        self.read(&ob, &mut out)?;
        Ok(out)
    }

    /// One work-group per row of `x`; `extra` are the `(kind, eps)` arguments after `(x, out, n)`.
    fn rows(&self, name: &str, x: &[i32], n: usize, extra: Option<(i32, i64)>) -> Result<Vec<i32>, BackendError> {
        let n32 = u32::try_from(n).map_err(|_| BackendError::Config(format!("row of {n} elements")))?;
        let rows = x.len() / n.max(1);
        let xb = self.buffer(x.len(), Some(x))?;
        let ob = self.buffer::<i32>(x.len(), None)?;
        let mut kb = self.kernel(name, [rows * ROW_GROUP, 1], [ROW_GROUP, 1]);
        kb.arg(&xb).arg(&ob).arg(n32);
        if let Some((kind, eps)) = extra {
            kb.arg(kind).arg(eps);
        }
        Self::run(&kb)?;
        let mut out = vec![0i32; x.len()];
        self.read(&ob, &mut out)?;
        Ok(out)
    }
}

/// GEMM dimensions as the kernel's `uint`s.
fn dims32(m: usize, n: usize, k: usize) -> Result<(u32, u32, u32), BackendError> {
    let c = |v: usize| u32::try_from(v).map_err(|_| BackendError::Config(format!("GEMM dimension {v} exceeds 2^32")));
    Ok((c(m)?, c(n)?, c(k)?))
}

impl Backend for OpenClBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::OpenCl
    }

    fn describe(&self) -> String {
        format!("opencl ({}, {} GEMM)", self.name, if self.tiled { "tiled" } else { "rows" })
    }

    fn matmul(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, BackendError> {
        // The kernel takes its right operand k-contiguous: transpose B [k×n] into Bᵀ [n×k].
        let mut bt = vec![0i8; k * n];
        for (p, row) in b.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                bt[j * k + p] = v;
            }
        }
        let wb = self.buffer(bt.len(), Some(&bt))?;
        let mut c = vec![0i32; m * n];
        self.gemm_on(a, m, &wb, n, k, &mut c)?;
        Ok(c)
    }

    fn prepare(&self, w: &[i8], n: usize, k: usize) -> Result<Weights, BackendError> {
        let buf = self.buffer(w.len(), Some(w))?;
        Ok(Weights { n, k, owner: BackendKind::OpenCl, inner: Box::new(DeviceWeights { buf }) })
    }

    fn gemm(&self, x: &[i8], m: usize, w: &Weights, y: &mut [i32]) -> Result<(), BackendError> {
        let dw = w.get::<DeviceWeights>(BackendKind::OpenCl)?;
        self.gemm_on(x, m, &dw.buf, w.n, w.k, y)
    }

    fn quantize(&self, x: &[i32], scale_q16: i32) -> Result<Vec<i8>, BackendError> {
        self.elementwise("quantize", x, scale_q16 as i64)
    }

    fn dequantize(&self, x: Elems<'_>, scale_q16: i32) -> Result<Vec<i32>, BackendError> {
        match x {
            Elems::I8(v) => self.elementwise("dequantize_i8", v, scale_q16 as i64),
            Elems::I32(v) => self.elementwise("dequantize_i32", v, scale_q16 as i64),
        }
    }

    fn norm(&self, x: &[i32], row: usize, kind: NormKind, eps_q16: i32) -> Result<Vec<i32>, BackendError> {
        self.rows("norm_rows", x, row, Some((kind as i32, eps_q16 as i64)))
    }

    fn softmax(&self, x: &[i32], row: usize) -> Result<Vec<i32>, BackendError> {
        self.rows("softmax_rows", x, row, None)
    }

    fn kl_log_ratios(&self, p: &[i32], q: &[i32]) -> Result<Vec<i64>, BackendError> {
        let pb = self.buffer(p.len(), Some(p))?;
        let qb = self.buffer(q.len(), Some(q))?;
        let db = self.buffer::<i64>(p.len(), None)?;
        let mut kb = self.kernel("kl_log_ratios", [p.len().div_ceil(ELEM_GROUP) * ELEM_GROUP, 1], [ELEM_GROUP, 1]);
        kb.arg(&pb).arg(&qb).arg(&db).arg(p.len() as u64);
        Self::run(&kb)?;
        let mut d = vec![0i64; p.len()];
        self.read(&db, &mut d)?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn require() -> bool {
        OpenClBackend::open_or_skip("opencl unit test", &OpenClConfig::default()).expect("OpenCL backend").is_some()
    }

    #[test]
    fn a_kernel_that_does_not_build_is_a_clear_error() {
        if !require() {
            return;
        }
        let bad = "__kernel void broken(__global int* x) { x[0] = undefined_name; }";
        match OpenClBackend::open_with_source(&OpenClConfig::default(), bad) {
            Err(BackendError::Build { log, .. }) => {
                assert!(log.contains("undefined_name"), "build log: {log}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a broken program built"),
        }
    }

    #[test]
    fn buffers_over_the_memory_limit_are_out_of_memory_and_fallback_uses_the_cpu() {
        if !require() {
            return;
        }
        let cfg = OpenClConfig { mem_limit: Some(4096), ..OpenClConfig::default() };
        let small = OpenClBackend::open(&cfg).unwrap();
        let w = vec![1i8; 8192];
        assert!(matches!(small.prepare(&w, 64, 128), Err(BackendError::OutOfMemory(_))));
        assert!(matches!(small.quantize(&vec![7; 2048], 1 << 16), Err(BackendError::OutOfMemory(_))));
        // With fallback the same request runs on the CPU and gives the CPU's answer.
        let cpu = super::super::CpuBackend::with_threads(1);
        let fb = super::super::Fallback::new(std::sync::Arc::new(OpenClBackend::open(&cfg).unwrap()), cpu);
        let wts = fb.prepare(&w, 64, 128).unwrap();
        let x = vec![2i8; 3 * 128];
        let mut y = vec![0; 3 * 64];
        fb.gemm(&x, 3, &wts, &mut y).unwrap();
        assert!(y.iter().all(|&v| v == 256));
        assert_eq!(fb.quantize(&vec![7 << 16; 2048], 1 << 16).unwrap(), vec![7i8; 2048]);
    }

    #[test]
    fn missing_devices_are_named() {
        if !require() {
            return;
        }
        let cfg = OpenClConfig { device: Some(DeviceSelector { platform: 0, device: 999 }), ..OpenClConfig::default() };
        assert!(matches!(OpenClBackend::open(&cfg), Err(BackendError::NoDevice(d)) if d == "0:999"));
        let cfg = OpenClConfig { device: Some(DeviceSelector { platform: 999, device: 0 }), ..OpenClConfig::default() };
        assert!(matches!(OpenClBackend::open(&cfg), Err(BackendError::NoDevice(_))));
        assert!(!list_devices().unwrap().is_empty());
    }
}
