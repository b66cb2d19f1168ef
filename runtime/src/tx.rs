//! Transactions: what users sign and submit. CBOR through serde, ed25519-signed, with a
//! canonical encoding so one transaction has exactly one hash (`spec/state.md`).

use crate::encoding::cbor;
use crate::state::Address;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

/// The largest encoded transaction accepted (a deploy carries a whole module).
pub const MAX_TX_BYTES: usize = 2 << 20;
/// Signatures cover this prefix, then BLAKE3 of the canonical CBOR of the [`Transaction`]
/// ([`signing_message`]).
pub const SIGNING_DOMAIN: &[u8] = b"aivm-tx-v2";

/// `SIGNING_DOMAIN ‖ BLAKE3(CBOR(tx))`: a digest is signed, not the transaction, so a
/// signature costs the same to check for a 2 MiB transaction as for a transfer. ed25519
/// hashes its whole message with SHA-512, several times slower than BLAKE3 here; over a
/// ~1 MB market answer that was most of the block's time outside the answer's own check
/// (BENCHMARKS.md, "Market"). Until 2026-12-04 the message was `"aivm-tx-v1" ‖ CBOR(tx)`.
pub fn signing_message(tx_cbor: &[u8]) -> Vec<u8> {
    message_of(blake3::hash(tx_cbor).as_bytes())
}

fn message_of(digest: &[u8; 32]) -> Vec<u8> {
    [SIGNING_DOMAIN, digest].concat()
}

/// Transaction ids are BLAKE3 of this, then `BLAKE3(CBOR(tx))` (the digest the signature
/// covers), then the signature.
pub const TX_ID_DOMAIN: &[u8] = b"aivm-txid-v2";

/// A transaction's id (its hash) from the digest its signature covers and the signature: a
/// function of exactly what its one canonical encoding holds, made from the digest admission
/// computes anyway, so a transaction's bytes are hashed once rather than twice (0.16 ms a
/// pass over a 1 MB market answer here). Until 2026-12-04 the id was BLAKE3 of the canonical
/// encoding (`spec/state.md`).
pub fn tx_id(digest: &[u8; 32], signature: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(TX_ID_DOMAIN);
    h.update(digest);
    h.update(signature);
    *h.finalize().as_bytes()
}

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
    /// Call a contract's entry point with CBOR arguments, sending it `value` native units
    /// (moved to the contract before it runs, and back if the call fails). A zero value is
    /// left out of the encoding (and refused if written), so calls without one encode as
    /// before it existed.
    Call {
        #[serde(with = "serde_bytes")]
        contract: Address,
        entry: String,
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
        #[serde(default, skip_serializing_if = "is_zero")]
        value: u128,
    },
    /// A compute-market operation (`spec/market.md`).
    Market(crate::market::MarketTx),
    /// A validator staking operation (`spec/consensus.md`, "Validator lifecycle").
    Staking(crate::staking::StakingTx),
}

fn is_zero(v: &u128) -> bool {
    *v == 0
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
    /// The message its signature covers ([`signing_message`]).
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_message(&cbor(self))
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

    /// Its id ([`tx_id`]), what receipts, the mempool and RPC call its hash.
    pub fn hash(&self) -> [u8; 32] {
        tx_id(blake3::hash(&cbor(&self.tx)).as_bytes(), &self.signature)
    }

    /// Decode submitted bytes. Anything but the one canonical encoding is refused, so a
    /// transaction has one encoding and one id ([`tx_id`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge(bytes.len()));
        }
        let tx: SignedTransaction = ciborium::from_reader(bytes).map_err(|e| TxError::Malformed(e.to_string()))?;
        if !crate::encoding::encodes_to(&tx, bytes) {
            return Err(TxError::NotCanonical);
        }
        Ok(tx)
    }

    /// Check the signature (`crate::sig`) and the chain, and fix the hash and size.
    pub fn verify(self, chain_id: u64) -> Result<VerifiedTx, TxError> {
        let bytes = self.encode();
        check_all(vec![Checked::of(self, &bytes)], chain_id).pop().unwrap_or(Err(TxError::BadSignature))
    }
}

/// A transaction whose signature has been checked: what the executor runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    /// Shared, not copied, with the pool, proposals and block records: a market answer is a
    /// megabyte, and each copy of it cost a block ~0.1 ms.
    pub signed: std::sync::Arc<SignedTransaction>,
    /// Its id ([`tx_id`]).
    pub hash: [u8; 32],
    /// Length of the canonical encoding, which intrinsic gas is charged on.
    pub size: usize,
}

impl VerifiedTx {
    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }
}

/// A decoded transaction with what its signature check needs.
struct Checked {
    signed: SignedTransaction,
    hash: [u8; 32],
    size: usize,
    /// `SIGNING_DOMAIN ‖ BLAKE3(CBOR(tx))`.
    message: Vec<u8>,
}

/// The canonical encoding is `{"tx": CBOR(tx), "signature": h'…'}` (a map of two text keys):
/// this prefix, the transaction, then the 64-byte signature under its key.
const ENCODED_PREFIX: [u8; 4] = [0xa2, 0x62, b't', b'x'];
const SIGNATURE_KEY: [u8; 12] = [0x69, b's', b'i', b'g', b'n', b'a', b't', b'u', b'r', b'e', 0x58, 0x40];

/// The transaction's bytes and the signature in an encoding laid out as above, if it is.
fn split_encoding(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let tail = SIGNATURE_KEY.len() + 64;
    (bytes.len() >= ENCODED_PREFIX.len() + tail && bytes.starts_with(&ENCODED_PREFIX) && bytes[bytes.len() - tail..][..SIGNATURE_KEY.len()] == SIGNATURE_KEY)
        .then(|| (&bytes[ENCODED_PREFIX.len()..bytes.len() - tail], &bytes[bytes.len() - 64..]))
}

/// The id ([`tx_id`]) of the transaction encoded as `bytes`, read from the layout above
/// without decoding (`None` if the bytes are not laid out so; such bytes are no valid
/// transaction, whose signature is 64 bytes). The layout fixes every byte but the
/// transaction's and the signature's, so two encodings with one id are the same bytes: a
/// block's transaction found in the pool by this id is the one the pool verified.
pub fn id_of_encoding(bytes: &[u8]) -> Option<[u8; 32]> {
    split_encoding(bytes).map(|(tx, sig)| tx_id(blake3::hash(tx).as_bytes(), sig))
}

impl Checked {
    /// `bytes` must be `signed`'s canonical encoding. The signed digest is taken over the
    /// transaction's bytes cut out of it rather than encoded again (the layout above;
    /// re-encoded if it is not that layout), and the id made from that digest.
    fn of(signed: SignedTransaction, bytes: &[u8]) -> Self {
        let digest = match split_encoding(bytes) {
            Some((tx, _)) => blake3::hash(tx),
            None => blake3::hash(&cbor(&signed.tx)),
        };
        let digest = *digest.as_bytes();
        Checked { hash: tx_id(&digest, &signed.signature), size: bytes.len(), message: message_of(&digest), signed }
    }
}

/// Check the chain id and signature of each (results in input order), the signatures in
/// parallel batches (`crate::sig::verify_all`).
fn check_all(txs: Vec<Checked>, chain_id: u64) -> Vec<Result<VerifiedTx, TxError>> {
    let early: Vec<Result<(), TxError>> = txs
        .iter()
        .map(|c| {
            if c.signed.tx.chain_id != chain_id {
                return Err(TxError::WrongChain { expected: chain_id, got: c.signed.tx.chain_id });
            }
            if c.signed.signature.len() != 64 {
                return Err(TxError::BadSignature);
            }
            Ok(())
        })
        .collect();
    let items: Vec<crate::sig::Item> = txs
        .iter()
        .zip(&early)
        .filter(|(_, e)| e.is_ok())
        .filter_map(|(c, _)| {
            let signature = c.signed.signature.as_slice().try_into().ok()?;
            Some(crate::sig::Item { key: &c.signed.tx.sender, signature, message: &c.message })
        })
        .collect();
    let mut valid = crate::sig::verify_all(&items).into_iter();
    txs.into_iter()
        .zip(early)
        .map(|(c, early)| {
            early?;
            if !valid.next().unwrap_or(false) {
                return Err(TxError::BadSignature);
            }
            Ok(VerifiedTx { signed: std::sync::Arc::new(c.signed), hash: c.hash, size: c.size })
        })
        .collect()
}

/// A transaction decoded from its canonical bytes, its signature not checked yet: what an
/// admission can refuse on cheaply (a duplicate, a nonce out of range) before paying for the
/// signature check.
pub struct Decoded(Checked);

impl Decoded {
    pub fn tx(&self) -> &Transaction {
        &self.0.signed.tx
    }

    /// The transaction's id ([`tx_id`]).
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash
    }

    pub fn size(&self) -> usize {
        self.0.size
    }
}

/// Decode submitted or proposed transactions in parallel; results in input order.
pub fn decode_all<B: AsRef<[u8]> + Sync>(encoded: &[B]) -> Vec<Result<Decoded, TxError>> {
    use rayon::prelude::*;
    encoded
        .par_iter()
        // One CPU-clock reading per split of the work, not per transaction (it is a syscall).
        .map_init(
            || crate::cpu::enter(crate::cpu::Part::Signatures),
            |_, b| {
                let b = b.as_ref();
                SignedTransaction::decode(b).map(|t| Decoded(Checked::of(t, b)))
            },
        )
        .collect()
}

/// Check the chain id and signature of decoded transactions (in batches); results in order.
pub fn verify_decoded(decoded: Vec<Decoded>, chain_id: u64) -> Vec<Result<VerifiedTx, TxError>> {
    check_all(decoded.into_iter().map(|d| d.0).collect(), chain_id)
}

/// Decode and check submitted or proposed transactions; results in input order. Decoding
/// runs in parallel, signatures in batches (`crate::sig`).
pub fn verify_encoded<B: AsRef<[u8]> + Sync>(encoded: &[B], chain_id: u64) -> Vec<Result<VerifiedTx, TxError>> {
    let mut errors = Vec::with_capacity(encoded.len());
    let mut ok = Vec::with_capacity(encoded.len());
    for d in decode_all(encoded) {
        match d {
            Ok(c) => {
                errors.push(None);
                ok.push(c);
            }
            Err(e) => errors.push(Some(e)),
        }
    }
    let mut checked = verify_decoded(ok, chain_id).into_iter();
    errors.into_iter().map(|e| e.map_or_else(|| checked.next().unwrap_or(Err(TxError::BadSignature)), Err)).collect()
}

/// Verify decoded transactions on the rayon pool; results in input order (each is encoded once
/// for its hash).
pub fn verify_batch(txs: Vec<SignedTransaction>, chain_id: u64) -> Vec<Result<VerifiedTx, TxError>> {
    use rayon::prelude::*;
    let checked: Vec<Checked> = txs
        .into_par_iter()
        .map_init(
            || crate::cpu::enter(crate::cpu::Part::Signatures),
            |_, t| {
                let bytes = t.encode();
                Checked::of(t, &bytes)
            },
        )
        .collect();
    check_all(checked, chain_id)
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
        // The id as `spec/state.md` writes it.
        let digest = blake3::hash(&cbor(&signed.tx));
        let id = blake3::hash(&[&b"aivm-txid-v2"[..], digest.as_bytes(), &signed.signature[..]].concat());
        assert_eq!(v.hash, *id.as_bytes());
        assert_eq!(signed.hash(), *id.as_bytes());
        assert_eq!(id_of_encoding(&bytes), Some(*id.as_bytes()), "read from the bytes");
        assert_eq!(id_of_encoding(&bytes[1..]), None);
        assert_eq!(id_of_encoding(&bytes[..bytes.len() - 1]), None);
        let mut other_sig = bytes.clone();
        *other_sig.last_mut().unwrap() ^= 1;
        assert_ne!(id_of_encoding(&other_sig), Some(*id.as_bytes()), "the signature is in the id");
    }

    /// Only the one canonical encoding decodes: the same transaction with an integer in a
    /// longer form, with a byte after it, or cut short, is refused (so a transaction has one
    /// hash).
    #[test]
    fn other_encodings_of_a_transaction_are_refused() {
        let k = key(1);
        let signed = Transaction { nonce: 3, ..transfer(&k) }.sign(&k);
        let bytes = signed.encode();
        assert_eq!(SignedTransaction::decode(&bytes), Ok(signed.clone()));
        // "nonce" then 3 as one byte (0x03); written as 0x18 0x03 it still decodes to 3.
        let at = bytes.windows(6).position(|w| w == [0x65, b'n', b'o', b'n', b'c', b'e']).expect("the nonce key") + 6;
        assert_eq!(bytes[at], 0x03);
        let long_form = [&bytes[..at], &[0x18, 0x03], &bytes[at + 1..]].concat();
        assert_eq!(ciborium::from_reader::<SignedTransaction, _>(&long_form[..]).ok(), Some(signed), "CBOR itself accepts it");
        assert_eq!(SignedTransaction::decode(&long_form), Err(TxError::NotCanonical));
        let trailing = [&bytes[..], &[0]].concat();
        assert_eq!(SignedTransaction::decode(&trailing), Err(TxError::NotCanonical));
        assert!(SignedTransaction::decode(&bytes[..bytes.len() - 1]).is_err());
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

    /// The signed message cut out of the encoding is the one `signing_bytes` gives, for every
    /// payload shape (so the fast path is the one taken and agrees with signing).
    #[test]
    fn message_cut_from_the_encoding() {
        let k = key(3);
        let payloads = [
            Payload::Transfer { to: [2; 32], amount: u128::MAX },
            Payload::Deploy { code: vec![7; 70_000], args: vec![1, 2] },
            Payload::Call { contract: [4; 32], entry: "transfer".into(), args: vec![0; 300], value: 0 },
        ];
        for payload in payloads {
            let t = Transaction { payload, ..transfer(&k) }.sign(&k);
            let bytes = t.encode();
            assert!(bytes.starts_with(&ENCODED_PREFIX));
            assert_eq!(Checked::of(t.clone(), &bytes).message, t.tx.signing_bytes());
            // The signed message is the domain and a digest, whatever the payload's size.
            assert_eq!(t.tx.signing_bytes(), [SIGNING_DOMAIN, blake3::hash(&cbor(&t.tx)).as_bytes()].concat());
            let v = verify_encoded(&[&bytes], 7).pop().unwrap().expect("valid");
            assert_eq!(v.hash, t.hash());
        }
    }

    /// Decoding many at once gives each transaction the answer it gets alone, in order.
    #[test]
    fn encoded_batch_answers_in_order() {
        let k = key(1);
        let mut list: Vec<Vec<u8>> = (0..40).map(|n| Transaction { nonce: n, ..transfer(&k) }.sign(&k).encode()).collect();
        list[5] = vec![0xff; 9];
        let mut bad = Transaction { nonce: 6, ..transfer(&k) }.sign(&k);
        bad.signature[3] ^= 1;
        list[6] = bad.encode();
        list[7] = Transaction { chain_id: 8, ..transfer(&k) }.sign(&k).encode();
        let got = verify_encoded(&list, 7);
        for (i, (r, b)) in got.iter().zip(&list).enumerate() {
            let alone = SignedTransaction::decode(b).and_then(|t| t.verify(7));
            assert_eq!(r, &alone, "item {i}");
        }
        assert!(matches!(got[5], Err(TxError::Malformed(_))));
        assert_eq!(got[6], Err(TxError::BadSignature));
        assert!(matches!(got[7], Err(TxError::WrongChain { .. })));
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 37);
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
