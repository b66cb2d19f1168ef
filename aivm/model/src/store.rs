//! The artifact store: model SKUs on disk, named by their MODEL_HASH, as the node and the CLI
//! keep them. MODEL_LOAD resolves a hash here; a file whose bytes do not hash to its name is
//! refused, so a corrupt or swapped artifact can never be run under another model's name.

use super::sku::{Sku, SkuError};
use crate::hash::model_hash;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default cache directory: `$AIVM_HOME`, else `$HOME/.cache/aivm`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("AIVM_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("aivm")
}

/// The model `make model` converted last: `<home>/default-model` holds its hash in hex, and
/// the SKU is read from `<home>/artifacts` (checked against that hash).
pub fn default_model() -> Result<Arc<Sku>, ArtifactError> {
    let home = default_home();
    let marker = std::fs::read_to_string(home.join("default-model"))?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(marker.trim(), &mut hash).map_err(|_| ArtifactError::BadMarker(marker.trim().to_string()))?;
    ArtifactStore::open(home.join("artifacts")).get(&hash)
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("model {0} is not in the artifact store")]
    NotFound(String),
    #[error("artifact {0} does not hash to its name")]
    HashMismatch(String),
    #[error("the default-model marker does not name a model hash: {0:?}")]
    BadMarker(String),
    #[error("artifact store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sku(#[from] SkuError),
    /// The backend could not take the weights (a node fault, not a missing model).
    #[error(transparent)]
    Backend(#[from] aivm_backend::BackendError),
}

/// SKUs under `<dir>/<hex hash>.sku`, with loaded ones kept in memory.
pub struct ArtifactStore {
    dir: PathBuf,
    loaded: Mutex<HashMap<[u8; 32], Arc<Sku>>>,
}

impl ArtifactStore {
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), loaded: Mutex::new(HashMap::new()) }
    }

    /// `<home>/artifacts`.
    pub fn default_store() -> Self {
        Self::open(default_home().join("artifacts"))
    }

    pub fn path_of(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.sku", hex::encode(hash)))
    }

    /// Store a SKU's canonical bytes; returns its hash. Written to a temporary name and
    /// renamed, so a crash never leaves a partial artifact under a valid name.
    pub fn put(&self, sku: &Sku) -> Result<[u8; 32], ArtifactError> {
        let bytes = sku.to_bytes();
        let hash = model_hash(&bytes);
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path_of(&hash);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(hash)
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.path_of(hash).is_file()
    }

    /// Load (or return the loaded) SKU for `hash`, checking the bytes hash to it.
    pub fn get(&self, hash: &[u8; 32]) -> Result<Arc<Sku>, ArtifactError> {
        if let Some(s) = self.loaded.lock().get(hash) {
            return Ok(s.clone());
        }
        let sku = Arc::new(Self::load_file(&self.path_of(hash), Some(hash))?);
        self.loaded.lock().insert(*hash, sku.clone());
        Ok(sku)
    }

    /// Read a SKU file, optionally requiring its hash.
    pub fn load_file(path: &Path, want: Option<&[u8; 32]>) -> Result<Sku, ArtifactError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ArtifactError::NotFound(path.display().to_string()),
            _ => ArtifactError::Io(e),
        })?;
        if let Some(h) = want {
            if model_hash(&bytes) != *h {
                return Err(ArtifactError::HashMismatch(path.display().to_string()));
            }
        }
        Ok(Sku::from_bytes(&bytes)?)
    }
}

/// Loaded, ready-to-run models by hash: what MODEL_LOAD resolves against in the VM.
pub struct ModelRegistry {
    store: ArtifactStore,
    engines: Mutex<HashMap<[u8; 32], Arc<super::Engine>>>,
    opts: super::Options,
}

impl ModelRegistry {
    pub fn new(store: ArtifactStore, opts: super::Options) -> Self {
        Self { store, engines: Mutex::new(HashMap::new()), opts }
    }

    /// The SKU's size in bytes (what MODEL_LOAD is priced by), if the store has it.
    pub fn size_of(&self, hash: &[u8; 32]) -> Option<u64> {
        std::fs::metadata(self.store.path_of(hash)).ok().map(|m| m.len())
    }

    /// The engine for `hash`, loading and packing it on first use.
    pub fn engine(&self, hash: &[u8; 32]) -> Result<Arc<super::Engine>, ArtifactError> {
        if let Some(e) = self.engines.lock().get(hash) {
            return Ok(e.clone());
        }
        let e = Arc::new(super::Engine::with_hash(self.store.get(hash)?, *hash, self.opts.clone())?);
        self.engines.lock().insert(*hash, e.clone());
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sku::{tests::tiny, Arch};
    use super::*;

    #[test]
    fn put_get_and_refuse_tampered() {
        let dir = std::env::temp_dir().join(format!("aivm-store-{}", std::process::id()));
        let store = ArtifactStore::open(&dir);
        let sku = tiny(Arch::Llama, 5);
        let h = store.put(&sku).unwrap();
        assert_eq!(h, sku.hash());
        assert_eq!(*store.get(&h).unwrap(), sku);
        assert!(matches!(store.get(&[0; 32]), Err(ArtifactError::NotFound(_))));
        // Swap another model's bytes under this name: refused.
        let other = tiny(Arch::Llama, 6);
        std::fs::write(store.path_of(&h), other.to_bytes()).unwrap();
        let fresh = ArtifactStore::open(&dir);
        assert!(matches!(fresh.get(&h), Err(ArtifactError::HashMismatch(_))));
        std::fs::remove_dir_all(&dir).ok();
    }
}
