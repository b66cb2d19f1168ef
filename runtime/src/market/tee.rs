//! The optimistic TEE track (`spec/tee.md` §5; seeds 002 Algorithm 2 level 1 and 004): the
//! worker commits its receipt with an attestation that binds the job's tuple; the chain
//! verifies it at once and the result is **provisional**; it becomes **final** after the
//! challenge window unless a verifier proves it wrong with the Freivalds track's dispute. A
//! share ρ of provisional jobs is spot-checked: the beacon of the block after the commit
//! selects them, and their worker must answer the same challenge a Freivalds-track job gets.
//! An attestation that does not verify costs the worker half its stake.

use super::exec::{event, MarketCtx};
use super::jobs::{answer_deadline, challenge_seed, check_answer, committed_receipt, job, settle, slash, state_name, BEACONS_KEPT};
use super::ledger::{Ledger, Step};
use super::params::{SLASH_INVALID_ATTESTATION_BPS, SLASH_TIMEOUT_BPS, SLASH_WRONG_OUTPUT_BPS};
use super::state::{BeaconRecord, Job, JobStatus, MarketKey};
use super::tx::{JobId, Sku};
use super::{MarketError, MarketParams};
use crate::receipt::LogEvent;
use aivm::model::audit::{check_response, Challenge};
use aivm::model::commit::InferenceReceipt;
use aivm::tee::{token_hash, Evidence, JobClaim, TeeError};

/// The tuple an attestation of job `id` (on `sku`, for `prompt`) must bind, given the
/// receipt (decoded and as committed) and the enclave's time (`spec/tee.md` §1).
pub fn job_claim(id: &JobId, sku: &Sku, prompt: &[u32], r: &InferenceReceipt, receipt: &[u8], time_ms: u64) -> JobClaim {
    let output = r.outputs.first().map(Vec::as_slice).unwrap_or_default();
    JobClaim {
        job: *id,
        h_model: *sku,
        h_input: token_hash(prompt),
        h_output: token_hash(output),
        h_receipt: *blake3::hash(receipt).as_bytes(),
        time_ms,
        prompt_tokens: prompt.len() as u32,
        new_tokens: output.len() as u32,
        gemms: r.gemm_count,
    }
}

/// Whether a provisional job committed at `at` is spot-checked: the first 8 bytes of its
/// challenge seed (from block `at + 1`'s beacon), as a u64, fall under ρ of 2⁶⁴.
pub fn spot_checked(seed: &[u8; 32], ppm: u32) -> bool {
    let x = u64::from_le_bytes(seed[..8].try_into().unwrap_or([0; 8]));
    // x / 2⁶⁴ < ppm / 10⁶, exactly.
    (x as u128) * 1_000_000 < (ppm as u128) << 64
}

/// The spot-check decision of job `id` committed at `at`: `None` while block `at + 1`'s beacon
/// does not exist yet or no longer does.
fn spot(l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, at: u64) -> Step<Option<bool>> {
    Ok(l.get::<BeaconRecord>(MarketKey::Beacon(at + 1))?.map(|b| spot_checked(&challenge_seed(&b, id), params.tee.spot_check_ppm)))
}

#[allow(clippy::too_many_arguments)]
pub fn commit(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    receipt: &[u8],
    attestation: &Evidence,
    time_ms: u64,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    let mut j = job(l, id)?;
    if !j.tee {
        return Err(MarketError::Invalid("a Freivalds-track job is committed without an attestation".into()).into());
    }
    let r = committed_receipt(ctx, &j, receipt)?;
    if time_ms > ctx.time_ms {
        return Err(MarketError::Invalid(format!("the attestation's time {time_ms} is after the block's {}", ctx.time_ms)).into());
    }
    // Priced from the format and the input's size before anything is parsed; oversized
    // evidence is refused outright (nothing was attested to, nothing is slashed).
    let work = aivm::tee::work(attestation.format, &attestation.quote, &attestation.collateral).map_err(|e| MarketError::Invalid(e.to_string()))?;
    l.charge(l.schedule().tee_cost(attestation.format, work))?;
    let expected = aivm::tee::report_data(&job_claim(id, &j.sku, &j.prompt, &r, receipt, time_ms));
    let tee = &params.tee;
    match aivm::tee::verify_bound(attestation, &expected, ctx.time_ms / 1000, &tee.policy, &tee.measurements) {
        Ok(_) => {
            let until = ctx.height.saturating_add(tee.challenge_window);
            let output = r.outputs.first().cloned().unwrap_or_default();
            j.status = JobStatus::Provisional { at: ctx.height, output, receipt: receipt.to_vec(), until, checked: false };
            l.put(MarketKey::Job(id), &j)?;
            events.push(event("job.provisional", [&id[..], &until.to_le_bytes()[..]].concat()));
            Ok(())
        }
        Err(e @ TeeError::TooLarge { .. }) => Err(MarketError::Invalid(e.to_string()).into()),
        Err(e) => slash(ctx, l, params, id, j, SLASH_INVALID_ATTESTATION_BPS, None, format!("invalid attestation: {e}"), events),
    }
}

/// The worker's answer to a provisional job's spot check: the Freivalds track's challenge and
/// check. Right: the job stays provisional, checked. Wrong: slashed in full, client refunded.
pub fn answer_spot_check(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    mut j: Job,
    response: &[u8],
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    let (at, checked, receipt) = match &j.status {
        JobStatus::Provisional { at, checked, receipt, .. } => (*at, *checked, receipt.clone()),
        s => return Err(MarketError::WrongState(state_name(s)).into()),
    };
    if checked || spot(l, params, id, at)? == Some(false) {
        return Err(MarketError::Invalid("this job is not awaiting a spot check".into()).into());
    }
    let ch = |seed: [u8; 32]| Challenge { seed, gemms: params.challenge_gemms, rows: params.challenge_rows };
    let (_, verdict) = check_answer(ctx, l, params, id, &j, at, &receipt, response, super::jobs::AnswerKind::Challenge, |sku, hash, r, seed, resp| {
        check_response(sku, hash, r, &ch(*seed), resp)
    })?;
    match verdict {
        Ok(()) => {
            if let JobStatus::Provisional { checked, .. } = &mut j.status {
                *checked = true;
            }
            l.put(MarketKey::Job(id), &j)?;
            events.push(event("job.spot_checked", id.to_vec()));
            Ok(())
        }
        Err(why) => slash(ctx, l, params, id, j, SLASH_WRONG_OUTPUT_BPS, None, format!("wrong output at a spot check: {why}"), events),
    }
}

/// Pay a provisional job out once its challenge window has passed and any spot check was
/// answered: the Freivalds track's settlement (80/8/5/4/3). It is then final: no dispute.
pub fn finalize(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, events: &mut Vec<LogEvent>) -> Step<()> {
    let j = job(l, id)?;
    let JobStatus::Provisional { at, until, checked, receipt, .. } = &j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    if ctx.height <= *until {
        return Err(MarketError::TooEarly(format!("the challenge window ends at block {until}")).into());
    }
    let (at, checked, receipt) = (*at, *checked, receipt.clone());
    match spot(l, params, id, at)? {
        Some(true) if !checked => return Err(MarketError::Invalid("the job's spot check was not answered: it can only be expired".into()).into()),
        Some(_) => {}
        None => return Err(MarketError::TooLate(format!("block {}'s beacon is gone (kept {BEACONS_KEPT} blocks): the job can only be expired", at + 1)).into()),
    }
    let r: InferenceReceipt = ciborium::from_reader(&receipt[..]).map_err(|_| MarketError::Corrupt("receipt".into()))?;
    settle(ctx, l, params, id, j, &r, receipt, ctx.height, events)?;
    events.push(event("job.final", id.to_vec()));
    Ok(())
}

/// End a provisional job that cannot be finalized: its spot check went unanswered past the
/// deadline (the worker loses [`SLASH_TIMEOUT_BPS`], the sender gets the prover's share), or
/// it was never finalized while the spot-check decision could still be read (the client is
/// refunded, the worker is not paid, nothing is slashed since nobody can tell whether it was
/// checked).
pub fn expire(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, j: Job, events: &mut Vec<LogEvent>) -> Step<()> {
    let JobStatus::Provisional { at, checked, .. } = &j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    let (at, checked) = (*at, *checked);
    let deadline = answer_deadline(params, at);
    if ctx.height <= deadline {
        return Err(MarketError::TooEarly(format!("the spot check's deadline is block {deadline}")).into());
    }
    match spot(l, params, id, at)? {
        Some(true) if !checked => slash(ctx, l, params, id, j, SLASH_TIMEOUT_BPS, Some(ctx.sender), "no answer to a spot check".into(), events),
        Some(_) => Err(MarketError::Invalid("the job is not spot-checked or was answered: finalize it after its window".into()).into()),
        None => slash(ctx, l, params, id, j, 0, None, "never finalized".into(), events),
    }
}

#[cfg(test)]
mod tests {
    use super::spot_checked;

    #[test]
    fn the_spot_check_rate_is_exact() {
        let seed = |x: u64| {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&x.to_le_bytes());
            s
        };
        assert!(!spot_checked(&seed(0), 0));
        assert!(spot_checked(&seed(u64::MAX), 1_000_000));
        // 10 %: the threshold is ⌈2⁶⁴/10⌉.
        let t = ((1u128 << 64) / 10) as u64;
        assert!(spot_checked(&seed(t), 100_000));
        assert!(!spot_checked(&seed(t + 1), 100_000));
        let n = (0..100_000u64).filter(|i| spot_checked(blake3::hash(&i.to_le_bytes()).as_bytes(), 100_000)).count();
        assert!((9_500..10_500).contains(&n), "{n}");
    }
}
