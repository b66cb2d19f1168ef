//! Signature checks: ed25519 (strict RFC 8032 verification) and BLS12-381 (`blst`, min-pk).

use blst::min_pk::{PublicKey, Signature};
use blst::BLST_ERROR;

/// Domain separation tag for AIVM BLS signatures (the IETF "NUL" ciphersuite for min-pk).
pub const BLS_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_";

/// ed25519: `verify_strict` rejects non-canonical and small-order keys and signatures, so
/// every node accepts exactly the same set.
pub fn ed25519_verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
        return false;
    };
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()
}

/// BLS12-381 min-pk: 48-byte compressed G1 public key, 96-byte compressed G2 signature.
/// Keys and signatures are group-checked; the key must not be the identity.
pub fn bls_verify(pk: &[u8; 48], msg: &[u8], sig: &[u8; 96]) -> bool {
    bls_verify_dst(pk, msg, sig, BLS_DST)
}

/// [`bls_verify`] under another domain tag (the node's proofs of possession use their own).
pub fn bls_verify_dst(pk: &[u8; 48], msg: &[u8], sig: &[u8; 96], dst: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (PublicKey::key_validate(pk), Signature::sig_validate(sig, true)) else {
        return false;
    };
    sig.verify(false, msg, dst, &[], &pk, false) == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_roundtrip_and_rejection() {
        use ed25519_dalek::{Signer, SigningKey};
        let sk = SigningKey::from_bytes(&[7; 32]);
        let pk = sk.verifying_key().to_bytes();
        let sig = sk.sign(b"hello").to_bytes();
        assert!(ed25519_verify(&pk, b"hello", &sig));
        assert!(!ed25519_verify(&pk, b"hellp", &sig));
        assert!(!ed25519_verify(&[0xff; 32], b"hello", &sig));
    }

    #[test]
    fn bls_roundtrip_and_rejection() {
        let sk = blst::min_pk::SecretKey::key_gen(&[9; 32], &[]).unwrap();
        let pk = sk.sk_to_pk().compress();
        let sig = sk.sign(b"vote", BLS_DST, &[]).compress();
        assert!(bls_verify(&pk, b"vote", &sig));
        assert!(!bls_verify(&pk, b"veto", &sig));
        assert!(!bls_verify(&[0; 48], b"vote", &sig));
        assert!(!bls_verify(&pk, b"vote", &[0xaa; 96]));
    }
}
