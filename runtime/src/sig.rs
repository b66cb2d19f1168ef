//! The transaction signature rule (`spec/state.md`, "Signatures"): ed25519 under ZIP-215,
//! checked in batches on the node's one rayon pool.
//!
//! Why ZIP-215 (the `ed25519-zebra` crate, pinned): it fixes exactly which signatures are valid
//! (cofactored equation, non-canonical point encodings accepted, `s` must be canonical), and
//! under it batch verification accepts a set of signatures exactly when each one verifies alone.
//! RFC 8032 leaves that choice open and strict single verification can disagree with a batch,
//! so only under ZIP-215 is batching safe for consensus. In batches of 256 a signature costs
//! about 17 µs here against 53 µs for a strict single check (`blockstm --signatures`,
//! BENCHMARKS.md).
//!
//! One rule is ours: a sender key that decodes to a point of small order is refused. Under the
//! cofactored equation anybody can sign for such a key, and the chain has accounts at such
//! addresses (the fee collector is `[0; 32]`, a point of order 4).

use ed25519_zebra::batch;
use ed25519_zebra::{Signature, VerificationKeyBytes};
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Signatures checked together in one batch equation. Larger batches gained little in an
/// exploratory run outside the repo (64 → 27 µs, 256 → 22 µs, 1024 → 23 µs per signature), and
/// a failed batch is re-checked one by one, so a bad signature costs its batch twice.
pub const BATCH: usize = 256;

/// One signature to check: the signer's key, the 64 signature bytes, the signed message.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    pub key: &'a [u8; 32],
    pub signature: &'a [u8; 64],
    pub message: &'a [u8],
}

/// The 14 encodings that ZIP-215 decoding maps to a point of small order: the 8 torsion
/// points, canonical, with the sign bit of an `x = 0` point set, and with `y + p` where that
/// still fits 255 bits.
fn small_order_encodings() -> &'static HashSet<[u8; 32]> {
    static SET: OnceLock<HashSet<[u8; 32]>> = OnceLock::new();
    SET.get_or_init(|| {
        use curve25519_dalek::edwards::CompressedEdwardsY;
        // p = 2^255 - 19, little-endian.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut out = HashSet::new();
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            let canonical = point.compress().to_bytes();
            let mut ys = vec![canonical];
            let mut y = canonical;
            y[31] &= 0x7f;
            if y[1..].iter().all(|&b| b == 0) && y[0] < 19 {
                // y + p, then the original sign bit.
                let mut sum = p;
                sum[0] = p[0] + y[0];
                sum[31] |= canonical[31] & 0x80;
                ys.push(sum);
            }
            for enc in ys {
                for candidate in [enc, flip_sign(enc)] {
                    if CompressedEdwardsY(candidate).decompress().is_some_and(|q| q.is_small_order()) {
                        out.insert(candidate);
                    }
                }
            }
        }
        out
    })
}

fn flip_sign(mut b: [u8; 32]) -> [u8; 32] {
    b[31] ^= 0x80;
    b
}

/// Whether `key` decodes to a point of small order (refused as a sender).
pub fn is_small_order(key: &[u8; 32]) -> bool {
    small_order_encodings().contains(key)
}

/// Check one signature.
pub fn verify(item: Item<'_>) -> bool {
    let _cpu = crate::cpu::enter(crate::cpu::Part::Signatures);
    !is_small_order(item.key)
        && batch::Item::from((VerificationKeyBytes::from(*item.key), Signature::from_bytes(item.signature), item.message)).verify_single().is_ok()
}

/// Check every signature; results in input order. Batches of [`BATCH`] run in parallel on the
/// rayon pool; a batch that fails is checked one signature at a time, so the answer for each
/// item is exactly [`verify`]'s.
pub fn verify_all(items: &[Item<'_>]) -> Vec<bool> {
    if items.len() < 4 {
        return items.iter().map(|i| verify(*i)).collect();
    }
    let chunk = BATCH.min(items.len().div_ceil(rayon::current_num_threads().max(1)));
    items.par_chunks(chunk).flat_map_iter(verify_chunk).collect()
}

/// The batch equation's random coefficients (128 bits per signature): a BLAKE3 stream keyed
/// once per batch from the OS, instead of a `getrandom` call per signature. They only need to
/// be unpredictable to whoever chose the signatures; the verdict does not depend on them.
struct BatchRng(blake3::OutputReader);

impl BatchRng {
    fn new() -> Self {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        BatchRng(blake3::Hasher::new_keyed(&key).finalize_xof())
    }
}

impl rand_core::RngCore for BatchRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for BatchRng {}

fn verify_chunk(items: &[Item<'_>]) -> Vec<bool> {
    let _cpu = crate::cpu::enter(crate::cpu::Part::Signatures);
    let small: Vec<bool> = items.iter().map(|i| is_small_order(i.key)).collect();
    let queued: Vec<batch::Item> =
        items.iter().map(|i| batch::Item::from((VerificationKeyBytes::from(*i.key), Signature::from_bytes(i.signature), i.message))).collect();
    if !small.contains(&true) {
        let mut v = batch::Verifier::new();
        for q in &queued {
            v.queue(q.clone());
        }
        if v.verify(BatchRng::new()).is_ok() {
            return vec![true; items.len()];
        }
    }
    queued.into_iter().zip(small).map(|(q, s)| !s && q.verify_single().is_ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(seed: u8, msg: &[u8]) -> ([u8; 32], [u8; 64]) {
        let k = SigningKey::from_bytes(&[seed; 32]);
        (k.verifying_key().to_bytes(), k.sign(msg).to_bytes())
    }

    #[test]
    fn fourteen_small_order_encodings_and_the_fee_collector_among_them() {
        assert_eq!(small_order_encodings().len(), 14);
        assert!(is_small_order(&[0; 32]), "y = 0: a point of order 4");
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(is_small_order(&identity));
        assert!(!is_small_order(&signed(1, b"m").0));
    }

    /// RFC 8032 §7.1 test 1 (empty message) verifies; a small-order key with a forged
    /// signature (R = identity, s = 0 satisfies the cofactored equation for any message) is
    /// refused by our rule; a non-canonical `s` is refused by ZIP-215.
    #[test]
    fn pinned_vectors() {
        let pk: [u8; 32] = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap().try_into().unwrap();
        let sig: [u8; 64] =
            hex::decode("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
                .unwrap()
                .try_into()
                .unwrap();
        assert!(verify(Item { key: &pk, signature: &sig, message: b"" }));
        assert!(!verify(Item { key: &pk, signature: &sig, message: b"x" }));

        let mut forged = [0u8; 64];
        forged[0] = 1; // R = identity, s = 0
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let item = Item { key: &identity, signature: &forged, message: b"steal the fees" };
        assert!(batch::Item::from((VerificationKeyBytes::from(identity), Signature::from_bytes(&forged), &b"steal the fees"[..])).verify_single().is_ok());
        assert!(!verify(item), "small-order sender refused");

        let mut high_s = sig;
        high_s[63] |= 0xf0;
        assert!(!verify(Item { key: &pk, signature: &high_s, message: b"" }));
    }

    /// Batches give exactly the single answers, whatever mix of good and bad signatures.
    #[test]
    fn batch_equals_single() {
        let msgs: Vec<Vec<u8>> = (0..600u32).map(|i| i.to_le_bytes().repeat(i as usize % 7 + 1)).collect();
        let mut sigs: Vec<([u8; 32], [u8; 64])> = msgs.iter().enumerate().map(|(i, m)| signed((i % 250) as u8 + 1, m)).collect();
        for i in [3usize, 300, 301, 599] {
            sigs[i].1[10] ^= 1;
        }
        sigs[42].0 = [0; 32];
        let items: Vec<Item> = sigs.iter().zip(&msgs).map(|((k, s), m)| Item { key: k, signature: s, message: m }).collect();
        let got = verify_all(&items);
        let single: Vec<bool> = items.iter().map(|i| verify(*i)).collect();
        assert_eq!(got, single);
        assert_eq!(got.iter().filter(|ok| !**ok).count(), 5);
        let good: Vec<Item> = items.iter().enumerate().filter(|(i, _)| got[*i]).map(|(_, t)| *t).collect();
        assert!(verify_all(&good).into_iter().all(|ok| ok));
    }
}
