//! The residual stream turned by a fixed orthogonal matrix `Q` (QuaRot, Ashkboos et al.
//! 2024). RMSNorm's output channels are few-large-many-small: one int8 scale per activation
//! row crushes the small ones. With every norm's gain folded into the weights that read it,
//! RMSNorm commutes with `Q` (`rms(x·Q) = rms(x)·Q`: `Q` keeps the sum of squares), so a model
//! whose embedding is `E·Q`, whose readers of the stream are `W·Q` and whose writers are
//! `Qᵀ·W` computes the same function on the turned stream, where the energy of the large
//! channels is spread over all of them.
//!
//! `Q` comes from Gram–Schmidt (twice, for orthogonality to f64 precision) on a matrix of
//! uniform entries from a fixed generator: no transcendental function, so no libm decides a
//! model's bytes. Any orthogonal matrix would do; this one is pinned by the conversion's test.

use super::axpy::add_scaled;
use super::FloatModel;
use rayon::prelude::*;

/// The generator's seed ("aivmrot1"): fixed, so every conversion turns the same way.
const SEED: u64 = 0x6169_766d_726f_7431;

/// Turn `m`'s residual stream by [`orthogonal`]`(d_model)`, folding the norms' gains first.
pub fn rotate(m: &mut FloatModel) {
    let d = m.config.d_model as usize;
    let q = orthogonal(d);
    for l in &mut m.layers {
        for w in [&mut l.wq, &mut l.wk, &mut l.wv] {
            scale_columns(w, &l.attn_norm);
        }
        for w in [&mut l.w_gate, &mut l.w_up] {
            scale_columns(w, &l.ffn_norm);
        }
        l.attn_norm.fill(1.0);
        l.ffn_norm.fill(1.0);
        for w in [&mut l.wq, &mut l.wk, &mut l.wv, &mut l.w_gate, &mut l.w_up] {
            *w = times(w, &q, d);
        }
        for w in [&mut l.wo, &mut l.w_down] {
            *w = transposed_times(&q, w, d);
        }
    }
    scale_columns(&mut m.output, &m.out_norm);
    m.out_norm.fill(1.0);
    m.output = times(&m.output, &q, d);
    m.embed = times(&m.embed, &q, d);
}

/// A `d × d` orthogonal matrix, row-major (its rows are orthonormal, so are its columns).
pub fn orthogonal(d: usize) -> Vec<f64> {
    let mut s = SEED;
    // splitmix64, then the top 53 bits as a uniform value in [-1, 1): exact.
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
    };
    let mut q: Vec<f64> = (0..d * d).map(|_| next()).collect();
    for i in 0..d {
        let (done, rest) = q.split_at_mut(i * d);
        let row = &mut rest[..d];
        for _ in 0..2 {
            for prev in done.chunks_exact(d) {
                let c = dot(prev, row);
                add_scaled(row, -c, prev);
            }
        }
        let n = dot(row, row).sqrt();
        row.iter_mut().for_each(|r| *r /= n);
    }
    q
}

/// `Σ a_i·b_i` in index order.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (&x, &y)| s + x * y)
}

/// `w[·, j] *= g_j` for a row-major matrix with `g.len()` columns.
fn scale_columns(w: &mut [f64], g: &[f64]) {
    for row in w.chunks_exact_mut(g.len()) {
        row.iter_mut().zip(g).for_each(|(v, &gj)| *v *= gj);
    }
}

/// Output rows made together, so each row of the right-hand matrix is read once per block
/// (from cache) rather than once per row; every element's sum keeps its `k` order.
const BLOCK: usize = 8;

/// `W·Q` for `W` of `d` columns: each output row sums `w_k · Q_k` in `k` order.
fn times(w: &[f64], q: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0f64; w.len()];
    out.par_chunks_mut(d * BLOCK).zip(w.par_chunks(d * BLOCK)).for_each(|(o, rows)| {
        for (k, qk) in q.chunks_exact(d).enumerate() {
            for (o, row) in o.chunks_exact_mut(d).zip(rows.chunks_exact(d)) {
                add_scaled(o, row[k], qk);
            }
        }
    });
    out
}

/// `Qᵀ·W` for `W` of `d` rows: output row `i` sums `Q_ki · w_k` in `k` order.
fn transposed_times(q: &[f64], w: &[f64], d: usize) -> Vec<f64> {
    let cols = w.len() / d;
    let mut out = vec![0f64; w.len()];
    out.par_chunks_mut(cols * BLOCK).enumerate().for_each(|(b, o)| {
        for (k, row) in w.chunks_exact(cols).enumerate() {
            for (i, o) in o.chunks_exact_mut(cols).enumerate() {
                add_scaled(o, q[k * d + b * BLOCK + i], row);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_orthogonal_and_fixed() {
        for d in [1, 8, 96] {
            let q = orthogonal(d);
            for i in 0..d {
                for j in 0..d {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot(&q[i * d..][..d], &q[j * d..][..d]) - want).abs() < 1e-13, "{d}: rows {i}, {j}");
                }
            }
            assert_eq!(q, orthogonal(d));
        }
        // Not the identity or a permutation: every entry of a row takes part.
        assert!(orthogonal(96).iter().all(|v| v.abs() > 0.0 && v.abs() < 0.9));
    }

    #[test]
    fn readers_and_writers_compose_to_the_same_map() {
        // (x·Q)·(W·Q)ᵀ = x·Wᵀ for a reader, and (a·(Qᵀ·W)ᵀ)·Qᵀ = a·Wᵀ for a writer.
        let d = 24;
        let q = orthogonal(d);
        let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
        let w: Vec<f64> = (0..3 * d).map(|i| (i as f64 * 0.11).cos()).collect();
        let xq = times(&x, &q, d);
        let wq = times(&w, &q, d);
        for r in 0..3 {
            let (a, b) = (dot(&xq, &wq[r * d..][..d]), dot(&x, &w[r * d..][..d]));
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Writer: W is d × 3; y = W·a (d outputs), turned: Qᵀ·W·a = (y·Q) as a row.
        let a = [0.3, -1.2, 2.0];
        let y: Vec<f64> = w.chunks(3).map(|r| dot(r, &a)).collect();
        let turned: Vec<f64> = transposed_times(&q, &w, d).chunks(3).map(|r| dot(r, &a)).collect();
        for (t, u) in turned.iter().zip(times(&y, &q, d)) {
            assert!((t - u).abs() < 1e-12, "{t} vs {u}");
        }
    }
}
