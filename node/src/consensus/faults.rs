//! Equivocation: the engine's conflicting-vote reports become evidence in blocks (checked
//! here against the validator set), and, for tests only, a validator that equivocates. The
//! same reporter keeps the seeds of certified rounds for proposals ([`super::threshold`]).
//!
//! Votes are partial signatures of the threshold key, checked against the signer's public
//! share. commonware calls them non-attributable because `2f+1` shares can forge any
//! partial signature; that takes a quorum of colluding validators (or the dealer of a
//! devnet), which is beyond the `f` faults consensus tolerates anyway (`spec/consensus.md`).

use super::{Digest, PublicKey, Scheme};
use crate::execution::{EvidenceCheck, Executor};
use crate::staking::Offense;
use commonware_codec::Read as _;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seedable;
use commonware_consensus::simplex::types::{Activity, Attributable, ConflictingFinalize, ConflictingNotarize, Notarize, NullifyFinalize, Proposal, Vote};
use commonware_consensus::{Epochable, Reporter, Viewable};
use commonware_cryptography::Hasher;
use commonware_p2p::{CheckedSender, LimitedSender, Recipients};
use commonware_parallel::Sequential;
use commonware_runtime::IoBufs;
use std::sync::Arc;

const TAG_NOTARIZE: u8 = 1;
const TAG_FINALIZE: u8 = 2;
/// A nullify vote and a finalize vote of one view: the validator voted both to skip the view
/// and to finalize its block.
const TAG_NULLIFY_FINALIZE: u8 = 3;

/// Evidence bytes: a tag, then the engine's encoding of the two conflicting votes.
fn encode(tag: u8, body: impl Encode) -> Vec<u8> {
    [&[tag][..], &body.encode()].concat()
}

/// Views of one epoch an offence's number can hold: an offence is numbered
/// `epoch · VIEWS_PER_EPOCH + view` (the slashing marker's "view"), so one view of each epoch
/// is punished once. A view at or past it (never reached: a view lasts at least a
/// round-trip) is not evidence.
pub const VIEWS_PER_EPOCH: u64 = 1 << 32;

/// Verifies evidence against the signers of the offence's epoch (as the chain records them).
pub struct Checker {
    /// The chain's signing namespace.
    pub namespace: Vec<u8>,
}

/// The verifier of an epoch's signers and the identity of each signer index.
fn epoch_verifier(namespace: &[u8], e: &aivm_runtime::staking::EngineEpoch) -> Option<(Scheme, Vec<[u8; 32]>)> {
    let ids: Vec<[u8; 32]> = e.signers.iter().map(|s| **s).collect();
    let (keys, sharing) = super::threshold::sharing(&e.sharing, &ids).ok()?;
    let ordered = keys.iter().map(|k| <[u8; 32]>::try_from(k.as_ref()).ok()).collect::<Option<Vec<_>>>()?;
    Some((Scheme::verifier(namespace, keys, sharing), ordered))
}

impl EvidenceCheck for Checker {
    fn offense(&self, evidence: &[u8], engine: crate::evidence::EngineLookup<'_>) -> Option<Offense> {
        let (&tag, body) = evidence.split_first()?;
        let mut rng = commonware_utils::sys_rng();
        let of = |epoch: u64, signer: u32, view: u64| -> Option<(Scheme, Offense)> {
            if view >= VIEWS_PER_EPOCH {
                return None;
            }
            let (verifier, ids) = epoch_verifier(&self.namespace, &engine(epoch)?)?;
            let identity = *ids.get(signer as usize)?;
            Some((verifier, Offense { identity, view: epoch.checked_mul(VIEWS_PER_EPOCH)?.checked_add(view)? }))
        };
        match tag {
            TAG_NOTARIZE => {
                let c = ConflictingNotarize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                let (verifier, o) = of(c.epoch().get(), c.signer().get(), c.view().get())?;
                c.verify(&mut rng, &verifier, &Sequential).then_some(o)
            }
            TAG_FINALIZE => {
                let c = ConflictingFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                let (verifier, o) = of(c.epoch().get(), c.signer().get(), c.view().get())?;
                c.verify(&mut rng, &verifier, &Sequential).then_some(o)
            }
            TAG_NULLIFY_FINALIZE => {
                let c = NullifyFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                let (verifier, o) = of(c.epoch().get(), c.signer().get(), c.view().get())?;
                c.verify(&mut rng, &verifier, &Sequential).then_some(o)
            }
            _ => None,
        }
    }
}

/// Wraps the engine's reporter: conflicting votes become evidence for this node's proposals.
#[derive(Clone)]
pub struct FaultReporter<R> {
    pub inner: R,
    pub executor: Arc<Executor>,
    pub seeds: Arc<super::threshold::Seeds>,
}

impl<R: Reporter<Activity = Activity<Scheme, Digest>>> Reporter for FaultReporter<R> {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        match &activity {
            Activity::ConflictingNotarize(c) => self.executor.report_evidence(encode(TAG_NOTARIZE, c.clone())),
            Activity::ConflictingFinalize(c) => self.executor.report_evidence(encode(TAG_FINALIZE, c.clone())),
            Activity::NullifyFinalize(c) => self.executor.report_evidence(encode(TAG_NULLIFY_FINALIZE, c.clone())),
            Activity::Notarization(n) => self.seeds.record_certified(n.proposal.payload.0, &n.seed()),
            Activity::Finalization(f) => self.seeds.record_certified(f.proposal.payload.0, &f.seed()),
            _ => {}
        }
        self.inner.report(activity)
    }
}

/// TEST ONLY (`aivm node run --equivocate`): after each notarize vote this validator sends,
/// it also sends a notarize vote for a different payload in the same view, signed with its
/// key of that epoch: the double vote the others must turn into evidence and a slash. Votes
/// travel on the epoch's subchannel (a varint epoch, then the vote). The engine takes one
/// sender type for its three channels: `schemes` is `None` on the ones that only pass through.
#[derive(Clone)]
pub struct Equivocator<S> {
    pub inner: S,
    pub schemes: Option<super::epochs::Schemes>,
}

pub struct EquivocatingSend<'a, S> {
    sender: &'a mut Equivocator<S>,
    recipients: Recipients<PublicKey>,
    listed: Vec<PublicKey>,
}

impl<S: LimitedSender<PublicKey = PublicKey>> LimitedSender for Equivocator<S> {
    type PublicKey = PublicKey;
    type Checked<'a>
        = EquivocatingSend<'a, S>
    where
        Self: 'a;

    fn check(&mut self, recipients: Recipients<PublicKey>) -> Result<Self::Checked<'_>, std::time::SystemTime> {
        let listed = self.inner.check(recipients.clone())?.recipients();
        Ok(EquivocatingSend { sender: self, recipients, listed })
    }
}

impl<S: LimitedSender<PublicKey = PublicKey>> CheckedSender for EquivocatingSend<'_, S> {
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<PublicKey> {
        self.listed.clone()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> commonware_actor::Unreliable<commonware_actor::Feedback> {
        let bufs: IoBufs = message.into();
        let bytes = bufs.coalesce().as_ref().to_vec();
        let feedback = match self.sender.inner.check(self.recipients.clone()) {
            Ok(c) => c.send(bytes.clone(), priority),
            Err(_) => return commonware_actor::Unreliable::Rejected,
        };
        let Some(schemes) = self.sender.schemes.as_ref() else { return feedback };
        let mut buf = bytes::Bytes::from(bytes.clone());
        let Ok(epoch) = commonware_codec::varint::UInt::<u64>::read_cfg(&mut buf, &()) else { return feedback };
        let prefix = &bytes[..bytes.len() - buf.len()];
        if let (Ok(Vote::Notarize(n)), Some(scheme)) = (Vote::<Scheme, Digest>::decode(buf), schemes.get(epoch.0)) {
            let payload = commonware_cryptography::sha256::Sha256::hash(&[n.proposal.payload.as_ref(), b"equivocate"]);
            let other = Proposal::new(n.proposal.round, n.proposal.parent, payload);
            if let Some(twin) = Notarize::sign(scheme.as_ref(), other) {
                if let Ok(c) = self.sender.inner.check(self.recipients) {
                    let _ = c.send([prefix, &Vote::<Scheme, Digest>::Notarize(twin).encode()[..]].concat(), priority);
                }
            }
        }
        feedback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{EvidencePool, PoolError};
    use crate::genesis::GenesisFile;
    use commonware_consensus::simplex::types::{Finalize, Nullify, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};

    /// Four validators' genesis and the signing scheme of validator 0 (engine index 0).
    fn network() -> (GenesisFile, Scheme) {
        let (genesis, schemes) = super::super::test_network(5, 30_000);
        (genesis, schemes.into_iter().next().expect("a validator"))
    }

    fn proposal(view: u64, payload: &[u8]) -> Proposal<Digest> {
        Proposal::new(Round::new(Epoch::zero(), View::new(view)), View::new(view - 1), commonware_cryptography::sha256::Sha256::hash(&[payload]))
    }

    #[test]
    fn real_double_votes_pool_as_one_offence() {
        let (genesis, scheme) = network();
        let check = super::super::evidence_check(&genesis);
        let (_, zero) = super::super::epochs::engine_epoch(&genesis.epoch_info).expect("epoch 0");
        let engine = move |e: u64| (e == 0).then(|| zero.clone());
        let engine: crate::evidence::EngineLookup<'_> = &engine;
        let n = |p: &[u8]| Notarize::sign(&scheme, proposal(9, p)).expect("sign");
        let f = |p: &[u8]| Finalize::sign(&scheme, proposal(9, p)).expect("sign");
        let ab = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"a"), n(b"b")));
        let ba = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"b"), n(b"a")));
        let fin = encode(TAG_FINALIZE, ConflictingFinalize::new(f(b"a"), f(b"b")));
        let offence = check.offense(&ab, engine).expect("valid evidence");
        assert_eq!(offence.view, 9);
        assert_eq!(check.offense(&ba, engine), Some(offence), "swapped vote order: the same offence");
        assert_eq!(check.offense(&fin, engine), Some(offence), "a finalize pair of the same view: the same offence");
        let nullify = Nullify::sign::<Digest>(&scheme, Round::new(Epoch::zero(), View::new(9))).expect("sign");
        let nf = encode(TAG_NULLIFY_FINALIZE, NullifyFinalize::new(nullify, f(b"a")));
        assert_eq!(check.offense(&nf, engine), Some(offence), "nullify and finalize in one view: the same offence");
        let mut forged = nf.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(check.offense(&forged, engine), None);

        let mut pool = EvidencePool::default();
        assert_eq!(pool.add(ab, check.as_ref(), engine, 0), Ok(offence));
        assert_eq!(pool.add(ba, check.as_ref(), engine, 0), Err(PoolError::Known));
        assert_eq!(pool.add(fin.clone(), check.as_ref(), engine, 0), Err(PoolError::Known));
        // A bad signature: the last byte of the second vote's signature flipped.
        let mut bad = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"c"), n(b"d")));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(check.offense(&bad, engine), None);
        assert_eq!(pool.add(bad, check.as_ref(), engine, 0), Err(PoolError::Invalid));
        // Another view is another offence.
        let other = encode(
            TAG_NOTARIZE,
            ConflictingNotarize::new(Notarize::sign(&scheme, proposal(10, b"a")).expect("sign"), Notarize::sign(&scheme, proposal(10, b"b")).expect("sign")),
        );
        assert!(pool.add(other, check.as_ref(), engine, 0).is_ok());
        assert_eq!(pool.len(), 2);
        // Evidence of an epoch the chain has no signers for is not evidence.
        let none: crate::evidence::EngineLookup<'_> = &|_| None;
        assert_eq!(check.offense(&fin, none), None);
    }
}
