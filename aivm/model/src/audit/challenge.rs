//! The challenge (a seed and how much to open) and what is drawn from it: which GEMMs,
//! which row chains, and the Freivalds vectors. Every draw is a BLAKE3 XOF bound to the seed,
//! the receipt and a purpose, so neither side can steer it once the seed is fixed.

use super::schedule::step_rows;
use crate::commit::InferenceReceipt;
use crate::engine::{GemmId, GemmKind};
use crate::merkle::Hash;
use serde::{Deserialize, Serialize};

/// What the verifier asks for: `gemms` GEMMs (0 = all) and `rows` row chains, chosen by `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub seed: Hash,
    pub gemms: u32,
    pub rows: u32,
}

/// A BLAKE3 XOF bound to the challenge, the receipt and a purpose.
pub(super) fn xof(ch: &Challenge, receipt: &Hash, what: &[u8], index: u64) -> blake3::OutputReader {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-11 freivalds challenge v1");
    h.update(&ch.seed);
    h.update(receipt);
    h.update(what);
    h.update(&index.to_le_bytes());
    h.finalize_xof()
}

pub(super) fn draw(x: &mut blake3::OutputReader, bound: u64) -> u64 {
    let mut b = [0u8; 8];
    x.fill(&mut b);
    // 2^64 mod bound bias is < bound / 2^64: negligible for these sizes.
    u64::from_le_bytes(b) % bound.max(1)
}

/// What a check opens: GEMM indices in order, and (step, row) chains.
pub type Selection = (Vec<u64>, Vec<(u32, u32)>);

/// Which GEMM indices and which (step, row) chains the challenge selects.
pub fn select(ch: &Challenge, r: &InferenceReceipt, sched: &[(GemmId, [u32; 3])]) -> Selection {
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

/// What a dispute opens at step `step`: the row chain of the step's last row (whose logits
/// decide the token the step produced), with every weight product along it recomputed
/// exactly (`ChainKind::WithProducts`), and no whole GEMM: a prompt step of any length is
/// answered with one row per GEMM. Attention's own GEMMs are not opened: they are not linked to
/// their neighbours yet (`spec/verification.md`). One sequence per job.
pub fn step_selection(r: &InferenceReceipt, _sched: &[(GemmId, [u32; 3])], step: u32) -> Result<Selection, super::AuditError> {
    let rows = step_rows(r, step).len() as u32;
    if rows == 0 || r.prompts.len() != 1 {
        return Err(super::AuditError::Response(format!("step {step} has no row to dispute")));
    }
    Ok((Vec::new(), vec![(step, rows - 1)]))
}

/// Framing of one opened GEMM or row beyond its data and proofs: index, commitment, counts
/// and flags (about 150 bytes in [`super::Response::encode`]'s form), rounded up.
const ITEM_FRAMING: u64 = 256;

/// Hashes in a Merkle proof over `n` leaves: ⌈log₂ n⌉.
fn proof_hashes(n: u64) -> u64 {
    u64::from(64 - n.max(1).saturating_sub(1).leading_zeros())
}

/// An upper bound on the encoded size of [`super::respond_step`]'s answer at `step`, from the
/// model's shapes and the receipt alone (what the chain knows when a dispute is filed).
pub fn step_answer_bytes(sku: &crate::sku::Sku, r: &InferenceReceipt, sched: &[(GemmId, [u32; 3])], step: u32) -> Result<u64, super::AuditError> {
    let (gemms, rows) = step_selection(r, sched, step)?;
    let gemm_proof = 32 * proof_hashes(sched.len() as u64);
    let mut bytes: u64 = 8;
    for i in gemms {
        let [m, k, n] = sched[i as usize].1.map(u64::from);
        // X with its scales, Y at most four bytes an element (weight GEMMs carry no right
        // operand).
        bytes = bytes.saturating_add(m * k + 8 * m + 4 * m * n + ITEM_FRAMING + gemm_proof);
    }
    for (step, row) in rows {
        for (kind, layer, is_y, _) in super::schedule::chain_plan(sku, r, step, row, super::schedule::ChainKind::WithProducts) {
            let [m, k, n] = super::schedule::find(sched, step, layer, kind).map_or([0; 3], |i| sched[i].1).map(u64::from);
            let row_bytes = if is_y { 4 * n } else { k + 8 }; // Y at most four bytes an element
            bytes = bytes.saturating_add(row_bytes + ITEM_FRAMING + gemm_proof + 32 * proof_hashes(m));
        }
    }
    Ok(bytes)
}

/// Random vectors per checked GEMM: each entry uniform over the 256 values of i8, so a
/// wrong row survives one vector with probability ≤ 1/256 and all of them with ≤ 2^-64.
pub const VECTORS: usize = 8;

/// The random vectors for GEMM `index`: `VECTORS` rows of `n` entries. Attention GEMMs (their
/// right operand is the run's own cache) draw their own.
pub fn vectors(ch: &Challenge, rh: &Hash, index: u64, n: usize) -> Vec<Vec<i8>> {
    fill(xof(ch, rh, b"vectors", index), n)
}

/// The random vectors for the weight of `(layer, kind)`: every selected GEMM that multiplies
/// by that weight is checked against the same eight, so `G = R·W` (one pass over W) is
/// computed once per weight per challenge. Still ≤ 2⁻⁶⁴ per wrong GEMM: each GEMM's error is
/// fixed before the vectors exist (`spec/verification.md`, "Soundness").
pub fn weight_vectors(ch: &Challenge, rh: &Hash, layer: u32, kind: GemmKind, n: usize) -> Vec<Vec<i8>> {
    fill(xof(ch, rh, b"weight vectors", (u64::from(layer) << 8) | kind as u64), n)
}

fn fill(mut x: blake3::OutputReader, n: usize) -> Vec<Vec<i8>> {
    (0..VECTORS)
        .map(|_| {
            let mut b = vec![0u8; n];
            x.fill(&mut b);
            b.into_iter().map(|v| v as i8).collect()
        })
        .collect()
}
