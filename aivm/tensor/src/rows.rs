//! Products of a few rows against an unpacked weight: `y[i][j] = x_i · w_j` with `w [n×k]`
//! row-major, as a model stores it. A verifier recomputing a decode step's GEMM (one to seven
//! rows) reads the weight once; packing it first ([`crate::gemm::Packed`]) would cost as much
//! as the product, and keeping a packed copy of every weight for this doubles the memory.
//!
//! Exact on every path: the AVX-512 VNNI form offsets `w` to unsigned (`w + 128`, `vpdpbusd`
//! multiplies unsigned by signed bytes), so each sum gains `128·Σ_p x_p`, subtracted at the
//! end. Every partial sum is below `255·128·k < 2³¹` for `k < 2¹⁶`; longer rows take the
//! scalar form, which sums in i64.

/// Longest row the VNNI form takes (its partial sums stay below 2³¹).
const VNNI_MAX_K: usize = (1 << 16) - 1;

/// `y [m×n] = x [m×k] · wᵀ` for `w [n×k]` row-major, each entry exact. Returns `false`
/// (writing nothing) if a length does not match the shape, or an entry does not fit i32.
pub fn rows_times_weight(x: &[i8], m: usize, w: &[i8], n: usize, k: usize, y: &mut [i32]) -> bool {
    if k == 0 || x.len() != m * k || w.len() != n * k || y.len() != m * n {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if k <= VNNI_MAX_K && crate::matmul::SimdPath::available().contains(&crate::matmul::SimdPath::Avx512Vnni) {
        for (xi, yi) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked above); the lengths are
            // `k`, `n·k` and `n` (checked above and by the chunking).
            unsafe { vnni::row(xi, w, n, k, yi) };
        }
        return true;
    }
    scalar(x, w, n, k, y)
}

/// The definition: each dot product summed in i32 where that is exact (`k < 2¹⁷`: every
/// product is at most 2¹⁴; the compiler vectorizes it), else in i64. `false` if an entry
/// does not fit i32 (only possible past 2¹⁷).
fn scalar(x: &[i8], w: &[i8], n: usize, k: usize, y: &mut [i32]) -> bool {
    if k < 1 << 17 {
        for (xi, yi) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            for (wj, v) in w.chunks_exact(k).zip(yi.iter_mut()) {
                *v = xi.iter().zip(wj).map(|(&a, &b)| a as i32 * b as i32).sum();
            }
        }
        return true;
    }
    let mut out = vec![0i32; y.len()];
    for (xi, yi) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        for (wj, v) in w.chunks_exact(k).zip(yi.iter_mut()) {
            let s: i64 = xi.iter().zip(wj).map(|(&a, &b)| a as i64 * b as i64).sum();
            match i32::try_from(s) {
                Ok(s) => *v = s,
                Err(_) => return false,
            }
        }
    }
    y.copy_from_slice(&out);
    true
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::sum_sixteen;
    use std::arch::x86_64::*;

    /// Weight rows taken together: one accumulator each, summed by one reduction tree.
    const BLOCK: usize = 16;

    /// `y[j] = x · w_j` for the `n` rows of `w`.
    ///
    /// # Safety
    /// avx512f, avx512bw and avx512vnni; `x.len() == k`, `w.len() == n·k`, `y.len() == n`,
    /// `k < 2¹⁶`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn row(x: &[i8], w: &[i8], n: usize, k: usize, y: &mut [i32]) {
        let sum_x: i32 = x.iter().map(|&v| v as i32).sum();
        let offset = _mm512_set1_epi8(-128);
        let chunks = k.div_ceil(64);
        let tail: __mmask64 = if k.is_multiple_of(64) { !0 } else { (1u64 << (k % 64)) - 1 };
        // x's chunks, the last zero-padded: a padded lane multiplies whatever the weight's
        // masked load gave by zero.
        let xs: Vec<__m512i> = (0..chunks)
            .map(|c| {
                let mask = if c + 1 == chunks { tail } else { !0 };
                _mm512_maskz_loadu_epi8(mask, x.as_ptr().add(c * 64))
            })
            .collect();
        let mut j = 0;
        while j < n {
            let rows = (n - j).min(BLOCK);
            let mut acc = [_mm512_setzero_si512(); BLOCK];
            // Row by row, each row's chunks in order: the block's weights are read as one
            // sequential stream (chunk by chunk across the rows, a stride of `k`, read them at
            // half the speed).
            for (r, a) in acc.iter_mut().enumerate().take(rows) {
                let wr = w.as_ptr().add((j + r) * k);
                for (c, &xv) in xs.iter().enumerate() {
                    let mask = if c + 1 == chunks { tail } else { !0 };
                    let wv = _mm512_maskz_loadu_epi8(mask, wr.add(c * 64));
                    *a = _mm512_dpbusd_epi32(*a, _mm512_xor_si512(wv, offset), xv);
                }
            }
            if rows == BLOCK {
                // Sixteen sums in one reduction tree rather than sixteen reductions.
                let sums = _mm512_sub_epi32(sum_sixteen(&acc), _mm512_set1_epi32(sum_x.wrapping_mul(128)));
                _mm512_storeu_si512(y.as_mut_ptr().add(j) as *mut _, sums);
            } else {
                for (r, a) in acc.iter().enumerate().take(rows) {
                    y[j + r] = _mm512_reduce_add_epi32(*a).wrapping_sub(sum_x.wrapping_mul(128));
                }
            }
            j += rows;
        }
    }
}

/// Element `i` of the result is the sum of the sixteen i32 lanes of `v[i]` (wrapping, as
/// `_mm512_reduce_add_epi32`): pairs interleaved and added (32-bit, then 64-bit), then the
/// 128-bit quarters folded, so each level halves the vectors instead of reducing each alone.
/// ~45 instructions for sixteen sums where sixteen reductions take ~130.
///
/// # Safety
/// avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn sum_sixteen(v: &[std::arch::x86_64::__m512i; 16]) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // Per quarter: [a0+a2, b0+b2, a1+a3, b1+b3] for a = v[2i], b = v[2i+1].
    let w: [__m512i; 8] =
        std::array::from_fn(|i| _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1])));
    // Per quarter: that quarter's sums of v[4i], v[4i+1], v[4i+2], v[4i+3].
    let z: [__m512i; 4] =
        std::array::from_fn(|i| _mm512_add_epi32(_mm512_unpacklo_epi64(w[2 * i], w[2 * i + 1]), _mm512_unpackhi_epi64(w[2 * i], w[2 * i + 1])));
    // Quarters (0+1, 2+3) of two vectors side by side, then again: quarter i of the result
    // holds z[i]'s four quarters summed.
    let fold = |a: __m512i, b: __m512i| _mm512_add_epi32(_mm512_shuffle_i32x4::<0x88>(a, b), _mm512_shuffle_i32x4::<0xDD>(a, b));
    fold(fold(z[0], z[1]), fold(z[2], z[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcg_bytes as bytes;

    /// The reduction tree equals sixteen plain lane sums, wrapping included.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn sum_sixteen_equals_lane_sums() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let lanes: Vec<[i32; 16]> =
            (0..16).map(|i| std::array::from_fn(|l| bytes(i * 16 + l as u64, 4).iter().fold(0i32, |a, &b| (a << 8) | b as u8 as i32))).collect();
        // SAFETY: AVX-512 F checked above; each load reads one 64-byte array.
        let got: [i32; 16] = unsafe {
            use std::arch::x86_64::*;
            let v: [__m512i; 16] = std::array::from_fn(|i| _mm512_loadu_si512(lanes[i].as_ptr() as *const _));
            std::mem::transmute(sum_sixteen(&v))
        };
        let want: [i32; 16] = std::array::from_fn(|i| lanes[i].iter().fold(0i32, |a, &b| a.wrapping_add(b)));
        assert_eq!(got, want);
    }

    /// Every path equals the i64 definition on ragged shapes and at the extremes.
    #[test]
    fn rows_times_weight_is_exact() {
        for (m, k, n) in [(1, 576, 192), (3, 64, 33), (7, 1536, 70), (2, 1, 1), (1, 65, 17), (1, 100, 3000)] {
            let (x, w) = (bytes(m as u64 * 31 + k as u64, m * k), bytes(n as u64 + 5, n * k));
            let want: Vec<i32> = (0..m * n)
                .map(|e| {
                    let (i, j) = (e / n, e % n);
                    x[i * k..(i + 1) * k].iter().zip(&w[j * k..(j + 1) * k]).map(|(&a, &b)| a as i64 * b as i64).sum::<i64>() as i32
                })
                .collect();
            let mut y = vec![0x5555_5555; m * n];
            assert!(rows_times_weight(&x, m, &w, n, k, &mut y));
            assert_eq!(y, want, "{m}x{k}x{n}");
            let mut y = vec![0x5555_5555; m * n];
            assert!(scalar(&x, &w, n, k, &mut y));
            assert_eq!(y, want, "{m}x{k}x{n} scalar");
        }
        for (xv, wv) in [(-128i8, -128i8), (127, -128), (-128, 127), (127, 127)] {
            let (m, k, n) = (2, VNNI_MAX_K, 3);
            let mut y = vec![0; m * n];
            assert!(rows_times_weight(&vec![xv; m * k], m, &vec![wv; n * k], n, k, &mut y));
            assert!(y.iter().all(|&v| v as i64 == xv as i64 * wv as i64 * k as i64), "{xv}·{wv}");
        }
        // Wrong lengths write nothing.
        let mut y = vec![7; 3];
        assert!(!rows_times_weight(&[1; 4], 1, &[1; 10], 3, 4, &mut y));
        assert_eq!(y, [7; 3]);
    }

    /// Timing, not a check (`cargo test --release -p aivm-tensor -- one_row_output_projection
    /// --ignored --nocapture`): the verifier's one-row recomputation of SmolLM2's output
    /// projection (49 152 × 576, 28 MB) with the weight on the heap and in a huge-page slab.
    #[test]
    #[ignore]
    fn one_row_output_projection_speed() {
        let (n, k) = (49_152, 576);
        let heap = bytes(3, n * k);
        let mut slab = crate::resident::Slab::zeroed(n * k).expect("memory");
        slab.as_mut_slice().copy_from_slice(&heap);
        let resident = slab.as_slice();
        let x = bytes(9, k);
        let mut y = vec![0i32; n];
        for (name, w) in [("heap", &heap[..]), ("2 MiB pages", resident), ("heap", &heap[..]), ("2 MiB pages", resident)] {
            let best = (0..7)
                .map(|_| {
                    let t = std::time::Instant::now();
                    assert!(rows_times_weight(&x, 1, w, n, k, std::hint::black_box(&mut y)));
                    t.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::MAX, f64::min);
            println!("{name}: {best:.2} ms ({:.1} GB/s)", (n * k) as f64 / best / 1e6);
        }
    }
}
