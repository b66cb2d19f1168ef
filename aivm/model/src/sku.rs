//! The AIVM model SKU: a GGUF model converted, deterministically, to int8 weights with one
//! scale per output row, Q16 norms and biases, the architecture config and the tokenizer.
//!
//! Its canonical bytes ([`Sku::to_bytes`]) are what MODEL_HASH hashes, so a SKU is named by
//! its content; [`Sku::from_bytes`] checks every length and value, so a corrupt artifact is
//! an error, not a crash. The rounding rule every weight uses is here ([`quantize_groups`]);
//! the conversion from a GGUF that calls it is `crate::convert` (`spec/inference.md`).
//!
//! Longer than most files on purpose: the format's writer and its checking reader sit side
//! by side so that they cannot drift apart.

use super::gguf::GgufError;
use super::quant::Scale;
use crate::hash::model_hash;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"AIVMSKU1";
/// Upper bounds that keep a hostile SKU from asking for absurd allocations.
/// Widths stay within the exact-GEMM bound (`k ≤ MAX_K`), since every width is some GEMM's `k`.
const MAX_DIM: u32 = aivm_tensor::matmul::MAX_K as u32;
const MAX_LAYERS: u32 = 512;
pub(crate) const MAX_VOCAB: u32 = 1 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SkuError {
    #[error("gguf: {0}")]
    Gguf(#[from] GgufError),
    #[error("unsupported architecture {0:?}")]
    Arch(String),
    #[error("bad model: {0}")]
    Bad(String),
    #[error("corrupt SKU at byte {0}: {1}")]
    Corrupt(usize, String),
}

/// Which transformer variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama = 0,
    Qwen2 = 1,
}

/// How RoPE pairs dimensions: GGUF llama weights rotate `(2i, 2i+1)`, qwen2 `(i, i + d/2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    Pairs = 0,
    Halves = 1,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub arch: Arch,
    pub rope: RopeStyle,
    pub layers: u32,
    pub d_model: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    pub vocab: u32,
    pub max_ctx: u32,
    /// RoPE base, rounded to an integer.
    pub rope_theta: u64,
    /// RMSNorm epsilon in Q32 (`round(eps · 2^32)`).
    pub eps_q32: u64,
}

/// An int8 matrix `[rows × cols]` (row = one output) with one scale per `group` consecutive
/// elements of a row: `group = cols` (one scale per row) for GEMM weights, smaller for the
/// embedding lookup table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
    pub q: Vec<i8>,
    pub scales: Vec<Scale>,
    /// What a user of the weights derives from them once (the verifier's packed `Wᵀ`).
    pub derived: Derived,
}

/// A value derived from a matrix once, on first use, and kept with it (type-erased, so this
/// floor does not name its users). Never part of the model: cloning drops it, equality and
/// encoding ignore it.
#[derive(Default)]
pub struct Derived(std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>);

impl Derived {
    /// The value, built by `make` on first use. `None` if a value of another type was kept.
    pub fn get_or_init<T: std::any::Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Derived(built)" } else { "Derived(empty)" })
    }
}

impl QMatrix {
    pub fn row(&self, i: usize) -> &[i8] {
        &self.q[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i` as Q16 values: `round_shift(q · m, −(e + 16))` with each group's scale.
    pub fn row_q16(&self, i: usize, out: &mut [i32]) {
        let per_row = self.cols / self.group;
        for (g, (o, q)) in out.chunks_mut(self.group).zip(self.row(i).chunks(self.group)).enumerate() {
            let s = self.scales[i * per_row + g];
            for (ov, &qv) in o.iter_mut().zip(q) {
                *ov = super::quant::round_shift(qv as i64 * s.m as i64, -(s.e + 16));
            }
        }
    }
}

/// Elements per scale in the embedding lookup table (the GGUF block size).
pub const EMBED_GROUP: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub attn_norm: Vec<i32>,
    pub wq: QMatrix,
    pub wk: QMatrix,
    pub wv: QMatrix,
    /// Q16 biases (qwen2 only).
    pub bq: Option<Vec<i32>>,
    pub bk: Option<Vec<i32>>,
    pub bv: Option<Vec<i32>>,
    pub wo: QMatrix,
    pub ffn_norm: Vec<i32>,
    pub w_gate: QMatrix,
    pub w_up: QMatrix,
    pub w_down: QMatrix,
}

/// Tokenizer data carried in the SKU (byte-level BPE, `super::tokenizer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerData {
    /// `tokenizer.ggml.pre` (selects the pre-tokenizer).
    pub pre: String,
    pub tokens: Vec<String>,
    /// GGUF token types (1 normal, 3 control, ...).
    pub types: Vec<i32>,
    pub merges: Vec<String>,
    pub eos: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sku {
    pub config: Config,
    pub tokenizer: TokenizerData,
    /// Token embeddings for lookup, one scale per [`EMBED_GROUP`] elements.
    pub embed: QMatrix,
    pub layers: Vec<Layer>,
    pub out_norm: Vec<i32>,
    /// The output projection (per-row scales): `output.weight`, or the tied embedding.
    pub output: QMatrix,
}

/// Quantize rows of f64 values with one scale per row.
pub fn quantize_rows(w: &[f64], rows: usize, cols: usize) -> Result<QMatrix, SkuError> {
    quantize_groups(w, rows, cols, cols)
}

/// Quantize each `group` of a row: `s = max|w| / 127` as `m·2^e` (`e = floor(log2 s) − 14`,
/// `m = round_ties_even(s·2^-e)`, renormalized if it reaches 2^15), then
/// `q = clamp(round_ties_even(w / (m·2^e)), −127, 127)`. IEEE-754 f64 operations only.
pub fn quantize_groups(w: &[f64], rows: usize, cols: usize, group: usize) -> Result<QMatrix, SkuError> {
    if group == 0 || !cols.is_multiple_of(group) || w.len() != rows * cols {
        return Err(SkuError::Bad(format!("cannot quantize {rows}x{cols} in groups of {group}")));
    }
    let mut q = Vec::with_capacity(rows * cols);
    let mut scales = Vec::with_capacity(rows * (cols / group));
    for row in w.chunks_exact(group) {
        let a = row.iter().fold(0f64, |m, v| m.max(v.abs()));
        if !a.is_finite() {
            return Err(SkuError::Bad("weight is not finite".into()));
        }
        if a == 0.0 {
            q.extend(std::iter::repeat_n(0i8, group));
            scales.push(Scale::ZERO);
            continue;
        }
        let scale = scale_of_max(a);
        let sv = scale.value();
        q.extend(row.iter().map(|&v| (v / sv).round_ties_even().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    Ok(QMatrix { rows, cols, group, q, scales, derived: Derived::default() })
}

/// `max|w| / 127` as `m·2^e` with a 15-bit `m`, for a finite nonzero maximum.
fn scale_of_max(a: f64) -> Scale {
    let s = a / 127.0;
    let mut e = exponent(s) - 14;
    let mut m = (s * 2f64.powi(-e)).round_ties_even();
    if m >= 32768.0 {
        m = 16384.0;
        e += 1;
    }
    Scale { m: m as i32, e }
}

/// `floor(log2 |x|)` of a finite nonzero f64, exactly (from its bits).
fn exponent(x: f64) -> i32 {
    let bits = x.to_bits();
    let be = ((bits >> 52) & 0x7ff) as i32;
    if be == 0 {
        // Subnormal: find the leading mantissa bit.
        let mant = bits & ((1 << 52) - 1);
        -1074 + 63 - mant.leading_zeros() as i32
    } else {
        be - 1023
    }
}

/// `round_ties_even(v · 2^16)` as i32, saturating.
pub fn to_q16(v: f64) -> i32 {
    (v * 65536.0).round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

impl Sku {
    /// MODEL_HASH of the canonical bytes.
    pub fn hash(&self) -> [u8; 32] {
        model_hash(&self.to_bytes())
    }

    /// Canonical encoding: magic, config, tokenizer, tensors, all little-endian, lengths
    /// before contents (layout in `spec/inference.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.embed.q.len() * 2 + self.layers.len() * (1 << 22));
        w.extend_from_slice(MAGIC);
        let c = &self.config;
        w.push(c.arch as u8);
        w.push(c.rope as u8);
        for v in [c.layers, c.d_model, c.heads, c.kv_heads, c.head_dim, c.ffn, c.vocab, c.max_ctx] {
            w.extend(v.to_le_bytes());
        }
        w.extend(c.rope_theta.to_le_bytes());
        w.extend(c.eps_q32.to_le_bytes());
        let t = &self.tokenizer;
        put_str(&mut w, &t.pre);
        w.extend(t.eos.to_le_bytes());
        w.extend((t.tokens.len() as u32).to_le_bytes());
        for (s, ty) in t.tokens.iter().zip(&t.types) {
            put_str(&mut w, s);
            w.extend(ty.to_le_bytes());
        }
        w.extend((t.merges.len() as u32).to_le_bytes());
        t.merges.iter().for_each(|m| put_str(&mut w, m));
        put_mat(&mut w, &self.embed);
        put_mat(&mut w, &self.output);
        for l in &self.layers {
            put_i32s(&mut w, &l.attn_norm);
            for m in [&l.wq, &l.wk, &l.wv] {
                put_mat(&mut w, m);
            }
            for b in [&l.bq, &l.bk, &l.bv] {
                match b {
                    Some(b) => {
                        w.push(1);
                        put_i32s(&mut w, b);
                    }
                    None => w.push(0),
                }
            }
            put_mat(&mut w, &l.wo);
            put_i32s(&mut w, &l.ffn_norm);
            for m in [&l.w_gate, &l.w_up, &l.w_down] {
                put_mat(&mut w, m);
            }
        }
        put_i32s(&mut w, &self.out_norm);
        w
    }

    /// Decode and check canonical bytes. Re-encoding the result gives the same bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SkuError> {
        let mut r = Reader { b, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(r.err("bad magic"));
        }
        let arch = match r.u8()? {
            0 => Arch::Llama,
            1 => Arch::Qwen2,
            _ => return Err(r.err("bad arch")),
        };
        let rope = match r.u8()? {
            0 => RopeStyle::Pairs,
            1 => RopeStyle::Halves,
            _ => return Err(r.err("bad rope style")),
        };
        let mut u = [0u32; 8];
        for v in &mut u {
            *v = r.u32()?;
        }
        let config = Config {
            arch,
            rope,
            layers: u[0],
            d_model: u[1],
            heads: u[2],
            kv_heads: u[3],
            head_dim: u[4],
            ffn: u[5],
            vocab: u[6],
            max_ctx: u[7],
            rope_theta: r.u64()?,
            eps_q32: r.u64()?,
        };
        config.check().map_err(|e| r.err(&e.to_string()))?;
        let pre = r.string()?;
        let eos = r.u32()?;
        let n = r.u32()? as usize;
        if n != config.vocab as usize || eos as usize >= n {
            return Err(r.err("token count or eos does not match the vocabulary"));
        }
        let (mut tokens, mut types) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            tokens.push(r.string()?);
            types.push(r.u32()? as i32);
        }
        let nm = r.u32()? as usize;
        if nm > MAX_VOCAB as usize {
            return Err(r.err("too many merges"));
        }
        let merges = (0..nm).map(|_| r.string()).collect::<Result<_, _>>()?;
        let tokenizer = TokenizerData { pre, tokens, types, merges, eos };
        let (d, hd) = (config.d_model as usize, config.head_dim as usize);
        let (kvd, f, v) = (config.kv_heads as usize * hd, config.ffn as usize, config.vocab as usize);
        let embed = r.mat(v, d)?;
        let output = r.mat(v, d)?;
        if embed.group != EMBED_GROUP || output.group != d {
            return Err(r.err("embedding or output grouping"));
        }
        let mut layers = Vec::with_capacity(config.layers as usize);
        for _ in 0..config.layers {
            let attn_norm = r.i32s(d)?;
            let (wq, wk, wv) = (r.mat(d, d)?, r.mat(kvd, d)?, r.mat(kvd, d)?);
            let bq = r.opt_i32s(d)?;
            let bk = r.opt_i32s(kvd)?;
            let bv = r.opt_i32s(kvd)?;
            let wo = r.mat(d, d)?;
            let ffn_norm = r.i32s(d)?;
            let (w_gate, w_up, w_down) = (r.mat(f, d)?, r.mat(f, d)?, r.mat(d, f)?);
            if [&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down].iter().any(|m| m.group != m.cols) {
                return Err(r.err("weight matrices need one scale per row"));
            }
            layers.push(Layer { attn_norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, w_gate, w_up, w_down });
        }
        let out_norm = r.i32s(d)?;
        if r.at != b.len() {
            return Err(r.err("trailing bytes"));
        }
        Ok(Sku { config, tokenizer, embed, layers, out_norm, output })
    }
}

impl Config {
    pub(crate) fn check(&self) -> Result<(), SkuError> {
        let bad = |m: &str| Err(SkuError::Bad(m.into()));
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return bad("layer count");
        }
        for v in [self.d_model, self.heads, self.kv_heads, self.head_dim, self.ffn, self.max_ctx] {
            if v == 0 || v > MAX_DIM {
                return bad("dimension out of range");
            }
        }
        if self.vocab == 0 || self.vocab > MAX_VOCAB {
            return bad("vocabulary size");
        }
        if self.heads as u64 * self.head_dim as u64 != self.d_model as u64 || !self.heads.is_multiple_of(self.kv_heads) || !self.head_dim.is_multiple_of(2) {
            return bad("heads do not divide the model width");
        }
        Ok(())
    }
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend((s.len() as u32).to_le_bytes());
    w.extend(s.as_bytes());
}
fn put_i32s(w: &mut Vec<u8>, v: &[i32]) {
    v.iter().for_each(|x| w.extend(x.to_le_bytes()));
}
fn put_mat(w: &mut Vec<u8>, m: &QMatrix) {
    w.extend((m.group as u32).to_le_bytes());
    for s in &m.scales {
        w.extend((s.m as u16).to_le_bytes());
        w.extend((s.e as i16).to_le_bytes());
    }
    w.extend(m.q.iter().map(|&q| q as u8));
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, m: &str) -> SkuError {
        SkuError::Corrupt(self.at, m.into())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], SkuError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SkuError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, SkuError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, SkuError> {
        Ok(self.u32()? as u64 | (self.u32()? as u64) << 32)
    }
    fn string(&mut self) -> Result<String, SkuError> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    fn i32s(&mut self, n: usize) -> Result<Vec<i32>, SkuError> {
        let s = self.take(n.checked_mul(4).ok_or_else(|| self.err("size"))?)?;
        Ok(s.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn opt_i32s(&mut self, n: usize) -> Result<Option<Vec<i32>>, SkuError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i32s(n).map(Some),
            _ => Err(self.err("bad bias flag")),
        }
    }
    /// A matrix whose weight GEMMs need one scale per row unless it says otherwise.
    fn mat(&mut self, rows: usize, cols: usize) -> Result<QMatrix, SkuError> {
        let group = self.u32()? as usize;
        if group == 0 || !cols.is_multiple_of(group) {
            return Err(self.err("bad scale group"));
        }
        let n_scales = rows * (cols / group);
        let mut scales = Vec::with_capacity(n_scales);
        for _ in 0..n_scales {
            let s = self.take(4)?;
            let m = u16::from_le_bytes([s[0], s[1]]) as i32;
            let e = i16::from_le_bytes([s[2], s[3]]) as i32;
            if !(m == 0 && e == 0 || (1 << 14..1 << 15).contains(&m)) {
                return Err(self.err("scale not normalized"));
            }
            scales.push(Scale { m, e });
        }
        let q: Vec<i8> = self.take(rows * cols)?.iter().map(|&b| b as i8).collect();
        if q.contains(&i8::MIN) {
            return Err(self.err("weight -128 is not allowed"));
        }
        Ok(QMatrix { rows, cols, group, q, scales, derived: Derived::default() })
    }
}

/// Small random SKUs for tests that must not need the real model (this crate's, the
/// runtime's market tests). Not a model anyone should serve.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// A small random llama-shaped SKU for tests that must not need the real model.
    pub fn tiny(arch: Arch, seed: u64) -> Sku {
        let mut s = seed | 1;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        let (d, h, kvh, f, v, layers) = (32usize, 4u32, 2u32, 48usize, 64usize, 2u32);
        let hd = d / h as usize;
        let kvd = kvh as usize * hd;
        let mut mat = |r: usize, c: usize| quantize_rows(&(0..r * c).map(|_| rnd() * 0.3).collect::<Vec<_>>(), r, c).unwrap();
        let qwen = arch == Arch::Qwen2;
        let layers_v = (0..layers)
            .map(|i| Layer {
                attn_norm: vec![65536 + i as i32 * 1000; d],
                wq: mat(d, d),
                wk: mat(kvd, d),
                wv: mat(kvd, d),
                bq: qwen.then(|| vec![3000; d]),
                bk: qwen.then(|| vec![-2000; kvd]),
                bv: qwen.then(|| vec![1000; kvd]),
                wo: mat(d, d),
                ffn_norm: vec![70000; d],
                w_gate: mat(f, d),
                w_up: mat(f, d),
                w_down: mat(d, f),
            })
            .collect();
        let tokens: Vec<String> = (0..v).map(|i| format!("t{i}")).collect();
        Sku {
            config: Config {
                arch,
                rope: if qwen { RopeStyle::Halves } else { RopeStyle::Pairs },
                layers,
                d_model: d as u32,
                heads: h,
                kv_heads: kvh,
                head_dim: hd as u32,
                ffn: f as u32,
                vocab: v as u32,
                max_ctx: 256,
                rope_theta: 10_000,
                eps_q32: 42950,
            },
            tokenizer: TokenizerData { pre: "smollm".into(), types: vec![1; v], tokens, merges: vec![], eos: 2 },
            embed: quantize_groups(&(0..v * d).map(|i| ((i * 7919) % 201) as f64 / 400.0 - 0.25).collect::<Vec<_>>(), v, d, EMBED_GROUP).unwrap(),
            output: mat(v, d),
            layers: layers_v,
            out_norm: vec![65536; d],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::testing::tiny;
    use super::*;

    #[test]
    fn canonical_bytes_roundtrip() {
        for arch in [Arch::Llama, Arch::Qwen2] {
            let sku = tiny(arch, 7);
            let b = sku.to_bytes();
            let back = Sku::from_bytes(&b).unwrap();
            assert_eq!(back, sku);
            assert_eq!(back.hash(), sku.hash());
        }
        assert_ne!(tiny(Arch::Llama, 7).hash(), tiny(Arch::Llama, 8).hash());
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let b = tiny(Arch::Qwen2, 3).to_bytes();
        for cut in (0..b.len()).step_by(97) {
            assert!(Sku::from_bytes(&b[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(Sku::from_bytes(&extra).is_err());
        let mut bad = b.clone();
        bad[8] = 9;
        assert!(Sku::from_bytes(&bad).is_err());
    }

    #[test]
    fn row_quantization_rule() {
        let m = quantize_rows(&[0.5, -1.0, 0.25, 0.0, 0.0, 0.0], 2, 3).unwrap();
        assert_eq!(m.row(0), &[64, -127, 32]);
        assert_eq!(m.scales[1], Scale::ZERO);
        let s = m.scales[0];
        assert!((1 << 14..1 << 15).contains(&s.m));
        assert!((s.value() - 1.0 / 127.0).abs() < 1e-6);
        assert_eq!(exponent(1.0), 0);
        assert_eq!(exponent(0.75), -1);
        assert_eq!(exponent(f64::MIN_POSITIVE / 4.0), -1024);
    }
}
