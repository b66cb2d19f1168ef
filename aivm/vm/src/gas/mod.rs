//! Gas: the price list ([`GasSchedule`]) and the per-call meter ([`GasMeter`]).
//!
//! One gas is 0.1 ns of the reference machine's time (`spec/gas.md`). Wasm execution is
//! metered by wasmtime fuel (1 fuel = 1 gas); host calls take gas from the same fuel tank
//! before they do any work.

mod meter;
mod schedule;

pub use meter::{GasMeter, GasReport, OpGas};
pub use schedule::{GasSchedule, LinearGasCost};
