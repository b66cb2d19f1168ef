//! `Y = X · Wᵀ` for int8 activations `X [m×k]` and int8 weights `W [n×k]` (one row per output),
//! summed exactly in i32, the product every weight GEMM of the forward pass computes.
//!
//! Exactness: `k ≤ MAX_K` keeps every sum below 2^31, so all paths (scalar oracle, AVX-512
//! VNNI) and all thread counts give identical results; threads split the output columns.
//! The VNNI path packs W once into panels of 32 outputs × 4 consecutive k (the dword
//! `vpdpbusd` consumes), which is W's own row layout four bytes at a time.

use crate::matmul::{pack_a, SimdPath, MAX_K, ROWS as MR};

/// Outputs per packed panel.
const NR: usize = 32;
/// Below this many multiply-adds (≈ 8 µs on one core at ~1 TMAC/s) a GEMM is not split across
/// threads: waking a pool worker costs tens of microseconds.
const PARALLEL_MIN_MACS: usize = 8 << 20;

/// A weight matrix prepared for the kernels.
pub struct Packed {
    pub n: usize,
    pub k: usize,
    k4: usize,
    /// Row-major W (the scalar path and the Freivalds verifier read this).
    rows: Vec<i8>,
    /// `[panel][kg][col 0..32][4]`, zero padded.
    panels: Vec<i8>,
    /// `128 · Σ_k W[j][k]` per output, padded to whole panels (the unsigned-offset correction).
    corr: Vec<i32>,
}

impl Packed {
    pub fn new(w: &[i8], n: usize, k: usize) -> Self {
        assert!(w.len() == n * k && k <= MAX_K, "weight shape checked by the SKU reader");
        let k4 = k.div_ceil(4);
        let np = n.div_ceil(NR);
        let mut panels = vec![0i8; np * k4 * NR * 4];
        let mut corr = vec![0i32; np * NR];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            corr[j] = 128 * row.iter().map(|&v| v as i32).sum::<i32>();
            let (p, c) = (j / NR, j % NR);
            for (kg, chunk) in row.chunks(4).enumerate() {
                let at = ((p * k4 + kg) * NR + c) * 4;
                panels[at..at + chunk.len()].copy_from_slice(chunk);
            }
        }
        Self { n, k, k4, rows: w.to_vec(), panels, corr }
    }

    pub fn rows(&self) -> &[i8] {
        &self.rows
    }
}

/// `X [m×k] · Wᵀ` into `y [m×n]` on `path` with `threads` threads.
pub fn gemm(x: &[i8], m: usize, w: &Packed, y: &mut [i32], path: SimdPath, threads: usize) {
    assert!(x.len() == m * w.k && y.len() == m * w.n, "gemm shapes are fixed by the model");
    let np = w.n.div_ceil(NR);
    // A small product (a decode step's layer GEMMs: m = 1) finishes before a second worker
    // would wake; it runs on the calling thread. The result does not depend on the split.
    let threads = if m * w.n * w.k < PARALLEL_MIN_MACS { 1 } else { threads.clamp(1, np) };
    let use_vnni = path == SimdPath::Avx512Vnni && SimdPath::available().contains(&SimdPath::Avx512Vnni);
    let xa = if use_vnni { pack_a(x, m, w.k, w.k4, m.div_ceil(MR)) } else { Vec::new() };
    if threads == 1 {
        // One range covering every column: its rows are `y`'s rows, written in place.
        if use_vnni {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports avx512f + avx512vnni (checked above).
            unsafe {
                vnni(&xa, m, w, 0, np, y)
            };
        } else {
            scalar(x, m, w, 0, w.n, y);
        }
        return;
    }
    // Each thread computes a contiguous range of panels into its own buffer.
    let per = np.div_ceil(threads);
    let work = |t: usize| {
        let (p0, p1) = (t * per, ((t + 1) * per).min(np));
        let (j0, j1) = (p0 * NR, (p1 * NR).min(w.n));
        let mut out = vec![0i32; m * j1.saturating_sub(j0)];
        if j1 > j0 {
            if use_vnni {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports avx512f + avx512vnni (checked above).
                unsafe {
                    vnni(&xa, m, w, p0, p1, &mut out)
                };
            } else {
                scalar(x, m, w, j0, j1, &mut out);
            }
        }
        (j0, out)
    };
    // The ranges run as tasks on rayon's one persistent pool (no thread is started per GEMM:
    // decode runs hundreds of GEMMs a token). The split depends only on `threads`, and each
    // output is computed by the same code whichever worker runs its range.
    let results: Vec<(usize, Vec<i32>)> = {
        use rayon::prelude::*;
        (0..threads).into_par_iter().map(work).collect()
    };
    // Each output row gathers its column ranges, on the pool too (a prompt's GEMM output is
    // megabytes).
    use rayon::prelude::*;
    y.par_chunks_exact_mut(w.n).enumerate().with_min_len(64).for_each(|(i, yrow)| {
        for (j0, out) in &results {
            let width = out.len().checked_div(m).unwrap_or(0);
            yrow[*j0..j0 + width].copy_from_slice(&out[i * width..(i + 1) * width]);
        }
    });
}

/// The oracle: plain dot products.
fn scalar(x: &[i8], m: usize, w: &Packed, j0: usize, j1: usize, out: &mut [i32]) {
    let (k, width) = (w.k, j1 - j0);
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in j0..j1 {
            let wr = &w.rows[j * k..(j + 1) * k];
            out[i * width + j - j0] = xr.iter().zip(wr).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
}

/// The panels `p0..p1` of `W` against packed X, into `out` (`m` rows of the range's width).
///
/// # Safety
/// avx512f + avx512vnni.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni(xa: &[u8], m: usize, w: &Packed, p0: usize, p1: usize, out: &mut [i32]) {
    let (k4, n) = (w.k4, w.n);
    let width = (p1 * NR).min(n) - p0 * NR;
    for p in p0..p1 {
        let cols = (n - p * NR).min(NR);
        crate::matmul::avx512::panel_product(
            xa,
            m,
            k4,
            w.panels.as_ptr().add(p * k4 * NR * 4),
            w.corr.as_ptr().add(p * NR),
            cols,
            out.as_mut_ptr().add((p - p0) * NR),
            width,
        );
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
            for &path in SimdPath::available() {
                for t in 1..=3 {
                    // Whatever `y` held is overwritten (one thread writes in place).
                    let mut y = vec![0x5555_5555; m * n];
                    gemm(&x, m, &w, &mut y, path, t);
                    assert_eq!(y, want, "{path:?} threads {t} shape {m}x{k}x{n}");
                }
            }
        }
    }
}
