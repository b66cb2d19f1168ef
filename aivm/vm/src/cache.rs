//! Compiled-module cache, in memory and optionally on disk.
//!
//! The key is `BLAKE3(code hash ‖ wasmtime compatibility hash ‖ gas-schedule digest ‖ limits)`,
//! so compiled code is never reused across a wasmtime upgrade, a config change or a
//! price change. On disk each entry is `<key>.cwasm` plus a BLAKE3 checksum file; an entry
//! whose checksum does not match is ignored and recompiled, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// Feeds `std::hash::Hash` output into BLAKE3 so the digest is stable across runs.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let b = self.0.finalize();
        u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The digest of everything that makes compiled code reusable.
pub fn engine_digest(engine: &Engine, schedule_digest: &[u8; 32], limits: &impl Hash) -> [u8; 32] {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(schedule_digest);
    limits.hash(&mut h);
    *h.0.finalize().as_bytes()
}

pub fn cache_key(code_hash: &[u8; 32], engine_digest: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(code_hash);
    h.update(engine_digest);
    *h.finalize().as_bytes()
}

/// Compiled modules stored as files in one directory.
#[derive(Clone, Debug)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn paths(&self, key: &[u8; 32]) -> (PathBuf, PathBuf) {
        let k = hex::encode(key);
        (self.dir.join(format!("{k}.cwasm")), self.dir.join(format!("{k}.sum")))
    }

    /// Load a module if a verified entry exists.
    pub fn load(&self, engine: &Engine, key: &[u8; 32]) -> Option<Module> {
        let (bin, sum) = self.paths(key);
        let bytes = std::fs::read(&bin).ok()?;
        let want = std::fs::read(&sum).ok()?;
        if blake3::hash(&bytes).as_bytes()[..] != want[..] {
            return None;
        }
        // SAFETY: the bytes are exactly what `Module::serialize` wrote for this engine's
        // compatibility hash (part of `key`), checked against their BLAKE3 checksum.
        unsafe { Module::deserialize(engine, &bytes).ok() }
    }

    /// Store a compiled module; failures only cost a recompilation later.
    pub fn store(&self, key: &[u8; 32], module: &Module) {
        let Ok(bytes) = module.serialize() else { return };
        let (bin, sum) = self.paths(key);
        let tmp = bin.with_extension("tmp");
        let ok = std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, &bin).is_ok();
        if ok {
            let _ = write_atomic(&sum, blake3::hash(&bytes).as_bytes());
        }
    }
}

/// Write via a temporary file and rename, so readers never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A least-recently-used map bounded by a byte budget (each entry states its size). Compiled
/// contracts are kept by it: a cache keyed by content that anyone can fill (deploys in
/// proposals that never finalize) must evict.
pub struct ByteLru<K: Hash + Eq, V: Clone> {
    map: lru::LruCache<K, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<K: Hash + Eq, V: Clone> ByteLru<K, V> {
    pub fn new(budget: usize) -> Self {
        ByteLru { map: lru::LruCache::unbounded(), bytes: 0, budget }
    }

    /// The entry for `k`, now the most recently used.
    pub fn get(&mut self, k: &K) -> Option<V> {
        self.map.get(k).map(|(v, _)| v.clone())
    }

    /// Keep `v` (`size` bytes), evicting the least recently used entries over the budget. An
    /// entry larger than the whole budget is not kept.
    pub fn insert(&mut self, k: K, v: V, size: usize) {
        if let Some((_, old)) = self.map.pop(&k) {
            self.bytes -= old;
        }
        if size > self.budget {
            return;
        }
        while self.bytes + size > self.budget {
            match self.map.pop_lru() {
                Some((_, (_, s))) => self.bytes -= s,
                None => break,
            }
        }
        self.bytes += size;
        self.map.put(k, (v, size));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes the entries claim.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::ByteLru;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut c = ByteLru::new(10);
        c.insert(1, 'a', 4);
        c.insert(2, 'b', 4);
        assert_eq!(c.get(&1), Some('a')); // 2 is now the oldest
        c.insert(3, 'c', 4);
        assert_eq!((c.get(&2), c.get(&1), c.get(&3)), (None, Some('a'), Some('c')));
        assert_eq!(c.bytes(), 8);
        c.insert(4, 'd', 11);
        assert_eq!(c.get(&4), None, "larger than the budget");
        c.insert(1, 'A', 2);
        assert_eq!((c.get(&1), c.bytes()), (Some('A'), 6));
        for i in 0..1000 {
            c.insert(100 + i, 'x', 3);
        }
        assert!(c.bytes() <= 10 && c.len() <= 3);
    }
}
