//! A state directory for `aivm call --state DIR`: contract storage as JSON files and the
//! compiled-module cache. (The RocksDB state of the runtime replaces the storage files.)
//!
//! Layout: `DIR/contracts/<address>.json` maps hex keys to hex values; `DIR/modules/` holds
//! compiled modules. Files are replaced atomically, so an interrupted call never leaves a
//! half-written state.

use super::codec::{hex, unhex};
use aivm::{MemState, WriteSet};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("contracts")).with_context(|| format!("creating state directory {}", root.display()))?;
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("modules")
    }

    fn file(&self, address: &[u8; 32]) -> PathBuf {
        self.root.join("contracts").join(format!("{}.json", hex(address)))
    }

    /// The contract's storage; a missing file is empty storage, a corrupt one an error.
    pub fn load(&self, address: &[u8; 32]) -> Result<MemState> {
        let path = self.file(address);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(MemState::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let raw: BTreeMap<String, String> =
            serde_json::from_str(&text).with_context(|| format!("corrupt state file {}", path.display()))?;
        let mut map = BTreeMap::new();
        for (k, v) in raw {
            let (Some(k), Some(v)) = (unhex(&k), unhex(&v)) else {
                return Err(anyhow!("corrupt state file {}: non-hex entry", path.display()));
            };
            map.insert(k, v);
        }
        Ok(MemState::from_map(map))
    }

    /// Apply a successful call's writes and save.
    pub fn save(&self, address: &[u8; 32], mut state: MemState, writes: &WriteSet) -> Result<()> {
        state.apply(writes);
        let raw: BTreeMap<String, String> = state.map().iter().map(|(k, v)| (hex(k), hex(v))).collect();
        let path = self.file(address);
        let text = serde_json::to_string_pretty(&raw)?;
        aivm::cache::write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
    }
}
