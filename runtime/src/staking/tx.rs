//! Validator staking transactions: what a [`crate::Payload::Staking`] carries. The sender is
//! the validator: its identity key signs the transaction and its account pays and is paid.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StakingTx {
    /// Create the sender's validator with its consensus key (BLS12-381 G1, 48 bytes) and the
    /// key's proof of possession (G2, 96 bytes, under [`super::POP_DST`]), bonding `amount`;
    /// or add `amount` to an existing one (the same key and proof again).
    ///
    /// `p2p`: where the validator's p2p endpoint listens (`ip:port`); required of a new
    /// validator, and when given again it replaces the recorded one (for sets recorded later).
    Bond {
        #[serde(with = "serde_bytes")]
        consensus_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        pop: Vec<u8>,
        amount: u128,
        #[serde(default)]
        p2p: String,
    },
    /// Start unbonding `amount`: it leaves the bonded stake at once (the next epoch's set is
    /// computed without it) and can be withdrawn after the unbonding delay, slashable until
    /// then. What stays bonded must be zero or at least the minimum.
    Unbond { amount: u128 },
    /// Move unbonded stake whose delay has passed back to the balance.
    Withdraw,
}

impl StakingTx {
    /// Native value the transaction may take from the sender's balance.
    pub fn value(&self) -> u128 {
        match self {
            StakingTx::Bond { amount, .. } => *amount,
            _ => 0,
        }
    }
}
