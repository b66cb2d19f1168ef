//! Openings of committed GEMMs and rows, the response that carries them, and the binary form
//! of a GEMM opening (FREIVALDS_VERIFY's input).

use crate::commit::{GemmCommit, GemmData, Reader};
use crate::merkle::Hash as H;
use std::borrow::Cow;

/// One opened GEMM with its proof into `gemm_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenGemm {
    pub index: u64,
    pub data: GemmData,
    pub proof: Vec<H>,
}

/// One opened row of a GEMM operand: `x` (with scale) or `y`. Its GEMM's commitment is in
/// the response's table ([`Response::commits`]) under `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRow<'a> {
    pub index: u64,
    pub is_y: bool,
    pub row: u32,
    /// The row as committed; borrowed from the answer's bytes when decoded (aligned to four
    /// bytes there, so a `y` row is read in place as i32s).
    pub bytes: Cow<'a, [u8]>,
    pub row_proof: Vec<H>,
}

/// A worker's answer to a challenge: every GEMM it opens (whole, or by rows) has its
/// commitment once in `commits`, and one multiproof takes all of them to `gemm_root`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response<'a> {
    /// `(index, commitment)` of each opened GEMM, ascending by index, each once.
    pub commits: Vec<(u64, GemmCommit)>,
    /// [`crate::merkle::prove_many`] of the commitments' leaves.
    pub proof: Vec<H>,
    /// Whole GEMMs: index and data (the data's commitment is the table's).
    pub gemms: Vec<(u64, GemmData)>,
    pub rows: Vec<OpenRow<'a>>,
}

impl OpenGemm {
    /// Binary form (FREIVALDS_VERIFY input): index u64, the GEMM's data ([`GemmData::encode_to`]),
    /// proof count u32 + hashes. Little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.index.to_le_bytes());
        self.data.encode_to(&mut b);
        write_proof(&mut b, &self.proof);
        b
    }

    /// Parse [`OpenGemm::encode`]'s form; `None` for anything malformed or oversized.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let index = r.u64()?;
        let data = GemmData::decode_from(&mut r)?;
        let proof = read_proof(&mut r)?;
        r.finished().then_some(OpenGemm { index, data, proof })
    }
}

fn write_proof(b: &mut Vec<u8>, proof: &[H]) {
    b.extend((proof.len() as u32).to_le_bytes());
    proof.iter().for_each(|h| b.extend_from_slice(h));
}

fn read_proof(r: &mut Reader<'_>) -> Option<Vec<H>> {
    read_hashes(r, MAX_PROOF)
}

/// A u32 count (at most `max`) and that many hashes; the count is checked against the bytes
/// left before anything is allocated.
fn read_hashes(r: &mut Reader<'_>, max: usize) -> Option<Vec<H>> {
    let np = r.u32()? as usize;
    if np > max {
        return None;
    }
    Some(r.take(np.checked_mul(32)?)?.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

impl<'a> Response<'a> {
    /// The commitment the table holds for GEMM `index`.
    pub fn commit(&self, index: u64) -> Option<&GemmCommit> {
        self.commits.binary_search_by_key(&index, |(i, _)| *i).ok().map(|at| &self.commits[at].1)
    }

    /// Binary form (what a market answer carries), little-endian:
    /// - u32 commitment count, each as index u64 and [`GemmCommit::encode_to`];
    /// - the multiproof: u32 count + hashes;
    /// - u32 GEMM count, each as index u64 and [`GemmData::encode_operands_to`];
    /// - u32 row count, each as index u64, `is_y` u8, row u32, length u32, zero bytes to the
    ///   next multiple of four from the answer's start, the row's bytes, and its row proof
    ///   (u32 count + hashes).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((self.commits.len() as u32).to_le_bytes());
        for (i, c) in &self.commits {
            b.extend(i.to_le_bytes());
            c.encode_to(&mut b);
        }
        write_proof(&mut b, &self.proof);
        b.extend((self.gemms.len() as u32).to_le_bytes());
        for (i, g) in &self.gemms {
            b.extend(i.to_le_bytes());
            g.encode_operands_to(&mut b);
        }
        b.extend((self.rows.len() as u32).to_le_bytes());
        for o in &self.rows {
            b.extend(o.index.to_le_bytes());
            b.push(o.is_y as u8);
            b.extend(o.row.to_le_bytes());
            b.extend((o.bytes.len() as u32).to_le_bytes());
            b.resize(b.len().next_multiple_of(4), 0);
            b.extend_from_slice(&o.bytes);
            write_proof(&mut b, &o.row_proof);
        }
        b
    }

    /// Parse [`Response::encode`]'s form; `None` for anything malformed or not in that form
    /// exactly: commitments out of order or repeated, one that no GEMM or row uses, a GEMM or
    /// row whose index is not in the table, padding that is not zero. Rows borrow from `b`;
    /// nothing is allocated beyond what the input's bytes hold.
    pub fn decode(b: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let mut resp = Response::default();
        for _ in 0..r.u32()? {
            let index = r.u64()?;
            let c = GemmCommit::decode_from(&mut r)?;
            if resp.commits.last().is_some_and(|(last, _)| *last >= index) {
                return None;
            }
            resp.commits.push((index, c));
        }
        // A multiproof has at most a proof's length per leaf; the bytes bound it first.
        resp.proof = read_hashes(&mut r, resp.commits.len().saturating_mul(MAX_PROOF))?;
        let mut used = vec![false; resp.commits.len()];
        let mut slot = |index: u64| -> Option<usize> {
            let at = resp.commits.binary_search_by_key(&index, |(i, _)| *i).ok()?;
            used[at] = true;
            Some(at)
        };
        for _ in 0..r.u32()? {
            let index = r.u64()?;
            let commit = resp.commits[slot(index)?].1;
            resp.gemms.push((index, GemmData::decode_operands(commit, &mut r)?));
        }
        for _ in 0..r.u32()? {
            let index = r.u64()?;
            slot(index)?;
            let is_y = match r.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return None,
            };
            let row = r.u32()?;
            let len = r.u32()? as usize;
            let pad = r.position().next_multiple_of(4) - r.position();
            if r.take(pad)?.iter().any(|&z| z != 0) {
                return None;
            }
            let bytes = Cow::Borrowed(r.take(len)?);
            let row_proof = read_proof(&mut r)?;
            resp.rows.push(OpenRow { index, is_y, row, bytes, row_proof });
        }
        (r.finished() && used.iter().all(|&u| u)).then_some(resp)
    }
}

/// Longest Merkle proof accepted: a tree of 2⁶⁴ leaves.
const MAX_PROOF: usize = 64;
