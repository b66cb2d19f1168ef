//! Paying the validators' share of market fees out of the treasury (`spec/market.md` §4): at
//! the end of every block whose height is a multiple of the epoch length, the pot goes to the
//! active validators in proportion to their stake, after the block's transactions and fees.

use super::state::{MarketKey, Treasury};
use crate::encoding::cbor;
use crate::state::{Account, Address, StateKey, StateValue};
use ruint::aliases::U256;

/// Who the validators' pot is paid to, and when. Set by the node from its genesis; a chain
/// without it (the runtime alone, tests) never pays the pot out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRewards {
    /// Blocks per epoch (≥ 1): the pot is paid at every height that is a multiple of it.
    pub epoch_length: u64,
    /// The active validators: the account paid, and the state key of its stake record
    /// (16 bytes, u128 little-endian: `node/src/staking.rs`). Stake is read when paying, so a
    /// slashed validator's share shrinks with its stake.
    pub validators: Vec<(Address, StateKey)>,
}

/// `pot` split by `stakes`: `⌊pot·stake/Σ stakes⌋` each, in order, exact in 256 bits. The
/// shares never exceed the pot; what rounding leaves stays in it for the next epoch.
pub fn split_by_stake(pot: u128, stakes: &[u128]) -> Vec<u128> {
    let total: U256 = stakes.iter().map(|&s| U256::from(s)).fold(U256::ZERO, |a, b| a + b);
    if total.is_zero() {
        return vec![0; stakes.len()];
    }
    // Each share ≤ pot (stake ≤ total), so it fits u128.
    stakes.iter().map(|&s| u128::try_from(U256::from(pot) * U256::from(s) / total).unwrap_or(0)).collect()
}

/// The writes that pay the pot at the end of block `height`, reading the state as the block
/// left it through `read`; empty when `height` is not an epoch's last block or there is
/// nothing to pay.
pub fn payout(rewards: &EpochRewards, height: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Vec<(StateKey, StateValue)> {
    if rewards.epoch_length == 0 || height == 0 || !height.is_multiple_of(rewards.epoch_length) {
        return Vec::new();
    }
    let key = MarketKey::Treasury.state_key();
    let Some(StateValue::Bytes(b)) = read(&key) else { return Vec::new() };
    let Ok(mut treasury) = ciborium::from_reader::<Treasury, _>(&b[..]) else { return Vec::new() };
    let stakes: Vec<u128> = rewards
        .validators
        .iter()
        .map(|(_, k)| match read(k) {
            Some(StateValue::Bytes(b)) => b.as_ref().try_into().map(u128::from_le_bytes).unwrap_or(0),
            _ => 0,
        })
        .collect();
    let shares = split_by_stake(treasury.validators, &stakes);
    let mut out = Vec::new();
    for ((who, _), share) in rewards.validators.iter().zip(shares) {
        if share == 0 {
            continue;
        }
        let k = StateKey::Account(*who);
        let mut acc = match out.iter().rev().find(|(key, _)| *key == k).map(|(_, v): &(StateKey, StateValue)| v.clone()).or_else(|| read(&k)) {
            Some(StateValue::Account(a)) => a,
            _ => Account::default(),
        };
        // A balance that would overflow keeps its share in the pot.
        let Some(b) = acc.balance.checked_add(share) else { continue };
        acc.balance = b;
        treasury.validators -= share;
        out.push((k, StateValue::Account(acc)));
    }
    if !out.is_empty() {
        out.push((key, StateValue::Bytes(cbor(&treasury).into())));
    }
    out
}

/// The work rewards at the end of block `height` (an epoch's last): `inflation_per_epoch`
/// minted and split among the workers by the verified tokens they served since the last
/// epoch's end (`⌊inflation·credits/Σ credits⌋` each, exact in 256 bits; the rounding is
/// never minted), then the credits start again. Nothing is minted in an epoch without
/// verified work. Empty when `height` is not an epoch's last block or the market has no
/// inflation. Bounded by the workers that served (at most `max_workers_per_sku` per SKU).
pub fn work_payout(epoch_length: u64, height: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Vec<(StateKey, StateValue)> {
    if epoch_length == 0 || height == 0 || !height.is_multiple_of(epoch_length) {
        return Vec::new();
    }
    let get = |read: &mut dyn FnMut(&StateKey) -> Option<StateValue>, k: MarketKey<'_>| match read(&k.state_key()) {
        Some(StateValue::Bytes(b)) => Some(b),
        _ => None,
    };
    let Some(params) = get(&mut read, MarketKey::Params).and_then(|b| ciborium::from_reader::<super::MarketParams, _>(&b[..]).ok()) else { return Vec::new() };
    let Some(pending) = get(&mut read, MarketKey::PendingCredits).and_then(|b| ciborium::from_reader::<super::state::PendingCredits, _>(&b[..]).ok()) else {
        return Vec::new();
    };
    if params.inflation_per_epoch == 0 || pending.workers.is_empty() {
        return Vec::new();
    }
    let mut treasury: Treasury = get(&mut read, MarketKey::Treasury).and_then(|b| ciborium::from_reader(&b[..]).ok()).unwrap_or_default();
    let credits: Vec<u128> = pending.workers.iter().map(|(_, c)| u128::from(*c)).collect();
    let shares = split_by_stake(params.inflation_per_epoch, &credits);
    let mut out = Vec::new();
    for ((who, _), share) in pending.workers.iter().zip(shares).filter(|(_, s)| *s > 0) {
        let k = StateKey::Account(**who);
        let mut acc = match read(&k) {
            Some(StateValue::Account(a)) => a,
            _ => Account::default(),
        };
        let Some(b) = acc.balance.checked_add(share) else { continue };
        let Some(m) = treasury.minted.checked_add(share) else { continue };
        acc.balance = b;
        treasury.minted = m;
        out.push((k, StateValue::Account(acc)));
    }
    out.push((MarketKey::Treasury.state_key(), StateValue::Bytes(cbor(&treasury).into())));
    out.push((MarketKey::PendingCredits.state_key(), StateValue::Deleted));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_stake_and_never_exceed_the_pot() {
        assert_eq!(split_by_stake(1_000, &[1, 1, 2]), vec![250, 250, 500]);
        assert_eq!(split_by_stake(10, &[1, 1, 1]), vec![3, 3, 3], "the odd unit stays in the pot");
        assert_eq!(split_by_stake(10, &[0, 0]), vec![0, 0]);
        assert_eq!(split_by_stake(u128::MAX, &[u128::MAX, u128::MAX]), vec![u128::MAX / 2, u128::MAX / 2]);
        for (pot, stakes) in [(7u128, vec![3u128, 5, 11]), (u128::MAX, vec![1, u128::MAX - 1, 7]), (0, vec![4, 5])] {
            let s = split_by_stake(pot, &stakes);
            assert!(s.iter().fold(0u128, |a, b| a.checked_add(*b).unwrap()) <= pot);
        }
    }

    #[test]
    fn the_pot_is_paid_at_epoch_ends_only() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let stake = |n: u8| StateKey::Storage([9; 32], vec![n].into());
        let rewards = EpochRewards { epoch_length: 4, validators: vec![(a, stake(1)), (b, stake(2))] };
        let state: std::collections::BTreeMap<StateKey, StateValue> = [
            (MarketKey::Treasury.state_key(), StateValue::Bytes(cbor(&Treasury { validators: 301, verifiers: 5, burned: 9, minted: 0 }).into())),
            (stake(1), StateValue::Bytes(100u128.to_le_bytes().to_vec().into())),
            (stake(2), StateValue::Bytes(200u128.to_le_bytes().to_vec().into())),
            (StateKey::Account(a), StateValue::Account(Account { balance: 7, nonce: 3, code_hash: None })),
        ]
        .into();
        assert!(payout(&rewards, 3, |k| state.get(k).cloned()).is_empty());
        let w: std::collections::BTreeMap<_, _> = payout(&rewards, 8, |k| state.get(k).cloned()).into_iter().collect();
        assert_eq!(w[&StateKey::Account(a)], StateValue::Account(Account { balance: 107, nonce: 3, code_hash: None }));
        assert_eq!(w[&StateKey::Account(b)], StateValue::Account(Account { balance: 200, ..Account::default() }));
        let left = Treasury { validators: 1, verifiers: 5, burned: 9, minted: 0 };
        assert_eq!(w[&MarketKey::Treasury.state_key()], StateValue::Bytes(cbor(&left).into()));
    }
}
