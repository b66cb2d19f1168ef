//! Host tensors: a handle into the call's arena, freed when dropped.

use crate::sys;
use alloc::vec;
use alloc::vec::Vec;

/// Element types (`spec/opcodes.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    I8 = 0,
    I32 = 1,
    /// Q16.16 fixed point in an i32.
    Q16 = 2,
}

/// A tensor held by the host. Operations return new tensors; the inputs stay valid.
#[derive(Debug)]
pub struct Tensor {
    handle: i32,
}

impl Tensor {
    fn alloc(dtype: DType, shape: &[u32], bytes: &[u8]) -> Tensor {
        let handle = unsafe { sys::tensor_alloc(dtype as i32, shape.as_ptr(), shape.len() as i32, bytes.as_ptr(), bytes.len() as i32) };
        Tensor { handle }
    }

    pub fn from_i8(shape: &[u32], data: &[i8]) -> Tensor {
        // SAFETY: i8 and u8 have the same layout.
        let bytes = unsafe { core::slice::from_raw_parts(data.as_ptr() as *const u8, data.len()) };
        Self::alloc(DType::I8, shape, bytes)
    }

    fn from_words(dtype: DType, shape: &[u32], data: &[i32]) -> Tensor {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::alloc(dtype, shape, &bytes)
    }

    pub fn from_i32(shape: &[u32], data: &[i32]) -> Tensor {
        Self::from_words(DType::I32, shape, data)
    }

    /// Raw Q16.16 values (`1.0` is `65536`).
    pub fn from_q16(shape: &[u32], data: &[i32]) -> Tensor {
        Self::from_words(DType::Q16, shape, data)
    }

    pub(crate) fn handle(&self) -> i32 {
        self.handle
    }

    fn info(&self) -> [u32; 6] {
        let mut raw = [0u8; 24];
        unsafe { sys::tensor_info(self.handle, raw.as_mut_ptr()) };
        let mut out = [0u32; 6];
        for (o, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
            *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        out
    }

    pub fn dtype(&self) -> DType {
        match self.info()[0] {
            0 => DType::I8,
            1 => DType::I32,
            _ => DType::Q16,
        }
    }

    pub fn shape(&self) -> Vec<u32> {
        let i = self.info();
        i[2..2 + i[1] as usize].to_vec()
    }

    /// Little-endian element bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let i = self.info();
        let elems: u32 = i[2..2 + i[1] as usize].iter().product();
        let size = if i[0] == 0 { 1 } else { 4 };
        let mut buf = vec![0u8; (elems * size) as usize];
        unsafe { sys::tensor_read(self.handle, buf.as_mut_ptr()) };
        buf
    }

    pub fn to_i8_vec(&self) -> Vec<i8> {
        self.to_bytes().into_iter().map(|b| b as i8).collect()
    }

    /// Elements of an I32 or Q16 tensor.
    pub fn to_i32_vec(&self) -> Vec<i32> {
        self.to_bytes().chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    fn wrap(handle: i32) -> Tensor {
        Tensor { handle }
    }

    /// `I8 [m,k] · I8 [k,n] → I32 [m,n]`.
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        Self::wrap(unsafe { sys::tensor_matmul(self.handle, rhs.handle) })
    }

    /// Saturating elementwise sum.
    pub fn add(&self, rhs: &Tensor) -> Tensor {
        Self::wrap(unsafe { sys::tensor_add(self.handle, rhs.handle) })
    }

    /// Q16 → I8 with `round_half_even(x / scale)` clamped to ±127.
    pub fn quantize(&self, scale_q16: i32) -> Tensor {
        Self::wrap(unsafe { sys::tensor_quantize(self.handle, scale_q16) })
    }

    /// I8/I32 → Q16 as `x · scale`, saturating.
    pub fn dequantize(&self, scale_q16: i32) -> Tensor {
        Self::wrap(unsafe { sys::tensor_dequantize(self.handle, scale_q16) })
    }

    pub fn rms_norm(&self, eps_q16: i32) -> Tensor {
        Self::wrap(unsafe { sys::tensor_norm(self.handle, 0, eps_q16) })
    }

    pub fn layer_norm(&self, eps_q16: i32) -> Tensor {
        Self::wrap(unsafe { sys::tensor_norm(self.handle, 1, eps_q16) })
    }

    /// Row-wise softmax over the last dimension (Q16 in, Q16 out).
    pub fn softmax(&self) -> Tensor {
        Self::wrap(unsafe { sys::tensor_softmax(self.handle) })
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        unsafe { sys::tensor_free(self.handle) }
    }
}
