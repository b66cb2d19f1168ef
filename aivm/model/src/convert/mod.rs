//! GGUF → SKU conversion (`spec/inference.md`, "SKU conversion"). The GGUF's weights are read
//! as f64 (exactly: every GGUF format dequantizes to a value f64 holds), transformed so that
//! the model computes the same function up to f64 rounding, and rounded to int8.
//!
//! [`convert`] is what `aivm model convert` writes:
//! 1. [`rotation`]: the residual stream is turned by a fixed orthogonal matrix, so that no
//!    channel of a norm's output stands out and one int8 scale per activation row fits them
//!    all (QuaRot, Ashkboos et al. 2024). The norms' gains are folded into the weights first.
//! 2. [`calibration`]: the rotated model, rounded to nearest, answers fixed prompts on the
//!    integer engine, which records `XᵀX` of the inputs of the GEMMs that read a norm and the
//!    largest input of each channel of the down GEMM.
//! 3. [`smoothing`]: the down GEMM's input, which the rotation does not reach (it is not the
//!    residual stream), is smoothed (SmoothQuant): scale moves from its large channels into
//!    the down weights' columns, taken off the up weights' rows.
//! 4. [`gptq`]: the weights that read a norm are rounded column by column, each column's
//!    rounding error carried onto the columns not yet rounded (GPTQ, Frantar et al. 2022);
//!    the rest are rounded to nearest.
//!
//! Deterministic, so every machine converts a GGUF to the same bytes, which are the model's
//! name: IEEE-754 `+ − × ÷` and `sqrt` only, in a fixed order (threads split rows, never a
//! sum), and statistics from the bit-exact integer engine. The linear algebra is owned rather
//! than taken from a crate for that reason: a dependency's update that reordered a sum would
//! rename every model.

mod axpy;
pub mod calibration;
pub mod gptq;
pub mod rotation;
pub mod smoothing;

use crate::gguf::Gguf;
use crate::sku::{quantize_groups, quantize_rows, to_q16, Arch, Config, Layer, RopeStyle, Sku, SkuError, TokenizerData, EMBED_GROUP, MAX_VOCAB};
use rayon::prelude::*;

/// One layer's weights as f64, row-major `[out × in]` as in the SKU.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    pub attn_norm: Vec<f64>,
    pub wq: Vec<f64>,
    pub wk: Vec<f64>,
    pub wv: Vec<f64>,
    pub bq: Option<Vec<f64>>,
    pub bk: Option<Vec<f64>>,
    pub bv: Option<Vec<f64>>,
    pub wo: Vec<f64>,
    pub ffn_norm: Vec<f64>,
    pub w_gate: Vec<f64>,
    pub w_up: Vec<f64>,
    pub w_down: Vec<f64>,
}

/// A model before rounding: the SKU's fields with f64 weights.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatModel {
    pub config: Config,
    pub tokenizer: TokenizerData,
    /// `[vocab × d]`: the lookup table.
    pub embed: Vec<f64>,
    pub layers: Vec<FloatLayer>,
    pub out_norm: Vec<f64>,
    /// `[vocab × d]`: `output.weight`, or the tied embedding.
    pub output: Vec<f64>,
}

/// The plain conversion: every weight rounded to nearest, nothing turned or smoothed (the
/// rules every earlier release used; tests pin it).
pub fn plain(g: &Gguf) -> Result<Sku, SkuError> {
    FloatModel::read(g)?.round(None)
}

/// Convert a GGUF as `aivm model convert` does: rotated, calibrated, smoothed, GPTQ-rounded.
pub fn convert(g: &Gguf) -> Result<Sku, SkuError> {
    let mut m = FloatModel::read(g)?;
    rotation::rotate(&mut m);
    let stats = calibration::calibrate(m.round(None)?)?;
    smoothing::smooth_down(&mut m, &stats.down)?;
    m.round(Some(&stats))
}

impl FloatModel {
    /// Read a GGUF file (architecture `llama` or `qwen2`), checking every shape.
    pub fn read(g: &Gguf) -> Result<Self, SkuError> {
        let arch_name = g.str("general.architecture")?.to_string();
        let (arch, rope) = match arch_name.as_str() {
            "llama" => (Arch::Llama, RopeStyle::Pairs),
            "qwen2" => (Arch::Qwen2, RopeStyle::Halves),
            other => return Err(SkuError::Arch(other.into())),
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let u = |k: &str| -> Result<u32, SkuError> {
            let v = g.u64(&key(k))?;
            u32::try_from(v).ok().filter(|&v| v > 0 && v <= MAX_VOCAB).ok_or_else(|| SkuError::Bad(format!("{k} = {v}")))
        };
        let d_model = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let kv_heads = u("attention.head_count_kv")?;
        let tokens: Vec<String> = g.strings("tokenizer.ggml.tokens")?.into_iter().map(String::from).collect();
        let theta = g.f32(&key("rope.freq_base")).unwrap_or(10_000.0) as f64;
        let eps = g.f32(&key("attention.layer_norm_rms_epsilon"))? as f64;
        if !((1.0..1e12).contains(&theta) && (0.0..1.0).contains(&eps)) {
            return Err(SkuError::Bad(format!("rope theta {theta} or eps {eps} out of range")));
        }
        let config = Config {
            arch,
            rope,
            layers: u("block_count")?,
            d_model,
            heads,
            kv_heads,
            head_dim: d_model / heads,
            ffn: u("feed_forward_length")?,
            vocab: tokens.len() as u32,
            max_ctx: u("context_length")?,
            rope_theta: theta.round_ties_even() as u64,
            eps_q32: (eps * 4294967296.0).round_ties_even() as u64,
        };
        config.check()?;
        let types = match g.get("tokenizer.ggml.token_type") {
            Some(crate::gguf::Value::Array(v)) => v.iter().map(|x| x.as_u64().unwrap_or(1) as i32).collect(),
            _ => vec![1; tokens.len()],
        };
        let eos = match tokens.iter().position(|t| t == "<|im_end|>") {
            Some(p) => p as u64,
            None => g.u64("tokenizer.ggml.eos_token_id")?,
        };
        if types.len() != tokens.len() || eos >= tokens.len() as u64 {
            return Err(SkuError::Bad("token types or eos do not match the vocabulary".into()));
        }
        let tokenizer = TokenizerData {
            pre: g.str("tokenizer.ggml.pre").unwrap_or("default").to_string(),
            merges: g.strings("tokenizer.ggml.merges")?.into_iter().map(String::from).collect(),
            eos: eos as u32,
            tokens,
            types,
        };
        let d = d_model as usize;
        let kvd = kv_heads as usize * config.head_dim as usize;
        let f = config.ffn as usize;
        let vocab = config.vocab as usize;
        if !d.is_multiple_of(EMBED_GROUP) {
            return Err(SkuError::Bad(format!("model width {d} is not a multiple of {EMBED_GROUP}")));
        }
        let mat = |name: &str, rows: usize, cols: usize| -> Result<Vec<f64>, SkuError> {
            let t = g.tensor(name)?;
            if t.rows() != (cols, rows) {
                return Err(SkuError::Bad(format!("{name}: shape {:?}, expected {cols}x{rows}", t.dims)));
            }
            Ok(g.dequantize(name)?)
        };
        let vector = |name: &str, n: usize| -> Result<Vec<f64>, SkuError> {
            let v = g.dequantize(name)?;
            if v.len() != n {
                return Err(SkuError::Bad(format!("{name}: {} values, expected {n}", v.len())));
            }
            Ok(v)
        };
        let opt_vec = |name: &str, n: usize| -> Result<Option<Vec<f64>>, SkuError> {
            if g.tensors.contains_key(name) {
                vector(name, n).map(Some)
            } else {
                Ok(None)
            }
        };
        let layers = (0..config.layers)
            .map(|l| {
                let p = |s: &str| format!("blk.{l}.{s}");
                Ok(FloatLayer {
                    attn_norm: vector(&p("attn_norm.weight"), d)?,
                    wq: mat(&p("attn_q.weight"), d, d)?,
                    wk: mat(&p("attn_k.weight"), kvd, d)?,
                    wv: mat(&p("attn_v.weight"), kvd, d)?,
                    bq: opt_vec(&p("attn_q.bias"), d)?,
                    bk: opt_vec(&p("attn_k.bias"), kvd)?,
                    bv: opt_vec(&p("attn_v.bias"), kvd)?,
                    wo: mat(&p("attn_output.weight"), d, d)?,
                    ffn_norm: vector(&p("ffn_norm.weight"), d)?,
                    w_gate: mat(&p("ffn_gate.weight"), f, d)?,
                    w_up: mat(&p("ffn_up.weight"), f, d)?,
                    w_down: mat(&p("ffn_down.weight"), d, f)?,
                })
            })
            .collect::<Result<Vec<_>, SkuError>>()?;
        let output = mat(if g.tensors.contains_key("output.weight") { "output.weight" } else { "token_embd.weight" }, vocab, d)?;
        Ok(FloatModel { embed: mat("token_embd.weight", vocab, d)?, out_norm: vector("output_norm.weight", d)?, output, layers, tokenizer, config })
    }

    /// Round to the SKU: every weight to nearest (`sku::quantize_groups`), or, given the
    /// calibration's `XᵀX`, the GEMMs that read a norm's output by GPTQ.
    pub fn round(&self, stats: Option<&calibration::Statistics>) -> Result<Sku, SkuError> {
        let c = &self.config;
        let (d, f, v) = (c.d_model as usize, c.ffn as usize, c.vocab as usize);
        let kvd = c.kv_heads as usize * c.head_dim as usize;
        if let Some(s) = stats {
            s.check(c.layers as usize, d, f)?;
        }
        let q16 = |v: &[f64]| v.iter().map(|&x| to_q16(x)).collect::<Vec<i32>>();
        // Each layer's two factors once (q, k, v share one; gate, up the other), in parallel.
        let factors: Option<Vec<(Option<gptq::Factor>, Option<gptq::Factor>)>> =
            stats.map(|s| s.attn.par_iter().zip(&s.ffn).map(|(a, f)| (gptq::Factor::new(a, d), gptq::Factor::new(f, d))).collect());
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let reader = |w: &[f64], rows: usize, u: Option<&Option<gptq::Factor>>| match u {
                    Some(u) => gptq::quantize(w, rows, d, u.as_ref()),
                    None => quantize_rows(w, rows, d),
                };
                let (ha, hf) = (factors.as_ref().map(|f| &f[li].0), factors.as_ref().map(|f| &f[li].1));
                Ok(Layer {
                    attn_norm: q16(&l.attn_norm),
                    wq: reader(&l.wq, d, ha)?,
                    wk: reader(&l.wk, kvd, ha)?,
                    wv: reader(&l.wv, kvd, ha)?,
                    bq: l.bq.as_deref().map(q16),
                    bk: l.bk.as_deref().map(q16),
                    bv: l.bv.as_deref().map(q16),
                    wo: quantize_rows(&l.wo, d, d)?,
                    ffn_norm: q16(&l.ffn_norm),
                    w_gate: reader(&l.w_gate, f, hf)?,
                    w_up: reader(&l.w_up, f, hf)?,
                    w_down: quantize_rows(&l.w_down, d, f)?,
                })
            })
            .collect::<Result<Vec<_>, SkuError>>()?;
        Ok(Sku {
            embed: quantize_groups(&self.embed, v, d, EMBED_GROUP)?,
            out_norm: q16(&self.out_norm),
            output: quantize_rows(&self.output, v, d)?,
            layers,
            tokenizer: self.tokenizer.clone(),
            config: self.config.clone(),
        })
    }
}
