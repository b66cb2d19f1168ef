//! The block validators agree on: transactions in order, the header their execution gives
//! (`spec/consensus.md`), and slashing evidence. Its encoding is fixed-width and canonical
//! (one byte string per block), and its digest is SHA-256 of that encoding.

use aivm_runtime::BlockHeader;
use bytes::{Buf, BufMut};
use sha2::{Digest as _, Sha256};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 25_000;
/// Most bytes of transactions (and of evidence) in one block.
pub const MAX_BLOCK_TX_BYTES: usize = 8 << 20;
/// Most evidence items in one block.
pub const MAX_BLOCK_EVIDENCE: usize = 64;
/// Most bytes of one evidence item.
pub const MAX_EVIDENCE_BYTES: usize = 4096;
/// Most bytes of a block's reshare payload (a dealer log or the next epoch's info; see
/// `consensus::epochs`): a dealer log of a 1 000-validator set is ~100 KB.
pub const MAX_RESHARE_BYTES: usize = 256 << 10;
const VERSION: u8 = 4;
/// Bytes of a threshold seed signature (BLS12-381 min-pk: a compressed G2 point).
pub const SEED_BYTES: usize = 96;
/// version, parent, view, height, time, four roots, gas, seed flag and seed, two counts, the
/// reshare payload's flag and length.
const FIXED: usize = 1 + 32 + 8 + 8 + 8 + 4 * 32 + 8 + 1 + SEED_BYTES + 4 + 4 + 1 + 4;
/// An upper bound on any encoding [`Block::decode`] accepts.
pub const MAX_ENCODED: usize = FIXED + 4 * MAX_BLOCK_TXS + MAX_BLOCK_TX_BYTES + MAX_BLOCK_EVIDENCE * (4 + MAX_EVIDENCE_BYTES) + MAX_RESHARE_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Digest of the parent block (the consensus chain).
    pub parent: [u8; 32],
    /// The consensus view the block was proposed in (checked against the engine's round
    /// before a validator votes; liveness counts leader slots by it: `spec/consensus.md`).
    pub view: u64,
    /// Execution header: height, time, the runtime's parent header hash, and the roots and gas
    /// executing `txs` on the parent's state gives.
    pub header: BlockHeader,
    /// Signed transactions, as encoded on the wire.
    pub txs: Vec<Vec<u8>>,
    /// Encoded evidence of validator faults (`crate::evidence`).
    pub evidence: Vec<Vec<u8>>,
    /// The threshold seed signature of the round that certified the parent (checked by
    /// `consensus::seed` before a validator votes); the block's beacon derives from it
    /// (`spec/market.md` §6). `None` only on a child of genesis and outside consensus.
    pub seed: Option<[u8; SEED_BYTES]>,
    /// The threshold key's reshare payload this block carries, encoded (commonware-glue's
    /// `dkg::types::Payload`: a dealer log, or in an epoch's final block the next epoch's
    /// info; genesis carries epoch 0's). Its placement and content are checked by the
    /// consensus layer (`consensus::epochs`), not by execution.
    pub reshare: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block truncated")]
    Truncated,
    #[error("unknown block version {0}")]
    Version(u8),
    #[error("block has {0} transactions (most {MAX_BLOCK_TXS})")]
    TooManyTxs(usize),
    #[error("block has {0} evidence items (most {MAX_BLOCK_EVIDENCE})")]
    TooMuchEvidence(usize),
    #[error("block content over {MAX_BLOCK_TX_BYTES} bytes")]
    TooLarge,
    #[error("evidence item over {MAX_EVIDENCE_BYTES} bytes")]
    EvidenceTooLarge,
    #[error("seed field is not canonical")]
    Seed,
    #[error("reshare payload is not canonical or over {MAX_RESHARE_BYTES} bytes")]
    Reshare,
}

impl Block {
    /// The first block: no transactions, the genesis state's header.
    pub fn genesis(header: BlockHeader) -> Self {
        Block { parent: [0; 32], view: 0, header, txs: Vec::new(), evidence: Vec::new(), seed: None, reshare: None }
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    pub fn encoded_len(&self) -> usize {
        FIXED + self.txs.iter().chain(&self.evidence).map(|t| 4 + t.len()).sum::<usize>() + self.reshare.as_ref().map_or(0, Vec::len)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    pub fn write(&self, w: &mut impl BufMut) {
        let h = &self.header;
        w.put_u8(VERSION);
        w.put_slice(&self.parent);
        w.put_u64(self.view);
        w.put_u64(h.height);
        w.put_u64(h.time_ms);
        for root in [&h.parent_hash, &h.tx_root, &h.receipts_root, &h.state_root] {
            w.put_slice(root);
        }
        w.put_u64(h.gas_used);
        w.put_u8(self.seed.is_some() as u8);
        w.put_slice(self.seed.as_ref().unwrap_or(&[0; SEED_BYTES]));
        for list in [&self.txs, &self.evidence] {
            w.put_u32(list.len() as u32);
            for item in list {
                w.put_u32(item.len() as u32);
                w.put_slice(item);
            }
        }
        w.put_u8(self.reshare.is_some() as u8);
        let reshare = self.reshare.as_deref().unwrap_or(&[]);
        w.put_u32(reshare.len() as u32);
        w.put_slice(reshare);
    }

    /// Read one block, enforcing every limit before allocating.
    pub fn read(r: &mut impl Buf) -> Result<Self, BlockError> {
        if r.remaining() < FIXED - 8 - 5 {
            return Err(BlockError::Truncated);
        }
        let version = r.get_u8();
        if version != VERSION {
            return Err(BlockError::Version(version));
        }
        let mut parent = [0; 32];
        r.copy_to_slice(&mut parent);
        let view = r.get_u64();
        let height = r.get_u64();
        let time_ms = r.get_u64();
        let mut roots = [[0u8; 32]; 4];
        for root in &mut roots {
            r.copy_to_slice(root);
        }
        let gas_used = r.get_u64();
        // Canonical: a flag of 0 or 1, and zeros when there is no seed.
        let flag = r.get_u8();
        let mut seed = [0u8; SEED_BYTES];
        r.copy_to_slice(&mut seed);
        let seed = match flag {
            1 => Some(seed),
            0 if seed == [0; SEED_BYTES] => None,
            _ => return Err(BlockError::Seed),
        };
        let [parent_hash, tx_root, receipts_root, state_root] = roots;
        let header = BlockHeader { height, parent_hash, time_ms, tx_root, receipts_root, state_root, gas_used };
        let mut budget = MAX_BLOCK_TX_BYTES;
        let txs = read_list(r, MAX_BLOCK_TXS, usize::MAX, &mut budget)?;
        let evidence = read_list(r, MAX_BLOCK_EVIDENCE, MAX_EVIDENCE_BYTES, &mut budget).map_err(|e| match e {
            BlockError::TooManyTxs(n) => BlockError::TooMuchEvidence(n),
            e => e,
        })?;
        // Canonical: a flag of 0 or 1, and an empty body when there is no payload.
        if r.remaining() < 5 {
            return Err(BlockError::Truncated);
        }
        let flag = r.get_u8();
        let len = r.get_u32() as usize;
        if len > MAX_RESHARE_BYTES {
            return Err(BlockError::Reshare);
        }
        if r.remaining() < len {
            return Err(BlockError::Truncated);
        }
        let reshare = match (flag, len) {
            (1, _) => {
                let mut body = vec![0; len];
                r.copy_to_slice(&mut body);
                Some(body)
            }
            (0, 0) => None,
            _ => return Err(BlockError::Reshare),
        };
        Ok(Block { parent, view, header, txs, evidence, seed, reshare })
    }

    /// Decode exactly one block from `bytes` (trailing bytes are an error).
    pub fn decode(mut bytes: &[u8]) -> Result<Self, BlockError> {
        let b = Self::read(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(BlockError::Truncated);
        }
        Ok(b)
    }
}

fn read_list(r: &mut impl Buf, max_items: usize, max_item: usize, budget: &mut usize) -> Result<Vec<Vec<u8>>, BlockError> {
    if r.remaining() < 4 {
        return Err(BlockError::Truncated);
    }
    let n = r.get_u32() as usize;
    if n > max_items {
        return Err(BlockError::TooManyTxs(n));
    }
    let mut items = Vec::with_capacity(n.min(r.remaining() / 4));
    for _ in 0..n {
        if r.remaining() < 4 {
            return Err(BlockError::Truncated);
        }
        let len = r.get_u32() as usize;
        if len > max_item {
            return Err(BlockError::EvidenceTooLarge);
        }
        *budget = budget.checked_sub(len).ok_or(BlockError::TooLarge)?;
        if r.remaining() < len {
            return Err(BlockError::Truncated);
        }
        let mut item = vec![0; len];
        r.copy_to_slice(&mut item);
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Block {
        let header = BlockHeader { height: 7, parent_hash: [1; 32], time_ms: 99, tx_root: [2; 32], receipts_root: [3; 32], state_root: [4; 32], gas_used: 5 };
        Block {
            parent: [9; 32],
            view: 11,
            header,
            txs: vec![vec![1, 2, 3], vec![]],
            evidence: vec![vec![7; 10]],
            seed: Some([5; SEED_BYTES]),
            reshare: Some(vec![8; 12]),
        }
    }

    #[test]
    fn round_trip_and_digest() {
        let b = sample();
        let bytes = b.encode();
        assert_eq!(bytes.len(), b.encoded_len());
        assert_eq!(Block::decode(&bytes), Ok(b.clone()));
        let mut other = b.clone();
        other.txs[1].push(0);
        assert_ne!(other.digest(), b.digest());
    }

    #[test]
    fn limits_and_truncation() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(Block::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Block::decode(&trailing).is_err());
        let mut huge = sample();
        huge.txs = vec![Vec::new(); MAX_BLOCK_TXS + 1];
        assert_eq!(Block::decode(&huge.encode()), Err(BlockError::TooManyTxs(MAX_BLOCK_TXS + 1)));
        huge.txs = vec![vec![0; MAX_BLOCK_TX_BYTES / 2 + 1]; 2];
        assert_eq!(Block::decode(&huge.encode()), Err(BlockError::TooLarge));
        let mut v = bytes.clone();
        v[0] = 1;
        assert_eq!(Block::decode(&v), Err(BlockError::Version(1)));
        // The seed: a flag of 0 or 1, zeros when absent.
        let flag = 1 + 32 + 8 + 8 + 8 + 4 * 32 + 8;
        let mut none = sample();
        none.seed = None;
        let none = none.encode();
        assert_eq!(Block::decode(&none).map(|b| b.seed), Ok(None));
        let mut v = bytes.clone();
        v[flag] = 2;
        assert_eq!(Block::decode(&v), Err(BlockError::Seed));
        let mut v = none.clone();
        v[flag + 1] = 1;
        assert_eq!(Block::decode(&v), Err(BlockError::Seed));
        // The reshare payload: a flag of 0 or 1, no body when absent, bounded.
        let mut none = sample();
        none.reshare = None;
        let none = none.encode();
        assert_eq!(Block::decode(&none).map(|b| b.reshare), Ok(None));
        let at = none.len() - 5;
        let mut v = none.clone();
        v[at] = 2;
        assert_eq!(Block::decode(&v), Err(BlockError::Reshare));
        let mut v = none.clone();
        v.truncate(at);
        v.extend_from_slice(&[0, 0, 0, 0, 1, 9]);
        assert_eq!(Block::decode(&v), Err(BlockError::Reshare), "a body without the flag");
        let mut big = sample();
        big.reshare = Some(vec![0; MAX_RESHARE_BYTES + 1]);
        assert_eq!(Block::decode(&big.encode()), Err(BlockError::Reshare));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(b) = Block::decode(&bytes) {
                prop_assert_eq!(b.encode(), bytes, "canonical");
            }
        }
    }
}
