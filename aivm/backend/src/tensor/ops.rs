//! Elementwise and row-wise kernels: add, quantize, dequantize, norms, softmax.
//!
//! Row-wise kernels work along the last dimension. Each loop runs in index order
//! and accumulates exactly (i64/i128), so results do not depend on how rows are
//! split across threads or SIMD lanes. The `*_on` forms validate, then run the arithmetic on
//! a [`Backend`]; the plain forms use the CPU.

use super::fixed::{div_round_half_even, div_round_half_even_i64, exp_neg_q16_to_q30, saturate_i32};
use super::{DType, Data, Tensor, TensorError};
use crate::{Backend, CpuBackend, Elems};

fn same_shape(a: &Tensor, b: &Tensor) -> Result<(), TensorError> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(TensorError::ShapeMismatch(format!("{:?}{:?} vs {:?}{:?}", a.dtype(), a.shape(), b.dtype(), b.shape())));
    }
    Ok(())
}

/// Elementwise saturating addition of two tensors of the same dtype and shape.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    same_shape(a, b)?;
    match (a.data(), b.data()) {
        (Data::I8(x), Data::I8(y)) => Tensor::from_i8(a.shape(), x.iter().zip(y).map(|(p, q)| p.saturating_add(*q)).collect()),
        (Data::I32(x), Data::I32(y)) => Tensor::from_i32(a.dtype(), a.shape(), x.iter().zip(y).map(|(p, q)| p.saturating_add(*q)).collect()),
        _ => Err(TensorError::ShapeMismatch("dtype storage differs".into())),
    }
}

/// Scale must be a positive Q16 value.
fn check_scale(scale_q16: i32) -> Result<i32, TensorError> {
    if scale_q16 <= 0 {
        return Err(TensorError::Argument(format!("scale must be positive, got {scale_q16}")));
    }
    Ok(scale_q16)
}

/// Q16 → I8: `q = clamp(round_half_even(x / scale), −127, 127)`.
pub fn quantize(x: &Tensor, scale_q16: i32) -> Result<Tensor, TensorError> {
    quantize_on(&CpuBackend::SERIAL, x, scale_q16)
}

/// [`quantize`] on a chosen backend.
pub fn quantize_on(b: &dyn Backend, x: &Tensor, scale_q16: i32) -> Result<Tensor, TensorError> {
    let s = check_scale(scale_q16)?;
    Tensor::from_i8(x.shape(), b.quantize(x.as_q16()?, s)?)
}

/// I8 or I32 → Q16: `y = saturate_i32(x · scale)` (exact product, then clamp).
pub fn dequantize(x: &Tensor, scale_q16: i32) -> Result<Tensor, TensorError> {
    dequantize_on(&CpuBackend::SERIAL, x, scale_q16)
}

/// [`dequantize`] on a chosen backend.
pub fn dequantize_on(b: &dyn Backend, x: &Tensor, scale_q16: i32) -> Result<Tensor, TensorError> {
    let s = check_scale(scale_q16)?;
    let elems = match (x.dtype(), x.data()) {
        (DType::I8, Data::I8(v)) => Elems::I8(v),
        (DType::I32, Data::I32(v)) => Elems::I32(v),
        (got, _) => return Err(TensorError::DType { expected: "I8 or I32", got }),
    };
    Tensor::from_i32(DType::Q16, x.shape(), b.dequantize(elems, s)?)
}

/// Which normalisation TENSOR_NORM applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    Rms = 0,
    Layer = 1,
}

impl NormKind {
    pub fn from_code(code: i32) -> Result<Self, TensorError> {
        match code {
            0 => Ok(NormKind::Rms),
            1 => Ok(NormKind::Layer),
            c => Err(TensorError::Argument(format!("unknown norm kind {c}"))),
        }
    }
}

/// Row-wise RMSNorm or LayerNorm of a Q16 tensor (no gain or bias), `eps` in Q16 (≥ 0).
///
/// RMS:   `ms = floor(Σx²/n)` (Q32), `r = isqrt(ms + eps·2^16)` (Q16),
///        `y = round_half_even(x·2^16 / r)`.
/// Layer: `μ = round_half_even(Σx / n)`, `var = floor(Σ(x−μ)²/n)`, `σ = isqrt(var + eps·2^16)`,
///        `y = round_half_even((x−μ)·2^16 / σ)`.
/// A zero denominator (an all-zero row with eps = 0) gives a zero row. Outputs saturate to i32.
pub fn norm(x: &Tensor, kind: NormKind, eps_q16: i32) -> Result<Tensor, TensorError> {
    norm_on(&CpuBackend::SERIAL, x, kind, eps_q16)
}

/// [`norm`] on a chosen backend.
pub fn norm_on(b: &dyn Backend, x: &Tensor, kind: NormKind, eps_q16: i32) -> Result<Tensor, TensorError> {
    if eps_q16 < 0 {
        return Err(TensorError::Argument(format!("eps must be non-negative, got {eps_q16}")));
    }
    Tensor::from_i32(DType::Q16, x.shape(), b.norm(x.as_q16()?, x.row_len(), kind, eps_q16)?)
}

/// Row-wise softmax of a Q16 tensor, output Q16 probabilities.
///
/// `m = max(row)`, `e_i = exp_neg_q16_to_q30(x_i − m)` (so the max gets exactly 2^30),
/// `S = Σ e_i`, `p_i = floor((e_i·2^16 + S/2) / S)` (round half up; S ≥ 2^30 > 0).
pub fn softmax(x: &Tensor) -> Result<Tensor, TensorError> {
    softmax_on(&CpuBackend::SERIAL, x)
}

/// [`softmax`] on a chosen backend.
pub fn softmax_on(b: &dyn Backend, x: &Tensor) -> Result<Tensor, TensorError> {
    Tensor::from_i32(DType::Q16, x.shape(), b.softmax(x.as_q16()?, x.row_len())?)
}

/// The CPU kernels behind the functions above, on validated slices (the reference every other
/// backend must equal). Each loop runs in index order and accumulates exactly.
pub(crate) mod cpu {
    use super::*;

    pub fn quantize(v: &[i32], scale_q16: i32) -> Vec<i8> {
        let s = scale_q16 as i64;
        v.iter().map(|&e| div_round_half_even_i64(e as i64, s).clamp(-127, 127) as i8).collect()
    }

    pub fn dequantize(x: Elems<'_>, scale_q16: i32) -> Vec<i32> {
        let s = scale_q16 as i64;
        match x {
            Elems::I8(v) => v.iter().map(|&e| saturate_i32((e as i64 * s) as i128)).collect(),
            Elems::I32(v) => v.iter().map(|&e| saturate_i32((e as i64 * s) as i128)).collect(),
        }
    }

    pub fn norm(v: &[i32], n: usize, kind: NormKind, eps_q16: i32) -> Vec<i32> {
        let eps_q32 = (eps_q16 as u128) << 16;
        let mut out = Vec::with_capacity(v.len());
        for row in v.chunks_exact(n) {
            let mean = match kind {
                NormKind::Rms => 0i128,
                NormKind::Layer => div_round_half_even(row.iter().map(|&e| e as i128).sum::<i128>(), n as i128),
            };
            // |x − μ| < 2^32, so (x − μ)·2^16 fits an i64; the squares are summed in u128.
            let mean = mean as i64;
            let sq: u128 = row.iter().map(|&e| ((e as i64 - mean).unsigned_abs() as u128).pow(2)).sum();
            let denom = (sq / n as u128 + eps_q32).isqrt() as i64;
            if denom == 0 {
                out.extend(std::iter::repeat_n(0, n));
                continue;
            }
            out.extend(row.iter().map(|&e| saturate_i32(div_round_half_even_i64((e as i64 - mean) << 16, denom) as i128)));
        }
        out
    }

    pub fn softmax(v: &[i32], n: usize) -> Vec<i32> {
        let mut out = Vec::with_capacity(v.len());
        let mut e = vec![0i64; n];
        for row in v.chunks_exact(n) {
            let m = row.iter().copied().max().unwrap_or(0) as i64;
            let mut sum: i64 = 0;
            for (ei, &xi) in e.iter_mut().zip(row) {
                *ei = exp_neg_q16_to_q30(xi as i64 - m);
                sum += *ei;
            }
            out.extend(e.iter().map(|&ei| (((ei as i128) << 16) + (sum as i128 / 2)) / sum as i128).map(|p| p as i32));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q16(shape: &[usize], v: &[f64]) -> Tensor {
        Tensor::from_i32(DType::Q16, shape, v.iter().map(|x| (x * 65536.0).round() as i32).collect()).unwrap()
    }

    fn f(t: &Tensor) -> Vec<f64> {
        t.as_i32().unwrap().iter().map(|&x| x as f64 / 65536.0).collect()
    }

    #[test]
    fn softmax_matches_float_and_sums_to_one() {
        let x = q16(&[2, 4], &[1.0, 2.0, 3.0, 4.0, -10.0, 0.5, 0.5, 7.25]);
        let p = softmax(&x).unwrap();
        let got = f(&p);
        for r in 0..2 {
            let row: Vec<f64> = f(&x)[r * 4..r * 4 + 4].to_vec();
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for c in 0..4 {
                let want = (row[c] - m).exp() / s;
                assert!((got[r * 4 + c] - want).abs() < 2.0 / 65536.0, "{r},{c}: {} vs {want}", got[r * 4 + c]);
            }
            let sum: i64 = p.as_i32().unwrap()[r * 4..r * 4 + 4].iter().map(|&v| v as i64).sum();
            assert!((sum - 65536).abs() <= 2, "row {r} sums to {sum}");
        }
    }

    #[test]
    fn softmax_test_vector() {
        // spec/opcodes.md, softmax vector 1.
        let x = Tensor::from_i32(DType::Q16, &[4], vec![0, 65536, 131072, 196608]).unwrap();
        assert_eq!(softmax(&x).unwrap().as_i32().unwrap(), &[2101, 5711, 15524, 42200]);
    }

    #[test]
    fn rmsnorm_and_layernorm_match_float() {
        let x = q16(&[1, 4], &[1.0, -2.0, 3.0, 0.5]);
        let r = f(&norm(&x, NormKind::Rms, 0).unwrap());
        let ms: f64 = [1.0f64, 4.0, 9.0, 0.25].iter().sum::<f64>() / 4.0;
        for (g, w) in r.iter().zip([1.0, -2.0, 3.0, 0.5]) {
            assert!((g - w / ms.sqrt()).abs() < 1e-4, "{g} vs {}", w / ms.sqrt());
        }
        let l = f(&norm(&x, NormKind::Layer, 0).unwrap());
        let mu = 2.5 / 4.0;
        let var: f64 = [1.0f64, -2.0, 3.0, 0.5].iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / 4.0;
        for (g, w) in l.iter().zip([1.0, -2.0, 3.0, 0.5]) {
            assert!((g - (w - mu) / var.sqrt()).abs() < 1e-4);
        }
        // All-zero row with eps = 0 is defined as zeros, not a division by zero.
        let z = q16(&[3], &[0.0, 0.0, 0.0]);
        assert_eq!(norm(&z, NormKind::Rms, 0).unwrap().as_i32().unwrap(), &[0, 0, 0]);
        assert!(norm(&z, NormKind::Rms, -1).is_err());
    }

    #[test]
    fn norm_test_vector() {
        // spec/opcodes.md, RMSNorm vector: x = [1, -2, 3, 0.5].
        let x = Tensor::from_i32(DType::Q16, &[4], vec![65536, -131072, 196608, 32768]).unwrap();
        assert_eq!(norm(&x, NormKind::Rms, 0).unwrap().as_i32().unwrap(), &[34722, -69444, 104166, 17361]);
    }

    #[test]
    fn quantize_rounds_half_even_and_clamps() {
        let x = Tensor::from_i32(DType::Q16, &[6], vec![0x18000, 0x28000, -0x18000, 200 << 16, -200 << 16, 0]).unwrap();
        let q = quantize(&x, 1 << 16).unwrap();
        assert_eq!(q.as_i8().unwrap(), &[2, 2, -2, 127, -127, 0]);
        assert!(quantize(&x, 0).is_err());
        let d = dequantize(&q, 1 << 15).unwrap();
        assert_eq!(d.as_i32().unwrap(), &[1 << 16, 1 << 16, -(1 << 16), 127 << 15, -127 << 15, 0]);
        let big = Tensor::from_i32(DType::I32, &[1], vec![i32::MAX]).unwrap();
        assert_eq!(dequantize(&big, 1 << 16).unwrap().as_i32().unwrap(), &[i32::MAX]);
    }

    #[test]
    fn add_saturates_and_checks_shapes() {
        let a = Tensor::from_i8(&[2], vec![120, -120]).unwrap();
        let b = Tensor::from_i8(&[2], vec![10, -10]).unwrap();
        assert_eq!(add(&a, &b).unwrap().as_i8().unwrap(), &[127, -128]);
        let c = Tensor::from_i8(&[1, 2], vec![1, 1]).unwrap();
        assert!(add(&a, &c).is_err());
    }
}
