//! # aivm-runtime
//!
//! The chain's state machine: transactions, their execution with Block-STM, and the
//! persistent state with its Merkle root.
//!
//! - [`blockstm`]: optimistic parallel execution, generic over the transaction VM.
//! - [`tx`]: signed transactions and their canonical encoding.
//! - [`sig`]: the transaction signature rule (ZIP-215 ed25519, batch-verified).
//! - [`admission`]: intrinsic gas and the most a transaction can cost (executor and mempool).
//! - [`state`]: keys, accounts and values, and their canonical bytes.
//! - [`chain_vm`]: one transaction's execution (nonce, fees, transfer, deploy, call).
//! - [`overlay`]: committed state plus pending writes (queries, development tools).
//! - [`encoding`]: CBOR, the wire and storage encoding.
//! - [`receipt`]: what a transaction produced.
//! - [`store`]: RocksDB column families, atomic block commits, the Jellyfish Merkle root.
//! - [`cpu`]: thread CPU time per part of the transaction path (the devnet's breakdown).
//! - [`chain`]: the [`Chain`]: a block's execution, fee settlement and commit.
//! - [`workload`]: the paper's peer-to-peer transfer workload (benchmark and tests).
//!
//! `spec/state.md` is the normative description.

pub mod admission;
pub mod blockstm;
pub mod chain;
pub mod chain_vm;
pub mod cpu;
pub mod encoding;
pub mod market;
pub mod overlay;
pub mod receipt;
pub mod sig;
pub mod staking;
pub mod state;
pub mod store;
pub mod tx;
pub mod workload;

pub use admission::{Admission, BlockLimits, LimitError};
pub use chain::{BlockHeader, BlockRecord, Chain, ChainConfig, ChainError, ExecConfig, ExecutedBlock, Genesis, Parent, SpeculativeBlock};
pub use chain_vm::{contract_address, contract_entries, storage_entries, BlockEnv, ChainVm};
pub use receipt::{Receipt, TxStatus};
pub use state::{Account, Address, StateKey, StateValue};
pub use store::{Head, Store, StoreError, Writes};
pub use tx::{Payload, SignedTransaction, Transaction, TxError, VerifiedTx};
