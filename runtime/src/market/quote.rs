//! HMM_QUOTE for contracts (`spec/market.md` §6b): the price of `units` compute units on a
//! SKU's pool and a staked worker with room for them, drawn by the same stake-weighted rule as
//! job selection (`jobs::draw`). Read-only: a contract pays the worker itself (for example
//! through `contracts/escrow`, seed 002 Listing 1).

use super::hmm::{amount_in, Pool};
use super::jobs::{draw, eligible};
use super::state::{Bond, MarketKey, WorkerSet};
use super::tx::{Role, Sku};
use super::MarketParams;
use crate::state::{Address, StateKey};
use serde::de::DeserializeOwned;

/// Reads one state record's bytes (`None`: absent); `E` is the embedder's "blocked" error.
pub type ReadRecord<'a, E> = dyn FnMut(&StateKey) -> Result<Option<Vec<u8>>, E> + 'a;

/// A quote, with the record bytes read to make it (priced per byte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub price: u128,
    pub worker: Address,
    pub bytes: usize,
}

/// The key of a quote's draw: the quoting contract, the block and the request, so a quote is
/// deterministic on every validator and differs between contracts and blocks.
pub fn quote_key(contract: &Address, height: u64, sku: &Sku, units: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 worker quote v1");
    h.update(contract);
    h.update(&height.to_le_bytes());
    h.update(sku);
    h.update(&units.to_le_bytes());
    *h.finalize().as_bytes()
}

fn record<T: DeserializeOwned, E>(read: &mut ReadRecord<'_, E>, key: MarketKey<'_>, bytes: &mut usize) -> Result<Option<T>, E> {
    let Some(b) = read(&key.state_key())? else { return Ok(None) };
    *bytes += b.len();
    Ok(ciborium::from_reader(&b[..]).ok())
}

/// How many workers the SKU's set holds (what a quote will read); `None` if it has none.
pub fn workers<E>(read: &mut ReadRecord<'_, E>, sku: &Sku) -> Result<Option<usize>, E> {
    let set: Option<WorkerSet> = record(read, MarketKey::Workers(sku), &mut 0)?;
    Ok(set.map(|s| s.workers.len()).filter(|n| *n > 0))
}

/// The quote for `units` (≥ 1) on `sku`, or `None`: no market, no pool, a pool that cannot
/// sell that many units, or no worker with room for them.
pub fn quote<E>(read: &mut ReadRecord<'_, E>, sku: &Sku, units: u64, key: &[u8; 32]) -> Result<Option<Quote>, E> {
    let mut bytes = 0;
    let Some(params) = record::<MarketParams, E>(read, MarketKey::Params, &mut bytes)? else { return Ok(None) };
    let Some(pool) = record::<Pool, E>(read, MarketKey::Pool(sku), &mut bytes)? else { return Ok(None) };
    let Ok(price) = amount_in(units as u128, pool.native, pool.units, pool.fee_bps) else { return Ok(None) };
    let set: WorkerSet = record(read, MarketKey::Workers(sku), &mut bytes)?.unwrap_or_default();
    let role = Role::Worker { sku: *sku };
    let (mut candidates, mut total) = (Vec::new(), 0u128);
    for w in &set.workers {
        let b: Bond = record(read, MarketKey::Bond(&role, w), &mut bytes)?.unwrap_or_default();
        if eligible(&params, &b, units) {
            total = total.saturating_add(b.bonded);
            candidates.push((**w, b.bonded));
        }
    }
    Ok(draw(&candidates, total, key).map(|worker| Quote { price, worker, bytes }))
}
