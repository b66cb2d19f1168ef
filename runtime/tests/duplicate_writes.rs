//! Regression: a transaction whose write set names a key twice (different values). Storing
//! both values one after the other let a concurrent reader see the first value under the
//! final version, which validation then accepted. Many small blocks on 2 threads.

use aivm_runtime::blockstm::{execute_parallel, execute_sequential, ReadError, StateRead, Storage, TxVm};

#[derive(Clone, Debug)]
struct MockTx {
    reads: Vec<u32>,
    writes: Vec<u32>,
    salt: u64,
}

struct MockVm;

impl TxVm for MockVm {
    type Tx = MockTx;
    type Key = u32;
    type Value = u64;
    type Output = Vec<u64>;

    fn execute(&self, tx: &MockTx, view: &mut dyn StateRead<u32, u64>) -> Result<(Vec<u64>, Vec<(u32, u64)>), ReadError> {
        let mut seen = vec![];
        for k in &tx.reads {
            seen.push(view.read(k)?.unwrap_or(*k as u64));
        }
        for _ in 0..(tx.salt % 100) {
            std::hint::black_box(0);
        }
        // The j-th write of a key differs from the others: only the last may be visible.
        let writes = tx.writes.iter().enumerate().map(|(j, &k)| (k, tx.salt * 1000 + j as u64)).collect();
        Ok((seen, writes))
    }
}

struct Identity;

impl Storage<u32, u64> for Identity {
    fn get(&self, k: &u32) -> Option<u64> {
        Some(*k as u64)
    }
}

#[test]
fn repeated_keys_in_a_write_set_never_leak_intermediate_values() {
    let mut s = 1u64;
    let mut r = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s >> 33
    };
    for _ in 0..3000 {
        let txs: Vec<MockTx> = (0..20)
            .map(|i| MockTx { reads: (0..r() % 3).map(|_| (r() % 3) as u32).collect(), writes: (0..r() % 3).map(|_| (r() % 3) as u32).collect(), salt: i })
            .collect();
        let want = execute_sequential(&MockVm, &txs, &Identity);
        let (got, stats) = execute_parallel(&MockVm, &txs, &Identity, 2);
        assert_eq!(got, want, "{stats:?} {txs:?}");
    }
}
