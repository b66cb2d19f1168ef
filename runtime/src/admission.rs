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
    /// Native value the payload moves.
    pub value: u128,
}

impl Admission {
    /// Intrinsic gas and the reserved fee; refuses a gas limit below the intrinsic gas. The
    /// messages are receipt text (`spec/state.md`), so they do not change lightly.
    pub fn of(vtx: &VerifiedTx, schedule: &GasSchedule) -> Result<Self, String> {
        let tx = vtx.tx();
        let extra = match tx.payload {
            Payload::Transfer { .. } => schedule.transfer,
            _ => 0,
        };
        let Some(intrinsic) = schedule.tx.cost(vtx.size as u64).and_then(|g| g.checked_add(extra)) else {
            return Err("intrinsic gas overflows".into());
        };
        if tx.gas_limit < intrinsic {
            return Err(format!("gas limit {} is below the intrinsic gas {intrinsic}", tx.gas_limit));
        }
        let value = match tx.payload {
            Payload::Transfer { amount, .. } => amount,
            _ => 0,
        };
        Ok(Self { intrinsic, max_fee: tx.gas_limit as u128 * tx.gas_price as u128, value })
    }

    /// `max_fee + value`, the balance the sender must hold (`None` on overflow: never affordable).
    pub fn max_cost(&self) -> Option<u128> {
        self.max_fee.checked_add(self.value)
    }
}
