//! The shape of a run: the exact GEMM list a run with the receipt's prompts and outputs
//! performs, and the rows a row chain opens along it.

use super::AuditError;
use crate::commit::InferenceReceipt;
use crate::engine::{GemmId, GemmKind, MAX_BATCH};
use crate::sku::Sku;

/// The exact GEMM list a run performs, from the model shape and the receipt's token counts.
pub fn schedule(sku: &Sku, r: &InferenceReceipt) -> Result<Vec<(GemmId, [u32; 3])>, AuditError> {
    let c = &sku.config;
    let bad = |m: &str| Err(AuditError::Receipt(m.into()));
    if r.prompts.len() != r.outputs.len() || r.prompts.is_empty() || r.prompts.len() > MAX_BATCH {
        return bad("prompt and output counts");
    }
    if r.outputs.iter().any(|o| o.len() > r.max_new as usize) || r.prompts.iter().any(|p| p.is_empty()) {
        return bad("an output is longer than max_new, or a prompt is empty");
    }
    let (d, hd, kvd, f) = (c.d_model, c.head_dim, c.kv_heads * c.head_dim, c.ffn);
    let group = c.heads / c.kv_heads;
    // Its length, reserved up front (a run has thousands of GEMMs; growing the vector
    // copied it a dozen times): per step, seven weight GEMMs and two attention GEMMs per
    // active sequence and KV head a layer, and the logits. The steps are bounded by the
    // outputs' lengths, the sequences by MAX_BATCH.
    let steps = 1 + r.outputs.iter().map(Vec::len).max().unwrap_or(0);
    let per_step = (c.layers as usize).saturating_mul(7 + 2 * (c.kv_heads as usize).saturating_mul(r.prompts.len())).saturating_add(1);
    let mut out = Vec::with_capacity(steps.saturating_mul(per_step).min(1 << 24));
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
pub(super) fn step_rows(r: &InferenceReceipt, step: u32) -> Vec<(usize, u32)> {
    (0..r.prompts.len())
        .filter(|&s| step == 0 || (step as usize) <= r.outputs[s].len())
        .flat_map(|s| if step == 0 { r.prompts[s].iter().map(|&t| (s, t)).collect::<Vec<_>>() } else { vec![(s, r.outputs[s][step as usize - 1])] })
        .collect()
}

/// Index of a GEMM in the schedule.
pub(super) fn find(sched: &[(GemmId, [u32; 3])], step: u32, layer: u32, kind: GemmKind) -> Option<usize> {
    sched.iter().position(|(id, _)| id.step == step && id.layer == layer && id.kind == kind)
}

/// What a row chain checks. A challenge's chains link each layer's committed outputs to the
/// next layer's inputs (the products themselves are Freivalds-checked on the sampled GEMMs);
/// a dispute's chain also recomputes every weight product of its row exactly
/// (`y_row = x_row·Wᵀ`), so it needs no whole GEMM opened and fits any prompt length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChainKind {
    Linked,
    WithProducts,
}

/// Whether a chain's row is one the verifier derives itself: the X rows that follow a norm
/// or SwiGLU (q, gate, down and logits inputs) are `quantize(…)` of what the chain has
/// computed, so an answer carries only their proofs (`spec/verification.md`, "Response and
/// checks") and the verifier hashes the rows it derived.
pub(super) fn derived(kind: GemmKind, is_y: bool) -> bool {
    !is_y && matches!(kind, GemmKind::Q | GemmKind::Gate | GemmKind::Down | GemmKind::Logits)
}

/// The rows a chain opens, in order: per layer q.x (with products: then q.y, k.y, v.y),
/// o.x, o.y, gate.x, gate.y, up.y, down.x, down.y; then, for a sequence's last row, logits.x
/// and logits.y.
pub(super) fn chain_plan(sku: &Sku, r: &InferenceReceipt, step: u32, row: u32, kind: ChainKind) -> Vec<(GemmKind, u32, bool, u32)> {
    let mut plan = Vec::new();
    let qkv: &[(GemmKind, bool)] = if kind == ChainKind::WithProducts {
        &[(GemmKind::Q, false), (GemmKind::Q, true), (GemmKind::K, true), (GemmKind::V, true)]
    } else {
        &[(GemmKind::Q, false)]
    };
    for l in 0..sku.config.layers {
        for &(k, y) in qkv.iter().chain(&[
            (GemmKind::O, false),
            (GemmKind::O, true),
            (GemmKind::Gate, false),
            (GemmKind::Gate, true),
            (GemmKind::Up, true),
            (GemmKind::Down, false),
            (GemmKind::Down, true),
        ]) {
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
pub(super) fn last_row_index(r: &InferenceReceipt, step: u32, row: u32) -> Option<u32> {
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
