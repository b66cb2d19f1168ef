//! A job's life (`spec/market.md` §6): submit (quote, escrow, assign) → commit (the worker's
//! receipt) → answer (openings for a challenge drawn from the beacon of the block after the
//! commit, verified at once) → settled or slashed; or expire when the worker misses a deadline.
//! Every job ends in exactly one of `Settled` or `Slashed` (the client refunded).

use super::exec::{event, model, MarketCtx};
use super::hmm::{amount_in, Pool};
use super::ledger::{Abort, Ledger, Step};
use super::params::{SLASH_TIMEOUT_BPS, SLASH_WRONG_OUTPUT_BPS};
use super::split::{FeeSplit, Slash};
use super::state::{BeaconRecord, Bond, Job, JobStatus, MarketKey, PendingCredits, Treasury, WorkerSet};
use super::tx::{JobId, Role, Sku};
use super::{MarketError, MarketParams};
use crate::receipt::LogEvent;
use crate::state::Address;
use aivm::model::audit::{check_response, Challenge, Response};
use aivm::model::commit::InferenceReceipt;

/// Blocks after `submitted_at` within which the worker must commit: twice the SLA.
fn commit_deadline(job: &Job) -> u64 {
    job.submitted_at.saturating_add(job.sla_blocks.saturating_mul(2))
}

/// The last block an answer to a commit at `at` is accepted in.
pub(super) fn answer_deadline(params: &MarketParams, at: u64) -> u64 {
    at.saturating_add(1).saturating_add(params.answer_window)
}

/// The challenge seed of a job committed at `at`: the beacon of block `at + 1`, which did not
/// exist when the receipt was committed, bound to the job.
pub fn challenge_seed(beacon: &[u8; 32], job: &JobId) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 market challenge v1");
    h.update(beacon);
    h.update(job);
    *h.finalize().as_bytes()
}

/// The beacon of a block. On a network, `entropy` is the consensus threshold signature over
/// the round of the block's parent (`spec/market.md` §6): unique for that round and
/// computable only by a quorum, so no proposer and no minority can choose it. Without it (the
/// runtime alone, the testkit, block 1) the beacon derives from the parent header hash.
pub fn beacon(parent_hash: &[u8; 32], entropy: Option<&[u8]>) -> [u8; 32] {
    match entropy {
        Some(seed) => {
            let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 block beacon v1 threshold seed");
            h.update(seed);
            *h.finalize().as_bytes()
        }
        None => {
            let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 block beacon v0");
            h.update(parent_hash);
            *h.finalize().as_bytes()
        }
    }
}

/// Beacons are kept this many blocks: longer than any answer window ([`MarketParams`] are
/// checked against it at genesis), so state does not grow by one entry per block forever.
pub const BEACONS_KEPT: u64 = 256;

/// The chain's writes for block `height`: its beacon `record` ([`beacon_record`]), and the
/// removal of the one that fell out of the window.
pub fn beacon_writes(height: u64, record: (crate::state::StateKey, crate::state::StateValue)) -> Vec<(crate::state::StateKey, crate::state::StateValue)> {
    use crate::state::StateValue;
    let mut w = vec![record];
    if let Some(old) = height.checked_sub(BEACONS_KEPT).filter(|h| *h > 0) {
        w.push((MarketKey::Beacon(old).state_key(), StateValue::Deleted));
    }
    w
}

/// Block `height`'s beacon record. It is known before the block's transactions run (from the
/// seed the block carries, or its parent's hash), and they read it: an answer to a challenge
/// the block draws may be in the block itself (`spec/market.md` §6).
pub fn beacon_record(height: u64, parent_hash: &[u8; 32], entropy: Option<&[u8]>) -> (crate::state::StateKey, crate::state::StateValue) {
    let record = crate::encoding::cbor(&serde_bytes::ByteArray::new(beacon(parent_hash, entropy)));
    (MarketKey::Beacon(height).state_key(), crate::state::StateValue::Bytes(record.into()))
}

#[allow(clippy::too_many_arguments)]
pub fn submit(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    sku: &Sku,
    prompt: &[u32],
    max_new: u32,
    sla_blocks: u64,
    budget: u128,
    tee: bool,
    events: &mut Vec<LogEvent>,
) -> Step<Vec<u8>> {
    let m = model(l, sku)?;
    let invalid = |s: String| Abort::Fail(MarketError::Invalid(s));
    if tee && !params.tee.enabled() {
        return Err(invalid("this chain has no TEE track (genesis trusts no measurement)".into()));
    }
    if prompt.is_empty() || prompt.len() > params.max_prompt_tokens as usize {
        return Err(invalid(format!("a prompt has 1 to {} tokens", params.max_prompt_tokens)));
    }
    if max_new == 0 || max_new > params.max_new_tokens {
        return Err(invalid(format!("max_new is 1 to {}", params.max_new_tokens)));
    }
    if sla_blocks == 0 || sla_blocks > params.max_sla_blocks {
        return Err(invalid(format!("the SLA is 1 to {} blocks", params.max_sla_blocks)));
    }
    if let Some(t) = prompt.iter().find(|&&t| t >= m.vocab) {
        return Err(invalid(format!("token {t} is outside the model's vocabulary of {}", m.vocab)));
    }
    let units = prompt.len() as u64 + max_new as u64;
    if units > m.max_ctx as u64 {
        return Err(invalid(format!("prompt and max_new are {units} tokens; the model's context is {}", m.max_ctx)));
    }
    let pool: Pool = l.get(MarketKey::Pool(sku))?.ok_or(MarketError::NoPool)?;
    let fee = amount_in(units as u128, pool.native, pool.units, pool.fee_bps)?;
    if fee > budget {
        return Err(MarketError::BudgetBelowQuote { quote: fee, budget }.into());
    }
    let job_id = ctx.tx_hash;
    if l.get::<Job>(MarketKey::Job(&job_id))?.is_some() {
        return Err(invalid("job exists".into()));
    }
    let worker = select_worker(l, params, sku, units, &job_id)?;
    let role = Role::Worker { sku: *sku };
    let mut b: Bond = l.get(MarketKey::Bond(&role, &worker))?.ok_or(MarketError::NoWorker)?;
    b.in_flight += units; // within capacity: checked by the selection
    l.put(MarketKey::Bond(&role, &worker), &b)?;
    l.debit_sender(fee)?;
    let job = Job {
        client: ctx.sender,
        worker,
        sku: *sku,
        prompt: prompt.to_vec(),
        max_new,
        sla_blocks,
        fee,
        units,
        submitted_at: ctx.height,
        tee,
        status: JobStatus::Assigned,
    };
    l.put(MarketKey::Job(&job_id), &job)?;
    events.push(event("job.assigned", [&job_id[..], &worker[..]].concat()));
    Ok(crate::encoding::cbor(&(serde_bytes::ByteArray::new(job_id), serde_bytes::ByteArray::new(worker), fee)))
}

/// The worker for a job of `units` on `sku`: among workers with at least the minimum bonded
/// and room for `units`, a draw weighted by bonded stake from BLAKE3 of the job id, walking
/// the set in address order.
fn select_worker(l: &mut Ledger<'_>, params: &MarketParams, sku: &Sku, units: u64, job: &JobId) -> Step<Address> {
    let set: WorkerSet = l.get(MarketKey::Workers(sku))?.unwrap_or_default();
    let role = Role::Worker { sku: *sku };
    let mut candidates = Vec::new();
    let mut total: u128 = 0;
    for w in &set.workers {
        let b: Bond = l.get(MarketKey::Bond(&role, w))?.unwrap_or_default();
        if eligible(params, &b, units) {
            total = total.checked_add(b.bonded).ok_or(MarketError::Overflow)?;
            candidates.push((**w, b.bonded));
        }
    }
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 worker selection v1");
    h.update(job);
    draw(&candidates, total, h.finalize().as_bytes()).ok_or_else(|| MarketError::NoWorker.into())
}

/// The stake-weighted draw both selection and quotes use: `eligible` workers (address order)
/// with their bonded stake summing to `total`; `d = u128_le(key[..16]) mod total`, and the
/// first worker whose running stake sum exceeds `d`. `None` if nobody is eligible.
pub fn draw(eligible: &[(Address, u128)], total: u128, key: &[u8; 32]) -> Option<Address> {
    if total == 0 {
        return None;
    }
    let d = u128::from_le_bytes(key[..16].try_into().unwrap_or([0; 16])) % total;
    let mut acc = 0u128;
    for (w, stake) in eligible {
        acc = acc.saturating_add(*stake);
        if d < acc {
            return Some(*w);
        }
    }
    None
}

/// Whether a worker's bond lets it take `units` more (selection and quotes alike).
pub fn eligible(params: &MarketParams, b: &Bond, units: u64) -> bool {
    b.bonded >= params.min_worker_stake && b.in_flight.saturating_add(units) <= b.capacity
}

/// A worker slashed to nothing bonded leaves its SKU's set, so dead entries cannot fill the
/// set's slots; bonding again re-enters it.
fn leave_set_if_empty(l: &mut Ledger<'_>, sku: &Sku, worker: &Address, b: &Bond) -> Step<()> {
    if b.bonded > 0 {
        return Ok(());
    }
    let mut set: WorkerSet = l.get(MarketKey::Workers(sku))?.unwrap_or_default();
    let before = set.workers.len();
    set.workers.retain(|w| **w != *worker);
    if set.workers.len() != before {
        l.put(MarketKey::Workers(sku), &set)?;
    }
    Ok(())
}

pub(super) fn job(l: &mut Ledger<'_>, id: &JobId) -> Step<Job> {
    Ok(l.get(MarketKey::Job(id))?.ok_or(MarketError::NoJob)?)
}

pub(super) fn state_name(s: &JobStatus) -> String {
    match s {
        JobStatus::Assigned => "waiting for its commit".into(),
        JobStatus::Committed { .. } => "committed".into(),
        JobStatus::Provisional { .. } => "provisional".into(),
        JobStatus::Settled { .. } => "settled".into(),
        JobStatus::Disputed { .. } => "disputed".into(),
        JobStatus::Slashed { .. } => "slashed".into(),
    }
}

pub fn commit(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, id: &JobId, receipt: &[u8], events: &mut Vec<LogEvent>) -> Step<()> {
    let mut j = job(l, id)?;
    if j.tee {
        return Err(MarketError::Invalid("a TEE-track job is committed with its attestation".into()).into());
    }
    committed_receipt(ctx, &j, receipt)?;
    j.status = JobStatus::Committed { receipt: receipt.to_vec(), at: ctx.height };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("job.committed", id.to_vec()));
    Ok(())
}

/// The checks every commit gets: an assigned job, its worker, in time, and a canonical
/// receipt of this job (model, prompt, `max_new`, output length).
pub(super) fn committed_receipt(ctx: &MarketCtx<'_>, j: &Job, receipt: &[u8]) -> Step<InferenceReceipt> {
    if j.status != JobStatus::Assigned {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    }
    if ctx.sender != j.worker {
        return Err(MarketError::NotWorker.into());
    }
    if ctx.height > commit_deadline(j) {
        return Err(MarketError::TooLate(format!("the commit deadline was block {}", commit_deadline(j))).into());
    }
    let r: InferenceReceipt = ciborium::from_reader(receipt).map_err(|e| MarketError::Invalid(format!("receipt: {e}")))?;
    if crate::encoding::cbor(&r) != receipt {
        return Err(MarketError::Invalid("receipt encoding is not canonical".into()).into());
    }
    let fits = r.sku == j.sku
        && r.max_new == j.max_new
        && r.prompts.len() == 1
        && r.prompts[0] == j.prompt
        && r.outputs.len() == 1
        && r.outputs[0].len() <= j.max_new as usize
        && r.gemm_count > 0;
    if !fits {
        return Err(MarketError::Invalid("the receipt is not for this job (model, prompt, max_new or output length)".into()).into());
    }
    Ok(r)
}

pub fn answer(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, response: &[u8], events: &mut Vec<LogEvent>) -> Step<()> {
    let j = job(l, id)?;
    if matches!(j.status, JobStatus::Disputed { .. }) {
        return super::dispute::answer(ctx, l, params, id, j, response, events);
    }
    if matches!(j.status, JobStatus::Provisional { .. }) {
        return super::tee::answer_spot_check(ctx, l, params, id, j, response, events);
    }
    let JobStatus::Committed { receipt, at } = &j.status else {
        return Err(MarketError::WrongState(state_name(&j.status)).into());
    };
    let ch = |seed: [u8; 32]| Challenge { seed, gemms: params.challenge_gemms, rows: params.challenge_rows };
    let (r, verdict) = check_answer(ctx, l, params, id, &j, *at, receipt, response, AnswerKind::Challenge, |sku, hash, r, seed, resp| {
        check_response(sku, hash, r, &ch(*seed), resp)
    })?;
    let until = ctx.height.saturating_add(params.dispute_window);
    let receipt = receipt.clone();
    match verdict {
        Ok(()) => settle(ctx, l, params, id, j, &r, receipt, until, events),
        Err(why) => slash(ctx, l, params, id, j, SLASH_WRONG_OUTPUT_BPS, None, format!("wrong output: {why}"), events),
    }
}

/// The checks an answer gets, to a job's challenge or to a dispute, before `check` runs on
/// the openings: only the worker answers, between block `at + 2` (the challenge exists from
/// block `at + 1`) and the answer deadline; the work is priced before it is done (hashing the
/// bytes, then [`check_gas`] from the shapes they declare). A validator without the model
/// cannot check and faults. Returns the committed receipt and the verdict (`Err(why)`: the
/// answer is wrong or malformed).
#[allow(clippy::too_many_arguments)]
pub(super) fn check_answer(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    j: &Job,
    at: u64,
    receipt: &[u8],
    response: &[u8],
    kind: AnswerKind,
    check: impl FnOnce(&aivm::model::Sku, &[u8; 32], &InferenceReceipt, &[u8; 32], &Response) -> Result<(), aivm::model::audit::AuditError>,
) -> Step<(InferenceReceipt, Result<(), String>)> {
    if ctx.sender != j.worker {
        return Err(MarketError::NotWorker.into());
    }
    if ctx.height <= at {
        return Err(MarketError::TooEarly(format!("the challenge is drawn at block {}", at + 1)).into());
    }
    if ctx.height > answer_deadline(params, at) {
        return Err(MarketError::TooLate(format!("the answer deadline was block {}", answer_deadline(params, at))).into());
    }
    let beacon: [u8; 32] = l.get::<BeaconRecord>(MarketKey::Beacon(at + 1))?.map(|b| *b).ok_or(MarketError::Corrupt("beacon".into()))?;
    let r: InferenceReceipt = ciborium::from_reader(receipt).map_err(|_| MarketError::Corrupt("receipt".into()))?;
    l.charge(l.schedule().blake3.cost(response.len() as u64))?;
    let verdict = match Response::decode(response) {
        None => Err("the response is malformed".to_string()),
        Some(resp) => {
            l.charge(check_gas(l.schedule(), &r, &resp, kind))?;
            let models = ctx.models.ok_or_else(|| Abort::Fault("this node has no model registry to verify answers with".into()))?;
            let engine = models.engine(&j.sku).map_err(|e| Abort::Fault(format!("registered model {} cannot be loaded: {e}", hex::encode(j.sku))))?;
            match check(&engine.sku, &engine.sku_hash, &r, &challenge_seed(&beacon, id), &resp) {
                Err(aivm::model::audit::AuditError::OtherChallenge(why)) => return Err(MarketError::OtherChallenge(why).into()),
                verdict => verdict.map_err(|e| e.to_string()),
            }
        }
    };
    Ok((r, verdict))
}

/// Take `bps` of `who`'s slashable stake in `role` (bonded first, then unbonding), free
/// `release_units` of its in-flight capacity, and take a worker slashed down to nothing out
/// of its SKU's set. Returns the slash.
pub(super) fn take(l: &mut Ledger<'_>, role: &Role, who: &Address, bps: u128, release_units: u64) -> Step<Slash> {
    let mut b: Bond = l.get(MarketKey::Bond(role, who))?.unwrap_or_default();
    let s = Slash::of(b.slashable(), bps);
    let from_bonded = s.taken.min(b.bonded);
    b.bonded -= from_bonded;
    b.unbonding -= s.taken - from_bonded; // taken ≤ bonded + unbonding
    b.in_flight = b.in_flight.saturating_sub(release_units);
    l.put(MarketKey::Bond(role, who), &b)?;
    if let Role::Worker { sku } = role {
        leave_set_if_empty(l, sku, who, &b)?;
    }
    Ok(s)
}

/// Gas of checking `resp` against `r`, beyond hashing its bytes: FREIVALDS_VERIFY's price per
/// work unit of each opened GEMM ([`aivm::model::audit::opening_work`]), plus
/// [`SCHEDULE_GAS_PER_GEMM`] per GEMM of the run for deriving its schedule,
/// [`ROW_GAS_PER_BYTE`] per byte of an opened row (a derived X row's `k + 8` included) for
/// the row chains' norms, quantization and residuals, and MERKLE_VERIFY's price per hash of each opened row's proof within its GEMM,
/// of each opened GEMM's leaf and of the multiproof that takes the leaves to the GEMM root.
/// `None` (out of gas) on overflow.
///
/// A dispute's answer (`kind` = [`AnswerKind::Dispute`]) also recomputes the weight product of
/// every opened output row (`spec/market.md` §6a): each is priced as an exact one-row GEMM.
pub fn check_gas(s: &aivm::GasSchedule, r: &InferenceReceipt, resp: &Response, kind: AnswerKind) -> Option<u64> {
    let mut work: u64 = 0;
    for (_, g) in &resp.gemms {
        work = work.checked_add(aivm::model::audit::opening_work(&g.commit, g.rhs.is_some())?)?;
    }
    if kind == AnswerKind::Dispute {
        let weight_rows = resp.rows.iter().filter(|o| o.is_y).filter_map(|o| resp.commit(o.index)).filter(|c| c.id().is_some_and(|id| id.kind.is_weight()));
        for c in weight_rows {
            work = work.checked_add(aivm::model::audit::check_work(1, c.k as u64, c.n as u64)?)?;
        }
    }
    // An X row the chain derives comes without bytes: the verifier hashes the `k + 8` it
    // derived instead.
    let row_bytes = resp.rows.iter().try_fold(0u64, |a, o| {
        let derived = if o.bytes.is_empty() && !o.is_y { resp.commit(o.index).map_or(0, |c| u64::from(c.k) + 8) } else { 0 };
        a.checked_add(o.bytes.len() as u64)?.checked_add(derived)
    })?;
    // Each row's proof within its GEMM, and the GEMMs' leaves with the multiproof that takes
    // them to the GEMM root.
    let proof_hashes = resp.rows.iter().try_fold(0u64, |a, o| a.checked_add(o.row_proof.len() as u64))?;
    let proof_hashes = proof_hashes.checked_add(resp.proof.len() as u64)?.checked_add(resp.commits.len() as u64)?;
    s.freivalds
        .cost(work)?
        .checked_add(r.gemm_count.checked_mul(SCHEDULE_GAS_PER_GEMM)?)?
        .checked_add(row_bytes.checked_mul(ROW_GAS_PER_BYTE)?)?
        .checked_add(proof_hashes.checked_mul(s.merkle_per_level.per_item)?)
}

/// Which check an answer gets: a challenge's sampled GEMMs and linked row chains, or a
/// dispute's row chain with its weight products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    Challenge,
    Dispute,
}

/// Gas per GEMM of a run for deriving its schedule (what 8 elements at the old Freivalds
/// price of 3 charged: the refit of FREIVALDS_VERIFY did not measure this part).
pub const SCHEDULE_GAS_PER_GEMM: u64 = 24;
/// Gas per byte of an opened row for its chain's layer math and authentication, measured
/// (gas-bench `--model`, "market_answer" rows, `spec/gas.md`): a decode step's row chain
/// checks ~0.83 MB of rows in ~0.7 ms (answers with their commitments in one table and rows
/// read in place, 2026-12-05), ~0.85 ns per byte, so 12 gas a byte (with BLAKE3's 1) is
/// ~0.065 ns per gas, the schedule's median. Was 24 when the check took ~1.3 ms (0.065 ns per
/// gas then; 0.013–0.048 for whole answers after the speed-up, more than 2× below the
/// median), and 48 before the chain ran on the engine's kernels.
pub const ROW_GAS_PER_BYTE: u64 = 12;

pub fn expire(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, id: &JobId, events: &mut Vec<LogEvent>) -> Step<()> {
    let j = job(l, id)?;
    let (deadline, why) = match &j.status {
        JobStatus::Assigned => (commit_deadline(&j), "no commit within twice the SLA"),
        JobStatus::Committed { at, .. } => (answer_deadline(params, *at), "no answer to the challenge"),
        JobStatus::Provisional { .. } => return super::tee::expire(ctx, l, params, id, j, events),
        JobStatus::Disputed { at, .. } => {
            let deadline = answer_deadline(params, *at);
            if ctx.height <= deadline {
                return Err(MarketError::TooEarly(format!("the deadline is block {deadline}")).into());
            }
            return super::dispute::worker_loses(ctx, l, params, id, j, "no answer to a dispute".into(), events);
        }
        s => return Err(MarketError::WrongState(state_name(s)).into()),
    };
    if ctx.height <= deadline {
        return Err(MarketError::TooEarly(format!("the deadline is block {deadline}")).into());
    }
    slash(ctx, l, params, id, j, SLASH_TIMEOUT_BPS, Some(ctx.sender), why.into(), events)
}

/// Pay the job out: 80 % to the worker, 8 % and 5 % to the validators' and verifiers' pots,
/// 4 % into the pool's native reserve (its liquidity providers' shares gain it), the rest
/// burned. The worker's units are freed and its verified tokens credited.
#[allow(clippy::too_many_arguments)]
pub(super) fn settle(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    mut j: Job,
    r: &InferenceReceipt,
    receipt: Vec<u8>,
    until: u64,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    // Scored on time when the result was committed within the SLA (`spec/market.md` §5a).
    let on_time = match j.status {
        JobStatus::Committed { at, .. } | JobStatus::Provisional { at, .. } => at <= j.submitted_at.saturating_add(j.sla_blocks),
        _ => false,
    };
    let split = FeeSplit::of(j.fee);
    l.credit(&j.worker, split.worker)?;
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    // The LPs' share enters the pool; with no liquidity left in it, it burns.
    let (to_pool, burn) = match l.get::<Pool>(MarketKey::Pool(&j.sku))? {
        Some(mut pool) if pool.shares > 0 => {
            pool.native = pool.native.checked_add(split.liquidity).ok_or(MarketError::Overflow)?;
            l.put(MarketKey::Pool(&j.sku), &pool)?;
            (split.liquidity, split.burn)
        }
        _ => (0, split.burn + split.liquidity),
    };
    t.validators = t.validators.checked_add(split.validators).ok_or(MarketError::Overflow)?;
    t.verifiers = t.verifiers.checked_add(split.verifiers).ok_or(MarketError::Overflow)?;
    t.burned = t.burned.checked_add(burn).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    let role = Role::Worker { sku: j.sku };
    let mut b: Bond = l.get(MarketKey::Bond(&role, &j.worker))?.unwrap_or_default();
    b.in_flight = b.in_flight.saturating_sub(j.units);
    let verified = r.prompts.iter().chain(&r.outputs).map(|s| s.len() as u64).sum::<u64>();
    b.credits = b.credits.saturating_add(verified);
    l.put(MarketKey::Bond(&role, &j.worker), &b)?;
    // The epoch's work rewards are split by these (`treasury::work_payout`); a chain without
    // inflation keeps no record.
    if params.inflation_per_epoch > 0 {
        let mut pending: PendingCredits = l.get(MarketKey::PendingCredits)?.unwrap_or_default();
        let key = serde_bytes::ByteArray::new(j.worker);
        match pending.workers.binary_search_by(|(w, _)| w.cmp(&key)) {
            Ok(i) => pending.workers[i].1 = pending.workers[i].1.saturating_add(verified),
            Err(i) => pending.workers.insert(i, (key, verified)),
        }
        l.put(MarketKey::PendingCredits, &pending)?;
    }
    j.status = JobStatus::Settled { at: ctx.height, output: r.outputs.first().cloned().unwrap_or_default(), receipt, until };
    l.put(MarketKey::Job(id), &j)?;
    // Where the fee went, as paid: the five parts sum to the fee.
    let paid = FeeSplit { liquidity: to_pool, burn, ..split };
    events.push(event("job.settled", [&id[..], &paid.event_bytes()].concat()));
    super::quality::score(ctx, l, params, &j.sku, &j.worker, on_time, events)
}

/// Take `bps` of the worker's slashable stake (bonded first, then unbonding), pay the
/// prover its share (burned when there is none), refund the client in full.
#[allow(clippy::too_many_arguments)]
pub(super) fn slash(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    id: &JobId,
    mut j: Job,
    bps: u128,
    prover: Option<Address>,
    reason: String,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    // A fault of the worker scores as a miss (a refund without one, `bps` = 0, does not).
    if bps > 0 {
        super::quality::score(ctx, l, params, &j.sku, &j.worker, false, events)?;
    }
    let s = take(l, &Role::Worker { sku: j.sku }, &j.worker, bps, j.units)?;
    let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
    let burn = match prover {
        Some(p) => {
            l.credit(&p, s.prover)?;
            s.burn
        }
        None => s.taken,
    };
    t.burned = t.burned.checked_add(burn).ok_or(MarketError::Overflow)?;
    l.put(MarketKey::Treasury, &t)?;
    l.credit(&j.client, j.fee)?;
    j.status = JobStatus::Slashed { at: ctx.height, taken: s.taken, reason };
    l.put(MarketKey::Job(id), &j)?;
    events.push(event("job.slashed", [&id[..], &j.worker[..], &s.taken.to_le_bytes()[..]].concat()));
    Ok(())
}
