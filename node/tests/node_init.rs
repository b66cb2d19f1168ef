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

/// `aivm node init --testnet --dkg` deals nothing; the active validators then make the key
/// together with `aivm node dkg`, each from its own home: one genesis for all, each share a
/// share of its key, nobody's revealed, and no share for a validator outside the active set.
#[test]
fn a_testnet_makes_its_threshold_key_by_dkg() {
    let dir = std::env::temp_dir().join(format!("aivm-node-dkg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (code, out, err) = aivm(&["node", "init", "--home", d, "--testnet", "4", "--chain-id", "11", "--port", "19300", "--active", "3", "--dkg"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("aivm node dkg") && err.contains("copy the genesis.json"), "{err}");
    let init: serde_json::Value = serde_json::from_str(&out).unwrap();
    let undealt = std::fs::read(dir.join("v0/genesis.json")).unwrap();
    assert!(GenesisFile::from_json(&undealt).is_err(), "no threshold key yet");
    let active = serde_json::from_slice::<GenesisFile>(&undealt).unwrap().active_identities();
    let homes: Vec<_> = (0..4).map(|i| dir.join(format!("v{i}"))).collect();
    let is_active = |h: &std::path::PathBuf| active.contains(&NodeKeys::load(h).unwrap().identity_public());
    let listed: Vec<std::path::PathBuf> = init["dkg_homes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().into()).collect();
    assert_eq!(listed, homes.iter().filter(|h| is_active(h)).cloned().collect::<Vec<_>>(), "init lists the homes that take part");
    let spawn = |h: &std::path::PathBuf| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aivm"))
            .args(["node", "dkg", "--timeout-s", "90", "--linger-s", "1", "--home"])
            .arg(h)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("aivm node dkg")
    };
    // All at once: the ceremony needs its participants online together.
    let procs: Vec<_> = homes.iter().map(|h| (h.clone(), is_active(h), spawn(h))).collect();
    let mut reports = Vec::new();
    for (home, active, p) in procs {
        let out = p.wait_with_output().expect("exits");
        let err = String::from_utf8_lossy(&out.stderr);
        if !active {
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("not in the genesis' active set"), "{err}");
            assert!(aivm_node::keys::load_share(&home).unwrap().is_none());
            continue;
        }
        assert!(out.status.success(), "{}: {err}", home.display());
        reports.push(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("a JSON report"));
    }
    assert_eq!(reports.len(), 3);
    for r in &reports {
        assert_eq!(r["genesis_hash"], reports[0]["genesis_hash"], "{reports:?}");
        assert_eq!(r["revealed"], serde_json::json!([]), "every validator acknowledged in time: {r}");
        assert!(r["dealers"].as_u64().unwrap() >= 2, "a quorum of dealers at least: {r}");
    }
    // The active validators' homes hold one valid genesis; each share is a share of its key.
    // (Which three are active depends on their random keys: v0 may be the one left out.)
    let first = homes.iter().find(|h| is_active(h)).expect("an active home");
    let g = GenesisFile::from_json(&std::fs::read(first.join("genesis.json")).unwrap()).expect("a valid genesis now");
    assert_eq!(reports[0]["genesis_hash"], aivm_node::hexbytes::to_hex(&g.hash()));
    let (_, sharing) = aivm_node::consensus::threshold::sharing(&g.threshold, &active).unwrap();
    let mut indices = std::collections::BTreeSet::new();
    for home in homes.iter().filter(|h| is_active(h)) {
        assert_eq!(std::fs::read(home.join("genesis.json")).unwrap(), std::fs::read(first.join("genesis.json")).unwrap());
        let share = aivm_node::keys::load_share(home).unwrap().expect("a share");
        let share = aivm_node::consensus::threshold::share(&share, &sharing).expect("a share of this key");
        indices.insert(share.index);
    }
    assert_eq!(indices.len(), 3, "three different shares");
    // A genesis with a key is not made again.
    let (code, _, err) = aivm(&["node", "dkg", "--home", first.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("already has a threshold key"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
