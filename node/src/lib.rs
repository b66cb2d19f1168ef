//! The AIVM node: what runs a validator. The `aivm` binary (`main.rs`, `cli/`) is its
//! command line.
//!
//! - [`config`], the node configuration file (`config.json` in its home).
//! - [`keys`]: a validator's ed25519 identity and BLS12-381 consensus key, on disk.
//! - [`genesis`]: a new network's validators, stakes, balances and contracts; the active set.
//! - [`mempool`]: admission with the executor's rules, capacity and backpressure, fee-priority
//!   proposal.
//! - [`evidence`]: verified equivocation evidence by offence, for proposals.
//! - [`block`], [`execution`]: the consensus block; proposing, verifying and committing it.
//! - [`market`]: the models a market chain serves, checked before a validator starts.
//! - [`consensus`]: every use of commonware (simplex, marshal, p2p). [`rpc`]: JSON-RPC.
//! - [`snapshots`]: state snapshots kept and served for state sync; `aivm node sync` restores one.

pub mod abi;
pub mod block;
pub mod config;
pub mod consensus;
pub mod evidence;
pub mod execution;
pub mod exit;
pub mod fuzzing;
pub mod genesis;
pub mod hexbytes;
pub mod keys;
pub mod market;
pub mod mempool;
pub mod rpc;
pub mod rpc_client;
pub mod snapshots;
pub mod staking;
pub mod tee;
pub mod testnet;
