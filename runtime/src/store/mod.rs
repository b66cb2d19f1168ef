//! Persistent state in RocksDB. Column families:
//!
//! | family      | key                    | value                                  |
//! |-------------|------------------------|----------------------------------------|
//! | `state`     | encoded [`StateKey`]   | encoded value                          |
//! | `jmt_nodes` | borsh `NodeKey`        | borsh `Node` (the Merkle tree)         |
//! | `jmt_keys`  | key hash               | encoded key (to answer proofs)         |
//! | `blocks`    | height, big-endian     | the block record (CBOR, `block.rs`)    |
//! | `meta`      | `head`                 | height (8 bytes BE) and state root     |
//! | `txs`       | transaction hash       | height (8 bytes BE), index (4 bytes BE)|
//!
//! Each block is one `WriteBatch` written with `sync`: after a crash the database holds
//! exactly the blocks whose commit returned, and the head always matches the tree.

pub mod merkle;
pub mod snapshot;

pub use merkle::TreeDelta;

use crate::blockstm::Storage;
use crate::state::{DecodeError, StateKey, StateValue};
use parking_lot::{Mutex, RwLock};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;

pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_JMT_NODES: &str = "jmt_nodes";
pub(crate) const CF_JMT_KEYS: &str = "jmt_keys";
pub(crate) const CF_BLOCKS: &str = "blocks";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_TXS: &str = "txs";
const FAMILIES: [&str; 6] = [CF_STATE, CF_JMT_NODES, CF_JMT_KEYS, CF_BLOCKS, CF_META, CF_TXS];
const HEAD: &[u8] = b"head";
/// Data blocks kept in memory, shared by every family. Index and filter blocks are not in it:
/// with every table file open (RocksDB's default) they stay in memory beside it.
const BLOCK_CACHE_BYTES: usize = 256 << 20;
/// Bloom filter bits per key (~1% false positives): a point read of a key that is not in a
/// table file skips it without reading its data block. Without filters a read of a large state
/// visited every level's file on disk (`gas-bench --adversarial --only "cold storage"`).
const BLOOM_BITS_PER_KEY: f64 = 10.0;
const HEAD_LABEL: &[u8] = b"head-label";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt database: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("merkle tree: {0}")]
    Merkle(String),
    #[error("block {got} does not follow the head (expected {expected})")]
    NotNext { expected: u64, got: u64 },
    #[error("the database holds no block yet")]
    Empty,
}

impl StoreError {
    fn encode(e: std::io::Error) -> Self {
        StoreError::Merkle(format!("encoding a tree node: {e}"))
    }
}

/// The last committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub state_root: [u8; 32],
}

pub struct Store {
    db: DB,
    head: RwLock<Option<Head>>,
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name).ok_or_else(|| StoreError::Corrupt(format!("column family {name} missing")))
}

impl Store {
    /// Write every memtable and the write-ahead log to disk (a clean shutdown; RocksDB's WAL
    /// already makes each commit durable, this makes the next start skip the replay).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        for name in FAMILIES {
            self.db.flush_cf(cf(&self.db, name)?)?;
        }
        Ok(())
    }

    /// Open (or create) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families = FAMILIES.iter().map(|n| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            let mut family = Options::default();
            family.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*n, family)
        });
        let db = DB::open_cf_descriptors(&opts, path, families)?;
        let head = Self::read_head(&db)?;
        Ok(Store { db, head: RwLock::new(head) })
    }

    fn read_head(db: &DB) -> Result<Option<Head>, StoreError> {
        Ok(match db.get_cf(cf(db, CF_META)?, HEAD)? {
            None => None,
            Some(b) if b.len() == 40 => {
                let height = u64::from_be_bytes(b[..8].try_into().map_err(|_| StoreError::Corrupt("head".into()))?);
                let state_root = b[8..].try_into().map_err(|_| StoreError::Corrupt("head".into()))?;
                Some(Head { height, state_root })
            }
            Some(b) => return Err(StoreError::Corrupt(format!("head record is {} bytes", b.len()))),
        })
    }

    pub fn head(&self) -> Option<Head> {
        *self.head.read()
    }

    pub fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StoreError> {
        match self.db.get_pinned_cf(cf(&self.db, CF_STATE)?, key.encode())? {
            Some(b) => Ok(Some(StateValue::decode(key, &b)?)),
            None => Ok(None),
        }
    }

    /// Every state entry in key order (consistency checks and tools; reads the whole state).
    pub fn entries(&self) -> Result<Vec<(StateKey, StateValue)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, CF_STATE)?, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            let key = StateKey::decode(&k)?;
            let value = StateValue::decode(&key, &v)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The record stored with block `height`.
    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(cf(&self.db, CF_BLOCKS)?, height.to_be_bytes())?)
    }

    /// The label the last labelled commit recorded (see [`Store::commit_labelled`]).
    pub fn head_label(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(cf(&self.db, CF_META)?, HEAD_LABEL)?)
    }

    /// Where the transaction with this hash was committed: block height and index.
    pub fn tx_location(&self, tx_hash: &[u8; 32]) -> Result<Option<(u64, u32)>, StoreError> {
        let Some(b) = self.db.get_cf(cf(&self.db, CF_TXS)?, tx_hash)? else { return Ok(None) };
        if b.len() != 12 {
            return Err(StoreError::Corrupt(format!("tx index entry is {} bytes", b.len())));
        }
        let height = u64::from_be_bytes(b[..8].try_into().map_err(|_| StoreError::Corrupt("tx index".into()))?);
        let index = u32::from_be_bytes(b[8..].try_into().map_err(|_| StoreError::Corrupt("tx index".into()))?);
        Ok(Some((height, index)))
    }

    /// Stage block `height`'s state writes and tree update on the committed head, computing
    /// its state root. Nothing is written until [`Store::commit`]. Heights start at 0
    /// (genesis) and go up by one.
    pub fn prepare(&self, height: u64, writes: &[(StateKey, StateValue)]) -> Result<Prepared, StoreError> {
        let delta = self.tree_update(height, &[], writes)?;
        self.prepare_delta(&delta)
    }

    /// Write a prepared block with its record, the index of its transactions (`tx_hashes[i]`
    /// for the receipt at `i`; `None` leaves the index as it is) and the new head, in one synced
    /// `WriteBatch`, also recording `label` for the new head (a node keeps its consensus block
    /// digest there, so that it survives a crash exactly when the block does).
    pub fn commit_labelled(&self, prepared: Prepared, record: &[u8], tx_hashes: &[Option<[u8; 32]>], label: Option<&[u8]>) -> Result<Head, StoreError> {
        let Prepared { mut batch, head } = prepared;
        let expected = self.head().map_or(0, |h| h.height + 1);
        if head.height != expected {
            return Err(StoreError::NotNext { expected, got: head.height });
        }
        batch.put_cf(cf(&self.db, CF_BLOCKS)?, head.height.to_be_bytes(), record);
        let txs = cf(&self.db, CF_TXS)?;
        for (i, h) in tx_hashes.iter().enumerate() {
            let Some(h) = h else { continue };
            let index = u32::try_from(i).map_err(|_| StoreError::Corrupt("block holds over 2^32 transactions".into()))?;
            batch.put_cf(txs, h, [&head.height.to_be_bytes()[..], &index.to_be_bytes()].concat());
        }
        batch.put_cf(cf(&self.db, CF_META)?, HEAD, [&head.height.to_be_bytes()[..], &head.state_root].concat());
        if let Some(label) = label {
            batch.put_cf(cf(&self.db, CF_META)?, HEAD_LABEL, label);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        *self.head.write() = Some(head);
        Ok(head)
    }
}

/// A block's staged writes and the head it will make; see [`Store::prepare`].
pub struct Prepared {
    batch: WriteBatch,
    pub head: Head,
}

/// Writes of one executed block, sorted by key with no duplicates.
pub type Writes = Vec<(StateKey, StateValue)>;

/// The store as Block-STM's base state, seen through the writes of uncommitted ancestor
/// blocks (`layers`, oldest first). `Storage::get` cannot fail, so the first error is kept
/// here and the block is abandoned after execution (nothing is committed).
pub struct StoreReader<'a> {
    store: &'a Store,
    layers: &'a [std::sync::Arc<Writes>],
    error: Mutex<Option<StoreError>>,
}

impl<'a> StoreReader<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self::layered(store, &[])
    }

    pub fn layered(store: &'a Store, layers: &'a [std::sync::Arc<Writes>]) -> Self {
        StoreReader { store, layers, error: Mutex::new(None) }
    }

    /// The first read error, if any.
    pub fn into_error(self) -> Option<StoreError> {
        self.error.into_inner()
    }
}

impl Storage<StateKey, StateValue> for StoreReader<'_> {
    fn get(&self, key: &StateKey) -> Option<StateValue> {
        for layer in self.layers.iter().rev() {
            if let Ok(i) = layer.binary_search_by(|(k, _)| k.cmp(key)) {
                return match &layer[i].1 {
                    StateValue::Deleted => None,
                    v => Some(v.clone()),
                };
            }
        }
        match self.store.get(key) {
            Ok(v) => v,
            Err(e) => {
                let mut slot = self.error.lock();
                slot.get_or_insert(e);
                None
            }
        }
    }
}
