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

const MR: usize = 8;
const NR: usize = 32;

/// # Safety
/// The CPU must support `avx512f` and `avx512vnni`. Slices must match `m×k`, `k×n`, `m×n`.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn matmul(a: &[i8], b: &[i8], c: &mut [i32], m: usize, k: usize, n: usize) {
    let k4 = k.div_ceil(4);
    let panels = n.div_ceil(NR);
    let blocks = m.div_ceil(MR);

    // B panels: [panel][kg][col 0..32][4 bytes], zero padded.
    let mut pb = vec![0i8; panels * k4 * NR * 4];
    for p in 0..k {
        let (kg, kr) = (p / 4, p % 4);
        for j in 0..n {
            let (panel, col) = (j / NR, j % NR);
            pb[((panel * k4 + kg) * NR + col) * 4 + kr] = b[p * n + j];
        }
    }
    let mut corr = super::column_sums(b, k, n);
    corr.iter_mut().for_each(|s| *s = s.wrapping_mul(128));
    corr.resize(panels * NR, 0);

    // A blocks: [block][kg][row 0..8][4 bytes] as unsigned (a + 128); padding is 128 (= 0).
    let mut pa = vec![128u8; blocks * k4 * MR * 4];
    for i in 0..m {
        let (blk, row) = (i / MR, i % MR);
        for p in 0..k {
            pa[((blk * k4 + p / 4) * MR + row) * 4 + p % 4] = (a[i * k + p] as u8) ^ 0x80;
        }
    }

    let mut tile = [0i32; MR * NR];
    for panel in 0..panels {
        let bp = pb.as_ptr().add(panel * k4 * NR * 4);
        let c0 = _mm512_loadu_si512(corr.as_ptr().add(panel * NR) as *const _);
        let c1 = _mm512_loadu_si512(corr.as_ptr().add(panel * NR + 16) as *const _);
        for blk in 0..blocks {
            let ap = pa.as_ptr().add(blk * k4 * MR * 4);
            let mut acc = [[_mm512_setzero_si512(); 2]; MR];
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
            let rows = (m - blk * MR).min(MR);
            let cols = (n - panel * NR).min(NR);
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let v0 = _mm512_sub_epi32(acc_r[0], c0);
                let v1 = _mm512_sub_epi32(acc_r[1], c1);
                let dst = c.as_mut_ptr().add((blk * MR + r) * n + panel * NR);
                if cols == NR {
                    _mm512_storeu_si512(dst as *mut _, v0);
                    _mm512_storeu_si512(dst.add(16) as *mut _, v1);
                } else {
                    _mm512_storeu_si512(tile.as_mut_ptr() as *mut _, v0);
                    _mm512_storeu_si512(tile.as_mut_ptr().add(16) as *mut _, v1);
                    std::ptr::copy_nonoverlapping(tile.as_ptr(), dst, cols);
                }
            }
        }
    }
}
