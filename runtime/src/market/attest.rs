//! Paying verifiers for re-executions (`spec/market.md` §6d). A verifier that re-ran a settled
//! job it is sampled for (`BLAKE3(job ‖ verifier)` below the genesis α) and agrees with it
//! says so with **Attest**; a challenge drawn from the next block's beacon then names GEMMs of
//! the run, which the verifier must open from its own trace (**AttestAnswer**), checked like a
//! worker's answer against the job's receipt. Deterministic execution gives an honest
//! verifier's trace the worker's GEMM root, so only a verifier holding the run's trace can
//! answer: checked, it is paid the job's verifiers' share (5 % of its fee) out of the
//! treasury's verifiers' pot, as far as the pot goes; wrong or never answered (anyone may then
//! send **ExpireAttestation**), its claim was false and it loses 10 % of its bond.

use super::exec::{event, MarketCtx};
use super::jobs::{answer_deadline, job, state_name, take, AnswerKind};
use super::ledger::{Abort, Ledger, Step};
use super::params::SLASH_FALSE_REPORT_BPS;
use super::split::FeeSplit;
use super::state::{Attestation, BeaconRecord, Bond, JobStatus, MarketKey, Treasury};
use super::tx::{JobId, Role};
use super::{MarketError, MarketParams};
use crate::receipt::LogEvent;
use crate::state::Address;
use aivm::model::audit::{check_response, Challenge, Response};
use aivm::model::commit::InferenceReceipt;

/// Whether `verifier` is sampled for `job` at `ppm` parts per million: the first 8 bytes of
/// `BLAKE3(job ‖ verifier)` (little-endian) below `⌊ppm·2⁶⁴/10⁶⌋`. Public and fixed, so a
/// worker cannot steer which verifiers check it, and each verifier samples independently.
pub fn sampled(job: &JobId, verifier: &Address, ppm: u32) -> bool {
    let h = blake3::hash(&[&job[..], &verifier[..]].concat());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0xff; 8]));
    let bound = (u128::from(ppm.min(1_000_000)) << 64) / 1_000_000;
    u128::from(x) < bound
}

/// The challenge of an attestation made at `at`: from block `at + 1`'s beacon, the job and the
/// verifier (two verifiers of one job draw different GEMMs), `gemms` GEMMs, no row chain.
pub fn challenge(beacon: &[u8; 32], job: &JobId, verifier: &Address, gemms: u32) -> Challenge {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 verifier attestation v1");
    h.update(beacon);
    h.update(job);
    h.update(verifier);
    Challenge { seed: *h.finalize().as_bytes(), gemms: gemms.max(1), rows: 0 }
}

/// The worker's receipt of a job that settled (also while it is disputed).
fn settled_receipt(status: &JobStatus) -> Option<&[u8]> {
    match status {
        JobStatus::Settled { receipt, .. } | JobStatus::Disputed { receipt, provisional: None, .. } => Some(receipt),
        _ => None,
    }
}

pub fn attest(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, events: &mut Vec<LogEvent>) -> Step<()> {
    let j = job(l, id)?;
    let JobStatus::Settled { until, .. } = &j.status else { return Err(MarketError::WrongState(state_name(&j.status)).into()) };
    if ctx.height > *until {
        return Err(MarketError::TooLate(format!("attestations closed at block {until}")).into());
    }
    let me = ctx.sender;
    let b: Bond = l.get(MarketKey::Bond(&Role::Verifier, &me))?.unwrap_or_default();
    if b.bonded < params.min_verifier_stake {
        return Err(MarketError::BelowMinimum { have: b.bonded, min: params.min_verifier_stake }.into());
    }
    if !sampled(id, &me, params.verify_sample_ppm) {
        return Err(MarketError::Invalid("this job is not in this verifier's sample".into()).into());
    }
    if l.get::<Attestation>(MarketKey::Attestation(id, &me))?.is_some() {
        return Err(MarketError::Invalid("already attested".into()).into());
    }
    l.put(MarketKey::Attestation(id, &me), &Attestation { at: ctx.height, open: true, paid: 0, slashed: 0 })?;
    events.push(event("job.attested", [&id[..], &me[..]].concat()));
    Ok(())
}

pub fn answer(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, response: &[u8], events: &mut Vec<LogEvent>) -> Step<()> {
    let me = ctx.sender;
    let mut a: Attestation = l.get(MarketKey::Attestation(id, &me))?.ok_or_else(|| MarketError::Invalid("no attestation of this job by the sender".into()))?;
    if !a.open {
        return Err(MarketError::Invalid("the attestation is closed".into()).into());
    }
    if ctx.height < a.at.saturating_add(2) {
        return Err(MarketError::TooEarly(format!("the challenge is drawn at block {}", a.at + 1)).into());
    }
    if ctx.height > answer_deadline(params, a.at) {
        return Err(MarketError::TooLate(format!("the answer deadline was block {}", answer_deadline(params, a.at))).into());
    }
    let j = job(l, id)?;
    let beacon: [u8; 32] = l.get::<BeaconRecord>(MarketKey::Beacon(a.at + 1))?.map(|b| *b).ok_or(MarketError::Corrupt("beacon".into()))?;
    l.charge(l.schedule().blake3.cost(response.len() as u64))?;
    let verdict = match (settled_receipt(&j.status), Response::decode(response)) {
        (None, _) => Err(format!("the job is {}", state_name(&j.status))),
        (_, None) => Err("the response is malformed".to_string()),
        (Some(receipt), Some(resp)) => {
            let r: InferenceReceipt = ciborium::from_reader(receipt).map_err(|_| MarketError::Corrupt("receipt".into()))?;
            l.charge(super::jobs::check_gas(l.schedule(), &r, &resp, AnswerKind::Challenge))?;
            let models = ctx.models.ok_or_else(|| Abort::Fault("this node has no model registry to verify answers with".into()))?;
            let engine = models.engine(&j.sku).map_err(|e| Abort::Fault(format!("registered model {} cannot be loaded: {e}", hex::encode(j.sku))))?;
            let ch = challenge(&beacon, id, &me, params.attest_gemms);
            check_response(&engine.sku, &engine.sku_hash, &r, &ch, &resp).map_err(|e| e.to_string())
        }
    };
    a.open = false;
    match verdict {
        Ok(()) => {
            let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
            let pay = FeeSplit::of(j.fee).verifiers.min(t.verifiers);
            t.verifiers -= pay;
            l.put(MarketKey::Treasury, &t)?;
            l.credit(&me, pay)?;
            a.paid = pay;
            events.push(event("job.attestation_paid", [&id[..], &me[..], &pay.to_le_bytes()[..]].concat()));
        }
        Err(why) => {
            a.slashed = lose(l, &me, None)?;
            events.push(event("job.attestation_failed", [&id[..], &me[..], why.as_bytes()].concat()));
        }
    }
    l.put(MarketKey::Attestation(id, &me), &a)
}

/// An attestation never answered by its deadline: the verifier loses 10 %, the sender gets
/// the prover's share of it.
pub fn expire(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, verifier: &Address, events: &mut Vec<LogEvent>) -> Step<()> {
    let mut a: Attestation = l.get(MarketKey::Attestation(id, verifier))?.ok_or_else(|| MarketError::Invalid("no such attestation".into()))?;
    if !a.open {
        return Err(MarketError::Invalid("the attestation is closed".into()).into());
    }
    let deadline = answer_deadline(params, a.at);
    if ctx.height <= deadline {
        return Err(MarketError::TooEarly(format!("the deadline is block {deadline}")).into());
    }
    a.open = false;
    a.slashed = lose(l, verifier, Some(ctx.sender))?;
    events.push(event("job.attestation_failed", [&id[..], &verifier[..], b"no answer"].concat()));
    l.put(MarketKey::Attestation(id, verifier), &a)
}

/// Slash a verifier's false claim: 10 % of its bond; the prover's share to `prover` (burned
/// when there is none), the rest burned.
fn lose(l: &mut Ledger<'_>, verifier: &Address, prover: Option<Address>) -> Step<u128> {
    let s = take(l, &Role::Verifier, verifier, SLASH_FALSE_REPORT_BPS, 0)?;
    let burn = match prover {
        Some(p) => {
            l.credit(&p, s.prover)?;
            s.burn
        }
        None => s.taken,
    };
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    t.burned = t.burned.checked_add(burn).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    Ok(s.taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_ppm() {
        let me = [7u8; 32];
        let hits = |ppm| (0u32..20_000).filter(|i| sampled(&blake3::hash(&i.to_le_bytes()).into(), &me, ppm)).count();
        assert_eq!(hits(0), 0);
        assert_eq!(hits(1_000_000), 20_000);
        let h = hits(100_000);
        assert!((1_800..2_200).contains(&h), "10 % of 20 000: {h}");
    }
}
