//! Names from the paper, and the interface between the executor and a VM.

use std::hash::Hash;

/// Position of a transaction in the block.
pub type TxIdx = usize;
/// How many times a transaction has been (re-)executed.
pub type Incarnation = usize;

/// One execution of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    pub tx_idx: TxIdx,
    pub incarnation: Incarnation,
}

/// A read hit an ESTIMATE written by `blocking`: the reader must wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub blocking: TxIdx,
}

/// State as of the start of the block.
pub trait Storage<K, V>: Sync {
    fn get(&self, key: &K) -> Option<V>;
}

/// What a transaction can read while it executes.
pub trait StateRead<K, V> {
    /// The latest value written by an earlier transaction of the block, or storage's.
    fn read(&mut self, key: &K) -> Result<Option<V>, ReadError>;
}

/// A deterministic transaction VM: the same reads give the same output and writes.
pub trait TxVm: Sync {
    type Tx: Sync;
    type Key: Eq + Hash + Ord + Clone + Send + Sync;
    type Value: Clone + PartialEq + Send + Sync;
    type Output: Clone + Send + Sync;

    /// Execute `tx`, reading through `view`. A `ReadError` must be propagated unchanged.
    #[allow(clippy::type_complexity)]
    fn execute(&self, tx: &Self::Tx, view: &mut dyn StateRead<Self::Key, Self::Value>) -> Result<(Self::Output, Vec<(Self::Key, Self::Value)>), ReadError>;
}
