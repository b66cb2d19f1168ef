//! The algebra: Freivalds' check `Y·r = X·(B·r)` for one GEMM, exact in integers. The
//! reference form ([`freivalds`]) and the same products on the int8 GEMM kernel ([`FastCheck`]).

use crate::commit::GemmData;
use crate::engine::{GemmId, GemmKind};
use crate::sku::{QMatrix, Sku};
use aivm_tensor::gemm::{gemm, Packed};
use aivm_tensor::matmul::SimdPath;

/// Weight matrix of a weight GEMM.
pub(super) fn weight<'s>(sku: &'s Sku, id: &GemmId) -> Option<&'s QMatrix> {
    let l = sku.layers.get(id.layer as usize);
    Some(match id.kind {
        GemmKind::Q => &l?.wq,
        GemmKind::K => &l?.wk,
        GemmKind::V => &l?.wv,
        GemmKind::O => &l?.wo,
        GemmKind::Gate => &l?.w_gate,
        GemmKind::Up => &l?.w_up,
        GemmKind::Down => &l?.w_down,
        GemmKind::Logits => &sku.output,
        GemmKind::Scores | GemmKind::Mix => return None,
    })
}

/// `B·r` for the GEMM's right operand `B [k×n]`: `Wᵀ r` (rows of W weighted, weights and
/// scores) or `V r` (mix). Exact in i64.
fn b_times(b: &[i8], k: usize, n: usize, transposed_rows: bool, r: &[i8]) -> Vec<i64> {
    let mut out = vec![0i64; k];
    if transposed_rows {
        // B = Wᵀ with W [n×k]: out = Σ_j r_j · W_j.
        for (j, row) in b.chunks_exact(k).take(n).enumerate() {
            let rj = r[j] as i64;
            for (o, &w) in out.iter_mut().zip(row) {
                *o += rj * w as i64;
            }
        }
    } else {
        // B = V [k×n]: out_p = V_p · r.
        for (o, row) in out.iter_mut().zip(b.chunks_exact(n)) {
            *o = row.iter().zip(r).map(|(&v, &x)| v as i64 * x as i64).sum();
        }
    }
    out
}

/// Freivalds on one GEMM: `Y·r == X·(B·r)` for every vector, exactly in i128. The reference
/// form; [`FastCheck`] computes the same products with the int8 GEMM kernel.
pub fn freivalds(g: &GemmData, b: &[i8], transposed_rows: bool, rs: &[Vec<i8>]) -> bool {
    let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
    if g.x.len() != m * k || g.y.len() != m * n || b.len() != k * n {
        return false;
    }
    rs.iter().all(|r| {
        let br = b_times(b, k, n, transposed_rows, r);
        (0..m).all(|i| {
            let lhs: i128 = g.x[i * k..(i + 1) * k].iter().zip(&br).map(|(&x, &v)| x as i128 * v as i128).sum();
            let rhs: i128 = g.y[i * n..(i + 1) * n].iter().zip(r.iter()).map(|(&y, &v)| y as i128 * v as i128).sum();
            lhs == rhs
        })
    })
}

/// Freivalds for a weight GEMM `Y = X·Wᵀ` on the int8 GEMM kernel. The verifier packs `Wᵀ`
/// once per model ([`FastCheck::new`]); each check is then three exact int8 products:
/// `G = R·W` (`[8×k]`), `X·Gᵀ` with G split into signed base-256 digit planes, and `Y·Rᵀ`
/// with Y split the same way. Every partial sum is below 128·128·2^17 < 2^31, so the
/// kernel is exact and the planes recombine exactly in i64.
pub struct FastCheck {
    /// `Wᵀ` as `[k × n]` rows (reduction over W's rows).
    wt: Packed,
    n: usize,
    k: usize,
}

/// Signed base-256 digits of `v` (five suffice for |v| < 2^39): `v = Σ d_b·256^b`.
pub(super) fn digits(v: i64) -> [i8; 5] {
    let mut d = [0i8; 5];
    let mut v = v;
    for x in &mut d {
        *x = v as i8;
        v = (v - *x as i64) >> 8;
    }
    d
}

impl FastCheck {
    pub fn new(w: &QMatrix) -> Self {
        let (n, k) = (w.rows, w.cols);
        let mut t = vec![0i8; n * k];
        for j in 0..n {
            for p in 0..k {
                t[p * n + j] = w.q[j * k + p];
            }
        }
        Self { wt: Packed::new(&t, k, n), n, k }
    }

    /// `Y·r == X·(Wᵀr)` for every vector in `rs`.
    pub fn check(&self, x: &[i8], y: &[i32], m: usize, rs: &[Vec<i8>], path: SimdPath, threads: usize) -> bool {
        let (n, k, v) = (self.n, self.k, rs.len());
        if x.len() != m * k || y.len() != m * n || rs.iter().any(|r| r.len() != n) {
            return false;
        }
        // G[v] = Σ_j r_v[j]·W[j]: R [v×n] · (Wᵀ)ᵀ.
        let r: Vec<i8> = rs.iter().flatten().copied().collect();
        let mut g = vec![0i32; v * k];
        gemm(&r, v, &self.wt, &mut g, path, threads);
        // X·Gᵀ by digit planes: rows (plane, vector) of a [5v × k] matrix.
        let mut planes = vec![0i8; 5 * v * k];
        for (i, &gv) in g.iter().enumerate() {
            for (b, d) in digits(gv as i64).into_iter().enumerate() {
                planes[b * v * k + i] = d;
            }
        }
        let gp = Packed::new(&planes, 5 * v, k);
        let mut xg = vec![0i32; m * 5 * v];
        gemm(x, m, &gp, &mut xg, path, threads);
        // Y·Rᵀ directly in i64, with R transposed so each Y element meets its 8 entries.
        let mut rt = vec![0i64; n * v];
        for (j, chunk) in rt.chunks_exact_mut(v).enumerate() {
            for (vi, c) in chunk.iter_mut().enumerate() {
                *c = rs[vi][j] as i64;
            }
        }
        // Rows split across threads; each row's sums are independent and exact.
        let per = m.div_ceil(threads.max(1)).max(1);
        // On rayon's persistent pool; chunks are concatenated in order.
        let yr: Vec<i64> = {
            use rayon::prelude::*;
            let parts: Vec<Vec<i64>> = y.par_chunks(per * n).map(|part| y_times_r(part, part.len() / n, n, &rt, v)).collect();
            parts.concat()
        };
        if yr.len() != m * v {
            return false;
        }
        (0..m).all(|i| {
            (0..v).all(|j| {
                let lhs: i64 = (0..5).map(|b| (xg[i * 5 * v + b * v + j] as i64) << (8 * b)).sum();
                lhs == yr[i * v + j]
            })
        })
    }
}

/// `Y [m×n] · Rᵀ` where `rt` is `[n × v]`: exact i64 sums (|y·r| < 2^38, n < 2^17).
fn y_times_r(y: &[i32], m: usize, n: usize, rt: &[i64], v: usize) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    if aivm_tensor::cpu::features().avx512_dq && v == 8 {
        // SAFETY: the CPU has avx512f + avx512dq (checked); the body is the same safe loop.
        return unsafe { y_times_r_avx512(y, m, n, rt) };
    }
    y_times_r_plain(y, m, n, rt, v)
}

#[inline(always)]
fn y_times_r_plain(y: &[i32], m: usize, n: usize, rt: &[i64], v: usize) -> Vec<i64> {
    let mut out = vec![0i64; m * v];
    for (yr, o) in y.chunks_exact(n).take(m).zip(out.chunks_exact_mut(v)) {
        for (&yv, r) in yr.iter().zip(rt.chunks_exact(v)) {
            for (acc, &rv) in o.iter_mut().zip(r) {
                *acc += yv as i64 * rv;
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn y_times_r_avx512(y: &[i32], m: usize, n: usize, rt: &[i64]) -> Vec<i64> {
    y_times_r_plain(y, m, n, rt, 8)
}
