//! Epochs: at the end of every block whose height is a multiple of the epoch length, an
//! active set is computed from the stake in the state and written, so every validator reads
//! the same set from the same state root. Epoch `e` is heights `e·L ..= (e+1)·L − 1` (the
//! consensus engine's epochs); the block at `k·L`, the first of epoch `k`, records the set
//! of epoch `k + SET_LAG` (genesis records epochs `0..=SET_LAG`).
//!
//! Why [`SET_LAG`] = 3: the engine's set of epoch `E` receives its shares of the threshold key
//! in epoch `E − 1`'s reshare, whose participants are committed in the final block of epoch
//! `E − 3` and must be fixed, from finalized state, before anyone proposes that block
//! (`spec/consensus.md`, "Epochs of the engine"). So bonding, unbonding and jailing take
//! effect three epochs after the epoch they are recorded in.

use super::state::{decode_stake, stake_key, Registry, StakingKey, StakingParams, Validator};
use crate::encoding::cbor;
use crate::state::{Address, StateKey, StateValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Epochs between the one a set is recorded in and the one it is for.
pub const SET_LAG: u64 = 3;

/// One epoch's active set, most stake first, and each validator's p2p address as recorded
/// when the set was computed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSet {
    pub epoch: u64,
    pub validators: Vec<serde_bytes::ByteArray<32>>,
    #[serde(default)]
    pub p2p: Vec<String>,
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
    let mut addresses: Vec<String> = Vec::new();
    for id in registry.validators.iter().map(|id| **id) {
        let v = record::<Validator>(&mut read, StakingKey::Validator(&id));
        if v.as_ref().is_some_and(|v| v.tombstoned || v.jailed_until > epoch) {
            continue;
        }
        match decode_stake(read(&stake_key(&id)).as_ref()) {
            Some(s) if s > 0 && s >= p.min_stake => {
                candidates.push((id, s));
                addresses.push(v.map(|v| v.p2p).unwrap_or_default());
            }
            _ => {}
        }
    }
    let set = active_set(&candidates, p.active_set_size as usize);
    EpochSet {
        epoch,
        validators: set.iter().map(|&i| serde_bytes::ByteArray::new(candidates[i].0)).collect(),
        p2p: set.iter().map(|&i| addresses[i].clone()).collect(),
    }
}

/// The writes at the end of block `height`: when it is the first block of epoch `k`, the
/// validators down in epoch `k − 1` are jailed and the set of epoch `k + SET_LAG` is recorded.
/// Empty on a chain without staking.
pub fn epoch_writes(height: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Vec<(StateKey, StateValue)> {
    let Some(p) = params(&mut read) else { return Vec::new() };
    if p.epoch_length == 0 || height == 0 || !height.is_multiple_of(p.epoch_length) {
        return Vec::new();
    }
    let next = height / p.epoch_length + SET_LAG;
    // Validators down in the ending epoch are jailed first, so the set leaves them out.
    let mut out = Vec::new();
    for (id, until) in super::liveness::jailed(&p, height / p.epoch_length - 1, &mut read) {
        let mut v: Validator = record(&mut read, StakingKey::Validator(&id)).unwrap_or_default();
        v.jailed_until = v.jailed_until.max(until);
        out.push((StakingKey::Validator(&id).state_key(), StateValue::Bytes(cbor(&v).into())));
    }
    let set = compute_set(next, &p, |k| out.iter().find(|(ok, _)| ok == k).map(|(_, v)| v.clone()).or_else(|| read(k)));
    out.push((StakingKey::Epoch(next).state_key(), StateValue::Bytes(cbor(&set).into())));
    out
}

/// One genesis validator: identity, consensus key, stake, p2p address.
pub type GenesisValidator = (Address, Vec<u8>, u128, String);

/// The state entries of staking at genesis: parameters, each validator's stake, record and
/// key index, the registry, and the sets of epochs `0..=SET_LAG`.
pub fn genesis_entries(p: &StakingParams, validators: &[GenesisValidator]) -> Vec<(StateKey, StateValue)> {
    let bytes = |v: Vec<u8>| StateValue::Bytes(v.into());
    let mut out = vec![(StakingKey::Params.state_key(), bytes(cbor(p)))];
    let mut ids: Vec<serde_bytes::ByteArray<32>> = Vec::new();
    for (id, key, stake, p2p) in validators {
        out.push((stake_key(id), super::stake_value(*stake)));
        let v = Validator { consensus_key: key.clone(), p2p: p2p.clone(), ..Validator::default() };
        out.push((StakingKey::Validator(id).state_key(), bytes(cbor(&v))));
        out.push((StakingKey::ConsensusKey(blake3::hash(key).as_bytes()).state_key(), bytes(id.to_vec())));
        ids.push(serde_bytes::ByteArray::new(*id));
    }
    ids.sort();
    ids.dedup();
    let stakes: Vec<(Address, u128)> = validators.iter().map(|(id, _, s, _)| (*id, *s)).collect();
    let set = active_set(&stakes, p.active_set_size as usize);
    out.push((StakingKey::Registry.state_key(), bytes(cbor(&Registry { validators: ids }))));
    for epoch in 0..=SET_LAG {
        let set = EpochSet {
            epoch,
            validators: set.iter().map(|&i| serde_bytes::ByteArray::new(stakes[i].0)).collect(),
            p2p: set.iter().map(|&i| validators[i].3.clone()).collect(),
        };
        out.push((StakingKey::Epoch(epoch).state_key(), bytes(cbor(&set))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_next_set_is_the_most_staked_untombstoned_validators() {
        let p = StakingParams { min_stake: 10, unbonding_blocks: 5, max_validators: 10, active_set_size: 2, epoch_length: 4, jail: Default::default() };
        let vals: Vec<GenesisValidator> =
            [(1, 50), (2, 70), (3, 70), (4, 5)].into_iter().map(|(i, s)| ([i; 32], vec![i; 48], s, format!("127.0.0.{i}:1"))).collect();
        let mut state: HashMap<StateKey, StateValue> = genesis_entries(&p, &vals).into_iter().collect();
        fn read(s: &HashMap<StateKey, StateValue>) -> impl FnMut(&StateKey) -> Option<StateValue> + '_ {
            move |k| s.get(k).cloned()
        }
        // Ties by identity: [2] before [3].
        for e in 0..=SET_LAG {
            assert_eq!(epoch_set(e, read(&state)).unwrap().validators.iter().map(|v| v[0]).collect::<Vec<_>>(), vec![2, 3], "epoch {e}");
        }
        assert_eq!(epoch_set(0, read(&state)).unwrap().p2p, vec!["127.0.0.2:1", "127.0.0.3:1"]);
        assert!(epoch_set(SET_LAG + 1, read(&state)).is_none());
        assert!(epoch_writes(3, read(&state)).is_empty(), "not an epoch's end");
        // [3] tombstoned and [4] now above the minimum: the next set is [2], [1].
        let mut v3: Validator = record(&mut read(&state), StakingKey::Validator(&[3; 32])).unwrap();
        v3.tombstoned = true;
        state.insert(StakingKey::Validator(&[3; 32]).state_key(), StateValue::Bytes(cbor(&v3).into()));
        state.insert(stake_key(&[4; 32]), super::super::stake_value(40));
        let w = epoch_writes(8, read(&state));
        state.extend(w);
        assert!(epoch_set(2 + SET_LAG + 1, read(&state)).is_none());
        let set = epoch_set(2 + SET_LAG, read(&state)).unwrap();
        assert_eq!((set.epoch, set.validators.iter().map(|v| v[0]).collect::<Vec<_>>()), (2 + SET_LAG, vec![2, 1]));
    }
}
