//! What a call costs as a transaction on chain, computed the way the runtime does
//! (`spec/state.md`, "Fees"; `aivm_runtime::admission` and `chain_vm`): intrinsic gas on the
//! signed transaction's encoded size, then the code load (a call) or the deploy price, then
//! the VM's gas. The testkit cannot link the runtime (RocksDB), so the transaction's canonical
//! CBOR is mirrored here for its size; the runtime's tests pin this mirror to the real
//! encoding, contract address and intrinsic gas, and a devnet test pins the totals.

use aivm::GasSchedule;
use serde::Serialize;

/// A transaction's gas and fee, split the way the chain charges them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxGas {
    /// Charged on the signed transaction's size before anything runs.
    pub intrinsic: u64,
    /// Loading the contract's code (a call) or compiling and storing it (a deploy).
    pub code: u64,
    /// What the VM metered.
    pub execution: u64,
    /// The receipt's `gas_used`: the sum of the three.
    pub gas_used: u64,
    /// `gas_used · gas_price`.
    pub fee: u128,
}

/// The transaction fields a size depends on.
#[derive(Clone, Copy, Debug)]
pub struct TxFields {
    pub chain_id: u64,
    pub sender: [u8; 32],
    pub nonce: u64,
    pub gas_limit: u64,
    pub gas_price: u64,
}

/// The payloads the testkit sends, named and shaped as `aivm_runtime::Payload`'s variants.
#[derive(Serialize)]
pub enum Payload<'a> {
    Deploy {
        #[serde(with = "serde_bytes")]
        code: &'a [u8],
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
    },
    Call {
        #[serde(with = "serde_bytes")]
        contract: &'a [u8],
        entry: &'a str,
        #[serde(with = "serde_bytes")]
        args: &'a [u8],
        #[serde(skip_serializing_if = "is_zero")]
        value: u128,
    },
}

fn is_zero(v: &u128) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct Transaction<'a> {
    chain_id: u64,
    #[serde(with = "serde_bytes")]
    sender: &'a [u8],
    nonce: u64,
    gas_limit: u64,
    gas_price: u64,
    payload: Payload<'a>,
}

#[derive(Serialize)]
struct SignedTransaction<'a> {
    tx: Transaction<'a>,
    #[serde(with = "serde_bytes")]
    signature: &'a [u8],
}

/// Bytes of the signed transaction's canonical encoding (an ed25519 signature is 64 bytes).
pub fn encoded_size(f: &TxFields, payload: Payload<'_>) -> usize {
    let signed = SignedTransaction {
        tx: Transaction { chain_id: f.chain_id, sender: &f.sender, nonce: f.nonce, gas_limit: f.gas_limit, gas_price: f.gas_price, payload },
        signature: &[0; 64],
    };
    crate::encode(&signed).len()
}

/// Intrinsic gas of a transaction of `size` bytes (no transfer surcharge: calls and deploys).
pub fn intrinsic(schedule: &GasSchedule, size: usize) -> Option<u64> {
    schedule.tx.cost(size as u64)
}

/// A contract's address: BLAKE3 of a domain tag, the deployer and the deployer's nonce.
pub fn contract_address(deployer: &[u8; 32], nonce: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"aivm-contract-v1");
    h.update(deployer);
    h.update(&nonce.to_le_bytes());
    *h.finalize().as_bytes()
}
