//! The Merkle state root: a Jellyfish Merkle tree (crate `jmt`, SHA-256) over
//! `(SHA-256(key bytes), SHA-256(value bytes))`, one tree version per block height.
//! `spec/state.md` defines the root; this file adapts the tree to our column families.
//!
//! Only the latest version is kept: the nodes a block makes stale are deleted in the same
//! write batch that commits the block, so proofs are served against the latest root.

use super::{cf, Head, Prepared, Store, StoreError, CF_JMT_KEYS, CF_JMT_NODES, CF_STATE};
use crate::state::StateKey;
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use rocksdb::WriteBatch;
use std::sync::Arc;

/// The tree's key for a state key.
pub fn key_hash(key: &StateKey) -> KeyHash {
    KeyHash::with::<sha2::Sha256>(key.encode())
}

/// A proof that a key holds a value (or none) under a state root.
pub type StateProof = jmt::proof::SparseMerkleProof<sha2::Sha256>;

/// Check `proof` that `key` holds `value` (`None`: absent) under `root`.
pub fn verify_proof(root: [u8; 32], key: &StateKey, value: Option<&[u8]>, proof: &StateProof) -> bool {
    proof.verify(jmt::RootHash(root), key_hash(key), value).is_ok()
}

impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let k = borsh::to_vec(node_key)?;
        match self.db.get_cf(cf(&self.db, CF_JMT_NODES)?, k)? {
            Some(b) => Ok(Some(borsh::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    /// Values of the latest version only (see the module doc): key hash → key → state.
    fn get_value_option(&self, _max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        let Some(key) = self.db.get_cf(cf(&self.db, CF_JMT_KEYS)?, key_hash.0)? else { return Ok(None) };
        Ok(self.db.get_cf(cf(&self.db, CF_STATE)?, key)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("state sync by tree restore is not supported")
    }
}

/// One block's state writes and tree update, computed once when the block executes (on its
/// parent's tree: the committed nodes plus its uncommitted ancestors' updates) and written as
/// they are when it commits, so a block costs one tree update, not a preview and a redo.
pub struct TreeDelta {
    /// The block's height: the tree version its nodes carry.
    pub height: u64,
    pub root: [u8; 32],
    /// Encoded state keys and values (`None`: removed), sorted by key.
    changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    nodes: NodeBatch,
    stale: Vec<NodeKey>,
}

impl std::fmt::Debug for TreeDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeDelta").field("height", &self.height).field("root", &hex::encode(self.root)).field("changes", &self.changes.len()).finish()
    }
}

/// The committed tree seen through uncommitted blocks' updates (oldest first).
struct Layered<'a> {
    store: &'a Store,
    ancestors: &'a [Arc<TreeDelta>],
}

impl TreeReader for Layered<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        for d in self.ancestors.iter().rev() {
            if let Some(n) = d.nodes.get_node(node_key) {
                return Ok(Some(n.clone()));
            }
        }
        self.store.get_node_option(node_key)
    }

    /// Updates read nodes only; values are read for proofs, which are served on committed state.
    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        self.store.get_value_option(max_version, key_hash)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("state sync by tree restore is not supported")
    }
}

impl Store {
    /// Block `height`'s tree update for `writes` (sorted by key, no duplicates), on the
    /// committed tree plus `ancestors`: the updates of the uncommitted blocks between the
    /// committed head and `height` (oldest first). Node hashes do not depend on versions, so
    /// the root is the same however many blocks are uncommitted.
    pub fn tree_update(&self, height: u64, ancestors: &[Arc<TreeDelta>], writes: &[(StateKey, crate::state::StateValue)]) -> Result<TreeDelta, StoreError> {
        let next = self.head().map_or(0, |h| h.height + 1);
        let consecutive = ancestors.iter().enumerate().all(|(i, d)| d.height == next + i as u64);
        if !consecutive || next + ancestors.len() as u64 != height {
            return Err(StoreError::NotNext { expected: next + ancestors.len() as u64, got: height });
        }
        let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = writes.iter().map(|(k, v)| (k.encode(), v.encode())).collect();
        let reader = Layered { store: self, ancestors };
        let tree = Sha256Jmt::new(&reader);
        let set = changes.iter().map(|(k, v)| (KeyHash::with::<sha2::Sha256>(k), v.clone()));
        let (root, update): (_, TreeUpdateBatch) = tree.put_value_set(set, height).map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        let stale = update.stale_node_index_batch.into_iter().map(|s| s.node_key).collect();
        Ok(TreeDelta { height, root: root.0, changes, nodes: update.node_batch, stale })
    }

    /// Stage a block's [`TreeDelta`] (computed when it executed) for [`Store::commit_labelled`]:
    /// its state writes, new nodes, stale nodes removed, key index. Its parent must be the head.
    pub fn prepare_delta(&self, delta: &TreeDelta) -> Result<Prepared, StoreError> {
        let expected = self.head().map_or(0, |h| h.height + 1);
        if delta.height != expected {
            return Err(StoreError::NotNext { expected, got: delta.height });
        }
        let mut batch = WriteBatch::default();
        let state = cf(&self.db, CF_STATE)?;
        let keys = cf(&self.db, CF_JMT_KEYS)?;
        for (k, v) in &delta.changes {
            let h = KeyHash::with::<sha2::Sha256>(k).0;
            match v {
                Some(v) => {
                    batch.put_cf(state, k, v);
                    batch.put_cf(keys, h, k);
                }
                None => {
                    batch.delete_cf(state, k);
                    batch.delete_cf(keys, h);
                }
            }
        }
        let nodes = cf(&self.db, CF_JMT_NODES)?;
        for stale in &delta.stale {
            batch.delete_cf(nodes, borsh::to_vec(stale).map_err(StoreError::encode)?);
        }
        for (key, node) in delta.nodes.nodes() {
            batch.put_cf(nodes, borsh::to_vec(key).map_err(StoreError::encode)?, borsh::to_vec(node).map_err(StoreError::encode)?);
        }
        Ok(Prepared { batch, head: Head { height: delta.height, state_root: delta.root } })
    }

    /// The value of `key` and a proof of it (or of its absence) under the latest root.
    pub fn prove(&self, key: &StateKey) -> Result<(Option<Vec<u8>>, StateProof), StoreError> {
        let head = self.head().ok_or(StoreError::Empty)?;
        let tree = Sha256Jmt::new(self);
        tree.get_with_proof(key_hash(key), head.height).map_err(|e| StoreError::Merkle(format!("{e:#}")))
    }
}
