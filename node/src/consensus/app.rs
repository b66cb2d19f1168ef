//! The application side of consensus: proposals and verification run on the [`Executor`],
//! finalized blocks are committed in order on a thread of their own.

use super::{ChainBlock, Ctx, Digest, Scheme};
use crate::execution::{Executor, Finalized};
use commonware_codec::Encode as _;
use commonware_consensus::marshal::{ancestry::Ancestry, Update};
use commonware_consensus::{Automaton, CertifiableAutomaton, Heightable, Relay, Reporter};
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_cryptography::{ed25519, Digested, Digestible};
use commonware_utils::Acknowledgement;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Milliseconds since the Unix epoch (proposal times; checked by verifiers within a drift).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Most unexecuted ancestors a proposal or verification executes first (see `catch_up`).
pub const MAX_CATCH_UP: usize = 64;

/// How long a leader with an empty mempool waits before proposing an empty block.
pub const EMPTY_BLOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a leader waits for its parent round's seed to be reported before giving up the
/// proposal (the engine reports a certificate before it asks for a proposal on it, so this
/// is a backstop, not a wait that happens).
pub const SEED_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Clone)]
pub struct App {
    pub executor: Arc<Executor>,
    /// TEST ONLY: corrupt this node's proposals (see `byzantine.rs`).
    pub byzantine: Option<Arc<super::byzantine::Byzantine>>,
    /// Seeds of certified rounds (from the reporter), for this node's proposals.
    pub seeds: Arc<super::threshold::Seeds>,
    /// Checks the seed a proposal carries.
    pub verifier: Arc<Scheme>,
}

impl App {
    /// Execute the ancestors in `ancestry` (newest first) that this node has not executed,
    /// oldest first. False if the chain leaves the committed head or an ancestor is invalid.
    /// At most [`MAX_CATCH_UP`] blocks are held: a node further behind lets marshal deliver
    /// the finalized blocks to the committer first (it abstains from these views meanwhile).
    /// Blocks the committer finalizes meanwhile are skipped, not re-executed.
    async fn catch_up(&self, mut ancestry: impl Ancestry<ChainBlock>) -> bool {
        let committed = self.executor.head().0;
        let mut missing = Vec::new();
        loop {
            let Some(b) = ancestry.next().await else { return false };
            if self.executor.knows(&b.digest().0) {
                break;
            }
            if b.height().get() <= committed || missing.len() >= MAX_CATCH_UP {
                return false;
            }
            missing.push((b.inner().0.clone(), b.digest().0));
        }
        for (block, digest) in missing.into_iter().rev() {
            let ex = Arc::clone(&self.executor);
            let ok = tokio::task::spawn_blocking(move || ex.knows(&digest) || ex.verify(&block, digest, now_ms()).is_ok()).await;
            if !matches!(ok, Ok(true)) {
                return false;
            }
        }
        true
    }
}

/// What the reshare wrapper hands a proposal: the payload the block must carry.
pub type ProposalInput = commonware_glue::dkg::reshare::Input<(), MinPk, ed25519::PrivateKey, super::epochs::Directory>;

impl<E: Send + Sync + 'static> commonware_consensus::Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = ChainBlock;
    type Input = ProposalInput;

    async fn propose(&mut self, (_, ctx): (E, Ctx), ancestry: impl Ancestry<ChainBlock>, input: ProposalInput) -> Option<Digested<ChainBlock>> {
        let reshare = input.payload.map(|p| p.encode().to_vec());
        if !self.catch_up(ancestry).await {
            return None;
        }
        // An idle network does not need a block every few milliseconds: wait a little for
        // transactions (well inside the leader timeout) before proposing an empty block —
        // transactions the parent's uncommitted ancestry already carries do not count.
        let idle_until = std::time::Instant::now() + EMPTY_BLOCK_WAIT;
        let parent_digest = ctx.parent.1 .0;
        while !self.executor.has_new_txs(&parent_digest) && std::time::Instant::now() < idle_until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // The seed of the round that certified the parent: the block's beacon (`threshold`).
        let (epoch, parent_view) = (ctx.round.epoch().get(), ctx.parent.0.get());
        let seed = if parent_view == 0 {
            None
        } else {
            let until = std::time::Instant::now() + SEED_WAIT;
            loop {
                match self.seeds.get(epoch, parent_view) {
                    Some(s) => break Some(s),
                    None if std::time::Instant::now() < until => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    None => {
                        tracing::warn!(parent_view, "no seed for the parent's round: not proposing");
                        return None;
                    }
                }
            }
        };
        let ex = Arc::clone(&self.executor);
        let parent = ctx.parent.1 .0;
        let byzantine = self.byzantine.as_ref().map(|b| (Arc::clone(b), b.next_mode()));
        let extra: Vec<_> = match &byzantine {
            Some((b, super::byzantine::Mode::Replay)) => b.replayed().into_iter().collect(),
            _ => Vec::new(),
        };
        let view = ctx.round.view().get();
        match tokio::task::spawn_blocking(move || ex.propose_with(parent, now_ms(), seed, view, extra, reshare)).await {
            Ok(Ok(e)) => {
                tracing::debug!(height = e.block.height(), txs = e.block.txs.len(), "proposed");
                if let Some((b, mode)) = byzantine {
                    let bad = b.corrupt(&e.block, mode);
                    tracing::warn!(?mode, height = bad.height(), "byzantine proposal: {mode:?}");
                    let digest = Digest(bad.digest());
                    return Some(Digested::precomputed(ChainBlock(Arc::new(bad)), digest));
                }
                Some(Digested::precomputed(ChainBlock(Arc::clone(&e.block)), Digest(e.digest)))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot build a proposal");
                None
            }
            Err(_) => None,
        }
    }

    async fn verify(&mut self, (_, ctx): (E, Ctx), mut ancestry: impl Ancestry<ChainBlock>) -> bool {
        let Some(block) = ancestry.next().await else { return false };
        // The view it claims is the round it was proposed in (liveness counts by it).
        if block.inner().0.view != ctx.round.view().get() {
            tracing::warn!(height = block.height().get(), "refused a proposal: its view is not its round's");
            return false;
        }
        // The seed first, before any execution: equal to the one in the parent round's
        // certificate this node already verified (seeds are unique per round), else a pairing
        // check against the group key.
        let (epoch, parent_view) = (ctx.round.epoch().get(), ctx.parent.0.get());
        let seed = block.inner().0.seed;
        let known = parent_view > 0 && seed.is_some() && self.seeds.get(epoch, parent_view) == seed;
        let checked = if known { Ok(()) } else { super::threshold::check_seed(&self.verifier, epoch, parent_view, seed.as_ref()) };
        if let Err(e) = checked {
            tracing::warn!(height = block.height().get(), error = %e, "refused a proposal");
            return false;
        }
        if !self.catch_up(ancestry).await {
            return false;
        }
        let ex = Arc::clone(&self.executor);
        let (b, digest) = (block.inner().0.clone(), block.digest().0);
        match tokio::task::spawn_blocking(move || ex.verify(&b, digest, now_ms())).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(height = block.height().get(), error = %e, "refused a proposal");
                false
            }
            Err(_) => false,
        }
    }
}

/// What each epoch's engine drives: marshal's automaton and relay, with a reporter that turns
/// conflicting votes into evidence and keeps the rounds' seeds (`faults::FaultReporter`).
#[derive(Clone)]
pub struct EngineApp<W, R> {
    pub inner: W,
    pub reporter: R,
}

impl<W: Automaton, R: Clone + Send + 'static> Automaton for EngineApp<W, R> {
    type Context = W::Context;
    type Digest = W::Digest;

    fn propose(&mut self, context: Self::Context) -> impl std::future::Future<Output = commonware_utils::channel::oneshot::Receiver<Self::Digest>> + Send {
        self.inner.propose(context)
    }

    fn verify(
        &mut self,
        context: Self::Context,
        payload: Self::Digest,
    ) -> impl std::future::Future<Output = commonware_utils::channel::oneshot::Receiver<bool>> + Send {
        self.inner.verify(context, payload)
    }
}

impl<W: CertifiableAutomaton, R: Clone + Send + 'static> CertifiableAutomaton for EngineApp<W, R> {
    fn prepare(
        &mut self,
        context: Self::Context,
    ) -> impl std::future::Future<Output = commonware_utils::channel::oneshot::Receiver<commonware_consensus::Handoff<Self::Digest>>> + Send {
        self.inner.prepare(context)
    }

    fn certify(
        &mut self,
        round: commonware_consensus::types::Round,
        payload: Self::Digest,
    ) -> impl std::future::Future<Output = commonware_utils::channel::oneshot::Receiver<bool>> + Send {
        self.inner.certify(round, payload)
    }
}

impl<W: Relay, R: Clone + Send + 'static> Relay for EngineApp<W, R> {
    type Digest = W::Digest;
    type PublicKey = W::PublicKey;
    type Plan = W::Plan;

    fn broadcast(&mut self, payload: Self::Digest, plan: Self::Plan) -> commonware_actor::Feedback {
        self.inner.broadcast(payload, plan)
    }
}

impl<W: Clone + Send + 'static, R: Reporter> Reporter for EngineApp<W, R> {
    type Activity = R::Activity;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        self.reporter.report(activity)
    }
}

/// Receives finalized blocks from marshal (in height order, at least once) and hands them to
/// the committer thread, which acknowledges each once it is durably committed.
#[derive(Clone)]
pub struct Finalizer {
    queue: std::sync::mpsc::Sender<(Arc<crate::block::Block>, [u8; 32], commonware_utils::acknowledgement::Exact)>,
}

impl Finalizer {
    /// Start the committer thread. A finalized block that cannot be applied means this node's
    /// state is not the network's: it stops the process (exit code 3) rather than vote on.
    /// A committer that dies (a panic) stops the process too (exit code 4): a validator that
    /// votes but never commits would only look alive.
    /// `panic_at` (TEST ONLY, `aivm node run --panic-commit-at H`) makes the committer panic
    /// on the block at that height, to prove the process then stops.
    pub fn start(executor: Arc<Executor>, finalized: broadcast::Sender<Finalized>, panic_at: Option<u64>) -> std::io::Result<Self> {
        let (queue, rx) = std::sync::mpsc::channel::<(Arc<crate::block::Block>, [u8; 32], commonware_utils::acknowledgement::Exact)>();
        std::thread::Builder::new().name("committer".into()).spawn(move || {
            for (block, digest, ack) in rx {
                // A panic is caught per block, while this thread still holds the queue and the
                // block's acknowledgement: had they been dropped first (unwinding out of the
                // loop), marshal could see the acknowledgement abandoned and stop the engine,
                // and the process would exit as ENGINE_STOPPED (5) before this thread said why
                // (seen once in CI under CPU contention).
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if panic_at == Some(block.height()) {
                        panic!("TEST: committer panics at height {}", block.height());
                    }
                    match executor.finalize(&block, digest) {
                        Ok(Some(f)) => {
                            tracing::info!(height = f.height, txs = f.txs, root = %crate::hexbytes::to_hex(&f.state_root), "finalized");
                            let _ = finalized.send(f);
                        }
                        Ok(None) => {}
                        Err(e) => crate::exit::stop(crate::exit::DIVERGED, &format!("cannot commit a finalized block: {e}")),
                    }
                }));
                if run.is_err() {
                    crate::exit::stop(crate::exit::COMMITTER_DIED, "the committer thread panicked");
                }
                ack.acknowledge();
            }
        })?;
        Ok(Finalizer { queue })
    }
}

impl Reporter for Finalizer {
    type Activity = Update<ChainBlock>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        if let Update::Block(block, ack) = activity {
            if self.queue.send((Arc::clone(&block.inner().0), block.digest().0, ack)).is_err() {
                crate::exit::stop(crate::exit::COMMITTER_DIED, "the committer thread is gone");
            }
        }
        commonware_actor::Feedback::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_consensus::marshal::ancestry::Ancestry;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Ancestry from a list, newest first.
    #[derive(Clone)]
    struct Listed(Vec<Digested<ChainBlock>>, usize);

    impl futures::Stream for Listed {
        type Item = Digested<ChainBlock>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let next = self.0.get(self.1).cloned();
            self.1 += 1;
            Poll::Ready(next)
        }
    }

    impl Ancestry<ChainBlock> for Listed {
        fn peek(&self) -> Option<&Digested<ChainBlock>> {
            self.0.get(self.1)
        }
    }

    use crate::execution::testing::executor;

    /// A node `MAX_CATCH_UP` + 6 blocks behind abstains without holding or executing any of
    /// them (marshal brings the finalized ones to its committer); 10 behind, it executes them.
    #[test]
    fn catch_up_is_bounded() {
        let ahead = executor("ahead");
        let mut blocks = Vec::new();
        let mut parent = ahead.head().1;
        for t in 1..=(MAX_CATCH_UP as u64 + 7) {
            let e = ahead.propose(parent, t).expect("proposal");
            parent = e.digest;
            blocks.push(Digested::precomputed(ChainBlock(Arc::clone(&e.block)), Digest(e.digest)));
        }
        let behind = executor("behind");
        behind.verify(&blocks[0].inner().0, blocks[0].digest().0, now_ms()).expect("block 1");
        let ids = [ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()];
        let dealt = super::super::threshold::deal(&ids).expect("deal");
        let (set, sharing) = super::super::threshold::sharing(&dealt.sharing, &ids).expect("sharing");
        let verifier = Arc::new(Scheme::verifier(b"test", set, sharing));
        let app = App { executor: Arc::clone(&behind.exec), byzantine: None, seeds: Default::default(), verifier };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

        let far: Vec<_> = blocks.iter().rev().cloned().collect();
        assert!(!rt.block_on(app.catch_up(Listed(far, 0))), "too far behind to catch up here");
        assert!(blocks[1..].iter().all(|b| !behind.knows(&b.digest().0)), "nothing executed");

        let near: Vec<_> = blocks[..11].iter().rev().cloned().collect();
        assert!(rt.block_on(app.catch_up(Listed(near, 0))));
        assert!(blocks[1..11].iter().all(|b| behind.knows(&b.digest().0)), "executed, oldest first");
    }
}
