//! A simple in-memory contract state, for one-off calls and tests.

use crate::host::{StateView, WriteSet};
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

    /// A read-only view for a call.
    pub fn view(&self) -> Box<dyn StateView> {
        Box::new(self.clone())
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
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
}
