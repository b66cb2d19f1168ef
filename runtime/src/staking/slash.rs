//! Punishing proven offences: a validator that signed two conflicting votes in a view loses
//! half of its stake — bonded and still unbonding, since stake stays slashable until it is
//! withdrawn — and is tombstoned: it never enters an active set again and cannot bond again.

use super::state::{decode_stake, slashed_key, stake_key, stake_value, StakingKey, Validator};
use crate::encoding::cbor;
use crate::state::{Address, StateKey, StateValue};
use crate::store::Writes;
use std::collections::BTreeMap;

/// Share of a validator's stake one proven offence removes, in basis points.
pub const SLASH_BPS: u128 = 5_000;

/// A proven offence: the validator signed two conflicting votes in `view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offense {
    pub identity: Address,
    pub view: u64,
}

/// The stake left after one slash (rounding down what is removed: the offender keeps the
/// odd unit).
pub fn after_slash(stake: u128) -> u128 {
    stake - stake / 10_000 * SLASH_BPS - (stake % 10_000) * SLASH_BPS / 10_000
}

/// Why evidence cannot be punished.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlashError {
    #[error("validator {identity} was already slashed for view {view}")]
    AlreadySlashed { identity: String, view: u64 },
    #[error("evidence names no staked validator")]
    NotAValidator,
    #[error("corrupt staking record of {0}")]
    Corrupt(String),
}

/// The writes that punish `offenses` (distinct, not yet punished) given the current state
/// read through `read`. `Err` when an offence was already punished or names no validator.
pub fn slash_writes(offenses: &[Offense], read: impl Fn(&StateKey) -> Option<StateValue>) -> Result<Writes, SlashError> {
    let mut stakes: BTreeMap<Address, (u128, Option<Validator>)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for o in offenses {
        let marker = slashed_key(&o.identity, o.view);
        if read(&marker).is_some() || out.contains_key(&marker) {
            return Err(SlashError::AlreadySlashed { identity: hex::encode(o.identity), view: o.view });
        }
        let (stake, record) = match stakes.remove(&o.identity) {
            Some(s) => s,
            None => {
                let stake = decode_stake(read(&stake_key(&o.identity)).as_ref()).ok_or(SlashError::NotAValidator)?;
                let record = match read(&StakingKey::Validator(&o.identity).state_key()) {
                    Some(StateValue::Bytes(b)) => {
                        Some(ciborium::from_reader::<Validator, _>(&b[..]).map_err(|_| SlashError::Corrupt(hex::encode(o.identity)))?)
                    }
                    _ => None,
                };
                (stake, record)
            }
        };
        let left = after_slash(stake);
        let record = record.map(|mut v| {
            v.unbonding = after_slash(v.unbonding);
            v.tombstoned = true;
            v
        });
        out.insert(stake_key(&o.identity), stake_value(left));
        if let Some(v) = &record {
            out.insert(StakingKey::Validator(&o.identity).state_key(), StateValue::Bytes(cbor(v).into()));
        }
        out.insert(marker, StateValue::Bytes(vec![1].into()));
        stakes.insert(o.identity, (left, record));
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashing_halves_once_per_offence_and_tombstones() {
        assert_eq!(after_slash(1000), 500);
        assert_eq!(after_slash(1001), 501);
        assert_eq!(after_slash(u128::MAX), u128::MAX - u128::MAX / 2);
        let id = [3; 32];
        let record = Validator { consensus_key: vec![1; 48], unbonding: 400, unlock_at: 9, tombstoned: false, jailed_until: 0, p2p: String::new() };
        let state: std::collections::HashMap<StateKey, StateValue> =
            [(stake_key(&id), stake_value(1000)), (StakingKey::Validator(&id).state_key(), StateValue::Bytes(cbor(&record).into()))].into();
        let read = |k: &StateKey| state.get(k).cloned();
        let w = slash_writes(&[Offense { identity: id, view: 9 }, Offense { identity: id, view: 10 }], read).expect("slash");
        let stake = w.iter().find(|(k, _)| *k == stake_key(&id)).map(|(_, v)| decode_stake(Some(v)));
        assert_eq!(stake, Some(Some(250)), "two offences, halved twice");
        let v = w.iter().find(|(k, _)| *k == StakingKey::Validator(&id).state_key()).and_then(|(_, v)| match v {
            StateValue::Bytes(b) => ciborium::from_reader::<Validator, _>(&b[..]).ok(),
            _ => None,
        });
        assert_eq!(v.map(|v| (v.unbonding, v.tombstoned)), Some((100, true)), "unbonding stake is cut too");
        assert!(slash_writes(&[Offense { identity: id, view: 9 }, Offense { identity: id, view: 9 }], read).is_err(), "same offence twice");
        assert!(slash_writes(&[Offense { identity: [4; 32], view: 1 }], read).is_err(), "not a validator");
        let mut after = state.clone();
        after.extend(w);
        assert!(slash_writes(&[Offense { identity: id, view: 9 }], |k| after.get(k).cloned()).is_err(), "already punished");
    }
}
