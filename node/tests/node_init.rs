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

/// A genesis assembled by hand from single `aivm node init` entries gets its threshold key
/// from `aivm node deal`: every active validator's share checks against the genesis.
#[test]
fn a_hand_assembled_genesis_is_dealt() {
    let dir = std::env::temp_dir().join(format!("aivm-node-deal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut validators = Vec::new();
    for i in 0..4 {
        let home = dir.join(format!("n{i}"));
        let (code, out, err) = aivm(&["node", "init", "--home", home.to_str().unwrap(), "--port", &(19200 + i).to_string()]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("aivm node deal"), "{err}");
        validators.push(serde_json::from_str::<serde_json::Value>(&out).unwrap());
    }
    let genesis = serde_json::json!({
        "chain_id": 12, "time_ms": 0, "epoch_length": 100, "active_set_size": 3,
        "validators": validators, "accounts": [], "threshold": "",
    });
    let path = dir.join("genesis.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&genesis).unwrap()).unwrap();
    assert!(GenesisFile::from_json(&std::fs::read(&path).unwrap()).is_err(), "no threshold key yet");
    let shares = dir.join("shares");
    let (code, out, err) = aivm(&["node", "deal", "--genesis", path.to_str().unwrap(), "--shares", shares.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("every share"), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let g = GenesisFile::from_json(&std::fs::read(&path).unwrap()).expect("a valid genesis now");
    assert_eq!(report["genesis_hash"], aivm_node::hexbytes::to_hex(&g.hash()));
    assert_eq!(report["shares"].as_array().unwrap().len(), 3, "one per active validator");
    let ids = g.active_identities();
    let (_, sharing) = aivm_node::consensus::threshold::sharing(&g.threshold, &ids).unwrap();
    for id in &ids {
        let share = aivm_node::keys::load_share(&shares.join(aivm_node::hexbytes::to_hex(id))).unwrap().expect("a share");
        aivm_node::consensus::threshold::share(&share, &sharing).expect("a share of this key");
    }
    std::fs::remove_dir_all(&dir).ok();
}
