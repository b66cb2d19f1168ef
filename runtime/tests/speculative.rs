//! Speculative execution: blocks executed on uncommitted parents (as a consensus engine
//! votes on them) give the same state roots as executing each on the committed head, and
//! commit in order afterwards.

use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::workload::{Asset, P2p};
use aivm_runtime::{Chain, ChainConfig, ChainVm, Parent};

fn open(dir: &std::path::Path) -> Chain {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    Chain::open(dir, ChainVm::new(vm), ChainConfig { chain_id: 3, fee_collector: [0xfe; 32] }).expect("open chain")
}

#[test]
fn chained_speculation_matches_sequential_commits() {
    let mut load = P2p::new(3, 40, 7);
    let blocks: Vec<_> = (0..6).map(|_| load.block(60, Asset::Native)).collect();

    // Reference: execute and commit one block at a time.
    let a = tempdir("ref");
    let reference = open(&a);
    reference.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let mut roots = Vec::new();
    for (i, txs) in blocks.iter().enumerate() {
        let b = reference.execute(txs.clone(), 10 + i as u64).expect("execute");
        roots.push(b.record.header.state_root);
        reference.commit(b).expect("commit");
    }

    // Speculative: execute all four before committing any.
    let b = tempdir("spec");
    let chain = open(&b);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let mut parent = chain.committed_parent().expect("parent");
    let mut executed = Vec::new();
    for (i, txs) in blocks[..4].iter().enumerate() {
        let s = chain.execute_on(&parent, txs.clone(), 10 + i as u64).expect("execute_on");
        assert_eq!(s.record.header.state_root, roots[i], "block {i}");
        parent = parent.then(&s);
        executed.push(s);
    }
    // A block out of order is refused and nothing is written.
    assert!(chain.commit_speculative(&executed[1], None).is_err());
    assert_eq!(chain.head().expect("head").height, 0);
    for s in &executed {
        let head = chain.commit_speculative(s, Some(&s.record.header.hash())).expect("commit in order");
        assert_eq!(chain.store().head_label().expect("label"), Some(s.record.header.hash().to_vec()));
        assert_eq!(head.state_root, s.record.header.state_root);
    }
    // The tree each block's update left in the store (its new nodes, its ancestors' stale ones
    // removed) carries the next blocks: one on the committed head, one speculative on it.
    let s5 = chain.execute_on(&chain.committed_parent().expect("parent"), blocks[4].clone(), 14).expect("block 5");
    let s6 = chain.execute_on(&chain.committed_parent().expect("parent").then(&s5), blocks[5].clone(), 15).expect("block 6");
    assert_eq!([s5.record.header.state_root, s6.record.header.state_root], [roots[4], roots[5]]);
    chain.commit_speculative(&s5, None).expect("commit 5");
    chain.commit_speculative(&s6, None).expect("commit 6");
    assert_eq!(chain.head(), reference.head());
    // The transaction index points at the committed receipts.
    let last = &executed[3].record;
    assert!(chain.store().prove(&aivm_runtime::StateKey::Account(load.addresses()[0])).is_ok(), "proofs from the committed tree");
    let (h, i) = chain.store().tx_location(&last.receipts[5].tx_hash).expect("index").expect("indexed");
    assert_eq!((h, i), (4, 5));
    // A parent that does not sit on the head is refused.
    let stale = Parent { height: 2, hash: [0; 32], layers: Vec::new(), trees: Vec::new() };
    assert!(chain.execute_on(&stale, blocks[0].clone(), 99).is_err());
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aivm-spec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The block's entropy (on a network, the consensus threshold seed of its parent's round) is
/// what its beacon and so every challenge drawn from it depend on: another seed, another
/// beacon and state root; none, the parent-hash beacon.
#[test]
fn the_beacon_follows_the_threshold_seed() {
    use aivm_runtime::market::jobs::{beacon, challenge_seed};
    use aivm_runtime::market::state::{BeaconRecord, MarketKey};
    let load = P2p::new(3, 4, 1);
    let d = tempdir("beacon");
    let chain = open(&d);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let parent = chain.committed_parent().expect("parent");
    let run = |entropy: Option<&[u8]>| {
        let s = chain.execute_verified(&parent, Vec::new(), 10, Vec::new(), entropy).expect("execute");
        let key = MarketKey::Beacon(1).state_key();
        let value = s.writes.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).expect("beacon written");
        let aivm_runtime::StateValue::Bytes(b) = value else { panic!("beacon bytes") };
        let b: BeaconRecord = ciborium::from_reader(&b[..]).expect("cbor");
        (*b, s.record.header.state_root)
    };
    let (a, root_a) = run(Some(&[1; 96]));
    let (b, root_b) = run(Some(&[2; 96]));
    let (none, _) = run(None);
    assert_eq!(a, beacon(&parent.hash, Some(&[1; 96])));
    assert_eq!(none, beacon(&parent.hash, None));
    assert!(a != b && a != none && root_a != root_b, "the seed decides the beacon and the state root commits to it");
    let job = [7u8; 32];
    assert_ne!(challenge_seed(&a, &job), challenge_seed(&b, &job), "and so the challenge");
    std::fs::remove_dir_all(&d).ok();
}
