//! Transactions: what users sign and submit. CBOR through serde, ed25519-signed, with a
//! canonical encoding so one transaction has exactly one hash (`spec/state.md`).

use crate::encoding::cbor;
use crate::state::Address;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// The largest encoded transaction accepted (a deploy carries a whole module).
pub const MAX_TX_BYTES: usize = 2 << 20;
/// Signatures cover this prefix, then the canonical CBOR of the [`Transaction`].
pub const SIGNING_DOMAIN: &[u8] = b"aivm-tx-v1";

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Move native balance.
    Transfer {
        #[serde(with = "serde_bytes")]
        to: Address,
        amount: u128,
    },
    /// Create a contract from wasm; its address is derived from the sender and nonce.
    Deploy {
        #[serde(with = "serde_bytes")]
        code: Vec<u8>,
        /// Arguments of the contract's `instantiate` entry, run in the same transaction (empty
        /// when it has none).
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// Call a contract's entry point with CBOR arguments.
    Call {
        #[serde(with = "serde_bytes")]
        contract: Address,
        entry: String,
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// A compute-market operation (`spec/market.md`).
    Market(crate::market::MarketTx),
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Which network; a transaction signed for one chain is invalid on another.
    pub chain_id: u64,
    /// The sender's ed25519 public key, which is also its address.
    #[serde(with = "serde_bytes")]
    pub sender: Address,
    /// Must equal the sender account's nonce; it then increases by one.
    pub nonce: u64,
    /// Most gas the transaction may use; `gas_limit · gas_price` is reserved up front.
    pub gas_limit: u64,
    /// Native units paid per gas used.
    pub gas_price: u64,
    pub payload: Payload,
}

/// A transaction with its signature, as submitted and as stored in blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a transaction was refused before execution. None of these leave a trace in state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction is {0} bytes; the limit is {MAX_TX_BYTES}")]
    TooLarge(usize),
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("transaction encoding is not canonical")]
    NotCanonical,
    #[error("bad signature")]
    BadSignature,
    #[error("wrong chain id {got}, expected {expected}")]
    WrongChain { expected: u64, got: u64 },
}

impl Transaction {
    pub fn signing_bytes(&self) -> Vec<u8> {
        [SIGNING_DOMAIN, &cbor(self)].concat()
    }

    /// Sign with `key`, whose public key must be `self.sender`.
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let signature = key.sign(&self.signing_bytes()).to_bytes().to_vec();
        SignedTransaction { tx: self, signature }
    }
}

impl SignedTransaction {
    pub fn encode(&self) -> Vec<u8> {
        cbor(self)
    }

    /// Decode submitted bytes. Anything but the one canonical encoding is refused, so the
    /// hash of the bytes identifies the transaction.
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge(bytes.len()));
        }
        let tx: SignedTransaction = ciborium::from_reader(bytes).map_err(|e| TxError::Malformed(e.to_string()))?;
        if tx.encode() != bytes {
            return Err(TxError::NotCanonical);
        }
        Ok(tx)
    }

    /// Check the signature (strict ed25519) and the chain, and fix the hash and size.
    pub fn verify(self, chain_id: u64) -> Result<VerifiedTx, TxError> {
        if self.tx.chain_id != chain_id {
            return Err(TxError::WrongChain { expected: chain_id, got: self.tx.chain_id });
        }
        let sig: &[u8; 64] = self.signature.as_slice().try_into().map_err(|_| TxError::BadSignature)?;
        if !aivm::verify::signature::ed25519_verify(&self.tx.sender, &self.tx.signing_bytes(), sig) {
            return Err(TxError::BadSignature);
        }
        let bytes = self.encode();
        Ok(VerifiedTx { hash: *blake3::hash(&bytes).as_bytes(), size: bytes.len(), signed: self })
    }
}

/// A transaction whose signature has been checked: what the executor runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    pub signed: SignedTransaction,
    /// BLAKE3 of the canonical encoding.
    pub hash: [u8; 32],
    /// Length of the canonical encoding, which intrinsic gas is charged on.
    pub size: usize,
}

impl VerifiedTx {
    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }
}

/// Verify a batch of transactions on `threads` threads; results in input order.
pub fn verify_batch(txs: Vec<SignedTransaction>, chain_id: u64, threads: usize) -> Vec<Result<VerifiedTx, TxError>> {
    let chunk = txs.len().div_ceil(threads.max(1)).max(1);
    let mut slots: Vec<Option<SignedTransaction>> = txs.into_iter().map(Some).collect();
    let mut out: Vec<Option<Result<VerifiedTx, TxError>>> = (0..slots.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        for (ins, outs) in slots.chunks_mut(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (i, o) in ins.iter_mut().zip(outs) {
                    *o = i.take().map(|t| t.verify(chain_id));
                }
            });
        }
    });
    out.into_iter().map(|r| r.unwrap_or(Err(TxError::Malformed("not verified".into())))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn transfer(k: &SigningKey) -> Transaction {
        Transaction {
            chain_id: 7,
            sender: k.verifying_key().to_bytes(),
            nonce: 0,
            gas_limit: 1_000_000,
            gas_price: 1,
            payload: Payload::Transfer { to: [2; 32], amount: 5 },
        }
    }

    #[test]
    fn round_trip_and_verify() {
        let k = key(1);
        let signed = transfer(&k).sign(&k);
        let bytes = signed.encode();
        let back = SignedTransaction::decode(&bytes).expect("decodes");
        assert_eq!(back, signed);
        let v = back.verify(7).expect("valid");
        assert_eq!(v.hash, *blake3::hash(&bytes).as_bytes());
    }

    #[test]
    fn tampering_is_caught() {
        let k = key(1);
        let mut signed = transfer(&k).sign(&k);
        assert_eq!(signed.clone().verify(8).unwrap_err(), TxError::WrongChain { expected: 8, got: 7 });
        signed.tx.nonce = 1;
        assert_eq!(signed.clone().verify(7).unwrap_err(), TxError::BadSignature);
        // Signed by someone else.
        let other = transfer(&k).sign(&key(2));
        assert_eq!(other.verify(7).unwrap_err(), TxError::BadSignature);
        let mut short = transfer(&k).sign(&k);
        short.signature.pop();
        assert_eq!(short.verify(7).unwrap_err(), TxError::BadSignature);
    }

    #[test]
    fn garbage_bytes_are_errors() {
        assert!(matches!(SignedTransaction::decode(&[]), Err(TxError::Malformed(_))));
        assert!(matches!(SignedTransaction::decode(&[0xff; 100]), Err(TxError::Malformed(_))));
        assert!(matches!(SignedTransaction::decode(&vec![0; MAX_TX_BYTES + 1]), Err(TxError::TooLarge(_))));
        let k = key(1);
        let mut bytes = transfer(&k).sign(&k).encode();
        bytes.push(0); // trailing garbage
        assert!(SignedTransaction::decode(&bytes).is_err());
        bytes.pop();
        bytes.truncate(bytes.len() - 3);
        assert!(SignedTransaction::decode(&bytes).is_err());
    }
}
