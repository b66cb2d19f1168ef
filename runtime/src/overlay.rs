//! Committed state plus pending writes, read one transaction or query at a time: the view
//! for read-only queries and for development tools that apply writes directly.

use crate::blockstm::{ReadError, StateRead};
use crate::state::{StateKey, StateValue};
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;

pub struct Overlay<'a> {
    store: &'a Store,
    pub writes: BTreeMap<StateKey, StateValue>,
    error: Option<StoreError>,
}

impl<'a> Overlay<'a> {
    pub fn new(store: &'a Store) -> Self {
        Overlay { store, writes: BTreeMap::new(), error: None }
    }

    /// The first storage error a read hit (the read itself answered "absent").
    pub fn take_error(&mut self) -> Option<StoreError> {
        self.error.take()
    }
}

impl StateRead<StateKey, StateValue> for Overlay<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(Some(v.clone()));
        }
        match self.store.get(key) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.error.get_or_insert(e);
                Ok(None)
            }
        }
    }
}
