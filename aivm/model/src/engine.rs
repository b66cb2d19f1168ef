//! The integer-only forward pass (`spec/inference.md`) and greedy generation over a batch of
//! prompts. Every GEMM goes through one function that hands its operands to a [`GemmSink`],
//! which is how the worker's commitments ([`super::commit`]) see exactly what was computed.
//!
//! Over 500 lines with its tests: the forward pass is one walk through the layers (attention
//! with its KV cache, then the feed-forward), kept in one place so the GEMM order that the
//! commitments and the audit's schedule rely on is visible at once. The layer math is `layer.rs`.

use super::kernels::{self, Isa};
use super::layer::{argmax, softmax_fold};
use super::quant::{self, round_shift, Scale};
use super::sku::{QMatrix, RopeStyle, Sku};
use super::tokenizer::Tokenizer;
use aivm_backend::{Backend, BackendError, CpuBackend, Weights};
use aivm_tensor::matmul::{SimdPath, MAX_K};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InferError {
    #[error("empty prompt")]
    EmptyPrompt,
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
    #[error("context of {0} tokens exceeds the model's {1}")]
    TooLong(usize, usize),
    #[error("batch of {0} prompts exceeds {1}")]
    BatchTooLarge(usize, usize),
    /// The backend (device) failed: a node fault; the run produced nothing.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Which product a GEMM is. Weight GEMMs are `Y = X·Wᵀ`; `Scores` is `Q·Kᵀ` and `Mix` is `P·V`
/// (right operand from the KV cache, recorded with the GEMM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GemmKind {
    Q = 0,
    K = 1,
    V = 2,
    Scores = 3,
    Mix = 4,
    O = 5,
    Gate = 6,
    Up = 7,
    Down = 8,
    Logits = 9,
}

impl GemmKind {
    pub const ALL: [GemmKind; 10] = [Self::Q, Self::K, Self::V, Self::Scores, Self::Mix, Self::O, Self::Gate, Self::Up, Self::Down, Self::Logits];
    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(c as usize).copied()
    }
    pub fn name(self) -> &'static str {
        ["q", "k", "v", "scores", "mix", "o", "gate", "up", "down", "logits"][self as usize]
    }
    pub fn is_weight(self) -> bool {
        !matches!(self, Self::Scores | Self::Mix)
    }
}

/// Where a GEMM sits in the run: decode step (0 = the prompt), layer, kind, and for attention
/// GEMMs the sequence and KV head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GemmId {
    pub step: u32,
    pub layer: u32,
    pub kind: GemmKind,
    pub seq: u32,
    pub head: u32,
}

/// One GEMM's operands as computed: `x [m×k]` with each row's scale, `y [m×n]`, and for
/// attention the cache operand `rhs` (`K [n×k]` for scores, `V [k×n]` for mix). The row
/// scale is what turns that row's accumulators into Q16 (`dequant`); for mix rows it is the
/// softmax output scale with its extra exponent folded into `e`.
pub struct GemmRecord<'a> {
    pub id: GemmId,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub x: &'a [i8],
    pub x_scales: &'a [Scale],
    pub y: &'a [i32],
    pub rhs: Option<&'a [i8]>,
}

/// Receives every GEMM of a run, in execution order. `Send`: a run's steps may execute on a
/// worker of the thread pool (see [`Engine::generate`]).
pub trait GemmSink: Send {
    fn gemm(&mut self, rec: &GemmRecord<'_>);

    /// Whether the run's steps may execute on a worker of rayon's pool. A sink whose records
    /// feed work on that same pool (the committed run's hashing) says no: a worker waiting in
    /// a step's fork-join would steal that work and stall the step behind it (committed runs
    /// measured 25–70 % slower on two threads).
    fn steps_on_pool(&self) -> bool {
        true
    }

    /// Called before each step's first GEMM with the step's rows: `(sequence, new rows)` of
    /// each active sequence, in row order. A sink that keeps each sequence's GEMMs apart
    /// ([`crate::commit::run_committed_each`]) splits the weight GEMMs' rows by it.
    fn begin_step(&mut self, _rows: &[(usize, usize)]) {}
}

/// A sink that keeps nothing.
pub struct NoTrace;
impl GemmSink for NoTrace {
    fn gemm(&mut self, _: &GemmRecord<'_>) {}
}

/// Execution choices that never change results, only speed: where the weight GEMMs run, and
/// which instantiation of the host-side kernels (norms, SwiGLU, attention rows) runs.
#[derive(Clone)]
pub struct Options {
    pub backend: Arc<dyn Backend>,
    pub isa: Isa,
}

impl Options {
    /// The CPU backend on `path` with `threads` GEMM threads; the host kernels on the
    /// matching instantiation: baseline for the scalar path, AVX2 for AVX2's, else the widest.
    pub fn cpu(threads: usize, path: SimdPath) -> Self {
        let isa = match path {
            SimdPath::Scalar => Isa::Baseline,
            SimdPath::Avx2 => Isa::Avx2,
            SimdPath::Avx512Vnni => Isa::detect(),
        };
        Self { backend: Arc::new(CpuBackend { path, threads: threads.max(1) }), isa }
    }

    /// `backend` for the GEMMs, the widest host kernels.
    pub fn on(backend: Arc<dyn Backend>) -> Self {
        Self { backend, isa: Isa::detect() }
    }
}

impl Default for Options {
    /// The CPU, fastest path, all threads.
    fn default() -> Self {
        Self::on(Arc::new(CpuBackend::default()))
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, host kernels {:?}", self.backend.describe(), self.isa)
    }
}

/// Largest batch one call may run.
pub const MAX_BATCH: usize = 64;
/// Attention scores (rows × context) below which a group's rows are not spread over the pool:
/// a decode step (a few rows) finishes before a worker would wake.
const PARALLEL_MIN_SCORES: usize = 1 << 14;
/// Rows (tokens) from which a step's row-wise host kernels (norms, dequantization, SwiGLU)
/// run on the pool, in blocks of [`ROW_BLOCK`]: a prompt's; a decode step's few rows stay on
/// the calling thread. Rows are independent, so the split never changes a result.
const PARALLEL_MIN_ROWS: usize = 32;
/// Query rows of a KV group from which attention's scores and mix run as int8 GEMMs (packing
/// K and Vᵀ per group costs a pass over the cache: worth it for a prompt, not for a decode
/// step's few rows).
const ATTENTION_GEMM_MIN_ROWS: usize = 16;
const ROW_BLOCK: usize = 8;

/// One layer's weight matrices, prepared by the backend (packed, or on the device).
struct PackedLayer {
    q: Weights,
    k: Weights,
    v: Weights,
    o: Weights,
    gate: Weights,
    up: Weights,
    down: Weights,
}

/// A loaded model ready to run.
pub struct Engine {
    pub sku: Arc<Sku>,
    /// MODEL_HASH of `sku`, computed once.
    pub sku_hash: [u8; 32],
    pub tokenizer: Tokenizer,
    layers: Vec<PackedLayer>,
    lm: Weights,
    rope_turns: Vec<u64>,
    /// `1/√head_dim` as a scale (`Scale::ratio(2^32, isqrt(head_dim·2^64))`).
    attn_scale: Scale,
    pub opts: Options,
}

/// One sequence's KV cache for one layer and KV head: int8 rows `[pos][head_dim]` and their
/// scales. One per head keeps each head's rows contiguous: they are the attention GEMMs'
/// right operand as is.
#[derive(Default)]
struct Cache {
    k: Vec<i8>,
    ks: Vec<Scale>,
    v: Vec<i8>,
    vs: Vec<Scale>,
}

/// Attention's large buffers, reused by every KV group and layer of a step (a 1 000-token
/// prompt's scores are 6 MB a group, and zeroing them afresh was serial work).
#[derive(Default)]
struct AttnScratch {
    /// `Q·Kᵀ`, every element written before it is read.
    scores: Vec<i32>,
    /// The quantized probabilities; each row is written in full (zeros past its last valid
    /// position, which the mix GEMM multiplies).
    pq: Vec<i8>,
}

/// One KV group's attention results ([`Engine::attention_head`]); its scores and
/// probabilities stay in the [`AttnScratch`] it was given.
struct Head {
    xq: Vec<i8>,
    sq: Vec<Scale>,
    out_scale: Vec<Scale>,
    mixed: Vec<i32>,
}

impl Engine {
    /// Load `sku`, computing its MODEL_HASH (a pass over its canonical bytes).
    pub fn new(sku: Arc<Sku>, opts: Options) -> Result<Self, BackendError> {
        let hash = sku.hash();
        Self::with_hash(sku, hash, opts)
    }

    /// Load `sku` whose MODEL_HASH the caller already checked (the artifact store does), and
    /// hand its weights to the backend (an OpenCL device may be out of memory).
    pub fn with_hash(sku: Arc<Sku>, sku_hash: [u8; 32], opts: Options) -> Result<Self, BackendError> {
        let b = &opts.backend;
        let pack = |m: &QMatrix| b.prepare(&m.q, m.rows, m.cols);
        let layers = sku
            .layers
            .iter()
            .map(|l| {
                Ok(PackedLayer {
                    q: pack(&l.wq)?,
                    k: pack(&l.wk)?,
                    v: pack(&l.wv)?,
                    o: pack(&l.wo)?,
                    gate: pack(&l.w_gate)?,
                    up: pack(&l.w_up)?,
                    down: pack(&l.w_down)?,
                })
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        let lm = pack(&sku.output)?;
        let c = &sku.config;
        let hd = c.head_dim as u128;
        Ok(Self {
            tokenizer: Tokenizer::new(&sku.tokenizer),
            lm,
            layers,
            rope_turns: quant::rope_turns(c.rope_theta, c.head_dim as usize / 2),
            attn_scale: Scale::ratio(1 << 32, quant::isqrt(hd << 64)),
            opts,
            sku_hash,
            sku,
        })
    }

    /// Bytes of int8 weights one pass of the model reads: every layer's projections and the
    /// output projection (what a decode step streams from memory).
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|p| (p.n * p.k) as u64).sum::<u64>()).sum();
        layers + (self.lm.n * self.lm.k) as u64
    }

    /// The gas MODEL_INFER charges for one prompt of `prompt` tokens generating up to
    /// `max_new` under `price(weight_macs, attention_macs, tokens, weight_bytes, max_new)`
    /// ([`macs_bound`](Self::macs_bound), split; the tokens; one pass over the weights for the
    /// prompt plus one per new token). `None` on overflow.
    pub fn infer_gas(&self, prompt: u64, max_new: u64, price: impl Fn(u64, u64, u64, u64, u64) -> Option<u64>) -> Option<u64> {
        let (weights, attention) = self.macs_split(prompt, max_new)?;
        price(weights, attention, prompt.checked_add(max_new)?, self.weight_bytes(), max_new)
    }

    /// An upper bound on the multiply-accumulates of one prompt of `prompt` tokens generating
    /// up to `max_new` (what MODEL_INFER charges before running). `None` on overflow.
    pub fn macs_bound(&self, prompt: u64, max_new: u64) -> Option<u64> {
        let (w, a) = self.macs_split(prompt, max_new)?;
        w.checked_add(a)
    }

    /// [`macs_bound`](Self::macs_bound) as (weight GEMMs, attention): attention's integer
    /// softmax and per-row kernels cost several times a weight GEMM's MAC, so it has its own
    /// price (`spec/gas.md`).
    pub fn macs_split(&self, prompt: u64, max_new: u64) -> Option<(u64, u64)> {
        let c = &self.sku.config;
        let per_token: u64 =
            self.layers.iter().map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|p| (p.n * p.k) as u64).sum::<u64>()).sum();
        let t = prompt.checked_add(max_new)?;
        // Attention: position p attends to p+1 keys, scores and mix each d MACs per key.
        let attn = t.checked_mul(t + 1)? / 2 * 2 * c.d_model as u64 * c.layers as u64;
        let lm = (self.lm.n * self.lm.k) as u64 * max_new.max(1);
        Some((per_token.checked_mul(t)?.checked_add(lm)?, attn))
    }

    /// Greedy generation for a batch of prompts (token ids). Each sequence stops at the
    /// end-of-turn token (not included) or after `max_new` tokens.
    pub fn generate(&self, prompts: &[Vec<u32>], max_new: usize, sink: &mut dyn GemmSink) -> Result<Vec<Vec<u32>>, InferError> {
        let c = &self.sku.config;
        if prompts.len() > MAX_BATCH {
            return Err(InferError::BatchTooLarge(prompts.len(), MAX_BATCH));
        }
        let limit = (c.max_ctx as usize).min(MAX_K);
        for p in prompts {
            if p.is_empty() {
                return Err(InferError::EmptyPrompt);
            }
            if let Some(&t) = p.iter().find(|&&t| t >= c.vocab) {
                return Err(InferError::BadToken(t));
            }
            let total = p.len().saturating_add(max_new);
            if total > limit {
                return Err(InferError::TooLong(total, limit));
            }
        }
        let on_pool = sink.steps_on_pool();
        self.on_pool(on_pool, || {
            // caches[seq][layer][kv head]
            let mut caches: Vec<Vec<Vec<Cache>>> =
                prompts.iter().map(|_| (0..c.layers).map(|_| (0..c.kv_heads).map(|_| Cache::default()).collect()).collect()).collect();
            let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
            let mut active: Vec<usize> = (0..prompts.len()).collect();
            let mut feed: Vec<Vec<u32>> = prompts.to_vec();
            let mut step = 0u32;
            while !active.is_empty() && (step as usize) < max_new {
                let next = self.forward(step, &active, &feed, &mut caches, sink)?;
                let mut still = Vec::new();
                for (&s, &tok) in active.iter().zip(&next) {
                    if tok == self.tokenizer.eos {
                        continue;
                    }
                    out[s].push(tok);
                    feed[s] = vec![tok];
                    if out[s].len() < max_new {
                        still.push(s);
                    }
                }
                active = still;
                step += 1;
            }
            Ok(out)
        })
    }

    /// Run `f` (a run's forward steps) on a worker of rayon's pool when this engine uses
    /// several host threads and the sink allows it ([`GemmSink::steps_on_pool`]). Each step
    /// forks some 25 parallel sections a layer; from a thread outside the pool each one is a
    /// job injected into the pool and waited for on a lock, which cost ~100 µs a section in
    /// this VM (a 1536-row scores GEMM took 2× longer on two threads than on one), while from
    /// a worker it is a fork-join the caller takes part in. From outside the pool the steps
    /// run as a [`team`], which also keeps the other workers from falling asleep between
    /// sections. The results do not depend on which thread runs what.
    fn on_pool<R: Send>(&self, allowed: bool, f: impl FnOnce() -> R + Send) -> R {
        if allowed && self.opts.backend.host_threads() > 1 && rayon::current_num_threads() > 1 {
            if rayon::current_thread_index().is_none() {
                return team(self.opts.backend.host_threads(), f);
            }
            rayon::scope(|_| f())
        } else {
            f()
        }
    }

    /// Teacher forcing: the greedy next token after the prompt, then after each of `forced`
    /// in turn (fed whatever was predicted), one per forced token. `predicted[j]` is the
    /// model's choice where `forced[j]` comes; comparing them measures agreement with the
    /// model that produced `forced` (`infer --quality`). Not part of consensus.
    pub fn teacher_forced(&self, prompt: &[u32], forced: &[u32]) -> Result<Vec<u32>, InferError> {
        let c = &self.sku.config;
        if prompt.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        if let Some(&t) = prompt.iter().chain(forced).find(|&&t| t >= c.vocab) {
            return Err(InferError::BadToken(t));
        }
        let limit = (c.max_ctx as usize).min(MAX_K);
        let total = prompt.len().saturating_add(forced.len());
        if total > limit {
            return Err(InferError::TooLong(total, limit));
        }
        self.on_pool(true, || {
            let mut caches: Vec<Vec<Vec<Cache>>> = vec![(0..c.layers).map(|_| (0..c.kv_heads).map(|_| Cache::default()).collect()).collect()];
            let mut predicted = Vec::with_capacity(forced.len());
            let mut feed = vec![prompt.to_vec()];
            for (step, &t) in forced.iter().enumerate() {
                predicted.extend(self.forward(step as u32, &[0], &feed, &mut caches, &mut NoTrace)?);
                feed[0] = vec![t];
            }
            Ok(predicted)
        })
    }

    /// One forward step: `feed[s]` new tokens for each active sequence `s`; returns the greedy
    /// next token of each.
    fn forward(&self, step: u32, active: &[usize], feed: &[Vec<u32>], caches: &mut [Vec<Vec<Cache>>], sink: &mut dyn GemmSink) -> Result<Vec<u32>, InferError> {
        let c = &self.sku.config;
        let (d, hd) = (c.d_model as usize, c.head_dim as usize);
        let kvh = c.kv_heads as usize;
        let kvd = kvh * hd;
        let f = c.ffn as usize;
        // Rows: the new tokens of each active sequence, in order; their positions.
        let mut rows: Vec<(usize, usize, u32)> = Vec::new(); // (seq, position, token)
        for &s in active {
            let start = caches[s][0][0].ks.len();
            rows.extend(feed[s].iter().enumerate().map(|(i, &t)| (s, start + i, t)));
        }
        let m = rows.len();
        sink.begin_step(&active.iter().map(|&s| (s, feed[s].len())).collect::<Vec<_>>());
        // Each row's RoPE rotations, computed once for all layers and for both q and k
        // (they depend only on the position).
        let trig = self.rope_table(&rows);
        let half = self.rope_turns.len();
        let mut x = vec![0i32; m * d];
        for (r, &(_, _, t)) in rows.iter().enumerate() {
            self.sku.embed.row_q16(t as usize, &mut x[r * d..(r + 1) * d]);
        }
        let mut xq = vec![0i8; m * d];
        let mut sx = vec![Scale::ZERO; m];
        let mut h = vec![0i32; m * d];
        // GEMM outputs and the rows derived from them live in buffers reused by every layer:
        // a backend's GEMM overwrites all of `y`, so only a buffer's first use is zeroed (a
        // prompt step zeroed ~20 MB a layer on the calling thread, ~5 % of it at two threads).
        let gemm_rec = |sink: &mut dyn GemmSink, id: GemmId, xq: &[i8], xs: &[Scale], w: &Weights, y: &mut Vec<i32>| -> Result<(), BackendError> {
            let m = xq.len() / w.k;
            y.resize(m * w.n, 0);
            self.opts.backend.gemm(xq, m, w, y)?;
            sink.gemm(&GemmRecord { id, m, k: w.k, n: w.n, x: xq, x_scales: xs, y, rhs: None });
            Ok(())
        };
        let wid = |layer: u32, kind| GemmId { step, layer, kind, seq: 0, head: 0 };
        let isa = self.opts.isa;
        let par = self.opts.backend.host_threads() > 1 && m >= PARALLEL_MIN_ROWS;
        // Steps running on a pool worker (a team's): a decode step's attention units may then
        // run side by side without injecting jobs into the pool.
        let on_team = self.opts.backend.host_threads() > 1 && rayon::current_thread_index().is_some();
        // `y` (GEMM accumulators, rows of `sw.len()`) to Q16 into `out`: with `add`, onto it.
        let dequant_into = |out: &mut [i32], y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>, add: bool| {
            let n = sw.len();
            if par {
                use rayon::prelude::*;
                out.par_chunks_mut(ROW_BLOCK * n).enumerate().for_each(|(b, o)| {
                    let r0 = b * ROW_BLOCK;
                    let rows = o.len() / n;
                    kernels::dequant_into(isa, o, &y[r0 * n..(r0 + rows) * n], &sx[r0..r0 + rows], sw, bias, add);
                });
            } else {
                kernels::dequant_into(isa, out, y, sx, sw, bias, add);
            }
        };
        let dequant_rows = |out: &mut Vec<i32>, y: &[i32], sx: &[Scale], sw: &[Scale], bias: Option<&[i32]>| {
            out.resize(y.len(), 0);
            dequant_into(out, y, sx, sw, bias, false);
        };
        let norm_row = |x: &[i32], gain: &[i32], h: &mut [i32], xq: &mut [i8], s: &mut Scale| {
            kernels::rms_norm(isa, x, gain, c.eps_q32, h);
            *s = kernels::quantize(isa, h, xq);
        };
        let norm_quantize = |x: &[i32], gain: &[i32], h: &mut [i32], xq: &mut [i8], sx: &mut [Scale]| {
            if par && sx.len() >= PARALLEL_MIN_ROWS {
                use rayon::prelude::*;
                h.par_chunks_mut(d)
                    .zip(xq.par_chunks_mut(d))
                    .zip(sx.par_iter_mut())
                    .enumerate()
                    .with_min_len(ROW_BLOCK)
                    .for_each(|(r, ((h, xq), s))| norm_row(&x[r * d..(r + 1) * d], gain, h, xq, s));
            } else {
                for (r, s) in sx.iter_mut().enumerate() {
                    norm_row(&x[r * d..(r + 1) * d], gain, &mut h[r * d..(r + 1) * d], &mut xq[r * d..(r + 1) * d], s);
                }
            }
        };
        let swiglu_quantize = |yg: &[i32], yu: &[i32], sx: &[Scale], sg: &[Scale], su: &[Scale], hq: &mut [i8], sh: &mut [Scale]| {
            if par {
                use rayon::prelude::*;
                hq.par_chunks_mut(ROW_BLOCK * f).zip(sh.par_chunks_mut(ROW_BLOCK)).enumerate().for_each(|(b, (hq, sh))| {
                    let (r0, rows) = (b * ROW_BLOCK, sh.len());
                    kernels::swiglu_quantize(isa, &yg[r0 * f..(r0 + rows) * f], &yu[r0 * f..(r0 + rows) * f], &sx[r0..r0 + rows], sg, su, hq, sh);
                });
            } else {
                kernels::swiglu_quantize(isa, yg, yu, sx, sg, su, hq, sh);
            }
        };
        let (mut yq, mut yk, mut yv, mut yo, mut yg, mut yu, mut yd) = Default::default();
        let (mut q, mut k, mut v): (Vec<i32>, Vec<i32>, Vec<i32>) = Default::default();
        let mut attn = vec![0i32; m * d];
        let mut scratch = AttnScratch::default();
        let (mut hq, mut sh) = (vec![0i8; m * f], vec![Scale::ZERO; m]);
        for (li, (lw, pl)) in self.sku.layers.iter().zip(&self.layers).enumerate() {
            let l = li as u32;
            // Attention block.
            norm_quantize(&x, &lw.attn_norm, &mut h, &mut xq, &mut sx);
            gemm_rec(sink, wid(l, GemmKind::Q), &xq, &sx, &pl.q, &mut yq)?;
            gemm_rec(sink, wid(l, GemmKind::K), &xq, &sx, &pl.k, &mut yk)?;
            gemm_rec(sink, wid(l, GemmKind::V), &xq, &sx, &pl.v, &mut yv)?;
            dequant_rows(&mut q, &yq, &sx, &lw.wq.scales, lw.bq.as_deref());
            dequant_rows(&mut k, &yk, &sx, &lw.wk.scales, lw.bk.as_deref());
            dequant_rows(&mut v, &yv, &sx, &lw.wv.scales, lw.bv.as_deref());
            if par {
                use rayon::prelude::*;
                q.par_chunks_mut(d).zip(k.par_chunks_mut(kvd)).zip(trig.par_chunks(half.max(1))).with_min_len(ROW_BLOCK).for_each(|((qr, kr), t)| {
                    self.rope(qr, t);
                    self.rope(kr, t);
                });
            } else {
                for r in 0..m {
                    let t = &trig[r * half..(r + 1) * half];
                    self.rope(&mut q[r * d..(r + 1) * d], t);
                    self.rope(&mut k[r * kvd..(r + 1) * kvd], t);
                }
            }
            // Append K and V to the caches, quantized per (token, kv head): each sequence's
            // rows are contiguous, so its new cache rows are quantized in place (on the pool
            // for a prompt).
            let mut r0 = 0;
            for &s in active {
                let n_new = feed[s].len();
                for (g, cache) in caches[s][li].iter_mut().enumerate() {
                    for (src, rows_q, scales) in [(&k, &mut cache.k, &mut cache.ks), (&v, &mut cache.v, &mut cache.vs)] {
                        let (at, sat) = (rows_q.len(), scales.len());
                        rows_q.resize(at + n_new * hd, 0);
                        scales.resize(sat + n_new, Scale::ZERO);
                        let row = |r: usize, dst: &mut [i8], sc: &mut Scale| {
                            let from = (r0 + r) * kvd + g * hd;
                            *sc = kernels::quantize(isa, &src[from..from + hd], dst);
                        };
                        if par {
                            use rayon::prelude::*;
                            rows_q[at..]
                                .par_chunks_mut(hd)
                                .zip(scales[sat..].par_iter_mut())
                                .enumerate()
                                .with_min_len(ROW_BLOCK)
                                .for_each(|(r, (d, sc))| row(r, d, sc));
                        } else {
                            rows_q[at..].chunks_mut(hd).zip(scales[sat..].iter_mut()).enumerate().for_each(|(r, (d, sc))| row(r, d, sc));
                        }
                    }
                }
                r0 += n_new;
            }
            // Every row's every head is written below. A decode step's (sequence, KV group)
            // pairs run side by side on a team's workers (each is a few rows against the
            // cache, too small to split inside), then are recorded in order.
            if on_team && !par && active.len() * kvh > 1 {
                let mut units = Vec::with_capacity(active.len() * kvh);
                let mut r0 = 0;
                for &s in active {
                    let n_new = feed[s].len();
                    units.extend((0..kvh).map(|g| (s, r0, n_new, g)));
                    r0 += n_new;
                }
                let caches = &*caches;
                let heads: Vec<(Head, AttnScratch)> = {
                    use rayon::prelude::*;
                    units
                        .par_iter()
                        .map(|&(s, r0, n_new, g)| {
                            let mut own = AttnScratch::default();
                            let head = self.attention_head(g, &caches[s][li][g], &q[r0 * d..(r0 + n_new) * d], &rows[r0..r0 + n_new], &mut own);
                            (head, own)
                        })
                        .collect()
                };
                for (&(s, r0, n_new, g), (head, own)) in units.iter().zip(&heads) {
                    let at = (step, l, s as u32, g);
                    self.attention_emit(sink, at, &caches[s][li][g], head, own, n_new, &mut attn[r0 * d..(r0 + n_new) * d]);
                }
            } else {
                let mut r0 = 0;
                for &s in active {
                    let n_new = feed[s].len();
                    self.attention(
                        sink,
                        step,
                        l,
                        s as u32,
                        &caches[s][li],
                        &q[r0 * d..(r0 + n_new) * d],
                        &rows[r0..r0 + n_new],
                        &mut attn[r0 * d..(r0 + n_new) * d],
                        &mut scratch,
                    );
                    r0 += n_new;
                }
            }
            if par {
                use rayon::prelude::*;
                xq.par_chunks_mut(d)
                    .zip(sx.par_iter_mut())
                    .enumerate()
                    .with_min_len(ROW_BLOCK)
                    .for_each(|(r, (xq, s))| *s = kernels::quantize(isa, &attn[r * d..(r + 1) * d], xq));
            } else {
                for r in 0..m {
                    sx[r] = kernels::quantize(isa, &attn[r * d..(r + 1) * d], &mut xq[r * d..(r + 1) * d]);
                }
            }
            gemm_rec(sink, wid(l, GemmKind::O), &xq, &sx, &pl.o, &mut yo)?;
            dequant_into(&mut x, &yo, &sx, &lw.wo.scales, None, true);
            // Feed-forward block.
            norm_quantize(&x, &lw.ffn_norm, &mut h, &mut xq, &mut sx);
            gemm_rec(sink, wid(l, GemmKind::Gate), &xq, &sx, &pl.gate, &mut yg)?;
            gemm_rec(sink, wid(l, GemmKind::Up), &xq, &sx, &pl.up, &mut yu)?;
            swiglu_quantize(&yg, &yu, &sx, &lw.w_gate.scales, &lw.w_up.scales, &mut hq, &mut sh);
            gemm_rec(sink, wid(l, GemmKind::Down), &hq, &sh, &pl.down, &mut yd)?;
            dequant_into(&mut x, &yd, &sh, &lw.w_down.scales, None, true);
        }
        // Logits for the last row of each sequence.
        let mut last = Vec::new();
        let mut r0 = 0;
        for &s in active {
            r0 += feed[s].len();
            last.extend_from_slice(&x[(r0 - 1) * d..r0 * d]);
        }
        let n = active.len();
        let (mut lq, mut ls) = (vec![0i8; n * d], vec![Scale::ZERO; n]);
        let mut tmp = vec![0i32; n * d];
        norm_quantize(&last, &self.sku.out_norm, &mut tmp, &mut lq, &mut ls);
        let mut logits = Vec::new();
        gemm_rec(sink, wid(c.layers, GemmKind::Logits), &lq, &ls, &self.lm, &mut logits)?;
        let v = c.vocab as usize;
        Ok((0..n).map(|i| argmax(&logits[i * v..(i + 1) * v], &self.sku.output.scales)).collect())
    }

    /// Rotate a Q16 row of heads in place at position `pos`.
    /// `(cos, sin)` of every rotation of every row (`quant::cos_sin_q30` of position ×
    /// turns), row-major: what [`Engine::rope`] applies.
    fn rope_table(&self, rows: &[(usize, usize, u32)]) -> Vec<(i32, i32)> {
        rows.iter().flat_map(|&(_, pos, _)| self.rope_turns.iter().map(move |&t| quant::cos_sin_q30((pos as u64).wrapping_mul(t)))).collect()
    }

    /// Rotate every head of `row` by one position's `(cos, sin)` pairs ([`Engine::rope_table`]).
    fn rope(&self, row: &mut [i32], trig: &[(i32, i32)]) {
        let halves = self.sku.config.rope == RopeStyle::Halves;
        kernels::rope(self.opts.isa, row, trig, self.sku.config.head_dim as usize, halves);
    }

    /// Causal attention of one sequence's new rows, per KV head group: scores GEMM, integer
    /// softmax with V's scales folded into the probabilities, mix GEMM.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        sink: &mut dyn GemmSink,
        step: u32,
        layer: u32,
        seq: u32,
        caches: &[Cache],
        q: &[i32],
        rows: &[(usize, usize, u32)],
        out: &mut [i32],
        scratch: &mut AttnScratch,
    ) {
        let kvh = self.sku.config.kv_heads as usize;
        for (g, cache) in caches.iter().enumerate().take(kvh) {
            let head = self.attention_head(g, cache, q, rows, scratch);
            self.attention_emit(sink, (step, layer, seq, g), cache, &head, scratch, rows.len(), out);
        }
    }

    /// One KV group's attention over one sequence's new rows ([`Engine::attention`]): the Q
    /// rows quantized, the scores (into `scratch`), the softmax (into `scratch`) and the mix.
    /// Nothing is recorded and `out` is not touched ([`Engine::attention_emit`] does both),
    /// so a decode step's groups can run side by side.
    fn attention_head(&self, g: usize, cache: &Cache, q: &[i32], rows: &[(usize, usize, u32)], scratch: &mut AttnScratch) -> Head {
        let c = &self.sku.config;
        let (hd, heads, kvh) = (c.head_dim as usize, c.heads as usize, c.kv_heads as usize);
        let (d, group) = (heads * hd, heads / kvh);
        let n_new = rows.len();
        let mr = n_new * group;
        let isa = self.opts.isa;
        let ctx = cache.ks.len();
        // Rows are independent and each is computed by the same code wherever it runs, so
        // a long prompt's rows run on the pool; a decode step's few rows stay here.
        let par = self.opts.backend.host_threads() > 1 && mr * ctx >= PARALLEL_MIN_SCORES;
        // Q rows of this group: (token, head in group), scaled by 1/√hd.
        let mut xq = vec![0i8; mr * hd];
        let mut sq = vec![Scale::ZERO; mr];
        let q_row = |r: usize, xr: &mut [i8], s: &mut Scale| {
            let (t, head) = (r / group, g * group + r % group);
            *s = kernels::quantize(isa, &q[t * d + head * hd..t * d + (head + 1) * hd], xr).times(self.attn_scale);
        };
        if par {
            use rayon::prelude::*;
            xq.par_chunks_mut(hd).zip(sq.par_iter_mut()).enumerate().with_min_len(ROW_BLOCK).for_each(|(r, (xr, s))| q_row(r, xr, s));
        } else {
            xq.chunks_mut(hd).zip(sq.iter_mut()).enumerate().for_each(|(r, (xr, s))| q_row(r, xr, s));
        }
        // This group's K and V rows, [ctx × hd].
        let (kg, vg) = (&cache.k, &cache.v);
        scratch.scores.resize(mr * ctx, 0);
        let scores = &mut scratch.scores[..mr * ctx];
        // A prompt's scores and mix run on the int8 GEMM kernel (sums exact in i32: the
        // values the row kernels give); a decode step's few rows on the row kernels.
        let on_gemm = mr >= ATTENTION_GEMM_MIN_ROWS && ctx <= MAX_K;
        let (simd, threads) = (isa.gemm_path(), self.opts.backend.host_threads());
        let score_row = |r: usize, row: &mut [i32]| kernels::scores_row(isa, &xq[r * hd..(r + 1) * hd], kg, hd, row);
        if on_gemm {
            aivm_tensor::gemm::gemm(&xq, mr, &aivm_tensor::gemm::Packed::new(kg, ctx, hd), scores, simd, threads);
        } else if par {
            use rayon::prelude::*;
            scores.par_chunks_mut(ctx.max(1)).enumerate().with_min_len(8).for_each(|(r, row)| score_row(r, row));
        } else {
            scores.chunks_mut(ctx.max(1)).enumerate().for_each(|(r, row)| score_row(r, row));
        }
        let scores = &*scores;
        scratch.pq.resize(mr * ctx, 0);
        let pq = &mut scratch.pq[..mr * ctx];
        let mut out_scale = vec![Scale::ZERO; mr];
        let mut mixed = vec![0i32; mr * hd];
        // One row: softmax with V's scales folded in, then the mix with V.
        let prob_row = |r: usize, prow: &mut [i8], acc: &mut [i32], os: &mut Scale| {
            let pos = rows[r / group].1;
            let valid = pos + 1;
            let mut exps = vec![0i64; valid];
            let fast =
                kernels::softmax_row(isa, &scores[r * ctx..r * ctx + valid], sq[r], &cache.ks[..valid], &cache.vs[..valid], &mut exps, &mut prow[..valid]);
            let (sc, extra) = fast.unwrap_or_else(|| {
                let logits: Vec<i64> = (0..valid)
                    .map(|p| round_shift(scores[r * ctx + p] as i64 * (sq[r].m as i64 * cache.ks[p].m as i64), -(sq[r].e + cache.ks[p].e + 16)) as i64)
                    .collect();
                softmax_fold(&logits, |p| cache.vs[p], &mut prow[..valid])
            });
            *os = Scale { m: sc.m, e: sc.e + extra };
            // Past the last valid position the row is zero (the buffer is reused).
            prow[valid..].fill(0);
            if !on_gemm {
                kernels::mix_row(isa, &prow[..valid], vg, hd, acc);
            }
        };
        if par {
            use rayon::prelude::*;
            pq.par_chunks_mut(ctx.max(1))
                .zip(mixed.par_chunks_mut(hd.max(1)))
                .zip(out_scale.par_iter_mut())
                .enumerate()
                .with_min_len(8)
                .for_each(|(r, ((prow, acc), os))| prob_row(r, prow, acc, os));
        } else {
            pq.chunks_mut(ctx.max(1))
                .zip(mixed.chunks_mut(hd.max(1)))
                .zip(out_scale.iter_mut())
                .enumerate()
                .for_each(|(r, ((prow, acc), os))| prob_row(r, prow, acc, os));
        }
        if on_gemm {
            // `P·V` as `P·(Vᵀ)ᵀ`: the kernel's weight operand is `Vᵀ [hd × ctx]`; P is zero
            // past each row's last valid position, as in the row form.
            let mut vt = vec![0i8; hd * ctx];
            for (p, vrow) in vg.chunks_exact(hd).enumerate() {
                for (j, &v) in vrow.iter().enumerate() {
                    vt[j * ctx + p] = v;
                }
            }
            aivm_tensor::gemm::gemm(pq, mr, &aivm_tensor::gemm::Packed::new(&vt, hd, ctx), &mut mixed, simd, threads);
        }
        Head { xq, sq, out_scale, mixed }
    }

    /// Record one KV group's scores and mix GEMMs (in that order) and write its heads' columns
    /// of each new row of `out` (`at`: step, layer, sequence, group).
    #[allow(clippy::too_many_arguments)]
    fn attention_emit(
        &self,
        sink: &mut dyn GemmSink,
        at: (u32, u32, u32, usize),
        cache: &Cache,
        head: &Head,
        scratch: &AttnScratch,
        n_new: usize,
        out: &mut [i32],
    ) {
        let (step, layer, seq, g) = at;
        let c = &self.sku.config;
        let (hd, heads, kvh) = (c.head_dim as usize, c.heads as usize, c.kv_heads as usize);
        let (d, group) = (heads * hd, heads / kvh);
        // The cache is the one the scores covered (appended to only between steps).
        let (mr, ctx) = (n_new * group, cache.ks.len());
        let Head { xq, sq, out_scale, mixed } = head;
        sink.gemm(&GemmRecord {
            id: GemmId { step, layer, kind: GemmKind::Scores, seq, head: g as u32 },
            m: mr,
            k: hd,
            n: ctx,
            x: xq,
            x_scales: sq,
            y: &scratch.scores[..mr * ctx],
            rhs: Some(&cache.k),
        });
        sink.gemm(&GemmRecord {
            id: GemmId { step, layer, kind: GemmKind::Mix, seq, head: g as u32 },
            m: mr,
            k: ctx,
            n: hd,
            x: &scratch.pq[..mr * ctx],
            x_scales: out_scale,
            y: mixed,
            rhs: Some(&cache.v),
        });
        // Each token's row of `out` takes this group's heads.
        let out_row = |t: usize, orow: &mut [i32]| {
            for hh in 0..group {
                let (r, head) = (t * group + hh, g * group + hh);
                let s = out_scale[r];
                for (o, &a) in orow[head * hd..(head + 1) * hd].iter_mut().zip(&mixed[r * hd..(r + 1) * hd]) {
                    *o = round_shift(a as i64 * s.m as i64, -(s.e + 16));
                }
            }
        };
        if self.opts.backend.host_threads() > 1 && mr * ctx >= PARALLEL_MIN_SCORES {
            use rayon::prelude::*;
            out.par_chunks_mut(d).enumerate().with_min_len(ROW_BLOCK).for_each(|(t, orow)| out_row(t, orow));
        } else {
            out.chunks_mut(d).enumerate().for_each(|(t, orow)| out_row(t, orow));
        }
    }
}

/// Run `f` (a run's forward steps) on worker 0 of rayon's pool while workers `1..threads`
/// stay awake for the steps' parallel sections: each runs [`rayon::yield_now`] in a loop,
/// taking any job the steps push, until `f` returns. An idle rayon worker goes to sleep
/// after a few tens of microseconds, and in this VM waking it took longer than a short
/// section: a prompt step's GEMMs ran 1.1–1.6× faster on two threads than on one, and
/// attention's small GEMMs slower (BENCHMARKS.md). Called from outside the pool only
/// ([`rayon::broadcast`] from a worker would wait on the work it is part of). Which thread
/// runs which job never changes a result.
fn team<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Sets `done` however the step ends (a panic included), so the others always stop.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    let job = parking_lot::Mutex::new(Some(f));
    let mut results = rayon::broadcast(|ctx| {
        if ctx.index() == 0 {
            let _done = Done(&done);
            job.lock().take().map(|f| f())
        } else {
            if ctx.index() < threads {
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            }
            None
        }
    });
    // Worker 0 took the job exactly once (a panic there is re-raised by `broadcast`).
    results.swap_remove(0).unwrap_or_else(|| unreachable!("worker 0 runs the steps"))
}

#[cfg(test)]
mod tests {
    use super::super::sku::{tests::tiny, Arch};
    use super::*;

    struct Collect(Vec<(GemmId, usize, usize, usize)>, blake3::Hasher);
    impl GemmSink for Collect {
        fn gemm(&mut self, r: &GemmRecord<'_>) {
            self.0.push((r.id, r.m, r.k, r.n));
            r.y.iter().for_each(|v| {
                self.1.update(&v.to_le_bytes());
            });
        }
    }

    fn run(arch: Arch, opts: Options, prompts: &[Vec<u32>]) -> (Vec<Vec<u32>>, [u8; 32], usize) {
        let e = Engine::new(Arc::new(tiny(arch, 11)), opts).unwrap();
        let mut c = Collect(Vec::new(), blake3::Hasher::new());
        let out = e.generate(prompts, 6, &mut c).unwrap();
        (out, *c.1.finalize().as_bytes(), c.0.len())
    }

    /// Forcing the model's own greedy tokens predicts exactly them; forcing others changes
    /// what follows, and the bounds are the generator's.
    #[test]
    fn teacher_forcing_its_own_tokens_predicts_them() {
        let e = Engine::new(Arc::new(tiny(Arch::Llama, 11)), Options::default()).unwrap();
        let prompt = vec![5, 9, 3, 17];
        let out = e.generate(std::slice::from_ref(&prompt), 6, &mut NoTrace).unwrap().remove(0);
        assert!(!out.is_empty());
        assert_eq!(e.teacher_forced(&prompt, &out).unwrap(), out);
        let other: Vec<u32> = out.iter().map(|t| (t + 1) % 64).collect();
        assert_eq!(e.teacher_forced(&prompt, &other).unwrap()[0], out[0], "the first prediction sees only the prompt");
        assert_eq!(e.teacher_forced(&[], &out), Err(InferError::EmptyPrompt));
        assert_eq!(e.teacher_forced(&prompt, &[64]), Err(InferError::BadToken(64)));
    }

    #[test]
    fn identical_across_paths_threads_and_runs() {
        for arch in [Arch::Llama, Arch::Qwen2] {
            // The third prompt is long enough (200 score rows × 120 positions per group) for
            // attention to spread its rows over the pool when threads > 1.
            let long: Vec<u32> = (0..120).map(|i| (i * 7 + 3) % 64).collect();
            const { assert!(120 * 2 * 120 >= PARALLEL_MIN_SCORES) };
            let prompts = vec![vec![5, 9, 3, 17], vec![40, 1], long];
            let base = run(arch, Options::cpu(1, SimdPath::Scalar), &prompts);
            assert!(base.0.iter().any(|o| !o.is_empty()));
            for &path in SimdPath::available() {
                for threads in 1..=3 {
                    assert_eq!(run(arch, Options::cpu(threads, path), &prompts), base, "{arch:?} {path:?} {threads}");
                }
            }
        }
    }

    /// The team returns the steps' result, lets them use the pool, and ends (the other
    /// workers released) when they panic.
    #[test]
    fn team_runs_the_steps_and_ends_on_a_panic() {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        assert_eq!(team(threads, || (0..1000u64).into_par_iter().sum::<u64>()), 499_500);
        let r = std::panic::catch_unwind(|| team(threads, || -> u32 { panic!("a step failed") }));
        assert!(r.is_err());
        assert_eq!(team(threads, || 7), 7, "the pool is usable after a panic");
    }

    #[test]
    fn batch_equals_one_by_one() {
        let o = Options::cpu(2, SimdPath::detect());
        let prompts = vec![vec![5, 9, 3, 17], vec![40, 1], vec![7]];
        let batch = run(Arch::Llama, o.clone(), &prompts).0;
        for (i, p) in prompts.iter().enumerate() {
            assert_eq!(run(Arch::Llama, o.clone(), std::slice::from_ref(p)).0[0], batch[i], "prompt {i}");
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        let e = Engine::new(Arc::new(tiny(Arch::Llama, 1)), Options::default()).unwrap();
        assert_eq!(e.generate(&[vec![]], 1, &mut NoTrace), Err(InferError::EmptyPrompt));
        assert_eq!(e.generate(&[vec![64]], 1, &mut NoTrace), Err(InferError::BadToken(64)));
        assert!(matches!(e.generate(&[vec![1; 250]], 10, &mut NoTrace), Err(InferError::TooLong(..))));
        assert!(matches!(e.generate(&vec![vec![1]; MAX_BATCH + 1], 1, &mut NoTrace), Err(InferError::BatchTooLarge(..))));
    }

    #[test]
    fn argmax_equals_its_definition() {
        use crate::layer::argmax_definition;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Narrow exponent spans (the fast form) and wide ones (the definition), ties, extremes.
        for case in 0..400 {
            let n = 1 + (next() % 300) as usize;
            let span = [0, 3, 16, 17, 40][case % 5];
            let acc: Vec<i32> = (0..n)
                .map(|_| match next() % 6 {
                    0 => i32::MAX,
                    1 => i32::MIN,
                    2 => (next() % 5) as i32 - 2,
                    _ => next() as i32,
                })
                .collect();
            let scales: Vec<Scale> = (0..n)
                .map(|_| match next() % 8 {
                    0 => Scale::ZERO,
                    1 => Scale { m: 1 << 15, e: -20 },
                    _ => Scale { m: (1 << 14) + (next() % (1 << 14)) as i32, e: -20 - (next() % (span as u64 + 1)) as i32 },
                })
                .collect();
            assert_eq!(argmax(&acc, &scales), argmax_definition(&acc, &scales), "case {case}");
        }
    }

    #[test]
    fn argmax_is_exact_and_ties_go_low() {
        let s = |m, e| Scale { m, e };
        assert_eq!(argmax(&[3, 3, 2], &[s(20000, -10); 3]), 0);
        assert_eq!(argmax(&[3, 2], &[s(20000, -10), s(20000, -9)]), 1); // 3·2^-10 < 2·2^-9
        assert_eq!(argmax(&[-1, 0], &[s(20000, 0), Scale::ZERO]), 1);
    }
}
