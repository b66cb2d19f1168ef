//! Block-STM must give exactly the sequential result: random blocks over small (heavy
//! contention) and large key universes, forced failures, 1–4 threads, repeated runs.

use aivm_runtime::blockstm::{execute_parallel, execute_sequential, ReadError, StateRead, Storage, TxVm};
use proptest::prelude::*;
use std::collections::HashMap;

/// A mock transaction: read some keys, then write `f(sum of reads)` to others.
#[derive(Clone, Debug)]
struct MockTx {
    reads: Vec<u32>,
    writes: Vec<u32>,
    salt: u64,
    /// Busy work, so executions overlap in time and abort more.
    spin: u32,
    /// A transaction that fails (discarding its writes) whenever what it read says so, like a
    /// contract that reverts on a balance check: failure depends on speculative reads.
    may_fail: bool,
}

struct MockVm;

impl TxVm for MockVm {
    type Tx = MockTx;
    type Key = u32;
    type Value = u64;
    type Output = u64;

    fn execute(&self, tx: &MockTx, view: &mut dyn StateRead<u32, u64>) -> Result<(u64, Vec<(u32, u64)>), ReadError> {
        let mut acc = tx.salt;
        for k in &tx.reads {
            let v = view.read(k)?.unwrap_or(*k as u64);
            acc = acc.wrapping_mul(31).wrapping_add(v);
        }
        let mut x = acc;
        for _ in 0..tx.spin {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if tx.may_fail && acc.is_multiple_of(3) {
            return Ok((u64::MAX, Vec::new()));
        }
        let writes = tx.writes.iter().enumerate().map(|(i, &k)| (k, acc.wrapping_add(i as u64) ^ (x & 1))).collect();
        Ok((acc, writes))
    }
}

struct MapStorage(HashMap<u32, u64>);

impl Storage<u32, u64> for MapStorage {
    fn get(&self, k: &u32) -> Option<u64> {
        self.0.get(k).copied()
    }
}

fn block(universe: u32, max_len: usize) -> impl Strategy<Value = Vec<MockTx>> {
    let tx = (proptest::collection::vec(0..universe, 0..4), proptest::collection::vec(0..universe, 0..4), any::<u64>(), 0u32..200, any::<bool>())
        .prop_map(|(reads, writes, salt, spin, may_fail)| MockTx { reads, writes, salt, spin, may_fail });
    proptest::collection::vec(tx, 0..max_len)
}

fn check(txs: &[MockTx]) -> Result<(), TestCaseError> {
    let storage = MapStorage((0..50).map(|k| (k, k as u64 * 1000)).collect());
    let want = execute_sequential(&MockVm, txs, &storage);
    for threads in 1..=4 {
        for _ in 0..3 {
            let (got, stats) = execute_parallel(&MockVm, txs, &storage, threads);
            prop_assert_eq!(&got, &want, "threads={} stats={:?}", threads, stats);
            prop_assert!(stats.executions >= txs.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn equals_sequential_under_heavy_contention(txs in block(3, 60)) {
        check(&txs)?;
    }

    #[test]
    fn equals_sequential_over_many_keys(txs in block(10_000, 120)) {
        check(&txs)?;
    }
}

#[test]
fn one_hot_key_chain_aborts_and_still_agrees() {
    // Every transaction reads and writes key 0: fully serial, maximal aborts.
    let txs: Vec<MockTx> = (0..300).map(|i| MockTx { reads: vec![0], writes: vec![0], salt: i, spin: 50, may_fail: i % 7 == 0 }).collect();
    let storage = MapStorage(HashMap::new());
    let want = execute_sequential(&MockVm, &txs, &storage);
    for threads in [2, 4] {
        let (got, stats) = execute_parallel(&MockVm, &txs, &storage, threads);
        assert_eq!(got, want);
        assert!(stats.executions >= 300);
    }
    let (got, _) = execute_parallel(&MockVm, &[], &storage, 2);
    assert!(got.outputs.is_empty() && got.writes.is_empty());
}
