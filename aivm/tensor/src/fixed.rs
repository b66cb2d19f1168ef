//! Integer-only transcendental functions and rounding helpers.
//!
//! Every function here is defined by the exact integer algorithm written in
//! `spec/opcodes.md` ("Fixed-point arithmetic"); the float reference in the tests
//! only bounds their error. No platform `exp`/`log` is used anywhere, so results
//! are bit-identical on every machine.

/// 1.0 in Q30, the internal precision of `exp2`/`log2`.
pub const Q30_ONE: i64 = 1 << 30;
/// ln 2 in Q30, rounded to nearest.
pub const LN2_Q30: i64 = 744_261_118;
/// log2(e) in Q30, rounded to nearest.
pub const LOG2E_Q30: i64 = 1_549_082_005;

/// `EXP2_TABLE[i] = round(2^(i/64) · 2^30)`.
pub const EXP2_TABLE: [i64; 64] = [
    1073741824, 1085434106, 1097253708, 1109202018, 1121280436, 1133490379, 1145833280, 1158310587, 1170923762, 1183674286, 1196563654, 1209593378, 1222764986,
    1236080024, 1249540052, 1263146652, 1276901417, 1290805962, 1304861917, 1319070932, 1333434672, 1347954824, 1362633090, 1377471191, 1392470869, 1407633882,
    1422962010, 1438457051, 1454120821, 1469955159, 1485961921, 1502142985, 1518500250, 1535035634, 1551751076, 1568648537, 1585730000, 1602997467, 1620452965,
    1638098541, 1655936265, 1673968228, 1692196547, 1710623359, 1729250827, 1748081133, 1767116489, 1786359126, 1805811301, 1825475297, 1845353420, 1865448001,
    1885761398, 1906295993, 1927054196, 1948038440, 1969251188, 1990694927, 2012372174, 2034285470, 2056437387, 2078830522, 2101467502, 2124350982,
];

/// `LOG2_TABLE[j] = round(log2(1 + j/64) · 2^30)`.
pub const LOG2_TABLE: [i64; 64] = [
    0, 24017256, 47667823, 70962728, 93912511, 116527248, 138816582, 160789745, 182455581, 203822568, 224898839, 245692198, 266210141, 286459867, 306448299,
    326182095, 345667660, 364911162, 383918542, 402695523, 421247625, 439580170, 457698295, 475606957, 493310944, 510814882, 528123241, 545240343, 562170370,
    578917365, 595485245, 611877800, 628098702, 644151509, 660039669, 675766525, 691335320, 706749198, 722011213, 737124328, 752091421, 766915285, 781598637,
    796144114, 810554283, 824831638, 838978604, 852997541, 866890747, 880660455, 894308843, 907838029, 921250079, 934547002, 947730758, 960803257, 973766362,
    986621888, 999371606, 1012017244, 1024560487, 1037002979, 1049346328, 1061592099,
];

/// Below this argument (Q16, i.e. x ≤ -24) `exp_q16_to_q30` is defined as 0:
/// e^-24 ≈ 3.8e-11 is under half a Q30 unit.
pub const EXP_CUTOFF_Q16: i64 = -(24 << 16);

/// `2^(f / 2^30)` in Q30 for `f` in `[0, 2^30)`; the result is in `[2^30, 2^31)`.
///
/// Algorithm: split `f` into its top 6 bits `i` and the rest `r`; `y = floor(r·ln2)`;
/// `p = 1 + y(1 + y(1/2 + y/6))` by Horner with floor shifts; result
/// `floor(EXP2_TABLE[i] · p / 2^30)`.
pub fn exp2_frac_q30(f: i64) -> i64 {
    debug_assert!((0..Q30_ONE).contains(&f));
    let i = (f >> 24) as usize;
    let r = f & ((1 << 24) - 1);
    let y = (r * LN2_Q30) >> 30;
    const C2: i64 = Q30_ONE / 2;
    const C3: i64 = 178_956_971; // round(2^30 / 6)
    let mut p = C2 + ((y * C3) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    (EXP2_TABLE[i] * p) >> 30
}

/// `e^x` for `x ≤ 0` given in Q16, returned in Q30 (so `x = 0` gives exactly 2^30).
///
/// `t = floor(x · LOG2E / 2^16)` is `x·log2(e)` in Q30; `k = floor(t / 2^30)`,
/// `f = t − k·2^30`; result `exp2_frac_q30(f) >> −k`. Arguments at or below
/// [`EXP_CUTOFF_Q16`] give 0.
pub fn exp_neg_q16_to_q30(x: i64) -> i64 {
    debug_assert!(x <= 0);
    if x <= EXP_CUTOFF_Q16 {
        return 0;
    }
    let t = (x * LOG2E_Q30) >> 16;
    let k = t >> 30; // floor; in [-35, 0]
    let f = t - (k << 30);
    exp2_frac_q30(f) >> (-k)
}

/// `log2(v)` in Q30 for a positive integer `v`.
///
/// `e = floor(log2 v)`; `m = v` normalised to Q30 in `[2^30, 2^31)` (exact for
/// `v < 2^31`, floor otherwise); `j` = the top 6 fraction bits of `m`, `m_j = 2^30 + j·2^24`;
/// `r = floor((m − m_j)·2^30 / m_j)`; `ln(1+r) ≈ r − r²/2 + r³/3 − r⁴/4` by Horner with
/// floor shifts; result `e·2^30 + LOG2_TABLE[j] + floor(ln(1+r) · LOG2E / 2^30)`.
pub fn log2_q30(v: u64) -> i64 {
    debug_assert!(v > 0);
    let e = 63 - v.leading_zeros() as i64;
    let m = if e <= 30 { (v << (30 - e)) as i64 } else { (v >> (e - 30)) as i64 };
    let j = ((m - Q30_ONE) >> 24) as usize;
    let m_j = Q30_ONE + ((j as i64) << 24);
    let r = ((m - m_j) << 30) / m_j;
    const C2: i64 = Q30_ONE / 2;
    const C3: i64 = 357_913_941; // round(2^30 / 3)
    const C4: i64 = Q30_ONE / 4;
    // r(1 - r(1/2 - r(1/3 - r/4)))
    let mut p = C3 - ((r * C4) >> 30);
    p = C2 - ((r * p) >> 30);
    p = Q30_ONE - ((r * p) >> 30);
    let ln1p = (r * p) >> 30;
    (e << 30) + LOG2_TABLE[j] + ((ln1p * LOG2E_Q30) >> 30)
}

/// Defines `n / d` rounded to nearest, ties to even, for one integer width (`d > 0`).
macro_rules! div_round_half_even {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        pub fn $name(n: $t, d: $t) -> $t {
            debug_assert!(d > 0);
            let q = n.div_euclid(d);
            let r = n.rem_euclid(d); // 0 <= r < d
            match (2 * r).cmp(&d) {
                core::cmp::Ordering::Greater => q + 1,
                core::cmp::Ordering::Equal => q + (q & 1),
                core::cmp::Ordering::Less => q,
            }
        }
    };
}

div_round_half_even!(
    /// `n / d` rounded to nearest, ties to even. `d` must be positive.
    div_round_half_even, i128
);
div_round_half_even!(
    /// The same rounding for `i64` operands (the per-element fast path; identical results).
    div_round_half_even_i64, i64
);

/// Clamp an `i128` into the `i32` range.
pub fn saturate_i32(v: i128) -> i32 {
    v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_their_definition() {
        for (i, &t) in EXP2_TABLE.iter().enumerate() {
            let want = (2f64.powf(i as f64 / 64.0) * (1u64 << 30) as f64).round() as i64;
            assert_eq!(t, want, "EXP2_TABLE[{i}]");
        }
        for (j, &t) in LOG2_TABLE.iter().enumerate() {
            let want = ((1.0 + j as f64 / 64.0).log2() * (1u64 << 30) as f64).round() as i64;
            assert_eq!(t, want, "LOG2_TABLE[{j}]");
        }
    }

    #[test]
    fn exp_is_accurate_and_monotone() {
        assert_eq!(exp_neg_q16_to_q30(0), Q30_ONE);
        let mut prev = Q30_ONE;
        let mut x = 0i64;
        while x > EXP_CUTOFF_Q16 - 10 {
            let got = exp_neg_q16_to_q30(x);
            let want = (x as f64 / 65536.0).exp() * Q30_ONE as f64;
            assert!((got as f64 - want).abs() <= 4.0 + want * 2e-9, "x={x} got={got} want={want}");
            assert!(got <= prev, "not monotone at {x}");
            prev = got;
            x -= 977; // odd stride hits many table slots
        }
    }

    #[test]
    fn log2_is_accurate() {
        for v in (1u64..5000).chain((0..40).map(|s| (1u64 << s) + 12345)).chain([u32::MAX as u64]) {
            let got = log2_q30(v) as f64 / Q30_ONE as f64;
            let want = (v as f64).log2();
            assert!((got - want).abs() < 1e-8, "v={v} got={got} want={want}");
        }
        assert_eq!(log2_q30(1), 0);
        assert_eq!(log2_q30(1 << 20), 20 << 30);
    }

    #[test]
    fn rounding_ties_to_even() {
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(-5, 2), -2);
        assert_eq!(div_round_half_even(-7, 2), -4);
        assert_eq!(div_round_half_even(-8, 3), -3);
        assert_eq!(div_round_half_even(8, 3), 3);
        for (n, d) in [(5i64, 2i64), (-7, 2), (-8, 3), (1 << 47, 3), (-(1 << 47) - 1, 65536)] {
            assert_eq!(div_round_half_even_i64(n, d) as i128, div_round_half_even(n as i128, d as i128));
        }
    }
}
