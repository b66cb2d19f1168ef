//! Merkle leaves of many equal-length rows at once: `BLAKE3(0x00 ‖ prefix_i ‖ row_i)` for every
//! row of a matrix, sixteen rows side by side in the SIMD lanes.
//!
//! A committed run hashes every row of every GEMM operand as its own leaf. BLAKE3 is fast on
//! long inputs because it compresses up to sixteen 1 KiB chunks side by side; a row is
//! 64 B–6 KiB, so hashing rows one by one leaves the lanes empty (measured here: 0.5 GB/s per
//! row against 5.8 GB/s on one long input). The rows of one matrix have the same length, so
//! chunk `j` of sixteen rows can fill the lanes instead. Each leaf is still the plain BLAKE3
//! hash of its message — the commitment format does not change, and the tests compare
//! every length against `blake3::hash`.
//!
//! The batched compression is BLAKE3's own (`blake3::platform`, the crate's SIMD kernels),
//! always on inputs with readable bytes after them ([`Batch`] says why).
//! That module is public but undocumented, so the workspace pins the `blake3` version
//! exactly; what this file adds is only the BLAKE3 tree layout (chunk flags and counters, the
//! parent nodes of a multi-chunk message), as the BLAKE3 paper §2 defines it. The final block
//! of each row and a multi-chunk row's parent nodes start from per-row chaining values, which
//! `hash_many` cannot take: a full batch compresses them side by side too
//! ([`crate::blake3_lanes`]).

/// A 32-byte BLAKE3 output (`merkle::Hash`; not imported from there, which builds on this module).
pub type Hash = [u8; 32];
use crate::blake3_lanes::{self as lanes, LANES};
use blake3::platform::{le_bytes_from_words_32, words_from_le_bytes_32, Platform};
use blake3::IncrementCounter;

const CHUNK: usize = 1024;
const BLOCK: usize = 64;
const CHUNK_START: u8 = 1;
const CHUNK_END: u8 = 2;
const PARENT: u8 = 4;
const ROOT: u8 = 8;
const IV: [u32; 8] = [0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19];
/// Fewest messages in a batch whose final blocks and chunk trees are compressed side by side
/// ([`lanes::compress`]) rather than one at a time: a sixteen-lane compression costs 2.3–2.4
/// single ones here (`blake3_lanes::tests::lanes_against_single`), so two messages go singly.
const MIN_SIDE_BY_SIDE: usize = 3;
/// Longest prefix between the 0x00 leaf tag and the row (an activation row's scale).
pub const MAX_PREFIX: usize = 8;

/// `BLAKE3(0x00 ‖ prefix(i) ‖ row_i)` for each row `bytes[i·row_len ..][.. row_len]` (a last
/// partial row is a row); `prefix` writes exactly `prefix_len` bytes (≤ [`MAX_PREFIX`]).
pub fn leaves(bytes: &[u8], row_len: usize, prefix_len: usize, prefix: impl Fn(usize, &mut [u8])) -> Vec<Hash> {
    tagged(0, bytes, row_len, prefix_len, prefix)
}

/// `BLAKE3(tag ‖ prefix(i) ‖ row_i)` for each row, as [`leaves`] (tag 1 over pairs of
/// hashes: a level of Merkle nodes).
pub fn tagged(tag: u8, bytes: &[u8], row_len: usize, prefix_len: usize, prefix: impl Fn(usize, &mut [u8])) -> Vec<Hash> {
    let row_len = row_len.max(1);
    let prefix_len = prefix_len.min(MAX_PREFIX);
    let full = bytes.len() / row_len;
    let mut out = Vec::with_capacity(bytes.len().div_ceil(row_len));
    // Side by side pays from two rows up, and while a row is shorter than the lanes' worth of
    // chunks (a longer one fills them by itself in `blake3::Hasher`).
    let len = 1 + prefix_len + row_len;
    let side_by_side = (full >= 2 && len < LANES * CHUNK) || (full == 1 && len > 2 * CHUNK && len < LANES * CHUNK);
    let batched = if side_by_side { full } else { 0 };
    let platform = Platform::detect();
    let mut batch = Batch::new(tag, len, batched.min(LANES));
    for first in (0..batched).step_by(LANES) {
        let rows = (first..(first + LANES).min(batched)).map(|i| &bytes[i * row_len..(i + 1) * row_len]);
        batch.hash(platform, first, rows, &prefix, &mut out);
    }
    for (i, row) in bytes[batched * row_len..].chunks(row_len).enumerate() {
        out.push(one(tag, row, batched + i, prefix_len, &prefix));
    }
    out
}

/// `BLAKE3(0x00 ‖ row)` for rows of any lengths, in input order (a verifier's opened rows):
/// rows of one length are hashed side by side as in [`leaves`], a length seen once alone.
pub fn leaves_of(rows: &[&[u8]]) -> Vec<Hash> {
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        by_len.entry(r.len()).or_default().push(i);
    }
    let mut out = vec![[0u8; 32]; rows.len()];
    let platform = Platform::detect();
    for (row_len, idx) in by_len {
        let len = 1 + row_len;
        if idx.len() < 2 || len >= LANES * CHUNK {
            for &i in &idx {
                out[i] = one(0, rows[i], i, 0, &|_, _| {});
            }
            continue;
        }
        let mut batch = Batch::new(0, len, idx.len().min(LANES));
        let mut hashes = Vec::with_capacity(idx.len());
        for group in idx.chunks(LANES) {
            batch.hash(platform, 0, group.iter().map(|&i| rows[i]), &|_, _| {}, &mut hashes);
        }
        for (&i, h) in idx.iter().zip(hashes) {
            out[i] = h;
        }
    }
    out
}

/// One message the plain way (a last partial row, a lone or long row).
fn one(tag: u8, row: &[u8], i: usize, prefix_len: usize, prefix: &impl Fn(usize, &mut [u8])) -> Hash {
    let mut head = [tag; 1 + MAX_PREFIX];
    prefix(i, &mut head[1..1 + prefix_len]);
    let mut h = blake3::Hasher::new();
    h.update(&head[..1 + prefix_len]);
    h.update(row);
    *h.finalize().as_bytes()
}

/// Scratch for up to [`LANES`] messages of `len` bytes, each assembled whole (tag, prefix,
/// row) in its own lane of `stride` bytes. The lanes end at least 64 bytes before the next:
/// BLAKE3's AVX-512 `hash_many` reads up to 48 bytes past an input's block in its 4-way path
/// (a segfault when an input ended at the end of an allocation, seen in CI), so every input
/// must be followed by readable bytes. The copy costs one pass over the rows.
struct Batch {
    tag: u8,
    len: usize,
    stride: usize,
    lanes: Vec<u8>,
}

impl Batch {
    fn new(tag: u8, len: usize, lanes: usize) -> Self {
        let stride = len.next_multiple_of(BLOCK) + BLOCK;
        Batch { tag, len, stride, lanes: vec![0; lanes * stride] }
    }

    /// Hash the messages `tag ‖ prefix(first + l) ‖ rows[l]`, appending their hashes to `out`.
    fn hash<'a>(&mut self, p: Platform, first: usize, rows: impl Iterator<Item = &'a [u8]>, prefix: &impl Fn(usize, &mut [u8]), out: &mut Vec<Hash>) {
        let (len, stride) = (self.len, self.stride);
        let mut n = 0;
        for (l, row) in rows.enumerate() {
            let head = len - row.len();
            let lane = &mut self.lanes[l * stride..l * stride + len];
            lane[0] = self.tag;
            prefix(first + l, &mut lane[1..head]);
            lane[head..].copy_from_slice(row);
            n = l + 1;
        }
        let chunks = len.div_ceil(CHUNK).max(1);
        let lanes = &self.lanes;
        // Bytes of chunk `j` of message `l` (the whole chunk; the last may be short).
        let chunk = |l: usize, j: usize| -> &[u8] { &lanes[l * stride + j * CHUNK..l * stride + ((j + 1) * CHUNK).min(len)] };
        // Chaining values of chunk `j`, lane `l`: `cvs[j]` lane `l`.
        let mut cvs = vec![lanes::iv(); chunks];
        let mut buf = [0u8; LANES * 32];
        if n == 1 && chunks > 2 {
            // One message: its whole chunks (all but the last) in the lanes, counters 0, 1, ….
            let inputs: Vec<&[u8]> = (0..chunks - 1).map(|j| chunk(0, j)).collect();
            many::<CHUNK>(p, &inputs, 0, IncrementCounter::Yes, CHUNK_START, CHUNK_END, &mut buf[..inputs.len() * 32]);
            for (j, cv) in cvs.iter_mut().enumerate().take(chunks - 1) {
                lanes::set_lane(cv, 0, &words(&buf[j * 32..(j + 1) * 32]));
            }
        } else {
            for (j, cv) in cvs.iter_mut().enumerate().take(chunks - 1) {
                let inputs: Vec<&[u8]> = (0..n).map(|l| chunk(l, j)).collect();
                many::<CHUNK>(p, &inputs, j as u64, IncrementCounter::No, CHUNK_START, CHUNK_END, &mut buf[..n * 32]);
                for l in 0..n {
                    lanes::set_lane(cv, l, &words(&buf[l * 32..(l + 1) * 32]));
                }
            }
        }
        // The last chunk: its full blocks side by side, then each final (maybe short) block.
        let j = chunks - 1;
        let last_len = len - j * CHUNK;
        let final_len = (last_len - 1) % BLOCK + 1;
        let blocks = (last_len - final_len) / BLOCK;
        if blocks > 0 {
            let inputs: Vec<&[u8]> = (0..n).map(|l| chunk(l, j)).collect();
            blocks_many(p, blocks, &inputs, j as u64, &mut buf[..n * 32]);
        }
        let flags = CHUNK_END | if blocks == 0 { CHUNK_START } else { 0 } | if chunks == 1 { ROOT } else { 0 };
        let side_by_side = n >= MIN_SIDE_BY_SIDE;
        let mut finals = [[0u8; BLOCK]; LANES];
        for l in 0..n {
            let cv = if blocks > 0 { words(&buf[l * 32..(l + 1) * 32]) } else { IV };
            finals[l][..final_len].copy_from_slice(&chunk(l, j)[blocks * BLOCK..]);
            if side_by_side {
                lanes::set_lane(&mut cvs[j], l, &cv);
            } else {
                let mut cv = cv;
                p.compress_in_place(&mut cv, &finals[l], final_len as u8, j as u64, flags);
                lanes::set_lane(&mut cvs[j], l, &cv);
            }
        }
        if side_by_side {
            lanes::compress(&mut cvs[j], &lanes::words(&finals, final_len), j as u64, final_len as u32, flags as u32);
        }
        let root = if chunks == 1 {
            cvs[0]
        } else if side_by_side {
            merge_lanes(&cvs, ROOT)
        } else {
            let mut root = lanes::iv();
            for l in 0..n {
                let per: Vec<[u32; 8]> = cvs.iter().map(|cv| lanes::lane(cv, l)).collect();
                lanes::set_lane(&mut root, l, &merge(p, &per, ROOT));
            }
            root
        };
        for l in 0..n {
            out.push(le_bytes_from_words_32(&lanes::lane(&root, l)));
        }
    }
}

/// [`merge`] for every lane at once: the chunk trees of one batch share their shape.
fn merge_lanes(cvs: &[[lanes::Lanes; 8]], top: u8) -> [lanes::Lanes; 8] {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let k = 1 << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
    let (l, r) = (merge_lanes(&cvs[..k], 0), merge_lanes(&cvs[k..], 0));
    let mut m = [[0u32; LANES]; 16];
    m[..8].copy_from_slice(&l);
    m[8..].copy_from_slice(&r);
    let mut cv = lanes::iv();
    lanes::compress(&mut cv, &m, 0, BLOCK as u32, (PARENT | top) as u32);
    cv
}

fn words(b: &[u8]) -> [u32; 8] {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    words_from_le_bytes_32(&a)
}

/// The root of BLAKE3's tree over chunk chaining values: the left subtree holds the largest
/// power of two of chunks below their count.
fn merge(p: Platform, cvs: &[[u32; 8]], top: u8) -> [u32; 8] {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let k = 1 << (usize::BITS - 1 - (cvs.len() - 1).leading_zeros());
    let (l, r) = (merge(p, &cvs[..k], 0), merge(p, &cvs[k..], 0));
    let mut block = [0u8; BLOCK];
    block[..32].copy_from_slice(&le_bytes_from_words_32(&l));
    block[32..].copy_from_slice(&le_bytes_from_words_32(&r));
    let mut cv = IV;
    p.compress_in_place(&mut cv, &block, BLOCK as u8, 0, PARENT | top);
    cv
}

/// Chaining values of `N`-byte inputs side by side, at chunk counter `counter` (each input's
/// own with `step` = Yes).
fn many<const N: usize>(p: Platform, inputs: &[&[u8]], counter: u64, step: IncrementCounter, start: u8, end: u8, out: &mut [u8]) {
    // Every input is at least N bytes by construction (whole chunks or whole blocks).
    let arrays: Vec<&[u8; N]> = inputs.iter().filter_map(|s| s.first_chunk::<N>()).collect();
    debug_assert_eq!(arrays.len(), inputs.len());
    p.hash_many(&arrays, &IV, counter, step, 0, start, end, out);
}

/// The state after the first `blocks` (1..=15) whole blocks of each input: a chunk's running
/// chaining value before its final block (no CHUNK_END yet).
fn blocks_many(p: Platform, blocks: usize, inputs: &[&[u8]], counter: u64, out: &mut [u8]) {
    macro_rules! dispatch {
        ($($b:literal),*) => {
            match blocks {
                $($b => many::<{ $b * BLOCK }>(p, inputs, counter, IncrementCounter::No, CHUNK_START, 0, out),)*
                _ => unreachable!("a chunk has at most 15 whole blocks before its last"),
            }
        };
    }
    dispatch!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(tag: u8, bytes: &[u8], row_len: usize, prefix_len: usize, prefix: impl Fn(usize, &mut [u8])) -> Vec<Hash> {
        bytes
            .chunks(row_len.max(1))
            .enumerate()
            .map(|(i, row)| {
                let mut head = vec![tag; 1 + prefix_len];
                prefix(i, &mut head[1..]);
                head.extend_from_slice(row);
                *blake3::hash(&head).as_bytes()
            })
            .collect()
    }

    #[test]
    fn every_length_is_blake3() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let pre = |i: usize, b: &mut [u8]| b.iter_mut().enumerate().for_each(|(k, v)| *v = (i * 7 + k) as u8);
        // Around every boundary: block (64), chunk (1024), two and several chunks, the lanes'
        // worth (16 chunks, where rows go back to one at a time), with the tag and an 8-byte
        // prefix moving them.
        let mut lengths: Vec<usize> = (1..=140).collect();
        for edge in [BLOCK, 2 * BLOCK, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK, LANES * CHUNK] {
            lengths.extend(edge.saturating_sub(10)..=edge + 10);
        }
        lengths.extend([576, 652, 2304, 6144]);
        for &row_len in &lengths {
            for prefix_len in [0, MAX_PREFIX] {
                for rows in [1usize, 2, 3, 16, 17, 33] {
                    for tag in [0u8, 1] {
                        let n = (rows * row_len + row_len / 2).min(data.len());
                        let got = tagged(tag, &data[..n], row_len, prefix_len, pre);
                        assert_eq!(got, reference(tag, &data[..n], row_len, prefix_len, pre), "row {row_len} prefix {prefix_len} rows {rows} tag {tag}");
                    }
                }
            }
        }
        assert!(leaves(&[], 5, 0, |_, _| {}).is_empty());
    }

    /// Rows of mixed lengths, in a mixed order (as a row chain opens them), each its leaf.
    #[test]
    fn leaves_of_mixed_lengths_are_blake3() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let lens = [584usize, 2304, 584, 6144, 6144, 1544, 2304, 0, 1, 17 * CHUNK, 584, 63, 64, 65];
        let rows: Vec<&[u8]> = (0..40).map(|i| &data[i * 997..i * 997 + lens[i % lens.len()]]).collect();
        let want: Vec<Hash> = rows.iter().map(|r| *blake3::hash(&[&[0u8][..], r].concat()).as_bytes()).collect();
        assert_eq!(leaves_of(&rows), want);
        assert!(leaves_of(&[]).is_empty());
    }
}
