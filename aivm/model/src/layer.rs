//! The fixed-point layer math of the integer transformer, shared by the engine that runs it
//! and the receipt audit that recomputes opened rows (`audit/verifier.rs`): one definition,
//! so the two cannot drift apart. Rounding is written out in `fixed.rs` and spec/inference.md.

use super::quant::{self, quantize, rms_norm, round_shift, silu_q16, Scale};
use aivm_tensor::fixed::exp_neg_q16_to_q30;

/// Integer softmax over `logits` (Q16) with each position's V scale folded in, quantized to
/// int8 probabilities in `p`. Returns the output scale and extra exponent:
/// `out_q16 = round_shift(acc · s.m, −(s.e + sh + 16))` for the mix accumulator `acc`.
///
/// `e_j = exp_neg(l_j − max)` (Q30), `S = Σ e_j`; `E = max e(vs_j)`,
/// `u_j = (e_j · m(vs_j)) >> (E − e(vs_j))`; `b = max(0, bitlen(max u) − 31)`, `u'_j = u_j >> b`;
/// `r = floor(127·2^32 / max u')`, `p_j = min((u'_j·r + 2^31) >> 32, 127)`;
/// scale `Scale::ratio(max u', 127·S)`, extra exponent `b + E`.
pub fn softmax_fold(logits: &[i64], vscale: impl Fn(usize) -> Scale, p: &mut [i8]) -> (Scale, i32) {
    let mx = logits.iter().copied().max().unwrap_or(0);
    let e: Vec<i64> = logits.iter().map(|&l| exp_neg_q16_to_q30((l - mx).max(-(1 << 40)))).collect();
    let s: i64 = e.iter().sum();
    let big_e = (0..logits.len()).filter(|&j| vscale(j).m != 0).map(|j| vscale(j).e).max().unwrap_or(0);
    let u: Vec<i64> = e
        .iter()
        .enumerate()
        .map(|(j, &ej)| {
            let vs = vscale(j);
            let sh = big_e - vs.e;
            if vs.m == 0 || sh >= 63 {
                0
            } else {
                (ej * vs.m as i64) >> sh
            }
        })
        .collect();
    let umax = u.iter().copied().max().unwrap_or(0);
    if umax == 0 || s == 0 {
        p.iter_mut().for_each(|x| *x = 0);
        return (Scale::ZERO, 0);
    }
    let b = (64 - umax.leading_zeros() as i32 - 31).max(0);
    let umax_b = umax >> b;
    let r = (127i64 << 32) / umax_b;
    for (pj, &uj) in p.iter_mut().zip(&u) {
        *pj = (((uj >> b) * r + (1 << 31)) >> 32).min(127) as i8;
    }
    (Scale::ratio(umax_b as u128, 127 * s as u128), b + big_e)
}

/// RMSNorm each row of `x` into `h`, then quantize each row into `xq` with scale `sx`.
pub fn norm_quantize(x: &[i32], gain: &[i32], eps: u64, d: usize, h: &mut [i32], xq: &mut [i8], sx: &mut [Scale]) {
    for (r, s) in sx.iter_mut().enumerate() {
        rms_norm(&x[r * d..(r + 1) * d], gain, eps, &mut h[r * d..(r + 1) * d]);
        *s = quantize(&h[r * d..(r + 1) * d], &mut xq[r * d..(r + 1) * d]);
    }
}

/// GEMM accumulators to Q16 (plus an optional Q16 bias, saturating).
pub fn dequant_rows(y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>) -> Vec<i32> {
    let n = sw.len();
    let mut out = vec![0i32; y.len()];
    for (r, (orow, yrow)) in out.chunks_exact_mut(n).zip(y.chunks_exact(n)).enumerate() {
        for (j, (o, &a)) in orow.iter_mut().zip(yrow).enumerate() {
            let v = quant::dequant(a, sx[r], sw[j]);
            *o = match bias {
                Some(b) => v.saturating_add(b[j]),
                None => v,
            };
        }
    }
    out
}

/// `x += dequant(y)` row by row, saturating (the residual connection).
pub fn add_dequant(x: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale]) {
    let n = sw.len();
    for (r, (xrow, yrow)) in x.chunks_exact_mut(n).zip(y.chunks_exact(n)).enumerate() {
        for (j, (xv, &a)) in xrow.iter_mut().zip(yrow).enumerate() {
            *xv = xv.saturating_add(quant::dequant(a, sx[r], sw[j]));
        }
    }
}

/// `h = silu(gate) · up` (Q16, `round_shift(·, 16)`), quantized per row.
pub fn swiglu_quantize(yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]) {
    let f = sg.len();
    let mut h = vec![0i32; f];
    for (r, s) in sh.iter_mut().enumerate() {
        for j in 0..f {
            let g = silu_q16(quant::dequant(yg[r * f + j], sx[r], sg[j]));
            let u = quant::dequant(yu[r * f + j], sx[r], su[j]);
            h[j] = round_shift(g as i64 * u as i64, 16);
        }
        *s = quantize(&h, &mut hq[r * f..(r + 1) * f]);
    }
}

/// Greedy choice: the largest `acc_j · m_j · 2^e_j` compared exactly; ties to the lowest id.
///
/// When every mantissa is in [0, 2^15] and the exponents span at most 16 bits (a real
/// model's output scales), each value times `2^-e_min` is an exact i64 (`|acc·m| < 2^46`,
/// shifted by at most 16), which orders the values exactly as [`argmax_definition`] does at a
/// fraction of its cost: every decode step and every row chain's check take this argmax over
/// the whole vocabulary. Other scales take the definition.
pub fn argmax(acc: &[i32], scales: &[Scale]) -> u32 {
    let scales = &scales[..acc.len()];
    crate::kernels::argmax_narrow(crate::kernels::Isa::detect(), acc, scales).unwrap_or_else(|| argmax_definition(acc, scales))
}

/// [`argmax`]'s definition: pairwise exact comparisons ([`greater`]).
pub fn argmax_definition(acc: &[i32], scales: &[Scale]) -> u32 {
    let val = |j: usize| (acc[j] as i64 * scales[j].m as i64, scales[j].e);
    let mut best = 0usize;
    for j in 1..acc.len() {
        if greater(val(j), val(best)) {
            best = j;
        }
    }
    best as u32
}

/// Exact `a.0·2^a.1 > b.0·2^b.1` for |mantissas| < 2^47 (shift capped at 80 bits, which
/// cannot change the order at these magnitudes).
pub fn greater(a: (i64, i32), b: (i64, i32)) -> bool {
    let d = a.1 - b.1;
    let (x, y) = if d >= 0 { ((a.0 as i128) << d.min(80), b.0 as i128) } else { (a.0 as i128, (b.0 as i128) << (-d).min(80)) };
    x > y
}
