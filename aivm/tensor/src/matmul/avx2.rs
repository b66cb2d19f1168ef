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
