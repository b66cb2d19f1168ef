//! Per-call gas accounting by opcode.

use serde::Serialize;
use std::collections::BTreeMap;

/// Gas spent on one opcode (host function) in a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpGas {
    pub calls: u64,
    pub gas: u64,
}

/// What the host side charged, by opcode name.
#[derive(Clone, Debug, Default)]
pub struct GasMeter {
    by_op: BTreeMap<&'static str, OpGas>,
    host_total: u64,
}

impl GasMeter {
    pub fn record(&mut self, op: &'static str, gas: u64) {
        let e = self.by_op.entry(op).or_default();
        e.gas = e.gas.saturating_add(gas);
        self.host_total = self.host_total.saturating_add(gas);
    }

    pub fn count_call(&mut self, op: &'static str) {
        self.by_op.entry(op).or_default().calls += 1;
    }

    /// Close the books: everything not charged by a host function was wasm execution.
    pub fn report(&self, limit: u64, used: u64) -> GasReport {
        let mut by_op = self.by_op.clone();
        by_op.insert("wasm", OpGas { calls: 1, gas: used.saturating_sub(self.host_total) });
        GasReport { limit, used, by_op }
    }
}

/// Gas of one call: total and broken down by opcode (`"wasm"` is execution fuel).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GasReport {
    pub limit: u64,
    pub used: u64,
    pub by_op: BTreeMap<&'static str, OpGas>,
}
