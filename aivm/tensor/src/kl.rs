//! The KL divergence kernel: per-element log ratios in Q30 (the validated operation,
//! KL_DIVERGE, is `aivm_backend::tensor::kl`).

use crate::fixed::log2_q30;

/// The CPU's per-element `log2_q30(p_i) − log2_q30(q_i)`, 0 where `p_i = 0` (the caller checks the inputs: `aivm_backend::tensor::kl`).
pub fn log_ratios(p: &[i32], q: &[i32]) -> Vec<i64> {
    p.iter().zip(q).map(|(&pi, &qi)| if pi <= 0 || qi <= 0 { 0 } else { log2_q30(pi as u64) - log2_q30(qi as u64) }).collect()
}
