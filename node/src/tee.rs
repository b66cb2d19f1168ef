//! The devnet enclave: **not a TEE**. On machines without TEE hardware, a worker holds an
//! ed25519 key that genesis registers as a devnet signer, and "attests" its jobs with it
//! (`aivm::tee` format `Devnet`), so the optimistic track runs end to end. Anyone holding the
//! key can attest anything: a chain enables this only through its genesis, and a production
//! genesis does not (`spec/tee.md` §6).

use crate::keys::{read_secret, write_secret, KeyError};
use aivm::tee::{Evidence, Format, HexBytes, JobClaim, TeePolicy};
use aivm_runtime::market::params::TeeParams;
use ed25519_dalek::SigningKey;
use std::path::Path;

/// Where a worker's devnet enclave key lives in its home.
pub const ENCLAVE_KEY_FILE: &str = "devnet-enclave.key";

/// The measurement devnet attestations declare: the hash of a name, not of any code.
pub fn devnet_measurement() -> [u8; 32] {
    *blake3::hash(b"aivm devnet worker image v1 (not a TEE)").as_bytes()
}

/// A worker's devnet enclave key.
pub struct DevnetEnclave(SigningKey);

impl DevnetEnclave {
    /// Create the key under `home` (refusing to overwrite one).
    pub fn create(home: &Path) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        write_secret(&home.join(ENCLAVE_KEY_FILE), &seed)?;
        Ok(DevnetEnclave(SigningKey::from_bytes(&seed)))
    }

    pub fn load(home: &Path) -> Result<Self, KeyError> {
        Ok(DevnetEnclave(SigningKey::from_bytes(&read_secret(&home.join(ENCLAVE_KEY_FILE))?)))
    }

    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The attestation of `claim`.
    pub fn attest(&self, claim: &JobClaim) -> Evidence {
        let quote = aivm::tee::devnet_quote(&self.0, &devnet_measurement(), &aivm::tee::report_data(claim));
        Evidence { format: Format::Devnet, quote, collateral: Vec::new() }
    }
}

/// A devnet's TEE track: the devnet format only, these signers, the devnet measurement.
pub fn devnet_tee_params(signers: &[[u8; 32]], challenge_window: u64, spot_check_ppm: u32) -> TeeParams {
    TeeParams {
        policy: TeePolicy { formats: vec![Format::Devnet], devnet_signers: signers.iter().map(|k| HexBytes(k.to_vec())).collect(), ..TeePolicy::default() },
        measurements: vec![HexBytes(devnet_measurement().to_vec())],
        challenge_window,
        spot_check_ppm,
    }
}
