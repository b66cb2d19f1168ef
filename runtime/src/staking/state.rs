//! The staking records. Everything lives in the storage of a reserved address that has no
//! code, so no contract or transaction can write it except through the rules in this module.

use crate::state::{Address, StateKey, StateValue};
use serde::{Deserialize, Serialize};

/// The reserved address holding stakes: BLAKE3 of `aivm/staking`.
pub fn staking_address() -> Address {
    *blake3::hash(b"aivm/staking").as_bytes()
}

/// Domain of a consensus key's proof of possession: the BLS signature (min-pk, G2) of the
/// key over its own compressed bytes, which rules out rogue-key attacks on aggregates.
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// A validator's bonded stake: 16 bytes, u128 little-endian (read by the treasury payout and
/// slashing as it was before staking transactions existed).
pub fn stake_key(identity: &Address) -> StateKey {
    StakingKey::Stake(identity).state_key()
}

/// Present once a validator has been slashed for the offence in `view` (each offence is
/// punished once, however many times its evidence is submitted).
pub fn slashed_key(identity: &Address, view: u64) -> StateKey {
    StakingKey::Slashed(identity, view).state_key()
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

/// Where each staking record lives.
#[derive(Clone, Copy, Debug)]
pub enum StakingKey<'a> {
    /// [`StakingParams`], written at genesis; a chain without it has no staking transactions.
    Params,
    /// Bonded stake (raw u128, see [`stake_key`]).
    Stake(&'a Address),
    /// Marker of a punished offence.
    Slashed(&'a Address, u64),
    /// [`Validator`].
    Validator(&'a Address),
    /// The identity that registered a consensus key (BLAKE3 of the key), so no two validators
    /// share one.
    ConsensusKey(&'a [u8; 32]),
    /// [`Registry`]: every validator ever bonded and not removed.
    Registry,
    /// [`EpochSet`] of an epoch.
    Epoch(u64),
    /// The consensus round of the last block: engine epoch and view (two u64 LE).
    LastView,
    /// [`EngineEpoch`]: who signs in an engine epoch, as the consensus layer recorded it.
    Engine(u64),
    /// [`Liveness`] of a validator in an epoch.
    Liveness(u64, &'a Address),
}

impl StakingKey<'_> {
    pub fn state_key(&self) -> StateKey {
        let k: Vec<u8> = match self {
            StakingKey::Params => b"params".to_vec(),
            StakingKey::Stake(id) => [&b"stake/"[..], &id[..]].concat(),
            StakingKey::Slashed(id, view) => [&b"slashed/"[..], &id[..], &view.to_be_bytes()].concat(),
            StakingKey::Validator(id) => [&b"validator/"[..], &id[..]].concat(),
            StakingKey::ConsensusKey(h) => [&b"consensus-key/"[..], &h[..]].concat(),
            StakingKey::Registry => b"registry".to_vec(),
            StakingKey::Epoch(e) => [&b"epoch/"[..], &e.to_be_bytes()[..]].concat(),
            StakingKey::LastView => b"last-round".to_vec(),
            StakingKey::Engine(e) => [&b"engine/"[..], &e.to_be_bytes()[..]].concat(),
            StakingKey::Liveness(e, id) => [&b"liveness/"[..], &e.to_be_bytes()[..], &id[..]].concat(),
        };
        StateKey::Storage(staking_address(), k.into())
    }
}

/// Genesis parameters of validator staking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakingParams {
    /// Least stake a validator may hold bonded (unbonding all of it is allowed).
    pub min_stake: u128,
    /// Blocks between an unbond and the withdrawal of its stake; slashable until withdrawn.
    pub unbonding_blocks: u64,
    /// Most validators the registry holds (bounds the work of computing an epoch's set).
    pub max_validators: u32,
    /// Validators in each epoch's active set.
    pub active_set_size: u32,
    /// Blocks per epoch: the next set is computed at every height that is a multiple of it.
    pub epoch_length: u64,
    /// Downtime (`super::liveness`): a validator that led at least `downtime_min_slots`
    /// views of an epoch and missed more than `downtime_max_missed_bps` of them is jailed for
    /// `jail_epochs` epochs.
    #[serde(default = "default_jail")]
    pub jail: JailParams,
}

/// When missed leader slots jail a validator, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailParams {
    pub downtime_min_slots: u64,
    pub downtime_max_missed_bps: u64,
    pub jail_epochs: u64,
}

impl Default for JailParams {
    /// Two slots at least, more than half of them missed, out for the next epoch.
    fn default() -> Self {
        JailParams { downtime_min_slots: 2, downtime_max_missed_bps: 5_000, jail_epochs: 1 }
    }
}

fn default_jail() -> JailParams {
    JailParams::default()
}

/// A validator's leader slots in one epoch: views it led to a block, views it missed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    pub led: u64,
    pub missed: u64,
}

/// One validator's record besides its bonded stake.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// BLS12-381 public key (48 bytes, G1 compressed), proven possessed when bonded.
    #[serde(with = "serde_bytes")]
    pub consensus_key: Vec<u8>,
    /// Stake unbonded and not yet withdrawn: still slashable.
    pub unbonding: u128,
    /// Height from which `unbonding` may be withdrawn (one delay: a new unbond restarts it).
    pub unlock_at: u64,
    /// Slashed for double signing: never in an active set again, cannot bond again.
    pub tombstoned: bool,
    /// Jailed for downtime: in no epoch's set before this epoch (`super::liveness`).
    #[serde(default)]
    pub jailed_until: u64,
    /// Where its p2p endpoint listens (`ip:port`), from genesis or its bond: recorded with
    /// each epoch's set, so the engine can reach the validators of future epochs.
    #[serde(default)]
    pub p2p: String,
}

/// The validators that sign in one engine epoch (the players of its threshold output, in the
/// engine's participant order) and the output's public polynomial, encoded. Written by the
/// node from the epoch info the previous epoch's final block carries (genesis for epoch 0):
/// liveness charges this epoch's leader slots by it, and evidence of an offence in it is
/// checked against it. It differs from the recorded [`super::EpochSet`] when a reshare failed
/// (the previous output carries forward).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineEpoch {
    pub signers: Vec<serde_bytes::ByteArray<32>>,
    #[serde(with = "serde_bytes")]
    pub sharing: Vec<u8>,
    /// BLAKE3 of the whole epoch info (the payload's encoding): what a state-synced node
    /// checks the info a peer served it against.
    #[serde(default, with = "serde_bytes")]
    pub info_hash: Vec<u8>,
}

/// Every registered validator's identity, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub validators: Vec<serde_bytes::ByteArray<32>>,
}
