//! The verifier: holding only the receipt, the response and the model, it checks the run's
//! shape, every opened GEMM (commitment and Freivalds) and every opened row chain (each
//! layer's inputs recomputed from the previous committed outputs with the engine's own layer
//! math).

use super::challenge::{select, vectors, weight_vectors, Challenge, Selection};
use super::freivalds::{freivalds, recompute, recompute_cheaper, row_product_holds, weight, FastCheck, Prepared};
use super::opening::{OpenGemm, OpenRow, Response};
use super::schedule::{last_row_index, schedule, step_rows, ChainKind};
use super::AuditError;
use crate::commit::GemmData;
use crate::commit::{tokens_root, InferenceReceipt};
use crate::engine::{GemmId, GemmKind};
use crate::kernels::{self, Isa};
use crate::layer::argmax;
use crate::merkle::{self, Hash};
use crate::quant::Scale;
use crate::sku::Sku;
use std::collections::HashMap;

/// Why one opened GEMM failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GemmFault {
    /// The data does not recommit to the leaf, or the leaf is not in the root.
    Commitment,
    /// Freivalds found `Y ≠ X·B` (or the operands do not fit the model).
    Freivalds,
}

/// The weight checks of one challenge: how many opened GEMMs multiply by each weight, and
/// `G = R·W` for each weight once prepared ([`FastCheck::prepare`] under
/// [`weight_vectors`]), shared by all of them.
#[derive(Default)]
struct WeightChecks {
    opened: HashMap<(u32, GemmKind), usize>,
    prepared: HashMap<(u32, GemmKind), Prepared>,
}

impl WeightChecks {
    fn of<'a>(ids: impl Iterator<Item = &'a GemmId>) -> Self {
        let mut w = WeightChecks::default();
        for id in ids.filter(|id| id.kind.is_weight()) {
            *w.opened.entry((id.layer, id.kind)).or_default() += 1;
        }
        w
    }
}

/// The checks every opened GEMM gets once its commitment is known to be leaf `index` of
/// `gemm_root` (the caller's proof): data matches its commitment, and Freivalds holds with the challenge's vectors
/// — a weight's ([`weight_vectors`]), shared by every opened GEMM of that weight, or an
/// attention GEMM's own — or, for a GEMM of fewer rows than vectors, `Y = X·B` recomputed
/// unless its weight was opened more than once (then the weight's prepared check is cheaper:
/// `G = R·W` reads W once for all of them, where each recomputation reads all of W). Shapes
/// are checked before any vector is drawn, so a hostile shape cannot make the verifier
/// allocate.
fn check_gemm(sku: &Sku, receipt_hash: &Hash, weights: &mut WeightChecks, ch: &Challenge, index: u64, data: &GemmData) -> Result<(), GemmFault> {
    let c = &data.commit;
    let id = c.id().ok_or(GemmFault::Commitment)?;
    if data.x_scales.len() != c.m as usize || data.recommit() != *c {
        return Err(GemmFault::Commitment);
    }
    let (b, transposed) = match (weight(sku, &id), &data.rhs) {
        (Some(w), None) if w.rows == c.n as usize && w.cols == c.k as usize => (&w.q[..], true),
        (None, Some(rhs)) => (&rhs[..], id.kind == GemmKind::Scores),
        _ => return Err(GemmFault::Freivalds),
    };
    let (m, k, n) = (c.m as usize, c.k as usize, c.n as usize);
    if m == 0 || k == 0 || n == 0 || data.x.len() != m * k || data.y.len() != m * n || b.len() != k * n {
        return Err(GemmFault::Freivalds);
    }
    let key = (id.layer, id.kind);
    let shared = id.kind.is_weight() && weights.opened.get(&key).is_some_and(|&c| c > 1);
    // A weight GEMM is checked on the int8 kernel with `Wᵀ` packed once per model
    // ([`FastCheck`], exact: the same verdict as the reference sums); the rest by the
    // reference form.
    let fast = weight(sku, &id).filter(|_| data.rhs.is_none()).and_then(FastCheck::of);
    let threads = rayon::current_num_threads();
    let holds = if recompute_cheaper(m) && !shared {
        recompute(data, b, transposed)
    } else if !id.kind.is_weight() {
        freivalds(data, b, transposed, &vectors(ch, receipt_hash, index, n))
    } else if let Some(fc) = fast {
        let prepared = match weights.prepared.entry(key) {
            std::collections::hash_map::Entry::Occupied(p) => p.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let rs = weight_vectors(ch, receipt_hash, id.layer, id.kind, n);
                v.insert(fc.prepare(&rs, aivm_tensor::matmul::SimdPath::detect(), threads).ok_or(GemmFault::Freivalds)?)
            }
        };
        fc.check_prepared(prepared, &data.x, &data.y, m, threads)
    } else {
        freivalds(data, b, transposed, &weight_vectors(ch, receipt_hash, id.layer, id.kind, n))
    };
    if holds {
        Ok(())
    } else {
        Err(GemmFault::Freivalds)
    }
}

/// Check one opened GEMM without the rest of the receipt (FREIVALDS_VERIFY): [`check_gemm`]
/// with vectors drawn from `seed` and the receipt hash. The run-shape and row chain checks
/// need the whole receipt and are [`check_response`]'s.
pub fn check_opening(sku: &Sku, receipt_hash: &Hash, gemm_root: &Hash, gemm_count: u64, seed: &Hash, og: &OpenGemm) -> bool {
    let ch = Challenge { seed: *seed, gemms: 0, rows: 0 };
    let mut weights = WeightChecks::of(og.data.commit.id().iter());
    merkle::verify(gemm_root, &og.data.commit.leaf(), og.index, gemm_count, &og.proof)
        && check_gemm(sku, receipt_hash, &mut weights, &ch, og.index, &og.data).is_ok()
}

/// Verify a response to `ch` for `receipt` against the model. `Ok(())` means every check passed.
pub fn check_response(sku: &Sku, sku_hash: &Hash, receipt: &InferenceReceipt, ch: &Challenge, resp: &Response) -> Result<(), AuditError> {
    check_with(sku, sku_hash, receipt, ch, resp, ChainKind::Linked, |sched| Ok(select(ch, receipt, sched)))
}

/// Verify a dispute's answer at step `step` ([`super::challenge::step_selection`]): the row
/// chain of the step's last row with every weight product along it recomputed. `seed` is
/// kept for the answer's form (a dispute opens no whole GEMM, so no vector is drawn).
pub fn check_step(sku: &Sku, sku_hash: &Hash, receipt: &InferenceReceipt, seed: &Hash, step: u32, resp: &Response) -> Result<(), AuditError> {
    let ch = Challenge { seed: *seed, gemms: 0, rows: 0 };
    check_with(sku, sku_hash, receipt, &ch, resp, ChainKind::WithProducts, |sched| super::challenge::step_selection(receipt, sched, step))
}

fn check_with(
    sku: &Sku,
    sku_hash: &Hash,
    receipt: &InferenceReceipt,
    ch: &Challenge,
    resp: &Response,
    chain: ChainKind,
    selection: impl FnOnce(&[(GemmId, [u32; 3])]) -> Result<Selection, AuditError>,
) -> Result<(), AuditError> {
    if receipt.sku != *sku_hash {
        return Err(AuditError::WrongModel(hex::encode(receipt.sku)));
    }
    if tokens_root(&receipt.prompts) != receipt.input_root || tokens_root(&receipt.outputs) != receipt.output_root {
        return Err(AuditError::Receipt("input or output root".into()));
    }
    if receipt.prompts.iter().flatten().chain(receipt.outputs.iter().flatten()).any(|&t| t >= sku.config.vocab) {
        return Err(AuditError::Receipt("token outside the vocabulary".into()));
    }
    let sched = schedule(sku, receipt)?;
    if sched.len() as u64 != receipt.gemm_count {
        return Err(AuditError::Receipt(format!("{} GEMMs committed, the run performs {}", receipt.gemm_count, sched.len())));
    }
    let (want_gemms, want_rows) = selection(&sched)?;
    let rh = receipt.hash();
    // Every opened GEMM's commitment: the schedule's id and shape, and all of them in
    // `gemm_root` by the one multiproof.
    for &(index, c) in &resp.commits {
        let Some(&(id, dims)) = sched.get(index as usize) else {
            return Err(AuditError::Commitment { index, what: "outside the run".into() });
        };
        if c.id() != Some(id) || [c.m, c.k, c.n] != dims {
            return Err(AuditError::Commitment { index, what: format!("step {} layer {} {}", id.step, id.layer, id.kind.name()) });
        }
    }
    let hashes = crate::commit::commit_leaves(resp.commits.iter().map(|(_, c)| c));
    let leaves: Vec<(u64, Hash)> = resp.commits.iter().map(|(i, _)| *i).zip(hashes).collect();
    if !leaves.is_empty() && merkle::root_of_many(receipt.gemm_count, &leaves, &resp.proof) != Some(receipt.gemm_root) {
        return Err(AuditError::Commitment { index: leaves[0].0, what: "the openings' proof into the GEMM root".into() });
    }
    // GEMMs.
    // Openings of other GEMMs or rows than the selected ones answer another challenge.
    if resp.gemms.iter().map(|(i, _)| *i).collect::<Vec<_>>() != want_gemms {
        return Err(AuditError::OtherChallenge("opened GEMMs are not the selected ones".into()));
    }
    if let Some(&(step, row)) = want_rows.first() {
        // A row chain opens its step's layer-0 q input at its row first.
        let q0 = sched.iter().position(|(id, _)| id.step == step && id.layer == 0 && id.kind == GemmKind::Q);
        if !resp.rows.first().is_some_and(|o| Some(o.index as usize) == q0 && o.row == row && !o.is_y) {
            return Err(AuditError::OtherChallenge("opened rows are not the selected ones".into()));
        }
    }
    let mut weights = WeightChecks::of(resp.gemms.iter().map(|(i, _)| &sched[*i as usize].0));
    for (index, data) in &resp.gemms {
        let (id, _) = sched[*index as usize];
        let what = format!("step {} layer {} {}", id.step, id.layer, id.kind.name());
        if resp.commit(*index) != Some(&data.commit) {
            return Err(AuditError::Commitment { index: *index, what });
        }
        match check_gemm(sku, &rh, &mut weights, ch, *index, data) {
            Ok(()) => {}
            Err(GemmFault::Commitment) => return Err(AuditError::Commitment { index: *index, what }),
            Err(GemmFault::Freivalds) => return Err(AuditError::Freivalds { index: *index, what }),
        }
    }
    // Row chains. Every opened row's leaf is hashed up front, rows of one length side by side.
    let leaves = crate::row_leaves::leaves_of(&resp.rows.iter().map(|o| &o.bytes[..]).collect::<Vec<_>>());
    let mut rows = resp.rows.iter().zip(leaves.iter());
    for &(step, row) in &want_rows {
        let mut derived = Vec::new();
        let walked = check_chain(sku, receipt, &sched, step, row, chain, resp, &mut rows, &mut derived);
        // The derived rows' proofs, hashed side by side after the walk. Every derived row
        // precedes the point where the walk stopped, so a failing one is the first failure in
        // the chain's order and is the one reported.
        derived_rows_hold(step, row, &derived)?;
        walked?;
    }
    if rows.next().is_some() {
        return Err(AuditError::Response("extra rows".into()));
    }
    Ok(())
}

/// A row the chain derived (q, gate, down and logits inputs: `schedule::derived`), which the
/// answer opens by its proof alone: the bytes the verifier computed, the root and position
/// the proof must reach, and what to call it if it does not.
struct DerivedRow<'a> {
    bytes: Vec<u8>,
    root: Hash,
    at: u64,
    size: u64,
    proof: &'a [Hash],
    layer: u32,
    /// The row's role: "attention input", "feed-forward input", "down input", "final norm".
    what: &'static str,
}

/// Each derived row's proof against the leaf of the bytes the verifier derived, sixteen leaves
/// hashed side by side; the first that fails, as a chain error.
fn derived_rows_hold(step: u32, row: u32, derived: &[DerivedRow<'_>]) -> Result<(), AuditError> {
    let leaves = crate::row_leaves::leaves_of(&derived.iter().map(|d| &d.bytes[..]).collect::<Vec<_>>());
    match derived.iter().zip(&leaves).find(|(d, leaf)| !merkle::verify(&d.root, leaf, d.at, d.size, d.proof)) {
        Some((d, _)) => {
            let what = if d.what == "final norm" { d.what.to_string() } else { format!("layer {} {}", d.layer, d.what) };
            Err(AuditError::Chain { step, row, what })
        }
        None => Ok(()),
    }
}

/// Walk one row chain (`spec/verification.md` check 3), collecting the rows it derives for
/// [`derived_rows_hold`].
#[allow(clippy::too_many_arguments)]
fn check_chain<'a>(
    sku: &Sku,
    r: &InferenceReceipt,
    sched: &[(GemmId, [u32; 3])],
    step: u32,
    row: u32,
    chain: ChainKind,
    resp: &Response<'_>,
    opened: &mut impl Iterator<Item = (&'a OpenRow<'a>, &'a Hash)>,
    derived: &mut Vec<DerivedRow<'a>>,
) -> Result<(), AuditError> {
    let c = &sku.config;
    let d = c.d_model as usize;
    let err = |what: &str| AuditError::Chain { step, row, what: what.into() };
    let rows = step_rows(r, step);
    let &(seq, token) = rows.get(row as usize).ok_or_else(|| err("row out of range"))?;
    // The step's GEMMs by (layer, kind), looked up once rather than searched per row.
    let first = sched.partition_point(|(id, _)| id.step < step);
    let in_step = &sched[first..first + sched[first..].partition_point(|(id, _)| id.step == step)];
    // The first GEMM of each (layer, kind) in the step, in one pass (a chain asks for ~240).
    let kinds = GemmKind::ALL.len();
    let mut at = vec![usize::MAX; (c.layers as usize + 1) * kinds];
    for (i, (id, _)) in in_step.iter().enumerate().rev() {
        if let Some(slot) = at.get_mut(id.layer as usize * kinds + id.kind as usize) {
            *slot = first + i;
        }
    }
    let index_of = |layer: u32, kind: GemmKind| at.get(layer as usize * kinds + kind as usize).copied().filter(|&i| i != usize::MAX);
    // Open and authenticate each planned row. A row the verifier derives (`derive`: its scale
    // and values as computed here) must come without bytes; its proof is checked against the
    // derived bytes after the walk ([`derived_rows_hold`]).
    let mut open = |kind: GemmKind, layer: u32, is_y: bool, at: u32, derive: Option<(Scale, &[i8], &'static str)>| -> Result<(&'a [u8], u8), AuditError> {
        let (o, leaf) = opened.next().ok_or_else(|| err("missing row"))?;
        let idx = index_of(layer, kind).ok_or_else(|| err("no such GEMM"))? as u64;
        let (id, dims) = sched[idx as usize];
        let cm = resp.commit(o.index).ok_or_else(|| err("a row of a GEMM the answer does not commit"))?;
        let root = if is_y { cm.y_root } else { cm.x_root };
        let size = cm.m as u64;
        let ok = o.index == idx && o.is_y == is_y && o.row == at && cm.id() == Some(id) && [cm.m, cm.k, cm.n] == dims;
        let opening = || err(&format!("opening of layer {layer} {} {}", kind.name(), if is_y { "y" } else { "x" }));
        match derive {
            _ if !ok => return Err(opening()),
            None if !merkle::verify(&root, leaf, at as u64, size, &o.row_proof) => return Err(opening()),
            None => {}
            Some(_) if !o.bytes.is_empty() => return Err(err(&format!("layer {layer} {} x row sent, not derived", kind.name()))),
            Some((scale, row, what)) => {
                derived.push(DerivedRow { bytes: crate::commit::x_row_bytes(scale, row), root, at: at as u64, size, proof: &o.row_proof, layer, what });
            }
        }
        Ok((&o.bytes, cm.y_bytes))
    };
    // A Y row's elements from its committed bytes at its GEMM's `y_bytes`: four-byte rows are
    // read in place where the CPU is little-endian and the bytes are aligned (a decoded answer
    // pads each row to a multiple of four from its start, and its buffer is the allocator's,
    // so they are); narrower ones are sign-extended into a copy.
    let as_i32 = |(b, w): (&'a [u8], u8)| -> Result<std::borrow::Cow<'a, [i32]>, AuditError> {
        if w == 4 && cfg!(target_endian = "little") {
            if let Ok(v) = bytemuck::try_cast_slice::<u8, i32>(b) {
                return Ok(std::borrow::Cow::Borrowed(v));
            }
        }
        crate::narrow_y::from_bytes(b, w).map(std::borrow::Cow::Owned).ok_or_else(|| err("a y row's length"))
    };
    let x_scale = |b: &[u8]| -> Scale {
        let word = |i: usize| b.get(i..i + 4).map_or(0, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        Scale { m: word(0), e: word(4) }
    };
    // With products: `y = x·Wᵀ` for the row, recomputed exactly.
    let products = chain == ChainKind::WithProducts;
    let product = |kind: GemmKind, layer: u32, x: &[i8], y: &[i32]| -> Result<(), AuditError> {
        let w = weight(sku, &GemmId { step, layer, kind, seq: 0, head: 0 }).ok_or_else(|| err("no weight"))?;
        if row_product_holds(&w.q, w.rows, w.cols, x, y) {
            Ok(())
        } else {
            Err(err(&format!("layer {layer} {} product", kind.name())))
        }
    };
    let row_i8 = |b: &[u8]| -> Vec<i8> { b.get(8..).unwrap_or_default().iter().map(|&v| v as i8).collect() };
    // The layer math on the engine's kernels, each equal to its `layer` definition on every
    // path (their tests), so the verdict does not depend on the verifier's CPU.
    let isa = Isa::detect();
    let norm_quantize = |x: &[i32], gain: &[i32], h: &mut [i32], xq: &mut [i8]| -> Scale {
        kernels::rms_norm(isa, x, gain, c.eps_q32, h);
        kernels::quantize(isa, h, xq)
    };
    let mut x = vec![0i32; d];
    sku.embed.row_q16(token as usize, &mut x);
    let (mut h, mut xq) = (vec![0i32; d], vec![0i8; d]);
    for (l, lw) in sku.layers.iter().enumerate() {
        let l = l as u32;
        let sx = norm_quantize(&x, &lw.attn_norm, &mut h, &mut xq);
        open(GemmKind::Q, l, false, row, Some((sx, &xq, "attention input")))?;
        if products {
            for kind in [GemmKind::Q, GemmKind::K, GemmKind::V] {
                product(kind, l, &xq, &as_i32(open(kind, l, true, row, None)?)?)?;
            }
        }
        let ox = open(GemmKind::O, l, false, row, None)?.0;
        let oy = as_i32(open(GemmKind::O, l, true, row, None)?)?;
        if oy.len() != d || lw.wo.scales.len() != d {
            return Err(err("o row width"));
        }
        if products {
            product(GemmKind::O, l, &row_i8(ox), &oy)?;
        }
        kernels::dequant_into(isa, &mut x, &oy, &[x_scale(ox)], &lw.wo.scales, None, true);
        let sx = norm_quantize(&x, &lw.ffn_norm, &mut h, &mut xq);
        open(GemmKind::Gate, l, false, row, Some((sx, &xq, "feed-forward input")))?;
        let gy = as_i32(open(GemmKind::Gate, l, true, row, None)?)?;
        let uy = as_i32(open(GemmKind::Up, l, true, row, None)?)?;
        let f = c.ffn as usize;
        if gy.len() != f || uy.len() != f || lw.w_gate.scales.len() != f || lw.w_up.scales.len() != f {
            return Err(err("gate/up row width"));
        }
        if products {
            product(GemmKind::Gate, l, &xq, &gy)?;
            product(GemmKind::Up, l, &xq, &uy)?;
        }
        let (mut hq, mut sh) = (vec![0i8; f], [Scale::ZERO]);
        kernels::swiglu_quantize(isa, &gy, &uy, &[sx], &lw.w_gate.scales, &lw.w_up.scales, &mut hq, &mut sh);
        open(GemmKind::Down, l, false, row, Some((sh[0], &hq, "down input")))?;
        let dy = as_i32(open(GemmKind::Down, l, true, row, None)?)?;
        if dy.len() != d || lw.w_down.scales.len() != d {
            return Err(err("down row width"));
        }
        if products {
            product(GemmKind::Down, l, &hq, &dy)?;
        }
        kernels::dequant_into(isa, &mut x, &dy, &sh, &lw.w_down.scales, None, true);
    }
    if let Some(li) = last_row_index(r, step, row) {
        let sx = norm_quantize(&x, &sku.out_norm, &mut h, &mut xq);
        open(GemmKind::Logits, c.layers, false, li, Some((sx, &xq, "final norm")))?;
        let ly = as_i32(open(GemmKind::Logits, c.layers, true, li, None)?)?;
        if ly.len() != c.vocab as usize || sku.output.scales.len() != ly.len() {
            return Err(err("logits row width"));
        }
        if products {
            product(GemmKind::Logits, c.layers, &xq, &ly)?;
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
