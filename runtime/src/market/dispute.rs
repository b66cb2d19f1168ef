//! Disputes (`spec/market.md` §6a): a bonded verifier that re-ran a settled job in full and got
//! a different output files its own receipt. Execution is deterministic, so the two runs first
//! differ at one step `s`, and one of them is wrong there. The worker must open every GEMM of
//! step `s` and the row chain of its last row (the logits that chose the token) under a
//! challenge drawn after the dispute; the chain checks them at once. Opened and correct: the
//! verifier made a false report and is slashed. Wrong, malformed or unanswered: the worker is
//! slashed in full, the verifier is paid the prover's share and the client is refunded from
//! the slashed stake.

use super::exec::{event, MarketCtx};
use super::jobs::{check_answer, job, state_name, take};
use super::ledger::{Abort, Ledger, Step};
use super::params::{SLASH_FALSE_REPORT_BPS, SLASH_WRONG_OUTPUT_BPS};
use super::split::FeeSplit;
use super::state::{Bond, Job, JobStatus, MarketKey, Treasury};
use super::tx::{JobId, Role};
use super::{MarketError, MarketParams};
use crate::receipt::LogEvent;
use aivm::model::audit::{check_step, schedule, step_answer_bytes};
use aivm::model::commit::InferenceReceipt;

fn receipt_of(bytes: &[u8]) -> Step<InferenceReceipt> {
    ciborium::from_reader(bytes).map_err(|e| Abort::Fail(MarketError::Invalid(format!("receipt: {e}"))))
}

/// The first output position where `a` and `b` differ (one ending early counts).
fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i),
        None if a.len() != b.len() => Some(a.len().min(b.len())),
        None => None,
    }
}

pub fn dispute(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, claim: &[u8], events: &mut Vec<LogEvent>) -> Step<()> {
    let mut j = job(l, id)?;
    let (output, receipt, until, provisional) = match &j.status {
        JobStatus::Settled { output, receipt, until, .. } => (output, receipt, until, None),
        // The optimistic track's fraud proof is the same dispute (`spec/tee.md` §5).
        JobStatus::Provisional { at, output, receipt, until, checked } => (output, receipt, until, Some((*at, *checked))),
        s => return Err(MarketError::WrongState(state_name(s)).into()),
    };
    if ctx.height > *until {
        return Err(MarketError::TooLate(format!("disputes closed at block {until}")).into());
    }
    let verifier: Bond = l.get(MarketKey::Bond(&Role::Verifier, &ctx.sender))?.unwrap_or_default();
    if verifier.bonded < params.min_verifier_stake {
        return Err(MarketError::BelowMinimum { have: verifier.bonded, min: params.min_verifier_stake }.into());
    }
    let theirs = receipt_of(claim)?;
    if crate::encoding::cbor(&theirs) != claim {
        return Err(MarketError::Invalid("receipt encoding is not canonical".into()).into());
    }
    // An output past `max_new` would put the difference at a step the worker never ran.
    let fits = theirs.sku == j.sku
        && theirs.max_new == j.max_new
        && theirs.prompts.len() == 1
        && theirs.prompts[0] == j.prompt
        && theirs.outputs.len() == 1
        && theirs.outputs[0].len() <= j.max_new as usize;
    if !fits {
        return Err(MarketError::Invalid("the receipt is not for this job".into()).into());
    }
    let Some(step) = first_difference(output, &theirs.outputs[0]) else {
        return Err(MarketError::Invalid("the outputs agree: nothing to dispute".into()).into());
    };
    // The worker's output has `len` tokens produced by steps 0..len; a step past them (the
    // verifier's run is longer) is the step where the worker's run ended.
    let step = u32::try_from(step).map_err(|_| MarketError::Overflow)?;
    // The worker must be able to answer: bound its openings from the model's shapes (deriving
    // the run's schedule, priced as in an answer) before accepting the dispute.
    let r = receipt_of(receipt).map_err(|_| MarketError::Corrupt("receipt".into()))?;
    l.charge(r.gemm_count.checked_mul(super::jobs::SCHEDULE_GAS_PER_GEMM))?;
    let models = ctx.models.ok_or_else(|| Abort::Fault("this node has no model registry to check disputes with".into()))?;
    let engine = models.engine(&j.sku).map_err(|e| Abort::Fault(format!("registered model {} cannot be loaded: {e}", hex::encode(j.sku))))?;
    let sched = schedule(&engine.sku, &r).map_err(|e| MarketError::Corrupt(format!("settled receipt: {e}")))?;
    let need = step_answer_bytes(&engine.sku, &r, &sched, step).map_err(|e| MarketError::Invalid(e.to_string()))?;
    if need > params.max_answer_bytes {
        return Err(MarketError::Invalid(format!(
            "the worker could not answer a dispute at step {step}: its openings need up to {need} bytes, over {}",
            params.max_answer_bytes
        ))
        .into());
    }
    j.status = JobStatus::Disputed { at: ctx.height, verifier: ctx.sender, step, output: output.clone(), receipt: receipt.clone(), until: *until, provisional };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("job.disputed", [&id[..], &ctx.sender[..], &step.to_le_bytes()[..]].concat()));
    Ok(())
}

/// The worker's openings of the disputed step.
pub fn answer(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, j: Job, response: &[u8], events: &mut Vec<LogEvent>) -> Step<()> {
    let JobStatus::Disputed { at, step, receipt, .. } = &j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    let step = *step;
    let (_, verdict) = check_answer(ctx, l, params, id, &j, *at, receipt, response, super::jobs::AnswerKind::Dispute, |sku, hash, r, seed, resp| {
        check_step(sku, hash, r, seed, step, resp)
    })?;
    match verdict {
        Ok(()) => verifier_loses(ctx, l, id, j, events),
        Err(why) => worker_loses(ctx, l, params, id, j, format!("wrong output at step {step}: {why}"), events),
    }
}

/// The worker was wrong (or did not answer): slashed in full; the verifier gets the prover's
/// share; the client gets its fee back out of the rest (as far as it goes); the remainder burns.
pub fn worker_loses(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    mut j: Job,
    reason: String,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    let JobStatus::Disputed { verifier, provisional, .. } = j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    super::quality::score(ctx, l, params, &j.sku, &j.worker, false, events)?;
    if provisional.is_some() {
        return provisional_worker_loses(ctx, l, id, j, verifier, reason, events);
    }
    // The job's units were freed at settlement.
    let s = take(l, &Role::Worker { sku: j.sku }, &j.worker, SLASH_WRONG_OUTPUT_BPS, 0)?;
    let refund = s.burn.min(j.fee);
    l.credit(&j.client, refund)?;
    // The verifier's bounty: the prover's share of the slash, plus the verifiers' 5 % of the
    // job's fee back out of the verifiers' pot (as far as the pot goes).
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    let bounty = FeeSplit::of(j.fee).verifiers.min(t.verifiers);
    t.verifiers -= bounty;
    l.credit(&verifier, s.prover.checked_add(bounty).ok_or(MarketError::Overflow)?)?;
    t.burned = t.burned.checked_add(s.burn - refund).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    j.status = JobStatus::Slashed { at: ctx.height, taken: s.taken, reason };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("job.slashed", [&id[..], &j.worker[..], &s.taken.to_le_bytes()[..]].concat()));
    Ok(())
}

/// A provisional job proven wrong: the fee was never paid out, so the client gets it back from
/// escrow; the worker is slashed in full and frees its units; the verifier gets the prover's
/// share; the rest burns.
fn provisional_worker_loses(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    id: &JobId,
    mut j: Job,
    verifier: crate::state::Address,
    reason: String,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    let s = take(l, &Role::Worker { sku: j.sku }, &j.worker, SLASH_WRONG_OUTPUT_BPS, j.units)?;
    l.credit(&j.client, j.fee)?;
    l.credit(&verifier, s.prover)?;
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    t.burned = t.burned.checked_add(s.burn).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    j.status = JobStatus::Slashed { at: ctx.height, taken: s.taken, reason };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("job.slashed", [&id[..], &j.worker[..], &s.taken.to_le_bytes()[..]].concat()));
    Ok(())
}

/// The worker opened the step correctly: the verifier's report was false. It loses
/// [`SLASH_FALSE_REPORT_BPS`]; the worker gets the prover's share; the job is settled again.
fn verifier_loses(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, id: &JobId, mut j: Job, events: &mut Vec<LogEvent>) -> Step<()> {
    let JobStatus::Disputed { verifier, output, receipt, until, provisional, .. } = j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    let s = take(l, &Role::Verifier, &verifier, SLASH_FALSE_REPORT_BPS, 0)?;
    l.credit(&j.worker, s.prover)?;
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    t.burned = t.burned.checked_add(s.burn).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    j.status = match provisional {
        Some((at, checked)) => JobStatus::Provisional { at, output, receipt, until, checked },
        None => JobStatus::Settled { at: ctx.height, output, receipt, until },
    };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("dispute.rejected", [&id[..], &verifier[..], &s.taken.to_le_bytes()[..]].concat()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn where_two_outputs_part() {
        assert_eq!(first_difference(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_difference(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(first_difference(&[1, 2, 3], &[1]), Some(1));
        assert_eq!(first_difference(&[], &[4]), Some(0));
    }
}
