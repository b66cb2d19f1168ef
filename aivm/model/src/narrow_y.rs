//! A GEMM's output `Y` committed in the fewest bytes per element that hold all of it
//! (`spec/verification.md`, "Commitments").
//!
//! `Y`'s elements are i32 accumulators, but a model's activations and weights keep them far
//! from the i32 range: SmolLM2's need 13–21 bits, so three bytes hold every element of
//! almost every GEMM. Committing each element as its low `w` bytes (two's complement,
//! little-endian) with `w` in the commitment binds the same integers — `w` bytes
//! sign-extend back to exactly one i32 — while the worker hashes, an answer carries and a
//! verifier reads a quarter fewer bytes. `w` is the fewest that fit ([`fewest_bytes`]), so
//! a GEMM has one commitment; a verifier that recommits opened data recomputes it.

use std::borrow::Cow;

/// The fewest bytes (1–4) that hold every element of `y` in two's complement.
pub fn fewest_bytes(y: &[i32]) -> u8 {
    // `v ^ (v >> 31)` is `v` for v ≥ 0 and `-v - 1` below: the bits a value needs besides
    // its sign. OR-ing them over the slice vectorizes.
    let bits = y.iter().fold(0u32, |a, &v| a | (v ^ (v >> 31)) as u32);
    match bits {
        0..=0x7f => 1,
        0x80..=0x7fff => 2,
        0x8000..=0x7f_ffff => 3,
        _ => 4,
    }
}

/// `y`'s committed bytes at `w` bytes an element (each element must fit: [`fewest_bytes`]
/// ≤ `w`): in place when `w` is 4 on a little-endian CPU.
pub fn to_bytes(y: &[i32], w: u8) -> Cow<'_, [u8]> {
    if w >= 4 && cfg!(target_endian = "little") {
        return Cow::Borrowed(bytemuck::cast_slice(y));
    }
    let w = usize::from(w.clamp(1, 4));
    let mut out = vec![0u8; y.len() * w];
    let done = simd::pack(y, w, &mut out);
    pack_plain(&y[done..], w, &mut out[done * w..]);
    Cow::Owned(out)
}

/// The written definition: each element's low `w` bytes, little-endian.
fn pack_plain(y: &[i32], w: usize, out: &mut [u8]) {
    for (o, v) in out.chunks_exact_mut(w).zip(y) {
        o.copy_from_slice(&v.to_le_bytes()[..w]);
    }
}

/// The elements of committed bytes `b` at `w` (1–4) bytes each, sign-extended; `None` if
/// `w` is out of range or `b` is not a whole number of elements.
pub fn from_bytes(b: &[u8], w: u8) -> Option<Vec<i32>> {
    let w = usize::from(w);
    if !(1..=4).contains(&w) || !b.len().is_multiple_of(w) {
        return None;
    }
    let mut y = vec![0i32; b.len() / w];
    let done = simd::unpack(b, w, &mut y);
    unpack_plain(&b[done * w..], w, &mut y[done..]);
    Some(y)
}

/// Sign-extend each `w`-byte little-endian field (the definition [`from_bytes`] follows).
fn unpack_plain(b: &[u8], w: usize, y: &mut [i32]) {
    for (v, c) in y.iter_mut().zip(b.chunks_exact(w)) {
        let mut le = [0u8; 4];
        le[4 - w..].copy_from_slice(c);
        *v = i32::from_le_bytes(le) >> (8 * (4 - w));
    }
}

/// Sixteen elements a step on AVX-512: narrowing moves (`vpmovdw`, `vpmovdb`) and their
/// sign-extending inverses for two and one bytes, a byte permute (`vpermb`, VBMI) for three.
/// Each returns how many leading elements it did (a multiple of sixteen; 0 without the
/// instructions); the plain loops do the rest, so every path writes the definition's bytes
/// (test `simd_paths_equal_the_definition`).
mod simd {
    #[cfg(target_arch = "x86_64")]
    pub fn pack(y: &[i32], w: usize, out: &mut [u8]) -> usize {
        let f = aivm_tensor::cpu::features();
        let n = y.len() / 16 * 16;
        match w {
            // SAFETY: the features are present; `out` holds `y.len() · w` bytes.
            1 | 2 if f.avx512_bw => unsafe { pack_narrow(y, w, n, out) },
            3 if f.avx512_vbmi => unsafe { pack3(y, n, out) },
            _ => return 0,
        }
        n
    }

    #[cfg(target_arch = "x86_64")]
    pub fn unpack(b: &[u8], w: usize, y: &mut [i32]) -> usize {
        let f = aivm_tensor::cpu::features();
        let n = y.len() / 16 * 16;
        match w {
            // SAFETY: the features are present; `b` holds `y.len() · w` bytes.
            1 | 2 if f.avx512_bw => unsafe { unpack_narrow(b, w, n, y) },
            3 if f.avx512_vbmi => unsafe { unpack3(b, n, y) },
            _ => return 0,
        }
        n
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn pack(_: &[i32], _: usize, _: &mut [u8]) -> usize {
        0
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn unpack(_: &[u8], _: usize, _: &mut [i32]) -> usize {
        0
    }

    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    /// Byte `i < 48` of sixteen packed elements is byte `i mod 3` of element `i / 3`.
    #[cfg(target_arch = "x86_64")]
    const PACK3: [u8; 64] = {
        let mut t = [0u8; 64];
        let mut i = 0;
        while i < 48 {
            t[i] = (i / 3 * 4 + i % 3) as u8;
            i += 1;
        }
        t
    };

    /// Bytes 1–3 of element `j` are packed bytes `3j`–`3j + 2`; byte 0 is zeroed by the
    /// mask, and an arithmetic shift by 8 sign-extends.
    #[cfg(target_arch = "x86_64")]
    const UNPACK3: [u8; 64] = {
        let mut t = [0u8; 64];
        let mut j = 0;
        while j < 16 {
            t[4 * j + 1] = (3 * j) as u8;
            t[4 * j + 2] = (3 * j + 1) as u8;
            t[4 * j + 3] = (3 * j + 2) as u8;
            j += 1;
        }
        t
    };

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn pack3(y: &[i32], n: usize, out: &mut [u8]) {
        let idx = _mm512_loadu_si512(PACK3.as_ptr().cast());
        for c in (0..n).step_by(16) {
            let v = _mm512_loadu_si512(y.as_ptr().add(c).cast());
            _mm512_mask_storeu_epi8(out.as_mut_ptr().add(3 * c).cast(), (1u64 << 48) - 1, _mm512_permutexvar_epi8(idx, v));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn unpack3(b: &[u8], n: usize, y: &mut [i32]) {
        let idx = _mm512_loadu_si512(UNPACK3.as_ptr().cast());
        // Every byte but each element's lowest.
        let keep: u64 = 0xEEEE_EEEE_EEEE_EEEE;
        for c in (0..n).step_by(16) {
            let v = _mm512_maskz_loadu_epi8((1u64 << 48) - 1, b.as_ptr().add(3 * c).cast());
            let wide = _mm512_maskz_permutexvar_epi8(keep, idx, v);
            _mm512_storeu_si512(y.as_mut_ptr().add(c).cast(), _mm512_srai_epi32::<8>(wide));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack_narrow(y: &[i32], w: usize, n: usize, out: &mut [u8]) {
        for c in (0..n).step_by(16) {
            let v = _mm512_loadu_si512(y.as_ptr().add(c).cast());
            if w == 2 {
                _mm256_storeu_si256(out.as_mut_ptr().add(2 * c).cast(), _mm512_cvtepi32_epi16(v));
            } else {
                _mm_storeu_si128(out.as_mut_ptr().add(c).cast(), _mm512_cvtepi32_epi8(v));
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn unpack_narrow(b: &[u8], w: usize, n: usize, y: &mut [i32]) {
        for c in (0..n).step_by(16) {
            let v = if w == 2 {
                _mm512_cvtepi16_epi32(_mm256_loadu_si256(b.as_ptr().add(2 * c).cast()))
            } else {
                _mm512_cvtepi8_epi32(_mm_loadu_si128(b.as_ptr().add(c).cast()))
            };
            _mm512_storeu_si512(y.as_mut_ptr().add(c).cast(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_fewest_bytes_are_the_two_complement_ranges() {
        for (v, w) in [(0, 1), (127, 1), (-128, 1), (128, 2), (-129, 2), (32_767, 2), (-32_768, 2), (32_768, 3), (-32_769, 3)] {
            assert_eq!(fewest_bytes(&[0, v, 1]), w, "{v}");
        }
        for (v, w) in [(8_388_607, 3), (-8_388_608, 3), (8_388_608, 4), (-8_388_609, 4), (i32::MAX, 4), (i32::MIN, 4)] {
            assert_eq!(fewest_bytes(&[v]), w, "{v}");
        }
        assert_eq!(fewest_bytes(&[]), 1);
    }

    proptest! {
        /// Every element comes back from its committed bytes, at its fewest width and any
        /// wider one; a narrower width than the fewest loses one.
        #[test]
        fn bytes_round_trip(y in prop::collection::vec(prop_oneof![any::<i32>(), -200_000i32..200_000, -300i32..300, -130i32..130], 0..70)) {
            let fewest = fewest_bytes(&y);
            for w in fewest..=4 {
                let b = to_bytes(&y, w);
                prop_assert_eq!(b.len(), y.len() * usize::from(w));
                // The written definition: each element's low `w` bytes, little-endian.
                let want: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()[..usize::from(w)].to_vec()).collect();
                prop_assert_eq!(&b[..], &want[..]);
                prop_assert_eq!(from_bytes(&b, w), Some(y.clone()));
            }
            if fewest > 1 {
                let w = fewest - 1;
                prop_assert_ne!(from_bytes(&to_bytes(&y, w), w), Some(y.clone()));
            }
        }
    }

    /// The SIMD forms against the plain loops, on lengths around their sixteen-element
    /// steps and values at every width's edges.
    #[test]
    fn simd_paths_equal_the_definition() {
        let edges = [0, 1, -1, 127, -128, 32_767, -32_768, 8_388_607, -8_388_608, 65_535, 255, 12_345, -777];
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1536] {
            let y: Vec<i32> = (0..len).map(|i| edges[i % edges.len()] ^ ((i as i32 * 7919) & 0x3f)).collect();
            for w in [1usize, 2, 3] {
                let y: Vec<i32> = y.iter().map(|&v| (v << (32 - 8 * w)) >> (32 - 8 * w)).collect();
                let mut plain = vec![0u8; len * w];
                pack_plain(&y, w, &mut plain);
                assert_eq!(&to_bytes(&y, w as u8)[..], &plain[..], "pack len {len} w {w}");
                let mut back = vec![0i32; len];
                unpack_plain(&plain, w, &mut back);
                assert_eq!(back, y, "plain unpack len {len} w {w}");
                assert_eq!(from_bytes(&plain, w as u8), Some(y.clone()), "unpack len {len} w {w}");
            }
        }
    }

    /// Pack and unpack speed at three bytes, against hashing the same rows four bytes wide
    /// (`cargo test --release -p aivm-model --lib -- narrow_y_speed --ignored --nocapture`).
    #[test]
    #[ignore]
    fn narrow_y_speed() {
        crate::heap::keep_freed_memory();
        let y: Vec<i32> = (0..4_000_000).map(|i: i32| (i.wrapping_mul(2_654_435_761u32 as i32)) >> 11).collect();
        let best = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let b = to_bytes(&y, 3).into_owned();
        let pack = best(&mut || drop(std::hint::black_box(to_bytes(&y, 3))));
        let unpack = best(&mut || drop(std::hint::black_box(from_bytes(&b, 3))));
        assert_eq!(from_bytes(&b, 3).unwrap(), y);
        let hash = best(&mut || {
            std::hint::black_box(blake3::hash(bytemuck::cast_slice(&y)));
        });
        println!("4 M elements, best of 5: pack {pack:?}, unpack {unpack:?}, BLAKE3 of the i32 bytes {hash:?}");
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert_eq!(from_bytes(&[1, 2, 3, 4], 0), None);
        assert_eq!(from_bytes(&[1, 2, 3, 4], 5), None);
        assert_eq!(from_bytes(&[1, 2, 3, 4], 3), None);
        assert_eq!(from_bytes(&[0xff, 0xff, 0x7f], 3), Some(vec![0x7f_ffff]));
        assert_eq!(from_bytes(&[0, 0, 0x80], 3), Some(vec![-0x80_0000]));
    }
}
