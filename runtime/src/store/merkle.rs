//! The Merkle state root: a Jellyfish Merkle tree (crate `jmt`, SHA-256) over
//! `(SHA-256(key bytes), SHA-256(value bytes))`, one tree version per block height.
//! `spec/state.md` defines the root; this file adapts the tree to our column families.
//!
//! Only the latest version is kept: the nodes a block makes stale are deleted in the same
//! write batch that commits the block, so proofs are served against the latest root.

use super::{cf, Store, StoreError, CF_JMT_KEYS, CF_JMT_NODES, CF_STATE};
use crate::state::StateKey;
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use rocksdb::WriteBatch;

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

impl Store {
    /// Apply `changes` (encoded key, encoded value or `None` to delete) as tree version
    /// `version`, adding the new nodes and deleting the stale ones in `batch`.
    pub(super) fn update_tree(&self, version: Version, changes: &[(Vec<u8>, Option<Vec<u8>>)], batch: &mut WriteBatch) -> Result<[u8; 32], StoreError> {
        let tree = Sha256Jmt::new(self);
        let set = changes.iter().map(|(k, v)| (KeyHash::with::<sha2::Sha256>(k), v.clone()));
        let (root, update): (_, TreeUpdateBatch) = tree.put_value_set(set, version).map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        let nodes = cf(&self.db, CF_JMT_NODES)?;
        for stale in &update.stale_node_index_batch {
            batch.delete_cf(nodes, borsh::to_vec(&stale.node_key).map_err(StoreError::encode)?);
        }
        for (key, node) in update.node_batch.nodes() {
            batch.put_cf(nodes, borsh::to_vec(key).map_err(StoreError::encode)?, borsh::to_vec(node).map_err(StoreError::encode)?);
        }
        let keys = cf(&self.db, CF_JMT_KEYS)?;
        for (k, v) in changes {
            let h = KeyHash::with::<sha2::Sha256>(k).0;
            match v {
                Some(_) => batch.put_cf(keys, h, k),
                None => batch.delete_cf(keys, h),
            }
        }
        Ok(root.0)
    }

    /// The value of `key` and a proof of it (or of its absence) under the latest root.
    pub fn prove(&self, key: &StateKey) -> Result<(Option<Vec<u8>>, StateProof), StoreError> {
        let head = self.head().ok_or(StoreError::Empty)?;
        let tree = Sha256Jmt::new(self);
        tree.get_with_proof(key_hash(key), head.height).map_err(|e| StoreError::Merkle(format!("{e:#}")))
    }
}
