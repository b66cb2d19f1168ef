//! The state one speculative execution reads: the multi-version memory first, then storage.
//! Every read is recorded with its origin so the incarnation can be validated later.

use crate::blockstm::mv_memory::{MvMemory, MvRead, ReadOrigin, ReadSet};
use crate::blockstm::profile::{timed, Step};
use crate::blockstm::types::{ReadError, StateRead, Storage, TxIdx};
use std::hash::Hash;

pub struct MvView<'a, K, V, S> {
    pub(crate) tx_idx: TxIdx,
    pub(crate) mv: &'a MvMemory<K, V>,
    pub(crate) storage: &'a S,
    pub(crate) reads: ReadSet<K>,
}

impl<K: Eq + Hash + Clone, V: Clone, S: Storage<K, V>> StateRead<K, V> for MvView<'_, K, V, S> {
    fn read(&mut self, key: &K) -> Result<Option<V>, ReadError> {
        let found = timed(Step::MvRead, || {
            let found = self.mv.read(key, self.tx_idx);
            match &found {
                MvRead::Value(v, _) => self.reads.push((key.clone(), ReadOrigin::Version(*v))),
                MvRead::Storage => self.reads.push((key.clone(), ReadOrigin::Storage)),
                MvRead::Dependency(_) => {}
            }
            found
        });
        match found {
            MvRead::Value(_, val) => Ok(Some(val)),
            MvRead::Storage => Ok(timed(Step::StorageRead, || self.storage.get(key))),
            MvRead::Dependency(blocking) => Err(ReadError { blocking }),
        }
    }
}

/// Sequential view: storage plus the writes of earlier transactions.
pub struct SeqView<'a, K, V, S> {
    pub(crate) writes: &'a std::collections::HashMap<K, V, crate::blockstm::mv_memory::Hasher>,
    pub(crate) storage: &'a S,
}

impl<K: Eq + Hash, V: Clone, S: Storage<K, V>> StateRead<K, V> for SeqView<'_, K, V, S> {
    fn read(&mut self, key: &K) -> Result<Option<V>, ReadError> {
        match self.writes.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => Ok(timed(Step::StorageRead, || self.storage.get(key))),
        }
    }
}
