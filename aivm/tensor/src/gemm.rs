//! `Y = X · Wᵀ` for int8 activations `X [m×k]` and int8 weights `W [n×k]` (one row per output),
//! summed exactly in i32, the product every weight GEMM of the forward pass computes.
//!
//! Exactness: `k ≤ MAX_K` keeps every sum below 2^31, so all paths (scalar oracle, AVX-512
//! VNNI) and all thread counts give identical results; threads split the output columns.
//! W is packed once into panels of 32 outputs × 4 consecutive k (the dword VNNI's
//! `vpdpbusd` consumes), which is W's own row layout four bytes at a time; the AVX2 path
//! reads the same panels, sign-extending them to i16 for `vpmaddwd`.

use crate::matmul::{pack_a, pack_a_into, SimdPath, MAX_K, ROWS as MR};
use crate::resident::Slab;

/// Outputs per packed panel.
const NR: usize = 32;
/// Below this many multiply-adds (≈ 8 µs on one core at ~1 TMAC/s) a GEMM is not split across
/// threads: waking a pool worker costs tens of microseconds.
const PARALLEL_MIN_MACS: usize = 8 << 20;

/// Weights from which a one-row product splits across threads on a pool worker (q and o,
/// gate, up, down and the logits of SmolLM2; not k and v, whose 110 KB stream in ~5 µs).
const GEMV_SPLIT_MIN: usize = 256 << 10;

/// A weight matrix prepared for the kernels.
pub struct Packed {
    pub n: usize,
    pub k: usize,
    k4: usize,
    /// `[panel][kg][col 0..32][4]`, zero padded (the scalar path reads W's rows from here too:
    /// no row-major copy is kept, which would double a model's memory).
    panels: Panels,
    /// `128 · Σ_k W[j][k]` per output, padded to whole panels (the unsigned-offset correction).
    corr: Vec<i32>,
}

/// Where a matrix's panels live: the heap for a step's temporaries (attention's operands), a
/// huge-page region for a model's weights, which every decode step streams
/// ([`crate::resident`]).
enum Panels {
    Heap(Vec<i8>),
    Resident(Slab),
}

impl Panels {
    fn as_slice(&self) -> &[i8] {
        match self {
            Panels::Heap(v) => v,
            Panels::Resident(s) => s.as_slice(),
        }
    }

    fn as_ptr(&self) -> *const i8 {
        self.as_slice().as_ptr()
    }
}

impl Packed {
    /// `W [n×k]` packed on the heap: for a matrix that lives for one step.
    pub fn new(w: &[i8], n: usize, k: usize) -> Self {
        let k4 = k.div_ceil(4);
        let mut panels = vec![0i8; panels_len(w, n, k)];
        let corr = pack_panels(w, n, k, &mut panels);
        Self { n, k, k4, panels: Panels::Heap(panels), corr }
    }

    /// `W [n×k]` packed into a huge-page region ([`crate::resident`]): for a model's weights,
    /// which live as long as the model and are streamed by every decode step. The same bytes
    /// as [`Packed::new`]'s (on the heap if the system refuses the region).
    pub fn resident(w: &[i8], n: usize, k: usize) -> Self {
        let k4 = k.div_ceil(4);
        let Some(mut slab) = Slab::zeroed(panels_len(w, n, k)) else {
            return Self::new(w, n, k);
        };
        let corr = pack_panels(w, n, k, slab.as_mut_slice());
        Self { n, k, k4, panels: Panels::Resident(slab), corr }
    }
}

/// Length of `W [n×k]`'s panels, once its shape is checked (before anything is allocated).
fn panels_len(w: &[i8], n: usize, k: usize) -> usize {
    assert!(w.len() == n * k && k <= MAX_K, "weight shape checked by the SKU reader");
    n.div_ceil(NR) * k.div_ceil(4) * NR * 4
}

/// Pack `W [n×k]` (shape checked by [`panels_len`]) into zeroed `panels`
/// (`[panel][kg][col 0..32][4]`); returns the per-output corrections `128 · Σ_k W[j][k]`,
/// padded to whole panels.
fn pack_panels(w: &[i8], n: usize, k: usize, panels: &mut [i8]) -> Vec<i32> {
    let k4 = k.div_ceil(4);
    let mut corr = vec![0i32; n.div_ceil(NR) * NR];
    for j in 0..n {
        let row = &w[j * k..(j + 1) * k];
        corr[j] = 128 * row.iter().map(|&v| v as i32).sum::<i32>();
        let (p, c) = (j / NR, j % NR);
        for (kg, chunk) in row.chunks(4).enumerate() {
            let at = ((p * k4 + kg) * NR + c) * 4;
            panels[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
    corr
}

/// `X [m×k] · Wᵀ` into `y [m×n]` on `path` with `threads` threads.
pub fn gemm(x: &[i8], m: usize, w: &Packed, y: &mut [i32], path: SimdPath, threads: usize) {
    assert!(x.len() == m * w.k && y.len() == m * w.n, "gemm shapes are fixed by the model");
    let np = w.n.div_ceil(NR);
    // A small product finishes before a second worker would wake; it runs on the calling
    // thread. So does a one-row product (a decode step's) called from outside rayon's pool:
    // each parallel section would be a job injected into the pool and waited for (~100 µs in
    // this VM). On a pool worker (an engine's steps run as a team there, the other workers
    // awake) a one-row product of at least `GEMV_SPLIT_MIN` weights splits its columns: it is
    // bound by memory bandwidth, which grows a little with a second core here (the 28 MB
    // logits GEMM streamed 22.6 GB/s on one thread, 24.2 on two), and two-thread decode went
    // from 0.95–1.05× one thread to 1.22–1.25× (BENCHMARKS.md). The result does not depend
    // on the split.
    let gemv_split = m == 1 && w.n * w.k >= GEMV_SPLIT_MIN && rayon::current_thread_index().is_some();
    let threads = if (m * w.n * w.k < PARALLEL_MIN_MACS || m == 1) && !gemv_split { 1 } else { threads.clamp(1, np) };
    let use_vnni = path == SimdPath::Avx512Vnni && SimdPath::available().contains(&SimdPath::Avx512Vnni);
    let use_avx2 = !use_vnni && path != SimdPath::Scalar && SimdPath::available().contains(&SimdPath::Avx2);
    let xa = if use_vnni { pack_x(x, m, w.k, w.k4, threads) } else { Vec::new() };
    let xa16 = if use_avx2 { pack_x_i16(x, m, w.k, w.k4, threads) } else { Vec::new() };
    // Each thread computes a contiguous range of panels, writing its columns of every output
    // row in place: the ranges are disjoint column blocks of `y`, so no two threads touch the
    // same element (and nothing is staged in a range buffer and copied: at two threads that
    // copy and its zeroing were a tenth of a prompt step).
    let per = np.div_ceil(threads);
    let out = OutPtr(y.as_mut_ptr());
    let work = |t: usize| {
        let (p0, p1) = (t * per, ((t + 1) * per).min(np));
        if p1 <= p0 {
            return;
        }
        let out = &out;
        if use_vnni {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports avx512f + avx512vnni (checked above); this range writes
            // only columns `p0·NR .. min(p1·NR, n)` of the `m` rows of `y` (see `vnni`).
            unsafe {
                vnni(&xa, m, w, p0, p1, out.0)
            };
        } else if use_avx2 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports avx2 (checked above); columns as above only.
            unsafe {
                avx2(&xa16, m, w, p0, p1, out.0)
            };
        } else {
            // SAFETY: as above, columns `p0·NR .. min(p1·NR, n)` only.
            unsafe { scalar(x, m, w, p0 * NR, (p1 * NR).min(w.n), out.0) };
        }
    };
    if threads == 1 {
        work(0);
    } else {
        // The ranges run as tasks on rayon's one persistent pool (no thread is started per
        // GEMM: decode runs hundreds of GEMMs a token). The split depends only on `threads`,
        // and each output is computed by the same code whichever worker runs its range.
        use rayon::prelude::*;
        (0..threads).into_par_iter().for_each(work);
    }
}

/// X packed for the VNNI kernel; with several threads, runs of 8-row blocks are packed on the
/// pool (a prompt's X is megabytes, and packing it alone on the calling thread left the
/// other idle). The bytes are the same either way.
fn pack_x(x: &[i8], m: usize, k: usize, k4: usize, threads: usize) -> Vec<u8> {
    let blocks = m.div_ceil(MR);
    if threads == 1 {
        return pack_a(x, m, k, k4, blocks);
    }
    use rayon::prelude::*;
    const BLOCKS_PER_TASK: usize = 8;
    let block_bytes = k4 * MR * 4;
    let mut pa = vec![0x80u8; blocks * block_bytes];
    pa.par_chunks_mut(BLOCKS_PER_TASK * block_bytes).enumerate().for_each(|(t, dst)| {
        let r0 = t * BLOCKS_PER_TASK * MR;
        let rows = (m - r0).min(BLOCKS_PER_TASK * MR);
        pack_a_into(&x[r0 * k..(r0 + rows) * k], rows, k, k4, dst);
    });
    pa
}

/// X packed for the AVX2 kernel (sign-extended to i16, 4-row blocks), on the pool with
/// several threads as [`pack_x`].
fn pack_x_i16(x: &[i8], m: usize, k: usize, k4: usize, threads: usize) -> Vec<i16> {
    use crate::matmul::avx2::{pack_x_i16_into, PANEL_ROWS};
    let blocks = m.div_ceil(PANEL_ROWS);
    let block_len = k4 * PANEL_ROWS * 4;
    let mut pa = vec![0i16; blocks * block_len];
    if threads == 1 {
        pack_x_i16_into(x, m, k, k4, &mut pa);
        return pa;
    }
    use rayon::prelude::*;
    const BLOCKS_PER_TASK: usize = 16;
    pa.par_chunks_mut(BLOCKS_PER_TASK * block_len).enumerate().for_each(|(t, dst)| {
        let r0 = t * BLOCKS_PER_TASK * PANEL_ROWS;
        let rows = (m - r0).min(BLOCKS_PER_TASK * PANEL_ROWS);
        pack_x_i16_into(&x[r0 * k..(r0 + rows) * k], rows, k, k4, dst);
    });
    pa
}

/// `y`'s base pointer, shared by the column ranges of one GEMM (each writes its own columns).
struct OutPtr(*mut i32);
// SAFETY: the ranges a GEMM hands to threads write disjoint columns of `y`, which outlives
// them (`gemm` returns after every range has finished).
unsafe impl Sync for OutPtr {}

/// The oracle: plain dot products, columns `j0..j1` of the `m` rows of `y` (row stride `n`).
///
/// # Safety
/// `y` points at `m·n` values; no other thread writes columns `j0..j1` meanwhile.
unsafe fn scalar(x: &[i8], m: usize, w: &Packed, j0: usize, j1: usize, y: *mut i32) {
    let (k, k4) = (w.k, w.k4);
    let panels = w.panels.as_slice();
    let mut wr = vec![0i8; k];
    for j in j0..j1 {
        // Row j of W from its panel: four consecutive k of column `j % NR` per group.
        let (p, c) = (j / NR, j % NR);
        for (kg, chunk) in wr.chunks_mut(4).enumerate() {
            let at = ((p * k4 + kg) * NR + c) * 4;
            chunk.copy_from_slice(&panels[at..at + chunk.len()]);
        }
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            y.add(i * w.n + j).write(xr.iter().zip(&wr).map(|(&a, &b)| a as i32 * b as i32).sum());
        }
    }
}

/// The panels `p0..p1` of `W` against packed X, into columns `p0·NR .. min(p1·NR, n)` of the
/// `m` rows of `y` (row stride `n`).
///
/// # Safety
/// avx512f + avx512vnni; `y` points at `m·n` values and no other thread writes those columns
/// meanwhile (a full panel's tile writes its 32 columns, a ragged last panel only its own).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni(xa: &[u8], m: usize, w: &Packed, p0: usize, p1: usize, y: *mut i32) {
    let (k4, n) = (w.k4, w.n);
    for p in p0..p1 {
        let cols = (n - p * NR).min(NR);
        crate::matmul::avx512::panel_product(xa, m, k4, w.panels.as_ptr().add(p * k4 * NR * 4), w.corr.as_ptr().add(p * NR), cols, y.add(p * NR), n);
    }
}

/// The panels `p0..p1` of `W` against X packed for AVX2, as [`vnni`].
///
/// # Safety
/// avx2; `y` as in [`vnni`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(xa: &[i16], m: usize, w: &Packed, p0: usize, p1: usize, y: *mut i32) {
    let (k4, n) = (w.k4, w.n);
    for p in p0..p1 {
        let cols = (n - p * NR).min(NR);
        crate::matmul::avx2::panel_product(xa, m, k4, w.panels.as_ptr().add(p * k4 * NR * 4), cols, y.add(p * NR), n);
    }
}

/// Exact `a · b` over int8 vectors (attention scores and outputs).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lcg_bytes as bytes;

    #[test]
    fn paths_and_thread_counts_agree() {
        // The last two shapes are past PARALLEL_MIN_MACS, so their ranges run on the pool.
        for (m, k, n) in [(1, 576, 192), (37, 64, 33), (9, 1536, 70), (8, 3, 1), (67, 576, 230), (5, 2048, 900)] {
            if m * k * n >= PARALLEL_MIN_MACS {
                assert!(n.div_ceil(NR) >= 3, "enough panels for three ranges");
            }
            let (x, wv) = (bytes(m as u64, m * k), bytes(n as u64 + 99, n * k));
            let w = Packed::new(&wv, n, k);
            let mut want = vec![0; m * n];
            gemm(&x, m, &w, &mut want, SimdPath::Scalar, 1);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(want[i * n + j], dot_i8(&x[i * k..(i + 1) * k], &wv[j * k..(j + 1) * k]));
                }
            }
            // Packed on the heap or in a huge-page region: the same bytes, the same products.
            let resident = Packed::resident(&wv, n, k);
            for &path in SimdPath::available() {
                for t in 1..=3 {
                    for w in [&w, &resident] {
                        // Whatever `y` held is overwritten (one thread writes in place).
                        let mut y = vec![0x5555_5555; m * n];
                        gemm(&x, m, w, &mut y, path, t);
                        assert_eq!(y, want, "{path:?} threads {t} shape {m}x{k}x{n}");
                    }
                }
            }
        }
    }

    /// One-row products split their columns when called on a pool worker (as an engine's
    /// steps are) and still equal the oracle on every path and thread count.
    #[test]
    fn one_row_products_on_a_worker_agree() {
        for (k, n) in [(576, 576), (1536, 577), (100, 3000)] {
            assert!(n * k >= GEMV_SPLIT_MIN);
            let (x, wv) = (bytes(k as u64, k), bytes(n as u64 + 7, n * k));
            let w = Packed::new(&wv, n, k);
            let want: Vec<i32> = (0..n).map(|j| dot_i8(&x, &wv[j * k..(j + 1) * k])).collect();
            rayon::scope(|_| {
                assert!(rayon::current_thread_index().is_some(), "the scope runs on a worker");
                for &path in SimdPath::available() {
                    for t in 1..=3 {
                        let mut y = vec![0x5555_5555; n];
                        gemm(&x, 1, &w, &mut y, path, t);
                        assert_eq!(y, want, "{path:?} threads {t} shape 1x{k}x{n}");
                    }
                }
            });
        }
    }

    #[test]
    fn extremes_are_exact_on_every_path() {
        // -128 · -128 everywhere at the largest k: every pair sum and the total at their
        // bounds (the AVX2 path's i16 pair sums included); then mixed signs at the extremes.
        let (m, k, n) = (5, MAX_K, 3);
        let w = Packed::new(&vec![-128i8; n * k], n, k);
        let x = vec![-128i8; m * k];
        for &path in SimdPath::available() {
            let mut y = vec![0; m * n];
            gemm(&x, m, &w, &mut y, path, 1);
            assert!(y.iter().all(|&v| v == (k as i32) * 16384), "{path:?}");
        }
        let (m, k, n) = (6, 4099, 41);
        let pick = |i: usize| [-128i8, 127, -1, 0, 1, -127][i % 6];
        let x: Vec<i8> = (0..m * k).map(|i| pick(i * 7 + i / k)).collect();
        let wv: Vec<i8> = (0..n * k).map(|i| pick(i * 5 + 3)).collect();
        let w = Packed::new(&wv, n, k);
        let mut want = vec![0; m * n];
        gemm(&x, m, &w, &mut want, SimdPath::Scalar, 1);
        for &path in SimdPath::available() {
            for t in [1, 2] {
                let mut y = vec![7; m * n];
                gemm(&x, m, &w, &mut y, path, t);
                assert_eq!(y, want, "{path:?} threads {t}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 150, ..Default::default() })]
        /// Ragged shapes around the tiles (4- and 8-row blocks, 8- and 32-column panels,
        /// k not a multiple of 4): every path and thread count equals the oracle.
        #[test]
        fn ragged_shapes_agree(m in 1usize..20, k in 1usize..80, n in 1usize..80, seed: u64, t in 1usize..4) {
            let (x, wv) = (bytes(seed, m * k), bytes(seed ^ 0x5eed, n * k));
            let w = Packed::new(&wv, n, k);
            let mut want = vec![0; m * n];
            gemm(&x, m, &w, &mut want, SimdPath::Scalar, 1);
            for &path in SimdPath::available() {
                let mut y = vec![-1; m * n];
                gemm(&x, m, &w, &mut y, path, t);
                proptest::prop_assert_eq!(&y, &want, "{:?}", path);
            }
        }
    }
}
