//! Calibration: the rotated model, rounded to nearest, answers fixed prompts on the integer
//! engine; for every layer, the inputs `X` of the q (= k, v) GEMM and of the gate (= up) GEMM
//! are summed into `XᵀX`, the statistics GPTQ rounds those weights against (`super::gptq`),
//! and the largest input of each channel of the down GEMM is kept for its smoothing
//! (`super::smoothing`).
//!
//! Deterministic: the engine is bit-exact on every machine, its sink sees the GEMMs in one
//! order, and each product `x_i·x_j` (a 7-bit times a 15-bit integer, times a power of two) is
//! exact in f64; only the sums round, in that fixed order.

use super::axpy::add_scaled;
use crate::engine::{Engine, GemmKind, GemmRecord, GemmSink, Options};
use crate::sku::{Sku, SkuError};
use std::sync::Arc;

/// Calibration prompts: chat requests of the kinds the model serves, none of them among the
/// prompts the quality measurement scores (`benches/src/bin/infer.rs`).
pub const CALIBRATION_PROMPTS: &[&str] = &[
    "Tell me about the history of the printing press.",
    "How do I make a cup of green tea?",
    "What are the main causes of the French Revolution?",
    "Write a short poem about the moon.",
    "Explain how a refrigerator keeps food cold.",
    "What are prime numbers? Give some examples.",
    "Describe the water cycle for a child.",
    "What should I pack for a weekend camping trip?",
];

/// Tokens generated after each calibration prompt (decode steps are measured too).
pub const CALIBRATION_TOKENS: usize = 64;

/// Per layer, `XᵀX` (`d × d`, row-major, upper triangle filled) of the attention norm's
/// output (`attn`: the q/k/v input) and the feed-forward norm's (`ffn`: the gate/up input),
/// and the largest |input| of each of the down GEMM's `ffn` channels (`down`).
#[derive(Clone, Debug, PartialEq)]
pub struct Statistics {
    pub attn: Vec<Vec<f64>>,
    pub ffn: Vec<Vec<f64>>,
    pub down: Vec<Vec<f64>>,
}

impl Statistics {
    pub(super) fn check(&self, layers: usize, d: usize, ffn: usize) -> Result<(), SkuError> {
        let ok = |v: &[Vec<f64>], n: usize| v.len() == layers && v.iter().all(|h| h.len() == n);
        if ok(&self.attn, d * d) && ok(&self.ffn, d * d) && ok(&self.down, ffn) {
            Ok(())
        } else {
            Err(SkuError::Bad("calibration statistics do not match the model's shape".into()))
        }
    }
}

/// The [`Statistics`] of `sku` answering [`CALIBRATION_PROMPTS`].
pub fn calibrate(sku: Sku) -> Result<Statistics, SkuError> {
    let (layers, d, f) = (sku.config.layers as usize, sku.config.d_model as usize, sku.config.ffn as usize);
    let engine = Engine::new(Arc::new(sku), Options::default()).map_err(|e| SkuError::Bad(format!("calibration engine: {e}")))?;
    let prompts: Vec<Vec<u32>> = CALIBRATION_PROMPTS.iter().map(|p| engine.tokenizer.encode(&engine.tokenizer.chat_prompt(p))).collect();
    let mut sums = Sums {
        h: Statistics { attn: vec![vec![0.0; d * d]; layers], ffn: vec![vec![0.0; d * d]; layers], down: vec![vec![0.0; f]; layers] },
        row: vec![0.0; d],
    };
    engine.generate(&prompts, CALIBRATION_TOKENS, &mut sums).map_err(|e| SkuError::Bad(format!("calibration run: {e}")))?;
    Ok(sums.h)
}

/// Adds each dequantized input row `x` of the q and gate GEMMs to `XᵀX`'s upper triangle,
/// and takes the down GEMM's column maxima.
struct Sums {
    h: Statistics,
    row: Vec<f64>,
}

impl GemmSink for Sums {
    fn gemm(&mut self, rec: &GemmRecord<'_>) {
        let layer = rec.id.layer as usize;
        if rec.id.kind == GemmKind::Down {
            let Some(m) = self.h.down.get_mut(layer).filter(|m| m.len() == rec.k) else { return };
            for (x, s) in rec.x.chunks_exact(rec.k).zip(rec.x_scales) {
                let unit = s.value();
                m.iter_mut().zip(x).for_each(|(m, &q)| *m = m.max((q as i32).abs() as f64 * unit));
            }
            return;
        }
        let target = match rec.id.kind {
            GemmKind::Q => self.h.attn.get_mut(layer),
            GemmKind::Gate => self.h.ffn.get_mut(layer),
            _ => None,
        };
        let k = rec.k;
        let Some(h) = target.filter(|h| h.len() == k * k && self.row.len() == k) else { return };
        for (x, s) in rec.x.chunks_exact(k).zip(rec.x_scales) {
            let unit = s.value();
            self.row.iter_mut().zip(x).for_each(|(r, &q)| *r = q as f64 * unit);
            for (i, &xi) in self.row.iter().enumerate() {
                add_scaled(&mut h[i * k + i..(i + 1) * k], xi, &self.row[i..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::GemmId;
    use crate::quant::Scale;

    #[test]
    fn sums_add_the_dequantized_rows_outer_products() {
        let mut s = Sums { h: Statistics { attn: vec![vec![0.0; 4]], ffn: vec![vec![0.0; 4]], down: vec![vec![0.0; 2]] }, row: vec![0.0; 2] };
        let x = [3i8, -5, 7, 1];
        let scales = [Scale { m: 16384, e: -14 }, Scale { m: 16384, e: -15 }]; // 1 and 1/2
        let id = GemmId { step: 0, layer: 0, kind: GemmKind::Q, seq: 0, head: 0 };
        s.gemm(&GemmRecord { id, m: 2, k: 2, n: 1, x: &x, x_scales: &scales, y: &[0, 0], rhs: None });
        // Rows (3, -5) and (3.5, 0.5): upper triangle of their XᵀX; the lower stays 0.
        assert_eq!(s.h.attn[0], vec![9.0 + 12.25, -15.0 + 1.75, 0.0, 25.0 + 0.25]);
        // Other kinds, and shapes that do not fit, are ignored.
        s.gemm(&GemmRecord { id: GemmId { kind: GemmKind::O, ..id }, m: 2, k: 2, n: 1, x: &[127; 4], x_scales: &scales, y: &[0, 0], rhs: None });
        s.gemm(&GemmRecord { id: GemmId { kind: GemmKind::Gate, ..id }, m: 1, k: 4, n: 1, x: &[127; 4], x_scales: &scales[..1], y: &[0], rhs: None });
        assert_eq!(s.h.attn[0][0], 21.25);
        assert_eq!(s.h.ffn[0], vec![0.0; 4]);
        // The down GEMM's inputs: the largest |x| per channel.
        s.gemm(&GemmRecord { id: GemmId { kind: GemmKind::Down, ..id }, m: 2, k: 2, n: 1, x: &x, x_scales: &scales, y: &[0, 0], rhs: None });
        assert_eq!(s.h.down[0], vec![3.5, 5.0]);
    }
}
