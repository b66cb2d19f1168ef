//! Openings of committed GEMMs and rows, the response that carries them, and the binary form
//! of a GEMM opening (FREIVALDS_VERIFY's input).

use crate::commit::{GemmCommit, GemmData, Reader};
use crate::merkle::Hash as H;

/// One opened GEMM with its proof into `gemm_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenGemm {
    pub index: u64,
    pub data: GemmData,
    pub proof: Vec<H>,
}

/// One opened row of a GEMM operand: `x` (with scale) or `y`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRow {
    pub index: u64,
    pub commit: GemmCommit,
    pub gemm_proof: Vec<H>,
    pub is_y: bool,
    pub row: u32,
    pub bytes: Vec<u8>,
    pub row_proof: Vec<H>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub gemms: Vec<OpenGemm>,
    pub rows: Vec<OpenRow>,
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
    let np = r.u32()? as usize;
    if np > MAX_PROOF {
        return None;
    }
    Some(r.take(np * 32)?.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
}

impl Response {
    /// Binary form (what a market answer carries): u32 GEMM count, each GEMM as a u64 length
    /// and [`OpenGemm::encode`]; u32 row count, each row as index u64, its GEMM's commitment
    /// ([`GemmCommit::encode_to`]), the GEMM proof (u32 count + hashes), `is_y` u8, row u32,
    /// the row's bytes (u32 length + bytes) and the row proof. Little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((self.gemms.len() as u32).to_le_bytes());
        for g in &self.gemms {
            let e = g.encode();
            b.extend((e.len() as u64).to_le_bytes());
            b.extend(e);
        }
        b.extend((self.rows.len() as u32).to_le_bytes());
        for o in &self.rows {
            b.extend(o.index.to_le_bytes());
            o.commit.encode_to(&mut b);
            write_proof(&mut b, &o.gemm_proof);
            b.push(o.is_y as u8);
            b.extend(o.row.to_le_bytes());
            b.extend((o.bytes.len() as u32).to_le_bytes());
            b.extend_from_slice(&o.bytes);
            write_proof(&mut b, &o.row_proof);
        }
        b
    }

    /// Parse [`Response::encode`]'s form; `None` for anything malformed. Nothing is allocated
    /// beyond what the input's bytes hold.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let mut resp = Response::default();
        for _ in 0..r.u32()? {
            let n = usize::try_from(r.u64()?).ok()?;
            resp.gemms.push(OpenGemm::decode(r.take(n)?)?);
        }
        for _ in 0..r.u32()? {
            let index = r.u64()?;
            let commit = GemmCommit::decode_from(&mut r)?;
            let gemm_proof = read_proof(&mut r)?;
            let is_y = match r.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return None,
            };
            let row = r.u32()?;
            let len = r.u32()? as usize;
            let bytes = r.take(len)?.to_vec();
            let row_proof = read_proof(&mut r)?;
            resp.rows.push(OpenRow { index, commit, gemm_proof, is_y, row, bytes, row_proof });
        }
        r.finished().then_some(resp)
    }
}

/// Longest Merkle proof accepted: a tree of 2⁶⁴ leaves.
const MAX_PROOF: usize = 64;
