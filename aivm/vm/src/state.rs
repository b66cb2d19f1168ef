//! A simple in-memory contract state, for one-off calls and tests.

use crate::host::{ReadBlocked, StateView, WriteSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Key-value storage of one contract. Cheap to snapshot (the map is behind an `Arc`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    map: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemState {
    pub fn from_map(map: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        Self { map: Arc::new(map) }
    }

    pub fn map(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.map
    }

    /// Apply a successful call's writes.
    pub fn apply(&mut self, writes: &WriteSet) {
        let map = Arc::make_mut(&mut self.map);
        for (k, v) in writes {
            match v {
                Some(v) => map.insert(k.clone(), v.clone()),
                None => map.remove(k),
            };
        }
    }
}

impl StateView for MemState {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadBlocked> {
        Ok(self.map.get(key).cloned())
    }
}
