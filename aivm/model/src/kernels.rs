//! The elementwise and attention-row kernels of the forward pass, compiled three times: for
//! the baseline x86-64 target, for AVX2, and for AVX-512 (F, BW, DQ, VL); the widest the CPU
//! has is chosen once per process.
//!
//! Each kernel is one generic body (`#[inline(always)]`) written so the compiler can
//! vectorize it (no data-dependent branches in the inner loops; table lookups on clamped
//! indices), instantiated inside a `#[target_feature]` function for each wide path. The
//! paths are the same source over integers, so they compute the same bits by construction;
//! the property tests below check it on ragged shapes anyway, against the plain scalar
//! definitions in `layer.rs` and `quant.rs` (which the receipt audit keeps using).
//!
//! We own this dispatch rather than use the `multiversion` crate because the tests must call
//! each path by name, which a hidden dispatcher does not allow.

use super::quant::{self, quantize as quantize_definition, Scale};

/// Which instantiation of the kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The baseline target (SSE2 on x86-64; whatever the target is elsewhere).
    Baseline,
    /// AVX2 (x86-64 CPUs without AVX-512: AMD before Zen 4, most Intel client parts).
    Avx2,
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
                if has!("avx2") {
                    return Isa::Avx2;
                }
            }
            Isa::Baseline
        })
    }

    /// Whether this CPU has AVX-512 VNNI (`vpdpbusd`), which the attention row kernels use
    /// beside the [`Isa::Avx512`] instantiation.
    pub fn has_vnni() -> bool {
        Isa::detect() == Isa::Avx512 && aivm_tensor::cpu::features().avx512_vnni
    }

    /// Whether this CPU runs the AVX2 instantiation (every AVX-512 CPU does too).
    pub fn has_avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every instantiation this CPU runs (for the agreement tests).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Baseline];
        if Isa::has_avx2() {
            v.push(Isa::Avx2);
        }
        if Isa::detect() == Isa::Avx512 {
            v.push(Isa::Avx512);
        }
        v
    }

    /// The int8 GEMM path that goes with these kernels: the scalar GEMM beside the baseline
    /// kernels, AVX2's beside AVX2's, the fastest the CPU has beside AVX-512's.
    pub fn gemm_path(self) -> aivm_tensor::matmul::SimdPath {
        use aivm_tensor::matmul::SimdPath;
        match self {
            Isa::Baseline => SimdPath::Scalar,
            Isa::Avx2 if SimdPath::available().contains(&SimdPath::Avx2) => SimdPath::Avx2,
            Isa::Avx2 => SimdPath::Scalar,
            Isa::Avx512 => SimdPath::detect(),
        }
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
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if isa == Isa::Avx512 && Isa::detect() == Isa::Avx512 {
                    // SAFETY: the CPU has every feature `wide` was compiled for (checked above).
                    return unsafe { wide($($arg),*) };
                }
                if isa == Isa::Avx2 && Isa::has_avx2() {
                    // SAFETY: the CPU has AVX2 (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}

kernel!(
    /// [`crate::layer::argmax`] when the output scales' exponents span at most 16 and every
    /// mantissa is in `0..=2¹⁵` (else `None`): the first index of the greatest
    /// `acc[j]·m_j·2^(e_j − lo)`, `lo` the least exponent, exact in i64 (|product| < 2⁶²).
    /// The scales are scanned without early exits and values formed a chunk at a time, the
    /// chunk's maximum taken before its position is searched, so the loops vectorize; ties
    /// go to the lowest index, as in the definition.
    argmax_narrow => argmax_narrow_body(acc: &[i32], scales: &[Scale]) -> Option<u32>
);

#[inline(always)]
fn argmax_narrow_body(acc: &[i32], scales: &[Scale]) -> Option<u32> {
    let (lo, hi, ok) = scales.iter().fold((i32::MAX, i32::MIN, true), |(lo, hi, ok), s| (lo.min(s.e), hi.max(s.e), ok & (0..=1 << 15).contains(&s.m)));
    if !ok || hi as i64 - lo as i64 > 16 {
        return None;
    }
    const CHUNK: usize = 512;
    let mut buf = [0i64; CHUNK];
    let (mut best, mut best_v) = (0usize, i64::MIN);
    for (c, (a, s)) in acc.chunks(CHUNK).zip(scales.chunks(CHUNK)).enumerate() {
        let vals = &mut buf[..a.len().min(s.len())];
        for ((v, &a), s) in vals.iter_mut().zip(a).zip(s) {
            *v = (a as i64 * s.m as i64) << ((s.e - lo) as u32 & 63);
        }
        let m = vals.iter().fold(i64::MIN, |m, &v| m.max(v));
        if m > best_v {
            best_v = m;
            best = c * CHUNK + vals.iter().position(|&v| v == m).unwrap_or(0);
        }
    }
    Some(best as u32)
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

/// One row's `h_j = silu(dequant(g_j)) · dequant(u_j)` on the fast path (every shift in
/// `1..=62`), portable form.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn swiglu_row(g: &[i32], u: &[i32], gm: &[i64], gs: &[u32], um: &[i64], us: &[u32], t: &[i64; 4097], h: &mut [i32]) {
    let gate = g.iter().zip(gm.iter().zip(gs));
    let up = u.iter().zip(um.iter().zip(us));
    for (hj, ((&gy, (&gm, &gs)), (&uy, (&um, &us)))) in h.iter_mut().zip(gate.zip(up)) {
        let g = silu(shift_down(gy as i64 * gm, gs), t);
        let u = shift_down(uy as i64 * um, us);
        *hj = shift_down(g as i64 * u as i64, 16);
    }
}

/// [`swiglu_row`] eight columns at a time with AVX-512 (64-bit lanes: the products need
/// them), each column's multiplier and shift made in the lanes from the scales (`m = sx.m ·
/// w.m` by `vpmuldq`, shift `−(sx.e + 16) − w.e`) rather than read from arrays made per row
/// (a decode step's or a row chain's one-row SwiGLU spent as long making them as using
/// them); the tail columns by [`swiglu_row`]. The caller has checked every shift is in
/// `1..=62` ([`shifts_fit`]). The same integer operations in the same order, so the same bits.
///
/// The table is read by one gather per eight columns from [`sigmoid_pairs`] (each entry
/// `T[i]` and `T[i+1] − T[i]` in one word; two gathers before), and the three products
/// whose factors always fit i32 are 32×32→64-bit multiplies (`vpmuldq`): the interpolation
/// (`ΔT < 2^30`, `f < 512`), `x·σ` and `gate·up` (both clamped to i32, `σ ≤ 2^30`). The
/// dequantization's `y·m` stays a 64-bit multiply: a SKU's scales may make `m` wider, and
/// checking each row for that cost more than the narrower multiply saved (measured:
/// SwiGLU's samples against the GEMM kernel's in a 512-token prompt, 0.254 before, 0.213
/// after, 0.207 with the check).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn swiglu_row_fused_avx512(g: &[i32], u: &[i32], sx: Scale, sg: &[Scale], su: &[Scale], h: &mut [i32]) {
    use std::arch::x86_64::*;
    let n = h.len().min(g.len()).min(u.len()).min(sg.len()).min(su.len());
    let body = n / 8 * 8;
    let (zero, one) = (_mm512_set1_epi64(0), _mm512_set1_epi64(1));
    let (lo32, hi32) = (_mm512_set1_epi64(i32::MIN as i64), _mm512_set1_epi64(i32::MAX as i64));
    let clamp32 = |v: __m512i| _mm512_min_epi64(_mm512_max_epi64(v, lo32), hi32);
    // shift_down(v, sh) = clamp((v + 2^(sh−1)) >> sh), sh in 1..=62 per lane.
    let shift_down = |v: __m512i, sh: __m512i| clamp32(_mm512_srav_epi64(_mm512_add_epi64(v, _mm512_sllv_epi64(one, _mm512_sub_epi64(sh, one))), sh));
    // Eight scales as eight lanes (`repr(C)`, little-endian: `m` low, `e` high).
    let (xm, base) = (_mm512_set1_epi64(sx.m as i64), _mm512_set1_epi64(-(sx.e as i64 + 16)));
    let factors = |w: __m512i| (_mm512_mul_epi32(w, xm), _mm512_sub_epi64(base, _mm512_srai_epi64::<32>(w)));
    let (off, top, mask9) = (_mm512_set1_epi64(16 << 16), _mm512_set1_epi64((32 << 16) - 1), _mm512_set1_epi64(511));
    let (neg_off, q30, half30, half16) =
        (_mm512_set1_epi64(-(16 << 16)), _mm512_set1_epi64(quant::Q30_ONE), _mm512_set1_epi64(1 << 29), _mm512_set1_epi64(1 << 15));
    let pairs = sigmoid_pairs().as_ptr();
    let mut j = 0;
    while j < body {
        // SAFETY: j + 8 <= n, within every slice; gather indices are in 0..=4095 (clamped).
        unsafe {
            let load32 = |p: *const i32| _mm512_cvtepi32_epi64(_mm256_loadu_si256(p as *const __m256i));
            let (gm, gs) = factors(_mm512_loadu_si512(sg.as_ptr().add(j) as *const _));
            let x = shift_down(_mm512_mullo_epi64(load32(g.as_ptr().add(j)), gm), gs);
            // SiLU, as `silu`.
            let idx = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(x, off), zero), top);
            let i = _mm512_srli_epi64::<9>(idx);
            let f = _mm512_and_si512(idx, mask9);
            let pair = _mm512_i64gather_epi64::<8>(i, pairs);
            let lo = _mm512_srai_epi64::<32>(_mm512_slli_epi64::<32>(pair));
            let step = _mm512_srai_epi64::<32>(pair);
            let mid = _mm512_add_epi64(lo, _mm512_srai_epi64::<9>(_mm512_mul_epi32(step, f)));
            let s = _mm512_mask_blend_epi64(_mm512_cmpge_epi64_mask(x, off), mid, q30);
            let s = _mm512_mask_blend_epi64(_mm512_cmplt_epi64_mask(x, neg_off), s, zero);
            let gate = clamp32(_mm512_srai_epi64::<30>(_mm512_add_epi64(_mm512_mul_epi32(x, s), half30)));
            let (um, us) = factors(_mm512_loadu_si512(su.as_ptr().add(j) as *const _));
            let up = shift_down(_mm512_mullo_epi64(load32(u.as_ptr().add(j)), um), us);
            let hv = clamp32(_mm512_srai_epi64::<16>(_mm512_add_epi64(_mm512_mul_epi32(gate, up), half16)));
            _mm256_storeu_si256(h.as_mut_ptr().add(j) as *mut __m256i, _mm512_cvtepi64_epi32(hv));
        }
        j += 8;
    }
    let tail = n - body;
    let (mut mg, mut shg, mut mu, mut shu) = ([0i64; 8], [0u32; 8], [0i64; 8], [0u32; 8]);
    column_factors(sx, &sg[body..n], &mut mg[..tail], &mut shg[..tail]);
    column_factors(sx, &su[body..n], &mut mu[..tail], &mut shu[..tail]);
    let t = quant::sigmoid_table();
    swiglu_row(&g[body..n], &u[body..n], &mg[..tail], &shg[..tail], &mu[..tail], &shu[..tail], t, &mut h[body..n]);
}

/// [`quant::sigmoid_table`] as 4 096 words `T[i] | (T[i+1] − T[i]) << 32` (both below 2^31:
/// `0 ≤ T ≤ 2^30`, increasing), so one gather reads an interpolation's two ends.
#[cfg(target_arch = "x86_64")]
fn sigmoid_pairs() -> &'static [i64; 4096] {
    static P: std::sync::OnceLock<Box<[i64; 4096]>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let t = quant::sigmoid_table();
        let mut p = Box::new([0i64; 4096]);
        for (i, v) in p.iter_mut().enumerate() {
            let (lo, step) = (t[i], t[i + 1] - t[i]);
            debug_assert!((0..1 << 31).contains(&lo) && (0..1 << 31).contains(&step));
            *v = (lo & 0xffff_ffff) | (step << 32);
        }
        p
    })
}

/// Per-column multipliers and shifts ([`column_factors`]), kept per thread between rows.
type ColumnFactors = (Vec<i64>, Vec<u32>);

/// One row's `h` on the fast path (every column's shifts in `1..=62`): the gate and up
/// accumulators, the row's activation scale, the weights' column scales, the output.
type SwigluRow = fn(&[i32], &[i32], Scale, &[Scale], &[Scale], &mut [i32]);

/// [`swiglu_row`] with the per-column multipliers and shifts made for the row first
/// ([`column_factors`]): the portable and AVX2 forms.
#[inline(always)]
fn swiglu_row_with_factors(g: &[i32], u: &[i32], sx: Scale, sg: &[Scale], su: &[Scale], h: &mut [i32]) {
    thread_local! {
        static FACTORS: std::cell::RefCell<[ColumnFactors; 2]> = const { std::cell::RefCell::new([(Vec::new(), Vec::new()), (Vec::new(), Vec::new())]) };
    }
    FACTORS.with(|f| {
        let [(mg, shg), (mu, shu)] = &mut *f.borrow_mut();
        for v in [&mut *mg, &mut *mu] {
            v.resize(sg.len(), 0);
        }
        for v in [&mut *shg, &mut *shu] {
            v.resize(sg.len(), 0);
        }
        // Both hold on the rows `swiglu_body` sends here (`shifts_fit`).
        let ok = column_factors(sx, sg, mg, shg) & column_factors(sx, su, mu, shu);
        debug_assert!(ok);
        swiglu_row(g, u, mg, shg, mu, shu, quant::sigmoid_table(), h);
    })
}

/// The least and greatest exponent of `scales` (`(0, 0)` for none).
#[inline(always)]
fn exponent_span(scales: &[Scale]) -> (i64, i64) {
    let (lo, hi) = scales.iter().fold((i32::MAX, i32::MIN), |(lo, hi), s| (lo.min(s.e), hi.max(s.e)));
    if scales.is_empty() {
        (0, 0)
    } else {
        (lo as i64, hi as i64)
    }
}

/// Whether every column's shift `−(sx.e + w.e + 16)` is in `1..=62` (what
/// [`column_factors`] checks column by column), from the weights' exponent span.
#[inline(always)]
fn shifts_fit(sx: Scale, (lo, hi): (i64, i64)) -> bool {
    let base = -(sx.e as i64 + 16);
    base - hi >= 1 && base - lo <= 62
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn swiglu_body(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale], row: SwigluRow) {
    let f = sg.len();
    let mut h = vec![0i32; f];
    let (span_g, span_u) = (exponent_span(sg), exponent_span(su));
    for (r, s) in sh.iter_mut().enumerate() {
        let (g_row, u_row) = (&yg[r * f..(r + 1) * f], &yu[r * f..(r + 1) * f]);
        if shifts_fit(sx[r], span_g) && shifts_fit(sx[r], span_u) {
            row(g_row, u_row, sx[r], sg, su, &mut h);
        } else {
            for j in 0..f {
                let g = quant::silu_q16(quant::dequant(g_row[j], sx[r], sg[j]));
                let u = quant::dequant(u_row[j], sx[r], su[j]);
                h[j] = quant::round_shift(g as i64 * u as i64, 16);
            }
        }
        *s = quant::quantize(&h, &mut hq[r * f..(r + 1) * f]);
    }
}

/// [`crate::layer::swiglu_quantize`]: `h = silu(gate) · up`, quantized per row.
#[allow(clippy::too_many_arguments)]
pub fn swiglu_quantize(isa: Isa, yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn wide(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]) {
            #[allow(clippy::too_many_arguments)]
            fn row(g: &[i32], u: &[i32], sx: Scale, sg: &[Scale], su: &[Scale], h: &mut [i32]) {
                // SAFETY: only reached through `wide`, called when the CPU has AVX-512 F and DQ.
                unsafe { swiglu_row_fused_avx512(g, u, sx, sg, su, h) }
            }
            swiglu_body(yg, yu, sx, sg, su, hq, sh, row)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]) {
            swiglu_body(yg, yu, sx, sg, su, hq, sh, swiglu_row_with_factors)
        }
        if isa == Isa::Avx512 && Isa::detect() == Isa::Avx512 {
            // SAFETY: the CPU has every feature `wide` was compiled for (checked above).
            return unsafe { wide(yg, yu, sx, sg, su, hq, sh) };
        }
        if isa == Isa::Avx2 && Isa::has_avx2() {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2(yg, yu, sx, sg, su, hq, sh) };
        }
    }
    let _ = isa;
    swiglu_body(yg, yu, sx, sg, su, hq, sh, swiglu_row_with_factors)
}

/// One row of [`dequant_into`] on the fast path (every column's shift in `1..=62`): the
/// output row, the accumulators, the row's activation scale, the weights' column scales, the
/// bias and whether to add to the output.
type DequantRow = fn(&mut [i32], &[i32], Scale, &[Scale], Option<&[i32]>, bool);

#[inline(always)]
fn dequant_add_body(x: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool, row: DequantRow) {
    let n = sw.len();
    let span = exponent_span(sw);
    for (r, (xrow, yrow)) in x.chunks_exact_mut(n).zip(y.chunks_exact(n)).enumerate() {
        if shifts_fit(sx[r], span) {
            row(xrow, yrow, sx[r], sw, bias, add);
        } else {
            for j in 0..n {
                let v = quant::dequant(yrow[j], sx[r], sw[j]);
                let b = if add { xrow[j] } else { bias.map_or(0, |b| b[j]) };
                xrow[j] = b.saturating_add(v);
            }
        }
    }
}

/// A [`dequant_into`] row with the per-column multipliers and shifts made first
/// ([`column_factors`]), in loops the compiler vectorizes: the portable and AVX2 forms.
#[inline(always)]
fn dequant_row_with_factors(xrow: &mut [i32], yrow: &[i32], sx: Scale, sw: &[Scale], bias: Option<&[i32]>, add: bool) {
    thread_local! {
        static FACTORS: std::cell::RefCell<ColumnFactors> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    FACTORS.with(|f| {
        let (mul, sh) = &mut *f.borrow_mut();
        mul.resize(sw.len(), 0);
        sh.resize(sw.len(), 0);
        // Holds on the rows `dequant_add_body` sends here (`shifts_fit`).
        let ok = column_factors(sx, sw, mul, sh);
        debug_assert!(ok);
        let terms = yrow.iter().zip(mul.iter().zip(sh.iter())).map(|(&a, (&m, &s))| shift_down(a as i64 * m, s));
        match (add, bias) {
            (true, _) => xrow.iter_mut().zip(terms).for_each(|(o, v)| *o = o.saturating_add(v)),
            (false, Some(b)) => xrow.iter_mut().zip(terms).zip(b).for_each(|((o, v), &b)| *o = b.saturating_add(v)),
            (false, None) => xrow.iter_mut().zip(terms).for_each(|(o, v)| *o = v),
        }
    })
}

/// [`dequant_row_with_factors`] eight columns at a time with AVX-512, each column's
/// multiplier and shift made in the lanes from the scales as in
/// [`swiglu_row_fused_avx512`]; the tail by the portable form. The same integer operations
/// (64-bit products, the same rounding and saturation), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn dequant_row_fused_avx512(xrow: &mut [i32], yrow: &[i32], sx: Scale, sw: &[Scale], bias: Option<&[i32]>, add: bool) {
    use std::arch::x86_64::*;
    let n = xrow.len().min(yrow.len()).min(sw.len()).min(bias.map_or(usize::MAX, |b| b.len()));
    let body = n / 8 * 8;
    let one = _mm512_set1_epi64(1);
    let (lo32, hi32) = (_mm512_set1_epi64(i32::MIN as i64), _mm512_set1_epi64(i32::MAX as i64));
    let clamp32 = |v: __m512i| _mm512_min_epi64(_mm512_max_epi64(v, lo32), hi32);
    let shift_down = |v: __m512i, sh: __m512i| clamp32(_mm512_srav_epi64(_mm512_add_epi64(v, _mm512_sllv_epi64(one, _mm512_sub_epi64(sh, one))), sh));
    let (xm, base) = (_mm512_set1_epi64(sx.m as i64), _mm512_set1_epi64(-(sx.e as i64 + 16)));
    let mut j = 0;
    while j < body {
        // SAFETY: j + 8 <= n, within every slice.
        unsafe {
            let load32 = |p: *const i32| _mm512_cvtepi32_epi64(_mm256_loadu_si256(p as *const __m256i));
            let w = _mm512_loadu_si512(sw.as_ptr().add(j) as *const _);
            let (m, sh) = (_mm512_mul_epi32(w, xm), _mm512_sub_epi64(base, _mm512_srai_epi64::<32>(w)));
            let v = shift_down(_mm512_mullo_epi64(load32(yrow.as_ptr().add(j)), m), sh);
            let out = match (add, bias) {
                (true, _) => clamp32(_mm512_add_epi64(load32(xrow.as_ptr().add(j)), v)),
                (false, Some(b)) => clamp32(_mm512_add_epi64(load32(b.as_ptr().add(j)), v)),
                (false, None) => v,
            };
            _mm256_storeu_si256(xrow.as_mut_ptr().add(j) as *mut __m256i, _mm512_cvtepi64_epi32(out));
        }
        j += 8;
    }
    dequant_row_with_factors(&mut xrow[body..n], &yrow[body..n], sx, &sw[body..n], bias.map(|b| &b[body..n]), add);
}

/// [`crate::layer::dequant_rows`] into `out` (zeros in, `m·n` long), or with `add`
/// [`crate::layer::add_dequant`] into `out` (the residual).
pub fn dequant_into(isa: Isa, out: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn wide(out: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool) {
            fn row(xrow: &mut [i32], yrow: &[i32], sx: Scale, sw: &[Scale], bias: Option<&[i32]>, add: bool) {
                // SAFETY: only reached through `wide`, called when the CPU has AVX-512 F and DQ.
                unsafe { dequant_row_fused_avx512(xrow, yrow, sx, sw, bias, add) }
            }
            dequant_add_body(out, y, sx, sw, bias, add, row)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(out: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool) {
            dequant_add_body(out, y, sx, sw, bias, add, dequant_row_with_factors)
        }
        if isa == Isa::Avx512 && Isa::detect() == Isa::Avx512 {
            // SAFETY: the CPU has every feature `wide` was compiled for (checked above).
            return unsafe { wide(out, y, sx, sw, bias, add) };
        }
        if isa == Isa::Avx2 && Isa::has_avx2() {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2(out, y, sx, sw, bias, add) };
        }
    }
    let _ = isa;
    dequant_add_body(out, y, sx, sw, bias, add, dequant_row_with_factors)
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

/// [`aivm_tensor::fixed::exp_neg_q16_to_q30`] branch-free: the argument clamped into the
/// table's range, the table index masked, the cutoff selected afterwards (so a row's loop
/// vectorizes, the table read by gathers). For `x ≤ 0`.
#[inline(always)]
fn exp_neg(x: i64) -> i64 {
    use aivm_tensor::fixed::{EXP2_TABLE, EXP_CUTOFF_Q16, LN2_Q30, LOG2E_Q30, Q30_ONE};
    let xc = x.clamp(EXP_CUTOFF_Q16 + 1, 0);
    let t = (xc * LOG2E_Q30) >> 16;
    let k = t >> 30; // in [-35, 0] after the clamp
    let f = t - (k << 30);
    let (i, r) = (((f >> 24) as usize) & 63, f & ((1 << 24) - 1));
    let y = (r * LN2_Q30) >> 30;
    let mut p = Q30_ONE / 2 + ((y * 178_956_971) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    p = Q30_ONE + ((y * p) >> 30);
    let v = ((EXP2_TABLE[i] * p) >> 30) >> ((-k) as u64 & 63);
    if x <= EXP_CUTOFF_Q16 {
        0
    } else {
        v
    }
}

/// One attention row's probabilities from its scores: the logits
/// `l_p = round_shift(s_p · m_q·m_k[p], −(e_q + e_k[p] + 16))`, then
/// [`crate::layer::softmax_fold`] with V's scales `vs`, into `p`; `e` is scratch (the row's
/// length). `None` when a logit's shift leaves `1..=62` (the caller then runs the
/// definitions). The same integer steps as the definitions, without their allocations and
/// branches.
#[inline(always)]
fn softmax_body(
    scores: &[i32],
    sq: Scale,
    ks: &[Scale],
    vs: &[Scale],
    e: &mut [i64],
    p: &mut [i8],
    exp_pass: impl Fn(&mut [i64], i64),
) -> Option<(Scale, i32)> {
    let n = scores.len();
    if e.len() != n || ks.len() != n || vs.len() != n || p.len() != n {
        return None;
    }
    let mut ok = true;
    for ((l, &sc), k) in e.iter_mut().zip(scores).zip(ks) {
        let sh = -(sq.e + k.e + 16);
        ok &= (1..=62).contains(&sh);
        *l = shift_down(sc as i64 * (sq.m as i64 * k.m as i64), sh.clamp(1, 62) as u32) as i64;
    }
    if !ok {
        return None;
    }
    let mx = e.iter().copied().max().unwrap_or(0);
    exp_pass(e, mx);
    let s: i64 = e.iter().sum();
    let big_e = vs.iter().filter(|v| v.m != 0).map(|v| v.e).max().unwrap_or(0);
    for (v, w) in e.iter_mut().zip(vs) {
        let sh = big_e - w.e;
        let u = (*v * w.m as i64) >> (sh.clamp(0, 63) as u64);
        *v = if w.m == 0 || sh >= 63 { 0 } else { u };
    }
    let umax = e.iter().copied().max().unwrap_or(0);
    if umax == 0 || s == 0 {
        p.iter_mut().for_each(|x| *x = 0);
        return Some((Scale::ZERO, 0));
    }
    let b = (64 - umax.leading_zeros() as i32 - 31).max(0);
    let umax_b = umax >> b;
    let r = (127i64 << 32) / umax_b;
    for (pj, &uj) in p.iter_mut().zip(e.iter()) {
        *pj = (((uj >> b) * r + (1 << 31)) >> 32).min(127) as i8;
    }
    Some((Scale::ratio(umax_b as u128, 127 * s as u128), b + big_e))
}

/// `v ← exp_neg(max(v − mx, −2^40))` over a row in place (the softmax's exponentials).
#[inline(always)]
fn exp_pass(e: &mut [i64], mx: i64) {
    e.iter_mut().for_each(|v| *v = exp_neg((*v - mx).max(-(1 << 40))));
}

/// [`exp_pass`] eight lanes at a time with AVX-512, the tail by [`exp_pass`]. The same integer
/// steps as [`exp_neg`]: its products are 32×32→64 (`_mm512_mul_epi32`, exact: each factor is
/// below 2^31 in magnitude, as `exp_neg`'s comment shows) and its 64-entry table is read by
/// four two-register permutes and three blends instead of a gather (the gather was the
/// kernel's hot spot: ~10 % of its samples on the one instruction after it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn exp_pass_avx512(e: &mut [i64], mx: i64) {
    use aivm_tensor::fixed::{EXP2_TABLE, EXP_CUTOFF_Q16, LN2_Q30, LOG2E_Q30, Q30_ONE};
    use std::arch::x86_64::*;
    let body = e.len() / 8 * 8;
    let tab: [__m512i; 8] = std::array::from_fn(|j| _mm512_loadu_si512(EXP2_TABLE[8 * j..].as_ptr() as *const _));
    let c = _mm512_set1_epi64;
    let (mxv, floor, cut, lo, zero) = (c(mx), c(-(1 << 40)), c(EXP_CUTOFF_Q16), c(EXP_CUTOFF_Q16 + 1), c(0));
    let (log2e, ln2, third, half, one) = (c(LOG2E_Q30), c(LN2_Q30), c(178_956_971), c(Q30_ONE / 2), c(Q30_ONE));
    let (m24, m63, b16, b32) = (c((1 << 24) - 1), c(63), c(16), c(32));
    for i in (0..body).step_by(8) {
        let at = e.as_mut_ptr().add(i) as *mut __m512i;
        let x = _mm512_max_epi64(_mm512_sub_epi64(_mm512_loadu_si512(at as *const _), mxv), floor);
        let xc = _mm512_min_epi64(_mm512_max_epi64(x, lo), zero);
        let t = _mm512_srai_epi64::<16>(_mm512_mul_epi32(xc, log2e));
        let k = _mm512_srai_epi64::<30>(t);
        let f = _mm512_sub_epi64(t, _mm512_slli_epi64::<30>(k));
        let idx = _mm512_and_si512(_mm512_srli_epi64::<24>(f), m63);
        let r = _mm512_and_si512(f, m24);
        let y = _mm512_srai_epi64::<30>(_mm512_mul_epi32(r, ln2));
        let mut p = _mm512_add_epi64(half, _mm512_srai_epi64::<30>(_mm512_mul_epi32(y, third)));
        p = _mm512_add_epi64(one, _mm512_srai_epi64::<30>(_mm512_mul_epi32(y, p)));
        p = _mm512_add_epi64(one, _mm512_srai_epi64::<30>(_mm512_mul_epi32(y, p)));
        // EXP2_TABLE[idx]: entries idx mod 16 of each 16-entry pair of registers, then bits 4
        // and 5 of idx pick the pair.
        let (m4, m5) = (_mm512_test_epi64_mask(idx, b16), _mm512_test_epi64_mask(idx, b32));
        let q0 = _mm512_permutex2var_epi64(tab[0], idx, tab[1]);
        let q1 = _mm512_permutex2var_epi64(tab[2], idx, tab[3]);
        let q2 = _mm512_permutex2var_epi64(tab[4], idx, tab[5]);
        let q3 = _mm512_permutex2var_epi64(tab[6], idx, tab[7]);
        let tv = _mm512_mask_blend_epi64(m5, _mm512_mask_blend_epi64(m4, q0, q1), _mm512_mask_blend_epi64(m4, q2, q3));
        let v = _mm512_srai_epi64::<30>(_mm512_mul_epi32(tv, p));
        let v = _mm512_srav_epi64(v, _mm512_and_si512(_mm512_sub_epi64(zero, k), m63));
        let below = _mm512_cmple_epi64_mask(x, cut);
        _mm512_storeu_si512(at as *mut _, _mm512_mask_mov_epi64(v, below, zero));
    }
    exp_pass(&mut e[body..], mx);
}

/// One attention row's logits and softmax (see `softmax_body`): the engine's form of
/// [`crate::layer::softmax_fold`] over the scores row.
pub fn softmax_row(isa: Isa, scores: &[i32], sq: Scale, ks: &[Scale], vs: &[Scale], e: &mut [i64], p: &mut [i8]) -> Option<(Scale, i32)> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn wide(scores: &[i32], sq: Scale, ks: &[Scale], vs: &[Scale], e: &mut [i64], p: &mut [i8]) -> Option<(Scale, i32)> {
            // SAFETY: only reached through `wide`, called when the CPU has AVX-512 F and DQ.
            softmax_body(scores, sq, ks, vs, e, p, |e, mx| unsafe { exp_pass_avx512(e, mx) })
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(scores: &[i32], sq: Scale, ks: &[Scale], vs: &[Scale], e: &mut [i64], p: &mut [i8]) -> Option<(Scale, i32)> {
            softmax_body(scores, sq, ks, vs, e, p, exp_pass)
        }
        if isa == Isa::Avx512 && Isa::detect() == Isa::Avx512 {
            // SAFETY: the CPU has every feature `wide` was compiled for (checked above).
            return unsafe { wide(scores, sq, ks, vs, e, p) };
        }
        if isa == Isa::Avx2 && Isa::has_avx2() {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2(scores, sq, ks, vs, e, p) };
        }
    }
    let _ = isa;
    softmax_body(scores, sq, ks, vs, e, p, exp_pass)
}

/// [`quant::rms_norm`] in 64-bit lanes, so it vectorizes; the same values bit for bit.
///
/// The sum of squares: each `v²` (< 2^62) is split at bit 32 and the halves summed in u64
/// (exact for rows under 2^32 elements), then joined in u128. Each output: with
/// `p = v·g` (|p| < 2^62) and `c = inv` (≤ 2^62) split at bit 31 into `p = ph·2^31 + pl`,
/// `c = ch·2^31 + cl` (pl, cl in `[0, 2^31)`), `p·c + 2^61 = ph·ch·2^62 + M·2^31 + L + 2^61`
/// with `M = ph·cl + pl·ch` (in `(−2^62, 2^63)`) and `L = pl·cl` (< 2^62); writing
/// `M = Mh·2^31 + Ml`, the floor of it over 2^62 is `ph·ch + Mh + ⌊(Ml·2^31 + L + 2^61) / 2^62⌋`,
/// the last term summed in u64 (< 2^64). Every step is exact, so the result is the i128
/// definition's; the test below checks it on extreme and random rows.
#[inline(always)]
fn rms_norm_body(x: &[i32], gain: &[i32], eps_q32: u64, out: &mut [i32]) {
    let (mut hi, mut lo) = (0u64, 0u64);
    for &v in x {
        let sq = (v as i64 * v as i64) as u64;
        hi += sq >> 32;
        lo += sq & 0xffff_ffff;
    }
    let ss = ((hi as u128) << 32) + lo as u128;
    let n = x.len().max(1) as u128;
    let r = quant::isqrt(ss / n + eps_q32 as u128);
    if r == 0 {
        out.iter_mut().for_each(|y| *y = 0);
        return;
    }
    let c = ((1u128 << 62) / r) as i64;
    let (ch, cl) = (c >> 31, c & 0x7fff_ffff);
    for ((y, &v), &g) in out.iter_mut().zip(x).zip(gain) {
        let p = v as i64 * g as i64;
        let (ph, pl) = (p >> 31, p & 0x7fff_ffff);
        let m = ph * cl + pl * ch;
        let (mh, ml) = (m >> 31, (m & 0x7fff_ffff) as u64);
        let low = ((ml << 31) + (pl * cl) as u64 + (1u64 << 61)) >> 62;
        let t = ph * ch + mh + low as i64;
        *y = t.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    }
}

kernel! {
    /// [`quant::rms_norm`] of one row (see `rms_norm_body`).
    rms_norm => rms_norm_body(x: &[i32], gain: &[i32], eps_q32: u64, out: &mut [i32])
}

kernel! {
    /// [`quant::quantize`] of one row.
    quantize => quantize_definition(v: &[i32], out: &mut [i8]) -> Scale
}

/// One row of attention scores: `row[p] = q · k[p]` over `hd` (`k` holds `row.len()` rows).
/// With AVX-512 VNNI and `hd` a multiple of 64, sixteen positions at a time on `vpdpbusd`
/// ([`scores_vnni`]); the same i32 sums on every path.
pub fn scores_row(isa: Isa, q: &[i8], k: &[i8], hd: usize, row: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && Isa::has_vnni() && hd > 0 && hd.is_multiple_of(64) && q.len() == hd && row.len().checked_mul(hd).is_some_and(|n| n <= k.len()) {
        // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked above), and the shapes are as
        // `scores_vnni` requires.
        return unsafe { scores_vnni(q, k, hd, row) };
    }
    scores_row_plain(isa, q, k, hd, row)
}

kernel! {
    /// [`scores_row`] on the compiler's vectorization.
    scores_row_plain => scores_body(q: &[i8], k: &[i8], hd: usize, row: &mut [i32])
}

/// One row of the attention mix: `acc += Σ_p p[p] · v[p]` over `hd`-wide rows of `v` (`v`
/// holds `p.len()` rows). With AVX-512 VNNI, `hd` 64 or 128 and no weight negative (a
/// softmax row's are 0..=127), four positions at a time on `vpdpbusd` ([`mix_vnni`]); the
/// same i32 sums on every path.
pub fn mix_row(isa: Isa, p: &[i8], v: &[i8], hd: usize, acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512
        && Isa::has_vnni()
        && hd > 0
        && hd.is_multiple_of(64)
        && hd <= 64 * MIX_VNNI_MAX_BLOCKS
        && acc.len() == hd
        && p.len().checked_mul(hd).is_some_and(|n| n <= v.len())
        && p.iter().all(|&w| w >= 0)
    {
        // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked above), and the shapes and
        // signs are as `mix_vnni` requires.
        return unsafe { mix_vnni(p, v, hd, acc) };
    }
    mix_row_plain(isa, p, v, hd, acc)
}

kernel! {
    /// [`mix_row`] on the compiler's vectorization.
    mix_row_plain => mix_body(p: &[i8], v: &[i8], hd: usize, acc: &mut [i32])
}

/// [`scores_body`] sixteen positions at a time: each position's `(k + 128) · q` on `vpdpbusd`
/// (K offset to unsigned, one `xor`), the sixteen lane vectors summed into one by
/// [`aivm_tensor::rows::sum_sixteen`], and `128 · Σ q` taken off every score. Every step is exact in i32 (the
/// sums are the definition's; `|q·k| + 128·|Σq| < 2^31` for any `hd` under 2^16).
///
/// # Safety
/// AVX-512 F, BW and VNNI; `hd` a non-zero multiple of 64, `q.len() == hd`, `k` holds at
/// least `row.len()` rows of `hd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn scores_vnni(q: &[i8], k: &[i8], hd: usize, row: &mut [i32]) {
    use std::arch::x86_64::*;
    let n = row.len();
    let flip = _mm512_set1_epi8(i8::MIN);
    let bias = _mm512_set1_epi32(128 * q.iter().map(|&v| v as i32).sum::<i32>());
    let mut p = 0;
    while p + 16 <= n {
        let mut lanes = [_mm512_setzero_si512(); 16];
        for (r, acc) in lanes.iter_mut().enumerate() {
            let kr = k.as_ptr().add((p + r) * hd);
            for c in (0..hd).step_by(64) {
                let kv = _mm512_xor_si512(_mm512_loadu_si512(kr.add(c) as *const _), flip);
                *acc = _mm512_dpbusd_epi32(*acc, kv, _mm512_loadu_si512(q.as_ptr().add(c) as *const _));
            }
        }
        _mm512_storeu_si512(row.as_mut_ptr().add(p) as *mut _, _mm512_sub_epi32(aivm_tensor::rows::sum_sixteen(&lanes), bias));
        p += 16;
    }
    scores_body(q, &k[p * hd..], hd, &mut row[p..]);
}

/// Widest head [`mix_vnni`] takes, in blocks of 64 columns (its accumulators live in registers).
const MIX_VNNI_MAX_BLOCKS: usize = 2;

/// [`mix_body`] four positions at a time: their four weights broadcast as the unsigned
/// operand of `vpdpbusd`, against V's four rows interleaved byte by byte (column `j` of each
/// 32-bit lane holds the four positions' `v[·][j]`), which leaves the accumulators' columns in
/// a fixed permutation, undone once at the end; groups of four zero weights are skipped, as
/// the definition skips zeros. Exact in i32 as the definition.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `hd` a non-zero multiple of 64 up to `64·MIX_VNNI_MAX_BLOCKS`,
/// `acc.len() == hd`, `v` holds at least `p.len()` rows of `hd`, and every `p` is ≥ 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn mix_vnni(p: &[i8], v: &[i8], hd: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let blocks = hd / 64;
    // Per 64 columns, four accumulators: lane l of accumulator t (t = 0..4) is column
    // 16·(l / 4) + 4·t + l % 4 of the block.
    let mut sums = [_mm512_setzero_si512(); 4 * MIX_VNNI_MAX_BLOCKS];
    let groups = p.len() / 4;
    for g in 0..groups {
        let w = u32::from_le_bytes([p[4 * g] as u8, p[4 * g + 1] as u8, p[4 * g + 2] as u8, p[4 * g + 3] as u8]);
        if w == 0 {
            continue;
        }
        let wv = _mm512_set1_epi32(w as i32);
        let row = |r: usize, c: usize| _mm512_loadu_si512(v.as_ptr().add((4 * g + r) * hd + c) as *const _);
        for b in 0..blocks {
            let (r0, r1, r2, r3) = (row(0, 64 * b), row(1, 64 * b), row(2, 64 * b), row(3, 64 * b));
            let (t0, t1) = (_mm512_unpacklo_epi8(r0, r1), _mm512_unpackhi_epi8(r0, r1));
            let (t2, t3) = (_mm512_unpacklo_epi8(r2, r3), _mm512_unpackhi_epi8(r2, r3));
            let s = &mut sums[4 * b..4 * b + 4];
            s[0] = _mm512_dpbusd_epi32(s[0], wv, _mm512_unpacklo_epi16(t0, t2));
            s[1] = _mm512_dpbusd_epi32(s[1], wv, _mm512_unpackhi_epi16(t0, t2));
            s[2] = _mm512_dpbusd_epi32(s[2], wv, _mm512_unpacklo_epi16(t1, t3));
            s[3] = _mm512_dpbusd_epi32(s[3], wv, _mm512_unpackhi_epi16(t1, t3));
        }
    }
    for b in 0..blocks {
        for t in 0..4 {
            let mut lanes = [0i32; 16];
            _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, sums[4 * b + t]);
            for (l, &x) in lanes.iter().enumerate() {
                let j = 64 * b + 16 * (l / 4) + 4 * t + l % 4;
                acc[j] = acc[j].wrapping_add(x);
            }
        }
    }
    mix_body(&p[4 * groups..], &v[4 * groups * hd..], hd, acc);
}

/// RoPE on every head of one row: pair `i` of a head, `(a, b)` = elements `(2i, 2i + 1)`
/// (`halves` false) or `(i, i + hd/2)` (`halves` true), rotated by `trig[i]` as
/// [`quant::rotate`]. Its `round_shift(·, 30)` is [`shift_down`] here: `|a·c ∓ b·s| ≤ 2^62`
/// (|a|, |b| ≤ 2^31 and |c|, |s| ≤ 2^30), where the two agree. Pairs run side by side within
/// a head (the halves form reads two contiguous runs), where the definition went pair by pair
/// across heads.
#[inline(always)]
fn rope_body(row: &mut [i32], trig: &[(i32, i32)], hd: usize, halves: bool) {
    let rot = |a: &mut i32, b: &mut i32, (c, s): (i32, i32)| {
        let (x, y, c, s) = (*a as i64, *b as i64, c as i64, s as i64);
        *a = shift_down(x * c - y * s, 30);
        *b = shift_down(x * s + y * c, 30);
    };
    for head in row.chunks_exact_mut(hd.max(1)) {
        if halves {
            let (lo, hi) = head.split_at_mut(hd / 2);
            for ((a, b), &t) in lo.iter_mut().zip(hi.iter_mut()).zip(trig) {
                rot(a, b, t);
            }
        } else {
            for (pair, &t) in head.chunks_exact_mut(2).zip(trig) {
                let (a, b) = pair.split_at_mut(1);
                rot(&mut a[0], &mut b[0], t);
            }
        }
    }
}

kernel! {
    /// RoPE of one row's heads by one position's `(cos, sin)` pairs (see `rope_body`).
    rope => rope_body(row: &mut [i32], trig: &[(i32, i32)], hd: usize, halves: bool)
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
        /// The narrow argmax on every path equals the pairwise definition over rows of up to
        /// several chunks, with repeated maxima (ties go low), extremes and exponent spans on
        /// both sides of 16 (beyond it every path declines).
        #[test]
        fn argmax_narrow_equals_the_definition(n in 1usize..1600, seed in any::<u64>(), span in 0i32..20, ties in any::<bool>()) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            // Equal (acc, scale) pairs make exact ties; `Scale::ZERO` (exponent 0) widens the
            // span past 16, so it is rare.
            let tie = (i32::MAX - 5, Scale { m: 1 << 15, e: -20 });
            let (acc, sc): (Vec<i32>, Vec<Scale>) = (0..n).map(|_| match next() % 64 {
                0 if ties => tie,
                1 => (i32::MIN, Scale { m: 1 << 15, e: -20 }),
                2 if n % 7 == 0 => (next() as i32, Scale::ZERO),
                3 => (i32::MAX, Scale { m: 0, e: -20 }),
                _ => (next() as i32 >> (next() % 24), Scale { m: (1 << 14) + (next() % (1 << 14)) as i32, e: -20 - (next() % (span as u64 + 1)) as i32 }),
            }).unzip();
            let (lo, hi) = sc.iter().fold((i32::MAX, i32::MIN), |(l, h), s| (l.min(s.e), h.max(s.e)));
            for isa in Isa::available() {
                match argmax_narrow(isa, &acc, &sc) {
                    Some(j) => prop_assert_eq!(j, layer::argmax_definition(&acc, &sc), "{:?}", isa),
                    None => prop_assert!(hi - lo > 16, "{:?} declined a narrow row", isa),
                }
            }
        }
    }

    /// One SwiGLU row over every interval of the sigmoid table and both saturations, with
    /// the dequantization the identity (`m = 2^28`, shift 28): each path's `h` equals
    /// `round_shift(silu_q16(g)·u, 16)` exactly. (Rows of the property test above mostly
    /// saturate SiLU, so an interpolation fault could pass it.)
    #[test]
    fn swiglu_rows_cover_the_sigmoid_table() {
        let g: Vec<i32> = (-(16 << 16) - 4096..(16 << 16) + 4096).step_by(37).collect();
        let u: Vec<i32> = (0..g.len() as i32).map(|j| (1 << 16) + (j % 13) * 5003 - 30_000).collect();
        let n = g.len() / 8 * 8 + 3; // a tail for the portable loop
        let (g, u) = (&g[..n], &u[..n]);
        let (m, sh) = (vec![1i64 << 28; n], vec![28u32; n]);
        let want: Vec<i32> = g.iter().zip(u).map(|(&g, &u)| quant::round_shift(quant::silu_q16(g) as i64 * u as i64, 16)).collect();
        let t = quant::sigmoid_table();
        let mut h = vec![0i32; n];
        swiglu_row(g, u, &m, &sh, &m, &sh, t, &mut h);
        assert_eq!(h, want, "portable");
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx512 {
            // The same identity from scales: 2^14 · 2^14 = 2^28, shift −(−22 − 22 + 16) = 28.
            let (sx, sw) = (Scale { m: 1 << 14, e: -22 }, vec![Scale { m: 1 << 14, e: -22 }; n]);
            let mut h = vec![0i32; n];
            // SAFETY: the CPU has AVX-512 F and DQ (checked).
            unsafe { swiglu_row_fused_avx512(g, u, sx, &sw, &sw, &mut h) };
            assert_eq!(h, want, "AVX-512");
        }
    }

    /// SwiGLU with multipliers past i32 (scales no converter writes, which a SKU file may
    /// still hold) equals the definition; the packed table's words hold both ends of every
    /// interval.
    #[test]
    fn swiglu_with_wide_multipliers_equals_the_definition() {
        let t = quant::sigmoid_table();
        #[cfg(target_arch = "x86_64")]
        for (i, &p) in sigmoid_pairs().iter().enumerate() {
            assert_eq!(((p << 32) >> 32, p >> 32), (t[i], t[i + 1] - t[i]), "entry {i}");
        }
        let f = 37;
        let yg: Vec<i32> = (0..f as i32).map(|j| (j - 18) * 40_000).collect();
        let yu: Vec<i32> = (0..f as i32).map(|j| (j * 7919) % 90_001 - 45_000).collect();
        for (mx, mw) in [(1 << 14, 1 << 14), (i32::MAX, 1 << 14), (i32::MAX, i32::MAX), (1 << 16, 1 << 16)] {
            let sx = [Scale { m: mx, e: -40 }];
            let sg: Vec<Scale> = (0..f).map(|j| Scale { m: mw - j as i32, e: -30 }).collect();
            let su = sg.clone();
            let (mut want_q, mut want_s) = (vec![0i8; f], [Scale::ZERO]);
            layer::swiglu_quantize(&yg, &yu, &sx, &sg, &su, &mut want_q, &mut want_s);
            for isa in Isa::available() {
                let (mut q, mut sc) = (vec![0i8; f], [Scale::ZERO]);
                swiglu_quantize(isa, &yg, &yu, &sx, &sg, &su, &mut q, &mut sc);
                assert_eq!((&q, &sc), (&want_q, &want_s), "{isa:?} m {mx}·{mw}");
            }
        }
    }

    /// RMSNorm in 64-bit lanes equals the i128 definition on rows at the edges: i32::MIN and
    /// MAX everywhere (the largest squares and products), the smallest non-zero denominator
    /// (`inv` = 2^62), all zeros (no denominator), one element, and gains of either sign.
    #[test]
    fn rms_norm_edges_equal_the_definition() {
        let rows: Vec<(Vec<i32>, Vec<i32>, u64)> = vec![
            (vec![i32::MIN; 64], vec![i32::MIN; 64], 0),
            (vec![i32::MAX; 64], vec![i32::MAX; 64], 0),
            (vec![i32::MIN; 3], vec![i32::MAX, i32::MIN, -1], u64::MAX >> 1),
            ((0..576).map(|i| if i == 0 { 1 } else { 0 }).collect(), vec![i32::MAX; 576], 1),
            (vec![0; 576], vec![1 << 16; 576], 0),
            (vec![0; 576], vec![1 << 16; 576], 7),
            (vec![-5], vec![i32::MIN], 0),
            ((0..1536i32).map(|i| (i - 768) << 20).collect(), (0..1536i64).map(|i| (i32::MIN as i64 + i * 2_796_203) as i32).collect(), 1 << 20),
        ];
        for (x, g, eps) in rows {
            let mut want = vec![0; x.len()];
            quant::rms_norm(&x, &g, eps, &mut want);
            for isa in Isa::available() {
                let mut got = vec![0x5a5a; x.len()];
                rms_norm(isa, &x, &g, eps, &mut got);
                assert_eq!(got, want, "{isa:?} n {}", x.len());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// RMSNorm in 64-bit lanes equals the i128 definition on random rows of any length
        /// and magnitude (values and gains across all of i32 or near zero).
        #[test]
        fn rms_norm_equals_the_definition(
            n in 1usize..700,
            seed in any::<u64>(),
            xbits in 0u32..32,
            gbits in 0u32..32,
            eps in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from), any::<u64>().prop_map(|e| e >> 2)],
        ) {
            let mut s = seed | 1;
            // A random i32 cut to `bits` bits of magnitude (sign kept).
            let mut next = |bits: u32| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 32) as i32) >> (31 - bits) };
            let x: Vec<i32> = (0..n).map(|_| next(xbits)).collect();
            let g: Vec<i32> = (0..n).map(|_| next(gbits)).collect();
            let mut want = vec![0; n];
            quant::rms_norm(&x, &g, eps, &mut want);
            for isa in Isa::available() {
                let mut got = vec![0; n];
                rms_norm(isa, &x, &g, eps, &mut got);
                prop_assert_eq!(&got, &want, "{:?}", isa);
            }
        }
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

        /// The attention row kernels at head widths the VNNI forms take (64, 128): scores
        /// and mix equal their definitions on every path, over ragged context lengths (the
        /// sixteen- and four-position bodies and their tails), extreme bytes, runs of zero
        /// weights (skipped four at a time) and, for mix, a negative weight (which the VNNI
        /// form must leave to the plain one).
        #[test]
        fn attention_rows_at_vnni_widths_equal_the_definitions(
            wide in any::<bool>(),
            ctx in 0usize..70,
            seed in any::<u64>(),
            zeros in 0u8..4,
            negative in any::<bool>(),
        ) {
            let hd = if wide { 128 } else { 64 };
            let mut st = seed | 1;
            let mut next = || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
            let byte = |r: u64| match r % 8 { 0 => i8::MIN, 1 => i8::MAX, _ => (r >> 8) as i8 };
            let q: Vec<i8> = (0..hd).map(|_| byte(next())).collect();
            let kv: Vec<i8> = (0..ctx * hd).map(|_| byte(next())).collect();
            // Weights 0..=127, a share of them zero (whole groups of four when `zeros` is 3).
            let mut w: Vec<i8> = (0..ctx).map(|_| { let r = next(); if (r % 4) < zeros as u64 { 0 } else { (r >> 8) as i8 & 127 } }).collect();
            if negative && ctx > 0 {
                w[ctx / 2] = -3;
            }
            let want_scores: Vec<i32> = (0..ctx).map(|p| aivm_tensor::gemm::dot_i8(&q, &kv[p * hd..(p + 1) * hd])).collect();
            let want_acc: Vec<i32> = (0..hd).map(|j| -7 + (0..ctx).map(|p| w[p] as i32 * kv[p * hd + j] as i32).sum::<i32>()).collect();
            for isa in Isa::available() {
                let mut scores = vec![0x5555_5555; ctx];
                scores_row(isa, &q, &kv, hd, &mut scores);
                prop_assert_eq!(&scores, &want_scores, "{:?} hd {} ctx {}", isa, hd, ctx);
                let mut acc = vec![-7i32; hd];
                mix_row(isa, &w, &kv, hd, &mut acc);
                prop_assert_eq!(&acc, &want_acc, "{:?} hd {} ctx {}", isa, hd, ctx);
            }
        }

        /// The softmax row kernel equals the logits' `round_shift` and `layer::softmax_fold`
        /// on every path, including rows that take the definitions (shifts out of range) and
        /// rows with zero V scales.
        #[test]
        fn softmax_row_equals_the_definition(
            n in 1usize..90,
            seed in any::<u64>(),
            sq in scales(8),
            ks in proptest::collection::vec(scales(-20), 90),
            vs in proptest::collection::vec(scales(-20), 90),
            big in any::<bool>(),
        ) {
            let mut st = seed | 1;
            let mut next = |range: i64| { st ^= st << 13; st ^= st >> 7; st ^= st << 17; (st % (2 * range as u64 + 1)) as i64 - range };
            let range = if big { i32::MAX as i64 } else { 1 << 14 };
            let scores: Vec<i32> = (0..n).map(|_| next(range) as i32).collect();
            let (ks, vs) = (&ks[..n], &vs[..n]);
            let logits: Vec<i64> = (0..n).map(|p| quant::round_shift(scores[p] as i64 * (sq.m as i64 * ks[p].m as i64), -(sq.e + ks[p].e + 16)) as i64).collect();
            let mut want = vec![0i8; n];
            let want_s = layer::softmax_fold(&logits, |p| vs[p], &mut want);
            for isa in Isa::available() {
                let (mut e, mut got) = (vec![0i64; n], vec![0i8; n]);
                match softmax_row(isa, &scores, sq, ks, vs, &mut e, &mut got) {
                    Some(s) => {
                        prop_assert_eq!(s, want_s, "{:?}", isa);
                        prop_assert_eq!(&got, &want);
                    }
                    // Only rows whose shifts leave the fast range may decline.
                    None => prop_assert!((0..n).any(|p| !(1..=62).contains(&-(sq.e + ks[p].e + 16)))),
                }
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

    /// A row whose largest folded term is tiny (V's scales 2^40 apart, the large one on a
    /// position whose exp underflows): the probabilities' multiplier `r` passes 2^31 (the
    /// random rows never reach it), and the kernel still equals the definition.
    #[test]
    fn softmax_row_with_a_tiny_largest_term() {
        let s = |m, e| Scale { m, e };
        let sq = s(1 << 14, -14);
        let ks = [s(1 << 14, -16); 3];
        let vs = [s(1 << 14, -40), s(1 << 14, 0), s((1 << 15) - 1, -40)];
        let scores = [0, -120, -1];
        let logits: Vec<i64> = (0..3).map(|p| quant::round_shift(scores[p] as i64 * (sq.m as i64 * ks[p].m as i64), -(sq.e + ks[p].e + 16)) as i64).collect();
        let mut want = vec![0i8; 3];
        let want_s = layer::softmax_fold(&logits, |p| vs[p], &mut want);
        for isa in Isa::available() {
            let (mut e, mut got) = (vec![0i64; 3], vec![0i8; 3]);
            assert_eq!(softmax_row(isa, &scores, sq, &ks, &vs, &mut e, &mut got), Some(want_s), "{isa:?}");
            assert_eq!(got, want, "{isa:?}");
        }
    }

    /// The AVX-512 exponentials equal the definition on every Q16 argument from below the
    /// cutoff to 0 (in rows of every length mod 8, so the tail runs too), far below it, and
    /// with a nonzero row maximum subtracted.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_pass_avx512_equals_the_definition() {
        use aivm_tensor::fixed::{exp_neg_q16_to_q30, EXP_CUTOFF_Q16};
        if Isa::detect() != Isa::Avx512 {
            return;
        }
        let all: Vec<i64> = ((EXP_CUTOFF_Q16 - 1000)..=0).chain([i64::MIN / 4, -(1 << 40), -(1 << 33), EXP_CUTOFF_Q16 * 2]).collect();
        for (len, mx) in [(4096usize, 0i64), (4099, 0), (13, 0), (4096, 12_345)] {
            for chunk in all.chunks(len) {
                let mut e: Vec<i64> = chunk.iter().map(|&x| x + mx).collect();
                // SAFETY: the CPU has AVX-512 (checked above).
                unsafe { exp_pass_avx512(&mut e, mx) };
                for (&x, &got) in chunk.iter().zip(&e) {
                    let want = if x < -(1 << 40) { 0 } else { exp_neg_q16_to_q30(x.max(-(1 << 40))) };
                    assert_eq!(got, want, "x {x}, mx {mx}, len {len}");
                }
            }
        }
    }

    /// The branch-free exp equals the definition on every Q16 argument from below the cutoff
    /// to 0, and far below it.
    #[test]
    fn exp_neg_equals_the_definition() {
        use aivm_tensor::fixed::{exp_neg_q16_to_q30, EXP_CUTOFF_Q16};
        for x in (EXP_CUTOFF_Q16 - 1000)..=0 {
            assert_eq!(exp_neg(x), exp_neg_q16_to_q30(x), "{x}");
        }
        for x in [i64::MIN / 4, -(1 << 40), -(1 << 33), EXP_CUTOFF_Q16 * 2] {
            assert_eq!(exp_neg(x), 0, "{x}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The RoPE kernel equals `quant::rotate` pair by pair, in both layouts, on rows of
        /// random magnitude and at the extremes (i32::MIN and MAX against cos/sin of ±2^30).
        #[test]
        fn rope_equals_the_definition(heads in 1usize..10, half in 1usize..40, seed in any::<u64>(), bits in 0u32..32, extreme in any::<bool>(), halves in any::<bool>()) {
            let hd = 2 * half;
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let one = 1i32 << 30;
            let trig: Vec<(i32, i32)> = (0..half).map(|_| if extreme {
                [(one, -one), (-one, one), (one, one), (-one, -one)][(next() % 4) as usize]
            } else {
                crate::quant::cos_sin_q30(next())
            }).collect();
            let row: Vec<i32> = (0..heads * hd).map(|_| if extreme {
                [i32::MIN, i32::MAX, -1, 0][(next() % 4) as usize]
            } else {
                ((next() >> 32) as i32) >> (31 - bits)
            }).collect();
            let mut want = row.clone();
            for head in want.chunks_exact_mut(hd) {
                for (i, &(c, sn)) in trig.iter().enumerate() {
                    let (a, b) = if halves { (i, i + half) } else { (2 * i, 2 * i + 1) };
                    let (x, y) = quant::rotate(head[a], head[b], c, sn);
                    head[a] = x;
                    head[b] = y;
                }
            }
            for isa in Isa::available() {
                let mut got = row.clone();
                rope(isa, &mut got, &trig, hd, halves);
                prop_assert_eq!(&got, &want, "{:?}", isa);
            }
        }
    }

    /// Timing, not a check (`cargo test --release -p aivm-model --lib -- attention_rows_speed
    /// --ignored --nocapture`): a decode step's attention rows at 512 positions (SmolLM2's
    /// head width), the compiler-vectorized forms against the VNNI ones, best of five.
    #[test]
    #[ignore]
    fn attention_rows_speed() {
        let (hd, ctx, reps) = (64, 512, 2000);
        let q: Vec<i8> = (0..hd).map(|i| (i * 37 % 251) as i8).collect();
        let kv: Vec<i8> = (0..ctx * hd).map(|i| (i * 13 % 253) as i8).collect();
        let w: Vec<i8> = (0..ctx).map(|i| if i % 3 == 0 { 0 } else { (i * 7 % 128) as i8 }).collect();
        let best = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    (0..reps).for_each(|_| f());
                    t.elapsed().as_secs_f64() / reps as f64 * 1e6
                })
                .fold(f64::MAX, f64::min)
        };
        let isa = Isa::detect();
        let mut row = vec![0i32; ctx];
        let mut acc = vec![0i32; hd];
        let plain_s = best(&mut || scores_row_plain(isa, &q, &kv, hd, std::hint::black_box(&mut row)));
        let fast_s = best(&mut || scores_row(isa, &q, &kv, hd, std::hint::black_box(&mut row)));
        let plain_m = best(&mut || mix_row_plain(isa, &w, &kv, hd, std::hint::black_box(&mut acc)));
        let fast_m = best(&mut || mix_row(isa, &w, &kv, hd, std::hint::black_box(&mut acc)));
        println!("scores {ctx}x{hd}: plain {plain_s:.2} us, vnni {fast_s:.2} us; mix: plain {plain_m:.2} us, vnni {fast_m:.2} us (vnni {})", Isa::has_vnni());
    }
}
