//! The compute market from a contract (`spec/market.md` §6b–6c; seed 002 Table 4's HMM_QUOTE
//! and HMM_SWAP, and jobs the chain verifies).
//!
//! Reading a quote happens at once. Acting — a swap, a job — is recorded by the call and
//! carried out by the chain when the call has succeeded, with this contract as the sender: if
//! the market refuses it (slippage, no worker with room, a budget below the quote), the whole
//! call fails and nothing of it happens. What an action may take from the balance is reserved
//! at once ([`crate::env::balance`] no longer counts it).

use crate::sys;
use crate::types::{Address, Bytes32};

/// What `units` compute units (tokens processed) cost on a model's pool, and a staked worker
/// with room for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Native units: the pool's price for that many units, what a job of them costs.
    pub price: u128,
    /// Drawn by stake among the SKU's workers with room (deterministic for this contract and
    /// block).
    pub worker: Address,
}

/// HMM_QUOTE: the price of `units` on the pool of the model `sku` and a worker to do them;
/// `None` if the model has no pool that can sell that many units or no worker with room.
/// Pay the worker through an escrow (`contracts/escrow`: lock with the call's value, release
/// when the work is accepted).
pub fn quote(sku: &Bytes32, units: u64) -> Option<Quote> {
    let mut out = [0u8; 48];
    let units = i64::try_from(units).ok()?;
    if unsafe { sys::hmm_quote(sku.0.as_ptr(), units, out.as_mut_ptr()) } != 0 {
        return None;
    }
    let mut price = [0u8; 16];
    price.copy_from_slice(&out[..16]);
    let mut worker = [0u8; 32];
    worker.copy_from_slice(&out[16..]);
    Some(Quote { price: u128::from_le_bytes(price), worker: Bytes32(worker) })
}

/// Why the call could not record a market action (nothing was recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionRefused {
    /// The native it would take exceeds what the contract can still pay in this call.
    InsufficientBalance,
    /// A zero amount, a prompt over 4 096 tokens, or more than 16 actions in one call.
    Invalid,
}

/// Which side of a pool a swap sells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sell {
    /// Pay native units (reserved from the balance now), receive compute units.
    Native,
    /// Pay the contract's compute units, receive native units (after the call).
    Units,
}

/// HMM_SWAP: trade `amount_in` against the pool of the model `sku`; the call fails if fewer
/// than `min_out` would come out (quote first with [`quote`] to set it).
pub fn swap(sku: &Bytes32, sell: Sell, amount_in: u128, min_out: u128) -> Result<(), ActionRefused> {
    let (amount, min) = (amount_in.to_le_bytes(), min_out.to_le_bytes());
    let side = match sell {
        Sell::Native => 0,
        Sell::Units => 1,
    };
    match unsafe { sys::hmm_swap(sku.0.as_ptr(), side, amount.as_ptr(), min.as_ptr()) } {
        0 => Ok(()),
        _ => Err(refusal(if sell == Sell::Native { amount_in } else { 0 })),
    }
}

/// A job for the chain's market: the chain quotes it, escrows the fee out of this contract's
/// balance, assigns a staked worker, challenges its answer and settles or slashes it, exactly
/// as for a job a person submits (`spec/market.md` §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRequest<'a> {
    /// The model's SKU hash (registered on the chain).
    pub sku: &'a Bytes32,
    /// Token ids of the prompt.
    pub prompt: &'a [u32],
    pub max_new: u32,
    /// Blocks the worker has to commit.
    pub sla_blocks: u64,
    /// The most the job may cost; the fee is the pool's quote for `prompt + max_new` units.
    pub budget: u128,
    /// The optimistic TEE track (`spec/tee.md` §5) instead of the challenge.
    pub tee: bool,
}

/// Submit `job`; its id, under which [`crate::verify::job_result`] reads its output once
/// the chain has verified it. A refund (the worker slashed) comes back to this contract.
pub fn submit_job(job: &JobRequest<'_>) -> Result<Bytes32, ActionRefused> {
    let mut prompt = alloc::vec::Vec::with_capacity(job.prompt.len() * 4);
    for t in job.prompt {
        prompt.extend_from_slice(&t.to_le_bytes());
    }
    let (Ok(len), Ok(max_new), Ok(sla)) = (i32::try_from(job.prompt.len()), i32::try_from(job.max_new), i64::try_from(job.sla_blocks)) else {
        return Err(ActionRefused::Invalid);
    };
    let budget = job.budget.to_le_bytes();
    let mut id = [0u8; 32];
    let r = unsafe { sys::job_submit(job.sku.0.as_ptr(), prompt.as_ptr(), len, max_new, sla, budget.as_ptr(), job.tee as i32, id.as_mut_ptr()) };
    match r {
        0 => Ok(Bytes32(id)),
        _ => Err(refusal(job.budget)),
    }
}

/// Why the host refused an action that would have taken `native`.
fn refusal(native: u128) -> ActionRefused {
    if native > crate::env::balance() {
        ActionRefused::InsufficientBalance
    } else {
        ActionRefused::Invalid
    }
}
