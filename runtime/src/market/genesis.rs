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
        // Stake must stay slashable for as long as anything it answers for can still be
        // proven wrong: a settled job's dispute window plus the dispute's answer window.
        let tee = &self.params.tee;
        let tee_on = tee.enabled();
        if tee_on
            && (tee.challenge_window <= self.params.answer_window.saturating_add(1) || tee.challenge_window.saturating_add(2) >= super::jobs::BEACONS_KEPT)
        {
            return Err(MarketError::Invalid(format!(
                "the TEE challenge window must exceed the answer window + 1 (a spot check ends inside it) and stay under {} blocks",
                super::jobs::BEACONS_KEPT - 2
            )));
        }
        if tee.spot_check_ppm > 1_000_000 {
            return Err(MarketError::Invalid("spot_check_ppm is at most 1 000 000".into()));
        }
        let window = if tee_on { self.params.dispute_window.max(tee.challenge_window) } else { self.params.dispute_window };
        let exposure = window.saturating_add(self.params.answer_window).saturating_add(1);
        if self.params.unbonding_blocks <= exposure {
            return Err(MarketError::Invalid(format!(
                "unbonding_blocks {} must exceed the dispute and answer windows ({exposure} blocks)",
                self.params.unbonding_blocks
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stake_must_outlive_what_it_answers_for() {
        let ok = MarketGenesis::default();
        assert!(ok.entries().is_ok());
        let short = MarketGenesis { params: MarketParams { unbonding_blocks: 71, ..MarketParams::default() }, ..MarketGenesis::default() };
        assert!(matches!(short.entries(), Err(MarketError::Invalid(m)) if m.contains("unbonding_blocks")));
        // The TEE track's window must hold a spot check and be outlived by unbonding, but only
        // when the track is on.
        let mut tee = MarketParams::default();
        tee.tee.challenge_window = 5;
        assert!(MarketGenesis { params: tee.clone(), ..MarketGenesis::default() }.entries().is_ok(), "off: the window is not used");
        tee.tee.measurements = vec![vec![1; 32].into()];
        assert!(
            matches!(MarketGenesis { params: tee.clone(), ..MarketGenesis::default() }.entries(), Err(MarketError::Invalid(m)) if m.contains("challenge window"))
        );
        tee.tee.challenge_window = 90;
        assert!(matches!(MarketGenesis { params: tee, ..MarketGenesis::default() }.entries(), Err(MarketError::Invalid(m)) if m.contains("unbonding_blocks")));
        let orphan = MarketGenesis { pools: vec![SeedPool { sku: [1; 32], native: 1 << 20, units: 1 << 20, provider: [2; 32] }], ..MarketGenesis::default() };
        assert!(matches!(orphan.entries(), Err(MarketError::UnknownModel(_))));
    }
}
