//! End-to-end: `aivm node init` makes keys, configs and one genesis for a new network.

use aivm_node::config::NodeConfig;
use aivm_node::genesis::GenesisFile;
use aivm_node::keys::NodeKeys;
mod common;

use common::aivm;

#[test]
fn testnet_init_writes_a_consistent_network() {
    let dir = std::env::temp_dir().join(format!("aivm-node-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (code, out, err) = aivm(&["node", "init", "--home", d, "--testnet", "4", "--chain-id", "9", "--port", "19100", "--active", "3"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let genesis = GenesisFile::from_json(&std::fs::read(dir.join("v0/genesis.json")).unwrap()).unwrap();
    assert_eq!(report["genesis_hash"], aivm_node::hexbytes::to_hex(&genesis.hash()));
    assert_eq!((genesis.chain_id, genesis.validators.len(), genesis.active_set().len()), (9, 4, 3));
    for i in 0..4 {
        let home = dir.join(format!("v{i}"));
        assert_eq!(std::fs::read(home.join("genesis.json")).unwrap(), std::fs::read(dir.join("v0/genesis.json")).unwrap());
        let cfg = NodeConfig::load(&home).unwrap();
        assert_eq!(cfg.p2p, format!("127.0.0.1:{}", 19100 + i));
        let keys = NodeKeys::load(&home).unwrap();
        assert_eq!(genesis.validators[i].identity, keys.identity_public());
        assert_eq!(genesis.validators[i].consensus, keys.consensus_public());
        // The three active validators hold shares of the threshold key; the fourth none.
        let share = aivm_node::keys::load_share(&home).unwrap();
        assert_eq!(share.is_some(), genesis.active_identities().contains(&keys.identity_public()), "validator {i}");
    }
    // Keys are never overwritten.
    let (code, _, err) = aivm(&["node", "init", "--home", d, "--testnet", "4"]);
    assert_eq!(code, 2);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let (code, _, _) = aivm(&["node", "init", "--home", d, "--testnet", "0"]);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(&dir).ok();
}
