//! The AIVM node: what runs a validator. The `aivm` binary (`main.rs`, `cli/`) is its
//! command line.
//!
//! - [`keys`]: a validator's ed25519 identity and BLS12-381 consensus key, on disk.
//! - [`genesis`]: a new network's validators, stakes, balances and contracts; the active set.
//! - [`mempool`]: admission with the executor's rules, capacity and backpressure, fee-priority
//!   proposal.

pub mod genesis;
pub mod hexbytes;
pub mod keys;
pub mod mempool;
