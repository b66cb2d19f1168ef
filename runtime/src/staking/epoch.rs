//! Epochs: at the end of every block whose height is a multiple of the epoch length, the
//! next epoch's active set is computed from the stake in the state and written, so every
//! validator reads the same set from the same state root. Epoch `e` is heights
//! `e·L + 1 ..= (e+1)·L`; its set is written at height `e·L` (epoch 0's by genesis).

use super::state::{decode_stake, stake_key, Registry, StakingKey, StakingParams, Validator};
use crate::encoding::cbor;
use crate::state::{Address, StateKey, StateValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One epoch's active set, most stake first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSet {
    pub epoch: u64,
    pub validators: Vec<serde_bytes::ByteArray<32>>,
}

/// The `size` entries of `(identity, stake)` with the most stake, ties broken by identity
/// (lower first), as indices into `stakes`, most stake first.
pub fn active_set(stakes: &[(Address, u128)], size: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..stakes.len()).collect();
    idx.sort_by(|&a, &b| stakes[b].1.cmp(&stakes[a].1).then(stakes[a].0.cmp(&stakes[b].0)));
    idx.truncate(size);
    idx
}

fn record<T: DeserializeOwned>(read: &mut impl FnMut(&StateKey) -> Option<StateValue>, key: StakingKey<'_>) -> Option<T> {
    match read(&key.state_key()) {
        Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).ok(),
        _ => None,
    }
}

/// The staking parameters, if this chain has staking.
pub fn params(mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Option<StakingParams> {
    record(&mut read, StakingKey::Params)
}

/// The recorded set of `epoch`.
pub fn epoch_set(epoch: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Option<EpochSet> {
    record(&mut read, StakingKey::Epoch(epoch))
}

/// The set the registry's validators give now: bonded at least the minimum, not tombstoned.
pub fn compute_set(epoch: u64, p: &StakingParams, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> EpochSet {
    let registry: Registry = record(&mut read, StakingKey::Registry).unwrap_or_default();
    let mut candidates: Vec<(Address, u128)> = Vec::new();
    for id in registry.validators.iter().map(|id| **id) {
        if record::<Validator>(&mut read, StakingKey::Validator(&id)).is_some_and(|v| v.tombstoned || v.jailed_until > epoch) {
            continue;
        }
        match decode_stake(read(&stake_key(&id)).as_ref()) {
            Some(s) if s > 0 && s >= p.min_stake => candidates.push((id, s)),
            _ => {}
        }
    }
    let set = active_set(&candidates, p.active_set_size as usize);
    EpochSet { epoch, validators: set.into_iter().map(|i| serde_bytes::ByteArray::new(candidates[i].0)).collect() }
}

/// The writes at the end of block `height`: the next epoch's set when `height` ends an epoch.
/// Empty on a chain without staking.
pub fn epoch_writes(height: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Vec<(StateKey, StateValue)> {
    let Some(p) = params(&mut read) else { return Vec::new() };
    if p.epoch_length == 0 || height == 0 || !height.is_multiple_of(p.epoch_length) {
        return Vec::new();
    }
    let next = height / p.epoch_length;
    // Validators down in the ending epoch are jailed first, so the next set leaves them out.
    let mut out = Vec::new();
    for (id, until) in super::liveness::jailed(&p, next - 1, &mut read) {
        let mut v: Validator = record(&mut read, StakingKey::Validator(&id)).unwrap_or_default();
        v.jailed_until = v.jailed_until.max(until);
        out.push((StakingKey::Validator(&id).state_key(), StateValue::Bytes(cbor(&v).into())));
    }
    let set = compute_set(next, &p, |k| out.iter().find(|(ok, _)| ok == k).map(|(_, v)| v.clone()).or_else(|| read(k)));
    out.push((StakingKey::Epoch(next).state_key(), StateValue::Bytes(cbor(&set).into())));
    out
}

/// The state entries of staking at genesis: parameters, each validator's stake, record and
/// key index, the registry, and epoch 0's set.
pub fn genesis_entries(p: &StakingParams, validators: &[(Address, Vec<u8>, u128)]) -> Vec<(StateKey, StateValue)> {
    let bytes = |v: Vec<u8>| StateValue::Bytes(v.into());
    let mut out = vec![(StakingKey::Params.state_key(), bytes(cbor(p)))];
    let mut ids: Vec<serde_bytes::ByteArray<32>> = Vec::new();
    for (id, key, stake) in validators {
        out.push((stake_key(id), super::stake_value(*stake)));
        let v = Validator { consensus_key: key.clone(), ..Validator::default() };
        out.push((StakingKey::Validator(id).state_key(), bytes(cbor(&v))));
        out.push((StakingKey::ConsensusKey(blake3::hash(key).as_bytes()).state_key(), bytes(id.to_vec())));
        ids.push(serde_bytes::ByteArray::new(*id));
    }
    ids.sort();
    ids.dedup();
    let stakes: Vec<(Address, u128)> = validators.iter().map(|(id, _, s)| (*id, *s)).collect();
    let set = active_set(&stakes, p.active_set_size as usize);
    let set = EpochSet { epoch: 0, validators: set.into_iter().map(|i| serde_bytes::ByteArray::new(stakes[i].0)).collect() };
    out.push((StakingKey::Registry.state_key(), bytes(cbor(&Registry { validators: ids }))));
    out.push((StakingKey::Epoch(0).state_key(), bytes(cbor(&set))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_next_set_is_the_most_staked_untombstoned_validators() {
        let p = StakingParams { min_stake: 10, unbonding_blocks: 5, max_validators: 10, active_set_size: 2, epoch_length: 4, jail: Default::default() };
        let vals = vec![([1; 32], vec![1; 48], 50), ([2; 32], vec![2; 48], 70), ([3; 32], vec![3; 48], 70), ([4; 32], vec![4; 48], 5)];
        let mut state: HashMap<StateKey, StateValue> = genesis_entries(&p, &vals).into_iter().collect();
        fn read(s: &HashMap<StateKey, StateValue>) -> impl FnMut(&StateKey) -> Option<StateValue> + '_ {
            move |k| s.get(k).cloned()
        }
        // Ties by identity: [2] before [3].
        assert_eq!(epoch_set(0, read(&state)).unwrap().validators.iter().map(|v| v[0]).collect::<Vec<_>>(), vec![2, 3]);
        assert!(epoch_writes(3, read(&state)).is_empty(), "not an epoch's end");
        // [3] tombstoned and [4] now above the minimum: the next set is [2], [1].
        let mut v3: Validator = record(&mut read(&state), StakingKey::Validator(&[3; 32])).unwrap();
        v3.tombstoned = true;
        state.insert(StakingKey::Validator(&[3; 32]).state_key(), StateValue::Bytes(cbor(&v3).into()));
        state.insert(stake_key(&[4; 32]), super::super::stake_value(40));
        let w = epoch_writes(8, read(&state));
        state.extend(w);
        let set = epoch_set(2, read(&state)).unwrap();
        assert_eq!((set.epoch, set.validators.iter().map(|v| v[0]).collect::<Vec<_>>()), (2, vec![2, 1]));
    }
}
