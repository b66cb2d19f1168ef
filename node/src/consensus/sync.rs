//! State sync's trust anchor (`spec/consensus.md` §State sync). A joining node takes a
//! snapshot's block only with a finalization certificate that verifies under the genesis
//! threshold key and names that block; the snapshot's state is then checked against the
//! block's state root chunk by chunk (`aivm_runtime::store::snapshot`). After the restore,
//! the certificate is the node's floor: marshal delivers blocks from it on and the epoch's
//! engine starts at its view, so nothing below it is fetched or replayed. The epoch actors
//! start from the floor epoch's info, which the peer serves with the anchor and the restored
//! state authenticates (its hash is recorded there: `EngineEpoch::info_hash`).

use super::epochs::{self, Info};
use super::{ConsensusError, Digest, Scheme};
use crate::block::{Block, MAX_ENCODED};
use crate::genesis::GenesisFile;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::types::Finalization;
use commonware_parallel::Sequential;
use std::path::{Path, PathBuf};

pub type FinalizationCert = Finalization<Scheme, Digest>;

/// The file in a node's data directory holding the certificate its state was synced to.
pub const FLOOR_FILE: &str = "state-sync.floor";

/// A snapshot's block, proven finalized, and its epoch's info (checked against the restored
/// state by the caller: [`check_info`]).
pub struct Anchor {
    pub height: u64,
    pub digest: [u8; 32],
    pub block: Block,
    pub finalization: Vec<u8>,
    pub epoch: u64,
    pub info: Vec<u8>,
}

/// Where a state-synced node starts: the certificate and its epoch's info.
#[derive(Clone)]
pub struct Floor {
    pub cert: FinalizationCert,
    pub info: Info,
}

/// Decode `finalization` and check it under the genesis threshold key (the same group key in
/// every epoch: resharing keeps it).
fn certificate(genesis: &GenesisFile, finalization: &[u8]) -> Result<FinalizationCert, ConsensusError> {
    let cert = FinalizationCert::decode(finalization.to_vec()).map_err(|e| ConsensusError::Anchor(format!("finalization certificate: {e}")))?;
    let (_, sharing) = super::threshold::sharing(&genesis.threshold, &genesis.active_identities())?;
    let verifier = Scheme::certificate_verifier(&super::namespace(genesis.chain_id), *sharing.public());
    if !cert.verify(&mut commonware_utils::sys_rng(), &verifier, &Sequential) {
        return Err(ConsensusError::Anchor("the finalization certificate does not verify under this chain's threshold key".into()));
    }
    Ok(cert)
}

/// The epoch info in `bytes`, if it is the info of `epoch`.
fn info_of(bytes: &[u8], epoch: u64) -> Result<Info, ConsensusError> {
    match epochs::decode_payload(bytes).map_err(|e| ConsensusError::Anchor(format!("epoch info: {e}")))? {
        commonware_glue::dkg::types::Payload::EpochInfo(info) if info.epoch.get() == epoch => Ok(info),
        _ => Err(ConsensusError::Anchor(format!("not the info of epoch {epoch}"))),
    }
}

/// Check a served snapshot anchor: the certificate verifies and finalizes exactly `block`,
/// and `info` is an epoch info of the certificate's epoch.
pub fn check_anchor(genesis: &GenesisFile, finalization: &[u8], block: &[u8], info: &[u8]) -> Result<Anchor, ConsensusError> {
    use commonware_consensus::Epochable as _;
    let cert = certificate(genesis, finalization)?;
    let epoch = cert.epoch().get();
    info_of(info, epoch)?;
    if block.len() > MAX_ENCODED {
        return Err(ConsensusError::Anchor(format!("block of {} bytes is over the limit", block.len())));
    }
    let block = Block::decode(block).map_err(|e| ConsensusError::Anchor(format!("block: {e}")))?;
    let digest = block.digest();
    if cert.proposal.payload.0 != digest {
        return Err(ConsensusError::Anchor("the certificate finalizes a different block".into()));
    }
    Ok(Anchor { height: block.height(), digest, block, finalization: finalization.to_vec(), epoch, info: info.to_vec() })
}

/// Whether the anchor's epoch info is the one the restored state records for its epoch.
pub fn check_info(anchor: &Anchor, read: impl Fn(&aivm_runtime::StateKey) -> Option<aivm_runtime::StateValue>) -> Result<(), ConsensusError> {
    let recorded = crate::execution::read_engine(read, anchor.epoch)
        .ok_or_else(|| ConsensusError::Anchor(format!("the state records no signers for epoch {}", anchor.epoch)))?;
    if recorded.info_hash != blake3::hash(&anchor.info).as_bytes() {
        return Err(ConsensusError::Anchor("the served epoch info is not the one the state records".into()));
    }
    Ok(())
}

/// Encode a certificate for an anchor file or an RPC answer.
pub fn encode(cert: &FinalizationCert) -> Vec<u8> {
    cert.encode().to_vec()
}

pub fn floor_path(data: &Path) -> PathBuf {
    data.join(FLOOR_FILE)
}

/// Record the certificate a restored state starts from and its epoch's info (written whole
/// or not at all): the certificate's length (u32 BE), the certificate, the info.
pub fn save_floor(data: &Path, finalization: &[u8], info: &[u8]) -> std::io::Result<()> {
    let tmp = data.join(format!("{FLOOR_FILE}.tmp"));
    let bytes = [&(finalization.len() as u32).to_be_bytes()[..], finalization, info].concat();
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, floor_path(data))
}

/// The synced floor of this node, checked again (it is a file), if it was state-synced.
pub fn load_floor(genesis: &GenesisFile, data: &Path) -> Result<Option<Floor>, ConsensusError> {
    use commonware_consensus::Epochable as _;
    let path = floor_path(data);
    match std::fs::read(&path) {
        Ok(b) => {
            let bad = || ConsensusError::Anchor(format!("{} is damaged", path.display()));
            let n = u32::from_be_bytes(b.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(bad)?) as usize;
            let fin = b.get(4..4 + n).ok_or_else(bad)?;
            let cert = certificate(genesis, fin)?;
            let info = info_of(&b[4 + n..], cert.epoch().get())?;
            Ok(Some(Floor { cert, info }))
        }
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
        let block = Block { parent: [3; 32], view: 20, header: runtime_header(12), txs: Vec::new(), evidence: Vec::new(), seed: None, reshare: None };
        let cert = finalization(&schemes[..3], &block, 20);
        let info = genesis.epoch_info.clone();
        let a = check_anchor(&genesis, &cert, &block.encode(), &info).expect("a valid anchor");
        assert_eq!((a.height, a.digest, a.epoch), (12, block.digest(), 0));

        let other = Block { header: runtime_header(13), ..block.clone() };
        assert!(check_anchor(&genesis, &cert, &other.encode(), &info).is_err(), "the certificate names another block");
        let mut flipped = cert.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(check_anchor(&genesis, &flipped, &block.encode(), &info).is_err(), "a flipped signature byte");
        assert!(check_anchor(&genesis, &cert[..cert.len() - 3], &block.encode(), &info).is_err(), "a truncated certificate");
        assert!(check_anchor(&genesis, &cert, &block.encode(), &info[..info.len() - 1]).is_err(), "a truncated epoch info");
        let (foreign, foreign_schemes) = super::super::test_network(42, 31_100);
        assert!(check_anchor(&foreign, &cert, &block.encode(), &foreign.epoch_info).is_err(), "another chain's key");
        let theirs = finalization(&foreign_schemes, &block, 20);
        assert!(check_anchor(&genesis, &theirs, &block.encode(), &info).is_err(), "a certificate of another chain");
        // The info must be the one the restored state records for the epoch.
        let state = genesis.state();
        let read = |k: &aivm_runtime::StateKey| state.entries.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        assert!(check_info(&a, read).is_ok());
        let wrong = Anchor { info: foreign.epoch_info.clone(), ..check_anchor(&genesis, &cert, &block.encode(), &info).expect("anchor") };
        assert!(check_info(&wrong, read).is_err(), "another chain's epoch info");

        let dir = tempfile::tempdir().expect("tmp");
        assert!(load_floor(&genesis, dir.path()).expect("no floor").is_none());
        save_floor(dir.path(), &cert, &info).expect("save");
        assert!(load_floor(&genesis, dir.path()).expect("floor").is_some());
        save_floor(dir.path(), &flipped, &info).expect("save");
        assert!(load_floor(&genesis, dir.path()).is_err(), "a tampered floor file stops the node");
        std::fs::write(floor_path(dir.path()), [0, 0]).expect("write");
        assert!(load_floor(&genesis, dir.path()).is_err(), "a damaged floor file stops the node");
    }
}
