//! Executing a staking transaction. It reads and writes through the market's [`Ledger`], so
//! its gas is charged before each step (the proof of possession at the VM's BLS price) and a
//! failure moves nothing; its errors are receipt text like the market's.

use super::state::{decode_stake, stake_key, stake_value, Registry, StakingKey, StakingParams, Validator, POP_DST};
use super::tx::StakingTx;
use crate::encoding::cbor;
use crate::market::exec::{with_ledger, MarketCtx, MarketFailure, MarketOutcome};
use crate::market::ledger::{Abort, Ledger, Step};
use crate::market::MarketError;
use crate::receipt::LogEvent;
use crate::state::{Account, Address, StateKey, StateValue};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Run `tx` for `ctx.sender` (as read by the executor: `account`, `reserved` of its balance
/// being the fee) within `budget` gas.
pub fn execute(
    ctx: &MarketCtx<'_>,
    view: &mut dyn crate::blockstm::StateRead<StateKey, StateValue>,
    account: Account,
    reserved: u128,
    tx: &StakingTx,
    budget: u64,
) -> Result<MarketOutcome, MarketFailure> {
    with_ledger(ctx, view, account, reserved, budget, |l, events| run(ctx, l, tx, events))
}

fn invalid(why: impl Into<String>) -> Abort {
    Abort::Fail(MarketError::Invalid(why.into()))
}

fn get<T: DeserializeOwned>(l: &mut Ledger<'_>, key: StakingKey<'_>) -> Step<Option<T>> {
    match l.read(&key.state_key())? {
        Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).map(Some).map_err(|_| Abort::Fail(MarketError::Corrupt(format!("{key:?}")))),
        _ => Ok(None),
    }
}

fn put<T: Serialize>(l: &mut Ledger<'_>, key: StakingKey<'_>, v: &T) -> Step<()> {
    l.write(key.state_key(), StateValue::Bytes(cbor(v).into()))
}

fn stake(l: &mut Ledger<'_>, id: &Address) -> Step<u128> {
    Ok(decode_stake(l.read(&stake_key(id))?.as_ref()).unwrap_or(0))
}

/// An event from the staking address.
fn event(topic: &str, data: Vec<u8>) -> LogEvent {
    LogEvent { contract: super::staking_address(), topic: topic.as_bytes().to_vec(), data }
}

fn run(ctx: &MarketCtx<'_>, l: &mut Ledger<'_>, tx: &StakingTx, events: &mut Vec<LogEvent>) -> Step<Vec<u8>> {
    let p: StakingParams = get(l, StakingKey::Params)?.ok_or_else(|| invalid("this chain has no validator staking"))?;
    let me = ctx.sender;
    match tx {
        StakingTx::Bond { consensus_key, pop, amount, p2p } => bond(ctx, l, &p, consensus_key, pop, *amount, p2p, events),
        StakingTx::Unbond { amount } => {
            let mut v: Validator = get(l, StakingKey::Validator(&me))?.ok_or_else(|| invalid("the sender is not a validator"))?;
            let bonded = stake(l, &me)?;
            if *amount == 0 || *amount > bonded {
                return Err(Abort::Fail(MarketError::InsufficientBalance { need: *amount, have: bonded }));
            }
            let left = bonded - amount;
            if left != 0 && left < p.min_stake {
                return Err(invalid(format!("{left} would stay bonded, below the minimum {}: unbond all of it or less", p.min_stake)));
            }
            v.unbonding = v.unbonding.checked_add(*amount).ok_or(MarketError::Overflow)?;
            v.unlock_at = ctx.height.checked_add(p.unbonding_blocks).ok_or(MarketError::Overflow)?;
            l.write(stake_key(&me), stake_value(left))?;
            put(l, StakingKey::Validator(&me), &v)?;
            events.push(event("validator_unbonded", cbor(&(serde_bytes::ByteArray::new(me), amount, v.unlock_at))));
            Ok(cbor(&v.unlock_at))
        }
        StakingTx::Withdraw => {
            let mut v: Validator = get(l, StakingKey::Validator(&me))?.ok_or_else(|| invalid("the sender is not a validator"))?;
            if v.unbonding == 0 {
                return Err(invalid("nothing is unbonding"));
            }
            if ctx.height < v.unlock_at {
                return Err(Abort::Fail(MarketError::TooEarly(format!("unbonding ends at block {}", v.unlock_at))));
            }
            let amount = std::mem::take(&mut v.unbonding);
            l.credit(&me, amount)?;
            put(l, StakingKey::Validator(&me), &v)?;
            events.push(event("validator_withdrew", cbor(&(serde_bytes::ByteArray::new(me), amount))));
            Ok(cbor(&amount))
        }
    }
}

/// Longest p2p address a bond may record.
pub const MAX_P2P_ADDRESS: usize = 64;

#[allow(clippy::too_many_arguments)]
fn bond(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    p: &StakingParams,
    key: &[u8],
    pop: &[u8],
    amount: u128,
    p2p: &str,
    events: &mut Vec<LogEvent>,
) -> Step<Vec<u8>> {
    let me = ctx.sender;
    if !p2p.is_empty() && (p2p.len() > MAX_P2P_ADDRESS || p2p.parse::<std::net::SocketAddr>().is_err()) {
        return Err(invalid(format!("the p2p address must be ip:port (at most {MAX_P2P_ADDRESS} bytes)")));
    }
    let (Ok(key48), Ok(pop96)) = (<&[u8; 48]>::try_from(key), <&[u8; 96]>::try_from(pop)) else {
        return Err(invalid(format!("a consensus key is 48 bytes and its proof of possession 96 (got {} and {})", key.len(), pop.len())));
    };
    if amount == 0 {
        return Err(invalid("bond a positive amount"));
    }
    let existing: Option<Validator> = get(l, StakingKey::Validator(&me))?;
    let mut v = match existing {
        Some(v) if v.tombstoned => return Err(invalid("this validator was slashed for double signing (tombstoned) and cannot bond again")),
        Some(v) if v.consensus_key != key => return Err(invalid("this validator is bonded with another consensus key")),
        Some(v) => v,
        None => {
            if p2p.is_empty() {
                return Err(invalid("a new validator gives its p2p address (ip:port)"));
            }
            // A new validator: its key proven possessed and not anyone else's.
            l.charge(ctx.schedule.bls_verify.cost(48))?;
            if !aivm::verify::signature::bls_verify_dst(key48, key48, pop96, POP_DST) {
                return Err(invalid("the proof of possession does not verify for this consensus key"));
            }
            let key_hash = *blake3::hash(key).as_bytes();
            let index = StakingKey::ConsensusKey(&key_hash);
            if let Some(StateValue::Bytes(owner)) = l.read(&index.state_key())? {
                return Err(invalid(format!("the consensus key is already validator {}'s", hex::encode(owner))));
            }
            let mut reg: Registry = get(l, StakingKey::Registry)?.unwrap_or_default();
            let id = serde_bytes::ByteArray::new(me);
            if let Err(at) = reg.validators.binary_search(&id) {
                if reg.validators.len() >= p.max_validators as usize {
                    return Err(invalid(format!("the chain already has {} validators, its most", reg.validators.len())));
                }
                reg.validators.insert(at, id);
                put(l, StakingKey::Registry, &reg)?;
            }
            l.write(index.state_key(), StateValue::Bytes(me.to_vec().into()))?;
            Validator { consensus_key: key.to_vec(), ..Validator::default() }
        }
    };
    let bonded = stake(l, &me)?.checked_add(amount).ok_or(MarketError::Overflow)?;
    if bonded < p.min_stake {
        return Err(Abort::Fail(MarketError::BelowMinimum { have: bonded, min: p.min_stake }));
    }
    l.debit_sender(amount)?;
    l.write(stake_key(&me), stake_value(bonded))?;
    v.consensus_key = key.to_vec();
    if !p2p.is_empty() {
        v.p2p = p2p.to_string();
    }
    put(l, StakingKey::Validator(&me), &v)?;
    events.push(event("validator_bonded", cbor(&(serde_bytes::ByteArray::new(me), amount, bonded))));
    Ok(cbor(&bonded))
}
