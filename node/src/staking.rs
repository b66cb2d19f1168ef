//! Validator stakes in the state, and slashing (`spec/consensus.md`). Stakes live in the
//! storage of a reserved address that has no code, so no contract or transaction can write
//! them: only genesis and the chain's own rules do.

use aivm_runtime::{StateKey, StateValue, Writes};

/// The reserved address holding stakes: BLAKE3 of `aivm/staking`.
pub fn staking_address() -> [u8; 32] {
    *blake3::hash(b"aivm/staking").as_bytes()
}

/// Share of a validator's stake one proven equivocation removes, in basis points.
pub const SLASH_BPS: u128 = 5_000;

/// A validator's stake: 16 bytes, little-endian.
pub fn stake_key(identity: &[u8; 32]) -> StateKey {
    StateKey::Storage(staking_address(), [&b"stake/"[..], identity].concat().into())
}

/// Present once a validator has been slashed for the offence in `view` (each offence is
/// punished once, however many times its evidence is submitted).
pub fn slashed_key(identity: &[u8; 32], view: u64) -> StateKey {
    StateKey::Storage(staking_address(), [&b"slashed/"[..], identity, &view.to_be_bytes()].concat().into())
}

pub fn stake_value(stake: u128) -> StateValue {
    StateValue::Bytes(stake.to_le_bytes().to_vec().into())
}

pub fn decode_stake(v: Option<&StateValue>) -> Option<u128> {
    match v {
        Some(StateValue::Bytes(b)) => b.as_ref().try_into().ok().map(u128::from_le_bytes),
        _ => None,
    }
}

/// A proven offence: the validator signed two conflicting votes in `view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offense {
    pub identity: [u8; 32],
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
}

/// The writes that punish `offenses` (distinct, not yet punished) given the current state
/// read through `read`. `Err` when an offence was already punished or names no validator.
pub fn slash_writes(offenses: &[Offense], read: impl Fn(&StateKey) -> Option<StateValue>) -> Result<Writes, SlashError> {
    let mut stakes: std::collections::BTreeMap<[u8; 32], u128> = Default::default();
    let mut out = std::collections::BTreeMap::new();
    for o in offenses {
        let marker = slashed_key(&o.identity, o.view);
        if read(&marker).is_some() || out.contains_key(&marker) {
            return Err(SlashError::AlreadySlashed { identity: crate::hexbytes::to_hex(&o.identity), view: o.view });
        }
        let stake = match stakes.get(&o.identity) {
            Some(s) => *s,
            None => decode_stake(read(&stake_key(&o.identity)).as_ref()).ok_or(SlashError::NotAValidator)?,
        };
        let left = after_slash(stake);
        stakes.insert(o.identity, left);
        out.insert(stake_key(&o.identity), stake_value(left));
        out.insert(marker, StateValue::Bytes(vec![1].into()));
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashing_halves_once_per_offence() {
        assert_eq!(after_slash(1000), 500);
        assert_eq!(after_slash(1001), 501);
        assert_eq!(after_slash(u128::MAX), u128::MAX - u128::MAX / 2);
        let id = [3; 32];
        let state: std::collections::HashMap<StateKey, StateValue> = [(stake_key(&id), stake_value(1000))].into();
        let read = |k: &StateKey| state.get(k).cloned();
        let w = slash_writes(&[Offense { identity: id, view: 9 }, Offense { identity: id, view: 10 }], read).expect("slash");
        let stake = w.iter().find(|(k, _)| *k == stake_key(&id)).map(|(_, v)| decode_stake(Some(v)));
        assert_eq!(stake, Some(Some(250)), "two offences, halved twice");
        assert!(slash_writes(&[Offense { identity: id, view: 9 }, Offense { identity: id, view: 9 }], read).is_err(), "same offence twice");
        assert!(slash_writes(&[Offense { identity: [4; 32], view: 1 }], read).is_err(), "not a validator");
        let mut after = state.clone();
        after.extend(w);
        assert!(slash_writes(&[Offense { identity: id, view: 9 }], |k| after.get(k).cloned()).is_err(), "already punished");
    }
}
