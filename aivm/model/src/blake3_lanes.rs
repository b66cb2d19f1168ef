//! Sixteen BLAKE3 compressions side by side, each lane with its own chaining value.
//!
//! [`crate::row_leaves`] hashes the rows of one matrix in the sixteen lanes of BLAKE3's own
//! `hash_many`, which covers whole 64-byte blocks from one shared key. What it cannot cover
//! is where each lane carries a different chaining value: the final (usually short) block of
//! every row, and the parent nodes joining a multi-chunk row's chunks. Compressed one at a
//! time, those were the largest BLAKE3 cost of a committed run (a profile of `commit_cost`:
//! `compress_in_place` 9 % of all samples, against 4.7 % in `hash_many`). Rows of one matrix
//! share their length, so their final blocks share the counter, length and flags, and their
//! chunk trees share one shape: sixteen of them fit one vectorized compression.
//!
//! This is BLAKE3's compression function as its specification defines it (§2.2: seven rounds
//! of `G` over the message schedule), written over lane arrays so the compiler emits one
//! AVX-512 instruction per step for all sixteen lanes; every output is compared with the
//! `blake3` crate in the tests, here and in `row_leaves`. Owned rather than taken from the
//! crate because the crate exposes no many-lane compression with per-lane chaining values.

use crate::kernels::Isa;

/// Messages compressed side by side.
pub const LANES: usize = 16;
/// One 32-bit word of every lane.
pub type Lanes = [u32; LANES];

const IV: [u32; 8] = [0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19];

/// BLAKE3's message permutation: round `r + 1` reads word `PERMUTATION[i]` of round `r`'s
/// message where round `r` read word `i`.
const PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];

/// Chaining values of every lane starting from BLAKE3's IV.
pub fn iv() -> [Lanes; 8] {
    IV.map(|w| [w; LANES])
}

/// The message words of sixteen 64-byte blocks (lane `l`'s block is `blocks[l]`), of which
/// only the first `len` bytes may be non-zero (a final block's padding is zeros).
pub fn words(blocks: &[[u8; 64]; LANES], len: usize) -> [Lanes; 16] {
    let mut m = [[0u32; LANES]; 16];
    let used = len.min(64).div_ceil(4);
    for (l, b) in blocks.iter().enumerate() {
        for (w, bytes) in b.chunks_exact(4).take(used).enumerate() {
            m[w][l] = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
    }
    m
}

/// Lane `l`'s chaining value as eight words.
pub fn lane(cv: &[Lanes; 8], l: usize) -> [u32; 8] {
    std::array::from_fn(|w| cv[w][l])
}

/// Set lane `l`'s chaining value.
pub fn set_lane(cv: &mut [Lanes; 8], l: usize, v: &[u32; 8]) {
    for w in 0..8 {
        cv[w][l] = v[w];
    }
}

/// `compress_in_place` for every lane: `cv[..][l]` becomes the chaining value after
/// compressing message `m[..][l]` with the shared `counter`, `block_len` and `flags`.
pub fn compress(cv: &mut [Lanes; 8], m: &[Lanes; 16], counter: u64, block_len: u32, flags: u32) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect() == Isa::Avx512 {
        // SAFETY: the CPU has AVX-512 F (`Isa::Avx512` requires it).
        return unsafe { wide::compress(cv, m, counter, block_len, flags) };
    }
    body(cv, m, counter, block_len, flags)
}

/// The same compression in AVX-512 registers, one per state or message word. Written with
/// intrinsics: the lane-array form compiles to gathers for the permuted message.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{Lanes, IV, PERMUTATION};
    use std::arch::x86_64::*;

    macro_rules! g {
        ($v:ident, $a:literal, $b:literal, $c:literal, $d:literal, $x:expr, $y:expr) => {
            $v[$a] = _mm512_add_epi32(_mm512_add_epi32($v[$a], $v[$b]), $x);
            $v[$d] = _mm512_ror_epi32::<16>(_mm512_xor_si512($v[$d], $v[$a]));
            $v[$c] = _mm512_add_epi32($v[$c], $v[$d]);
            $v[$b] = _mm512_ror_epi32::<12>(_mm512_xor_si512($v[$b], $v[$c]));
            $v[$a] = _mm512_add_epi32(_mm512_add_epi32($v[$a], $v[$b]), $y);
            $v[$d] = _mm512_ror_epi32::<8>(_mm512_xor_si512($v[$d], $v[$a]));
            $v[$c] = _mm512_add_epi32($v[$c], $v[$d]);
            $v[$b] = _mm512_ror_epi32::<7>(_mm512_xor_si512($v[$b], $v[$c]));
        };
    }

    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn compress(cv: &mut [Lanes; 8], m: &[Lanes; 16], counter: u64, block_len: u32, flags: u32) {
        // SAFETY (loads and stores): each `Lanes` is sixteen u32, exactly one 512-bit vector.
        let mut v = [_mm512_setzero_si512(); 16];
        for w in 0..8 {
            v[w] = unsafe { _mm512_loadu_epi32(cv[w].as_ptr() as *const i32) };
        }
        for w in 0..4 {
            v[8 + w] = _mm512_set1_epi32(IV[w] as i32);
        }
        v[12] = _mm512_set1_epi32(counter as u32 as i32);
        v[13] = _mm512_set1_epi32((counter >> 32) as u32 as i32);
        v[14] = _mm512_set1_epi32(block_len as i32);
        v[15] = _mm512_set1_epi32(flags as i32);
        let mut mv = [_mm512_setzero_si512(); 16];
        for w in 0..16 {
            mv[w] = unsafe { _mm512_loadu_epi32(m[w].as_ptr() as *const i32) };
        }
        let mut m = mv;
        for round in 0..7 {
            g!(v, 0, 4, 8, 12, m[0], m[1]);
            g!(v, 1, 5, 9, 13, m[2], m[3]);
            g!(v, 2, 6, 10, 14, m[4], m[5]);
            g!(v, 3, 7, 11, 15, m[6], m[7]);
            g!(v, 0, 5, 10, 15, m[8], m[9]);
            g!(v, 1, 6, 11, 12, m[10], m[11]);
            g!(v, 2, 7, 8, 13, m[12], m[13]);
            g!(v, 3, 4, 9, 14, m[14], m[15]);
            if round < 6 {
                // PERMUTATION spelled out: `array::map` with a closure is not compiled for
                // AVX-512 and was called out of line, costing more than the rounds.
                let p = PERMUTATION;
                m = [
                    m[p[0]], m[p[1]], m[p[2]], m[p[3]], m[p[4]], m[p[5]], m[p[6]], m[p[7]], m[p[8]], m[p[9]], m[p[10]], m[p[11]], m[p[12]], m[p[13]], m[p[14]],
                    m[p[15]],
                ];
            }
        }
        for w in 0..8 {
            // SAFETY: as the loads.
            unsafe { _mm512_storeu_epi32(cv[w].as_mut_ptr() as *mut i32, _mm512_xor_si512(v[w], v[w + 8])) };
        }
    }
}

#[inline(always)]
fn add(a: &mut Lanes, b: &Lanes) {
    for (a, b) in a.iter_mut().zip(b) {
        *a = a.wrapping_add(*b);
    }
}

#[inline(always)]
fn xor_rotate(d: &mut Lanes, a: &Lanes, r: u32) {
    for (d, a) in d.iter_mut().zip(a) {
        *d = (*d ^ *a).rotate_right(r);
    }
}

/// BLAKE3's `G` on state words `a, b, c, d` with message words `x, y`, in every lane.
#[inline(always)]
fn g(v: &mut [Lanes; 16], [a, b, c, d]: [usize; 4], x: &Lanes, y: &Lanes) {
    let (mut va, mut vb, mut vc, mut vd) = (v[a], v[b], v[c], v[d]);
    add(&mut va, &vb);
    add(&mut va, x);
    xor_rotate(&mut vd, &va, 16);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 12);
    add(&mut va, &vb);
    add(&mut va, y);
    xor_rotate(&mut vd, &va, 8);
    add(&mut vc, &vd);
    xor_rotate(&mut vb, &vc, 7);
    (v[a], v[b], v[c], v[d]) = (va, vb, vc, vd);
}

#[inline(always)]
fn body(cv: &mut [Lanes; 8], m: &[Lanes; 16], counter: u64, block_len: u32, flags: u32) {
    let mut v = [[0u32; LANES]; 16];
    v[..8].copy_from_slice(cv);
    for w in 0..4 {
        v[8 + w] = [IV[w]; LANES];
    }
    v[12] = [counter as u32; LANES];
    v[13] = [(counter >> 32) as u32; LANES];
    v[14] = [block_len; LANES];
    v[15] = [flags; LANES];
    // Seven rounds, the message permuted between them (constant indices throughout, so the
    // lanes stay in registers: no gathers).
    let mut m = *m;
    for round in 0..7 {
        g(&mut v, [0, 4, 8, 12], &m[0], &m[1]);
        g(&mut v, [1, 5, 9, 13], &m[2], &m[3]);
        g(&mut v, [2, 6, 10, 14], &m[4], &m[5]);
        g(&mut v, [3, 7, 11, 15], &m[6], &m[7]);
        g(&mut v, [0, 5, 10, 15], &m[8], &m[9]);
        g(&mut v, [1, 6, 11, 12], &m[10], &m[11]);
        g(&mut v, [2, 7, 8, 13], &m[12], &m[13]);
        g(&mut v, [3, 4, 9, 14], &m[14], &m[15]);
        if round < 6 {
            m = PERMUTATION.map(|i| m[i]);
        }
    }
    for w in 0..8 {
        for l in 0..LANES {
            cv[w][l] = v[w][l] ^ v[w + 8][l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blake3::platform::{words_from_le_bytes_32, Platform};

    #[test]
    fn every_lane_is_blake3s_compression() {
        // Different chaining values, blocks and shared parameters in each case; each lane
        // against the crate's own single compression, on every instantiation.
        let mut seed = 0x9E37_79B9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let p = Platform::detect();
        for case in 0..40u64 {
            let mut blocks = [[0u8; 64]; LANES];
            let mut cv = iv();
            for (l, b) in blocks.iter_mut().enumerate() {
                b.iter_mut().for_each(|x| *x = next() as u8);
                if case % 3 != 0 {
                    let v: [u32; 8] = std::array::from_fn(|_| next());
                    set_lane(&mut cv, l, &v);
                }
            }
            let counter = if case % 2 == 0 { case } else { (next() as u64) << 32 | next() as u64 };
            let (block_len, flags) = ((case % 65) as u32, (case % 16) as u32);
            let mut got = cv;
            compress(&mut got, &words(&blocks, 64), counter, block_len, flags);
            let mut base = cv;
            body(&mut base, &words(&blocks, 64), counter, block_len, flags);
            assert_eq!(got, base, "the AVX-512 instantiation equals the baseline");
            for (l, block) in blocks.iter().enumerate() {
                let mut want = lane(&cv, l);
                p.compress_in_place(&mut want, block, block_len as u8, counter, flags as u8);
                assert_eq!(lane(&got, l), want, "case {case} lane {l}");
            }
        }
        // And a whole one-block message: BLAKE3("abc").
        let mut blocks = [[0u8; 64]; LANES];
        blocks[3][..3].copy_from_slice(b"abc");
        let mut cv = iv();
        compress(&mut cv, &words(&blocks, 3), 0, 3, 1 | 2 | 8);
        assert_eq!(lane(&cv, 3), words_from_le_bytes_32(blake3::hash(b"abc").as_bytes()));
    }

    /// Timing, not a check (`cargo test --release -p aivm-model --lib -- lanes_against_single
    /// --ignored --nocapture`): one single compression against sixteen side by side, which
    /// sets `row_leaves`' crossover (BENCHMARKS.md).
    #[test]
    #[ignore]
    fn lanes_against_single() {
        let p = Platform::detect();
        let blocks = [[7u8; 64]; LANES];
        let n = 2_000_000;
        let t = std::time::Instant::now();
        let mut cv = [1u32; 8];
        for i in 0..n {
            p.compress_in_place(&mut cv, &blocks[i % LANES], 64, 0, 3);
        }
        let single = t.elapsed().as_secs_f64() / n as f64;
        let t = std::time::Instant::now();
        let mut c = iv();
        for _ in 0..n / LANES {
            compress(&mut c, &words(&blocks, 64), 0, 64, 3);
        }
        let many = t.elapsed().as_secs_f64() / (n / LANES) as f64;
        std::hint::black_box((cv, c));
        println!("one compression {:.1} ns, sixteen side by side {:.1} ns: break-even at {:.1} lanes", single * 1e9, many * 1e9, many / single);
    }
}
