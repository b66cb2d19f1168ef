//! KL_DIVERGE: exact fixed-point Kullback–Leibler divergence of two Q16 distributions.

use crate::tensor::TensorError;
use crate::{Backend, CpuBackend};
use aivm_tensor::fixed::LN2_Q30;

/// Returned when some `q_i = 0` while `p_i > 0` (the divergence is infinite).
pub const KL_INFINITE: i64 = i64::MAX;

/// `KL(P‖Q) = Σ p_i · ln(p_i / q_i)` in nats, as Q32.32.
///
/// Inputs are raw Q16 values (non-negative; they need not sum to exactly 1). Terms with
/// `p_i = 0` are 0. With `d_i = log2_q30(p_i) − log2_q30(q_i)`, the sum `A = Σ p_i·d_i`
/// is exact in i128 (any order gives the same value), and the result is
/// `floor(A · LN2_Q30 / 2^44)` clamped to the i64 range.
pub fn kl_divergence_q16(p: &[i32], q: &[i32]) -> Result<i64, TensorError> {
    kl_divergence_q16_on(&CpuBackend::SERIAL, p, q)
}

/// [`kl_divergence_q16`] with the log ratios computed on a chosen backend. Inputs are checked
/// here, in index order: a negative element is an error and a `q_i = 0` under `p_i > 0` is
/// [`KL_INFINITE`], whichever comes first.
pub fn kl_divergence_q16_on(backend: &dyn Backend, p: &[i32], q: &[i32]) -> Result<i64, TensorError> {
    if p.len() != q.len() {
        return Err(TensorError::ShapeMismatch(format!("KL of {} vs {} elements", p.len(), q.len())));
    }
    for (&pi, &qi) in p.iter().zip(q) {
        if pi < 0 || qi < 0 {
            return Err(TensorError::Argument("KL inputs must be non-negative".into()));
        }
        if pi > 0 && qi == 0 {
            return Ok(KL_INFINITE);
        }
    }
    let d = backend.kl_log_ratios(p, q)?;
    let acc: i128 = p.iter().zip(&d).map(|(&pi, &di)| pi as i128 * di as i128).sum();
    let r = (acc * LN2_Q30 as i128) >> 44;
    Ok(r.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q16(v: &[f64]) -> Vec<i32> {
        v.iter().map(|x| (x * 65536.0).round() as i32).collect()
    }

    #[test]
    fn matches_float_reference() {
        let p = q16(&[0.1, 0.2, 0.3, 0.4]);
        let q = q16(&[0.25, 0.25, 0.25, 0.25]);
        let got = kl_divergence_q16(&p, &q).unwrap() as f64 / 2f64.powi(32);
        let pf: Vec<f64> = p.iter().map(|&x| x as f64 / 65536.0).collect();
        let qf: Vec<f64> = q.iter().map(|&x| x as f64 / 65536.0).collect();
        let want: f64 = pf.iter().zip(&qf).map(|(a, b)| a * (a / b).ln()).sum();
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        assert_eq!(kl_divergence_q16(&p, &p).unwrap(), 0);
    }

    #[test]
    fn test_vector_and_edge_cases() {
        // spec/opcodes.md, KL vector.
        let p = vec![6554, 13107, 19661, 26214];
        let q = vec![16384; 4];
        assert_eq!(kl_divergence_q16(&p, &q).unwrap(), 457_125_872);
        assert_eq!(kl_divergence_q16(&[1, 0], &[0, 1]).unwrap(), KL_INFINITE);
        assert_eq!(kl_divergence_q16(&[0, 5], &[0, 5]).unwrap(), 0);
        assert!(kl_divergence_q16(&[1], &[1, 2]).is_err());
        assert!(kl_divergence_q16(&[-1], &[1]).is_err());
    }
}
