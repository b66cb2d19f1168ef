//! Verifying an inference receipt (`spec/verification.md`).
//!
//! After the receipt is published, randomness (a seed now; the chain's later) selects GEMMs
//! and activation rows. The worker answers with the selected GEMMs' data and rows, each with
//! Merkle proofs to the receipt. The verifier, holding only the receipt, the response and the
//! SKU, checks:
//! 1. the run's shape: the exact list of GEMMs a run with these prompts and outputs performs;
//! 2. every opened GEMM against its commitment, and `Y·r = X·(B·r)` exactly for eight random
//!    vectors `r` with entries uniform over i8 (Freivalds): a wrong `Y` passes one vector
//!    with probability ≤ 1/256, all eight with ≤ 2^-64;
//! 3. every opened row chain: from the token's embedding, each layer's quantized inputs are
//!    recomputed from the previous committed outputs (RMSNorm, SwiGLU, residual adds), and
//!    the committed logits give the token the receipt says was produced.

use super::commit::{i32_bytes, tokens_root, x_row_bytes, GemmCommit, GemmData, Receipt, Trace};
use super::engine::{argmax, dequant_rows, norm_quantize, swiglu_quantize, GemmId, GemmKind, MAX_BATCH};
use super::fixed::Scale;
use super::gemm::{gemm, Packed};
use super::sku::{QMatrix, Sku};
use crate::tensor::matmul::Path;
use crate::verify::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("receipt is for model {0}, not the one given")]
    WrongModel(String),
    #[error("receipt is inconsistent: {0}")]
    Receipt(String),
    #[error("response does not answer the challenge: {0}")]
    Response(String),
    #[error("GEMM {index} ({what}): commitment or proof does not match")]
    Commitment { index: u64, what: String },
    #[error("GEMM {index} ({what}): Freivalds check failed")]
    Freivalds { index: u64, what: String },
    #[error("step {step} row {row}: {what} is not consistent with the previous layer")]
    Chain { step: u32, row: u32, what: String },
}

/// What the verifier asks for: `gemms` GEMMs (0 = all) and `rows` row chains, chosen by `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub seed: Hash,
    pub gemms: u32,
    pub rows: u32,
}

/// One opened GEMM with its proof into `gemm_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenGemm {
    pub index: u64,
    pub data: GemmData,
    pub proof: Vec<Hash>,
}

/// One opened row of a GEMM operand: `x` (with scale) or `y`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRow {
    pub index: u64,
    pub commit: GemmCommit,
    pub gemm_proof: Vec<Hash>,
    pub is_y: bool,
    pub row: u32,
    pub bytes: Vec<u8>,
    pub row_proof: Vec<Hash>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub gemms: Vec<OpenGemm>,
    pub rows: Vec<OpenRow>,
}

/// The exact GEMM list a run performs, from the model shape and the receipt's token counts.
pub fn schedule(sku: &Sku, r: &Receipt) -> Result<Vec<(GemmId, [u32; 3])>, VerifyError> {
    let c = &sku.config;
    let bad = |m: &str| Err(VerifyError::Receipt(m.into()));
    if r.prompts.len() != r.outputs.len() || r.prompts.is_empty() || r.prompts.len() > MAX_BATCH {
        return bad("prompt and output counts");
    }
    if r.outputs.iter().any(|o| o.len() > r.max_new as usize) || r.prompts.iter().any(|p| p.is_empty()) {
        return bad("an output is longer than max_new, or a prompt is empty");
    }
    let (d, hd, kvd, f) = (c.d_model, c.head_dim, c.kv_heads * c.head_dim, c.ffn);
    let group = c.heads / c.kv_heads;
    let mut out = Vec::new();
    let mut ctx: Vec<u32> = vec![0; r.prompts.len()];
    for step in 0..r.max_new {
        let active: Vec<usize> = (0..r.prompts.len()).filter(|&s| step == 0 || (step as usize) <= r.outputs[s].len()).collect();
        if active.is_empty() {
            break;
        }
        let new: Vec<u32> = active.iter().map(|&s| if step == 0 { r.prompts[s].len() as u32 } else { 1 }).collect();
        let m: u32 = new.iter().sum();
        for (&s, &n) in active.iter().zip(&new) {
            ctx[s] += n;
        }
        let id = |layer, kind, seq, head| GemmId { step, layer, kind, seq, head };
        for l in 0..c.layers {
            out.push((id(l, GemmKind::Q, 0, 0), [m, d, d]));
            out.push((id(l, GemmKind::K, 0, 0), [m, d, kvd]));
            out.push((id(l, GemmKind::V, 0, 0), [m, d, kvd]));
            for (&s, &n) in active.iter().zip(&new) {
                for g in 0..c.kv_heads {
                    out.push((id(l, GemmKind::Scores, s as u32, g), [n * group, hd, ctx[s]]));
                    out.push((id(l, GemmKind::Mix, s as u32, g), [n * group, ctx[s], hd]));
                }
            }
            out.push((id(l, GemmKind::O, 0, 0), [m, d, d]));
            out.push((id(l, GemmKind::Gate, 0, 0), [m, d, f]));
            out.push((id(l, GemmKind::Up, 0, 0), [m, d, f]));
            out.push((id(l, GemmKind::Down, 0, 0), [m, f, d]));
        }
        out.push((id(c.layers, GemmKind::Logits, 0, 0), [active.len() as u32, d, c.vocab]));
        // A sequence that produced its last token (eos or max_new) at this step stops.
        if active.iter().all(|&s| r.outputs[s].len() <= step as usize) {
            break;
        }
    }
    Ok(out)
}

/// The rows (tokens) each step feeds, as (sequence, token, is-last-row-of-sequence).
fn step_rows(r: &Receipt, step: u32) -> Vec<(usize, u32)> {
    (0..r.prompts.len())
        .filter(|&s| step == 0 || (step as usize) <= r.outputs[s].len())
        .flat_map(|s| if step == 0 { r.prompts[s].iter().map(|&t| (s, t)).collect::<Vec<_>>() } else { vec![(s, r.outputs[s][step as usize - 1])] })
        .collect()
}

/// A BLAKE3 XOF bound to the challenge, the receipt and a purpose.
fn xof(ch: &Challenge, receipt: &Hash, what: &[u8], index: u64) -> blake3::OutputReader {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-11 freivalds challenge v1");
    h.update(&ch.seed);
    h.update(receipt);
    h.update(what);
    h.update(&index.to_le_bytes());
    h.finalize_xof()
}

fn draw(x: &mut blake3::OutputReader, bound: u64) -> u64 {
    let mut b = [0u8; 8];
    x.fill(&mut b);
    // 2^64 mod bound bias is < bound / 2^64: negligible for these sizes.
    u64::from_le_bytes(b) % bound.max(1)
}

/// Which GEMM indices and which (step, row) chains the challenge selects.
pub fn select(ch: &Challenge, r: &Receipt, sched: &[(GemmId, [u32; 3])]) -> (Vec<u64>, Vec<(u32, u32)>) {
    let rh = r.hash();
    let n = sched.len() as u64;
    let gemms: Vec<u64> = if ch.gemms == 0 || ch.gemms as u64 >= n {
        (0..n).collect()
    } else {
        let mut x = xof(ch, &rh, b"gemms", 0);
        let mut set = std::collections::BTreeSet::new();
        while set.len() < ch.gemms as usize {
            set.insert(draw(&mut x, n));
        }
        set.into_iter().collect()
    };
    let steps = sched.last().map_or(0, |s| s.0.step + 1);
    let mut x = xof(ch, &rh, b"rows", 0);
    let rows = (0..ch.rows)
        .map(|_| {
            let s = draw(&mut x, steps as u64) as u32;
            let row = draw(&mut x, step_rows(r, s).len() as u64) as u32;
            (s, row)
        })
        .collect();
    (gemms, rows)
}

/// Random vectors per checked GEMM: each entry uniform over the 256 values of i8, so a
/// wrong row survives one vector with probability ≤ 1/256 and all of them with ≤ 2^-64.
pub const VECTORS: usize = 8;

/// The random vectors for GEMM `index`: `VECTORS` rows of `n` entries.
pub fn vectors(ch: &Challenge, rh: &Hash, index: u64, n: usize) -> Vec<Vec<i8>> {
    let mut x = xof(ch, rh, b"vectors", index);
    (0..VECTORS)
        .map(|_| {
            let mut b = vec![0u8; n];
            x.fill(&mut b);
            b.into_iter().map(|v| v as i8).collect()
        })
        .collect()
}

/// Weight matrix of a weight GEMM.
fn weight<'s>(sku: &'s Sku, id: &GemmId) -> Option<&'s QMatrix> {
    let l = sku.layers.get(id.layer as usize);
    Some(match id.kind {
        GemmKind::Q => &l?.wq,
        GemmKind::K => &l?.wk,
        GemmKind::V => &l?.wv,
        GemmKind::O => &l?.wo,
        GemmKind::Gate => &l?.w_gate,
        GemmKind::Up => &l?.w_up,
        GemmKind::Down => &l?.w_down,
        GemmKind::Logits => &sku.output,
        GemmKind::Scores | GemmKind::Mix => return None,
    })
}

/// `B·r` for the GEMM's right operand `B [k×n]`: `Wᵀ r` (rows of W weighted, weights and
/// scores) or `V r` (mix). Exact in i64.
fn b_times(b: &[i8], k: usize, n: usize, transposed_rows: bool, r: &[i8]) -> Vec<i64> {
    let mut out = vec![0i64; k];
    if transposed_rows {
        // B = Wᵀ with W [n×k]: out = Σ_j r_j · W_j.
        for (j, row) in b.chunks_exact(k).take(n).enumerate() {
            let rj = r[j] as i64;
            for (o, &w) in out.iter_mut().zip(row) {
                *o += rj * w as i64;
            }
        }
    } else {
        // B = V [k×n]: out_p = V_p · r.
        for (o, row) in out.iter_mut().zip(b.chunks_exact(n)) {
            *o = row.iter().zip(r).map(|(&v, &x)| v as i64 * x as i64).sum();
        }
    }
    out
}

/// Freivalds on one GEMM: `Y·r == X·(B·r)` for every vector, exactly in i128. The reference
/// form; [`FastCheck`] computes the same products with the int8 GEMM kernel.
pub fn freivalds(g: &GemmData, b: &[i8], transposed_rows: bool, rs: &[Vec<i8>]) -> bool {
    let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
    if g.x.len() != m * k || g.y.len() != m * n || b.len() != k * n {
        return false;
    }
    rs.iter().all(|r| {
        let br = b_times(b, k, n, transposed_rows, r);
        (0..m).all(|i| {
            let lhs: i128 = g.x[i * k..(i + 1) * k].iter().zip(&br).map(|(&x, &v)| x as i128 * v as i128).sum();
            let rhs: i128 = g.y[i * n..(i + 1) * n].iter().zip(r.iter()).map(|(&y, &v)| y as i128 * v as i128).sum();
            lhs == rhs
        })
    })
}

/// Freivalds for a weight GEMM `Y = X·Wᵀ` on the int8 GEMM kernel. The verifier packs `Wᵀ`
/// once per model ([`FastCheck::new`]); each check is then three exact int8 products:
/// `G = R·W` (`[8×k]`), `X·Gᵀ` with G split into signed base-256 digit planes, and `Y·Rᵀ`
/// with Y split the same way. Every partial sum is below 128·128·2^17 < 2^31, so the
/// kernel is exact and the planes recombine exactly in i64.
pub struct FastCheck {
    /// `Wᵀ` as `[k × n]` rows (reduction over W's rows).
    wt: Packed,
    n: usize,
    k: usize,
}

/// Signed base-256 digits of `v` (five suffice for |v| < 2^39): `v = Σ d_b·256^b`.
fn digits(v: i64) -> [i8; 5] {
    let mut d = [0i8; 5];
    let mut v = v;
    for x in &mut d {
        *x = v as i8;
        v = (v - *x as i64) >> 8;
    }
    d
}

impl FastCheck {
    pub fn new(w: &QMatrix) -> Self {
        let (n, k) = (w.rows, w.cols);
        let mut t = vec![0i8; n * k];
        for j in 0..n {
            for p in 0..k {
                t[p * n + j] = w.q[j * k + p];
            }
        }
        Self { wt: Packed::new(&t, k, n), n, k }
    }

    /// `Y·r == X·(Wᵀr)` for every vector in `rs`.
    pub fn check(&self, x: &[i8], y: &[i32], m: usize, rs: &[Vec<i8>], path: Path, threads: usize) -> bool {
        let (n, k, v) = (self.n, self.k, rs.len());
        if x.len() != m * k || y.len() != m * n || rs.iter().any(|r| r.len() != n) {
            return false;
        }
        // G[v] = Σ_j r_v[j]·W[j]: R [v×n] · (Wᵀ)ᵀ.
        let r: Vec<i8> = rs.iter().flatten().copied().collect();
        let mut g = vec![0i32; v * k];
        gemm(&r, v, &self.wt, &mut g, path, threads);
        // X·Gᵀ by digit planes: rows (plane, vector) of a [5v × k] matrix.
        let mut planes = vec![0i8; 5 * v * k];
        for (i, &gv) in g.iter().enumerate() {
            for (b, d) in digits(gv as i64).into_iter().enumerate() {
                planes[b * v * k + i] = d;
            }
        }
        let gp = Packed::new(&planes, 5 * v, k);
        let mut xg = vec![0i32; m * 5 * v];
        gemm(x, m, &gp, &mut xg, path, threads);
        // Y·Rᵀ directly in i64, with R transposed so each Y element meets its 8 entries.
        let mut rt = vec![0i64; n * v];
        for (j, chunk) in rt.chunks_exact_mut(v).enumerate() {
            for (vi, c) in chunk.iter_mut().enumerate() {
                *c = rs[vi][j] as i64;
            }
        }
        // Rows split across threads; each row's sums are independent and exact.
        let per = m.div_ceil(threads.max(1)).max(1);
        let yr: Vec<i64> = std::thread::scope(|sc| {
            let hs: Vec<_> = y.chunks(per * n).map(|part| { let rt = &rt; sc.spawn(move || y_times_r(part, part.len() / n, n, rt, v)) }).collect();
            hs.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        if yr.len() != m * v {
            return false;
        }
        (0..m).all(|i| {
            (0..v).all(|j| {
                let lhs: i64 = (0..5).map(|b| (xg[i * 5 * v + b * v + j] as i64) << (8 * b)).sum();
                lhs == yr[i * v + j]
            })
        })
    }
}

/// `Y [m×n] · Rᵀ` where `rt` is `[n × v]`: exact i64 sums (|y·r| < 2^38, n < 2^17).
fn y_times_r(y: &[i32], m: usize, n: usize, rt: &[i64], v: usize) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512dq") && v == 8 {
        // SAFETY: the CPU has avx512f + avx512dq (checked); the body is the same safe loop.
        return unsafe { y_times_r_avx512(y, m, n, rt) };
    }
    y_times_r_plain(y, m, n, rt, v)
}

#[inline(always)]
fn y_times_r_plain(y: &[i32], m: usize, n: usize, rt: &[i64], v: usize) -> Vec<i64> {
    let mut out = vec![0i64; m * v];
    for (yr, o) in y.chunks_exact(n).take(m).zip(out.chunks_exact_mut(v)) {
        for (&yv, r) in yr.iter().zip(rt.chunks_exact(v)) {
            for (acc, &rv) in o.iter_mut().zip(r) {
                *acc += yv as i64 * rv;
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn y_times_r_avx512(y: &[i32], m: usize, n: usize, rt: &[i64]) -> Vec<i64> {
    y_times_r_plain(y, m, n, rt, 8)
}

/// Why one opened GEMM failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GemmFault {
    /// The data does not recommit to the leaf, or the leaf is not in the root.
    Commitment,
    /// Freivalds found `Y ≠ X·B` (or the operands do not fit the model).
    Freivalds,
}

/// The checks every opened GEMM gets: data matches its commitment, the commitment is leaf
/// `index` of `gemm_root` (of `gemm_count`), and Freivalds holds with the challenge's vectors
/// for that index. Shapes are checked before any vector is drawn, so a hostile shape cannot
/// make the verifier allocate.
fn check_gemm(sku: &Sku, receipt_hash: &Hash, gemm_root: &Hash, gemm_count: u64, ch: &Challenge, og: &OpenGemm) -> Result<(), GemmFault> {
    let c = &og.data.commit;
    let id = c.id().ok_or(GemmFault::Commitment)?;
    if og.data.x_scales.len() != c.m as usize || og.data.recommit() != *c {
        return Err(GemmFault::Commitment);
    }
    if !merkle::verify(gemm_root, &c.leaf(), og.index, gemm_count, &og.proof) {
        return Err(GemmFault::Commitment);
    }
    let (b, transposed) = match (weight(sku, &id), &og.data.rhs) {
        (Some(w), None) if w.rows == c.n as usize && w.cols == c.k as usize => (&w.q[..], true),
        (None, Some(rhs)) => (&rhs[..], id.kind == GemmKind::Scores),
        _ => return Err(GemmFault::Freivalds),
    };
    let (m, k, n) = (c.m as usize, c.k as usize, c.n as usize);
    if m == 0 || k == 0 || n == 0 || og.data.x.len() != m * k || og.data.y.len() != m * n || b.len() != k * n {
        return Err(GemmFault::Freivalds);
    }
    let rs = vectors(ch, receipt_hash, og.index, n);
    if freivalds(&og.data, b, transposed, &rs) { Ok(()) } else { Err(GemmFault::Freivalds) }
}

/// Check one opened GEMM without the rest of the receipt (FREIVALDS_VERIFY): [`check_gemm`]
/// with vectors drawn from `seed` and the receipt hash. The run-shape and row chain checks
/// need the whole receipt and are [`verify`]'s.
pub fn verify_gemm(sku: &Sku, receipt_hash: &Hash, gemm_root: &Hash, gemm_count: u64, seed: &Hash, og: &OpenGemm) -> bool {
    let ch = Challenge { seed: *seed, gemms: 0, rows: 0 };
    check_gemm(sku, receipt_hash, gemm_root, gemm_count, &ch, og).is_ok()
}

impl OpenGemm {
    /// Binary form (FREIVALDS_VERIFY input): index u64, commitment (8 u32 + 3 roots), x
    /// scales (m × 2 i32), x (m·k bytes), y (m·n i32), rhs flag u8 (+ k·n bytes), proof
    /// count u32 + hashes. Little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.data.commit;
        let mut b = Vec::new();
        b.extend(self.index.to_le_bytes());
        for v in [c.step, c.layer, c.kind as u32, c.seq, c.head, c.m, c.k, c.n] {
            b.extend(v.to_le_bytes());
        }
        for r in [&c.x_root, &c.y_root, &c.rhs_root] {
            b.extend_from_slice(r);
        }
        for s in &self.data.x_scales {
            b.extend(s.m.to_le_bytes());
            b.extend(s.e.to_le_bytes());
        }
        b.extend(self.data.x.iter().map(|&v| v as u8));
        b.extend(i32_bytes(&self.data.y));
        match &self.data.rhs {
            Some(r) => {
                b.push(1);
                b.extend(r.iter().map(|&v| v as u8));
            }
            None => b.push(0),
        }
        b.extend((self.proof.len() as u32).to_le_bytes());
        self.proof.iter().for_each(|h| b.extend_from_slice(h));
        b
    }

    /// Parse [`OpenGemm::encode`]'s form; `None` for anything malformed or oversized.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let index = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let mut u = [0u32; 8];
        for v in &mut u {
            *v = u32::from_le_bytes(take(4)?.try_into().ok()?);
        }
        let mut roots = [[0u8; 32]; 3];
        for r in &mut roots {
            r.copy_from_slice(take(32)?);
        }
        let (m, k, n) = (u[5] as usize, u[6] as usize, u[7] as usize);
        let (mk, mn, kn) = (m.checked_mul(k)?, m.checked_mul(n)?, k.checked_mul(n)?);
        let x_scales = take(m.checked_mul(8)?)?.chunks_exact(8).map(|c| Scale { m: i32::from_le_bytes([c[0], c[1], c[2], c[3]]), e: i32::from_le_bytes([c[4], c[5], c[6], c[7]]) }).collect();
        let x = take(mk)?.iter().map(|&v| v as i8).collect();
        let y = take(mn.checked_mul(4)?)?.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let rhs = match take(1)?[0] {
            0 => None,
            1 => Some(take(kn)?.iter().map(|&v| v as i8).collect()),
            _ => return None,
        };
        let np = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        if np > 64 {
            return None;
        }
        let proof = take(np * 32)?.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        if at != b.len() {
            return None;
        }
        let commit = GemmCommit { step: u[0], layer: u[1], kind: u8::try_from(u[2]).ok()?, seq: u[3], head: u[4], m: u[5], k: u[6], n: u[7], x_root: roots[0], y_root: roots[1], rhs_root: roots[2] };
        Some(OpenGemm { index, data: GemmData { commit, x, x_scales, y, rhs }, proof })
    }
}

/// Verify a response to `ch` for `receipt` against the model. `Ok(())` means every check passed.
pub fn verify(sku: &Sku, sku_hash: &Hash, receipt: &Receipt, ch: &Challenge, resp: &Response) -> Result<(), VerifyError> {
    if receipt.sku != *sku_hash {
        return Err(VerifyError::WrongModel(crate::model::store::hex(&receipt.sku)));
    }
    if tokens_root(&receipt.prompts) != receipt.input_root || tokens_root(&receipt.outputs) != receipt.output_root {
        return Err(VerifyError::Receipt("input or output root".into()));
    }
    if receipt.prompts.iter().flatten().chain(receipt.outputs.iter().flatten()).any(|&t| t >= sku.config.vocab) {
        return Err(VerifyError::Receipt("token outside the vocabulary".into()));
    }
    let sched = schedule(sku, receipt)?;
    if sched.len() as u64 != receipt.gemm_count {
        return Err(VerifyError::Receipt(format!("{} GEMMs committed, the run performs {}", receipt.gemm_count, sched.len())));
    }
    let (want_gemms, want_rows) = select(ch, receipt, &sched);
    let rh = receipt.hash();
    // GEMMs.
    if resp.gemms.iter().map(|g| g.index).collect::<Vec<_>>() != want_gemms {
        return Err(VerifyError::Response("opened GEMMs are not the selected ones".into()));
    }
    for og in &resp.gemms {
        let (id, dims) = sched[og.index as usize];
        let what = format!("step {} layer {} {}", id.step, id.layer, id.kind.name());
        let c = &og.data.commit;
        if c.id() != Some(id) || [c.m, c.k, c.n] != dims {
            return Err(VerifyError::Commitment { index: og.index, what });
        }
        match check_gemm(sku, &rh, &receipt.gemm_root, receipt.gemm_count, ch, og) {
            Ok(()) => {}
            Err(GemmFault::Commitment) => return Err(VerifyError::Commitment { index: og.index, what }),
            Err(GemmFault::Freivalds) => return Err(VerifyError::Freivalds { index: og.index, what }),
        }
    }
    // Row chains.
    let mut rows = resp.rows.iter();
    for &(step, row) in &want_rows {
        check_chain(sku, receipt, &sched, step, row, &mut rows)?;
    }
    if rows.next().is_some() {
        return Err(VerifyError::Response("extra rows".into()));
    }
    Ok(())
}

/// Index of a GEMM in the schedule.
fn find(sched: &[(GemmId, [u32; 3])], step: u32, layer: u32, kind: GemmKind) -> Option<usize> {
    sched.iter().position(|(id, _)| id.step == step && id.layer == layer && id.kind == kind)
}

/// The rows a chain opens, in order: per layer q.x, o.x, o.y, gate.x, gate.y, up.y, down.x,
/// down.y; then, for a sequence's last row, logits.x and logits.y.
fn chain_plan(sku: &Sku, r: &Receipt, step: u32, row: u32) -> Vec<(GemmKind, u32, bool, u32)> {
    let mut plan = Vec::new();
    for l in 0..sku.config.layers {
        for (k, y) in [(GemmKind::Q, false), (GemmKind::O, false), (GemmKind::O, true), (GemmKind::Gate, false), (GemmKind::Gate, true), (GemmKind::Up, true), (GemmKind::Down, false), (GemmKind::Down, true)] {
            plan.push((k, l, y, row));
        }
    }
    if let Some(li) = last_row_index(r, step, row) {
        plan.push((GemmKind::Logits, sku.config.layers, false, li));
        plan.push((GemmKind::Logits, sku.config.layers, true, li));
    }
    plan
}

/// If `row` is the last row of its sequence in `step`, its row index in the logits GEMM.
fn last_row_index(r: &Receipt, step: u32, row: u32) -> Option<u32> {
    let rows = step_rows(r, step);
    let mut li = 0;
    for (i, &(s, _)) in rows.iter().enumerate() {
        let last = rows.get(i + 1).is_none_or(|&(s2, _)| s2 != s);
        if last {
            if i as u32 == row {
                return Some(li);
            }
            li += 1;
        }
    }
    None
}

fn check_chain<'a>(sku: &Sku, r: &Receipt, sched: &[(GemmId, [u32; 3])], step: u32, row: u32, opened: &mut impl Iterator<Item = &'a OpenRow>) -> Result<(), VerifyError> {
    let c = &sku.config;
    let d = c.d_model as usize;
    let err = |what: &str| VerifyError::Chain { step, row, what: what.into() };
    let rows = step_rows(r, step);
    let &(seq, token) = rows.get(row as usize).ok_or_else(|| err("row out of range"))?;
    // Open and authenticate each planned row.
    let mut get = |kind: GemmKind, layer: u32, is_y: bool, at: u32| -> Result<Vec<u8>, VerifyError> {
        let o = opened.next().ok_or_else(|| err("missing row"))?;
        let idx = find(sched, step, layer, kind).ok_or_else(|| err("no such GEMM"))? as u64;
        let (id, dims) = sched[idx as usize];
        let cm = &o.commit;
        let root = if is_y { cm.y_root } else { cm.x_root };
        let size = cm.m as u64;
        let ok = o.index == idx
            && o.is_y == is_y
            && o.row == at
            && cm.id() == Some(id)
            && [cm.m, cm.k, cm.n] == dims
            && merkle::verify(&r.gemm_root, &cm.leaf(), idx, r.gemm_count, &o.gemm_proof)
            && merkle::verify(&root, &merkle::leaf_hash(&o.bytes), at as u64, size, &o.row_proof);
        if !ok {
            return Err(err(&format!("opening of layer {layer} {} {}", kind.name(), if is_y { "y" } else { "x" })));
        }
        Ok(o.bytes.clone())
    };
    let as_i32 = |b: &[u8]| -> Vec<i32> { b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() };
    let x_scale = |b: &[u8]| -> Scale {
        let v = as_i32(&b[..8.min(b.len())]);
        Scale { m: v.first().copied().unwrap_or(0), e: v.get(1).copied().unwrap_or(0) }
    };
    let expect_x = |b: &[u8], want: &[u8], what: &str| if b == want { Ok(()) } else { Err(err(what)) };
    let mut x = vec![0i32; d];
    sku.embed.row_q16(token as usize, &mut x);
    let (mut h, mut xq, mut sx) = (vec![0i32; d], vec![0i8; d], vec![Scale::ZERO; 1]);
    for (l, lw) in sku.layers.iter().enumerate() {
        let l = l as u32;
        norm_quantize(&x, &lw.attn_norm, c.eps_q32, d, &mut h, &mut xq, &mut sx);
        expect_x(&get(GemmKind::Q, l, false, row)?, &x_row_bytes(sx[0], &xq), &format!("layer {l} attention input"))?;
        let ox = get(GemmKind::O, l, false, row)?;
        let oy = as_i32(&get(GemmKind::O, l, true, row)?);
        if oy.len() != d {
            return Err(err("o row width"));
        }
        for (xv, o) in x.iter_mut().zip(dequant_rows(&oy, &[x_scale(&ox)], &lw.wo.scales, None)) {
            *xv = xv.saturating_add(o);
        }
        norm_quantize(&x, &lw.ffn_norm, c.eps_q32, d, &mut h, &mut xq, &mut sx);
        let gx = get(GemmKind::Gate, l, false, row)?;
        expect_x(&gx, &x_row_bytes(sx[0], &xq), &format!("layer {l} feed-forward input"))?;
        let gy = as_i32(&get(GemmKind::Gate, l, true, row)?);
        let uy = as_i32(&get(GemmKind::Up, l, true, row)?);
        let f = c.ffn as usize;
        if gy.len() != f || uy.len() != f {
            return Err(err("gate/up row width"));
        }
        let (mut hq, mut sh) = (vec![0i8; f], vec![Scale::ZERO]);
        swiglu_quantize(&gy, &uy, &sx, &lw.w_gate.scales, &lw.w_up.scales, &mut hq, &mut sh);
        let dx = get(GemmKind::Down, l, false, row)?;
        expect_x(&dx, &x_row_bytes(sh[0], &hq), &format!("layer {l} down input"))?;
        let dy = as_i32(&get(GemmKind::Down, l, true, row)?);
        if dy.len() != d {
            return Err(err("down row width"));
        }
        for (xv, o) in x.iter_mut().zip(dequant_rows(&dy, &sh, &lw.w_down.scales, None)) {
            *xv = xv.saturating_add(o);
        }
    }
    if let Some(li) = last_row_index(r, step, row) {
        norm_quantize(&x, &sku.out_norm, c.eps_q32, d, &mut h, &mut xq, &mut sx);
        expect_x(&get(GemmKind::Logits, c.layers, false, li)?, &x_row_bytes(sx[0], &xq), "final norm")?;
        let ly = as_i32(&get(GemmKind::Logits, c.layers, true, li)?);
        if ly.len() != c.vocab as usize {
            return Err(err("logits row width"));
        }
        let tok = argmax(&ly, &sku.output.scales);
        let produced = r.outputs[seq].get(step as usize).copied();
        // Either the receipt's token, or the end of the sequence (eos or max_new).
        let consistent = match produced {
            Some(t) => t == tok,
            None => tok == sku.tokenizer.eos || r.outputs[seq].len() >= r.max_new as usize,
        };
        if !consistent {
            return Err(err("logits do not give the receipt's token"));
        }
    }
    Ok(())
}

/// The worker's answer to a challenge, from its trace.
pub fn respond(sku: &Sku, receipt: &Receipt, trace: &Trace, ch: &Challenge) -> Result<Response, VerifyError> {
    let sched = schedule(sku, receipt)?;
    // The trace is a file: its GEMMs must have the shapes the run performs before any row of
    // them is indexed.
    let fits = sched.len() == trace.gemms.len()
        && sched.iter().zip(&trace.gemms).all(|((id, dims), g)| {
            let c = &g.commit;
            c.id() == Some(*id) && [c.m, c.k, c.n] == *dims && g.x.len() == c.m as usize * c.k as usize && g.y.len() == c.m as usize * c.n as usize && g.x_scales.len() == c.m as usize
        });
    if !fits {
        return Err(VerifyError::Response("trace does not match the receipt".into()));
    }
    let (gemms, rows) = select(ch, receipt, &sched);
    let (_, proofs) = merkle::prove_all(&trace.leaves());
    let proof = |i: usize| proofs.get(i).cloned().unwrap_or_default();
    let mut resp = Response { gemms: gemms.iter().map(|&i| OpenGemm { index: i, data: trace.gemms[i as usize].clone(), proof: proof(i as usize) }).collect(), rows: Vec::new() };
    for (step, row) in rows {
        for (kind, layer, is_y, at) in chain_plan(sku, receipt, step, row) {
            let idx = find(&sched, step, layer, kind).ok_or_else(|| VerifyError::Response("bad plan".into()))?;
            let g = &trace.gemms[idx];
            let c = &g.commit;
            let (leaves_rows, bytes): (Vec<Hash>, Vec<u8>) = if is_y {
                let n = c.n as usize;
                let l = g.y.chunks(n).map(|r| merkle::leaf_hash(&i32_bytes(r))).collect();
                (l, i32_bytes(&g.y[at as usize * n..(at as usize + 1) * n]))
            } else {
                let k = c.k as usize;
                let l = g.x.chunks(k).zip(&g.x_scales).map(|(r, &s)| merkle::leaf_hash(&x_row_bytes(s, r))).collect();
                (l, x_row_bytes(g.x_scales[at as usize], &g.x[at as usize * k..(at as usize + 1) * k]))
            };
            resp.rows.push(OpenRow {
                index: idx as u64,
                commit: *c,
                gemm_proof: proof(idx),
                is_y,
                row: at,
                bytes,
                row_proof: merkle::prove(&leaves_rows, at as usize).unwrap_or_default(),
            });
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::super::commit::run_committed;
    use super::super::engine::{Engine, Options};
    use super::super::sku::{tests::tiny, Arch};
    use super::*;
    use std::sync::Arc;

    fn setup(arch: Arch) -> (Engine, Receipt, Trace) {
        let e = Engine::new(Arc::new(tiny(arch, 21)), Options::default()).unwrap();
        let (r, t) = run_committed(&e, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
        (e, r, t)
    }

    const ALL: Challenge = Challenge { seed: [7; 32], gemms: 0, rows: 3 };

    fn check(e: &Engine, r: &Receipt, t: &Trace, ch: &Challenge) -> Result<(), VerifyError> {
        let resp = respond(&e.sku, r, t, ch)?;
        verify(&e.sku, &e.sku_hash, r, ch, &resp)
    }

    /// Rebuild the receipt's root after tampering with the trace (a cheating worker commits
    /// to what it claims).
    fn recommit(r: &mut Receipt, t: &mut Trace) {
        for g in &mut t.gemms {
            g.commit = g.recommit();
        }
        r.gemm_root = merkle::root(&t.leaves());
        r.gemm_count = t.gemms.len() as u64;
    }

    #[test]
    fn honest_receipts_verify() {
        for arch in [Arch::Llama, Arch::Qwen2] {
            let (e, r, t) = setup(arch);
            assert_eq!(schedule(&e.sku, &r).unwrap().len(), t.gemms.len());
            check(&e, &r, &t, &ALL).unwrap();
            for seed in 0..5u8 {
                check(&e, &r, &t, &Challenge { seed: [seed; 32], gemms: 7, rows: 2 }).unwrap();
            }
        }
    }

    #[test]
    fn one_flipped_element_is_caught() {
        let (e, mut r, mut t) = setup(Arch::Llama);
        for idx in [0usize, 5, t.gemms.len() / 2, t.gemms.len() - 1] {
            let (mut r2, mut t2) = (r.clone(), Trace { gemms: t.gemms.clone() });
            t2.gemms[idx].y[0] ^= 1;
            recommit(&mut r2, &mut t2);
            assert!(matches!(check(&e, &r2, &t2, &ALL), Err(VerifyError::Freivalds { .. })), "gemm {idx}");
        }
        // Without recommitting, the opening no longer matches the receipt.
        t.gemms[3].y[1] += 1;
        assert!(matches!(check(&e, &r, &t, &ALL), Err(VerifyError::Commitment { .. })));
        r.gemm_count += 1;
        assert!(matches!(check(&e, &r, &t, &ALL), Err(VerifyError::Receipt(_) | VerifyError::Response(_))));
    }

    #[test]
    fn permuted_rows_are_caught() {
        let (e, mut r, mut t) = setup(Arch::Qwen2);
        let g = t.gemms.iter_mut().find(|g| g.commit.kind == GemmKind::Gate as u8 && g.commit.m > 1).unwrap();
        let n = g.commit.n as usize;
        let (a, b) = g.y.split_at_mut(n);
        a.swap_with_slice(&mut b[..n]);
        recommit(&mut r, &mut t);
        assert!(check(&e, &r, &t, &ALL).is_err());
    }

    #[test]
    fn skipped_layer_is_caught() {
        // The worker runs a model with one layer fewer (skips the last layer) and claims the
        // full model: its trace lacks that layer's GEMMs.
        let (e, _, _) = setup(Arch::Llama);
        let mut cut = (*e.sku).clone();
        cut.layers.pop();
        cut.config.layers -= 1;
        let lazy = Engine::new(Arc::new(cut), Options::default()).unwrap();
        let (mut r, t) = run_committed(&lazy, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
        r.sku = e.sku_hash;
        assert!(matches!(verify(&e.sku, &e.sku_hash, &r, &ALL, &Response::default()), Err(VerifyError::Receipt(_))));
        // Padding the trace with the previous layer's GEMMs relabelled keeps the count but
        // fails Freivalds (other weights) or the row chain.
        let mut t2 = Trace { gemms: Vec::new() };
        let last = lazy.sku.config.layers; // the missing layer index
        for g in &t.gemms {
            let is_last_layer = g.commit.layer == last - 1;
            let logits = g.commit.kind == GemmKind::Logits as u8;
            if logits {
                let mut l = g.clone();
                l.commit.layer = last + 1;
                t2.gemms.push(l);
            } else {
                t2.gemms.push(g.clone());
            }
            // After the real last layer's down GEMM, append copies as "layer `last`".
            if is_last_layer && g.commit.kind == GemmKind::Down as u8 {
                let step = g.commit.step;
                let copies: Vec<GemmData> = t.gemms.iter().filter(|h| h.commit.step == step && h.commit.layer == last - 1).cloned().map(|mut h| { h.commit.layer = last; h }).collect();
                t2.gemms.extend(copies);
            }
        }
        let mut r2 = r.clone();
        recommit(&mut r2, &mut t2);
        assert!(check(&e, &r2, &t2, &ALL).is_err());
    }

    #[test]
    fn different_model_is_caught() {
        let (e, _, _) = setup(Arch::Llama);
        let other = Engine::new(Arc::new(tiny(Arch::Llama, 22)), Options::default()).unwrap();
        let (mut r, t) = run_committed(&other, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
        assert!(matches!(check(&e, &r, &t, &ALL), Err(VerifyError::WrongModel(_))));
        r.sku = e.sku_hash; // lie about the model
        assert!(matches!(check(&e, &r, &t, &ALL), Err(VerifyError::Freivalds { .. })));
    }

    #[test]
    fn fast_check_agrees_with_the_reference() {
        let (e, r, t) = setup(Arch::Qwen2);
        let ch = Challenge { seed: [5; 32], gemms: 0, rows: 0 };
        let rh = r.hash();
        for (i, g) in t.gemms.iter().enumerate().filter(|(_, g)| GemmKind::from_code(g.commit.kind).is_some_and(GemmKind::is_weight)).step_by(3) {
            let id = g.commit.id().unwrap();
            let w = weight(&e.sku, &id).unwrap();
            let fc = FastCheck::new(w);
            let rs = vectors(&ch, &rh, i as u64, w.rows);
            let m = g.commit.m as usize;
            for path in Path::available() {
                assert!(fc.check(&g.x, &g.y, m, &rs, path, 2));
                let mut y = g.y.clone();
                let mid = y.len() / 2;
                y[mid] = y[mid].wrapping_add(1 << 20);
                assert!(!fc.check(&g.x, &y, m, &rs, path, 2));
                assert!(!freivalds(&GemmData { y: y.clone(), ..g.clone() }, &w.q, true, &rs));
                // Extreme accumulators are handled exactly too.
                y[0] = i32::MIN;
                assert_eq!(fc.check(&g.x, &y, m, &rs, path, 1), freivalds(&GemmData { y, ..g.clone() }, &w.q, true, &rs));
            }
        }
        for v in [0i64, 1, -1, 127, 128, -129, i32::MIN as i64, i32::MAX as i64, 1 << 38] {
            let d = digits(v);
            assert_eq!(d.iter().enumerate().map(|(b, &x)| (x as i64) << (8 * b)).sum::<i64>(), v);
        }
    }

    #[test]
    fn single_gemm_check_and_encoding() {
        let (e, r, t) = setup(Arch::Llama);
        let ch = Challenge { seed: [3; 32], gemms: 0, rows: 0 };
        let resp = respond(&e.sku, &r, &t, &ch).unwrap();
        let rh = r.hash();
        for og in resp.gemms.iter().step_by(7) {
            let back = OpenGemm::decode(&og.encode()).unwrap();
            assert_eq!(&back, og);
            assert!(verify_gemm(&e.sku, &rh, &r.gemm_root, r.gemm_count, &ch.seed, og));
            let mut bad = og.clone();
            bad.data.y[0] = bad.data.y[0].wrapping_add(1);
            bad.data.commit = bad.data.recommit();
            assert!(!verify_gemm(&e.sku, &rh, &r.gemm_root, r.gemm_count, &ch.seed, &bad));
            let enc = og.encode();
            for cut in [0, 10, enc.len() / 2, enc.len() - 1] {
                assert!(OpenGemm::decode(&enc[..cut]).is_none());
            }
        }
        // A hostile opening whose commitment is self-consistent (the caller supplies the root)
        // but has empty or huge dimensions: rejected without panicking or allocating.
        for (m, k, n) in [(1u32, 0u32, 1u32), (0, 1, 1), (1, 1, 0), (0, 0, u32::MAX)] {
            let mut data = GemmData {
                commit: GemmCommit { step: 0, layer: 0, kind: GemmKind::Scores as u8, seq: 0, head: 0, m, k, n, x_root: [0; 32], y_root: [0; 32], rhs_root: [0; 32] },
                x: vec![0; (m * k) as usize],
                x_scales: vec![Scale::ZERO; m as usize],
                y: vec![0; (m as u64 * n as u64).min(1 << 20) as usize],
                rhs: Some(vec![0; (k as u64 * n as u64).min(1 << 20) as usize]),
            };
            data.commit = data.recommit();
            let og = OpenGemm { index: 0, proof: vec![], data };
            let root = og.data.commit.leaf();
            assert!(!verify_gemm(&e.sku, &rh, &root, 1, &ch.seed, &og), "{m}x{k}x{n}");
        }
    }

    #[test]
    fn wrong_output_token_is_caught() {
        let (e, mut r, t) = setup(Arch::Llama);
        let s = r.outputs.iter().position(|o| !o.is_empty()).unwrap();
        r.outputs[s][0] = (r.outputs[s][0] + 1) % e.sku.config.vocab;
        r.output_root = tokens_root(&r.outputs);
        // Every row chain over step 0's last rows must notice; use a challenge with many rows.
        let ch = Challenge { seed: [1; 32], gemms: 1, rows: 40 };
        assert!(check(&e, &r, &t, &ch).is_err());
    }
}
