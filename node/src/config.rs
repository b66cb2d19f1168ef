//! A node's configuration file (`<home>/config.json`). Paths in it are relative to the home.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const GENESIS_FILE: &str = "genesis.json";

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub chain_id: u64,
    /// Authenticated p2p listen address.
    pub p2p: String,
    /// JSON-RPC (HTTP and WebSocket) listen address.
    pub rpc: String,
    /// Prometheus metrics listen address.
    pub metrics: String,
    pub genesis: PathBuf,
    /// RocksDB state and the consensus write-ahead log.
    pub data: PathBuf,
    /// Tensor backend (`cpu` or `opencl`; see spec/backends.md).
    pub backend: String,
    /// Per-peer JSON-RPC limits (calls per second, burst, connections); defaults if absent.
    #[serde(default)]
    pub rpc_limits: crate::rpc::RpcLimits,
    /// Block-STM worker threads (default: this machine's cores). Several validators sharing
    /// one machine (a devnet) do better with fewer: speculation pays only on idle cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_threads: Option<usize>,
    /// Blocks between the state snapshots this node keeps for others' state sync (0: none;
    /// default [`crate::snapshots::DEFAULT_INTERVAL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_interval: Option<u64>,
    /// Snapshots kept (default [`crate::snapshots::DEFAULT_KEEP`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_kept: Option<usize>,
}

impl NodeConfig {
    /// Defaults for a node listening on `host` with ports from `base` (p2p, rpc = base + 1000,
    /// metrics = base + 2000).
    pub fn local(chain_id: u64, host: &str, base: u16) -> Self {
        let port = |off: u16| format!("{host}:{}", base.saturating_add(off));
        Self {
            chain_id,
            p2p: port(0),
            rpc: port(1000),
            metrics: port(2000),
            genesis: GENESIS_FILE.into(),
            data: "data".into(),
            backend: "cpu".into(),
            rpc_limits: Default::default(),
            exec_threads: None,
            snapshot_interval: None,
            snapshots_kept: None,
        }
    }

    /// The configuration in `home` (its `config.json`).
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        Self::load_file(&home.join(CONFIG_FILE))
    }

    /// The configuration in the file `path`, whatever its name; relative paths in it are
    /// relative to its directory.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let path = path.to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|source| ConfigError::Parse { path, source })
    }

    pub fn save(&self, home: &Path) -> std::io::Result<()> {
        std::fs::write(home.join(CONFIG_FILE), serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_is_read_under_any_name() {
        let dir = std::env::temp_dir().join(format!("aivm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut cfg = NodeConfig::local(9, "127.0.0.1", 9000);
        cfg.rpc = "127.0.0.1:1".into();
        std::fs::write(dir.join("validator-a.json"), serde_json::to_vec(&cfg).expect("json")).expect("write");
        assert_eq!(NodeConfig::load_file(&dir.join("validator-a.json")).expect("loads"), cfg);
        assert!(matches!(NodeConfig::load(&dir), Err(ConfigError::Read { .. })), "no config.json there");
        let mut old = serde_json::to_value(&cfg).expect("json");
        old.as_object_mut().expect("object").remove("rpc_limits");
        std::fs::write(dir.join("old.json"), serde_json::to_vec(&old).expect("json")).expect("write");
        assert_eq!(NodeConfig::load_file(&dir.join("old.json")).expect("an older config loads").rpc_limits, crate::rpc::RpcLimits::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
