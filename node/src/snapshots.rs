//! The state snapshots a node keeps and serves for state sync (`spec/consensus.md` §State sync).
//!
//! Every `interval` blocks the committer checkpoints the store right after committing the block
//! (`<data>/snapshots/<height>/state`, RocksDB hard links: cheap, and consistent because
//! nothing commits meanwhile). Once marshal has the block's finalization certificate, the
//! consensus side writes it with the block (`anchor`); only snapshots with an anchor are
//! offered. The newest `keep` are kept. Making or serving a snapshot never touches consensus:
//! a failure is logged and the node goes on.

use aivm_runtime::store::snapshot::Chunk;
use aivm_runtime::{Store, StoreError};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default blocks between snapshots (a few minutes at devnet speed).
pub const DEFAULT_INTERVAL: u64 = 1000;
/// Default snapshots kept: the newest, and the one before it for joiners mid-download.
pub const DEFAULT_KEEP: usize = 2;
const ANCHOR: &str = "anchor";
const STATE: &str = "state";
/// The checkpoint's state root (32 bytes), so listing snapshots opens no database.
const ROOT: &str = "root";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no snapshot at height {0}")]
    Unknown(u64),
    #[error("snapshot {0}: {1}")]
    Io(u64, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("snapshot anchor file is malformed")]
    BadAnchor,
}

/// What a joiner needs to trust a snapshot: the finalization certificate of its block, the
/// block (consensus encoding), and the runtime's record of it.
#[derive(Clone, Debug)]
pub struct Anchor {
    pub finalization: Vec<u8>,
    pub block: Vec<u8>,
    /// The block's epoch info (a reshare payload).
    pub info: Vec<u8>,
    pub record: Vec<u8>,
}

pub struct Snapshots {
    dir: PathBuf,
    interval: u64,
    keep: usize,
    /// The snapshot store last served, kept open between chunk requests.
    open: Mutex<Option<(u64, Arc<Store>)>>,
}

impl Snapshots {
    /// Snapshots under `dir` every `interval` blocks (0: never), the newest `keep` kept.
    pub fn new(dir: PathBuf, interval: u64, keep: usize) -> Self {
        Snapshots { dir, interval, keep: keep.max(1), open: Mutex::new(None) }
    }

    /// Whether the block at `height` gets a snapshot.
    pub fn due(&self, height: u64) -> bool {
        self.interval > 0 && height > 0 && height.is_multiple_of(self.interval)
    }

    fn path(&self, height: u64) -> PathBuf {
        self.dir.join(height.to_string())
    }

    /// Checkpoint `store` (its head is `height`), then drop the oldest beyond `keep`. Called on
    /// the committer with the execution lock held, right after the commit.
    pub fn take(&self, store: &Store, height: u64) -> Result<(), SnapshotError> {
        let io = |e| SnapshotError::Io(height, e);
        let target = self.path(height);
        let tmp = self.dir.join(format!("{height}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io)?;
        store.checkpoint(&tmp.join(STATE))?;
        let root = store.head().ok_or(StoreError::Empty)?.state_root;
        std::fs::write(tmp.join(ROOT), root).map_err(io)?;
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&tmp, &target).map_err(io)?;
        let mut heights = self.heights();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        for old in heights.into_iter().skip(self.keep) {
            let mut open = self.open.lock();
            if open.as_ref().is_some_and(|(h, _)| *h == old) {
                *open = None;
            }
            drop(open);
            let _ = std::fs::remove_dir_all(self.path(old));
        }
        Ok(())
    }

    /// Record the anchor of the snapshot at `height` (written whole or not at all).
    /// `info`: the epoch info of the block's epoch (`consensus::epochs`), which a joiner's
    /// epoch actors start from.
    pub fn write_anchor(&self, height: u64, finalization: &[u8], block: &[u8], info: &[u8]) -> Result<(), SnapshotError> {
        let dir = self.path(height);
        if !dir.join(STATE).is_dir() {
            return Err(SnapshotError::Unknown(height));
        }
        let mut bytes = Vec::with_capacity(8 + finalization.len() + block.len());
        bytes.extend_from_slice(&(finalization.len() as u32).to_be_bytes());
        bytes.extend_from_slice(finalization);
        bytes.extend_from_slice(&(block.len() as u32).to_be_bytes());
        bytes.extend_from_slice(block);
        bytes.extend_from_slice(&(info.len() as u32).to_be_bytes());
        bytes.extend_from_slice(info);
        let tmp = dir.join(format!("{ANCHOR}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| SnapshotError::Io(height, e))?;
        std::fs::rename(&tmp, dir.join(ANCHOR)).map_err(|e| SnapshotError::Io(height, e))
    }

    /// Heights with a checkpoint (anchored or not).
    fn heights(&self) -> Vec<u64> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).collect()
    }

    /// Heights of the snapshots that can be served (anchored), newest first.
    pub fn served(&self) -> Vec<u64> {
        let mut hs: Vec<u64> = self.heights().into_iter().filter(|h| self.path(*h).join(ANCHOR).is_file()).collect();
        hs.sort_unstable_by(|a, b| b.cmp(a));
        hs
    }

    fn store(&self, height: u64) -> Result<Arc<Store>, SnapshotError> {
        let mut open = self.open.lock();
        if let Some((h, s)) = open.as_ref() {
            if *h == height {
                return Ok(Arc::clone(s));
            }
        }
        if !self.served().contains(&height) {
            return Err(SnapshotError::Unknown(height));
        }
        let s = Arc::new(Store::open_read_only(&self.path(height).join(STATE))?);
        *open = Some((height, Arc::clone(&s)));
        Ok(s)
    }

    /// The snapshot's state root.
    pub fn state_root(&self, height: u64) -> Result<[u8; 32], SnapshotError> {
        let bytes = std::fs::read(self.path(height).join(ROOT)).map_err(|e| SnapshotError::Io(height, e))?;
        bytes.try_into().map_err(|_| SnapshotError::BadAnchor)
    }

    pub fn anchor(&self, height: u64) -> Result<Anchor, SnapshotError> {
        let store = self.store(height)?;
        let bytes = std::fs::read(self.path(height).join(ANCHOR)).map_err(|e| SnapshotError::Io(height, e))?;
        let (finalization, rest) = split(&bytes).ok_or(SnapshotError::BadAnchor)?;
        let (block, rest) = split(rest).ok_or(SnapshotError::BadAnchor)?;
        let (info, rest) = split(rest).ok_or(SnapshotError::BadAnchor)?;
        if !rest.is_empty() {
            return Err(SnapshotError::BadAnchor);
        }
        let record = store.block(height)?.ok_or(SnapshotError::Unknown(height))?;
        Ok(Anchor { finalization: finalization.to_vec(), block: block.to_vec(), info: info.to_vec(), record })
    }

    /// The snapshot's entries after key hash `after`, with their proof.
    pub fn chunk(&self, height: u64, after: Option<[u8; 32]>) -> Result<Chunk, SnapshotError> {
        Ok(self.store(height)?.chunk(after)?)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A u32-length-prefixed part and what follows it.
fn split(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let rest = &b[4..];
    Some((rest.get(..n)?, &rest[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(dir: &Path, heights: u64) -> Store {
        let s = Store::open(dir).expect("open");
        for h in 0..=heights {
            let key = aivm_runtime::StateKey::System(aivm_runtime::state::SystemKey::Height);
            let p = s.prepare(h, &[(key, aivm_runtime::StateValue::Bytes(h.to_le_bytes().into()))]).expect("prepare");
            s.commit_labelled(p, format!("record {h}").as_bytes(), &[], None).expect("commit");
        }
        s
    }

    /// Snapshots are offered once anchored, newest first, the oldest dropped beyond `keep`.
    #[test]
    fn snapshots_are_anchored_served_and_pruned() {
        let dir = tempfile::tempdir().expect("tmp");
        let snaps = Snapshots::new(dir.path().join("snapshots"), 10, 2);
        assert!(!snaps.due(0) && !snaps.due(5) && snaps.due(10) && snaps.due(20));
        let store = store_at(&dir.path().join("live"), 10);
        snaps.take(&store, 10).expect("take");
        assert!(snaps.served().is_empty(), "not offered before its anchor");
        assert!(matches!(snaps.anchor(10), Err(SnapshotError::Unknown(10))));
        snaps.write_anchor(10, b"fin", b"block", b"info").expect("anchor");
        assert_eq!(snaps.served(), vec![10]);
        let a = snaps.anchor(10).expect("anchor");
        assert_eq!((a.finalization.as_slice(), a.block.as_slice(), a.record.as_slice()), (&b"fin"[..], &b"block"[..], &b"record 10"[..]));
        assert_eq!(snaps.state_root(10).expect("root"), store.head().expect("head").state_root);
        assert!(snaps.chunk(10, None).expect("chunk").last);
        for h in [20, 30] {
            snaps.take(&store, h).expect("take");
            snaps.write_anchor(h, b"f", b"b", b"i").expect("anchor");
        }
        assert_eq!(snaps.served(), vec![30, 20], "the oldest is dropped");
        assert!(snaps.write_anchor(40, b"f", b"b", b"i").is_err(), "no anchor without a checkpoint");
    }
}
