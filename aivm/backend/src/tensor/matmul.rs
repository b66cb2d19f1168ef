//! TENSOR_MATMUL on tensors; the slice kernels and their CPU paths are `aivm_tensor::matmul`'s
//! (re-exported here, where callers have always found them).

pub use aivm_tensor::matmul::*;

use super::{DType, Tensor, TensorError};

/// TENSOR_MATMUL on tensors: `I8 [m,k] · I8 [k,n] → I32 [m,n]`, on the CPU.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    matmul_on(&crate::CpuBackend::SERIAL, a, b)
}

/// [`matmul`] on a chosen backend.
pub fn matmul_on(backend: &dyn crate::Backend, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
        return Err(TensorError::ShapeMismatch(format!("matmul needs 2-D tensors, got {:?} and {:?}", a.shape(), b.shape())));
    };
    if k != k2 {
        return Err(TensorError::ShapeMismatch(format!("inner dimensions differ: {k} vs {k2}")));
    }
    let (a, b) = (a.as_i8()?, b.as_i8()?);
    check_dims(a.len(), b.len(), m, k, n)?;
    let c = backend.matmul(a, b, m, k, n)?;
    Tensor::from_i32(DType::I32, &[m, n], c)
}
