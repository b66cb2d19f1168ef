//! SmoothQuant (Xiao et al. 2023, α = ½) on the down GEMM's input, the SwiGLU output: a few of
//! its channels are large and one int8 scale per activation row crushes the rest. With
//! `s_j = sqrt(max|x_j| / max_i |w_down[i][j]|)` (clamped to [2⁻⁸, 2⁸]; 1 where either
//! maximum is zero), the up weights' row `j` is divided by `s_j` (SwiGLU is linear in up, so
//! channel `j` of its output shrinks by `s_j`) and the down weights' column `j` multiplied by
//! it: the same function, the difficulty shared between activations and weights. IEEE-754
//! division and square root only.

use super::FloatModel;
use crate::sku::SkuError;

/// Smooth every layer's down input given its channels' largest |activation| (`down_max`).
pub fn smooth_down(m: &mut FloatModel, down_max: &[Vec<f64>]) -> Result<(), SkuError> {
    let f = m.config.ffn as usize;
    if down_max.len() != m.layers.len() || down_max.iter().any(|v| v.len() != f) {
        return Err(SkuError::Bad("down statistics do not match the model's shape".into()));
    }
    for (l, ax) in m.layers.iter_mut().zip(down_max) {
        let s = factors(ax, &l.w_down);
        for (row, &sj) in l.w_up.chunks_exact_mut(m.config.d_model as usize).zip(&s) {
            row.iter_mut().for_each(|v| *v /= sj);
        }
        for row in l.w_down.chunks_exact_mut(f) {
            row.iter_mut().zip(&s).for_each(|(v, &sj)| *v *= sj);
        }
    }
    Ok(())
}

/// `s_j` for each of `w`'s `ax.len()` columns (row-major).
fn factors(ax: &[f64], w: &[f64]) -> Vec<f64> {
    let mut aw = vec![0f64; ax.len()];
    for row in w.chunks_exact(ax.len()) {
        aw.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
    }
    ax.iter()
        .zip(&aw)
        .map(|(&x, &w)| if x > 0.0 && w > 0.0 && x.is_finite() && w.is_finite() { (x / w).sqrt().clamp(1.0 / 256.0, 256.0) } else { 1.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_balance_each_channel_and_clamp() {
        let w = [0.1f64, -0.2, 0.3, -0.01, 0.02, 0.5];
        let s = factors(&[0.5, 10.0, 4.0], &w);
        assert_eq!(s, vec![(0.5f64 / 0.1).sqrt(), (10.0f64 / 0.2).sqrt(), (4.0f64 / 0.5).sqrt()]);
        // Balanced: x_j / s_j = max|w_·j| · s_j.
        for ((x, aw), s) in [0.5, 10.0, 4.0].iter().zip([0.1, 0.2, 0.5]).zip(&s) {
            assert!((x / s - aw * s).abs() < 1e-12);
        }
        assert_eq!(factors(&[0.0, 1e30, 1.0], &[1.0, 1.0, 0.0]), vec![1.0, 256.0, 1.0]);
    }
}
