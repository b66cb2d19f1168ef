//! Escrow of native value for off-chain work (seed 002 Listing 1's `ESCROW_LOCK` /
//! `ESCROW_RELEASE`, on the chain's native token): a client locks what it sends with the
//! call for a worker; the client releases it to the worker, or takes it back once the
//! deadline has passed without a release. Or the contract buys a verified inference for the
//! caller from the chain's own market (`ask`): the chain challenges the worker's answer, and
//! `answer` reads it once verified.
#![no_std]

use aivm_sdk::prelude::*;
use aivm_sdk::storage::Map;

const LOCKS: Map<Lock> = Map::new(b"lock:");
const NEXT: &[u8] = b"next";
const ASKS: Map<Ask> = Map::new(b"ask:");

/// What is held for one job.
#[derive(Serialize, Deserialize, Schema, Clone)]
pub struct Lock {
    pub client: Address,
    pub worker: Address,
    pub amount: u128,
    /// Block height from which the client may reclaim.
    pub deadline: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct LockArgs {
    pub worker: Address,
    /// Blocks the worker has before the client may reclaim.
    pub blocks: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Released {
    pub id: u64,
    pub to: Address,
    pub amount: u128,
}

fn take(id: u64) -> Result<Lock, ContractError> {
    let lock = LOCKS.get(&id.to_le_bytes()).ok_or_else(|| ContractError::new(format!("no escrow {id}")))?;
    LOCKS.remove(&id.to_le_bytes());
    Ok(lock)
}

fn pay(id: u64, to: Address, amount: u128) -> Result<(), ContractError> {
    // The contract holds every open lock, so this cannot be short; if it were, nothing moves.
    env::transfer(&to, amount).map_err(|_| ContractError::from("escrow balance short"))?;
    events::emit("released", &Released { id, to, amount });
    Ok(())
}

/// ESCROW_LOCK: hold the value sent with this call for `worker`; returns the escrow's id.
#[entry_point]
pub fn lock(args: LockArgs) -> Result<u64, ContractError> {
    let amount = env::value();
    if amount == 0 {
        return Err("send the amount to lock with the call (`aivm send --value`)".into());
    }
    let id: u64 = storage::get(NEXT).unwrap_or(0);
    storage::set(NEXT, &(id + 1));
    let deadline = env::block_height().saturating_add(args.blocks);
    LOCKS.set(&id.to_le_bytes(), &Lock { client: env::caller(), worker: args.worker, amount, deadline });
    Ok(id)
}

#[derive(Serialize, Deserialize, Schema)]
pub struct HireArgs {
    /// The model's SKU hash.
    pub sku: Bytes32,
    /// Compute units (tokens processed) the work needs.
    pub units: u64,
    pub blocks: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Hired {
    pub id: u64,
    pub worker: Address,
    pub price: u128,
}

/// HMM_QUOTE `units` on the model's pool, require the value sent with the call to cover the
/// price and send the rest back to the caller; the quote and the caller.
fn pay_quote(sku: &Bytes32, units: u64) -> Result<(market::Quote, Address), ContractError> {
    let q = market::quote(sku, units).ok_or(ContractError::from("no quote: no pool for the model or no worker with room"))?;
    let sent = env::value();
    if sent < q.price {
        return Err(ContractError::new(format!("the quote is {}; {sent} was sent", q.price)));
    }
    let client = env::caller();
    if sent > q.price {
        env::transfer(&client, sent - q.price).map_err(|_| ContractError::from("escrow balance short"))?;
    }
    Ok((q, client))
}

/// Seed 002 Listing 1's `submitJob`: HMM_QUOTE the work on the model's pool, require the
/// value sent to cover the price, lock the price for the quoted worker and send back the rest.
#[entry_point]
pub fn hire(args: HireArgs) -> Result<Hired, ContractError> {
    let (q, client) = pay_quote(&args.sku, args.units)?;
    let id: u64 = storage::get(NEXT).unwrap_or(0);
    storage::set(NEXT, &(id + 1));
    let deadline = env::block_height().saturating_add(args.blocks);
    LOCKS.set(&id.to_le_bytes(), &Lock { client, worker: q.worker, amount: q.price, deadline });
    Ok(Hired { id, worker: q.worker, price: q.price })
}

/// ESCROW_RELEASE: the client pays the worker.
#[entry_point]
pub fn release(id: u64) -> Result<(), ContractError> {
    let lock = take(id)?;
    if env::caller() != lock.client {
        return Err("only the client releases".into());
    }
    pay(id, lock.worker, lock.amount)
}

/// The client takes the value back after the deadline.
#[entry_point]
pub fn reclaim(id: u64) -> Result<(), ContractError> {
    let lock = take(id)?;
    if env::caller() != lock.client {
        return Err("only the client reclaims".into());
    }
    if env::block_height() < lock.deadline {
        return Err(ContractError::new(format!("the worker has until block {}", lock.deadline)));
    }
    pay(id, lock.client, lock.amount)
}

#[entry_point]
pub fn escrow(id: u64) -> Result<Option<Lock>, ContractError> {
    Ok(LOCKS.get(&id.to_le_bytes()))
}

/// The native units the contract holds (every open lock).
#[entry_point]
pub fn held(_: ()) -> Result<u128, ContractError> {
    Ok(env::balance())
}

/// A job this contract submitted to the chain's market for a client.
#[derive(Serialize, Deserialize, Schema, Clone)]
pub struct Ask {
    pub client: Address,
    /// The fee escrowed by the market (the pool's quote).
    pub fee: u128,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct AskArgs {
    /// The model's SKU hash.
    pub sku: Bytes32,
    /// Token ids of the prompt.
    pub prompt: Vec<u32>,
    pub max_new: u32,
    /// Blocks the worker has to commit.
    pub sla_blocks: u64,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Asked {
    /// The market job's id.
    pub job: Bytes32,
    pub fee: u128,
}

/// Buy a verified inference for the caller from the chain's market: quote it (prompt plus
/// `max_new` units), require the value sent to cover the quote, submit the job with the quote
/// as its budget and send back the rest. The chain assigns a staked worker, challenges its
/// answer and settles or slashes it; a refund comes back here. The job's id is returned.
#[entry_point]
pub fn ask(args: AskArgs) -> Result<Asked, ContractError> {
    let units = (args.prompt.len() as u64).saturating_add(args.max_new as u64);
    let (q, client) = pay_quote(&args.sku, units)?;
    let request = market::JobRequest { sku: &args.sku, prompt: &args.prompt, max_new: args.max_new, sla_blocks: args.sla_blocks, budget: q.price, tee: false };
    let job = market::submit_job(&request).map_err(|e| ContractError::new(format!("the job was refused: {e:?}")))?;
    ASKS.set(&job.0, &Ask { client, fee: q.price });
    Ok(Asked { job, fee: q.price })
}

/// The output of an asked job once the chain has verified it (`None` before, or if it was
/// slashed).
#[entry_point]
pub fn answer(job: Bytes32) -> Result<Option<Vec<u32>>, ContractError> {
    if ASKS.get(&job.0).is_none() {
        return Err("not a job asked through this contract".into());
    }
    Ok(verify::job_result(&job.0, false).map(|o| o.tokens))
}
