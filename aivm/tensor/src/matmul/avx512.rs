//! AVX-512 VNNI kernel: `vpdpbusd` multiplies unsigned by signed bytes, four at a time.
//!
//! A is offset to unsigned (`a + 128`), so each dot product gains `128·Σ_k B[k][j]`, which is
//! subtracted at the end. Intermediate sums may wrap in i32, but the arithmetic is modulo
//! 2^32 and the true result fits (k ≤ MAX_K), so the final value is exact.
//!
//! Register tile: MR = 8 rows × NR = 32 columns (16 zmm accumulators). B is packed into
//! panels of 32 columns holding 4 consecutive k per column; A into blocks of 8 rows.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

const MR: usize = super::ROWS;
const NR: usize = 32;

/// # Safety
/// The CPU must support `avx512f` and `avx512vnni`. Slices must match `m×k`, `k×n`, `m×n`.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn matmul(a: &[i8], b: &[i8], c: &mut [i32], m: usize, k: usize, n: usize) {
    let k4 = k.div_ceil(4);
    let panels = n.div_ceil(NR);
    let blocks = m.div_ceil(MR);

    let pb = pack_b(b, k, n, k4, panels);
    let mut corr = super::column_sums(b, k, n);
    corr.iter_mut().for_each(|s| *s = s.wrapping_mul(128));
    corr.resize(panels * NR, 0);
    let pa = super::pack_a(a, m, k, k4, blocks);

    for panel in 0..panels {
        let cols = (n - panel * NR).min(NR);
        panel_product(&pa, m, k4, pb.as_ptr().add(panel * k4 * NR * 4), corr.as_ptr().add(panel * NR), cols, c.as_mut_ptr().add(panel * NR), n);
    }
}

/// One 32-column panel for every 8-row block: `dst[r·stride + j] = Σ_k a[r][k]·b[k][j]` for
/// `j < cols`. `pa` is packed by [`super::pack_a`], `bp` points at the panel (`[kg][32][4]`),
/// `corr` at its 32 corrections (`128·Σ_k b[k][j]`). Shared by TENSOR_MATMUL and the
/// inference GEMM (`model::gemm`), which packs its weights once.
///
/// # Safety
/// avx512f + avx512vnni; `pa` holds `⌈m/8⌉·k4·32` bytes, `bp` `k4·128`, `corr` 32 values,
/// `dst` rows `0..m` of `cols` values at `stride`.
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn panel_product(pa: &[u8], m: usize, k4: usize, bp: *const i8, corr: *const i32, cols: usize, dst: *mut i32, stride: usize) {
    let c0 = _mm512_loadu_si512(corr as *const _);
    let c1 = _mm512_loadu_si512(corr.add(16) as *const _);
    for blk in 0..m.div_ceil(MR) {
        let ap = pa.as_ptr().add(blk * k4 * MR * 4);
        let d = dst.add(blk * MR * stride);
        // A ragged last block (a decode step's single row above all) multiplies only the rows
        // it has: an 8-row tile for one row did 8× the work. Each row's sums are the same
        // whatever the tile height.
        match (m - blk * MR).min(MR) {
            1 => block::<1>(ap, k4, bp, c0, c1, cols, d, stride),
            2 => block::<2>(ap, k4, bp, c0, c1, cols, d, stride),
            3 => block::<3>(ap, k4, bp, c0, c1, cols, d, stride),
            4 => block::<4>(ap, k4, bp, c0, c1, cols, d, stride),
            5 => block::<5>(ap, k4, bp, c0, c1, cols, d, stride),
            6 => block::<6>(ap, k4, bp, c0, c1, cols, d, stride),
            7 => block::<7>(ap, k4, bp, c0, c1, cols, d, stride),
            _ => block::<MR>(ap, k4, bp, c0, c1, cols, d, stride),
        }
    }
}

/// `R` rows of one packed 8-row block times one panel (`R ≤ MR`), into `dst` rows `0..R`.
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize>(ap: *const u8, k4: usize, bp: *const i8, c0: __m512i, c1: __m512i, cols: usize, dst: *mut i32, stride: usize) {
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for kg in 0..k4 {
        let b0 = _mm512_loadu_si512(bp.add(kg * NR * 4) as *const _);
        let b1 = _mm512_loadu_si512(bp.add(kg * NR * 4 + 64) as *const _);
        let arow = ap.add(kg * MR * 4) as *const i32;
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(arow.add(r).read_unaligned());
            acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], av, b0);
            acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], av, b1);
        }
    }
    let mut tile = [0i32; NR];
    for (r, acc_r) in acc.iter().enumerate() {
        let v0 = _mm512_sub_epi32(acc_r[0], c0);
        let v1 = _mm512_sub_epi32(acc_r[1], c1);
        let d = dst.add(r * stride);
        if cols == NR {
            _mm512_storeu_si512(d as *mut _, v0);
            _mm512_storeu_si512(d.add(16) as *mut _, v1);
        } else {
            _mm512_storeu_si512(tile.as_mut_ptr() as *mut _, v0);
            _mm512_storeu_si512(tile.as_mut_ptr().add(16) as *mut _, v1);
            std::ptr::copy_nonoverlapping(tile.as_ptr(), d, cols);
        }
    }
}

/// B panels: `[panel][kg][col 0..32][4 bytes]` (the 4 consecutive k of one column form one
/// dword, the layout `vpdpbusd` consumes), zero padded. Full 4-row × 16-column blocks are
/// transposed with byte/word unpacks; ragged edges take the scalar loop.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn pack_b(b: &[i8], k: usize, n: usize, k4: usize, panels: usize) -> Vec<i8> {
    let mut pb = vec![0i8; panels * k4 * NR * 4];
    let full_kg = k / 4;
    let full_j = n - n % 16;
    let dst_of = |kg: usize, j: usize| ((j / NR * k4 + kg) * NR + j % NR) * 4;
    for kg in 0..full_kg {
        let rows = [0, 1, 2, 3].map(|r| b.as_ptr().add((kg * 4 + r) * n));
        let mut j = 0;
        while j < full_j {
            let r = rows.map(|p| _mm_loadu_si128(p.add(j) as *const __m128i));
            let (t0, t1) = (_mm_unpacklo_epi8(r[0], r[1]), _mm_unpackhi_epi8(r[0], r[1]));
            let (t2, t3) = (_mm_unpacklo_epi8(r[2], r[3]), _mm_unpackhi_epi8(r[2], r[3]));
            let dst = pb.as_mut_ptr().add(dst_of(kg, j)) as *mut __m128i;
            _mm_storeu_si128(dst, _mm_unpacklo_epi16(t0, t2));
            _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(t0, t2));
            _mm_storeu_si128(dst.add(2), _mm_unpacklo_epi16(t1, t3));
            _mm_storeu_si128(dst.add(3), _mm_unpackhi_epi16(t1, t3));
            j += 16;
        }
        for j in full_j..n {
            for r in 0..4 {
                pb[dst_of(kg, j) + r] = b[(kg * 4 + r) * n + j];
            }
        }
    }
    for p in full_kg * 4..k {
        for j in 0..n {
            pb[dst_of(p / 4, j) + p % 4] = b[p * n + j];
        }
    }
    pb
}
