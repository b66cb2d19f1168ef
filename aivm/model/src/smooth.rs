//! Activation smoothing at conversion (SmoothQuant, Xiao et al. 2023): the int8 model
//! quantizes each activation row with one scale, so a few channels with large activations
//! crush the rest. Conversion measures the largest activation of each input channel of the
//! GEMMs that read a norm's output (q/k/v and gate/up) on fixed calibration text with the
//! unsmoothed model, then folds `s_j = sqrt(max|x_j| / max|w_·j|)` into those weights
//! (`w_·j · s_j`) and the norm's gain (`g_j / s_j`): the same function in exact arithmetic,
//! with the difficulty shared between activations and weights.
//!
//! Deterministic: the statistics come from the integer engine (bit-exact everywhere) and
//! are exact in f64; the factors use IEEE-754 division and square root only. Measured on
//! SmolLM2 (BENCHMARKS.md, "Quality"): teacher-forced top-1 agreement with the float model
//! 90.7 % → 92.2 %. Smoothing the down projection's input too (folded into the up rows)
//! measured 93.5 % but flipped a near-tie in the first token of the greedy answers (the
//! capital of France became "L'Étoile…"); it is not used.

use crate::engine::{Engine, GemmKind, GemmRecord, GemmSink, Options};
use crate::gguf::Gguf;
use crate::sku::{ActivationMax, Sku, SkuError};
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

/// Convert a GGUF with smoothing: convert plainly, measure, convert again smoothed.
pub fn convert(g: &Gguf) -> Result<Sku, SkuError> {
    let plain = Sku::from_gguf(g)?;
    let act = calibrate(plain)?;
    Sku::from_gguf_with(g, Some(&act))
}

/// The largest |activation| per GEMM input channel while `sku` answers [`CALIBRATION_PROMPTS`].
pub fn calibrate(sku: Sku) -> Result<ActivationMax, SkuError> {
    let c = sku.config.clone();
    let (layers, d) = (c.layers as usize, c.d_model as usize);
    let engine = Engine::new(Arc::new(sku), Options::default()).map_err(|e| SkuError::Bad(format!("calibration engine: {e}")))?;
    let prompts: Vec<Vec<u32>> = CALIBRATION_PROMPTS.iter().map(|p| engine.tokenizer.encode(&engine.tokenizer.chat_prompt(p))).collect();
    let mut stats = Stats(ActivationMax { attn: vec![vec![0.0; d]; layers], ffn: vec![vec![0.0; d]; layers] });
    engine.generate(&prompts, CALIBRATION_TOKENS, &mut stats).map_err(|e| SkuError::Bad(format!("calibration run: {e}")))?;
    Ok(stats.0)
}

/// Records the column maxima of the dequantized inputs of the q (= k, v) and gate (= up)
/// GEMMs: `|x_rj| · m_r · 2^e_r`, exact in f64 (a 7-bit times a 15-bit integer).
struct Stats(ActivationMax);

impl GemmSink for Stats {
    fn gemm(&mut self, rec: &GemmRecord<'_>) {
        let layer = rec.id.layer as usize;
        let target = match rec.id.kind {
            GemmKind::Q => self.0.attn.get_mut(layer),
            GemmKind::Gate => self.0.ffn.get_mut(layer),
            _ => None,
        };
        let Some(target) = target.filter(|t| t.len() == rec.k) else { return };
        for (row, s) in rec.x.chunks_exact(rec.k).zip(rec.x_scales) {
            let unit = s.m as f64 * 2f64.powi(s.e);
            for (m, &q) in target.iter_mut().zip(row) {
                *m = m.max((q as i32).abs() as f64 * unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_largest_dequantized_input_per_channel() {
        use crate::engine::GemmId;
        use crate::quant::Scale;
        let mut s = Stats(ActivationMax { attn: vec![vec![0.0; 2]], ffn: vec![vec![0.0; 3]] });
        let x = [3i8, -5, 7, 1];
        let scales = [Scale { m: 16384, e: -14 }, Scale { m: 16384, e: -15 }]; // 1 and 1/2
        let id = GemmId { step: 0, layer: 0, kind: GemmKind::Q, seq: 0, head: 0 };
        s.gemm(&GemmRecord { id, m: 2, k: 2, n: 1, x: &x, x_scales: &scales, y: &[0, 0], rhs: None });
        assert_eq!(s.0.attn[0], vec![3.5, 5.0]);
        // Other kinds and shapes that do not fit are ignored.
        s.gemm(&GemmRecord { id: GemmId { kind: GemmKind::O, ..id }, m: 2, k: 2, n: 1, x: &[127; 4], x_scales: &scales, y: &[0, 0], rhs: None });
        s.gemm(&GemmRecord { id: GemmId { kind: GemmKind::Gate, ..id }, m: 2, k: 2, n: 1, x: &[127; 4], x_scales: &scales, y: &[0, 0], rhs: None });
        assert_eq!(s.0.attn[0], vec![3.5, 5.0]);
        assert_eq!(s.0.ffn[0], vec![0.0; 3]);
    }
}
