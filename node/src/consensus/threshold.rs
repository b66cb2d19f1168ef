//! The active set's threshold key and the per-round seeds it signs (`spec/consensus.md`,
//! "Threshold key and seeds").
//!
//! Votes are signed with commonware's `bls12381_threshold::vrf` scheme: every vote carries,
//! besides its own partial signature, a partial signature over the round alone; `2f+1` of
//! them recover the round's **seed**, a BLS signature under the group key that is unique for
//! the round and that no set of fewer than `2f+1` validators can compute. A block carries the
//! seed of the round that certified its parent, every validator checks it against the group
//! key before voting, and the chain's beacon derives from it (`spec/market.md` §6).
//!
//! The key is dealt by `aivm node init --testnet` (commonware's trusted-dealer `deal`: a
//! devnet's shortcut), or made by the validators with no dealer ([`super::dkg`]).

use super::{PublicKey, Scheme};
use crate::block::SEED_BYTES;
use commonware_codec::{Decode, DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seed;
use commonware_consensus::types::{Epoch, Round, View};
use commonware_cryptography::bls12381::dkg::feldman_desmedt;
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion, Sharing};
use commonware_cryptography::bls12381::primitives::variant::{MinPk, Variant};
use commonware_utils::ordered::{Quorum, Set};
use commonware_utils::N3f1;
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// The most validators a sharing in genesis may be read for (bounds the decoder's work).
pub const MAX_PARTICIPANTS: u32 = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("threshold key: {0}")]
    Sharing(String),
    #[error("consensus share: {0}")]
    Share(String),
    #[error("seed: {0}")]
    Seed(String),
}

/// A freshly dealt threshold key: the public polynomial (commonware's `Sharing` encoding),
/// each participant's secret share (its `Share` encoding), in the order of `identities`, and
/// the dealing's public output (what epoch 0's info carries: `super::epochs`).
pub struct Dealt {
    pub sharing: Vec<u8>,
    pub shares: Vec<Vec<u8>>,
    pub output: feldman_desmedt::Output<MinPk, PublicKey>,
}

/// The participants named by `identities`, in the engine's (ascending) order.
pub(crate) fn participant_set(identities: &[[u8; 32]]) -> Result<Set<PublicKey>, ThresholdError> {
    let keys = identities
        .iter()
        .map(|i| PublicKey::decode(i.to_vec()).map_err(|e| ThresholdError::Sharing(format!("identity key: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Set::try_from(keys).map_err(|_| ThresholdError::Sharing("an identity appears twice".into()))
}

/// Deal a threshold key among `identities` (the active set) from the operating system's
/// randomness: degree `2f`, so any `2f+1` shares sign and fewer learn nothing. Whoever runs
/// this knows every share: a devnet's dealer (`spec/consensus.md`).
pub fn deal(identities: &[[u8; 32]]) -> Result<Dealt, ThresholdError> {
    let players = participant_set(identities)?;
    let (output, shares) = feldman_desmedt::deal::<MinPk, PublicKey, N3f1>(commonware_utils::sys_rng(), Mode::NonZeroCounter, players)
        .map_err(|e| ThresholdError::Sharing(format!("deal: {e:?}")))?;
    let mut out = Vec::with_capacity(identities.len());
    for id in identities {
        let key = PublicKey::decode(id.to_vec()).map_err(|e| ThresholdError::Sharing(format!("identity key: {e}")))?;
        let share = shares.get_value(&key).ok_or_else(|| ThresholdError::Sharing("a participant got no share".into()))?;
        out.push(share.encode().to_vec());
    }
    Ok(Dealt { sharing: output.public().encode().to_vec(), shares: out, output })
}

/// The public polynomial in genesis, checked for the active set: `n` participants, threshold
/// `2f+1` (the engine's quorum).
pub fn sharing(bytes: &[u8], identities: &[[u8; 32]]) -> Result<(Set<PublicKey>, Sharing<MinPk>), ThresholdError> {
    let participants = participant_set(identities)?;
    let cfg = (std::num::NonZeroU32::new(MAX_PARTICIPANTS).unwrap_or(std::num::NonZeroU32::MIN), ModeVersion::v0());
    let s = <Sharing<MinPk> as Decode>::decode_cfg(bytes.to_vec(), &cfg).map_err(|e| ThresholdError::Sharing(e.to_string()))?;
    if s.total().get() as usize != participants.len() || s.required() != participants.quorum::<N3f1>() {
        return Err(ThresholdError::Sharing(format!(
            "dealt for {} validators with threshold {}; the active set has {} (threshold {})",
            s.total(),
            s.required(),
            participants.len(),
            participants.quorum::<N3f1>()
        )));
    }
    Ok((participants, s))
}

/// A validator's share, checked against the public polynomial.
pub fn share(bytes: &[u8], sharing: &Sharing<MinPk>) -> Result<Share, ThresholdError> {
    let share = Share::decode(bytes.to_vec()).map_err(|e| ThresholdError::Share(e.to_string()))?;
    match sharing.partial_public(share.index) {
        Ok(p) if p == share.public::<MinPk>() => Ok(share),
        _ => Err(ThresholdError::Share("it is not a share of this genesis' threshold key".into())),
    }
}

fn round(epoch: u64, view: u64) -> Round {
    Round::new(Epoch::new(epoch), View::new(view))
}

/// The seed signature's bytes.
pub fn seed_bytes(seed: &Seed<MinPk>) -> [u8; SEED_BYTES] {
    let mut out = [0u8; SEED_BYTES];
    out.copy_from_slice(&seed.signature.encode()[..SEED_BYTES]);
    out
}

/// Whether `seed` is what a block whose parent was certified in view `parent_view` of
/// `epoch` must carry: nothing for the first block of an epoch (its parent, genesis or the
/// previous epoch's final block, is the engine's view 0, which has no round), else the
/// group's signature over that round. The group key is the same in every epoch (resharing
/// keeps it), so one verifier checks every epoch's seeds.
pub fn check_seed(verifier: &Scheme, epoch: u64, parent_view: u64, seed: Option<&[u8; SEED_BYTES]>) -> Result<(), ThresholdError> {
    match (parent_view, seed) {
        (0, None) => Ok(()),
        (0, Some(_)) => Err(ThresholdError::Seed("the first block of an epoch carries no seed".into())),
        (_, None) => Err(ThresholdError::Seed(format!("missing (the parent's round is view {parent_view})"))),
        (v, Some(bytes)) => {
            let signature = <MinPk as Variant>::Signature::decode(bytes.to_vec()).map_err(|e| ThresholdError::Seed(format!("not a signature: {e}")))?;
            if Seed::<MinPk>::new(round(epoch, v), signature).verify(verifier) {
                Ok(())
            } else {
                Err(ThresholdError::Seed(format!("does not verify for the round of view {v} in epoch {epoch}")))
            }
        }
    }
}

/// Seeds of recent rounds, by `(epoch, view)`, as the engine reports certificates (a proposer
/// reads its parent's). Bounded: at most [`Seeds::KEPT`], the newest rounds.
///
/// Also by certified block: the seed of the round that certified a block (its notarization or
/// finalization) is exactly the seed every child of that block must carry, so once the block
/// is final its child's beacon — and the challenge of a job committed in it — is known before
/// the child is proposed (`spec/market.md` §6). A block's digest covers its view, so one
/// digest has one round.
#[derive(Default)]
pub struct Seeds {
    rounds: Mutex<BTreeMap<(u64, u64), [u8; SEED_BYTES]>>,
    blocks: Mutex<std::collections::VecDeque<([u8; 32], [u8; SEED_BYTES])>>,
}

impl Seeds {
    pub const KEPT: usize = 1024;
    /// Certified blocks kept: a job's challenge is asked for while its block is the head.
    pub const BLOCKS_KEPT: usize = 64;

    pub fn record(&self, seed: &Seed<MinPk>) {
        let key = (seed.round.epoch().get(), seed.round.view().get());
        let mut m = self.rounds.lock();
        m.insert(key, seed_bytes(seed));
        while m.len() > Self::KEPT {
            m.pop_first();
        }
    }

    pub fn get(&self, epoch: u64, view: u64) -> Option<[u8; SEED_BYTES]> {
        self.rounds.lock().get(&(epoch, view)).copied()
    }

    /// The round's seed, and that it certified block `digest`.
    pub fn record_certified(&self, digest: [u8; 32], seed: &Seed<MinPk>) {
        self.record(seed);
        let mut b = self.blocks.lock();
        if b.iter().any(|(d, _)| *d == digest) {
            return;
        }
        b.push_back((digest, seed_bytes(seed)));
        while b.len() > Self::BLOCKS_KEPT {
            b.pop_front();
        }
    }

    /// The seed a child of block `digest` carries, if this node saw that block certified.
    pub fn for_child_of(&self, digest: &[u8; 32]) -> Option<[u8; SEED_BYTES]> {
        self.blocks.lock().iter().find(|(d, _)| d == digest).map(|(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::bls12381::primitives::ops;

    fn identities(n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key().to_bytes()).collect()
    }

    /// Each validator's share of a dealt key.
    fn shares_of(dealt: &Dealt, public: &Sharing<MinPk>) -> Vec<Share> {
        dealt.shares.iter().map(|s| share(s, public).expect("share")).collect()
    }

    /// A key dealt among `n` validators: the public polynomial and each share.
    fn dealt_key(n: usize) -> (Sharing<MinPk>, Vec<Share>) {
        let ids = identities(n);
        let dealt = deal(&ids).expect("deal");
        let (_, public) = sharing(&dealt.sharing, &ids).expect("sharing");
        let shares = shares_of(&dealt, &public);
        (public, shares)
    }

    fn seed_namespace(ns: &[u8]) -> Vec<u8> {
        [ns, b"_SEED"].concat()
    }

    /// A certified block's seed is found by the block's digest; re-recording is a no-op and
    /// only the newest [`Seeds::BLOCKS_KEPT`] blocks are kept.
    #[test]
    fn seeds_by_certified_block() {
        let (public, shares) = dealt_key(4);
        let seed_ns = seed_namespace(b"aivm-consensus-test");
        let seed_of = |view: u64| {
            let msg = round(0, view).encode();
            let partials: Vec<_> = shares.iter().map(|s| ops::threshold::sign_message::<MinPk>(s, &seed_ns, &msg)).collect();
            Seed::new(round(0, view), ops::threshold::recover::<MinPk, _>(&public, &partials[..3], &commonware_parallel::Sequential).expect("recover"))
        };
        let seeds = Seeds::default();
        let (a, b) = (seed_of(1), seed_of(2));
        seeds.record_certified([1; 32], &a);
        seeds.record_certified([1; 32], &a);
        seeds.record_certified([2; 32], &b);
        assert_eq!(seeds.for_child_of(&[1; 32]), Some(seed_bytes(&a)));
        assert_eq!(seeds.for_child_of(&[2; 32]), Some(seed_bytes(&b)));
        assert_eq!(seeds.get(0, 2), Some(seed_bytes(&b)), "also kept by round");
        assert_eq!(seeds.for_child_of(&[3; 32]), None);
        for i in 0..Seeds::BLOCKS_KEPT as u8 {
            seeds.record_certified([100 + i; 32], &a);
        }
        assert_eq!(seeds.for_child_of(&[1; 32]), None, "the oldest blocks are dropped");
        assert!(seeds.for_child_of(&[100; 32]).is_some());
    }

    /// Four validators, threshold 3: three partial seed signatures recover a seed that checks;
    /// one validator's share alone (or two) does not; a seed of another round is refused.
    #[test]
    fn a_quorum_signs_the_seed_and_one_share_cannot() {
        let ids = identities(4);
        let dealt = deal(&ids).expect("deal");
        let (participants, public) = sharing(&dealt.sharing, &ids).expect("sharing");
        let shares = shares_of(&dealt, &public);
        let ns = b"aivm-consensus-test";
        let verifier = Scheme::verifier(ns, participants.clone(), public.clone());
        let msg = round(0, 7).encode();
        let seed_ns = seed_namespace(ns);
        let partials: Vec<_> = shares.iter().map(|s| ops::threshold::sign_message::<MinPk>(s, &seed_ns, &msg)).collect();
        let recovered = ops::threshold::recover::<MinPk, _>(&public, &partials[..3], &commonware_parallel::Sequential).expect("recover");
        let bytes = seed_bytes(&Seed::new(round(0, 7), recovered));
        assert_eq!(check_seed(&verifier, 0, 7, Some(&bytes)), Ok(()));
        assert!(check_seed(&verifier, 0, 8, Some(&bytes)).is_err(), "another round's seed");
        assert!(check_seed(&verifier, 1, 7, Some(&bytes)).is_err(), "the same view in another epoch");
        assert!(check_seed(&verifier, 0, 7, None).is_err());
        assert!(check_seed(&verifier, 0, 0, Some(&bytes)).is_err());
        assert_eq!(check_seed(&verifier, 0, 0, None), Ok(()));
        // Any three shares give the same (unique) seed.
        let other = ops::threshold::recover::<MinPk, _>(&public, &partials[1..], &commonware_parallel::Sequential).expect("recover");
        assert_eq!(other, recovered, "unique for the round");
        // One share's signature (what a single validator can compute) is not the seed.
        for p in &partials {
            let alone = seed_bytes(&Seed::new(round(0, 7), p.value));
            assert!(check_seed(&verifier, 0, 7, Some(&alone)).is_err(), "one share cannot produce the seed");
        }
        assert!(ops::threshold::recover::<MinPk, _>(&public, &partials[..2], &commonware_parallel::Sequential).is_err(), "two of four cannot recover");
        // A share from another dealing, or for another set, is refused.
        let stranger = deal(&ids).expect("deal");
        assert!(share(&stranger.shares[0], &public).is_err());
        assert!(sharing(&dealt.sharing, &identities(5)).is_err(), "dealt for four, not five");
        assert!(sharing(&dealt.sharing[..dealt.sharing.len() - 1], &ids).is_err());
        let _ = participants.len();
    }

    #[test]
    fn seeds_are_bounded() {
        let s = Seeds::default();
        let ids = identities(1);
        let dealt = deal(&ids).expect("deal");
        let (_, public) = sharing(&dealt.sharing, &ids).expect("sharing");
        let sig = ops::threshold::sign_message::<MinPk>(&share(&dealt.shares[0], &public).expect("share"), b"ns", b"m").value;
        for v in 0..3000 {
            s.record(&Seed::new(round(v / 1000, v % 1000), sig));
        }
        assert!(s.get(2, 999).is_some() && s.get(0, 999).is_none());
        assert_eq!(s.rounds.lock().len(), Seeds::KEPT);
    }
}
