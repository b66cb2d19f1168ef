//! Equivocation: the engine's conflicting-vote reports become evidence in blocks (checked
//! here against the validator set), and, for tests only, a validator that equivocates.

use super::{Digest, PublicKey, Scheme};
use crate::execution::{EvidenceCheck, Executor};
use crate::staking::Offense;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::types::{Activity, Attributable, ConflictingFinalize, ConflictingNotarize, Notarize, Proposal, Vote};
use commonware_consensus::{Reporter, Viewable};
use commonware_cryptography::Hasher;
use commonware_p2p::{CheckedSender, LimitedSender, Recipients};
use commonware_parallel::Sequential;
use commonware_runtime::IoBufs;
use std::sync::Arc;

const TAG_NOTARIZE: u8 = 1;
const TAG_FINALIZE: u8 = 2;

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
            _ => None,
        }
    }
}

/// Wraps the engine's reporter: conflicting votes become evidence for this node's proposals.
#[derive(Clone)]
pub struct FaultReporter<R> {
    pub inner: R,
    pub executor: Arc<Executor>,
}

impl<R: Reporter<Activity = Activity<Scheme, Digest>>> Reporter for FaultReporter<R> {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        match &activity {
            Activity::ConflictingNotarize(c) => self.executor.report_evidence(encode(TAG_NOTARIZE, c.clone())),
            Activity::ConflictingFinalize(c) => self.executor.report_evidence(encode(TAG_FINALIZE, c.clone())),
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
