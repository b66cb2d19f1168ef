//! Fixed-point pieces of the integer forward pass (`spec/inference.md`): scales, activation
//! quantization, RMSNorm, SiLU, RoPE angles. Integer arithmetic only, with the rounding named
//! at each step, so every machine, thread count and CPU path computes the same bits.

pub(crate) use aivm_tensor::fixed::Q30_ONE;
use aivm_tensor::fixed::{exp2_frac_q30, exp_neg_q16_to_q30, log2_q30};

/// A positive scale `m · 2^e` with a 15-bit mantissa (`m` in [2^14, 2^15)), or zero (`m = 0`).
/// `repr(C)`: the AVX-512 kernels load eight scales as eight 64-bit lanes, `m` in the low
/// half and `e` in the high half (`kernels::swiglu_row_fused_avx512`,
/// `dequant_row_fused_avx512`); the assertion below pins that layout for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct Scale {
    pub m: i32,
    pub e: i32,
}

const _: () = assert!(std::mem::size_of::<Scale>() == 8 && std::mem::align_of::<Scale>() == 4);

const M_LO: u128 = 1 << 14;
const M_HI: u128 = 1 << 15;

impl Scale {
    pub const ZERO: Scale = Scale { m: 0, e: 0 };

    /// `m · 2^e` as f64: exact (a 15-bit mantissa), for conversion and calibration, which
    /// work in f64; never on a consensus path.
    pub fn value(self) -> f64 {
        self.m as f64 * 2f64.powi(self.e)
    }

    /// `num / den` as a scale, rounded down: the `m` in [2^14, 2^15) and `e` with
    /// `m = floor(num · 2^-e / den)`. Zero if `num` is zero.
    pub fn ratio(num: u128, den: u128) -> Scale {
        if num == 0 || den == 0 {
            return Scale::ZERO;
        }
        let (nb, db) = (128 - num.leading_zeros() as i32, 128 - den.leading_zeros() as i32);
        // Start one step low of the answer and walk up: at most two steps.
        let mut k = 14 - (nb - db) - 1;
        loop {
            let q = shifted_div(num, den, k);
            if q >= M_HI {
                k -= 1;
            } else if q < M_LO {
                k += 1;
            } else {
                return Scale { m: q as i32, e: -k };
            }
        }
    }

    /// `self · other`, the mantissa product rounded half up to 15 bits.
    pub fn times(self, other: Scale) -> Scale {
        if self.m == 0 || other.m == 0 {
            return Scale::ZERO;
        }
        let p = self.m as i64 * other.m as i64; // in [2^28, 2^30)
        let sh = if p >= 1 << 29 { 15 } else { 14 };
        let mut m = (p + (1 << (sh - 1))) >> sh;
        let mut e = self.e + other.e + sh;
        if m >= 1 << 15 {
            m >>= 1;
            e += 1;
        }
        Scale { m: m as i32, e }
    }
}

/// `floor(num · 2^k / den)` for any sign of k, saturating at 2^16 (enough to say "too big").
fn shifted_div(num: u128, den: u128, k: i32) -> u128 {
    if k >= 0 {
        if num.leading_zeros() as i32 <= k {
            return 1 << 16;
        }
        (num << k) / den
    } else if -k >= 128 {
        0
    } else {
        (num >> -k) / den
    }
}

/// `v · 2^-sh`, rounded half up (`sh > 0`), or shifted left saturating (`sh ≤ 0`), as i32.
#[inline]
pub fn round_shift(v: i64, sh: i32) -> i32 {
    let r = if sh > 0 {
        if sh >= 63 {
            0
        } else {
            (v + (1i64 << (sh - 1))) >> sh
        }
    } else {
        let s = (-sh).min(62);
        v.saturating_mul(1i64 << s)
    };
    r.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Q16 value of `acc · sx · sw`: `round_shift(acc · m_x · m_w, −(e_x + e_w + 16))`.
#[inline]
pub fn dequant(acc: i32, sx: Scale, sw: Scale) -> i32 {
    round_shift(acc as i64 * (sx.m as i64 * sw.m as i64), -(sx.e + sw.e + 16))
}

/// Quantize a Q16 vector to int8 with one scale: `a = max|v|`; `r = floor(127·2^32 / a)`;
/// `q_i = clamp((v_i·r + 2^31) >> 32, −127, 127)`; the scale is `a / (127·2^16)` as a
/// [`Scale::ratio`]. An all-zero vector gives zeros and [`Scale::ZERO`].
/// (`#[inline]`: the kernels' AVX-512 instantiation inlines and vectorizes it.)
#[inline]
pub fn quantize(v: &[i32], out: &mut [i8]) -> Scale {
    let a = v.iter().map(|&x| (x as i64).abs()).max().unwrap_or(0);
    if a == 0 {
        out.iter_mut().for_each(|q| *q = 0);
        return Scale::ZERO;
    }
    let r = (127i64 << 32) / a;
    for (q, &x) in out.iter_mut().zip(v) {
        *q = ((x as i64 * r + (1 << 31)) >> 32).clamp(-127, 127) as i8;
    }
    Scale::ratio(a as u128, 127 << 16)
}

/// RMSNorm with gain, Q16 in and out: `ms = floor(Σx² / n)` (Q32, exact), `r = isqrt(ms + eps)`
/// (Q16), `inv = floor(2^62 / r)`, `y_i = sat32((x_i·g_i·inv + 2^61) >> 62)` (exact in i128).
/// A zero denominator (all-zero row, eps = 0) gives zeros.
pub fn rms_norm(x: &[i32], gain: &[i32], eps_q32: u64, out: &mut [i32]) {
    let n = x.len().max(1) as u128;
    let ss: u128 = x.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
    let r = isqrt(ss / n + eps_q32 as u128);
    if r == 0 {
        out.iter_mut().for_each(|y| *y = 0);
        return;
    }
    let inv = ((1u128 << 62) / r) as i128;
    for ((y, &v), &g) in out.iter_mut().zip(x).zip(gain) {
        let t = v as i128 * g as i128 * inv; // |t| ≤ 2^62 · 2^62
        *y = ((t + (1 << 61)) >> 62).clamp(i32::MIN as i128, i32::MAX as i128) as i32;
    }
}

/// Floor square root of a u128.
pub fn isqrt(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    let mut x = 1u128 << (128 - v.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + v / x) >> 1;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// The sigmoid table: `SIGMOID[i]` = σ at `x = (i − 2048) / 128` in Q30, exact by
/// `2^60 / (2^30 + e^-x)` (x ≥ 0) or `e^x·2^30 / (2^30 + e^x)` (x < 0), floor division,
/// with `e^·` from `exp_neg_q16_to_q30`.
pub(crate) fn sigmoid_table() -> &'static [i64; 4097] {
    static T: std::sync::OnceLock<Box<[i64; 4097]>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = Box::new([0i64; 4097]);
        for (i, v) in t.iter_mut().enumerate() {
            let x = (i as i64 - 2048) << 9; // Q16
            *v = if x >= 0 {
                let e = exp_neg_q16_to_q30(-x);
                (1i64 << 60) / (Q30_ONE + e)
            } else {
                let e = exp_neg_q16_to_q30(x);
                (e << 30) / (Q30_ONE + e)
            };
        }
        t
    })
}

/// SiLU on Q16: `σ(x)` by linear interpolation in [`sigmoid_table`] over [−16, 16)
/// (`i = (x + 16·2^16) >> 9`, `f = x & 511`, `σ = T[i] + (((T[i+1] − T[i])·f) >> 9)`),
/// 0 below and 2^30 at or above; `silu = round_shift(x·σ, 30)`.
#[inline]
pub fn silu_q16(x: i32) -> i32 {
    let t = sigmoid_table();
    let xi = x as i64;
    let s = if xi < -(16 << 16) {
        0
    } else if xi >= 16 << 16 {
        Q30_ONE
    } else {
        let u = xi + (16 << 16);
        let (i, f) = ((u >> 9) as usize, u & 511);
        t[i] + (((t[i + 1] - t[i]) * f) >> 9)
    };
    round_shift(xi * s, 30)
}

/// `2^64 / (2π)`, rounded to nearest: turns-per-radian in Q64.
const INV_2PI_Q64: u128 = 2_935_890_503_282_001_226;
/// `2π` in Q30, rounded to nearest.
const TWO_PI_Q30: i64 = 6_746_518_852;

/// RoPE frequencies as fractions of a turn per position (Q64): for pair `i` of `half`,
/// `t = floor(2i · log2_q30(theta) / (2·half))` (Q30), `inv_freq = 2^-t` in Q60 via `exp2_frac`,
/// `turns = floor(inv_freq · INV_2PI_Q64 / 2^60)`.
pub fn rope_turns(theta: u64, half: usize) -> Vec<u64> {
    let l = log2_q30(theta.max(1)) as i128;
    (0..half)
        .map(|i| {
            let t = (2 * i as i128 * l) / (2 * half as i128);
            let k = (t + Q30_ONE as i128 - 1) >> 30; // ceil(t / 2^30)
            let f = (k << 30) - t; // in [0, 2^30): 2^-t = 2^(f/2^30) · 2^-k
            let v = (exp2_frac_q30(f as i64) as u128) << 30; // Q60 · 2^k
            let inv_freq = if k >= 128 { 0 } else { v >> k };
            ((inv_freq * INV_2PI_Q64) >> 60) as u64
        })
        .collect()
}

/// `(cos, sin)` in Q30 of the angle `phase` (Q64 turns). Quadrant from the top two bits;
/// the rest `x` to radians `floor(x · 2π / 2^64)` in Q30 (< π/2); Taylor series to x^12 / x^11
/// by Horner with floor shifts.
pub fn cos_sin_q30(phase: u64) -> (i32, i32) {
    let quad = phase >> 62;
    let x = phase & ((1 << 62) - 1); // fraction of a quarter turn, Q62 of a full turn
    let r = ((x as u128 * TWO_PI_Q30 as u128) >> 64) as i64; // radians Q30
    let r2 = (r * r) >> 30;
    // sin r = r(1 − r²/6(1 − r²/20(1 − r²/42(1 − r²/72(1 − r²/110)))))
    let mut s = Q30_ONE;
    for d in [110, 72, 42, 20, 6] {
        s = Q30_ONE - ((r2 * s) >> 30) / d;
    }
    let sin = (r * s) >> 30;
    // cos r = 1 − r²/2(1 − r²/12(1 − r²/30(1 − r²/56(1 − r²/90(1 − r²/132)))))
    let mut c = Q30_ONE;
    for d in [132, 90, 56, 30, 12, 2] {
        c = Q30_ONE - ((r2 * c) >> 30) / d;
    }
    let (c, s) = match quad {
        0 => (c, sin),
        1 => (-sin, c),
        2 => (-c, -sin),
        _ => (sin, -c),
    };
    (c.clamp(-Q30_ONE, Q30_ONE) as i32, s.clamp(-Q30_ONE, Q30_ONE) as i32)
}

/// Rotate `(a, b)` by `(c, s)` (Q30): `(round_shift(a·c − b·s, 30), round_shift(a·s + b·c, 30))`.
#[inline]
pub fn rotate(a: i32, b: i32, c: i32, s: i32) -> (i32, i32) {
    let (a, b, c, s) = (a as i64, b as i64, c as i64, s as i64);
    (round_shift(a * c - b * s, 30), round_shift(a * s + b * c, 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: Scale) -> f64 {
        s.value()
    }

    #[test]
    fn ratio_and_mul_are_close_and_normalized() {
        for (n, d) in [(1u128, 3u128), (5 << 40, 7), (123_456_789, 127 << 16), (1, 1 << 100)] {
            let s = Scale::ratio(n, d);
            assert!((1 << 14..1 << 15).contains(&s.m), "{s:?}");
            let want = n as f64 / d as f64;
            assert!(val(s) <= want && (want - val(s)) / want < 1.0 / 16384.0, "{n}/{d}: {s:?}");
        }
        let p = Scale::ratio(3, 7).times(Scale::ratio(11, 5));
        assert!((1 << 14..1 << 15).contains(&p.m));
        assert!((val(p) - 33.0 / 35.0).abs() < 2e-4);
        assert_eq!(Scale::ratio(0, 5), Scale::ZERO);
    }

    #[test]
    fn quantize_roundtrip() {
        let v = [65536, -131072, 3 << 16, 0, 12345];
        let mut q = [0i8; 5];
        let s = quantize(&v, &mut q);
        assert_eq!(q[2], 127);
        assert_eq!(q[3], 0);
        for (&x, &qi) in v.iter().zip(&q) {
            let back = dequant(qi as i32, s, Scale { m: 1 << 14, e: -14 });
            assert!((back - x).abs() <= (3 << 16) / 127, "{x} -> {qi} -> {back}");
        }
        assert_eq!(quantize(&[0, 0], &mut [1, 1]), Scale::ZERO);
    }

    #[test]
    fn rms_norm_matches_float() {
        let x = [65536, -131072, 196608, 32768];
        let g = [65536, 65536, 131072, 32768];
        let mut y = [0; 4];
        rms_norm(&x, &g, 0, &mut y);
        let xf: Vec<f64> = x.iter().map(|&v| v as f64 / 65536.0).collect();
        let rms = (xf.iter().map(|v| v * v).sum::<f64>() / 4.0).sqrt();
        for i in 0..4 {
            let want = xf[i] / rms * g[i] as f64 / 65536.0;
            assert!((y[i] as f64 / 65536.0 - want).abs() < 1e-4, "{i}: {} vs {want}", y[i]);
        }
        rms_norm(&[0, 0], &[1, 1], 0, &mut y[..2]);
        assert_eq!(&y[..2], &[0, 0]);
        assert_eq!(isqrt(u128::MAX), u64::MAX as u128);
        assert_eq!(isqrt(15), 3);
        assert_eq!(isqrt(16), 4);
    }

    #[test]
    fn silu_matches_float() {
        for x in (-40i32..40).map(|i| i * 37_117) {
            let xf = x as f64 / 65536.0;
            let want = xf / (1.0 + (-xf).exp());
            let got = silu_q16(x) as f64 / 65536.0;
            assert!((got - want).abs() < 2e-4 * (1.0 + xf.abs()), "x={xf}: {got} vs {want}");
        }
        assert_eq!(silu_q16(0), 0);
        assert_eq!(silu_q16(i32::MAX), i32::MAX);
        assert_eq!(silu_q16(i32::MIN), 0);
    }

    #[test]
    fn rope_angles_match_float() {
        let turns = rope_turns(100_000, 32);
        for pos in [0u64, 1, 7, 100, 8191] {
            for (i, &t) in turns.iter().enumerate() {
                let (c, s) = cos_sin_q30(pos.wrapping_mul(t));
                let ang = pos as f64 * 100_000f64.powf(-(2.0 * i as f64) / 64.0);
                let (cw, sw) = (ang.cos(), ang.sin());
                let tol = 2e-6 + pos as f64 * 2e-9;
                assert!((c as f64 / 2f64.powi(30) - cw).abs() < tol, "pos {pos} i {i}: cos {c} vs {cw}");
                assert!((s as f64 / 2f64.powi(30) - sw).abs() < tol, "pos {pos} i {i}: sin {s} vs {sw}");
            }
        }
    }
}
