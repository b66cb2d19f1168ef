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
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seedable;
use commonware_consensus::simplex::types::{Activity, Attributable, ConflictingFinalize, ConflictingNotarize, Notarize, NullifyFinalize, Proposal, Vote};
use commonware_consensus::{Reporter, Viewable};
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

/// Verifies evidence against the active set's consensus keys.
pub struct Checker {
    pub verifier: Scheme,
    /// Identity key bytes by participant index (the engine's signer index).
    pub identities: Vec<[u8; 32]>,
}

impl Checker {
    fn offense_of(&self, signer: u32, view: u64) -> Option<Offense> {
        self.identities.get(signer as usize).map(|identity| Offense { identity: *identity, view })
    }
}

impl EvidenceCheck for Checker {
    fn offense(&self, evidence: &[u8]) -> Option<Offense> {
        let (&tag, body) = evidence.split_first()?;
        let mut rng = commonware_utils::sys_rng();
        match tag {
            TAG_NOTARIZE => {
                let c = ConflictingNotarize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, &self.verifier, &Sequential).then(|| self.offense_of(c.signer().get(), c.view().get()))?
            }
            TAG_FINALIZE => {
                let c = ConflictingFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, &self.verifier, &Sequential).then(|| self.offense_of(c.signer().get(), c.view().get()))?
            }
            TAG_NULLIFY_FINALIZE => {
                let c = NullifyFinalize::<Scheme, Digest>::decode(body.to_vec()).ok()?;
                c.verify(&mut rng, &self.verifier, &Sequential).then(|| self.offense_of(c.signer().get(), c.view().get()))?
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
            Activity::Notarization(n) => self.seeds.record(&n.seed()),
            Activity::Finalization(f) => self.seeds.record(&f.seed()),
            _ => {}
        }
        self.inner.report(activity)
    }
}

/// TEST ONLY (`aivm node run --equivocate`): after each notarize vote this validator sends,
/// it also sends a notarize vote for a different payload in the same view, signed with its
/// key: the double vote the others must turn into evidence and a slash.
#[derive(Clone)]
pub struct Equivocator<S> {
    pub inner: S,
    pub scheme: Scheme,
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
        if let Ok(Vote::Notarize(n)) = Vote::<Scheme, Digest>::decode(bytes) {
            let payload = commonware_cryptography::sha256::Sha256::hash(&[n.proposal.payload.as_ref(), b"equivocate"]);
            let other = Proposal::new(n.proposal.round, n.proposal.parent, payload);
            if let Some(twin) = Notarize::sign(&self.sender.scheme, other) {
                if let Ok(c) = self.sender.inner.check(self.recipients) {
                    let _ = c.send(Vote::<Scheme, Digest>::Notarize(twin).encode(), priority);
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
        let check = match super::super::evidence_check(&genesis) {
            Ok(c) => c,
            Err(e) => panic!("checker: {e}"),
        };
        let n = |p: &[u8]| Notarize::sign(&scheme, proposal(9, p)).expect("sign");
        let f = |p: &[u8]| Finalize::sign(&scheme, proposal(9, p)).expect("sign");
        let ab = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"a"), n(b"b")));
        let ba = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"b"), n(b"a")));
        let fin = encode(TAG_FINALIZE, ConflictingFinalize::new(f(b"a"), f(b"b")));
        let offence = check.offense(&ab).expect("valid evidence");
        assert_eq!(offence.view, 9);
        assert_eq!(check.offense(&ba), Some(offence), "swapped vote order: the same offence");
        assert_eq!(check.offense(&fin), Some(offence), "a finalize pair of the same view: the same offence");
        let nullify = Nullify::sign::<Digest>(&scheme, Round::new(Epoch::zero(), View::new(9))).expect("sign");
        let nf = encode(TAG_NULLIFY_FINALIZE, NullifyFinalize::new(nullify, f(b"a")));
        assert_eq!(check.offense(&nf), Some(offence), "nullify and finalize in one view: the same offence");
        let mut forged = nf.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(check.offense(&forged), None);

        let mut pool = EvidencePool::default();
        assert_eq!(pool.add(ab, check.as_ref(), 0), Ok(offence));
        assert_eq!(pool.add(ba, check.as_ref(), 0), Err(PoolError::Known));
        assert_eq!(pool.add(fin.clone(), check.as_ref(), 0), Err(PoolError::Known));
        // A bad signature: the last byte of the second vote's signature flipped.
        let mut bad = encode(TAG_NOTARIZE, ConflictingNotarize::new(n(b"c"), n(b"d")));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(check.offense(&bad), None);
        assert_eq!(pool.add(bad, check.as_ref(), 0), Err(PoolError::Invalid));
        // Another view is another offence.
        let other = encode(
            TAG_NOTARIZE,
            ConflictingNotarize::new(Notarize::sign(&scheme, proposal(10, b"a")).expect("sign"), Notarize::sign(&scheme, proposal(10, b"b")).expect("sign")),
        );
        assert!(pool.add(other, check.as_ref(), 0).is_ok());
        assert_eq!(pool.len(), 2);
    }
}
