//! What executing one transaction produced.

use crate::state::Address;
use serde::{Deserialize, Serialize};

/// How a transaction ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// Executed; its writes are applied.
    Success,
    /// Executed and failed (revert, trap, out of gas, failed transfer): the fee is kept and
    /// the nonce advances, every other write is discarded.
    Failed { kind: String, message: String },
    /// Refused before execution (wrong nonce, unaffordable gas, unknown sender): no fee, no
    /// nonce change, no trace in state.
    Rejected { reason: String },
}

/// An event a contract emitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    #[serde(with = "serde_bytes")]
    pub contract: Address,
    #[serde(with = "serde_bytes")]
    pub topic: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// One transaction's result, as stored with its block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(with = "serde_bytes")]
    pub tx_hash: [u8; 32],
    pub status: TxStatus,
    /// Intrinsic gas plus execution gas; 0 for a rejected transaction.
    pub gas_used: u64,
    /// `gas_used · gas_price`, credited to the fee collector at the end of the block.
    pub fee: u128,
    /// The contract call's return bytes.
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    pub events: Vec<LogEvent>,
    /// The new contract's address, for a successful deploy.
    pub contract_address: Option<serde_bytes::ByteArray<32>>,
}

impl Receipt {
    pub fn rejected(tx_hash: [u8; 32], reason: impl Into<String>) -> Self {
        Receipt {
            tx_hash,
            status: TxStatus::Rejected { reason: reason.into() },
            gas_used: 0,
            fee: 0,
            output: Vec::new(),
            events: Vec::new(),
            contract_address: None,
        }
    }

    pub fn is_success(&self) -> bool {
        self.status == TxStatus::Success
    }
}
