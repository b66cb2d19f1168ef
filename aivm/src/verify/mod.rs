//! Verification primitives behind the VERIFY opcodes: hashes, KL divergence, Merkle proofs,
//! signatures. Pure functions, so the node and the verifier can call them directly too.

pub mod hash;
pub mod kl;
pub mod merkle;
pub mod signature;
