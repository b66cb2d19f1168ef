//! State snapshots for state sync (`spec/state.md` §State sync). A serving node keeps RocksDB
//! checkpoints of its store at chosen heights ([`Store::checkpoint`]: hard links, so the live
//! database moves on while the checkpoint stays the state at that height) and serves one in
//! chunks ([`Store::chunk`]): entries in key-hash order, each chunk with a range proof against
//! the snapshot's state root. A joining node rebuilds the tree from the chunks ([`Restore`],
//! jmt's restore: every chunk is checked against the root before anything of it is written,
//! and the finished tree's root is compared with it), so a serving peer can make the join
//! fail but cannot make it accept a state the network did not finalize.

use super::{cf, Head, Store, StoreError, CF_BLOCKS, CF_JMT_KEYS, CF_JMT_NODES, CF_META, CF_STATE, FAMILIES, HEAD, HEAD_LABEL};
use crate::state::{StateKey, StateValue};
use jmt::restore::{JellyfishMerkleRestore, StateSnapshotReceiver};
use jmt::storage::{NodeBatch, TreeWriter};
use jmt::{KeyHash, RootHash, Sha256Jmt};
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::sync::Arc;

/// Most entries one chunk holds.
pub const MAX_CHUNK_ENTRIES: usize = 4096;
/// A chunk stops growing once its keys and values reach this many bytes (the entry that
/// crosses it is kept, so a chunk always holds at least one entry: a contract's code is at most
/// `MAX_TX_BYTES`, well under the RPC's response limit).
pub const MAX_CHUNK_BYTES: usize = 2 << 20;

/// Entries of a snapshot from one key hash on, with their range proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Encoded state keys and values, in increasing key-hash order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Borsh of jmt's `SparseMerkleRangeProof` for the last entry's key hash.
    pub proof: Vec<u8>,
    /// No entry follows (the receiver checks this by the root, not by trusting the flag).
    pub last: bool,
}

impl Store {
    /// Write a consistent copy of the committed state to `dir` (which must not exist): a RocksDB
    /// checkpoint, made of hard links to the live table files, flushed first.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        cp.create_checkpoint(dir)?;
        Ok(())
    }

    /// Open a checkpoint (or any store) read-only.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let db = DB::open_cf_for_read_only(&Options::default(), dir, FAMILIES, false)?;
        let head = Self::read_head(&db)?;
        Ok(Store { db, head: parking_lot::RwLock::new(head) })
    }

    /// The entries after key hash `after` (from the first if `None`), at most
    /// [`MAX_CHUNK_ENTRIES`] or about [`MAX_CHUNK_BYTES`], proven against the head's root.
    pub fn chunk(&self, after: Option<[u8; 32]>) -> Result<Chunk, StoreError> {
        let head = self.head().ok_or(StoreError::Empty)?;
        let keys = cf(&self.db, CF_JMT_KEYS)?;
        let state = cf(&self.db, CF_STATE)?;
        let mode = match &after {
            Some(h) => rocksdb::IteratorMode::From(h, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let (mut entries, mut bytes, mut last_hash, mut last) = (Vec::new(), 0usize, None, true);
        for item in self.db.iterator_cf(keys, mode) {
            let (hash, key) = item?;
            if after.as_ref().is_some_and(|a| a[..] == hash[..]) {
                continue;
            }
            if entries.len() >= MAX_CHUNK_ENTRIES || bytes >= MAX_CHUNK_BYTES {
                last = false;
                break;
            }
            let hash: [u8; 32] = hash[..].try_into().map_err(|_| StoreError::Corrupt("key index entry is not a hash".into()))?;
            let value = self.db.get_cf(state, &key)?.ok_or_else(|| StoreError::Corrupt("indexed key has no value".into()))?;
            bytes += key.len() + value.len();
            entries.push((key.to_vec(), value));
            last_hash = Some(hash);
        }
        let Some(last_hash) = last_hash else { return Err(StoreError::Merkle("no entries after the given key hash".into())) };
        let proof = Sha256Jmt::new(self).get_range_proof(KeyHash(last_hash), head.height).map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        let proof = borsh::to_vec(&proof).map_err(StoreError::encode)?;
        Ok(Chunk { entries, proof, last })
    }
}

/// Writes the nodes jmt's restore freezes into the tree's column family (values are written
/// by [`Restore::add_chunk`] with their keys).
struct NodeSink(Arc<Store>);

impl TreeWriter for NodeSink {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let nodes = cf(&self.0.db, CF_JMT_NODES)?;
        let mut wb = WriteBatch::default();
        for (key, node) in batch.nodes() {
            wb.put_cf(nodes, borsh::to_vec(key)?, borsh::to_vec(node)?);
        }
        self.0.db.write(wb)?;
        Ok(())
    }
}

/// A state being rebuilt from a snapshot's chunks into an empty store.
pub struct Restore {
    store: Arc<Store>,
    tree: JellyfishMerkleRestore<sha2::Sha256>,
    height: u64,
    root: [u8; 32],
    after: Option<[u8; 32]>,
    entries: u64,
}

impl Restore {
    /// Start rebuilding the state of height `height` whose root is `root` (from a finalized
    /// block the caller has checked). The store must hold nothing.
    pub fn begin(store: Arc<Store>, height: u64, root: [u8; 32]) -> Result<Self, StoreError> {
        if store.head().is_some() || store.db.iterator_cf(cf(&store.db, CF_STATE)?, rocksdb::IteratorMode::Start).next().is_some() {
            return Err(StoreError::Corrupt("state sync restores into an empty store only".into()));
        }
        let tree = JellyfishMerkleRestore::new_overwrite(Arc::new(NodeSink(Arc::clone(&store))), height, RootHash(root))
            .map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        Ok(Restore { store, tree, height, root, after: None, entries: 0 })
    }

    /// The key hash the next chunk must start after (`None`: the first chunk).
    pub fn after(&self) -> Option<[u8; 32]> {
        self.after
    }

    /// Entries restored so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Check a chunk against the root and write it. Entries must be valid state entries in
    /// increasing key-hash order after [`Restore::after`], and the proof must show that they
    /// and every entry before them are exactly the tree's leftmost leaves. Nothing of a chunk
    /// that fails is written.
    pub fn add_chunk(&mut self, chunk: &Chunk) -> Result<(), StoreError> {
        if chunk.entries.is_empty() {
            return Err(StoreError::Merkle("an empty chunk".into()));
        }
        let proof: jmt::proof::SparseMerkleRangeProof<sha2::Sha256> =
            borsh::from_slice(&chunk.proof).map_err(|e| StoreError::Merkle(format!("range proof: {e}")))?;
        let mut leaves = Vec::with_capacity(chunk.entries.len());
        for (k, v) in &chunk.entries {
            let key = StateKey::decode(k)?;
            StateValue::decode(&key, v)?;
            let hash = KeyHash::with::<sha2::Sha256>(k);
            if self.after.is_some_and(|a| hash.0 <= a) || leaves.last().is_some_and(|(h, _): &(KeyHash, Vec<u8>)| hash.0 <= h.0) {
                return Err(StoreError::Merkle("chunk entries out of key-hash order".into()));
            }
            leaves.push((hash, v.clone()));
        }
        let last = leaves.last().map(|(h, _)| h.0);
        // The restore checks the proof after taking the leaves in; its internal assertions are
        // not meant for hostile input, so a panic is an invalid chunk like a failed proof.
        let tree = &mut self.tree;
        let added = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tree.add_chunk(leaves, proof)));
        match added {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StoreError::Merkle(format!("chunk does not verify against the root: {e:#}"))),
            Err(_) => return Err(StoreError::Merkle("chunk does not verify against the root".into())),
        }
        let (state, keys) = (cf(&self.store.db, CF_STATE)?, cf(&self.store.db, CF_JMT_KEYS)?);
        let mut wb = WriteBatch::default();
        for (k, v) in &chunk.entries {
            wb.put_cf(state, k, v);
            wb.put_cf(keys, KeyHash::with::<sha2::Sha256>(k).0, k);
        }
        self.store.db.write(wb)?;
        self.after = last;
        self.entries += chunk.entries.len() as u64;
        Ok(())
    }

    /// Finish: the rebuilt tree's root must be the expected one (a server that stopped early
    /// fails here). Then the head block's record and `label` are written with the head, synced.
    pub fn finish(self, record: &[u8], label: &[u8]) -> Result<Head, StoreError> {
        let Restore { store, tree, height, root, .. } = self;
        tree.finish().map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        let got = Sha256Jmt::new(&*store).get_root_hash_option(height).map_err(|e| StoreError::Merkle(format!("{e:#}")))?;
        if got.map(|r| r.0) != Some(root) {
            return Err(StoreError::Merkle("the restored state's root differs from the snapshot's (incomplete or wrong chunks)".into()));
        }
        let head = Head { height, state_root: root };
        let mut wb = WriteBatch::default();
        wb.put_cf(cf(&store.db, CF_BLOCKS)?, height.to_be_bytes(), record);
        wb.put_cf(cf(&store.db, CF_META)?, HEAD, [&height.to_be_bytes()[..], &root].concat());
        wb.put_cf(cf(&store.db, CF_META)?, HEAD_LABEL, label);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        store.db.write_opt(wb, &wo)?;
        *store.head.write() = Some(head);
        store.flush()?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Account;

    fn account(i: u32) -> StateKey {
        let mut a = [0u8; 32];
        a[..4].copy_from_slice(&i.to_le_bytes());
        StateKey::Account(a)
    }

    fn funded(balance: u128) -> StateValue {
        StateValue::Account(Account { balance, ..Account::default() })
    }

    /// A store with `n` accounts over three blocks (one removal), and its checkpoint.
    fn served(dir: &Path, n: u32) -> (Store, Store) {
        let live = Store::open(dir.join("live")).expect("open");
        let mut writes: Vec<_> = (0..n).map(|i| (account(i), funded(i as u128 + 1))).collect();
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let p = live.prepare(0, &writes).expect("genesis");
        live.commit_labelled(p, b"r0", &[], None).expect("commit");
        let mut w1 = vec![(account(1), funded(7)), (account(n + 5), funded(9))];
        w1.sort_by(|a, b| a.0.cmp(&b.0));
        let p = live.prepare(1, &w1).expect("block 1");
        live.commit_labelled(p, b"r1", &[], Some(b"d1")).expect("commit");
        let p = live.prepare(2, &[(account(2), StateValue::Deleted)]).expect("block 2");
        live.commit_labelled(p, b"r2", &[], Some(b"d2")).expect("commit");
        live.checkpoint(&dir.join("cp")).expect("checkpoint");
        // The live store moves on; the checkpoint stays at height 2.
        let p = live.prepare(3, &[(account(3), funded(1))]).expect("block 3");
        live.commit_labelled(p, b"r3", &[], Some(b"d3")).expect("commit");
        let cp = Store::open_read_only(&dir.join("cp")).expect("open checkpoint");
        (live, cp)
    }

    fn chunks(cp: &Store) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = Vec::new();
        loop {
            let after = out.last().map(|c| KeyHash::with::<sha2::Sha256>(&c.entries.last().expect("entry").0).0);
            let c = cp.chunk(after).expect("chunk");
            let last = c.last;
            out.push(c);
            if last {
                return out;
            }
        }
    }

    fn restore(dir: &Path, cp: &Store, chunks: &[Chunk]) -> Result<(Arc<Store>, Head), StoreError> {
        let head = cp.head().expect("head");
        let store = Arc::new(Store::open(dir).expect("open"));
        let mut r = Restore::begin(Arc::clone(&store), head.height, head.state_root)?;
        for c in chunks {
            r.add_chunk(c)?;
        }
        let h = r.finish(b"record", b"label")?;
        Ok((store, h))
    }

    /// A restored store equals the checkpoint entry for entry, has its root, and the next block
    /// on it gives the same root as on the live store.
    #[test]
    fn a_restored_state_equals_the_snapshot_and_continues_the_same() {
        let dir = tempfile::tempdir().expect("tmp");
        let (live, cp) = served(dir.path(), 9000);
        let parts = chunks(&cp);
        assert!(parts.len() >= 3, "9000 entries come in several chunks: {}", parts.len());
        let (restored, head) = restore(&dir.path().join("new"), &cp, &parts).expect("restore");
        assert_eq!(head, cp.head().expect("head"));
        assert_eq!(restored.entries().expect("entries"), cp.entries().expect("entries"));
        assert_eq!(restored.block(2).expect("record").as_deref(), Some(&b"record"[..]));
        assert_eq!(restored.head_label().expect("label").as_deref(), Some(&b"label"[..]));
        // Block 3 on the restored store: same root as the live store's block 3.
        let p = restored.prepare(3, &[(account(3), funded(1))]).expect("block 3");
        assert_eq!(p.head.state_root, live.head().expect("head").state_root);
        restored.commit_labelled(p, b"r3", &[], None).expect("commit");
        // And it proves keys like any store.
        let (v, proof) = restored.prove(&account(5)).expect("prove");
        assert!(super::super::merkle::verify_proof(live.head().expect("head").state_root, &account(5), v.as_deref(), &proof));
    }

    /// A tampered value, a dropped entry, a reordered chunk, a foreign proof, a missing last
    /// chunk, the wrong root: each fails, and nothing is taken as the head.
    #[test]
    fn bad_chunks_fail_the_restore() {
        let dir = tempfile::tempdir().expect("tmp");
        let (_live, cp) = served(dir.path(), 9000);
        let good = chunks(&cp);
        let mut cases: Vec<(&str, Vec<Chunk>)> = Vec::new();
        let mut c = good.clone();
        c[1].entries[3].1 = funded(123_456).encode().expect("value");
        cases.push(("tampered value", c));
        let mut c = good.clone();
        c[1].entries.remove(5);
        cases.push(("dropped entry", c));
        let mut c = good.clone();
        c[0].entries.swap(1, 2);
        cases.push(("reordered", c));
        let mut c = good.clone();
        c[1].proof = c[0].proof.clone();
        cases.push(("foreign proof", c));
        let mut c = good.clone();
        c.pop();
        cases.push(("missing last chunk", c));
        let mut c = good.clone();
        c[0].proof = vec![0xff; 7];
        cases.push(("garbage proof", c));
        let mut c = good.clone();
        c[0].entries[0].0 = vec![0xee; 3];
        cases.push(("undecodable key", c));
        for (i, (what, chunks)) in cases.into_iter().enumerate() {
            let target = dir.path().join(format!("bad{i}"));
            let r = restore(&target, &cp, &chunks);
            assert!(r.is_err(), "{what} was accepted");
            let store = Store::open(&target).expect("reopen");
            assert!(store.head().is_none(), "{what}: a head was written");
        }
        // The right chunks under a wrong root.
        let store = Arc::new(Store::open(dir.path().join("wrong-root")).expect("open"));
        let mut r = Restore::begin(store, 2, [7; 32]).expect("begin");
        assert!(r.add_chunk(&good[0]).is_err(), "a chunk verified against the wrong root");
    }

    #[test]
    fn restore_needs_an_empty_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let (live, _cp) = served(dir.path(), 10);
        let live = Arc::new(live);
        assert!(Restore::begin(live, 2, [0; 32]).is_err());
    }
}
