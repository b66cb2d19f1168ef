//! GPTQ rounding (Frantar et al. 2022) onto the SKU's grid: int8 with one scale per row, the
//! scale fixed first by the rule every weight uses (`sku::quantize_groups`). Columns are
//! rounded one at a time, those with the most input energy (`XᵀX`'s diagonal) first (GPTQ's
//! "act-order"); the error of column `j`, divided by `U_jj`, is taken off the later columns
//! in proportion to row `j` of `U`, the upper Cholesky factor of `(XᵀX + λI)⁻¹` (rows and
//! columns in that order): the later
//! columns absorb what rounding `j` did to `X·wᵀ` on the calibration inputs `X`. Rows are
//! independent and split across threads; each row's arithmetic runs in one fixed order.

use super::axpy::add_scaled;
use crate::sku::{quantize_rows, QMatrix, SkuError};
use rayon::prelude::*;

/// Dampening added to `XᵀX`'s diagonal, as a fraction of its mean (GPTQ's default).
const DAMP: f64 = 0.01;

/// The upper Cholesky factor `U` (`UᵀU = A⁻¹`) of `A = XᵀX + λI`, for the matrices that
/// read one input.
pub struct Factor {
    u: Vec<f64>,
    n: usize,
    /// The order columns are rounded in: largest `XᵀX` diagonal first (GPTQ's act-order).
    order: Vec<usize>,
}

impl Factor {
    /// From `h = XᵀX` (`n × n`, only its upper triangle read), `λ = DAMP · mean(diag h)`; a dead
    /// input (zero diagonal) gets 1 there, as GPTQ does. `None` if `A` is not positive definite.
    pub fn new(h: &[f64], n: usize) -> Option<Factor> {
        if h.len() != n * n {
            return None;
        }
        let at = |i: usize, j: usize| if i <= j { h[i * n + j] } else { h[j * n + i] };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| at(y, y).total_cmp(&at(x, x)).then(x.cmp(&y)));
        let mut a = vec![0f64; n * n];
        for (i, &oi) in order.iter().enumerate() {
            for (j, &oj) in order.iter().enumerate() {
                a[i * n + j] = at(oi, oj);
            }
        }
        let mean = (0..n).fold(0.0, |s, i| s + a[i * n + i]) / n as f64;
        for i in 0..n {
            if a[i * n + i] == 0.0 {
                a[i * n + i] = 1.0;
            }
            a[i * n + i] += DAMP * mean;
        }
        let l = cholesky(&a, n)?;
        // L⁻¹ (lower triangular), row by row: row r = (e_r − Σ_{k<r} L_rk · row k) / L_rr.
        let mut li = vec![0f64; n * n];
        for r in 0..n {
            let (done, rest) = li.split_at_mut(r * n);
            let row = &mut rest[..n];
            row[r] = 1.0;
            for (k, prev) in done.chunks_exact(n).enumerate() {
                add_scaled(&mut row[..r], -l[r * n + k], &prev[..r]);
            }
            row[..=r].iter_mut().for_each(|v| *v /= l[r * n + r]);
        }
        // A⁻¹ = L⁻ᵀ·L⁻¹: row i sums L⁻¹_ki · (row k of L⁻¹) over k ≥ i, in k order.
        let mut inv = vec![0f64; n * n];
        for (i, row) in inv.chunks_exact_mut(n).enumerate() {
            for k in i..n {
                add_scaled(row, li[k * n + i], &li[k * n..(k + 1) * n]);
            }
        }
        let f = cholesky(&inv, n)?;
        let mut u = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                u[j * n + i] = f[i * n + j];
            }
        }
        Some(Factor { u, n, order })
    }
}

/// Round `w` (`rows × cols`, row-major) against `factor` (its `n` = `cols`), or to nearest
/// without one (statistics that were degenerate: the model still converts, deterministically).
pub fn quantize(w: &[f64], rows: usize, cols: usize, factor: Option<&Factor>) -> Result<QMatrix, SkuError> {
    let mut m = quantize_rows(w, rows, cols)?;
    let Some(Factor { u, n, order }) = factor else { return Ok(m) };
    if *n != cols {
        return Err(SkuError::Bad(format!("GPTQ statistics of width {n} for a matrix of width {cols}")));
    }
    let (q, scales) = (&mut m.q, &m.scales);
    q.par_chunks_mut(cols).zip(w.par_chunks(cols)).zip(scales.par_iter()).for_each(|((q, row), s)| {
        let sv = s.value();
        if sv == 0.0 {
            return;
        }
        let mut r: Vec<f64> = order.iter().map(|&c| row[c]).collect();
        for j in 0..cols {
            let v = (r[j] / sv).round_ties_even().clamp(-127.0, 127.0);
            q[order[j]] = v as i8;
            let err = (r[j] - v * sv) / u[j * cols + j];
            add_scaled(&mut r[j + 1..], -err, &u[j * cols + j + 1..(j + 1) * cols]);
        }
    });
    Ok(m)
}

/// The lower Cholesky factor of a symmetric `n × n` matrix (its lower triangle read), or
/// `None` if a pivot is not positive (or not finite). Right-looking: once column `k` is made
/// it is taken off the later rows, so each entry becomes `a_ij − l_i0·l_j0 − l_i1·l_j1 − …` in
/// `k` order, the textbook sum, with the rows' updates vectorized.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    let mut col = vec![0f64; n];
    for k in 0..n {
        let p = l[k * n + k];
        if !(p > 0.0 && p.is_finite()) {
            return None;
        }
        let d = p.sqrt();
        l[k * n + k] = d;
        for i in k + 1..n {
            l[i * n + k] /= d;
            col[i] = l[i * n + k];
        }
        for i in k + 1..n {
            add_scaled(&mut l[i * n + k + 1..=i * n + i], -col[i], &col[k + 1..=i]);
        }
    }
    for i in 0..n {
        l[i * n + i + 1..(i + 1) * n].fill(0.0);
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Σ_rows ‖X·(w − ŵ)ᵀ‖²` of a rounding, with the rounded weights dequantized.
    fn output_error(x: &[f64], rows_x: usize, w: &[f64], m: &QMatrix) -> f64 {
        let cols = m.cols;
        let mut e = 0.0;
        for (r, (wr, s)) in w.chunks(cols).zip(&m.scales).enumerate() {
            let sv = s.value();
            for xr in x.chunks(cols).take(rows_x) {
                let y: f64 = (0..cols).map(|j| xr[j] * (wr[j] - m.q[r * cols + j] as f64 * sv)).sum();
                e += y * y;
            }
        }
        e
    }

    fn xtx(x: &[f64], n: usize) -> Vec<f64> {
        let mut h = vec![0f64; n * n];
        for r in x.chunks(n) {
            for i in 0..n {
                for j in i..n {
                    h[i * n + j] += r[i] * r[j];
                }
            }
        }
        h
    }

    #[test]
    fn gptq_lowers_the_output_error_on_correlated_inputs() {
        // Inputs with correlated channels, as a model's are: GPTQ's rounding errs less on
        // X·wᵀ than rounding to nearest, on the same grid (same scales).
        let (n, rows, samples) = (32, 16, 256);
        let mut s = 12345u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let base: Vec<f64> = (0..samples * 4).map(|_| rnd()).collect();
        let base = &base;
        let x: Vec<f64> =
            (0..samples).flat_map(|t| (0..n).map(move |j| base[t * 4 + j % 4] * (1.0 + j as f64 / 8.0) + 0.05 * (j as f64 * 0.7).sin())).collect();
        let w: Vec<f64> = (0..rows * n).map(|_| rnd() * 0.2).collect();
        let h = xtx(&x, n);
        let f = Factor::new(&h, n).unwrap();
        let g = quantize(&w, rows, n, Some(&f)).unwrap();
        let rtn = quantize_rows(&w, rows, n).unwrap();
        assert_eq!(g.scales, rtn.scales);
        assert_ne!(g.q, rtn.q);
        let (eg, er) = (output_error(&x, samples, &w, &g), output_error(&x, samples, &w, &rtn));
        assert!(eg < 0.7 * er, "GPTQ {eg} vs nearest {er}");
        // Deterministic, and the same as one thread's.
        assert_eq!(quantize(&w, rows, n, Factor::new(&h, n).as_ref()).unwrap(), g);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one.install(|| quantize(&w, rows, n, Some(&f)).unwrap()), g);
        // A factor of another width is an error, not a panic.
        assert!(quantize(&w[..rows * 8], rows, 8, Some(&f)).is_err());
    }

    #[test]
    fn the_factor_inverts_the_dampened_statistics() {
        let n: usize = 6;
        let h: Vec<f64> = (0..n * n).map(|k| if k / n == k % n { 4.0 } else { 1.0 / (1 + (k / n).abs_diff(k % n)) as f64 }).collect();
        let u = Factor::new(&h, n).unwrap().u;
        // Uᵀ·U·A = I with A = h + λI.
        let lambda = DAMP * 4.0;
        for i in 0..n {
            for j in 0..n {
                let mut s = 0.0;
                for k in 0..n {
                    let inv_ik: f64 = (0..n).map(|m| u[m * n + i] * u[m * n + k]).sum();
                    s += inv_ik * (h[k * n + j] + if k == j { lambda } else { 0.0 });
                }
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "{i},{j}: {s}");
            }
            for j in 0..i {
                assert_eq!(u[i * n + j], 0.0, "upper triangular");
            }
        }
        // Columns are rounded largest diagonal first, ties in index order.
        let mut h2 = h.clone();
        h2[2 * n + 2] = 9.0;
        h2[5 * n + 5] = 3.0;
        assert_eq!(Factor::new(&h2, n).unwrap().order, vec![2, 0, 1, 3, 4, 5]);
        // Not positive definite: none, and quantize falls back to nearest.
        let bad = vec![-1.0; n * n];
        assert!(Factor::new(&bad, n).is_none());
        assert!(Factor::new(&h[1..], n).is_none());
        let w: Vec<f64> = (0..2 * n).map(|i| i as f64 / 10.0 - 0.5).collect();
        assert_eq!(quantize(&w, 2, n, None).unwrap(), quantize_rows(&w, 2, n).unwrap());
        // The right-looking factor is the textbook one, bit for bit.
        let a: Vec<f64> = (0..n * n).map(|k| h[k] + if k / n == k % n { lambda } else { 0.0 }).collect();
        let mut want = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s = (0..j).fold(a[i * n + j], |s, k| s - want[i * n + k] * want[j * n + k]);
                want[i * n + j] = if i == j { s.sqrt() } else { s / want[j * n + j] };
            }
        }
        assert_eq!(cholesky(&a, n).unwrap(), want);
    }
}
