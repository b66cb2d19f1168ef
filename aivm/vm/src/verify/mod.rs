//! Verification primitives behind the VERIFY opcodes: hashes, KL divergence, Merkle proofs,
//! signatures. Pure functions, so the node and the verifier can call them directly too. Only
//! the signatures are the VM's own; the rest live on the floors below and are re-exported.

pub use aivm_backend::tensor::kl;
pub use aivm_model::{hash, merkle};
pub mod signature;
