//! Openings of committed GEMMs and rows, the response that carries them, and the binary form
//! of a GEMM opening (FREIVALDS_VERIFY's input).

use crate::commit::{GemmCommit, GemmData, Reader};
use crate::merkle::Hash;

/// One opened GEMM with its proof into `gemm_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenGemm {
    pub index: u64,
    pub data: GemmData,
    pub proof: Vec<Hash>,
}

/// One opened row of a GEMM operand: `x` (with scale) or `y`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRow {
    pub index: u64,
    pub commit: GemmCommit,
    pub gemm_proof: Vec<Hash>,
    pub is_y: bool,
    pub row: u32,
    pub bytes: Vec<u8>,
    pub row_proof: Vec<Hash>,
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
        b.extend((self.proof.len() as u32).to_le_bytes());
        self.proof.iter().for_each(|h| b.extend_from_slice(h));
        b
    }

    /// Parse [`OpenGemm::encode`]'s form; `None` for anything malformed or oversized.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let index = r.u64()?;
        let data = GemmData::decode_from(&mut r)?;
        let np = r.u32()? as usize;
        if np > MAX_PROOF {
            return None;
        }
        let proof = r.take(np * 32)?.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        r.finished().then_some(OpenGemm { index, data, proof })
    }
}

/// Longest Merkle proof accepted: a tree of 2⁶⁴ leaves.
const MAX_PROOF: usize = 64;
