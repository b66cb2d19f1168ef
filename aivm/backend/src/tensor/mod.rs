//! Tensors as values and the validated operations on them (`*_on`: shapes and arguments
//! checked, then run on a chosen [`crate::Backend`]).
//!
//! A [`Tensor`] is a dense row-major array of one [`DType`]. The kernels underneath
//! (`aivm_tensor`) are pure functions of their inputs: integer or fixed-point arithmetic with
//! the rounding written in `spec/opcodes.md`, so every backend and CPU path gives the same bits.

pub mod arena;
pub mod kl;
pub mod matmul;
pub mod ops;

/// The kernels' fixed-point helpers, where the tensor operations have always found them.
pub use aivm_tensor::fixed;
pub use aivm_tensor::lcg_bytes;

pub use arena::{Arena, Handle};

use thiserror::Error;

/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 4;

/// Element types. The numeric code is the ABI value (`spec/abi.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// Signed 8-bit integer.
    I8 = 0,
    /// Signed 32-bit integer (matmul accumulators).
    I32 = 1,
    /// Signed Q16.16 fixed point stored in an `i32` (value = raw / 65536).
    Q16 = 2,
}

impl DType {
    /// Decode the ABI code.
    pub fn from_code(code: i32) -> Result<Self, TensorError> {
        match code {
            0 => Ok(DType::I8),
            1 => Ok(DType::I32),
            2 => Ok(DType::Q16),
            other => Err(TensorError::BadDType(other)),
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I32 | DType::Q16 => 4,
        }
    }
}

/// Element storage. `Q16` tensors use the `I32` variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    I8(Vec<i8>),
    I32(Vec<i32>),
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Data,
}

/// Why a tensor operation was refused. Each is a contract error (a trap), never a crash.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TensorError {
    #[error("unknown tensor dtype code {0}")]
    BadDType(i32),
    #[error("invalid shape {0:?}: rank must be 1..={MAX_RANK} and every dimension at least 1")]
    BadShape(Vec<u64>),
    #[error("tensor of {0} elements is larger than the arena allows")]
    TooLarge(u128),
    #[error("data is {got} bytes, shape and dtype need {want}")]
    DataLength { got: usize, want: usize },
    #[error("dtype mismatch: expected {expected:?}, got {got:?}")]
    DType { expected: &'static str, got: DType },
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("invalid or freed tensor handle {0}")]
    BadHandle(u32),
    #[error("tensor arena budget exceeded: {used} + {want} bytes > {budget}")]
    Budget { used: usize, want: usize, budget: usize },
    #[error("too many live tensors (limit {0})")]
    TooManyTensors(usize),
    #[error("invalid argument: {0}")]
    Argument(String),
    /// The backend (device) failed: a node fault, not something the inputs caused.
    #[error(transparent)]
    Backend(#[from] crate::BackendError),
}

/// A kernel's refusal, as the tensor operation that called it reports it.
impl From<aivm_tensor::KernelError> for TensorError {
    fn from(e: aivm_tensor::KernelError) -> Self {
        match e {
            aivm_tensor::KernelError::Shape(m) => TensorError::ShapeMismatch(m),
            aivm_tensor::KernelError::Argument(m) => TensorError::Argument(m),
        }
    }
}

impl Tensor {
    /// Element count of `shape`, checking rank, zero dimensions and overflow.
    pub fn element_count(shape: &[u64]) -> Result<usize, TensorError> {
        if shape.is_empty() || shape.len() > MAX_RANK || shape.contains(&0) {
            return Err(TensorError::BadShape(shape.to_vec()));
        }
        let n: u128 = shape.iter().map(|&d| d as u128).product();
        usize::try_from(n).ok().filter(|&n| n <= u32::MAX as usize).ok_or(TensorError::TooLarge(n))
    }

    /// Build a tensor from little-endian bytes.
    pub fn from_bytes(dtype: DType, shape: &[u64], bytes: &[u8]) -> Result<Self, TensorError> {
        let n = Self::element_count(shape)?;
        let want = n * dtype.size();
        if bytes.len() != want {
            return Err(TensorError::DataLength { got: bytes.len(), want });
        }
        let data = match dtype {
            DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::I32 | DType::Q16 => Data::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        };
        Ok(Self { dtype, shape: shape.iter().map(|&d| d as usize).collect(), data })
    }

    /// An `I8` tensor.
    pub fn from_i8(shape: &[usize], v: Vec<i8>) -> Result<Self, TensorError> {
        Self::new(DType::I8, shape, Data::I8(v))
    }

    /// An `I32` or `Q16` tensor.
    pub fn from_i32(dtype: DType, shape: &[usize], v: Vec<i32>) -> Result<Self, TensorError> {
        if dtype == DType::I8 {
            return Err(TensorError::DType { expected: "I32 or Q16", got: dtype });
        }
        Self::new(dtype, shape, Data::I32(v))
    }

    fn new(dtype: DType, shape: &[usize], data: Data) -> Result<Self, TensorError> {
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let n = Self::element_count(&dims)?;
        let len = match &data {
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
        };
        if len != n {
            return Err(TensorError::DataLength { got: len * dtype.size(), want: n * dtype.size() });
        }
        Ok(Self { dtype, shape: shape.to_vec(), data })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Tensors always have at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Size of the element data in bytes (what the arena budget counts).
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Little-endian bytes, the TENSOR_READ format.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// The elements of an `I8` tensor.
    pub fn as_i8(&self) -> Result<&[i8], TensorError> {
        match &self.data {
            Data::I8(v) => Ok(v),
            Data::I32(_) => Err(TensorError::DType { expected: "I8", got: self.dtype }),
        }
    }

    /// The raw elements of an `I32` or `Q16` tensor.
    pub fn as_i32(&self) -> Result<&[i32], TensorError> {
        match &self.data {
            Data::I32(v) => Ok(v),
            Data::I8(_) => Err(TensorError::DType { expected: "I32 or Q16", got: self.dtype }),
        }
    }

    /// The raw elements, requiring dtype `Q16`.
    pub fn as_q16(&self) -> Result<&[i32], TensorError> {
        if self.dtype != DType::Q16 {
            return Err(TensorError::DType { expected: "Q16", got: self.dtype });
        }
        self.as_i32()
    }

    /// Length of the last dimension (the row length for row-wise ops).
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}
