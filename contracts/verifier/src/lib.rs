//! Exercises the VERIFY opcodes and the signature and hash host functions.
#![no_std]

use aivm_sdk::prelude::*;

#[derive(Serialize, Deserialize, Schema)]
pub struct HashCheck {
    pub data: Vec<u8>,
    pub hash: Bytes32,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct MerkleCheck {
    pub root: Bytes32,
    pub leaf: Vec<u8>,
    pub index: u64,
    pub size: u64,
    pub proof: Vec<Bytes32>,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Ed25519Check {
    pub public_key: Bytes32,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct BlsCheck {
    pub public_key: Vec<u8>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct KlCheck {
    /// Q16 distributions of equal length.
    pub p: Vec<i32>,
    pub q: Vec<i32>,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Digests {
    pub sha256: Bytes32,
    pub blake3: Bytes32,
    pub model_hash: Bytes32,
}

/// Record a verification outcome so it is visible in state and events.
fn record(what: &str, ok: bool) -> bool {
    storage::set(what.as_bytes(), &ok);
    events::emit(what, &ok);
    ok
}

#[entry_point]
pub fn hash_compare(c: HashCheck) -> Result<bool, ContractError> {
    Ok(record("hash_compare", verify::hash_compare(&c.data, &c.hash.0)))
}

#[entry_point]
pub fn digests(data: Vec<u8>) -> Result<Digests, ContractError> {
    Ok(Digests { sha256: Bytes32(crypto::sha256(&data)), blake3: Bytes32(crypto::blake3(&data)), model_hash: Bytes32(verify::model_hash(&data)) })
}

#[entry_point]
pub fn merkle(c: MerkleCheck) -> Result<bool, ContractError> {
    let proof: Vec<[u8; 32]> = c.proof.iter().map(|p| p.0).collect();
    Ok(record("merkle", verify::merkle_verify(&c.root.0, &c.leaf, c.index, c.size, &proof)))
}

#[entry_point]
pub fn ed25519(c: Ed25519Check) -> Result<bool, ContractError> {
    let sig: [u8; 64] = c.signature.as_slice().try_into().map_err(|_| ContractError::from("signature must be 64 bytes"))?;
    Ok(record("ed25519", crypto::ed25519_verify(&c.public_key.0, &c.message, &sig)))
}

#[entry_point]
pub fn bls(c: BlsCheck) -> Result<bool, ContractError> {
    let pk: [u8; 48] = c.public_key.as_slice().try_into().map_err(|_| ContractError::from("public key must be 48 bytes"))?;
    let sig: [u8; 96] = c.signature.as_slice().try_into().map_err(|_| ContractError::from("signature must be 96 bytes"))?;
    Ok(record("bls", crypto::bls_verify(&pk, &c.message, &sig)))
}

#[entry_point]
pub fn kl(c: KlCheck) -> Result<i64, ContractError> {
    if c.p.len() != c.q.len() || c.p.is_empty() {
        return Err("p and q must be non-empty and of equal length".into());
    }
    let shape = [c.p.len() as u32];
    Ok(verify::kl_divergence(&Tensor::from_q16(&shape, &c.p), &Tensor::from_q16(&shape, &c.q)))
}
