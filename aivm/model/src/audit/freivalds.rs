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

/// Freivalds on one GEMM: `Y·r == X·(B·r)` for every vector, exactly. The reference form;
/// [`FastCheck`] computes the same products with the int8 GEMM kernel.
///
/// The sums are exact in i64 while `k, n ≤ 2²⁰`: each entry of `B·r` sums `n` products of
/// at most 2¹⁴, so `|X·(B·r)| ≤ 2²¹·k·n ≤ 2⁶¹`, and `|Y·r| < 2³⁸·n ≤ 2⁵⁸`; larger shapes
/// use i128.
pub fn freivalds(g: &GemmData, b: &[i8], transposed_rows: bool, rs: &[Vec<i8>]) -> bool {
    let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
    if g.x.len() != m * k || g.y.len() != m * n || b.len() != k * n {
        return false;
    }
    let narrow = k <= 1 << 20 && n <= 1 << 20;
    rs.iter().all(|r| {
        let br = b_times(b, k, n, transposed_rows, r);
        (0..m).all(|i| {
            let (x, y) = (&g.x[i * k..(i + 1) * k], &g.y[i * n..(i + 1) * n]);
            if narrow {
                let lhs: i64 = x.iter().zip(&br).map(|(&x, &v)| x as i64 * v).sum();
                let rhs: i64 = y.iter().zip(r.iter()).map(|(&y, &v)| y as i64 * v as i64).sum();
                lhs == rhs
            } else {
                let lhs: i128 = x.iter().zip(&br).map(|(&x, &v)| x as i128 * v as i128).sum();
                let rhs: i128 = y.iter().zip(r.iter()).map(|(&y, &v)| y as i128 * v as i128).sum();
                lhs == rhs
            }
        })
    })
}

/// GEMMs with fewer rows than Freivalds has vectors are checked by recomputing them: `m·k·n`
/// multiply-adds against Freivalds' `8·(k·n + m·k + m·n)`, and exact rather than
/// probabilistic.
pub fn recompute_cheaper(m: usize) -> bool {
    m < super::challenge::VECTORS
}

/// MACs per work unit of a recomputed GEMM ([`check_work`]). Recomputation runs on the
/// unpacked-weight kernel (`aivm_tensor::rows`, VNNI); measured by gas-bench's
/// FREIVALDS_VERIFY rows on decode-step openings (`spec/gas.md`).
pub const RECOMPUTE_MACS_PER_UNIT: u64 = 32;
/// Work units per row an opening's check hashes to recommit it ([`opening_work`]): each
/// row is a Merkle leaf and, above it, a node. Measured on a decode step's attention
/// openings, whose cache operands are hundreds of 64-byte rows (`spec/gas.md`).
pub const UNITS_PER_HASHED_ROW: u64 = 64;

/// The work units FREIVALDS_VERIFY prices for checking an `m × k × n` GEMM (beyond hashing
/// the opening): `2·(k·n + m·k + m·n)` elements for Freivalds, or
/// `⌈m·k·n / RECOMPUTE_MACS_PER_UNIT⌉` when the GEMM is recomputed ([`recompute_cheaper`]).
/// `None` on overflow.
pub fn check_work(m: u64, k: u64, n: u64) -> Option<u64> {
    if recompute_cheaper(usize::try_from(m).ok()?) {
        Some(m.checked_mul(k)?.checked_mul(n)?.div_ceil(RECOMPUTE_MACS_PER_UNIT))
    } else {
        k.checked_mul(n)?.checked_add(m.checked_mul(k)?)?.checked_add(m.checked_mul(n)?)?.checked_mul(2)
    }
}

/// Weight elements per work unit of a weight GEMM's Freivalds check ([`weight_check_work`]):
/// `G = R·W` streams the packed `Wᵀ` once, 0.15–0.3 ns an element measured.
pub const WEIGHT_ELEMENTS_PER_UNIT: u64 = 8;
/// X elements per work unit of the same check: `X·Gᵀ` on the int8 kernel and X's recommit,
/// ~0.95 ns a row element measured.
pub const X_ELEMENTS_PER_UNIT: u64 = 2;
/// Work units per weight GEMM checked by Freivalds whatever its size: drawing the vectors,
/// allocating and packing `G`'s digit planes, handing the work to the pool (the measured
/// intercept, 50–70 µs).
pub const UNITS_PER_WEIGHT_CHECK: u64 = 32_768;

/// The work units of checking a weight GEMM `[m×k]·Wᵀ` (W `[n×k]`, a model's, packed for
/// checks when the node loaded it: `prepare_checks`): recomputed as [`check_work`] prices it
/// when it has fewer rows than vectors, else Freivalds on the packed kernel —
/// `⌈k·n / 8⌉ + ⌈m·k / 2⌉ + m·n + 32 768`, one unit a Y element (`Y·Rᵀ` and Y's recommit,
/// ~2.2 ns measured). Fitted to gas-bench's FREIVALDS_VERIFY rows of every weight kind at
/// m = 8, 16, 64 and 256 (`spec/gas.md`); [`check_work`]'s `2·(k·n + m·k + m·n)`, which the
/// reference form of attention GEMMs takes, charged these 3–13× their time.
pub fn weight_check_work(m: u64, k: u64, n: u64) -> Option<u64> {
    if recompute_cheaper(usize::try_from(m).ok()?) {
        return check_work(m, k, n);
    }
    k.checked_mul(n)?
        .div_ceil(WEIGHT_ELEMENTS_PER_UNIT)
        .checked_add(m.checked_mul(k)?.div_ceil(X_ELEMENTS_PER_UNIT))?
        .checked_add(m.checked_mul(n)?)?
        .checked_add(UNITS_PER_WEIGHT_CHECK)
}

/// The work units of checking one opened GEMM as committed: [`weight_check_work`] for a
/// weight GEMM, [`check_work`] for an attention GEMM (whose right operand is the opening's),
/// plus [`UNITS_PER_HASHED_ROW`] for each row recommitted — `m` rows of X, `m` of Y, and the
/// cache operand's rows when the opening carries one (`n` keys for scores, `k` values for
/// mix). From the commitment's shape alone, so it is known before the check runs.
pub fn opening_work(c: &crate::commit::GemmCommit, has_rhs: bool) -> Option<u64> {
    let (m, k, n) = (c.m as u64, c.k as u64, c.n as u64);
    let rhs_rows = match (has_rhs, c.kind == GemmKind::Mix as u8) {
        (false, _) => 0,
        (true, true) => k,
        (true, false) => n,
    };
    let rows = m.checked_mul(2)?.checked_add(rhs_rows)?;
    let weight = !has_rhs && GemmKind::from_code(c.kind).is_some_and(|k| k.is_weight());
    let work = if weight { weight_check_work(m, k, n)? } else { check_work(m, k, n)? };
    work.checked_add(rows.checked_mul(UNITS_PER_HASHED_ROW)?)
}

/// `y == W·x` for one row, exactly: `w` a weight as stored (`[n×k]`), `x [k]`, `y [n]`. Each
/// dot product is summed in i32, exact for `k < 2¹⁷` (`|w·x| ≤ 2¹⁴`); longer rows in i64.
pub(super) fn row_product_holds(w: &[i8], n: usize, k: usize, x: &[i8], y: &[i32]) -> bool {
    weight_product_holds(w, n, k, x, 1, y)
}

/// `y == x·Wᵀ` for `m` rows, exactly: `w` a weight as stored (`[n×k]`), `x [m×k]`, `y [m×n]`.
/// On the unpacked-weight kernel (`aivm_tensor::rows`: VNNI where the CPU has it, exact on
/// every path); a product that does not fit i32 cannot equal a committed `y`.
fn weight_product_holds(w: &[i8], n: usize, k: usize, x: &[i8], m: usize, y: &[i32]) -> bool {
    if k == 0 || x.len() != m * k || y.len() != m * n || w.len() != n * k {
        return false;
    }
    let mut want = vec![0i32; m * n];
    aivm_tensor::rows::rows_times_weight(x, m, w, n, k, &mut want) && want == y
}

/// `Y == X·B` exactly (each dot product in i64: `|x·b| ≤ 2¹⁴`, so `k ≤ 2⁴⁸` terms fit).
pub fn recompute(g: &GemmData, b: &[i8], transposed_rows: bool) -> bool {
    let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
    if g.x.len() != m * k || g.y.len() != m * n || b.len() != k * n {
        return false;
    }
    if transposed_rows {
        // B = Wᵀ with W [n×k]: y_j = W_j · x, contiguous dot products.
        return weight_product_holds(b, n, k, &g.x, m, &g.y);
    }
    // B = V [k×n]: y = x·V, on the same kernel with V transposed to [n×k].
    let mut vt = vec![0i8; k * n];
    for (p, row) in b.chunks_exact(n).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            vt[j * k + p] = v;
        }
    }
    weight_product_holds(&vt, n, k, &g.x, m, &g.y)
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

/// The least and greatest values four signed base-256 digits (each in −128..=127) hold:
/// `∓128`, `127` times `1 + 256 + 256² + 256³`. Every i32 of `G = R·W` but the top ~0.4 %
/// of the range; a weight whose `G` has such an entry takes five digits.
const FOUR_DIGITS: std::ops::RangeInclusive<i64> = -128 * 16_843_009..=127 * 16_843_009;

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
    /// The check of weight `w`, packed on first use and kept with the weight.
    pub fn of(w: &QMatrix) -> Option<&FastCheck> {
        w.derived.get_or_init(|| FastCheck::new(w))
    }

    pub fn new(w: &QMatrix) -> Self {
        let (n, k) = (w.rows, w.cols);
        // `Wᵀ` by 64 × 64 tiles: a plain strided transpose missed the cache on every byte,
        // most of the packing's time (~0.4 s for SmolLM2, which `aivm model verify` pays).
        const TILE: usize = 64;
        let mut t = vec![0i8; n * k];
        for j0 in (0..n).step_by(TILE) {
            for p0 in (0..k).step_by(TILE) {
                for j in j0..(j0 + TILE).min(n) {
                    let row = &w.q[j * k..(j + 1) * k];
                    for p in p0..(p0 + TILE).min(k) {
                        t[p * n + j] = row[p];
                    }
                }
            }
        }
        Self { wt: Packed::resident(&t, k, n), n, k }
    }

    /// `Y·r == X·(Wᵀr)` for every vector in `rs`.
    pub fn check(&self, x: &[i8], y: &[i32], m: usize, rs: &[Vec<i8>], path: SimdPath, threads: usize) -> bool {
        if x.len() != m * self.k || y.len() != m * self.n {
            return false;
        }
        match self.prepare(rs, path, threads) {
            Some(p) => self.check_prepared(&p, x, y, m, threads),
            None => false,
        }
    }

    /// The half of a check that depends only on the weight and the vectors: `G = R·W` (as
    /// digit planes, packed) and `R` for `Y·Rᵀ`. It streams all of W, so checks of several
    /// GEMMs with the same weight under the same vectors share it ([`Self::check_prepared`]).
    /// `None` if a vector's length is not `n`.
    pub fn prepare(&self, rs: &[Vec<i8>], path: SimdPath, threads: usize) -> Option<Prepared> {
        let (n, k, v) = (self.n, self.k, rs.len());
        if rs.iter().any(|r| r.len() != n) {
            return None;
        }
        // G[v] = Σ_j r_v[j]·W[j]: R [v×n] · (Wᵀ)ᵀ.
        let r: Vec<i8> = rs.iter().flatten().copied().collect();
        let mut g = vec![0i32; v * k];
        gemm(&r, v, &self.wt, &mut g, path, threads);
        // X·Gᵀ by digit planes: rows (plane, vector) of a [planes·v × k] matrix. Four planes
        // hold every entry unless one is at the top of the i32 range (|r·w| ≤ 2^14 summed
        // over n < 2^17 rows can reach it only for n > 130 000): 32 columns, one panel of
        // the int8 kernel, where five took two.
        let count = if g.iter().all(|&gv| FOUR_DIGITS.contains(&(gv as i64))) { 4 } else { 5 };
        let mut planes = vec![0i8; count * v * k];
        for (i, &gv) in g.iter().enumerate() {
            for (b, d) in digits(gv as i64).into_iter().enumerate().take(count) {
                planes[b * v * k + i] = d;
            }
        }
        Some(Prepared { gp: Packed::new(&planes, count * v, k), rows: YTimesR::new(rs, n, path), v, planes: count, path })
    }

    /// The per-GEMM half: `X·Gᵀ` and `Y·Rᵀ` against `p` (made by [`Self::prepare`] for this
    /// weight).
    pub fn check_prepared(&self, p: &Prepared, x: &[i8], y: &[i32], m: usize, threads: usize) -> bool {
        let (n, k, v) = (self.n, self.k, p.v);
        if x.len() != m * k || y.len() != m * n || p.gp.k != k {
            return false;
        }
        let planes = p.planes;
        let mut xg = vec![0i32; m * planes * v];
        gemm(x, m, &p.gp, &mut xg, p.path, threads);
        // Y·Rᵀ: rows split across threads; each row's sums are independent and exact.
        let per = m.div_ceil(threads.max(1)).max(1);
        // On rayon's persistent pool; chunks are concatenated in order.
        let yr: Vec<i64> = {
            use rayon::prelude::*;
            let parts: Vec<Vec<i64>> = y.par_chunks(per * n).map(|part| p.rows.apply(part, part.len() / n)).collect();
            parts.concat()
        };
        if yr.len() != m * v {
            return false;
        }
        (0..m).all(|i| {
            (0..v).all(|j| {
                let lhs: i64 = (0..planes).map(|b| (xg[i * planes * v + b * v + j] as i64) << (8 * b)).sum();
                lhs == yr[i * v + j]
            })
        })
    }
}

/// A weight's check prepared for one set of vectors ([`FastCheck::prepare`]).
pub struct Prepared {
    /// The digit planes of `G = R·W`, packed as the weight operand of `X·Gᵀ`.
    gp: Packed,
    rows: YTimesR,
    v: usize,
    /// Digit planes in `gp`: four, or five when an entry of G needs it ([`FOUR_DIGITS`]).
    planes: usize,
    path: SimdPath,
}

/// Pack every weight of `sku` for [`FastCheck`] now (on rayon's pool), so that no check pays
/// for it inside a block: a validator does this when it loads a registered model. Costs a
/// second copy of the int8 weights in memory.
pub fn prepare_checks(sku: &Sku) {
    use rayon::prelude::*;
    let mut all: Vec<&QMatrix> = sku.layers.iter().flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]).collect();
    all.push(&sku.output);
    all.par_iter().for_each(|w| {
        FastCheck::of(w);
    });
}

/// `Y [m×n] · Rᵀ` for the challenge's vectors `R [v×n]`, exact in i64 (|y·r| < 2^38,
/// n < 2^17). The SIMD form splits each i32 of Y into signed 16-bit halves `y = hi·2^16 + lo`
/// and multiplies both against R widened to i16 with 16-bit multiply-adds (`vpmaddwd`: 32
/// products an instruction, where the i64 form does 8): every pair sum is below 2^23, so
/// 255 blocks of 32 columns accumulate exactly in i32 before they are widened. A row with an
/// element at or above `2^31 − 2^15` (whose `hi` would be 2^15, outside i16) is summed by
/// the plain form instead; honest GEMMs are far below it. CPUs with AVX2 but not AVX-512 BW
/// run the same split sixteen columns at a time ([`row_times_r_avx2`]).
pub(super) struct YTimesR {
    n: usize,
    form: Form,
}

enum Form {
    /// `[n × v]` i64: each Y element meets its v entries.
    Plain { rt: Vec<i64>, v: usize },
    /// `[8 × n]` as i8, for the byte-plane kernel ([`row_times_r_vnni`]), with each vector's
    /// sum over the columns the kernel covers (its sign correction).
    Vnni { r8: Vec<i8>, rsum: [i64; SIMD_V] },
    /// `[8 × n]` as i16, for the 16-bit kernel (the CPU has avx512f + avx512bw).
    Simd { r16: Vec<i16> },
    /// The same on AVX2 (sixteen columns a step where AVX-512 takes 32).
    Avx2 { r16: Vec<i16> },
}

impl YTimesR {
    pub(super) fn new(rs: &[Vec<i8>], n: usize, path: SimdPath) -> Self {
        Self::preferring(rs, n, path, true)
    }

    /// [`YTimesR::new`], optionally passing over the byte-plane form (the tests compare
    /// every form this CPU runs).
    pub(super) fn preferring(rs: &[Vec<i8>], n: usize, path: SimdPath, byte_planes: bool) -> Self {
        let v = rs.len();
        let f = aivm_tensor::cpu::features();
        // The byte-plane kernel's lanes stay exact below 2^17 columns (`row_times_r_vnni`).
        let vnni = cfg!(target_arch = "x86_64") && byte_planes && path == SimdPath::Avx512Vnni && f.avx512_vnni && f.avx512_vbmi && v == SIMD_V && n < 1 << 17;
        let simd = cfg!(target_arch = "x86_64") && path == SimdPath::Avx512Vnni && f.avx512_bw && v == SIMD_V;
        let avx2 = cfg!(target_arch = "x86_64") && path != SimdPath::Scalar && f.avx2 && v == SIMD_V;
        let r16 = || rs.iter().flat_map(|r| r.iter().map(|&x| x as i16)).collect();
        let form = if vnni {
            let body = n / 64 * 64;
            let rsum = std::array::from_fn(|vi| rs[vi][..body].iter().map(|&x| x as i64).sum());
            Form::Vnni { r8: rs.iter().flatten().copied().collect(), rsum }
        } else if simd {
            Form::Simd { r16: r16() }
        } else if avx2 {
            Form::Avx2 { r16: r16() }
        } else {
            let mut rt = vec![0i64; n * v];
            for (j, chunk) in rt.chunks_exact_mut(v).enumerate() {
                for (vi, c) in chunk.iter_mut().enumerate() {
                    *c = rs[vi][j] as i64;
                }
            }
            Form::Plain { rt, v }
        };
        Self { n, form }
    }

    pub(super) fn apply(&self, y: &[i32], m: usize) -> Vec<i64> {
        let n = self.n;
        match &self.form {
            Form::Plain { rt, v } => y_times_r_plain(y, m, n, rt, *v),
            Form::Vnni { r8, rsum } => {
                let mut out = vec![0i64; m * SIMD_V];
                for (row, o) in y.chunks_exact(n).take(m).zip(out.chunks_exact_mut(SIMD_V)) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Form::Vnni` is only built when the CPU has avx512f, avx512bw,
                    // avx512vnni and avx512vbmi (checked in `new`); the kernel reads `row` and
                    // `r8` within their lengths.
                    unsafe {
                        row_times_r_vnni(row, r8, rsum, o)
                    };
                    #[cfg(not(target_arch = "x86_64"))]
                    let _ = (row, r8, rsum, o);
                }
                out
            }
            Form::Simd { r16 } | Form::Avx2 { r16 } => {
                let wide = matches!(self.form, Form::Simd { .. });
                let mut out = vec![0i64; m * SIMD_V];
                for (row, o) in y.chunks_exact(n).take(m).zip(out.chunks_exact_mut(SIMD_V)) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Form::Simd` is only built when the CPU has avx512f + avx512bw,
                    // `Form::Avx2` when it has avx2 (checked in `new`); the kernels read `row`
                    // and `r16` within their lengths.
                    if unsafe {
                        if wide {
                            row_times_r_avx512bw(row, r16, o)
                        } else {
                            row_times_r_avx2(row, r16, o)
                        }
                    } {
                        continue;
                    }
                    // A row the 16-bit split cannot hold: plain exact sums.
                    for (vi, acc) in o.iter_mut().enumerate() {
                        *acc = row.iter().zip(&r16[vi * n..(vi + 1) * n]).map(|(&y, &r)| y as i64 * r as i64).sum();
                    }
                }
                out
            }
        }
    }
}

/// The vectors a challenge draws per GEMM (the SIMD form is written for this many).
const SIMD_V: usize = 8;

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

/// The 16-bit kernels' result: `hi·2^16 + lo` per vector, plus the columns from `from` on
/// (the tail no whole SIMD block covered) summed plainly.
fn recombine(row: &[i32], r16: &[i16], from: usize, hi_sum: &[i64; SIMD_V], lo_sum: &[i64; SIMD_V], out: &mut [i64]) {
    let n = row.len();
    for (vi, o) in out.iter_mut().enumerate() {
        let tail: i64 = (from..n).map(|j| row[j] as i64 * r16[vi * n + j] as i64).sum();
        *o = (hi_sum[vi] << 16) + lo_sum[vi] + tail;
    }
}

/// [`row_times_r_avx512bw`] on AVX2: sixteen columns a step, the halves packed to i16 with
/// `vpackssdw` (exact: both halves are in i16 range unless the row is flagged too big, and a
/// flagged row's sums are discarded) and put back in column order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_times_r_avx2(row: &[i32], r16: &[i16], out: &mut [i64]) -> bool {
    use std::arch::x86_64::*;
    let n = row.len();
    debug_assert!(r16.len() == SIMD_V * n && out.len() == SIMD_V);
    // Blocks of 16 columns between widenings: each lane gains at most 2 · 2^15 · 2^7 a block.
    const FLUSH: usize = 255;
    let limit = _mm256_set1_epi32(i32::MAX - (1 << 15));
    let zero = _mm256_setzero_si256();
    let (mut lo_acc, mut hi_acc) = ([zero; SIMD_V], [zero; SIMD_V]);
    let (mut lo_sum, mut hi_sum) = ([0i64; SIMD_V], [0i64; SIMD_V]);
    let mut too_big = 0i32;
    let widen = |acc: __m256i| -> i64 {
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` holds exactly one 256-bit vector.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
        lanes.iter().map(|&v| v as i64).sum()
    };
    let blocks = n / 16;
    let (yp, rp) = (row.as_ptr(), r16.as_ptr());
    let mut b = 0;
    while b < blocks {
        let end = (b + FLUSH).min(blocks);
        while b < end {
            let j = b * 16;
            let a0 = _mm256_loadu_si256(yp.add(j).cast());
            let a1 = _mm256_loadu_si256(yp.add(j + 8).cast());
            too_big |= _mm256_movemask_epi8(_mm256_or_si256(_mm256_cmpgt_epi32(a0, limit), _mm256_cmpgt_epi32(a1, limit)));
            let l0 = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(a0));
            let l1 = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(a1));
            let h0 = _mm256_srai_epi32::<16>(_mm256_sub_epi32(a0, l0));
            let h1 = _mm256_srai_epi32::<16>(_mm256_sub_epi32(a1, l1));
            // `packs` interleaves 128-bit halves: [a0 lo, a1 lo, a0 hi, a1 hi] → column order.
            let lo = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(l0, l1));
            let hi = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(h0, h1));
            for vi in 0..SIMD_V {
                let r = _mm256_loadu_si256(rp.add(vi * n + j).cast());
                lo_acc[vi] = _mm256_add_epi32(lo_acc[vi], _mm256_madd_epi16(lo, r));
                hi_acc[vi] = _mm256_add_epi32(hi_acc[vi], _mm256_madd_epi16(hi, r));
            }
            b += 1;
        }
        for vi in 0..SIMD_V {
            lo_sum[vi] += widen(lo_acc[vi]);
            hi_sum[vi] += widen(hi_acc[vi]);
            lo_acc[vi] = zero;
            hi_acc[vi] = zero;
        }
    }
    if too_big != 0 {
        return false;
    }
    recombine(row, r16, blocks * 16, &hi_sum, &lo_sum, out);
    true
}

/// Sixteen consecutive elements' bytes, as two registers of 32 elements: byte `i < 32` of the
/// result is byte plane `p` of element `i` (byte `4i + p` of the pair), byte `32 + i` plane
/// `q` of element `i`.
#[cfg(target_arch = "x86_64")]
const fn planes(p: usize, q: usize) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        t[i] = (4 * i + p) as u8;
        t[32 + i] = (4 * i + q) as u8;
        i += 1;
    }
    t
}

/// One row of Y against the eight vectors of `r8` (`[8 × n]` i8, n = `row.len()`), into `out`,
/// on VNNI: `y = b0 + 2^8·b1 + 2^16·b2 + 2^24·b3` with `b0..b2` unsigned bytes and `b3`
/// signed, so `y·r = Σ_p 2^(8p)·(b_p·r)` — unsigned-by-signed byte products, which
/// `vpdpbusd` sums 64 to an instruction (the 16-bit form does 32 per `vpmaddwd` and needs an
/// add). The signed top plane enters with its sign bit flipped (`b + 128`, unsigned), and
/// `128·2^(8p)·Σr` (from `rsum`) is taken back. Per 64 columns, byte permutes (`vpermt2b`,
/// VBMI) gather planes 0|1 (and 2|3) of 32 elements into one register each; a row's sum does
/// not depend on the order of its columns, so each plane meets the same 32 entries of r,
/// broadcast to both halves, and an accumulator holds two planes (lanes 0–7 and 8–15). A
/// row whose elements all fit 24 bits (a SmolLM2 or Llama GEMM's, in practice: checked
/// first) has three planes, the third signed, and takes three products a column instead of
/// four. A lane gains at most eight products of at most 255·128 per 64 columns: below 2^31
/// for n < 2^17, so nothing is widened before the end. Exact for every i32 (no fallback);
/// the tail columns plainly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
unsafe fn row_times_r_vnni(row: &[i32], r8: &[i8], rsum: &[i64; SIMD_V], out: &mut [i64]) {
    use std::arch::x86_64::*;
    const P01: [u8; 64] = planes(0, 1);
    const P22: [u8; 64] = planes(2, 2);
    const P23: [u8; 64] = planes(2, 3);
    let n = row.len();
    debug_assert!(r8.len() == SIMD_V * n && out.len() == SIMD_V && n < 1 << 17);
    let body = n / 64 * 64;
    let fits24 = row.iter().fold(0u32, |a, &v| a | (v ^ (v >> 31)) as u32) < 1 << 23;
    let (i01, i22, i23) = (_mm512_loadu_si512(P01.as_ptr().cast()), _mm512_loadu_si512(P22.as_ptr().cast()), _mm512_loadu_si512(P23.as_ptr().cast()));
    let upper: u64 = 0xFFFF_FFFF_0000_0000;
    let zero = _mm512_setzero_si512();
    let (mut a01, mut a23) = ([zero; SIMD_V], [zero; SIMD_V]);
    let (yp, rp) = (row.as_ptr(), r8.as_ptr());
    let sign = _mm512_set1_epi8(i8::MIN);
    if fits24 {
        // Planes 0|1 as below; plane 2 (signed) of all 64 elements in one register, against
        // the 64 entries of r as they lie.
        for j in (0..body).step_by(64) {
            let (y0, y1) = (_mm512_loadu_si512(yp.add(j).cast()), _mm512_loadu_si512(yp.add(j + 16).cast()));
            let (y2, y3) = (_mm512_loadu_si512(yp.add(j + 32).cast()), _mm512_loadu_si512(yp.add(j + 48).cast()));
            let (lo01, hi01) = (_mm512_permutex2var_epi8(y0, i01, y1), _mm512_permutex2var_epi8(y2, i01, y3));
            let p2 = _mm512_mask_blend_epi8(upper, _mm512_permutex2var_epi8(y0, i22, y1), _mm512_permutex2var_epi8(y2, i22, y3));
            let p2 = _mm512_xor_si512(p2, sign);
            for vi in 0..SIMD_V {
                let r = rp.add(vi * n + j);
                let (rlo, rhi) = (_mm512_broadcast_i64x4(_mm256_loadu_si256(r.cast())), _mm512_broadcast_i64x4(_mm256_loadu_si256(r.add(32).cast())));
                a01[vi] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a01[vi], lo01, rlo), hi01, rhi);
                a23[vi] = _mm512_dpbusd_epi32(a23[vi], p2, _mm512_loadu_si512(r.cast()));
            }
        }
    } else {
        // The sign bit of plane 3 (the upper half of a 2|3 register).
        let flip = _mm512_maskz_mov_epi8(upper, sign);
        for j in (0..body).step_by(64) {
            let (y0, y1) = (_mm512_loadu_si512(yp.add(j).cast()), _mm512_loadu_si512(yp.add(j + 16).cast()));
            let (y2, y3) = (_mm512_loadu_si512(yp.add(j + 32).cast()), _mm512_loadu_si512(yp.add(j + 48).cast()));
            let lo01 = _mm512_permutex2var_epi8(y0, i01, y1);
            let lo23 = _mm512_xor_si512(_mm512_permutex2var_epi8(y0, i23, y1), flip);
            let hi01 = _mm512_permutex2var_epi8(y2, i01, y3);
            let hi23 = _mm512_xor_si512(_mm512_permutex2var_epi8(y2, i23, y3), flip);
            for vi in 0..SIMD_V {
                let r = rp.add(vi * n + j);
                let (rlo, rhi) = (_mm512_broadcast_i64x4(_mm256_loadu_si256(r.cast())), _mm512_broadcast_i64x4(_mm256_loadu_si256(r.add(32).cast())));
                a01[vi] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a01[vi], lo01, rlo), hi01, rhi);
                a23[vi] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a23[vi], lo23, rlo), hi23, rhi);
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn halves(acc: __m512i) -> (i64, i64) {
        let sum = |h: __m256i| _mm512_reduce_add_epi64(_mm512_cvtepi32_epi64(h));
        (sum(_mm512_castsi512_si256(acc)), sum(_mm512_extracti64x4_epi64::<1>(acc)))
    }
    for (vi, o) in out.iter_mut().enumerate() {
        let (s0, s1) = halves(a01[vi]);
        let (s2, s3) = halves(a23[vi]);
        let tail: i64 = (body..n).map(|j| row[j] as i64 * r8[vi * n + j] as i64).sum();
        let planes = if fits24 { s0 + (s1 << 8) + ((s2 + s3) << 16) - (rsum[vi] << 23) } else { s0 + (s1 << 8) + (s2 << 16) + (s3 << 24) - (rsum[vi] << 31) };
        *o = planes + tail;
    }
}

/// One row of Y against the eight vectors of `r16` (`[8 × n]`, n = `row.len()`), into `out`.
/// `false` (out untouched) if the row has an element the 16-bit split cannot hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn row_times_r_avx512bw(row: &[i32], r16: &[i16], out: &mut [i64]) -> bool {
    use std::arch::x86_64::*;
    let n = row.len();
    debug_assert!(r16.len() == SIMD_V * n && out.len() == SIMD_V);
    // Blocks of 32 columns between widenings: 255 · 2 · 2^15 · 2^7 < 2^31.
    const FLUSH: usize = 255;
    let limit = _mm512_set1_epi32(i32::MAX - (1 << 15));
    let zero = _mm512_setzero_si512();
    let (mut lo_acc, mut hi_acc) = ([zero; SIMD_V], [zero; SIMD_V]);
    let (mut lo_sum, mut hi_sum) = ([0i64; SIMD_V], [0i64; SIMD_V]);
    let mut too_big: u16 = 0;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn widen(acc: __m512i) -> i64 {
        let a = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc));
        let b = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(acc));
        _mm512_reduce_add_epi64(_mm512_add_epi64(a, b))
    }
    let blocks = n / 32;
    let (yp, rp) = (row.as_ptr(), r16.as_ptr());
    let mut b = 0;
    while b < blocks {
        let end = (b + FLUSH).min(blocks);
        while b < end {
            let j = b * 32;
            let a0 = _mm512_loadu_si512(yp.add(j).cast());
            let a1 = _mm512_loadu_si512(yp.add(j + 16).cast());
            too_big |= _mm512_cmpgt_epi32_mask(a0, limit) | _mm512_cmpgt_epi32_mask(a1, limit);
            // lo: the low 16 bits as a signed number; hi = (y − lo) / 2^16, exact.
            let l0 = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(a0));
            let l1 = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(a1));
            let h0 = _mm512_srai_epi32::<16>(_mm512_sub_epi32(a0, l0));
            let h1 = _mm512_srai_epi32::<16>(_mm512_sub_epi32(a1, l1));
            let lo = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(l0)), _mm512_cvtepi32_epi16(l1));
            let hi = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(h0)), _mm512_cvtepi32_epi16(h1));
            for vi in 0..SIMD_V {
                let r = _mm512_loadu_si512(rp.add(vi * n + j).cast());
                lo_acc[vi] = _mm512_add_epi32(lo_acc[vi], _mm512_madd_epi16(lo, r));
                hi_acc[vi] = _mm512_add_epi32(hi_acc[vi], _mm512_madd_epi16(hi, r));
            }
            b += 1;
        }
        for vi in 0..SIMD_V {
            lo_sum[vi] += widen(lo_acc[vi]);
            hi_sum[vi] += widen(hi_acc[vi]);
            lo_acc[vi] = zero;
            hi_acc[vi] = zero;
        }
    }
    if too_big != 0 {
        return false;
    }
    recombine(row, r16, blocks * 32, &hi_sum, &lo_sum, out);
    true
}
