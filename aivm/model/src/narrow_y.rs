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
    match w {
        1 => Cow::Owned(pack::<1>(y)),
        2 => Cow::Owned(pack::<2>(y)),
        3 => Cow::Owned(pack::<3>(y)),
        _ if cfg!(target_endian = "little") => Cow::Borrowed(bytemuck::cast_slice(y)),
        _ => Cow::Owned(pack::<4>(y)),
    }
}

fn pack<const W: usize>(y: &[i32]) -> Vec<u8> {
    let mut out = vec![0u8; y.len() * W];
    // Four elements a step: the compiler turns the fixed-size copies into byte shuffles.
    let whole = y.len() / 4 * 4;
    for (o, v) in out[..whole * W].chunks_exact_mut(4 * W).zip(y[..whole].chunks_exact(4)) {
        for j in 0..4 {
            o[j * W..(j + 1) * W].copy_from_slice(&v[j].to_le_bytes()[..W]);
        }
    }
    for (o, v) in out[whole * W..].chunks_exact_mut(W).zip(&y[whole..]) {
        o.copy_from_slice(&v.to_le_bytes()[..W]);
    }
    out
}

/// The elements of committed bytes `b` at `w` (1–4) bytes each, sign-extended; `None` if
/// `w` is out of range or `b` is not a whole number of elements.
pub fn from_bytes(b: &[u8], w: u8) -> Option<Vec<i32>> {
    let w = usize::from(w);
    if !(1..=4).contains(&w) || !b.len().is_multiple_of(w) {
        return None;
    }
    Some(match w {
        1 => b.iter().map(|&v| v as i8 as i32).collect(),
        2 => b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i32).collect(),
        3 => b.chunks_exact(3).map(|c| i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8).collect(),
        _ => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    })
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

    #[test]
    fn malformed_bytes_are_refused() {
        assert_eq!(from_bytes(&[1, 2, 3, 4], 0), None);
        assert_eq!(from_bytes(&[1, 2, 3, 4], 5), None);
        assert_eq!(from_bytes(&[1, 2, 3, 4], 3), None);
        assert_eq!(from_bytes(&[0xff, 0xff, 0x7f], 3), Some(vec![0x7f_ffff]));
        assert_eq!(from_bytes(&[0, 0, 0x80], 3), Some(vec![-0x80_0000]));
    }
}
