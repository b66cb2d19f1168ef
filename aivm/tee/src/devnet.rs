//! The devnet attestation: **not a TEE**. A key registered in genesis signs the report data
//! and a declared measurement, so the optimistic track can run end to end on machines without
//! TEE hardware. A chain enables it only by listing the format and its signers in genesis.

use crate::{Format, TeeError, TeePolicy, Verified};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// `public key (32) ‖ measurement (32) ‖ report data (64) ‖ signature (64)`.
pub const DEVNET_QUOTE_LEN: usize = 32 + 32 + 64 + 64;

const DOMAIN: &[u8] = b"aivm 2026-12 devnet attestation v1";

fn message(measurement: &[u8], report_data: &[u8]) -> Vec<u8> {
    [DOMAIN, measurement, report_data].concat()
}

/// A devnet quote: `key` signs `measurement` and `report_data`.
pub fn devnet_quote(key: &SigningKey, measurement: &[u8; 32], report_data: &[u8; 64]) -> Vec<u8> {
    let sig = key.sign(&message(measurement, report_data));
    [&key.verifying_key().to_bytes()[..], measurement, report_data, &sig.to_bytes()].concat()
}

pub(crate) fn verify(quote: &[u8], collateral: &[u8], policy: &TeePolicy) -> Result<Verified, TeeError> {
    if quote.len() != DEVNET_QUOTE_LEN || !collateral.is_empty() {
        return Err(TeeError::Malformed(format!("a devnet quote is {DEVNET_QUOTE_LEN} bytes with no collateral")));
    }
    let (key, rest) = quote.split_at(32);
    let (measurement, rest) = rest.split_at(32);
    let (report_data, sig) = rest.split_at(64);
    if !policy.devnet_signers.iter().any(|k| k[..] == *key) {
        return Err(TeeError::Invalid("the devnet signer is not registered in genesis".into()));
    }
    let key: [u8; 32] = key.try_into().map_err(|_| TeeError::Malformed("key".into()))?;
    let vk = VerifyingKey::from_bytes(&key).map_err(|e| TeeError::Invalid(format!("devnet key: {e}")))?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| TeeError::Malformed("signature".into()))?;
    vk.verify_strict(&message(measurement, report_data), &Signature::from_bytes(&sig)).map_err(|e| TeeError::Invalid(format!("devnet signature: {e}")))?;
    Ok(Verified {
        format: Format::Devnet,
        measurement: measurement.to_vec(),
        report_data: report_data.to_vec(),
        status: "Devnet".into(),
        advisories: Vec::new(),
    })
}
