//! The multi-version memory: for every key, the values written by each transaction of the
//! block, so a reader at `tx_idx` sees the write of the highest transaction below it.
//!
//! An aborted incarnation's writes become ESTIMATE markers: a reader that hits one waits
//! for that transaction instead of reading a value that is probably about to change.

use crate::blockstm::types::{Incarnation, TxIdx, Version};
use dashmap::DashMap;
use parking_lot::Mutex;
use std::hash::Hash;

/// ahash with per-process random keys: fast on 33-byte keys, and keys chosen by users cannot
/// be aimed at one shard (HashDoS).
pub(crate) type Hasher = ahash::RandomState;

#[derive(Clone, Debug)]
enum Entry<V> {
    Write(Incarnation, V),
    Estimate,
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MvRead<V> {
    /// Written by an earlier transaction of the block.
    Value(Version, V),
    /// No earlier transaction wrote the key: read storage.
    Storage,
    /// An earlier transaction's write is an ESTIMATE.
    Dependency(TxIdx),
}

/// Where a read's value came from, for validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOrigin {
    Version(Version),
    Storage,
}

pub type ReadSet<K> = Vec<(K, ReadOrigin)>;

/// The versions of one key, sorted by transaction. Usually one or two entries, appended in
/// order, so a sorted vector beats a `BTreeMap` (whose first node is ~1 KiB to allocate), and
/// two are kept inline: most keys of a block cost no allocation of their own.
type Versions<V> = smallvec::SmallVec<[(TxIdx, Entry<V>); 2]>;

pub struct MvMemory<K, V> {
    data: DashMap<K, Versions<V>, Hasher>,
    last_written: Vec<Mutex<Vec<K>>>,
    last_read: Vec<Mutex<ReadSet<K>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> MvMemory<K, V> {
    pub fn new(block_size: usize) -> Self {
        Self {
            // Sized for a few keys per transaction up front: growing a shard rehashes it under
            // its write lock while the other workers wait.
            data: DashMap::with_capacity_and_hasher(block_size.saturating_mul(3), Hasher::new()),
            last_written: (0..block_size).map(|_| Mutex::new(Vec::new())).collect(),
            last_read: (0..block_size).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Store an incarnation's reads and writes; true if it wrote a key its previous
    /// incarnation did not (then later transactions must be revalidated).
    ///
    /// A write set that names a key twice keeps the last value, and each key is stored
    /// once: a reader must never see an intermediate value under the final version.
    pub fn record(&self, v: Version, reads: ReadSet<K>, mut writes: Vec<(K, V)>) -> bool {
        // Keep the last value of a repeated key. Write sets are small: quadratic scans
        // beat hashing here.
        let mut i = writes.len();
        while i > 0 {
            i -= 1;
            if writes[i + 1..].iter().any(|(k, _)| *k == writes[i].0) {
                writes.remove(i);
            }
        }
        let new_keys: Vec<K> = writes.iter().map(|(k, _)| k.clone()).collect();
        for (k, val) in writes {
            let mut vs = self.data.entry(k).or_default();
            match vs.binary_search_by_key(&v.tx_idx, |e| e.0) {
                Ok(i) => vs[i].1 = Entry::Write(v.incarnation, val),
                Err(i) => vs.insert(i, (v.tx_idx, Entry::Write(v.incarnation, val))),
            }
        }
        let mut prev = self.last_written[v.tx_idx].lock();
        for k in prev.iter().filter(|k| !new_keys.contains(k)) {
            if let Some(mut vs) = self.data.get_mut(k) {
                if let Ok(i) = vs.binary_search_by_key(&v.tx_idx, |e| e.0) {
                    vs.remove(i);
                }
            }
        }
        let wrote_new = new_keys.iter().any(|k| !prev.contains(k));
        *prev = new_keys;
        *self.last_read[v.tx_idx].lock() = reads;
        wrote_new
    }

    /// Mark every write of `tx_idx` as an ESTIMATE (its incarnation was aborted).
    pub fn convert_writes_to_estimates(&self, tx_idx: TxIdx) {
        for k in self.last_written[tx_idx].lock().iter() {
            if let Some(mut vs) = self.data.get_mut(k) {
                if let Ok(i) = vs.binary_search_by_key(&tx_idx, |e| e.0) {
                    vs[i].1 = Entry::Estimate;
                }
            }
        }
    }

    /// The value of `key` as transaction `tx_idx` should see it.
    pub fn read(&self, key: &K, tx_idx: TxIdx) -> MvRead<V> {
        let Some(vs) = self.data.get(key) else { return MvRead::Storage };
        let below = vs.partition_point(|e| e.0 < tx_idx);
        match below.checked_sub(1).map(|i| &vs[i]) {
            None => MvRead::Storage,
            Some((idx, Entry::Estimate)) => MvRead::Dependency(*idx),
            Some((idx, Entry::Write(inc, val))) => MvRead::Value(Version { tx_idx: *idx, incarnation: *inc }, val.clone()),
        }
    }

    /// Would the last incarnation of `tx_idx` read the same versions now?
    pub fn validate_read_set(&self, tx_idx: TxIdx) -> bool {
        let reads = self.last_read[tx_idx].lock();
        reads.iter().all(|(k, origin)| match (self.read(k, tx_idx), origin) {
            (MvRead::Value(v, _), ReadOrigin::Version(o)) => v == *o,
            (MvRead::Storage, ReadOrigin::Storage) => true,
            _ => false,
        })
    }

    /// The block's final writes: for each key, the value of its highest writer.
    pub fn into_final_writes(self) -> Vec<(K, V)> {
        self.data
            .into_iter()
            .filter_map(|(k, mut vs)| match vs.pop() {
                Some((_, Entry::Write(_, v))) => Some((k, v)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Record { tx: usize, keys: Vec<u8> },
        Estimate { tx: usize },
        Read { key: u8, tx: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8, proptest::collection::vec(0u8..6, 0..4)).prop_map(|(tx, keys)| Op::Record { tx, keys }),
            (0usize..8).prop_map(|tx| Op::Estimate { tx }),
            (0u8..6, 0usize..9).prop_map(|(key, tx)| Op::Read { key, tx }),
        ]
    }

    proptest! {
        /// Model-based test: the multi-version memory against a plain map of
        /// (key, tx) → (incarnation, value | estimate), read by linear scan.
        #[test]
        fn matches_a_naive_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mv = MvMemory::<u8, u64>::new(8);
            let mut model: HashMap<(u8, usize), Option<(usize, u64)>> = HashMap::new();
            let mut written: HashMap<usize, Vec<u8>> = HashMap::new();
            let mut incarnation = [0usize; 8];
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Record { tx, keys } => {
                        incarnation[tx] += 1;
                        let mut keys = keys;
                        keys.sort();
                        keys.dedup();
                        let val = step as u64;
                        let prev = written.insert(tx, keys.clone()).unwrap_or_default();
                        for k in &prev { if !keys.contains(k) { model.remove(&(*k, tx)); } }
                        for k in &keys { model.insert((*k, tx), Some((incarnation[tx], val))); }
                        let wrote_new = mv.record(Version { tx_idx: tx, incarnation: incarnation[tx] }, vec![], keys.iter().map(|&k| (k, val)).collect());
                        prop_assert_eq!(wrote_new, keys.iter().any(|k| !prev.contains(k)));
                    }
                    Op::Estimate { tx } => {
                        mv.convert_writes_to_estimates(tx);
                        for k in written.get(&tx).cloned().unwrap_or_default() { model.insert((k, tx), None); }
                    }
                    Op::Read { key, tx } => {
                        let want = (0..tx).rev().find_map(|t| model.get(&(key, t)).map(|e| (t, *e)));
                        let got = mv.read(&key, tx);
                        match want {
                            None => prop_assert_eq!(got, MvRead::Storage),
                            Some((t, None)) => prop_assert_eq!(got, MvRead::Dependency(t)),
                            Some((t, Some((inc, v)))) => prop_assert_eq!(got, MvRead::Value(Version { tx_idx: t, incarnation: inc }, v)),
                        }
                    }
                }
            }
        }
    }
}
