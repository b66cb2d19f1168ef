//! The market's initial state: parameters, the models the chain serves, and seeded pools.
//! Models are registered only here (no transaction registers one): every validator must hold
//! each registered artifact, so letting anyone register a hash would let anyone stop the chain.

use super::hmm::Pool;
use super::state::{MarketKey, ModelEntry, Treasury};
use super::tx::Sku;
use super::{MarketError, MarketParams};
use crate::encoding::cbor;
use crate::state::{Address, StateKey, StateValue};
use serde::Serialize;
use std::collections::BTreeMap;

/// A pool seeded at genesis: `native` and `units` enter the supply here, the shares go to
/// `provider`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedPool {
    pub sku: Sku,
    pub native: u128,
    pub units: u128,
    pub provider: Address,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketGenesis {
    pub params: MarketParams,
    pub models: Vec<(Sku, ModelEntry)>,
    pub pools: Vec<SeedPool>,
}

fn entry<T: Serialize>(k: MarketKey<'_>, v: &T) -> (StateKey, StateValue) {
    (k.state_key(), StateValue::Bytes(cbor(v).into()))
}

impl MarketGenesis {
    /// The state entries; refuses a pool for an unregistered model or a bad deposit.
    pub fn entries(&self) -> Result<Vec<(StateKey, StateValue)>, MarketError> {
        if self.params.answer_window >= super::jobs::BEACONS_KEPT - 1 {
            return Err(MarketError::Invalid(format!("the answer window must be under {} blocks", super::jobs::BEACONS_KEPT - 1)));
        }
        let mut out = BTreeMap::new();
        let mut put = |(k, v): (StateKey, StateValue)| out.insert(k, v);
        put(entry(MarketKey::Params, &self.params));
        put(entry(MarketKey::Treasury, &Treasury::default()));
        for (sku, m) in &self.models {
            put(entry(MarketKey::Model(sku), m));
        }
        for p in &self.pools {
            if !self.models.iter().any(|(s, _)| *s == p.sku) {
                return Err(MarketError::UnknownModel(hex::encode(p.sku)));
            }
            let mut pool = Pool::new(self.params.pool_fee_bps)?;
            let shares = pool.add_liquidity(p.native, p.units)?;
            put(entry(MarketKey::Pool(&p.sku), &pool));
            put(entry(MarketKey::Shares(&p.sku, &p.provider), &shares));
        }
        Ok(out.into_iter().collect())
    }
}
