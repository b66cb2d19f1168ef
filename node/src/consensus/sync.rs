//! State sync's trust anchor (`spec/consensus.md` §State sync). A joining node takes a
//! snapshot's block only with a finalization certificate that verifies under the genesis
//! threshold key and names that block; the snapshot's state is then checked against the
//! block's state root chunk by chunk (`aivm_runtime::store::snapshot`). After the restore,
//! the certificate is the node's floor: marshal delivers blocks from it on and simplex starts
//! at its view, so nothing below it is fetched or replayed.

use super::{participants, ConsensusError, Digest, Scheme};
use crate::block::{Block, MAX_ENCODED};
use crate::genesis::GenesisFile;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::types::Finalization;
use commonware_parallel::Sequential;
use std::path::{Path, PathBuf};

pub type FinalizationCert = Finalization<Scheme, Digest>;

/// The file in a node's data directory holding the certificate its state was synced to.
pub const FLOOR_FILE: &str = "state-sync.floor";

/// A snapshot's block, proven finalized.
pub struct Anchor {
    pub height: u64,
    pub digest: [u8; 32],
    pub block: Block,
    pub finalization: Vec<u8>,
}

/// Decode `finalization` and check it under the genesis threshold key.
fn certificate(genesis: &GenesisFile, finalization: &[u8]) -> Result<FinalizationCert, ConsensusError> {
    let cert = FinalizationCert::decode(finalization.to_vec()).map_err(|e| ConsensusError::Anchor(format!("finalization certificate: {e}")))?;
    let verifier = participants(genesis)?.verifier(genesis.chain_id);
    if !cert.verify(&mut commonware_utils::sys_rng(), &verifier, &Sequential) {
        return Err(ConsensusError::Anchor("the finalization certificate does not verify under this chain's threshold key".into()));
    }
    Ok(cert)
}

/// Check a served snapshot anchor: the certificate verifies and finalizes exactly `block`.
pub fn check_anchor(genesis: &GenesisFile, finalization: &[u8], block: &[u8]) -> Result<Anchor, ConsensusError> {
    let cert = certificate(genesis, finalization)?;
    if block.len() > MAX_ENCODED {
        return Err(ConsensusError::Anchor(format!("block of {} bytes is over the limit", block.len())));
    }
    let block = Block::decode(block).map_err(|e| ConsensusError::Anchor(format!("block: {e}")))?;
    let digest = block.digest();
    if cert.proposal.payload.0 != digest {
        return Err(ConsensusError::Anchor("the certificate finalizes a different block".into()));
    }
    Ok(Anchor { height: block.height(), digest, block, finalization: finalization.to_vec() })
}

/// Encode a certificate for an anchor file or an RPC answer.
pub fn encode(cert: &FinalizationCert) -> Vec<u8> {
    cert.encode().to_vec()
}

pub fn floor_path(data: &Path) -> PathBuf {
    data.join(FLOOR_FILE)
}

/// Record the certificate a restored state starts from (written whole or not at all).
pub fn save_floor(data: &Path, finalization: &[u8]) -> std::io::Result<()> {
    let tmp = data.join(format!("{FLOOR_FILE}.tmp"));
    std::fs::write(&tmp, finalization)?;
    std::fs::rename(tmp, floor_path(data))
}

/// The synced floor of this node, checked again (it is a file), if it was state-synced.
pub fn load_floor(genesis: &GenesisFile, data: &Path) -> Result<Option<FinalizationCert>, ConsensusError> {
    let path = floor_path(data);
    match std::fs::read(&path) {
        Ok(b) => certificate(genesis, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConsensusError::Storage(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};

    fn runtime_header(height: u64) -> aivm_runtime::BlockHeader {
        aivm_runtime::BlockHeader { height, parent_hash: [1; 32], time_ms: 99, tx_root: [2; 32], receipts_root: [3; 32], state_root: [4; 32], gas_used: 5 }
    }

    fn finalization(signers: &[Scheme], block: &Block, view: u64) -> Vec<u8> {
        let proposal = Proposal::new(Round::new(Epoch::zero(), View::new(view)), View::new(view - 1), Digest(block.digest()));
        let votes: Vec<_> = signers.iter().map(|s| Finalize::sign(s, proposal.clone()).expect("sign")).collect();
        let votes = commonware_utils::iter::NonEmpty::try_new(votes.into_iter()).expect("votes");
        encode(&FinalizationCert::from_owned_finalizes(&signers[0], votes, &Sequential).expect("certificate"))
    }

    /// A certificate of three of four validators proves its block; another block, a flipped
    /// byte, or another chain's key does not.
    #[test]
    fn only_a_certificate_under_the_genesis_key_anchors_its_block() {
        let (genesis, schemes) = super::super::test_network(41, 31_000);
        let block = Block { parent: [3; 32], view: 20, header: runtime_header(12), txs: Vec::new(), evidence: Vec::new(), seed: None };
        let cert = finalization(&schemes[..3], &block, 20);
        let a = check_anchor(&genesis, &cert, &block.encode()).expect("a valid anchor");
        assert_eq!((a.height, a.digest), (12, block.digest()));

        let other = Block { header: runtime_header(13), ..block.clone() };
        assert!(check_anchor(&genesis, &cert, &other.encode()).is_err(), "the certificate names another block");
        let mut flipped = cert.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(check_anchor(&genesis, &flipped, &block.encode()).is_err(), "a flipped signature byte");
        assert!(check_anchor(&genesis, &cert[..cert.len() - 3], &block.encode()).is_err(), "a truncated certificate");
        let (foreign, foreign_schemes) = super::super::test_network(42, 31_100);
        assert!(check_anchor(&foreign, &cert, &block.encode()).is_err(), "another chain's key");
        let theirs = finalization(&foreign_schemes, &block, 20);
        assert!(check_anchor(&genesis, &theirs, &block.encode()).is_err(), "a certificate of another chain");

        let dir = tempfile::tempdir().expect("tmp");
        assert!(load_floor(&genesis, dir.path()).expect("no floor").is_none());
        save_floor(dir.path(), &cert).expect("save");
        assert!(load_floor(&genesis, dir.path()).expect("floor").is_some());
        std::fs::write(floor_path(dir.path()), &flipped).expect("write");
        assert!(load_floor(&genesis, dir.path()).is_err(), "a tampered floor file stops the node");
    }
}
