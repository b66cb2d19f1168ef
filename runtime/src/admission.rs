//! The stateless part of a transaction's admission: intrinsic gas and the most it can cost its
//! sender. The executor (`chain_vm`) and the mempool apply the same rules; only what they
//! compare against differs (the account as the block sees it, or as the pool expects it).

use crate::tx::{Payload, VerifiedTx};
use aivm::GasSchedule;

/// What a transaction needs before it may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Gas charged before the payload runs (size-priced, plus the transfer price).
    pub intrinsic: u64,
    /// `gas_limit · gas_price`, reserved up front.
    pub max_fee: u128,
    /// Native value the payload moves (a transfer's amount, a call's value; a market operation:
    /// the most it may take).
    pub value: u128,
}

/// Why a transaction cannot pay its own way. The texts are receipt text (`spec/state.md`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("intrinsic gas overflows")]
    IntrinsicOverflow,
    #[error("gas limit {gas_limit} is below the intrinsic gas {intrinsic}")]
    BelowIntrinsic { gas_limit: u64, intrinsic: u64 },
}

impl Admission {
    /// Intrinsic gas and the reserved fee; refuses a gas limit below the intrinsic gas. The
    /// messages are receipt text (`spec/state.md`), so they do not change lightly.
    pub fn of(vtx: &VerifiedTx, schedule: &GasSchedule) -> Result<Self, AdmissionError> {
        let tx = vtx.tx();
        let extra = match tx.payload {
            Payload::Transfer { .. } => schedule.transfer,
            _ => 0,
        };
        let Some(intrinsic) = schedule.tx.cost(vtx.size as u64).and_then(|g| g.checked_add(extra)) else {
            return Err(AdmissionError::IntrinsicOverflow);
        };
        if tx.gas_limit < intrinsic {
            return Err(AdmissionError::BelowIntrinsic { gas_limit: tx.gas_limit, intrinsic });
        }
        let value = match &tx.payload {
            Payload::Transfer { amount, .. } => *amount,
            Payload::Call { value, .. } => *value,
            Payload::Market(m) => m.value(),
            Payload::Staking(s) => s.value(),
            _ => 0,
        };
        Ok(Self { intrinsic, max_fee: tx.gas_limit as u128 * tx.gas_price as u128, value })
    }

    /// `max_fee + value`, the balance the sender must hold (`None` on overflow: never affordable).
    pub fn max_cost(&self) -> Option<u128> {
        self.max_fee.checked_add(self.value)
    }
}

/// Consensus limits on what a block may hold (genesis parameters, `spec/consensus.md`). They
/// are checked on the transactions alone, before anything executes: by the mempool when a
/// transaction arrives (one that could never fit a block is refused, not kept forever) and by
/// every validator on a proposal (a block over them is invalid, however cheap it would run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most gas the transactions of one block may reserve: Σ gas_limit, not gas used, because
    /// the bound must hold before execution.
    pub max_block_gas: u64,
    /// Most gas one transaction may reserve.
    pub max_tx_gas: u64,
    /// Least gas price: computation and state growth are never free.
    pub min_gas_price: u64,
}

/// Why a transaction or block breaks [`BlockLimits`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("gas price {price} is below the chain's minimum {min}")]
    PriceTooLow { price: u64, min: u64 },
    #[error("gas limit {limit} is above the per-transaction limit {max}")]
    TxGasTooHigh { limit: u64, max: u64 },
    #[error("transactions reserve more than the block gas limit {max}")]
    BlockGasTooHigh { max: u64 },
    #[error("transaction {0} appears twice")]
    Duplicate(String),
}

impl BlockLimits {
    /// One transaction's admission under the limits.
    pub fn check_tx(&self, tx: &crate::tx::Transaction) -> Result<(), LimitError> {
        if tx.gas_price < self.min_gas_price {
            return Err(LimitError::PriceTooLow { price: tx.gas_price, min: self.min_gas_price });
        }
        if tx.gas_limit > self.max_tx_gas {
            return Err(LimitError::TxGasTooHigh { limit: tx.gas_limit, max: self.max_tx_gas });
        }
        Ok(())
    }

    /// A block's transactions under the limits: each admissible, no hash twice, Σ gas_limit
    /// within the block limit (checked arithmetic). Returns Σ gas_limit.
    pub fn check_block(&self, txs: &[VerifiedTx]) -> Result<u64, LimitError> {
        let mut seen = std::collections::HashSet::with_capacity(txs.len());
        let mut total: u64 = 0;
        for v in txs {
            self.check_tx(v.tx())?;
            if !seen.insert(v.hash) {
                return Err(LimitError::Duplicate(hex::encode(v.hash)));
            }
            total = total.checked_add(v.tx().gas_limit).filter(|t| *t <= self.max_block_gas).ok_or(LimitError::BlockGasTooHigh { max: self.max_block_gas })?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Payload, Transaction};
    use ed25519_dalek::SigningKey;

    fn vtx(nonce: u64, gas_limit: u64, gas_price: u64) -> VerifiedTx {
        let key = SigningKey::from_bytes(&[3; 32]);
        let tx = Transaction {
            chain_id: 1,
            sender: key.verifying_key().to_bytes(),
            nonce,
            gas_limit,
            gas_price,
            payload: Payload::Transfer { to: [1; 32], amount: 1 },
        };
        tx.sign(&key).verify(1).expect("valid")
    }

    #[test]
    fn limits_are_checked_before_execution() {
        let l = BlockLimits { max_block_gas: 100, max_tx_gas: 60, min_gas_price: 2 };
        assert_eq!(l.check_tx(vtx(0, 10, 1).tx()), Err(LimitError::PriceTooLow { price: 1, min: 2 }));
        assert_eq!(l.check_tx(vtx(0, 61, 2).tx()), Err(LimitError::TxGasTooHigh { limit: 61, max: 60 }));
        assert_eq!(l.check_block(&[vtx(0, 60, 2), vtx(1, 40, 2)]), Ok(100));
        assert_eq!(l.check_block(&[vtx(0, 60, 2), vtx(1, 41, 2)]), Err(LimitError::BlockGasTooHigh { max: 100 }));
        assert!(matches!(l.check_block(&[vtx(0, 10, 2), vtx(0, 10, 2)]), Err(LimitError::Duplicate(_))));
        let huge = BlockLimits { max_block_gas: u64::MAX, max_tx_gas: u64::MAX, min_gas_price: 0 };
        assert_eq!(huge.check_block(&[vtx(0, u64::MAX, 0), vtx(1, 1, 0)]), Err(LimitError::BlockGasTooHigh { max: u64::MAX }), "no overflow");
    }

    /// The testkit mirrors the transaction encoding, the contract address and intrinsic gas
    /// (it cannot link this crate); this pins the mirror to the real thing for calls and
    /// deploys across the integer sizes CBOR encodes differently.
    #[test]
    fn testkit_mirror_matches_the_chain() {
        use aivm_testkit::tx as mirror;
        let key = SigningKey::from_bytes(&[9; 32]);
        let sender = key.verifying_key().to_bytes();
        let schedule = GasSchedule::default();
        for (chain_id, nonce, gas_limit, gas_price) in
            [(1, 0, 100_000_000, 1), (7, 24, 2_000_000_000, 1), (u64::MAX, 65_536, 10_000_000_000, 300), (0, u64::MAX, u64::MAX, 0)]
        {
            let calls = [("transfer", vec![0xa2u8; 40]), ("x", Vec::new()), ("a_longer_entry_name", vec![7; 300])];
            for ((entry, args), value) in calls.into_iter().flat_map(|c| [0, 23, 1 << 64, u128::MAX].map(|v| (c.clone(), v))) {
                let tx = Transaction {
                    chain_id,
                    sender,
                    nonce,
                    gas_limit,
                    gas_price,
                    payload: Payload::Call { contract: [5; 32], entry: entry.into(), args: args.clone(), value },
                };
                let v = tx.sign(&key).verify(chain_id).expect("valid");
                let fields = mirror::TxFields { chain_id, sender, nonce, gas_limit, gas_price };
                let size = mirror::encoded_size(&fields, mirror::Payload::Call { contract: &[5; 32], entry, args: &args, value });
                assert_eq!(size, v.size, "call {entry} nonce {nonce} value {value}");
                if let Ok(adm) = Admission::of(&v, &schedule) {
                    assert_eq!(mirror::intrinsic(&schedule, size), Some(adm.intrinsic));
                }
            }
            let code = vec![0u8; 70_000];
            let tx = Transaction { chain_id, sender, nonce, gas_limit, gas_price, payload: Payload::Deploy { code: code.clone(), args: vec![1, 2, 3] } };
            let v = tx.sign(&key).verify(chain_id).expect("valid");
            let fields = mirror::TxFields { chain_id, sender, nonce, gas_limit, gas_price };
            assert_eq!(mirror::encoded_size(&fields, mirror::Payload::Deploy { code: &code, args: &[1, 2, 3] }), v.size);
            assert_eq!(mirror::contract_address(&sender, nonce), crate::chain_vm::contract_address(&sender, nonce));
        }
    }
}
