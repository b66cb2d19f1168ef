//! The compute market from a contract (`spec/market.md` §6b; seed 002 Table 4's HMM_QUOTE).

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
