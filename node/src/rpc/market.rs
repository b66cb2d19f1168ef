//! The market's read methods (`spec/rpc.md`, "Market"): jobs, pools, bonds, parameters, and a
//! block's receipts (how workers and clients watch for their jobs' events).

use super::api::Api;
use super::{hex32, invalid, node_error, receipt_json};
use crate::hexbytes::to_hex;
use aivm::model::commit::InferenceReceipt;
use aivm_runtime::market::hmm::{amount_in, Pool};
use aivm_runtime::market::jobs::{beacon, challenge_seed};
use aivm_runtime::market::split::FeeSplit;
use aivm_runtime::market::state::{BeaconRecord, WorkerSet};
use aivm_runtime::market::{market_address, Bond, Job, JobStatus, MarketKey, MarketParams, Role, Treasury};
use aivm_runtime::{Chain, StateValue};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};

/// A committed market record, decoded.
pub fn record<T: serde::de::DeserializeOwned>(chain: &Chain, key: MarketKey<'_>) -> Result<Option<T>, ErrorObjectOwned> {
    match chain.store().get(&key.state_key()).map_err(node_error)? {
        Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).map(Some).map_err(|e| node_error(format!("corrupt market record: {e}"))),
        _ => Ok(None),
    }
}

/// The beacon of block `height` (`spec/market.md` §6): as the chain recorded it, or — while
/// `height − 1` is the committed head and `height` is not yet — as it will be, once this
/// validator saw the head certified. The head's child must carry the seed of the round that
/// certified the head (a proposal with another is refused), or none if it opens an epoch
/// (beacon from the head's hash), so the beacon is fixed before the child is proposed; a
/// worker that learns its challenge then answers a block sooner. `None` while neither is known.
/// With it, whether it is the chain's record (`false`: computed ahead).
fn beacon_of(ctx: &super::RpcContext, height: u64) -> Result<Option<([u8; 32], bool)>, ErrorObjectOwned> {
    if let Some(b) = record::<BeaconRecord>(ctx.executor.chain(), MarketKey::Beacon(height))? {
        return Ok(Some((*b, true)));
    }
    Ok(beacon_ahead(ctx, height)?.map(|b| (b, false)))
}

/// [`beacon_of`] for a block not executed yet.
fn beacon_ahead(ctx: &super::RpcContext, height: u64) -> Result<Option<[u8; 32]>, ErrorObjectOwned> {
    let chain = ctx.executor.chain();
    let Some(seeds) = &ctx.seeds else { return Ok(None) };
    let (head, head_hash, head_digest) = ctx.executor.committed_head();
    if head.checked_add(1) != Some(height) {
        return Ok(None);
    }
    let Some(staking) = aivm_runtime::staking::epoch::params(|k| chain.store().get(k).ok().flatten()) else { return Ok(None) };
    let opens_epoch = height == 1 || height.is_multiple_of(staking.epoch_length.max(1));
    Ok(if opens_epoch { Some(beacon(&head_hash, None)) } else { seeds.for_child_of(&head_digest).map(|seed| beacon(&head_hash, Some(&seed))) })
}

fn params(chain: &Chain) -> Result<MarketParams, ErrorObjectOwned> {
    record(chain, MarketKey::Params)?.ok_or_else(|| invalid("this chain has no market"))
}

/// A job as JSON: its parties and terms, where it stands, the committed output and, once the
/// challenge exists, its seed.
pub fn job_json(ctx: &super::RpcContext, id: &[u8; 32], j: &Job) -> RpcResult<Value> {
    let chain = ctx.executor.chain();
    let mut v = json!({
        "id": to_hex(id),
        "client": to_hex(&j.client),
        "worker": to_hex(&j.worker),
        "model": to_hex(&j.sku),
        "prompt": j.prompt,
        "max_new": j.max_new,
        "sla_blocks": j.sla_blocks,
        "fee": j.fee.to_string(),
        "units": j.units,
        "submitted_at": j.submitted_at,
        "track": if j.tee { "tee" } else { "freivalds" },
    });
    match &j.status {
        JobStatus::Assigned => v["state"] = json!("assigned"),
        JobStatus::Committed { receipt, at } => {
            v["state"] = json!("committed");
            v["committed_at"] = json!(at);
            if let Ok(r) = ciborium::from_reader::<InferenceReceipt, _>(&receipt[..]) {
                v["output"] = json!(r.outputs.first());
                v["receipt_hash"] = json!(to_hex(&r.hash()));
                v["gemm_count"] = json!(r.gemm_count);
            }
            if let Some((beacon, recorded)) = beacon_of(ctx, at + 1)? {
                let p = params(chain)?;
                // `recorded`: false while block `at + 1`, which fixes it, is not executed yet.
                v["challenge"] = json!({"seed": to_hex(&challenge_seed(&beacon, id)), "gemms": p.challenge_gemms, "rows": p.challenge_rows, "deadline": at + 1 + p.answer_window, "recorded": recorded});
            }
        }
        JobStatus::Provisional { at, output, receipt, until, checked } => {
            // Final once the window has passed, even before a Finalize pays it out.
            let height = chain.head().map_or(0, |h| h.height);
            v["state"] = json!(if height > *until { "final" } else { "provisional" });
            v["committed_at"] = json!(at);
            v["output"] = json!(output);
            v["challengeable_until"] = json!(until);
            v["spot_check_answered"] = json!(checked);
            if let Some((beacon, _)) = beacon_of(ctx, at + 1)? {
                let p = params(chain)?;
                let seed = challenge_seed(&beacon, id);
                let spot = aivm_runtime::market::tee::spot_checked(&seed, p.tee.spot_check_ppm);
                v["spot_checked"] = json!(spot);
                if spot {
                    v["challenge"] = json!({"seed": to_hex(&seed), "gemms": p.challenge_gemms, "rows": p.challenge_rows, "deadline": at + 1 + p.answer_window});
                }
            }
            if let Ok(r) = ciborium::from_reader::<InferenceReceipt, _>(&receipt[..]) {
                v["receipt_hash"] = json!(to_hex(&r.hash()));
                v["gemm_count"] = json!(r.gemm_count);
            }
        }
        JobStatus::Settled { at, output, receipt, until } => {
            v["state"] = json!("settled");
            v["settled_at"] = json!(at);
            v["output"] = json!(output);
            v["disputable_until"] = json!(until);
            if let Ok(r) = ciborium::from_reader::<InferenceReceipt, _>(&receipt[..]) {
                v["receipt_hash"] = json!(to_hex(&r.hash()));
                v["gemm_count"] = json!(r.gemm_count);
            }
            if let Some((tx, data)) = ended_by(chain, *at, id, b"job.settled")? {
                v["ended_by"] = tx;
                if let Some(p) = FeeSplit::from_event(&data) {
                    v["payout"] = json!({"worker": p.worker.to_string(), "validators": p.validators.to_string(), "verifiers": p.verifiers.to_string(),
                                         "liquidity": p.liquidity.to_string(), "burned": p.burn.to_string()});
                }
            }
        }
        JobStatus::Disputed { at, verifier, step, output, until, .. } => {
            v["state"] = json!("disputed");
            v["disputed_at"] = json!(at);
            v["verifier"] = json!(to_hex(verifier));
            v["step"] = json!(step);
            v["output"] = json!(output);
            v["disputable_until"] = json!(until);
            if let Some((beacon, _)) = beacon_of(ctx, at + 1)? {
                let p = params(chain)?;
                v["challenge"] = json!({"seed": to_hex(&challenge_seed(&beacon, id)), "step": step, "deadline": at + 1 + p.answer_window});
            }
        }
        JobStatus::Slashed { at, taken, reason } => {
            v["state"] = json!("slashed");
            v["slashed_at"] = json!(at);
            v["slashed"] = json!(taken.to_string());
            v["reason"] = json!(reason);
            if let Some((tx, _)) = ended_by(chain, *at, id, b"job.slashed")? {
                v["ended_by"] = tx;
            }
        }
    }
    Ok(v)
}

/// The transaction of block `height` that ended job `id` — the one whose receipt carries the
/// market's `topic` event for it — as `{tx, gas_used}` (an answer's gas is what checking the
/// work cost), with the event's data after the job id. `None` if the block has none.
fn ended_by(chain: &Chain, height: u64, id: &[u8; 32], topic: &[u8]) -> Result<Option<(Value, Vec<u8>)>, ErrorObjectOwned> {
    let Some(block) = chain.block(height).map_err(node_error)? else { return Ok(None) };
    let market = market_address();
    for r in &block.receipts {
        if let Some(e) = r.events.iter().find(|e| e.contract == market && e.topic == topic && e.data.get(..32) == Some(&id[..])) {
            return Ok(Some((json!({"tx": to_hex(&r.tx_hash), "gas_used": r.gas_used}), e.data[32..].to_vec())));
        }
    }
    Ok(None)
}

fn bond_json(b: &Bond) -> Value {
    json!({"bonded": b.bonded.to_string(), "unbonding": b.unbonding.to_string(), "unlock_at": b.unlock_at,
           "capacity": b.capacity, "in_flight": b.in_flight, "credits": b.credits,
           "quality_miss_bps": b.quality_miss_bps, "quality_epoch": b.quality_epoch})
}

#[rpc(server, client, namespace = "aivm")]
pub trait MarketApi {
    /// A job: parties, terms, state, output and (once drawn) its challenge; or `null`.
    #[method(name = "getJob")]
    fn get_job(&self, job_id: String) -> RpcResult<Option<Value>>;

    /// A model's HMM pool, or `null`.
    #[method(name = "getPool")]
    fn get_pool(&self, model: String) -> RpcResult<Option<Value>>;

    /// What an address holds in a model's market: pool shares, compute units, and what its
    /// shares would redeem for now.
    #[method(name = "getHoldings")]
    fn get_holdings(&self, address: String, model: String) -> RpcResult<Value>;

    /// The fee (decimal string) for `units` of inference on `model` now.
    #[method(name = "quote")]
    fn quote(&self, model: String, units: u64) -> RpcResult<String>;

    /// A bond: `role` is a model (a worker's) or `"verifier"`; `null` if none.
    #[method(name = "getBond")]
    fn get_bond(&self, address: String, role: String) -> RpcResult<Option<Value>>;

    /// The market's parameters and treasury.
    #[method(name = "getMarket")]
    fn get_market(&self) -> RpcResult<Value>;

    /// The workers staked on a model, with their bonds.
    #[method(name = "getWorkers")]
    fn get_workers(&self, model: String) -> RpcResult<Vec<Value>>;

    /// A block's receipts (how workers and clients watch for their jobs' events), or `null`.
    #[method(name = "getBlockReceipts")]
    fn get_block_receipts(&self, height: u64) -> RpcResult<Option<Vec<Value>>>;

    /// `{height, beacon}` of the block after the committed head, once this validator knows the
    /// seed that fixes it (before that block is proposed); or `null`.
    #[method(name = "nextBeacon")]
    fn next_beacon(&self) -> RpcResult<Option<Value>>;
}

impl MarketApiServer for Api {
    fn next_beacon(&self) -> RpcResult<Option<Value>> {
        let height = self.0.executor.committed_head().0 + 1;
        Ok(beacon_ahead(&self.0, height)?.map(|b| json!({"height": height, "beacon": to_hex(&b)})))
    }

    fn get_job(&self, job_id: String) -> RpcResult<Option<Value>> {
        let id = hex32(&job_id, "job id")?;
        let chain = self.0.executor.chain();
        match record::<Job>(chain, MarketKey::Job(&id))? {
            None => Ok(None),
            Some(j) => job_json(&self.0, &id, &j).map(Some),
        }
    }

    fn get_pool(&self, model: String) -> RpcResult<Option<Value>> {
        let sku = hex32(&model, "model")?;
        Ok(record::<Pool>(self.0.executor.chain(), MarketKey::Pool(&sku))?.map(
            |pool| json!({"native": pool.native.to_string(), "units": pool.units.to_string(), "shares": pool.shares.to_string(), "fee_bps": pool.fee_bps}),
        ))
    }

    fn get_holdings(&self, address: String, model: String) -> RpcResult<Value> {
        let (who, sku) = (hex32(&address, "address")?, hex32(&model, "model")?);
        let chain = self.0.executor.chain();
        let amount = |key: MarketKey<'_>| record::<u128>(chain, key).map(Option::unwrap_or_default);
        let (shares, units) = (amount(MarketKey::Shares(&sku, &who))?, amount(MarketKey::Units(&sku, &who))?);
        // What RemoveLiquidity would pay for every share now (the pool's own rounding).
        let redeemable = match record::<Pool>(chain, MarketKey::Pool(&sku))? {
            Some(mut pool) if shares > 0 => pool.remove_liquidity(shares).ok().map(|(n, u)| json!({"native": n.to_string(), "units": u.to_string()})),
            _ => None,
        };
        Ok(json!({"shares": shares.to_string(), "units": units.to_string(), "redeemable": redeemable}))
    }

    fn quote(&self, model: String, units: u64) -> RpcResult<String> {
        let sku = hex32(&model, "model")?;
        let pool: Pool = record(self.0.executor.chain(), MarketKey::Pool(&sku))?.ok_or_else(|| invalid("no pool for this model"))?;
        let fee = amount_in(units as u128, pool.native, pool.units, pool.fee_bps).map_err(|e| invalid(e.to_string()))?;
        Ok(fee.to_string())
    }

    fn get_bond(&self, address: String, role: String) -> RpcResult<Option<Value>> {
        let who = hex32(&address, "address")?;
        let role = if role == "verifier" { Role::Verifier } else { Role::Worker { sku: hex32(&role, "model")? } };
        Ok(record::<Bond>(self.0.executor.chain(), MarketKey::Bond(&role, &who))?.map(|b| bond_json(&b)))
    }

    fn get_market(&self) -> RpcResult<Value> {
        let chain = self.0.executor.chain();
        let p = params(chain)?;
        let t: Treasury = record(chain, MarketKey::Treasury)?.unwrap_or_default();
        Ok(json!({
            "params": serde_json::to_value(&p).map_err(node_error)?,
            "treasury": {"validators": t.validators.to_string(), "verifiers": t.verifiers.to_string(), "burned": t.burned.to_string(), "minted": t.minted.to_string()},
        }))
    }

    fn get_workers(&self, model: String) -> RpcResult<Vec<Value>> {
        let sku = hex32(&model, "model")?;
        let chain = self.0.executor.chain();
        let set: WorkerSet = record(chain, MarketKey::Workers(&sku))?.unwrap_or_default();
        let mut out = Vec::new();
        for w in &set.workers {
            let b: Bond = record(chain, MarketKey::Bond(&Role::Worker { sku }, w))?.unwrap_or_default();
            let mut j = bond_json(&b);
            j["address"] = json!(to_hex(&w[..]));
            out.push(j);
        }
        Ok(out)
    }

    fn get_block_receipts(&self, height: u64) -> RpcResult<Option<Vec<Value>>> {
        Ok(self.0.executor.chain().block(height).map_err(node_error)?.map(|b| b.receipts.iter().map(receipt_json).collect()))
    }
}
