//! The AIVM node: what runs a validator. The `aivm` binary (`main.rs`, `cli/`) is its
//! command line.
//!
//! - [`mempool`]: admission with the executor's rules, capacity and backpressure, fee-priority
//!   proposal.

pub mod mempool;
