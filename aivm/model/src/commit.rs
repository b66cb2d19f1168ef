//! The worker's side of verifiable inference: every GEMM of a run is committed as it is
//! computed (`spec/verification.md`), and an [`InferenceReceipt`] binds the model, the prompts, the
//! outputs and the root over all GEMM commitments.
//!
//! A GEMM commitment is `BLAKE3("aivm-gemm-v2" ‖ id ‖ m,k,n ‖ y_bytes ‖ x_root ‖ y_root ‖
//! rhs_root)`, where each root is the Merkle root (RFC 6962 shape, BLAKE3) over the matrix's
//! rows: int8 rows as bytes, Y rows at `y_bytes` bytes an element ([`crate::narrow_y`]).
//! `rhs_root` is the KV-cache operand of attention GEMMs and 32 zero bytes for weight GEMMs
//! (the verifier has the weights).

use super::engine::{Engine, GemmId, GemmKind, GemmRecord, GemmSink, InferError};
use super::quant::Scale;
use crate::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;

/// A matrix element as committed: int8 as its byte, i32 little-endian.
pub trait RowBytes: Copy + Sync + Send {
    /// The committed bytes of `data` (in place where memory already holds them).
    fn committed_bytes(data: &[Self]) -> Cow<'_, [u8]>;
}

impl RowBytes for i8 {
    fn committed_bytes(data: &[i8]) -> Cow<'_, [u8]> {
        Cow::Borrowed(bytemuck::cast_slice(data))
    }
}

impl RowBytes for u8 {
    fn committed_bytes(data: &[u8]) -> Cow<'_, [u8]> {
        Cow::Borrowed(data)
    }
}

impl RowBytes for i32 {
    fn committed_bytes(data: &[i32]) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            // The memory is the little-endian encoding: hashed in place, no copy.
            Cow::Borrowed(bytemuck::cast_slice(data))
        } else {
            Cow::Owned(i32_bytes(data))
        }
    }
}

/// Matrices at least this large (bytes) hash their rows on the rayon pool, in pieces of
/// whole rows; the leaves are collected in row order, so the root never depends on the
/// thread count.
const PARALLEL_BYTES: usize = 1 << 20;
/// Rows per piece on the pool: a multiple of the sixteen rows hashed side by side.
const PARALLEL_ROWS: usize = 256;

/// The leaf hashes of a row-major matrix's rows (`prefix` of each row, 0 or 8 bytes, after
/// the leaf tag: an activation row's scale). Rows are hashed sixteen at a time
/// ([`crate::row_leaves`]); each leaf is still `merkle::leaf_hash` of its bytes.
fn row_leaves<T: RowBytes>(data: &[T], width: usize, prefix_len: usize, prefix: impl Fn(usize, &mut [u8]) + Sync) -> Vec<Hash> {
    let bytes = T::committed_bytes(data);
    let row = width.max(1) * std::mem::size_of::<T>();
    if bytes.len() >= PARALLEL_BYTES {
        use rayon::prelude::*;
        let piece = row * PARALLEL_ROWS;
        let parts: Vec<Vec<Hash>> = bytes
            .par_chunks(piece)
            .enumerate()
            .map(|(p, b)| crate::row_leaves::leaves(b, row, prefix_len, |i, out| prefix(p * PARALLEL_ROWS + i, out)))
            .collect();
        parts.concat()
    } else {
        crate::row_leaves::leaves(&bytes, row, prefix_len, prefix)
    }
}

/// The leaf hashes of a matrix's rows (`merkle::leaf_hash` of each row's committed bytes).
pub fn rows_leaves<T: RowBytes>(data: &[T], width: usize) -> Vec<Hash> {
    row_leaves(data, width, 0, |_, _| {})
}

/// Merkle root over the rows of a row-major matrix.
pub fn rows_root<T: RowBytes>(data: &[T], width: usize) -> Hash {
    merkle::root(&rows_leaves(data, width))
}

/// The leaf hashes of Y's rows (`n` elements each) committed at `y_bytes` bytes an element
/// ([`crate::narrow_y`]).
pub fn y_leaves(y: &[i32], n: usize, y_bytes: u8) -> Vec<Hash> {
    rows_leaves::<u8>(&crate::narrow_y::to_bytes(y, y_bytes), n * usize::from(y_bytes))
}

/// Merkle root over Y's rows at `y_bytes` bytes an element.
pub fn y_root(y: &[i32], n: usize, y_bytes: u8) -> Hash {
    merkle::root(&y_leaves(y, n, y_bytes))
}

/// An activation row's leaf bytes: its scale (`m`, `e` as i32 LE) then the int8 values.
pub fn x_row_bytes(scale: Scale, row: &[i8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + row.len());
    b.extend(scale_bytes(scale));
    b.extend(row.iter().map(|&v| v as u8));
    b
}

pub(crate) fn scale_bytes(s: Scale) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&s.m.to_le_bytes());
    b[4..].copy_from_slice(&s.e.to_le_bytes());
    b
}

/// The leaf hashes of activation rows with their scales.
pub fn x_leaves(x: &[i8], scales: &[Scale], width: usize) -> Vec<Hash> {
    // One leaf per row that has a scale (a last partial row counts as a row).
    let rows = x.len().div_ceil(width.max(1)).min(scales.len());
    let x = &x[..(rows * width.max(1)).min(x.len())];
    row_leaves(x, width, 8, |i, out| out.copy_from_slice(&scale_bytes(scales[i])))
}

/// Merkle root over activation rows with their scales.
pub fn x_root(x: &[i8], scales: &[Scale], width: usize) -> Hash {
    merkle::root(&x_leaves(x, scales, width))
}

pub fn i8_bytes(r: &[i8]) -> Vec<u8> {
    r.iter().map(|&v| v as u8).collect()
}
pub fn i32_bytes(r: &[i32]) -> Vec<u8> {
    r.iter().flat_map(|v| v.to_le_bytes()).collect()
}
pub fn u32_bytes(r: &[u32]) -> Vec<u8> {
    r.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The public part of one GEMM: where it is, its shape and its operand roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemmCommit {
    pub step: u32,
    pub layer: u32,
    pub kind: u8,
    pub seq: u32,
    pub head: u32,
    pub m: u32,
    pub k: u32,
    pub n: u32,
    /// Bytes per committed element of Y (1–4): the fewest that hold all of it.
    pub y_bytes: u8,
    pub x_root: Hash,
    pub y_root: Hash,
    pub rhs_root: Hash,
}

impl GemmCommit {
    pub fn id(&self) -> Option<GemmId> {
        Some(GemmId { step: self.step, layer: self.layer, kind: GemmKind::from_code(self.kind)?, seq: self.seq, head: self.head })
    }

    /// The leaf hashed into the receipt's `gemm_root`: `BLAKE3("aivm-gemm-v2" ‖ step ‖ layer ‖ kind ‖ seq ‖
    /// head ‖ m ‖ k ‖ n ‖ y_bytes (u32 LE) ‖ x_root ‖ y_root ‖ rhs_root)`. Many at once:
    /// [`commit_leaves`].
    pub fn leaf(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"aivm-gemm-v2");
        for v in self.fields() {
            h.update(&v.to_le_bytes());
        }
        h.update(&self.x_root);
        h.update(&self.y_root);
        h.update(&self.rhs_root);
        *h.finalize().as_bytes()
    }
}

/// [`GemmCommit::leaf`] of each commitment, sixteen side by side ([`crate::row_leaves`]):
/// every leaf hashes 144 bytes, which the batch hasher takes as a one-byte tag, an 8-byte
/// prefix and a 135-byte row — `"a"`, `"ivm-gemm"`, then `"-v2"` and the fields — the same
/// bytes, so the same hashes (test `commit_leaves_equal_each_leaf`). A worker's answer hashes
/// every GEMM's leaf (thousands); a verifier, the ~150 an answer opens.
pub fn commit_leaves<'a>(commits: impl ExactSizeIterator<Item = &'a GemmCommit>) -> Vec<Hash> {
    const ROW: usize = 3 + 132;
    let mut rows = Vec::with_capacity(commits.len() * ROW);
    for c in commits {
        rows.extend_from_slice(b"-v2");
        c.encode_to(&mut rows);
    }
    crate::row_leaves::tagged(b'a', &rows, ROW, 8, |_, p| p.copy_from_slice(b"ivm-gemm"))
}

/// One GEMM's data as the worker keeps it to answer challenges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemmData {
    pub commit: GemmCommit,
    pub x: Vec<i8>,
    pub x_scales: Vec<Scale>,
    pub y: Vec<i32>,
    pub rhs: Option<Vec<i8>>,
}

impl GemmData {
    /// Recompute the commitment from the data (what the verifier does with opened data).
    pub fn recommit(&self) -> GemmCommit {
        self.recommit_with(None)
    }

    /// [`GemmData::recommit`] with the X root already known: the same activations as a GEMM
    /// just committed (q, k and v read one input, gate and up another).
    fn recommit_with(&self, x_root_known: Option<Hash>) -> GemmCommit {
        let c = &self.commit;
        let (k, n) = (c.k as usize, c.n as usize);
        let y_bytes = crate::narrow_y::fewest_bytes(&self.y);
        GemmCommit {
            x_root: x_root_known.unwrap_or_else(|| x_root(&self.x, &self.x_scales, k)),
            y_root: y_root(&self.y, n, y_bytes),
            y_bytes,
            rhs_root: self.rhs.as_ref().map_or([0; 32], |r| rows_root(r, rhs_width(c))),
            ..*c
        }
    }
}

/// The row width of an attention GEMM's cache operand: `K [n×k]` for scores, `V [k×n]` for mix.
fn rhs_width(c: &GemmCommit) -> usize {
    if c.kind == GemmKind::Mix as u8 {
        c.n as usize
    } else {
        c.k as usize
    }
}

/// Everything a run computed, in order.
///
/// A committed run keeps each KV cache once: an attention GEMM's cache operand is a prefix of
/// the cache as it ends (rows are only appended), so the trace stores the cache and each
/// such GEMM's length, and its `gemms[i].rhs` is `None`. Copying the operand at every step
/// made the trace quadratic in the sequence length. [`Trace::data`] gives a GEMM whole.
#[derive(Clone, Default)]
pub struct Trace {
    gemms: Vec<GemmData>,
    /// For each GEMM whose operand lives in `caches`: (cache, length in elements).
    operands: Vec<Option<(usize, usize)>>,
    caches: Vec<Vec<i8>>,
}

impl From<Vec<GemmData>> for Trace {
    fn from(gemms: Vec<GemmData>) -> Self {
        Trace { operands: vec![None; gemms.len()], gemms, caches: Vec::new() }
    }
}

/// A KV-cache key: (layer, kind, sequence, KV head).
type CacheKey = (u32, u8, u32, u32);

/// One GEMM as the engine hands it to the committing thread: owned copies, and of a cache
/// operand only what is new; `slot` is the trace it goes to ([`Split`]).
struct Record {
    slot: usize,
    commit: GemmCommit,
    x: Vec<i8>,
    x_scales: Vec<Scale>,
    y: Vec<i32>,
    rhs: Option<Operand>,
}

/// A cache operand: the rows appended to the one sent last for the same cache, or (the first
/// time, or if it did not extend it by whole rows) all of it.
enum Operand {
    Extend(Vec<i8>),
    New(Vec<i8>),
}

/// Which trace each GEMM of a run goes to: all to one (a receipt for the batch), or each
/// sequence's to its own ([`run_committed_each`]). A weight GEMM's rows are the active
/// sequences' new rows in order (the logits GEMM: one row each), and every row is computed
/// from its own sequence alone, so a sequence's rows of it are the GEMM its solo run does;
/// an attention GEMM belongs to one sequence already, and a solo run calls it sequence 0.
#[derive(Default)]
struct Split {
    /// The current step's `(sequence, new rows)`; `None`: one trace.
    rows: Option<Vec<(usize, usize)>>,
}

impl Split {
    fn each(&self, r: &GemmRecord<'_>, mut f: impl FnMut(usize, &GemmRecord<'_>)) {
        let Some(rows) = &self.rows else { return f(0, r) };
        if !r.id.kind.is_weight() {
            return f(r.id.seq as usize, &GemmRecord { id: GemmId { seq: 0, ..r.id }, ..*r });
        }
        let (k, n) = (r.k, r.n);
        let mut r0 = 0;
        for &(seq, new) in rows {
            let m = if r.id.kind == GemmKind::Logits { 1 } else { new };
            f(seq, &GemmRecord { m, x: &r.x[r0 * k..(r0 + m) * k], x_scales: &r.x_scales[r0..r0 + m], y: &r.y[r0 * n..(r0 + m) * n], ..*r });
            r0 += m;
        }
        debug_assert_eq!(r0, r.m, "a weight GEMM's rows are the step's rows");
    }

    fn begin_step(&mut self, step: &[(usize, usize)]) {
        if let Some(rows) = &mut self.rows {
            rows.clear();
            rows.extend_from_slice(step);
        }
    }
}

/// What was sent of each KV cache, per trace ([`record`]).
type Sent = Vec<HashMap<CacheKey, (usize, Vec<i8>)>>;

/// The owned [`Record`] of `r` for trace `slot`, with `sent` grown to hold it.
fn record_for(sent: &mut Sent, slot: usize, r: &GemmRecord<'_>) -> Record {
    if sent.len() <= slot {
        sent.resize_with(slot + 1, HashMap::new);
    }
    Record { slot, ..record(&mut sent[slot], r) }
}

/// The engine's side of a committed run ([`GemmSink`]): copies each GEMM's operands and sends
/// them to the committing thread, so hashing runs beside the forward pass instead of in it.
/// KV-cache rows never change once appended, so a decode step's scores/mix operand is the one
/// sent last step for the same cache plus a row: only the new rows are sent. The extension is
/// checked by comparing bytes with a copy of what was sent (far cheaper than hashing), so the
/// roots are always the written definition's.
struct Recorder {
    to_committer: std::sync::mpsc::SyncSender<Vec<Record>>,
    sent: Sent,
    split: Split,
    /// Records not sent yet: they go in batches, since waking the other thread for each of a
    /// decode step's ~400 small GEMMs cost more than hashing them.
    batch: Vec<Record>,
}

impl Recorder {
    fn flush(&mut self) {
        if !self.batch.is_empty() {
            // The committer only stops if it panicked, which `run_committed` re-raises. (The
            // forward never runs on the pool with this sink, so blocking here cannot hold a
            // worker the committer's hashing needs: `steps_on_pool`.)
            let _ = self.to_committer.send(std::mem::take(&mut self.batch));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

impl GemmSink for Recorder {
    fn gemm(&mut self, r: &GemmRecord<'_>) {
        let (sent, batch) = (&mut self.sent, &mut self.batch);
        self.split.each(r, |slot, part| batch.push(record_for(sent, slot, part)));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn begin_step(&mut self, rows: &[(usize, usize)]) {
        self.split.begin_step(rows);
    }

    /// The committer hashes large matrices on the pool.
    fn steps_on_pool(&self) -> bool {
        false
    }
}

/// The commitments computed on the calling thread (when no thread could be started: the
/// result is the same, only slower).
struct Inline {
    sent: Sent,
    split: Split,
    committers: Committers,
}

impl GemmSink for Inline {
    fn gemm(&mut self, r: &GemmRecord<'_>) {
        let (sent, committers) = (&mut self.sent, &mut self.committers);
        self.split.each(r, |slot, part| committers.commit(record_for(sent, slot, part)));
    }

    fn begin_step(&mut self, rows: &[(usize, usize)]) {
        self.split.begin_step(rows);
    }
}

/// The owned [`Record`] of `r`, sending of a cache operand only what `sent` (what went before
/// for the same cache) does not hold.
fn record(sent: &mut HashMap<CacheKey, (usize, Vec<i8>)>, r: &GemmRecord<'_>) -> Record {
    {
        let commit = GemmCommit {
            step: r.id.step,
            layer: r.id.layer,
            kind: r.id.kind as u8,
            seq: r.id.seq,
            head: r.id.head,
            m: r.m as u32,
            k: r.k as u32,
            n: r.n as u32,
            y_bytes: 4,
            x_root: [0; 32],
            y_root: [0; 32],
            rhs_root: [0; 32],
        };
        let rhs = r.rhs.map(|rhs| {
            let width = rhs_width(&commit).max(1);
            let key = (commit.layer, commit.kind, commit.seq, commit.head);
            match sent.get_mut(&key) {
                Some((w, kept)) if *w == width && kept.len() % width == 0 && rhs.starts_with(kept) => {
                    let new = rhs[kept.len()..].to_vec();
                    kept.extend_from_slice(&new);
                    Operand::Extend(new)
                }
                _ => {
                    sent.insert(key, (width, rhs.to_vec()));
                    Operand::New(rhs.to_vec())
                }
            }
        });
        Record { slot: 0, commit, x: r.x.to_vec(), x_scales: r.x_scales.to_vec(), y: r.y.to_vec(), rhs }
    }
}

/// One KV cache in the trace: which of its caches holds the rows, their width, and the Merkle
/// tree over them so far (`O(log n)` per appended row for the root, where rebuilding it over
/// every row each step cost `O(n)`).
struct CacheTree {
    cache: usize,
    width: usize,
    tree: merkle::Frontier,
}

/// The committing thread's side: each GEMM's roots, in order, into the [`Trace`].
#[derive(Default)]
struct Committer {
    trace: Trace,
    caches: HashMap<CacheKey, CacheTree>,
}

impl Committer {
    /// Keep the cache operand (appending to the cache kept for `key`, or a new one) and return
    /// where it lives and the root over its rows.
    fn keep_operand(&mut self, key: CacheKey, width: usize, operand: Operand) -> ((usize, usize), Hash) {
        let width = width.max(1);
        let caches = &mut self.trace.caches;
        let (mut entry, rows) = match (self.caches.remove(&key), operand) {
            (Some(e), Operand::Extend(rows)) if e.width == width => (e, rows),
            (_, Operand::New(rows)) => {
                caches.push(Vec::new());
                (CacheTree { cache: caches.len() - 1, width, tree: merkle::Frontier::default() }, rows)
            }
            // The recorder's record of what it sent mirrors this one.
            (_, Operand::Extend(_)) => unreachable!("the recorder extends only a cache it sent"),
        };
        for leaf in rows_leaves(&rows, width) {
            entry.tree.push(leaf);
        }
        let kept = &mut caches[entry.cache];
        kept.extend_from_slice(&rows);
        let at = (entry.cache, kept.len());
        let root = entry.tree.root();
        self.caches.insert(key, entry);
        (at, root)
    }

    /// Commit `r` (its roots already hashed when `roots` is given: [`one_row_roots`]).
    fn commit(&mut self, r: Record, roots: Option<OneRowRoots>) {
        let mut d = GemmData { commit: r.commit, x: r.x, x_scales: r.x_scales, y: r.y, rhs: None };
        if let Some(o) = roots {
            d.commit = GemmCommit { x_root: o.x_root, y_root: o.y_root, y_bytes: o.y_bytes, ..d.commit };
            self.trace.gemms.push(d);
            self.trace.operands.push(None);
            return;
        }
        // Comparing the activations with the last GEMM's is far cheaper than hashing them.
        let same_x = self.trace.gemms.last().filter(|p| p.commit.k == d.commit.k && p.x_scales == d.x_scales && p.x == d.x).map(|p| p.commit.x_root);
        let c = d.commit;
        let (operand, rhs_root) = match r.rhs {
            Some(op) => {
                let (at, root) = self.keep_operand((c.layer, c.kind, c.seq, c.head), rhs_width(&c), op);
                (Some(at), Some(root))
            }
            None => (None, None),
        };
        // The operand is kept in the trace's caches (`rhs` stays `None`); its root comes from
        // the cache's tree.
        d.commit = GemmCommit { rhs_root: rhs_root.unwrap_or([0; 32]), ..d.recommit_with(same_x) };
        self.trace.gemms.push(d);
        self.trace.operands.push(operand);
    }
}

/// One [`Committer`] per trace, grown as a slot first appears.
#[derive(Default)]
struct Committers(Vec<Committer>);

impl Committers {
    fn commit(&mut self, r: Record) {
        self.commit_with(r, None);
    }

    fn commit_with(&mut self, r: Record, roots: Option<OneRowRoots>) {
        if self.0.len() <= r.slot {
            self.0.resize_with(r.slot + 1, Committer::default);
        }
        self.0[r.slot].commit(r, roots);
    }

    /// Commit a batch in order, the one-row weight GEMMs' rows hashed side by side first.
    fn commit_batch(&mut self, batch: Vec<Record>) {
        let roots = one_row_roots(&batch);
        for (r, roots) in batch.into_iter().zip(roots) {
            self.commit_with(r, roots);
        }
    }

    fn traces(self) -> Vec<Trace> {
        self.0.into_iter().map(|c| c.trace).collect()
    }
}

/// The roots of a one-row GEMM: its X row's leaf and its Y row's leaf (a one-leaf tree's
/// root is its leaf), and Y's width.
#[derive(Clone, Copy)]
struct OneRowRoots {
    x_root: Hash,
    y_root: Hash,
    y_bytes: u8,
}

/// The roots of a batch's one-row weight GEMMs (a decode step's: ~400 GEMMs of rows of
/// 0.6–4.6 KB), their rows hashed side by side, sixteen of a length at a time
/// ([`crate::row_leaves::leaves_of`]); hashed one at a time they ran at ~0.7 GB/s. The same
/// leaves as [`GemmData::recommit`] makes (tests: every trace GEMM recommits to its
/// commitment). A GEMM whose X equals the one before it (q, k and v read one input; gate
/// and up another) hashes it once. `None` for the others (more rows, or a cache operand).
fn one_row_roots(batch: &[Record]) -> Vec<Option<OneRowRoots>> {
    let one_row =
        |r: &Record| r.commit.m == 1 && r.rhs.is_none() && r.x_scales.len() == 1 && r.x.len() == r.commit.k as usize && r.y.len() == r.commit.n as usize;
    let mut rows: Vec<Cow<'_, [u8]>> = Vec::new();
    // Per record: where its X leaf and Y leaf are in `rows`, and Y's width.
    let mut at: Vec<Option<(usize, usize, u8)>> = Vec::with_capacity(batch.len());
    let mut last_x: Option<(&Record, usize)> = None;
    for r in batch {
        if !one_row(r) {
            at.push(None);
            last_x = None;
            continue;
        }
        let x_at = match last_x {
            Some((p, i)) if p.x_scales == r.x_scales && p.x == r.x => i,
            _ => {
                rows.push(Cow::Owned(x_row_bytes(r.x_scales[0], &r.x)));
                rows.len() - 1
            }
        };
        last_x = Some((r, x_at));
        let w = crate::narrow_y::fewest_bytes(&r.y);
        rows.push(crate::narrow_y::to_bytes(&r.y, w));
        at.push(Some((x_at, rows.len() - 1, w)));
    }
    if rows.is_empty() {
        return vec![None; batch.len()];
    }
    let leaves = crate::row_leaves::leaves_of(&rows.iter().map(|b| &b[..]).collect::<Vec<_>>());
    at.into_iter().map(|a| a.map(|(x, y, w)| OneRowRoots { x_root: leaves[x], y_root: leaves[y], y_bytes: w })).collect()
}

/// GEMMs sent to the committing thread at once.
const BATCH: usize = 64;
/// Batches the engine may run ahead of the committing thread (bounds the copies in flight).
const IN_FLIGHT: usize = 8;

/// What a worker publishes about one inference run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceReceipt {
    /// MODEL_HASH of the SKU that was run.
    pub sku: Hash,
    pub max_new: u32,
    pub prompts: Vec<Vec<u32>>,
    pub outputs: Vec<Vec<u32>>,
    /// Merkle root over the prompts (one leaf per prompt, token ids as u32 LE).
    pub input_root: Hash,
    /// Merkle root over the outputs, the same way.
    pub output_root: Hash,
    /// Merkle root over every GEMM commitment, in execution order, and their number.
    pub gemm_root: Hash,
    pub gemm_count: u64,
}

/// Merkle root over token sequences.
pub fn tokens_root(seqs: &[Vec<u32>]) -> Hash {
    merkle::root(&seqs.iter().map(|s| merkle::leaf_hash(&u32_bytes(s))).collect::<Vec<_>>())
}

impl InferenceReceipt {
    /// Hash of the canonical (CBOR-free, fixed-order) receipt bytes: binds challenges to it.
    pub fn hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"aivm-receipt-v1");
        h.update(&self.sku);
        h.update(&self.max_new.to_le_bytes());
        h.update(&self.input_root);
        h.update(&self.output_root);
        h.update(&self.gemm_root);
        h.update(&self.gemm_count.to_le_bytes());
        *h.finalize().as_bytes()
    }
}

/// Run a batch with commitments: the outputs, the receipt, and the trace to answer challenges.
///
/// The commitments are computed on a thread of their own beside the forward pass (the engine
/// sends each GEMM's operands as it goes); the trace is the same as computing them in line.
pub fn run_committed(engine: &Engine, prompts: &[Vec<u32>], max_new: usize) -> Result<(InferenceReceipt, Trace), InferError> {
    let (outputs, mut traces) = run_traced(engine, prompts, max_new, false)?;
    let trace = traces.pop().unwrap_or_default();
    Ok((receipt_of(engine, prompts, outputs, max_new, &trace), trace))
}

/// Run a batch as one pass of the engine and commit each sequence apart: its receipt and
/// trace, the same as [`run_committed`] of that prompt alone gives (test
/// `each_sequence_of_a_batch_commits_as_if_run_alone`), so a worker serves several jobs in
/// one batched run (decode reads every weight once a step for all of them) and commits each
/// job's receipt as the market asks (one prompt a receipt).
pub fn run_committed_each(engine: &Engine, prompts: &[Vec<u32>], max_new: usize) -> Result<Vec<(InferenceReceipt, Trace)>, InferError> {
    let (outputs, mut traces) = run_traced(engine, prompts, max_new, true)?;
    traces.resize_with(prompts.len(), Trace::default);
    Ok(prompts
        .iter()
        .zip(outputs)
        .zip(traces)
        .map(|((p, out), trace)| {
            let one = std::slice::from_ref(p);
            (receipt_of(engine, one, vec![out], max_new, &trace), trace)
        })
        .collect())
}

fn receipt_of(engine: &Engine, prompts: &[Vec<u32>], outputs: Vec<Vec<u32>>, max_new: usize, trace: &Trace) -> InferenceReceipt {
    InferenceReceipt {
        sku: engine.sku_hash,
        max_new: max_new as u32,
        input_root: tokens_root(prompts),
        output_root: tokens_root(&outputs),
        gemm_root: merkle::root(&trace.leaves()),
        gemm_count: trace.gemms.len() as u64,
        prompts: prompts.to_vec(),
        outputs,
    }
}

/// The engine's outputs and the traces: one, or with `split` one per sequence (in order).
fn run_traced(engine: &Engine, prompts: &[Vec<u32>], max_new: usize, split: bool) -> Result<(Vec<Vec<u32>>, Vec<Trace>), InferError> {
    let split = || Split { rows: split.then(Vec::new) };
    let (to_committer, batches) = std::sync::mpsc::sync_channel::<Vec<Record>>(IN_FLIGHT);
    let (outputs, traces) = std::thread::scope(|s| {
        // A thread of its own, not a rayon task: it blocks on the channel, which would hold
        // a pool worker the forward pass needs.
        let spawned = std::thread::Builder::new().name("aivm-commit".into()).spawn_scoped(s, move || {
            let mut c = Committers::default();
            for batch in batches {
                c.commit_batch(batch);
            }
            c.traces()
        });
        match spawned {
            Ok(committer) => {
                let mut recorder = Recorder { to_committer, sent: Vec::new(), split: split(), batch: Vec::with_capacity(BATCH) };
                let outputs = engine.generate(prompts, max_new, &mut recorder);
                drop(recorder);
                let traces = committer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (outputs, traces)
            }
            // No thread to be had (a resource limit): the same commitments, in line.
            Err(_) => {
                let mut inline = Inline { sent: Vec::new(), split: split(), committers: Committers::default() };
                let outputs = engine.generate(prompts, max_new, &mut inline);
                (outputs, inline.committers.traces())
            }
        }
    });
    Ok((outputs?, traces))
}

impl Trace {
    /// Every GEMM in order; a kept cache operand is not in `rhs` (see [`Trace::data`]).
    pub fn gemms(&self) -> &[GemmData] {
        &self.gemms
    }

    /// The GEMMs to change in place (what a cheating worker does; tests use it). A kept cache
    /// operand stays the trace's: [`Trace::data`] gives it whatever `rhs` is set to.
    pub fn gemms_mut(&mut self) -> &mut [GemmData] {
        &mut self.gemms
    }

    /// Append a GEMM whose operands it carries itself.
    pub fn push(&mut self, g: GemmData) {
        self.gemms.push(g);
        self.operands.push(None);
    }

    /// Keep only the GEMMs `keep` says.
    pub fn retain(&mut self, mut keep: impl FnMut(&GemmData) -> bool) {
        let flags: Vec<bool> = self.gemms.iter().map(&mut keep).collect();
        let mut it = flags.iter();
        self.gemms.retain(|_| it.next().copied().unwrap_or(false));
        let mut it = flags.iter();
        self.operands.retain(|_| it.next().copied().unwrap_or(false));
    }

    /// Recompute every commitment from the data (after changing it, as a cheater commits to
    /// what it claims).
    pub fn recommit(&mut self) {
        for i in 0..self.gemms.len() {
            if let Some(c) = self.data(i).map(|g| g.recommit()) {
                self.gemms[i].commit = c;
            }
        }
    }

    /// GEMM `i` whole, its cache operand included (copied out of the trace's caches).
    pub fn data(&self, i: usize) -> Option<Cow<'_, GemmData>> {
        let g = self.gemms.get(i)?;
        Some(match self.operands.get(i).copied().flatten() {
            Some((cache, len)) => Cow::Owned(GemmData { rhs: Some(self.caches.get(cache)?.get(..len)?.to_vec()), ..g.clone() }),
            None => Cow::Borrowed(g),
        })
    }

    pub fn leaves(&self) -> Vec<Hash> {
        commit_leaves(self.gemms.iter().map(|g| &g.commit))
    }

    /// The worker's trace file: each GEMM as a length-prefixed opening without a proof
    /// (index u64, [`GemmData::encode_to`], proof count 0 as u32: `audit::OpenGemm`'s form).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for i in 0..self.gemms.len() {
            let mut e = (i as u64).to_le_bytes().to_vec();
            if let Some(g) = self.data(i) {
                g.encode_to(&mut e);
            }
            e.extend(0u32.to_le_bytes());
            b.extend((e.len() as u64).to_le_bytes());
            b.extend(e);
        }
        b
    }

    /// Parse [`Trace::to_bytes`]; `None` if anything is malformed.
    pub fn from_bytes(mut b: &[u8]) -> Option<Self> {
        let mut gemms = Vec::new();
        while !b.is_empty() {
            let n = usize::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?;
            let mut r = Reader::new(b.get(8..8usize.checked_add(n)?)?);
            if r.u64()? != gemms.len() as u64 {
                return None;
            }
            gemms.push(GemmData::decode_from(&mut r)?);
            let np = r.u32()? as usize;
            r.take(np.checked_mul(32)?)?;
            if np > 64 || !r.finished() {
                return None;
            }
            b = &b[8 + n..];
        }
        Some(Trace::from(gemms))
    }
}

impl GemmData {
    /// Binary form: the commitment ([`GemmCommit::encode_to`]), x scales (m × 2 i32), x (m·k
    /// bytes), y (m·n elements at the commitment's `y_bytes` each, [`crate::narrow_y`]), an
    /// rhs flag u8 (+ k·n bytes). Little-endian.
    pub fn encode_to(&self, b: &mut Vec<u8>) {
        self.commit.encode_to(b);
        self.encode_operands_to(b);
    }

    /// [`GemmData::encode_to`]'s form after the commitment: the operands alone (a market
    /// answer carries the commitment once, in its table).
    pub fn encode_operands_to(&self, b: &mut Vec<u8>) {
        for s in &self.x_scales {
            b.extend(s.m.to_le_bytes());
            b.extend(s.e.to_le_bytes());
        }
        b.extend(self.x.iter().map(|&v| v as u8));
        b.extend_from_slice(&crate::narrow_y::to_bytes(&self.y, self.commit.y_bytes));
        match &self.rhs {
            Some(r) => {
                b.push(1);
                b.extend(r.iter().map(|&v| v as u8));
            }
            None => b.push(0),
        }
    }

    /// Parse [`GemmData::encode_to`]'s form from `r`; `None` for anything malformed. Sizes are
    /// checked against what is left before anything is allocated.
    pub fn decode_from(r: &mut Reader<'_>) -> Option<Self> {
        let commit = GemmCommit::decode_from(r)?;
        Self::decode_operands(commit, r)
    }

    /// Parse [`GemmData::encode_operands_to`]'s form from `r`, for `commit`'s shape.
    pub fn decode_operands(commit: GemmCommit, r: &mut Reader<'_>) -> Option<Self> {
        let (m, k, n) = (commit.m as usize, commit.k as usize, commit.n as usize);
        let (mk, mn, kn) = (m.checked_mul(k)?, m.checked_mul(n)?, k.checked_mul(n)?);
        let x_scales = r
            .take(m.checked_mul(8)?)?
            .chunks_exact(8)
            .map(|c| Scale { m: i32::from_le_bytes([c[0], c[1], c[2], c[3]]), e: i32::from_le_bytes([c[4], c[5], c[6], c[7]]) })
            .collect();
        let x = r.take(mk)?.iter().map(|&v| v as i8).collect();
        let y = crate::narrow_y::from_bytes(r.take(mn.checked_mul(usize::from(commit.y_bytes))?)?, commit.y_bytes)?;
        let rhs = match r.take(1)?[0] {
            0 => None,
            1 => Some(r.take(kn)?.iter().map(|&v| v as i8).collect()),
            _ => return None,
        };
        Some(GemmData { commit, x, x_scales, y, rhs })
    }
}

impl GemmCommit {
    /// The u32 fields in their committed order: step, layer, kind, seq, head, m, k, n, y_bytes.
    fn fields(&self) -> [u32; 9] {
        [self.step, self.layer, self.kind as u32, self.seq, self.head, self.m, self.k, self.n, self.y_bytes as u32]
    }

    /// Binary form: 9 u32 (step, layer, kind, seq, head, m, k, n, y_bytes), then the x, y
    /// and rhs roots. Little-endian.
    pub fn encode_to(&self, b: &mut Vec<u8>) {
        for v in self.fields() {
            b.extend(v.to_le_bytes());
        }
        for r in [&self.x_root, &self.y_root, &self.rhs_root] {
            b.extend_from_slice(r);
        }
    }

    /// Parse [`GemmCommit::encode_to`]'s form from `r` (`y_bytes` must be 1–4).
    pub fn decode_from(r: &mut Reader<'_>) -> Option<Self> {
        let mut u = [0u32; 9];
        for v in &mut u {
            *v = r.u32()?;
        }
        let mut roots = [[0u8; 32]; 3];
        for root in &mut roots {
            root.copy_from_slice(r.take(32)?);
        }
        Some(GemmCommit {
            step: u[0],
            layer: u[1],
            kind: u8::try_from(u[2]).ok()?,
            seq: u[3],
            head: u[4],
            m: u[5],
            k: u[6],
            n: u[7],
            y_bytes: u8::try_from(u[8]).ok().filter(|w| (1..=4).contains(w))?,
            x_root: roots[0],
            y_root: roots[1],
            rhs_root: roots[2],
        })
    }
}

/// A cursor over bytes being parsed: every read is bounds-checked and `None` past the end.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Whether every byte was read.
    pub fn finished(&self) -> bool {
        self.at == self.b.len()
    }
}

#[cfg(test)]
mod row_hash_tests {
    use super::*;

    /// The batched leaves equal each commitment's own, for counts below, at and past the
    /// sixteen lanes and with every field varied.
    #[test]
    fn commit_leaves_equal_each_leaf() {
        for n in [0usize, 1, 2, 3, 15, 16, 17, 40] {
            let commits: Vec<GemmCommit> = (0..n as u32)
                .map(|i| GemmCommit {
                    step: i,
                    layer: i * 3,
                    kind: (i % 10) as u8,
                    seq: i / 4,
                    head: i % 3,
                    m: i + 1,
                    k: 576 + i,
                    n: u32::MAX - i,
                    y_bytes: (i % 4 + 1) as u8,
                    x_root: [i as u8; 32],
                    y_root: [(i * 7) as u8; 32],
                    rhs_root: [(i * 13) as u8; 32],
                })
                .collect();
            let want: Vec<Hash> = commits.iter().map(GemmCommit::leaf).collect();
            assert_eq!(commit_leaves(commits.iter()), want, "n={n}");
        }
    }

    /// The reference definitions: each row's committed bytes copied out, then hashed.
    fn reference_rows<T: Copy>(data: &[T], width: usize, bytes: impl Fn(&[T]) -> Vec<u8>) -> Hash {
        merkle::root(&data.chunks(width.max(1)).map(|r| merkle::leaf_hash(&bytes(r))).collect::<Vec<_>>())
    }

    /// Hashing in place and on the pool gives exactly the roots of the written definition:
    /// small and large (parallel) matrices, a ragged last row, fewer scales than rows.
    #[test]
    fn row_roots_match_their_definition() {
        for (rows, width) in [(0usize, 4usize), (1, 1), (3, 5), (300, 4096), (7, 200_000)] {
            let y: Vec<i32> = (0..rows * width).map(|i| (i as i32).wrapping_mul(-1_640_531_527)).collect();
            let x: Vec<i8> = y.iter().map(|&v| (v >> 7) as i8).collect();
            assert_eq!(rows_root(&y, width), reference_rows(&y, width, i32_bytes));
            // Y as committed: each element's low `w` bytes (values cut to fit), row by row.
            for w in 1..=4u8 {
                let y: Vec<i32> = y.iter().map(|&v| if w == 4 { v } else { v >> (32 - 8 * u32::from(w)) }).collect();
                let low = |r: &[i32]| r.iter().flat_map(|v| v.to_le_bytes()[..usize::from(w)].to_vec()).collect();
                assert_eq!(y_root(&y, width, w), reference_rows(&y, width, low), "w={w}");
            }
            assert_eq!(rows_root(&x, width), reference_rows(&x, width, i8_bytes));
            let scales: Vec<Scale> = (0..rows as i32).map(|i| Scale { m: i * 3 - 7, e: -i }).collect();
            let reference = |x: &[i8], scales: &[Scale]| {
                merkle::root(&x.chunks(width).zip(scales).map(|(r, &s)| merkle::leaf_hash(&x_row_bytes(s, r))).collect::<Vec<_>>())
            };
            assert_eq!(x_root(&x, &scales, width), reference(&x, &scales));
            let ragged = &x[..x.len().saturating_sub(1)];
            assert_eq!(x_root(ragged, &scales, width), reference(ragged, &scales));
            assert_eq!(x_root(&x, &scales[..rows / 2], width), reference(&x, &scales[..rows / 2]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Options;
    use crate::sku::{tests::tiny, Arch};
    use std::sync::Arc;

    /// The fallback that commits on the calling thread gives the trace the committing thread
    /// gives.
    #[test]
    fn inline_commitments_equal_the_threaded_ones() {
        let e = Engine::new(Arc::new(tiny(Arch::Qwen2, 21)), Options::default()).unwrap();
        let prompts = vec![vec![3, 9, 27, 4], vec![50, 8]];
        let (r, t) = run_committed(&e, &prompts, 5).unwrap();
        let mut inline = Inline { sent: Vec::new(), split: Split::default(), committers: Committers::default() };
        e.generate(&prompts, 5, &mut inline).unwrap();
        let ti = inline.committers.traces().pop().unwrap();
        assert_eq!(ti.leaves(), t.leaves());
        assert_eq!(merkle::root(&ti.leaves()), r.gemm_root);
        assert!((0..t.gemms().len()).all(|i| ti.data(i) == t.data(i)));
    }

    /// Each sequence of a batched run, committed apart, has the receipt and trace of its solo
    /// run: prompts of different lengths, a batch whose sequences end at different steps (one
    /// stopped at the end-of-turn token, planted as the first greedy choice of one prompt), on
    /// one and two threads, through the committing thread and in line.
    #[test]
    fn each_sequence_of_a_batch_commits_as_if_run_alone() {
        for threads in [1, 2] {
            let mut sku = tiny(Arch::Llama, 29);
            let opts = Options::cpu(threads, aivm_tensor::matmul::SimdPath::detect());
            let mut prompts: Vec<Vec<u32>> = vec![(0..70).map(|i| (i * 5 % 60) as u32 + 1).collect(), vec![3, 9, 27, 4], vec![50, 8, 11]];
            // Make the second prompt's first choice the end-of-turn token: it ends at step 0.
            let first = Engine::new(Arc::new(sku.clone()), opts.clone()).unwrap().generate(&prompts[1..2], 1, &mut crate::engine::NoTrace).unwrap();
            if let Some(&t) = first[0].first() {
                sku.tokenizer.eos = t;
            }
            let e = Engine::new(Arc::new(sku), opts).unwrap();
            let max_new = 6;
            let each = run_committed_each(&e, &prompts, max_new).unwrap();
            assert_eq!(each.len(), prompts.len());
            assert!(each[1].0.outputs[0].is_empty(), "the planted end-of-turn token ends the second sequence at once");
            assert!(each.iter().any(|(r, _)| r.outputs[0].len() == max_new));
            for (p, (r, t)) in prompts.iter().zip(&each) {
                let (want_r, want_t) = run_committed(&e, std::slice::from_ref(p), max_new).unwrap();
                assert_eq!(r, &want_r);
                assert_eq!(r.hash(), want_r.hash());
                assert_eq!(t.leaves(), want_t.leaves());
                assert!((0..t.gemms().len()).all(|i| t.data(i) == want_t.data(i)));
            }
            // In line, the same.
            let mut inline = Inline { sent: Vec::new(), split: Split { rows: Some(Vec::new()) }, committers: Committers::default() };
            e.generate(&prompts, max_new, &mut inline).unwrap();
            let traces = inline.committers.traces();
            assert!(traces.iter().zip(&each).all(|(a, (_, b))| a.leaves() == b.leaves()));
            // A batch of one is the plain committed run.
            prompts.truncate(1);
            let (one, _) = run_committed(&e, &prompts, max_new).unwrap();
            assert_eq!(run_committed_each(&e, &prompts, max_new).unwrap()[0].0, one);
        }
    }

    /// Runs on several threads at once — committed ones (their steps stay on the calling
    /// thread) beside plain ones (their steps run on a pool worker, `Engine::on_pool`) — all
    /// finish, with the results of one run alone. (The tiny model's matrices are below the
    /// size the committer hashes on the pool, so this does not reach the starvation
    /// `GemmSink::steps_on_pool` avoids; it pins that mixing the two kinds is safe.)
    #[test]
    fn concurrent_committed_and_plain_runs_finish_and_agree() {
        let e = Engine::new(Arc::new(tiny(Arch::Qwen2, 23)), Options::cpu(2, aivm_tensor::matmul::SimdPath::detect())).unwrap();
        // Long enough that the prompt's attention and GEMMs take the pool paths.
        let prompts = vec![(0..120).map(|i| (i * 7 % 60) as u32 + 1).collect::<Vec<u32>>()];
        let (want_r, _) = run_committed(&e, &prompts, 4).unwrap();
        let want_out = e.generate(&prompts, 4, &mut crate::engine::NoTrace).unwrap();
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|i| {
                    let (e, prompts) = (&e, &prompts);
                    s.spawn(move || {
                        if i % 2 == 0 {
                            Ok(run_committed(e, prompts, 4).unwrap().0)
                        } else {
                            Err(e.generate(prompts, 4, &mut crate::engine::NoTrace).unwrap())
                        }
                    })
                })
                .collect();
            for r in runs {
                match r.join().unwrap() {
                    Ok(receipt) => assert_eq!(receipt.hash(), want_r.hash()),
                    Err(out) => assert_eq!(out, want_out),
                }
            }
        });
    }
}
