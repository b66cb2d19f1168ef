//! Validator staking (`spec/consensus.md`, "Validator lifecycle"): bonding with a consensus key
//! and its proof of possession, unbonding with a delay during which the stake stays
//! slashable, withdrawing, slashing (which also tombstones), and the active set each epoch
//! computes from the stake in the state.
//!
//! - [`state`]: the records under the reserved staking address, and their keys.
//! - [`tx`]: the transactions ([`crate::Payload::Staking`]).
//! - [`exec`]: executing them (through the market's gas-metered [`crate::market::ledger`]).
//! - [`slash`]: the writes that punish proven offences.
//! - [`epoch`]: the active set of the next epoch, written at every epoch's last block.
//! - [`liveness`]: leader slots led and missed per epoch, and jailing for downtime.
//!
//! The validator's identity is its ed25519 key, which is also its account: a staking
//! transaction is signed by that key, so only the validator can bond, unbond or withdraw its
//! stake. What the consensus engine does with the epoch's set (handing it to simplex, and
//! resharing the threshold key among it) is the node's (`spec/consensus.md` says what is
//! built).

pub mod epoch;
pub mod exec;
pub mod liveness;
pub mod slash;
pub mod state;
pub mod tx;

pub use epoch::{active_set, epoch_writes, EpochSet, SET_LAG};
pub use exec::execute;
pub use slash::{after_slash, slash_writes, Offense, SlashError, SLASH_BPS};
pub use state::{
    decode_stake, slashed_key, stake_key, stake_value, staking_address, EngineEpoch, JailParams, Liveness, StakingKey, StakingParams, Validator, POP_DST,
};
pub use tx::StakingTx;
