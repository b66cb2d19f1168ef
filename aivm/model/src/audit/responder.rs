//! The worker's side: answer a challenge from the run's trace.

use super::challenge::{select, Challenge};
use super::opening::{OpenRow, Response};
use super::schedule::{chain_plan, derived, find, schedule, ChainKind};
use super::AuditError;
use crate::commit::{x_row_bytes, InferenceReceipt, Trace};
use crate::merkle::{self, Hash};
use crate::sku::Sku;

/// The worker's answer to a challenge, from its trace.
pub fn respond(sku: &Sku, receipt: &InferenceReceipt, trace: &Trace, ch: &Challenge) -> Result<Response<'static>, AuditError> {
    let sched = checked_schedule(sku, receipt, trace)?;
    let (gemms, rows) = select(ch, receipt, &sched);
    open(sku, receipt, trace, &sched, gemms, rows, ChainKind::Linked)
}

/// The run's schedule, once the trace is known to fit it.
fn checked_schedule(sku: &Sku, receipt: &InferenceReceipt, trace: &Trace) -> Result<Vec<(crate::engine::GemmId, [u32; 3])>, AuditError> {
    let sched = schedule(sku, receipt)?;
    // The trace is a file: its GEMMs must have the shapes the run performs before any row of
    // them is indexed.
    let fits = sched.len() == trace.gemms().len()
        && sched.iter().zip(trace.gemms()).all(|((id, dims), g)| {
            let c = &g.commit;
            c.id() == Some(*id)
                && [c.m, c.k, c.n] == *dims
                && g.x.len() == c.m as usize * c.k as usize
                && g.y.len() == c.m as usize * c.n as usize
                && g.x_scales.len() == c.m as usize
        });
    if !fits {
        return Err(AuditError::Response("trace does not match the receipt".into()));
    }
    Ok(sched)
}

/// The worker's answer to a dispute at `step` ([`super::challenge::step_selection`]).
pub fn respond_step(sku: &Sku, receipt: &InferenceReceipt, trace: &Trace, step: u32) -> Result<Response<'static>, AuditError> {
    let sched = checked_schedule(sku, receipt, trace)?;
    let (gemms, rows) = super::challenge::step_selection(receipt, &sched, step)?;
    open(sku, receipt, trace, &sched, gemms, rows, ChainKind::WithProducts)
}

fn open(
    sku: &Sku,
    receipt: &InferenceReceipt,
    trace: &Trace,
    sched: &[(crate::engine::GemmId, [u32; 3])],
    gemms: Vec<u64>,
    rows: Vec<(u32, u32)>,
    chain: ChainKind,
) -> Result<Response<'static>, AuditError> {
    let mut resp = Response::default();
    for &i in &gemms {
        let data = trace.data(i as usize).ok_or_else(|| AuditError::Response(format!("no GEMM {i} in the trace")))?.into_owned();
        resp.gemms.push((i, data));
    }
    for (step, row) in rows {
        for (kind, layer, is_y, at) in chain_plan(sku, receipt, step, row, chain) {
            let idx = find(sched, step, layer, kind).ok_or_else(|| AuditError::Response("bad plan".into()))?;
            let g = &trace.gemms()[idx];
            let c = &g.commit;
            let (leaves_rows, bytes): (Vec<Hash>, Vec<u8>) = if is_y {
                let n = c.n as usize;
                let l = crate::commit::y_leaves(&g.y, n, c.y_bytes);
                (l, crate::narrow_y::to_bytes(&g.y[at as usize * n..(at as usize + 1) * n], c.y_bytes).into_owned())
            } else {
                let k = c.k as usize;
                let l = crate::commit::x_leaves(&g.x, &g.x_scales, k);
                // A row the verifier derives goes with its proof alone.
                let bytes = if derived(kind, false) { Vec::new() } else { x_row_bytes(g.x_scales[at as usize], &g.x[at as usize * k..(at as usize + 1) * k]) };
                (l, bytes)
            };
            resp.rows.push(OpenRow {
                index: idx as u64,
                is_y,
                row: at,
                bytes: bytes.into(),
                row_proof: merkle::prove(&leaves_rows, at as usize).unwrap_or_default(),
            });
        }
    }
    let mut indices: Vec<u64> = resp.gemms.iter().map(|(i, _)| *i).chain(resp.rows.iter().map(|o| o.index)).collect();
    indices.sort_unstable();
    indices.dedup();
    resp.commits = indices.iter().map(|&i| (i, trace.gemms()[i as usize].commit)).collect();
    if !indices.is_empty() {
        resp.proof = merkle::prove_many(&trace.leaves(), &indices).ok_or_else(|| AuditError::Response("GEMM indices outside the trace".into()))?;
    }
    Ok(resp)
}
