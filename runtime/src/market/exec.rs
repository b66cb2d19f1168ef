//! Executing one market transaction: dispatch, and the stake and pool operations (the job
//! lifecycle is [`super::jobs`]). Every operation reads and writes through a [`Ledger`], so
//! its gas is charged before each step and a failure moves nothing.

use super::hmm::{Pool, Side};
use super::ledger::{Abort, Ledger, Step};
use super::state::{Bond, MarketKey, ModelEntry, WorkerSet};
use super::tx::{MarketTx, Role, Sku};
use super::{jobs, MarketError, MarketParams};
use crate::blockstm::StateRead;
use crate::receipt::LogEvent;
use crate::state::{Account, Address, StateKey, StateValue};
use aivm::model::ModelRegistry;
use aivm::GasSchedule;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a market transaction runs with besides the state.
pub struct MarketCtx<'a> {
    pub schedule: &'a GasSchedule,
    /// The node's models, for verifying answers.
    pub models: Option<&'a Arc<ModelRegistry>>,
    pub height: u64,
    /// The block's time (Unix ms): attestations are checked against it, never a local clock.
    pub time_ms: u64,
    /// The transaction's hash: a submitted job's id.
    pub tx_hash: [u8; 32],
    pub sender: Address,
}

/// A successful market transaction's effects.
pub struct MarketOutcome {
    pub gas: u64,
    pub writes: BTreeMap<StateKey, StateValue>,
    pub events: Vec<LogEvent>,
    pub output: Vec<u8>,
}

/// A failed one: its gas (charged) and why, or a read to retry, or a machine fault.
pub enum MarketFailure {
    Read(crate::blockstm::ReadError),
    Failed { gas: u64, error: MarketError },
    Fault(String),
}

/// Run `tx` for `ctx.sender` (as read by the executor: `account`, with `reserved` of its
/// balance being the transaction's fee) within `budget` gas.
pub fn execute(
    ctx: &MarketCtx<'_>,
    view: &mut dyn StateRead<StateKey, StateValue>,
    account: Account,
    reserved: u128,
    tx: &MarketTx,
    budget: u64,
) -> Result<MarketOutcome, MarketFailure> {
    with_ledger(ctx, view, account, reserved, budget, |l, events| run(ctx, l, tx, events))
}

/// Run `op` on a fresh [`Ledger`] for `ctx.sender` and turn its end into an outcome or a
/// failure: the frame every ledger transaction (the market's, staking's) shares.
pub fn with_ledger(
    ctx: &MarketCtx<'_>,
    view: &mut dyn StateRead<StateKey, StateValue>,
    account: Account,
    reserved: u128,
    budget: u64,
    op: impl FnOnce(&mut Ledger<'_>, &mut Vec<LogEvent>) -> Step<Vec<u8>>,
) -> Result<MarketOutcome, MarketFailure> {
    let mut l = Ledger::new(view, ctx.schedule, budget, (ctx.sender, account), reserved);
    let mut events = Vec::new();
    match op(&mut l, &mut events) {
        Ok(output) => Ok(MarketOutcome { gas: l.gas, writes: l.writes, events, output }),
        Err(Abort::Read(e)) => Err(MarketFailure::Read(e)),
        Err(Abort::Fail(error)) => Err(MarketFailure::Failed { gas: l.gas, error }),
        Err(Abort::Fault(f)) => Err(MarketFailure::Fault(f)),
    }
}

/// An event from the market (its address is the emitter).
pub fn event(topic: &str, data: Vec<u8>) -> LogEvent {
    LogEvent { contract: super::market_address(), topic: topic.as_bytes().to_vec(), data }
}

fn run(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, tx: &MarketTx, events: &mut Vec<LogEvent>) -> Step<Vec<u8>> {
    let params: MarketParams = l.get(MarketKey::Params)?.ok_or(MarketError::Invalid("this chain has no market".into()))?;
    let me = ctx.sender;
    match tx {
        MarketTx::Bond { role, amount, capacity } => bond(ctx, l, &params, role, *amount, *capacity).map(|_| Vec::new()),
        MarketTx::Unbond { role, amount } => unbond(ctx, l, &params, role, *amount).map(|_| Vec::new()),
        MarketTx::Withdraw { role } => withdraw(ctx, l, role).map(|amount| crate::encoding::cbor(&amount)),
        MarketTx::AddLiquidity { sku, native, units } => {
            model(l, sku)?;
            if *native < params.min_lp_deposit {
                return Err(MarketError::BelowMinimum { have: *native, min: params.min_lp_deposit }.into());
            }
            let mut pool = l.get::<Pool>(MarketKey::Pool(sku))?.map_or_else(|| Pool::new(params.pool_fee_bps), Ok)?;
            let minted = pool.add_liquidity(*native, *units)?;
            l.debit_sender(*native)?;
            l.adjust(MarketKey::Units(sku, &me), *units, false)?;
            l.adjust(MarketKey::Shares(sku, &me), minted, true)?;
            l.put(MarketKey::Pool(sku), &pool)?;
            Ok(crate::encoding::cbor(&minted))
        }
        MarketTx::RemoveLiquidity { sku, shares } => {
            let mut pool: Pool = l.get(MarketKey::Pool(sku))?.ok_or(MarketError::NoPool)?;
            l.adjust(MarketKey::Shares(sku, &me), *shares, false)?;
            let (native, units) = pool.remove_liquidity(*shares)?;
            l.credit(&me, native)?;
            l.adjust(MarketKey::Units(sku, &me), units, true)?;
            l.put(MarketKey::Pool(sku), &pool)?;
            Ok(crate::encoding::cbor(&(native, units)))
        }
        MarketTx::Swap { sku, side, amount_in, min_out } => {
            let mut pool: Pool = l.get(MarketKey::Pool(sku))?.ok_or(MarketError::NoPool)?;
            let out = pool.swap(*side, *amount_in)?;
            if out < *min_out {
                return Err(MarketError::Slippage { got: out, min: *min_out }.into());
            }
            match side {
                Side::Native => {
                    l.debit_sender(*amount_in)?;
                    l.adjust(MarketKey::Units(sku, &me), out, true)?;
                }
                Side::Units => {
                    l.adjust(MarketKey::Units(sku, &me), *amount_in, false)?;
                    l.credit(&me, out)?;
                }
            }
            l.put(MarketKey::Pool(sku), &pool)?;
            Ok(crate::encoding::cbor(&out))
        }
        MarketTx::SubmitJob { sku, prompt, max_new, sla_blocks, budget, tee } => {
            jobs::submit(ctx, l, &params, sku, prompt, *max_new, *sla_blocks, *budget, *tee, events)
        }
        MarketTx::CommitAttested { job, receipt, attestation, time_ms } => {
            super::tee::commit(ctx, l, &params, job, receipt, attestation, *time_ms, events).map(|_| Vec::new())
        }
        MarketTx::Finalize { job } => super::tee::finalize(ctx, l, &params, job, events).map(|_| Vec::new()),
        MarketTx::Commit { job, receipt } => jobs::commit(ctx, l, job, receipt, events).map(|_| Vec::new()),
        MarketTx::Answer { job, response } => jobs::answer(ctx, l, &params, job, response, events).map(|_| Vec::new()),
        MarketTx::Expire { job } => jobs::expire(ctx, l, &params, job, events).map(|_| Vec::new()),
        MarketTx::Dispute { job, receipt } => super::dispute::dispute(ctx, l, &params, job, receipt, events).map(|_| Vec::new()),
        MarketTx::Attest { job } => super::attest::attest(ctx, l, &params, job, events).map(|_| Vec::new()),
        MarketTx::AttestAnswer { job, response } => super::attest::answer(ctx, l, &params, job, response, events).map(|_| Vec::new()),
        MarketTx::ExpireAttestation { job, verifier } => super::attest::expire(ctx, l, &params, job, verifier, events).map(|_| Vec::new()),
    }
}

/// The registered model `sku`.
pub fn model(l: &mut Ledger<'_>, sku: &Sku) -> Step<ModelEntry> {
    Ok(l.get(MarketKey::Model(sku))?.ok_or_else(|| MarketError::UnknownModel(hex::encode(sku)))?)
}

fn minimum(params: &MarketParams, role: &Role) -> u128 {
    match role {
        Role::Worker { .. } => params.min_worker_stake,
        Role::Verifier => params.min_verifier_stake,
    }
}

fn bond(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, role: &Role, amount: u128, capacity: u64) -> Step<()> {
    let me = ctx.sender;
    let mut b: Bond = l.get(MarketKey::Bond(role, &me))?.unwrap_or_default();
    let fresh = b.bonded == 0;
    b.bonded = b.bonded.checked_add(amount).ok_or(MarketError::Overflow)?;
    let min = minimum(params, role);
    if b.bonded < min {
        return Err(MarketError::BelowMinimum { have: b.bonded, min }.into());
    }
    if let Role::Worker { sku } = role {
        model(l, sku)?;
        if capacity == 0 || capacity < b.in_flight {
            return Err(MarketError::Invalid(format!("capacity {capacity} must be positive and cover the {} units in flight", b.in_flight)).into());
        }
        b.capacity = capacity;
        if fresh {
            let mut set: WorkerSet = l.get(MarketKey::Workers(sku))?.unwrap_or_default();
            let key = serde_bytes::ByteArray::new(me);
            if let Err(at) = set.workers.binary_search(&key) {
                if set.workers.len() >= params.max_workers_per_sku as usize {
                    return Err(MarketError::Invalid(format!("this model already has {} workers", set.workers.len())).into());
                }
                set.workers.insert(at, key);
                l.put(MarketKey::Workers(sku), &set)?;
            }
        }
    }
    l.debit_sender(amount)?;
    l.put(MarketKey::Bond(role, &me), &b)
}

fn unbond(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, params: &MarketParams, role: &Role, amount: u128) -> Step<()> {
    let me = ctx.sender;
    let mut b: Bond = l.get(MarketKey::Bond(role, &me))?.ok_or(MarketError::Invalid("nothing bonded".into()))?;
    if amount == 0 || amount > b.bonded {
        return Err(MarketError::InsufficientBalance { need: amount, have: b.bonded }.into());
    }
    b.bonded -= amount;
    let min = minimum(params, role);
    if b.bonded != 0 && b.bonded < min {
        return Err(MarketError::Invalid(format!("{} would stay bonded, below the minimum {min}: unbond all of it or less", b.bonded)).into());
    }
    b.unbonding = b.unbonding.checked_add(amount).ok_or(MarketError::Overflow)?;
    // One delay for everything unbonding: a new unbond restarts it.
    b.unlock_at = ctx.height.checked_add(params.unbonding_blocks).ok_or(MarketError::Overflow)?;
    if let (Role::Worker { sku }, 0) = (role, b.bonded) {
        let mut set: WorkerSet = l.get(MarketKey::Workers(sku))?.unwrap_or_default();
        set.workers.retain(|w| **w != me);
        l.put(MarketKey::Workers(sku), &set)?;
    }
    l.put(MarketKey::Bond(role, &me), &b)
}

fn withdraw(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, role: &Role) -> Step<u128> {
    let me = ctx.sender;
    let mut b: Bond = l.get(MarketKey::Bond(role, &me))?.ok_or(MarketError::Invalid("nothing bonded".into()))?;
    if b.unbonding == 0 {
        return Err(MarketError::Invalid("nothing is unbonding".into()).into());
    }
    if ctx.height < b.unlock_at {
        return Err(MarketError::TooEarly(format!("unbonding ends at block {}", b.unlock_at)).into());
    }
    if b.in_flight > 0 {
        return Err(MarketError::TooEarly(format!("{} units of jobs are still in flight", b.in_flight)).into());
    }
    let amount = std::mem::take(&mut b.unbonding);
    l.credit(&me, amount)?;
    l.put(MarketKey::Bond(role, &me), &b)?;
    Ok(amount)
}
