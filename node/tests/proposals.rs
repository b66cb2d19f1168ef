//! Every block a proposer builds decodes under the block limits, however full its mempool and
//! evidence pool are: transactions and evidence share one byte budget.

use aivm::{GasSchedule, Limits, Vm};
use aivm_node::block::{Block, MAX_BLOCK_EVIDENCE, MAX_ENCODED, MAX_EVIDENCE_BYTES};
use aivm_node::execution::{EvidenceCheck, Executor};
use aivm_node::mempool::{Mempool, MempoolConfig};
use aivm_node::staking::{stake_key, stake_value, Offense};
use aivm_runtime::workload::P2p;
use aivm_runtime::{BlockLimits, Chain, ChainConfig, ChainVm, Genesis, Payload};
use proptest::prelude::*;
use std::sync::Arc;

const CHAIN: u64 = 11;

/// Test evidence: its first byte names a staked validator, its second the view.
struct Fake;
impl EvidenceCheck for Fake {
    fn offense(&self, e: &[u8], _: aivm_node::evidence::EngineLookup<'_>) -> Option<Offense> {
        match e {
            [id, view, ..] => Some(Offense { identity: [*id; 32], view: *view as u64 }),
            _ => None,
        }
    }
}

fn build(case: u32, tx_bytes: usize, txs: usize, evidence_bytes: usize) -> Block {
    let dir = std::env::temp_dir().join(format!("aivm-proposals-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let chain = Chain::open(&dir, ChainVm::new(vm), ChainConfig { chain_id: CHAIN, fee_collector: [0; 32] }).expect("chain");
    let mut load = P2p::new(CHAIN, 8, case as u64);
    let entries = (0..100u8).map(|i| (stake_key(&[i; 32]), stake_value(1000))).collect();
    chain.init_genesis(&Genesis { entries, ..load.genesis(1 << 100) }).expect("genesis");
    let limits = BlockLimits { max_block_gas: 1 << 50, max_tx_gas: 1 << 50, min_gas_price: 1 };
    let mempool = Mempool::new(MempoolConfig::new(CHAIN, limits), GasSchedule::default());
    let ex = Executor::new(Arc::new(chain), mempool, limits).expect("executor").with_evidence_check(Arc::new(Fake));
    load.gas_limit = 1 << 40;
    for i in 0..txs {
        let tx = load.sign(i % 8, Payload::Call { contract: [9; 32], entry: "x".into(), args: vec![i as u8; tx_bytes], value: 0 });
        ex.submit(&tx.encode()).expect("admitted");
    }
    for i in 0..100u8 {
        ex.report_evidence([&[i, i][..], &vec![0; evidence_bytes.saturating_sub(2)]].concat());
    }
    let (_, head) = ex.head();
    let e = ex.propose(head, 1).expect("proposal");
    let _ = std::fs::remove_dir_all(&dir);
    Block::clone(&e.block)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]
    #[test]
    fn a_full_proposal_decodes(tx_kib in 100usize..1500, txs in 10usize..40, ev in 2usize..=MAX_EVIDENCE_BYTES, case in 0u32..1000) {
        let b = build(case, tx_kib << 10, txs, ev);
        let bytes = b.encode();
        prop_assert!(bytes.len() <= MAX_ENCODED);
        prop_assert_eq!(Block::decode(&bytes).expect("decodes"), b.clone());
        prop_assert_eq!(b.evidence.len(), MAX_BLOCK_EVIDENCE, "the pool is fuller than a block");
    }
}
