//! The elementwise and attention-row kernels of the forward pass, compiled twice: for the
//! baseline x86-64 target and, where the CPU has it, for AVX-512 (F, BW, DQ, VL), chosen
//! once per process.
//!
//! Each kernel is one generic body (`#[inline(always)]`) written so the compiler can
//! vectorize it (no data-dependent branches in the inner loops; table lookups on clamped
//! indices), instantiated inside a `#[target_feature]` function for the wide path. The two
//! paths are the same source over integers, so they compute the same bits by construction;
//! the property tests below check it on ragged shapes anyway, against the plain scalar
//! definitions in `layer.rs` and `quant.rs` (which the receipt audit keeps using).
//!
//! We own this dispatch rather than use the `multiversion` crate because the tests must call
//! each path by name, which a hidden dispatcher does not allow.

use super::quant::{self, Scale};

/// Which instantiation of the kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The baseline target (SSE2 on x86-64; whatever the target is elsewhere).
    Baseline,
    /// AVX-512 F + BW + DQ + VL.
    Avx512,
}

impl Isa {
    /// The widest instantiation this CPU runs (detected once).
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                    return Isa::Avx512;
                }
            }
            Isa::Baseline
        })
    }

    /// Every instantiation this CPU runs (for the agreement tests).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Baseline];
        if Isa::detect() == Isa::Avx512 {
            v.push(Isa::Avx512);
        }
        v
    }
}

/// Defines `pub fn $name(isa, args..)` dispatching to the generic body `$body`, compiled for
/// the baseline and (on x86-64) for AVX-512.
macro_rules! kernel {
    ($(#[$doc:meta])* $name:ident => $body:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if isa == Isa::Avx512 && Isa::detect() == Isa::Avx512 {
                    // SAFETY: the CPU has every feature `wide` was compiled for (checked above).
                    return unsafe { wide($($arg),*) };
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}

/// `round_shift(v, sh)` for `0 < sh < 63` and `|v| < 2^62`: `(v + 2^(sh−1)) >> sh`, clamped
/// to i32. Equal to [`quant::round_shift`] there; callers check the range.
#[inline(always)]
fn shift_down(v: i64, sh: u32) -> i32 {
    ((v + (1i64 << (sh - 1))) >> sh).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The per-column multipliers and shifts of `dequant(·, sx, sw[j])` for one row, if every
/// shift is in `1..=62` (the case [`shift_down`] covers); `None` sends the row to the scalar
/// definition.
#[inline(always)]
fn column_factors(sx: Scale, sw: &[Scale], mul: &mut [i64], sh: &mut [u32]) -> bool {
    let mut ok = true;
    for ((m, s), w) in mul.iter_mut().zip(sh.iter_mut()).zip(sw) {
        let shift = -(sx.e + w.e + 16);
        ok &= (1..=62).contains(&shift);
        *m = sx.m as i64 * w.m as i64;
        *s = shift.clamp(1, 62) as u32;
    }
    ok
}

/// SiLU as [`quant::silu_q16`], branch-free: the table index is clamped into range and the
/// out-of-range results selected afterwards.
#[inline(always)]
fn silu(x: i32, t: &[i64; 4097]) -> i32 {
    let xi = x as i64;
    let u = (xi + (16 << 16)).clamp(0, (32 << 16) - 1);
    // `u >> 9` is at most 4095 after the clamp; the mask says so to the compiler (no bounds
    // check, so the loop vectorizes with gathers).
    let (i, f) = (((u >> 9) as usize) & 4095, u & 511);
    let (lo, hi) = (t[i], t[i + 1]);
    let mid = lo + (((hi - lo) * f) >> 9);
    let s = if xi < -(16 << 16) {
        0
    } else if xi >= 16 << 16 {
        quant::Q30_ONE
    } else {
        mid
    };
    shift_down(xi * s, 30)
}

/// Max |v| of a Q16 row and the row quantized with it, as [`quant::quantize`].
#[inline(always)]
fn quantize_body(v: &[i32], out: &mut [i8]) -> Scale {
    let a = v.iter().fold(0i64, |m, &x| m.max((x as i64).abs()));
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

#[inline(always)]
fn swiglu_body(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]) {
    let f = sg.len();
    let t = quant::sigmoid_table();
    let mut h = vec![0i32; f];
    let (mut mg, mut shg, mut mu, mut shu) = (vec![0i64; f], vec![0u32; f], vec![0i64; f], vec![0u32; f]);
    for (r, s) in sh.iter_mut().enumerate() {
        let (g_row, u_row) = (&yg[r * f..(r + 1) * f], &yu[r * f..(r + 1) * f]);
        if column_factors(sx[r], sg, &mut mg, &mut shg) & column_factors(sx[r], su, &mut mu, &mut shu) {
            let gate = g_row.iter().zip(mg.iter().zip(&shg));
            let up = u_row.iter().zip(mu.iter().zip(&shu));
            for (hj, ((&gy, (&gm, &gs)), (&uy, (&um, &us)))) in h.iter_mut().zip(gate.zip(up)) {
                let g = silu(shift_down(gy as i64 * gm, gs), t);
                let u = shift_down(uy as i64 * um, us);
                *hj = shift_down(g as i64 * u as i64, 16);
            }
        } else {
            for j in 0..f {
                let g = quant::silu_q16(quant::dequant(g_row[j], sx[r], sg[j]));
                let u = quant::dequant(u_row[j], sx[r], su[j]);
                h[j] = quant::round_shift(g as i64 * u as i64, 16);
            }
        }
        *s = quantize_body(&h, &mut hq[r * f..(r + 1) * f]);
    }
}

#[inline(always)]
fn dequant_add_body(x: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool) {
    let n = sw.len();
    let (mut mul, mut sh) = (vec![0i64; n], vec![0u32; n]);
    for (r, (xrow, yrow)) in x.chunks_exact_mut(n).zip(y.chunks_exact(n)).enumerate() {
        if column_factors(sx[r], sw, &mut mul, &mut sh) {
            let terms = yrow.iter().zip(mul.iter().zip(&sh)).map(|(&a, (&m, &s))| shift_down(a as i64 * m, s));
            match (add, bias) {
                (true, _) => xrow.iter_mut().zip(terms).for_each(|(o, v)| *o = o.saturating_add(v)),
                (false, Some(b)) => xrow.iter_mut().zip(terms).zip(b).for_each(|((o, v), &b)| *o = b.saturating_add(v)),
                (false, None) => xrow.iter_mut().zip(terms).for_each(|(o, v)| *o = v),
            }
        } else {
            for j in 0..n {
                let v = quant::dequant(yrow[j], sx[r], sw[j]);
                let b = if add { xrow[j] } else { bias.map_or(0, |b| b[j]) };
                xrow[j] = b.saturating_add(v);
            }
        }
    }
}

#[inline(always)]
fn scores_body(q: &[i8], k: &[i8], hd: usize, row: &mut [i32]) {
    for (p, s) in row.iter_mut().enumerate() {
        let kr = &k[p * hd..(p + 1) * hd];
        *s = q.iter().zip(kr).fold(0i32, |a, (&x, &y)| a + x as i32 * y as i32);
    }
}

#[inline(always)]
fn mix_body(p: &[i8], v: &[i8], hd: usize, acc: &mut [i32]) {
    for (pos, &w) in p.iter().enumerate() {
        if w != 0 {
            for (a, &vv) in acc.iter_mut().zip(&v[pos * hd..(pos + 1) * hd]) {
                *a += w as i32 * vv as i32;
            }
        }
    }
}

kernel! {
    /// [`crate::layer::swiglu_quantize`]: `h = silu(gate) · up`, quantized per row.
    swiglu_quantize => swiglu_body(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale])
}

kernel! {
    /// [`quant::quantize`] of one row.
    quantize => quantize_body(v: &[i32], out: &mut [i8]) -> Scale
}

kernel! {
    /// [`crate::layer::dequant_rows`] into `out` (zeros in, `m·n` long), or with `add`
    /// [`crate::layer::add_dequant`] into `out` (the residual).
    dequant_into => dequant_add_body(out: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool)
}

kernel! {
    /// One row of attention scores: `row[p] = q · k[p]` over `hd`.
    scores_row => scores_body(q: &[i8], k: &[i8], hd: usize, row: &mut [i32])
}

kernel! {
    /// One row of the attention mix: `acc += Σ_p p[p] · v[p]` over `hd`-wide rows of `v`.
    mix_row => mix_body(p: &[i8], v: &[i8], hd: usize, acc: &mut [i32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer;
    use proptest::prelude::*;

    fn scales(max_e: i32) -> impl Strategy<Value = Scale> {
        prop_oneof![Just(Scale::ZERO), ((1 << 14)..(1 << 15), -60..max_e).prop_map(|(m, e)| Scale { m, e })]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every instantiation equals the scalar definitions, including rows whose shifts
        /// leave the fast range (exponents up to +8 make some shifts ≤ 0).
        #[test]
        fn paths_equal_the_definitions(
            m in 1usize..4,
            f in 1usize..70,
            seed in any::<u64>(),
            sx in proptest::collection::vec(scales(8), 4),
            sg in proptest::collection::vec(scales(-10), 70),
            su in proptest::collection::vec(scales(8), 70),
            big in any::<bool>(),
        ) {
            let mut s = seed | 1;
            let mut next = |range: i64| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % (2 * range as u64 + 1)) as i64 - range };
            let range = if big { i32::MAX as i64 } else { 1 << 16 };
            let yg: Vec<i32> = (0..m * f).map(|_| next(range) as i32).collect();
            let yu: Vec<i32> = (0..m * f).map(|_| next(range) as i32).collect();
            let (sx, sg, su) = (&sx[..m], &sg[..f], &su[..f]);

            let (mut want_q, mut want_s) = (vec![0i8; m * f], vec![Scale::ZERO; m]);
            layer::swiglu_quantize(&yg, &yu, sx, sg, su, &mut want_q, &mut want_s);
            let want_deq = layer::dequant_rows(&yg, sx, su, Some(&yu[..f]));
            let mut want_add = yu.clone();
            layer::add_dequant(&mut want_add, &yg, sx, su);
            let want_qz = quant::quantize(&yg[..f], &mut vec![0i8; f]);
            let q8: Vec<i8> = yg.iter().map(|&v| v as i8).collect();
            let k8: Vec<i8> = yu.iter().map(|&v| (v >> 3) as i8).collect();
            let want_scores: Vec<i32> = (0..m).map(|p| aivm_tensor::gemm::dot_i8(&q8[..f], &k8[p * f..(p + 1) * f])).collect();

            for isa in Isa::available() {
                let (mut q, mut sc) = (vec![0i8; m * f], vec![Scale::ZERO; m]);
                swiglu_quantize(isa, &yg, &yu, sx, sg, su, &mut q, &mut sc);
                prop_assert_eq!(&q, &want_q, "{:?}", isa);
                prop_assert_eq!(&sc, &want_s);
                let mut deq = vec![0i32; m * f];
                dequant_into(isa, &mut deq, &yg, sx, su, Some(&yu[..f]), false);
                prop_assert_eq!(&deq, &want_deq);
                let mut add = yu.clone();
                dequant_into(isa, &mut add, &yg, sx, su, None, true);
                prop_assert_eq!(&add, &want_add);
                let mut out = vec![0i8; f];
                prop_assert_eq!(quantize(isa, &yg[..f], &mut out), want_qz);
                let mut scores = vec![0i32; m];
                scores_row(isa, &q8[..f], &k8, f, &mut scores);
                prop_assert_eq!(&scores, &want_scores);
                let mut acc = vec![1i32; f];
                mix_row(isa, &q8[..m], &k8, f, &mut acc);
                let want_acc: Vec<i32> = (0..f).map(|j| 1 + (0..m).map(|p| q8[p] as i32 * k8[p * f + j] as i32).sum::<i32>()).collect();
                prop_assert_eq!(&acc, &want_acc);
            }
        }

        /// SiLU's branch-free form equals the definition on every input class.
        #[test]
        fn silu_equals_the_definition(x in any::<i32>(), near in -(17i32 << 16)..(17 << 16)) {
            let t = quant::sigmoid_table();
            prop_assert_eq!(silu(x, t), quant::silu_q16(x));
            prop_assert_eq!(silu(near, t), quant::silu_q16(near));
        }
    }
}
