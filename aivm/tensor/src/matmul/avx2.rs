//! AVX2 kernel: sign-extend to i16 and use `vpmaddwd` (pairs of i16 products summed into i32).
//!
//! Each pair sum is at most 2·2^14 = 2^15 in magnitude, so `vpmaddwd` never saturates,
//! and the i32 accumulation is exact for k ≤ MAX_K.
//!
//! Register tile: MR = 4 rows × NR = 16 columns (8 ymm accumulators). B is packed into
//! panels of 16 columns holding 2 consecutive k per column as i16.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

const MR: usize = 4;
const NR: usize = 16;

/// # Safety
/// The CPU must support `avx2`. Slices must match `m×k`, `k×n`, `m×n`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn matmul(a: &[i8], b: &[i8], c: &mut [i32], m: usize, k: usize, n: usize) {
    let k2 = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    let blocks = m.div_ceil(MR);

    // B panels: [panel][kp][col 0..16][2 × i16], zero padded.
    let mut pb = vec![0i16; panels * k2 * NR * 2];
    for p in 0..k {
        for j in 0..n {
            let (panel, col) = (j / NR, j % NR);
            pb[((panel * k2 + p / 2) * NR + col) * 2 + p % 2] = b[p * n + j] as i16;
        }
    }
    // A blocks: [block][kp][row 0..4] as two i16 packed in an i32, zero padded.
    let mut pa = vec![0i32; blocks * k2 * MR];
    for i in 0..m {
        for p in 0..k2 {
            let lo = a[i * k + 2 * p] as i16 as u16 as u32;
            let hi = if 2 * p + 1 < k { a[i * k + 2 * p + 1] as i16 as u16 as u32 } else { 0 };
            pa[((i / MR) * k2 + p) * MR + i % MR] = (lo | (hi << 16)) as i32;
        }
    }

    let mut tile = [0i32; NR];
    for panel in 0..panels {
        let bp = pb.as_ptr().add(panel * k2 * NR * 2);
        for blk in 0..blocks {
            let ap = pa.as_ptr().add(blk * k2 * MR);
            let mut acc = [[_mm256_setzero_si256(); 2]; MR];
            for kp in 0..k2 {
                let b0 = _mm256_loadu_si256(bp.add(kp * NR * 2) as *const _);
                let b1 = _mm256_loadu_si256(bp.add(kp * NR * 2 + 16) as *const _);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_epi32(*ap.add(kp * MR + r));
                    acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, b0));
                    acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, b1));
                }
            }
            let rows = (m - blk * MR).min(MR);
            let cols = (n - panel * NR).min(NR);
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let dst = c.as_mut_ptr().add((blk * MR + r) * n + panel * NR);
                if cols == NR {
                    _mm256_storeu_si256(dst as *mut _, acc_r[0]);
                    _mm256_storeu_si256(dst.add(8) as *mut _, acc_r[1]);
                } else {
                    _mm256_storeu_si256(tile.as_mut_ptr() as *mut _, acc_r[0]);
                    _mm256_storeu_si256(tile.as_mut_ptr().add(8) as *mut _, acc_r[1]);
                    std::ptr::copy_nonoverlapping(tile.as_ptr(), dst, cols);
                }
            }
        }
    }
}

/// Rows per register tile of [`panel_product`] (the inference GEMM on AVX2).
pub const PANEL_ROWS: usize = 4;
/// Columns of the packed weight panels [`panel_product`] reads (`crate::gemm`'s layout).
const PANEL_COLS: usize = 32;

/// X for [`panel_product`]: `[block][kg][row 0..4][4 × i16]`, each group of four `k`
/// sign-extended, zero padded (rows past `m`, `k` past the end). `pa` holds the blocks of
/// rows `0..m` and starts zeroed; blocks are independent, so ranges of whole blocks may be
/// packed on different threads.
pub fn pack_x_i16_into(a: &[i8], m: usize, k: usize, k4: usize, pa: &mut [i16]) {
    for (i, row) in a.chunks_exact(k.max(1)).enumerate().take(m) {
        let base = (i / PANEL_ROWS) * k4 * PANEL_ROWS * 4 + (i % PANEL_ROWS) * 4;
        for (kg, c) in row.chunks(4).enumerate() {
            let at = base + kg * PANEL_ROWS * 4;
            for (d, &v) in pa[at..at + c.len()].iter_mut().zip(c) {
                *d = v as i16;
            }
        }
    }
}

/// One packed 32-column weight panel (`[kg][col 0..32][4 bytes]`, as `crate::gemm` packs it
/// for VNNI) against X packed by [`pack_x_i16_into`]: `dst[r·stride + j] = Σ_k x[r][k]·w[j][k]`
/// for `j < cols`, every row of `m`.
///
/// AVX2 has no byte dot product that is exact for every int8 pair (`vpmaddubsw` saturates
/// its i16 pair sums), so the weights are sign-extended to i16 as they are loaded and
/// multiplied with `vpmaddwd`: each i32 lane sums two exact products (≤ 2·2^14), and the
/// two lanes of a column (k mod 4 in {0, 1} and {2, 3}) are added at the end. Every sum is
/// the exact integer (k ≤ MAX_K), so this equals the scalar and VNNI paths bit for bit.
///
/// # Safety
/// avx2; `xa` holds `⌈m/4⌉·k4·16` values, `bp` `k4·128` bytes, `dst` rows `0..m` of `cols`
/// values at `stride`, and no other thread writes those columns meanwhile.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn panel_product(xa: &[i16], m: usize, k4: usize, bp: *const i8, cols: usize, dst: *mut i32, stride: usize) {
    for blk in 0..m.div_ceil(PANEL_ROWS) {
        let ap = xa.as_ptr().add(blk * k4 * PANEL_ROWS * 4);
        let d = dst.add(blk * PANEL_ROWS * stride);
        match (m - blk * PANEL_ROWS).min(PANEL_ROWS) {
            1 if cols == PANEL_COLS => row_of_panel(ap, k4, bp, d),
            1 => block::<1>(ap, k4, bp, cols, d, stride),
            2 => block::<2>(ap, k4, bp, cols, d, stride),
            3 => block::<3>(ap, k4, bp, cols, d, stride),
            _ => block::<PANEL_ROWS>(ap, k4, bp, cols, d, stride),
        }
    }
}

/// One row against a whole panel (a decode step's GEMV): the panel streamed once, all 32
/// columns' accumulators live, where [`block`] would pass over it four times.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn row_of_panel(ap: *const i16, k4: usize, bp: *const i8, dst: *mut i32) {
    let mut acc = [_mm256_setzero_si256(); 8];
    for kg in 0..k4 {
        let b = bp.add(kg * PANEL_COLS * 4);
        let av = _mm256_set1_epi64x((ap.add(kg * PANEL_ROWS * 4) as *const i64).read_unaligned());
        for (h, acc_h) in acc.iter_mut().enumerate() {
            let bh = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16 * h) as *const __m128i));
            *acc_h = _mm256_add_epi32(*acc_h, _mm256_madd_epi16(av, bh));
        }
    }
    for sub in 0..4 {
        let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc[2 * sub], acc[2 * sub + 1]));
        _mm256_storeu_si256(dst.add(sub * 8) as *mut __m256i, v);
    }
}

/// `R` rows of one packed block times one panel, eight columns at a time.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block<const R: usize>(ap: *const i16, k4: usize, bp: *const i8, cols: usize, dst: *mut i32, stride: usize) {
    let mut tile = [0i32; 8];
    for sub in 0..cols.div_ceil(8) {
        // Lanes of acc[r][h]: column 4h + l/2, k ≡ {0,1} (l even) or {2,3} (l odd) mod 4.
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for kg in 0..k4 {
            let b = bp.add(kg * PANEL_COLS * 4 + sub * 32);
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b as *const __m128i));
            let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16) as *const __m128i));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi64x((ap.add((kg * PANEL_ROWS + r) * 4) as *const i64).read_unaligned());
                acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, b0));
                acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, b1));
            }
        }
        let n = (cols - sub * 8).min(8);
        for (r, acc_r) in acc.iter().enumerate() {
            // Adjacent lanes summed: [c0 c1 c4 c5 | c2 c3 c6 c7], then the 64-bit lanes put
            // in order.
            let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc_r[0], acc_r[1]));
            let d = dst.add(r * stride + sub * 8);
            if n == 8 {
                _mm256_storeu_si256(d as *mut __m256i, v);
            } else {
                _mm256_storeu_si256(tile.as_mut_ptr() as *mut __m256i, v);
                std::ptr::copy_nonoverlapping(tile.as_ptr(), d, n);
            }
        }
    }
}
