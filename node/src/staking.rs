//! Validator stakes and slashing live in the runtime (`aivm_runtime::staking`,
//! `spec/consensus.md`): the node re-exports what its evidence handling and RPC use.

pub use aivm_runtime::staking::{
    after_slash, decode_stake, slash_writes, slashed_key, stake_key, stake_value, staking_address, Offense, SlashError, SLASH_BPS,
};
