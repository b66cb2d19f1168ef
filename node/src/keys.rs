//! A validator's keys: an ed25519 identity (p2p authentication, its account address) and a
//! BLS12-381 min-pk consensus key (votes aggregate into one certificate signature).
//!
//! Each is stored as 64 hex digits of secret in its own file under the node's home, readable
//! by the owner only. The consensus key comes with a proof of possession (a signature over its
//! own public key) that genesis checks, which rules out rogue-key attacks.
//!
//! An active validator also holds its share of the active set's threshold key
//! (`consensus.share`, dealt with the genesis: `crate::consensus::threshold`), which signs
//! its votes and the rounds' seeds.

use crate::hexbytes::{from_hex, to_hex};
use aivm::verify::signature::bls_verify_dst;
use blst::min_pk::SecretKey as BlsSecret;
use ed25519_dalek::SigningKey;
use std::path::Path;

/// Domain tag of proofs of possession (the IETF BLS POP ciphersuite tag, min-pk).
pub use aivm_runtime::staking::POP_DST;
pub const IDENTITY_FILE: &str = "identity.key";
pub const CONSENSUS_FILE: &str = "consensus.key";
pub const SHARE_FILE: &str = "consensus.share";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is not a hex secret key")]
    Corrupt(String),
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(String),
    #[error("no operating-system randomness: {0}")]
    Random(String),
}

/// A validator's secret keys.
pub struct NodeKeys {
    pub identity: SigningKey,
    pub consensus: BlsSecret,
}

impl NodeKeys {
    /// Fresh keys from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 64];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let ikm: [u8; 32] = seed[32..].try_into().map_err(|_| KeyError::Random("short seed".into()))?;
        let consensus = BlsSecret::key_gen(&ikm, b"aivm-consensus-v1").map_err(|e| KeyError::Random(format!("{e:?}")))?;
        let identity = SigningKey::from_bytes(&seed[..32].try_into().map_err(|_| KeyError::Random("short seed".into()))?);
        Ok(Self { identity, consensus })
    }

    /// Write both secrets under `dir` (mode 0600); existing keys are never overwritten.
    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(dir.display().to_string(), e))?;
        write_secret(&dir.join(IDENTITY_FILE), &self.identity.to_bytes())?;
        write_secret(&dir.join(CONSENSUS_FILE), &self.consensus.to_bytes())
    }

    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let identity = SigningKey::from_bytes(&read_secret(&dir.join(IDENTITY_FILE))?);
        let path = dir.join(CONSENSUS_FILE);
        let consensus = BlsSecret::from_bytes(&read_secret(&path)?).map_err(|_| KeyError::Corrupt(path.display().to_string()))?;
        Ok(Self { identity, consensus })
    }

    pub fn identity_public(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }

    pub fn consensus_public(&self) -> [u8; 48] {
        self.consensus.sk_to_pk().compress()
    }

    /// Signature of the consensus key over its own public key, under [`POP_DST`].
    pub fn proof_of_possession(&self) -> [u8; 96] {
        self.consensus.sign(&self.consensus_public(), POP_DST, &[]).compress()
    }
}

/// Write this validator's share of the threshold key (hex of its encoding, mode 0600; never
/// overwritten).
pub fn save_share(dir: &Path, share: &[u8]) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(dir.display().to_string(), e))?;
    write_file(&dir.join(SHARE_FILE), share)
}

/// This validator's share of the threshold key, if it was dealt one. Checked against the
/// genesis polynomial where it is used (`consensus::threshold::share`).
pub fn load_share(dir: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    let path = dir.join(SHARE_FILE);
    let name = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => from_hex(text.trim()).filter(|b| b.len() <= 64).map(Some).ok_or(KeyError::Corrupt(name)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError::Io(name, e)),
    }
}

/// Whether `pop` proves possession of the secret behind `pk`.
pub fn verify_pop(pk: &[u8; 48], pop: &[u8; 96]) -> bool {
    bls_verify_dst(pk, pk, pop, POP_DST)
}

pub(crate) fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyError> {
    write_file(path, secret)
}

fn write_file(path: &Path, secret: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.display().to_string();
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists(name.clone()),
        _ => KeyError::Io(name.clone(), e),
    })?;
    f.write_all(format!("{}\n", to_hex(secret)).as_bytes()).map_err(|e| KeyError::Io(name, e))
}

pub(crate) fn read_secret(path: &Path) -> Result<[u8; 32], KeyError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io(name.clone(), e))?;
    from_hex(text.trim()).and_then(|v| v.try_into().ok()).ok_or(KeyError::Corrupt(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_save_load_and_refuse_overwrite_or_corruption() {
        let dir = std::env::temp_dir().join(format!("aivm-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = NodeKeys::generate().unwrap();
        k.save(&dir).unwrap();
        let back = NodeKeys::load(&dir).unwrap();
        assert_eq!(back.identity_public(), k.identity_public());
        assert_eq!(back.consensus_public(), k.consensus_public());
        assert_ne!(NodeKeys::generate().unwrap().identity_public(), k.identity_public());
        assert!(matches!(k.save(&dir), Err(KeyError::Exists(_))));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join(IDENTITY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(verify_pop(&k.consensus_public(), &k.proof_of_possession()));
        assert!(!verify_pop(&NodeKeys::generate().unwrap().consensus_public(), &k.proof_of_possession()));
        std::fs::write(dir.join(CONSENSUS_FILE), "zz").unwrap();
        assert!(matches!(NodeKeys::load(&dir), Err(KeyError::Corrupt(_))));
        std::fs::remove_dir_all(&dir).ok();
    }
}
