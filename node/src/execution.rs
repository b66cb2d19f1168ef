//! Executing consensus blocks: building a proposal from the mempool, re-executing a peer's
//! proposal to check its header, and committing finalized blocks in order. Blocks are
//! executed on their parent's state before the parent is final (consensus votes on a block
//! while its parent is only notarized), so executed blocks wait here, keyed by digest, until
//! the finalized chain reaches them.

use crate::block::{Block, MAX_BLOCK_TXS, MAX_BLOCK_TX_BYTES};
pub use crate::evidence::EvidenceCheck;
use crate::evidence::EvidencePool;
use crate::hexbytes::to_hex;
use crate::mempool::{Accounts, Mempool};
use crate::staking::{slash_writes, slashed_key, Offense};
use aivm_runtime::cpu::{self, Part};
use aivm_runtime::tx::{verify_batch, verify_encoded};
use aivm_runtime::{Account, Address, BlockLimits, Chain, ChainError, Parent, SignedTransaction, SpeculativeBlock, StateKey, StateValue, VerifiedTx};
use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The leader of view `view` in engine epoch `epoch` among that epoch's `signers` (the
/// engine's schedule, `consensus::leaders`).
pub type Leaders = Arc<dyn Fn(&[Address], u64, u64) -> Address + Send + Sync>;

/// A block executed on its parent, waiting to be finalized.
pub struct Executed {
    pub block: Arc<Block>,
    pub digest: [u8; 32],
    spec: SpeculativeBlock,
    /// The offences the block's evidence proves (punished when it commits).
    offenses: Vec<Offense>,
}

/// What a finalized block did, for subscribers and metrics.
#[derive(Clone, Debug)]
pub struct Finalized {
    pub height: u64,
    pub digest: [u8; 32],
    pub state_root: [u8; 32],
    pub txs: usize,
    pub gas_used: u64,
    pub time_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// This node could not execute the block (see [`ChainError::MachineFault`]): it abstains;
    /// the block is neither valid nor invalid here.
    #[error("{0}")]
    Machine(String),
    /// The block breaks a rule: every honest validator refuses it.
    #[error("invalid block: {0}")]
    Invalid(String),
    /// A finalized block cannot be applied: this node's state differs from the network's.
    #[error("finalized block {height} cannot be applied: {why}")]
    Diverged { height: u64, why: String },
}

struct Inner {
    /// Executed blocks above the committed head, by digest.
    pending: HashMap<[u8; 32], Arc<Executed>>,
    /// Digest of the committed head block.
    head_digest: [u8; 32],
    head_time: u64,
    /// The committed head's height and header hash, set with `head_digest` (the chain's own
    /// head moves first, while a block commits).
    head_height: u64,
    head_hash: [u8; 32],
}

pub struct Executor {
    chain: Arc<Chain>,
    evidence_check: Option<Arc<dyn EvidenceCheck>>,
    /// Evidence reported by the engine, verified, waiting for this node's proposals.
    evidence_pool: Mutex<EvidencePool>,
    inner: Mutex<Inner>,
    /// Serialises execution and commits: a block's parent state must not move under it.
    exec: Mutex<()>,
    pub mempool: Mutex<Mempool>,
    /// Most transactions a proposal takes from the mempool.
    pub max_block_txs: usize,
    /// What a block may hold (genesis), checked before executing anything.
    limits: BlockLimits,
    /// Transactions clients submitted here, waiting to be gossiped to the other validators
    /// (`consensus::gossip` drains it; nothing is kept until it starts).
    gossip: Mutex<Outbox>,
    /// See [`Executor::reused_verified`].
    reused: std::sync::atomic::AtomicU64,
    /// State snapshots taken after commits, for state sync (`None`: this node takes none).
    snapshots: Option<Arc<crate::snapshots::Snapshots>>,
    /// The consensus engine's leader of each view, for liveness (`None` outside consensus:
    /// no leader slots are counted).
    leaders: Option<Leaders>,
    /// The genesis block's reshare payload (epoch 0's info): part of its digest.
    genesis_reshare: Option<Vec<u8>>,
    /// The engine epochs this node has a scheme for, and whether it holds a share in each
    /// (set by the consensus layer as epochs are registered; shown by `aivm_status`).
    pub signer_epochs: Mutex<std::collections::BTreeMap<u64, bool>>,
}

/// Who handed a transaction to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client over RPC: gossiped on to the other validators once admitted.
    Client,
    /// Another validator's gossip: already sent to everyone, not passed on.
    Peer,
}

/// Admitted client transactions not yet gossiped, bounded by bytes: past the bound they are
/// not gossiped (they still reach the others in this node's blocks).
#[derive(Default)]
struct Outbox {
    enabled: bool,
    txs: Vec<Vec<u8>>,
    bytes: usize,
}

/// Most bytes of admitted transactions waiting for the gossip task.
pub const MAX_GOSSIP_BACKLOG: usize = 32 << 20;

/// The signers of engine epoch `epoch` as recorded in a state (`consensus::epochs`).
pub fn read_engine(read: impl Fn(&StateKey) -> Option<StateValue>, epoch: u64) -> Option<aivm_runtime::staking::EngineEpoch> {
    match read(&aivm_runtime::staking::StakingKey::Engine(epoch).state_key()) {
        Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).ok(),
        _ => None,
    }
}

/// parking_lot locks do not poison: a panicked holder cannot wedge the node's other paths.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

impl Executor {
    /// Open over a chain that holds its genesis block.
    pub fn new(chain: Arc<Chain>, mempool: Mempool, limits: BlockLimits) -> Result<Self, ExecError> {
        let head = chain.head().ok_or(ChainError::NoGenesis)?;
        let record = chain.block(head.height)?.ok_or_else(|| ChainError::Corrupt(format!("head block {} missing", head.height)))?;
        let head_digest = match chain.store().head_label().map_err(ChainError::from)? {
            Some(l) if head.height > 0 => l.try_into().map_err(|_| ChainError::Corrupt("head label is not a digest".into()))?,
            _ if head.height == 0 => Block::genesis(record.header.clone()).digest(),
            _ => return Err(ChainError::Corrupt(format!("head {} has no consensus digest", head.height)).into()),
        };
        let inner = Inner { pending: HashMap::new(), head_digest, head_time: record.header.time_ms, head_height: head.height, head_hash: record.header.hash() };
        Ok(Executor {
            chain,
            evidence_check: None,
            evidence_pool: Mutex::new(EvidencePool::default()),
            inner: Mutex::new(inner),
            exec: Mutex::new(()),
            mempool: Mutex::new(mempool),
            max_block_txs: MAX_BLOCK_TXS,
            limits,
            gossip: Mutex::new(Outbox::default()),
            reused: Default::default(),
            snapshots: None,
            leaders: None,
            genesis_reshare: None,
            signer_epochs: Default::default(),
        })
    }

    /// The genesis block carries `payload` (genesis' `epoch_info`), which changes its digest.
    pub fn with_genesis_reshare(mut self, payload: Vec<u8>) -> Self {
        let payload = (!payload.is_empty()).then_some(payload);
        if self.chain.head().is_some_and(|h| h.height == 0) {
            if let Ok(Some(record)) = self.chain.block(0) {
                let mut genesis = Block::genesis(record.header);
                genesis.reshare = payload.clone();
                lock(&self.inner).head_digest = genesis.digest();
            }
        }
        self.genesis_reshare = payload;
        self
    }

    /// Accept blocks carrying evidence checked by `check` (without it, any evidence is invalid).
    pub fn with_evidence_check(mut self, check: Arc<dyn EvidenceCheck>) -> Self {
        self.evidence_check = Some(check);
        self
    }

    /// Count leader slots with the engine's schedule (`aivm_runtime::staking::liveness`).
    pub fn with_leaders(mut self, leaders: Leaders) -> Self {
        self.leaders = Some(leaders);
        self
    }

    /// Who signs in engine epoch `epoch` as `state` records it (`consensus::epochs`), else the
    /// staking set recorded for it.
    fn engine_signers(&self, state: &Parent, epoch: u64) -> Vec<Address> {
        let read = |k: &StateKey| self.chain.read_at(state, k).ok().flatten();
        match read_engine(read, epoch) {
            Some(e) => e.signers.iter().map(|s| **s).collect(),
            None => aivm_runtime::staking::epoch::epoch_set(epoch, read).map(|s| s.validators.iter().map(|v| **v).collect()).unwrap_or_default(),
        }
    }

    /// The system writes of a block at `height` in `view` on `state`: slashing for its
    /// `offenses`, its leader slots, and, when it carries the next epoch's info, who signs in
    /// that epoch; in key order.
    fn system_writes(&self, state: &Parent, offenses: &[Offense], height: u64, view: u64, reshare: Option<&[u8]>) -> Result<aivm_runtime::Writes, ExecError> {
        use aivm_runtime::staking::StakingKey;
        let mut w = self.punish(state, offenses)?;
        let params = aivm_runtime::staking::epoch::params(|k| self.chain.read_at(state, k).ok().flatten());
        if let Some(leaders) = &self.leaders {
            let epoch = params.as_ref().and_then(|p| height.checked_div(p.epoch_length)).unwrap_or(0);
            let signers = self.engine_signers(state, epoch);
            let slots =
                aivm_runtime::staking::liveness::view_writes(height, view, |e, v| leaders(&signers, e, v), |k| self.chain.read_at(state, k).ok().flatten())
                    .map_err(|e| ExecError::Invalid(e.to_string()))?;
            w.extend(slots);
        }
        // The final block of epoch E carries E + 1's info (checked by the consensus layer
        // before anyone votes; anything else is not recorded). Other blocks' payloads, dealer
        // logs, are not decoded here.
        if let (Some(bytes), Some(p)) = (reshare, &params) {
            let next = (height + 1).checked_div(p.epoch_length).filter(|_| (height + 1).is_multiple_of(p.epoch_length.max(1)));
            if let Some((epoch, engine)) = next.and_then(|_| crate::consensus::epochs::engine_epoch(bytes)) {
                if Some(epoch) == next {
                    w.push((StakingKey::Engine(epoch).state_key(), StateValue::Bytes(aivm_runtime::encoding::cbor(&engine).into())));
                }
            }
        }
        w.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(w)
    }

    /// Take state snapshots as `snapshots` says (see [`crate::snapshots`]).
    pub fn with_snapshots(mut self, snapshots: Arc<crate::snapshots::Snapshots>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    pub fn snapshots(&self) -> Option<&Arc<crate::snapshots::Snapshots>> {
        self.snapshots.as_ref()
    }

    pub fn limits(&self) -> &BlockLimits {
        &self.limits
    }

    /// Evidence of a fault seen by the engine, for a later proposal of this node: verified now
    /// (never under the execution lock) and pooled by offence.
    pub fn report_evidence(&self, evidence: Vec<u8>) {
        let Some(check) = self.evidence_check.as_ref() else { return };
        let height = self.chain.head().map_or(0, |h| h.height);
        let engine = |e: u64| read_engine(|k| self.chain.store().get(k).ok().flatten(), e);
        match lock(&self.evidence_pool).add(evidence, check.as_ref(), &engine, height) {
            Ok(o) => tracing::warn!(validator = %to_hex(&o.identity), view = o.view, "equivocation evidence recorded"),
            Err(e) => tracing::debug!(error = %e, "evidence not pooled"),
        }
    }

    /// Pooled evidence items now.
    pub fn evidence_pooled(&self) -> usize {
        lock(&self.evidence_pool).len()
    }

    /// The offences `evidence` proves, each verified (pooled bytes are not checked twice), or
    /// why a block carrying it is invalid.
    fn offenses(&self, evidence: &[Vec<u8>], state: &Parent) -> Result<Vec<Offense>, ExecError> {
        if evidence.is_empty() {
            return Ok(Vec::new());
        }
        let check = self.evidence_check.as_ref().ok_or_else(|| ExecError::Invalid("this chain accepts no evidence".into()))?;
        let engine = |e: u64| read_engine(|k| self.chain.read_at(state, k).ok().flatten(), e);
        let pool = lock(&self.evidence_pool);
        evidence
            .iter()
            .map(|e| pool.pooled(e).or_else(|| check.offense(e, &engine)).ok_or_else(|| ExecError::Invalid("evidence does not verify".into())))
            .collect()
    }

    /// The slashing writes `offenses` make on `state`, or why they are invalid there.
    fn punish(&self, state: &Parent, offenses: &[Offense]) -> Result<aivm_runtime::Writes, ExecError> {
        if offenses.is_empty() {
            return Ok(Vec::new());
        }
        slash_writes(offenses, |k| self.chain.read_at(state, k).ok().flatten()).map_err(|e| ExecError::Invalid(e.to_string()))
    }

    /// Pooled evidence not punished on `state` nor in the uncommitted ancestors of `parent`.
    /// Reads state only: every pooled item was verified when it arrived.
    fn pick_evidence(&self, parent: &[u8; 32], state: &Parent) -> (Vec<Offense>, Vec<Vec<u8>>) {
        let mut included = HashSet::new();
        {
            let inner = lock(&self.inner);
            let mut cursor = *parent;
            while let Some(e) = inner.pending.get(&cursor) {
                included.extend(e.offenses.iter().copied());
                cursor = e.block.parent;
            }
        }
        let punished = |o: &Offense| self.chain.read_at(state, &slashed_key(&o.identity, o.view)).ok().flatten().is_some();
        lock(&self.evidence_pool).pick(&included, punished).into_iter().unzip()
    }

    /// Stop for good: wait for the block being verified or committed, flush the store, and
    /// return holding the execution lock, so nothing executes or commits after it.
    pub fn shut_down(&self) -> Result<parking_lot::MutexGuard<'_, ()>, ExecError> {
        let guard = lock(&self.exec);
        self.chain.store().flush().map_err(|e| ExecError::Machine(e.to_string()))?;
        Ok(guard)
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The genesis block (height 0) as consensus sees it.
    pub fn genesis_block(&self) -> Result<Block, ExecError> {
        let record = self.chain.block(0)?.ok_or(ChainError::NoGenesis)?;
        let mut genesis = Block::genesis(record.header);
        genesis.reshare = self.genesis_reshare.clone();
        Ok(genesis)
    }

    /// Committed height and digest.
    pub fn head(&self) -> (u64, [u8; 32]) {
        let inner = lock(&self.inner);
        (self.chain.head().map_or(0, |h| h.height), inner.head_digest)
    }

    /// The state a child of block `digest` executes on, if that block is the committed head
    /// or executed on top of it.
    pub fn state_after(&self, digest: &[u8; 32]) -> Option<(Parent, u64)> {
        let inner = lock(&self.inner);
        let (mut layers, mut trees) = (Vec::new(), Vec::new());
        let mut cursor = *digest;
        let mut top: Option<(u64, [u8; 32], u64)> = None;
        while cursor != inner.head_digest {
            let e = inner.pending.get(&cursor)?;
            if top.is_none() {
                top = Some((e.block.height(), e.spec.record.header.hash(), e.block.header.time_ms));
            }
            layers.push(Arc::clone(&e.spec.writes));
            trees.push(Arc::clone(&e.spec.tree));
            cursor = e.block.parent;
        }
        layers.reverse();
        trees.reverse();
        let (height, hash, time) = match top {
            Some(t) => t,
            None => {
                let p = self.chain.committed_parent().ok()?;
                (p.height, p.hash, inner.head_time)
            }
        };
        Some((Parent { height, hash, layers, trees }, time))
    }

    /// The committed head as one consistent reading: height, header hash and consensus digest.
    pub fn committed_head(&self) -> (u64, [u8; 32], [u8; 32]) {
        let inner = lock(&self.inner);
        (inner.head_height, inner.head_hash, inner.head_digest)
    }

    /// The committed head block's time, kept in memory (health checks ask for it often).
    pub fn head_time(&self) -> u64 {
        lock(&self.inner).head_time
    }

    /// Whether `digest` is known (committed head or executed above it).
    pub fn knows(&self, digest: &[u8; 32]) -> bool {
        let inner = lock(&self.inner);
        inner.head_digest == *digest || inner.pending.contains_key(digest)
    }

    /// Hashes of the transactions in the uncommitted ancestors of `digest` (inclusive).
    fn pending_tx_hashes(&self, digest: &[u8; 32]) -> HashSet<[u8; 32]> {
        let inner = lock(&self.inner);
        let mut out = HashSet::new();
        let mut cursor = *digest;
        while let Some(e) = inner.pending.get(&cursor) {
            out.extend(e.spec.record.receipts.iter().map(|r| r.tx_hash));
            cursor = e.block.parent;
        }
        out
    }

    /// Whether a child of `parent` has a transaction to carry: the mempool holds one that the
    /// uncommitted blocks up to `parent` do not. (Until those blocks commit, their
    /// transactions are still pooled; a leader that counted them proposed an empty block at
    /// once after every full one.)
    pub fn has_new_txs(&self, parent: &[u8; 32]) -> bool {
        if lock(&self.mempool).is_empty() {
            return false;
        }
        let skip = self.pending_tx_hashes(parent);
        let pool = lock(&self.mempool);
        pool.len() > skip.iter().filter(|h| pool.contains(h)).count()
    }

    /// Build a block on `parent` (which must be known): mempool transactions not already in
    /// an uncommitted ancestor, in fee order, executed.
    /// `seed`: the threshold seed signature of the round that certified `parent` (`None`
    /// outside consensus and on genesis' child), carried in the block for its beacon.
    pub fn propose(&self, parent: [u8; 32], now_ms: u64) -> Result<Arc<Executed>, ExecError> {
        let view = self.state_after(&parent).map_or(1, |(s, _)| s.height + 1);
        self.propose_with(parent, now_ms, None, view, Vec::new(), None)
    }

    /// [`Executor::propose`] in consensus view `view`, with the parent round's seed, `first` ahead of the mempool's
    /// transactions (tests build blocks with replayed transactions this way), and the reshare
    /// payload consensus chose for the block.
    pub fn propose_with(
        &self,
        parent: [u8; 32],
        now_ms: u64,
        seed: Option<[u8; crate::block::SEED_BYTES]>,
        view: u64,
        first: Vec<SignedTransaction>,
        reshare: Option<Vec<u8>>,
    ) -> Result<Arc<Executed>, ExecError> {
        let _x = lock(&self.exec);
        let (state, parent_time) = self.state_after(&parent).ok_or_else(|| ExecError::Invalid("unknown parent".into()))?;
        let (offenses, evidence) = self.pick_evidence(&parent, &state);
        let system = self.system_writes(&state, &offenses, state.height + 1, view, reshare.as_deref())?;
        let skip = self.pending_tx_hashes(&parent);
        // Evidence and transactions share the block's byte budget (as the decoder counts it).
        let tx_bytes = MAX_BLOCK_TX_BYTES - evidence.iter().map(Vec::len).sum::<usize>();
        let picked = cpu::measure(Part::Mempool, || lock(&self.mempool).select(self.max_block_txs + skip.len(), tx_bytes, self.limits.max_block_gas));
        let first = verify_batch(first, self.chain.config().chain_id)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecError::Invalid(format!("transaction: {e}")))?;
        let firsts: HashSet<[u8; 32]> = first.iter().map(|v| v.hash).collect();
        let mut txs = first;
        txs.extend(
            picked
                .iter()
                .filter(|t| !skip.contains(&t.hash) && !firsts.contains(&t.hash))
                .take(self.max_block_txs.saturating_sub(txs.len()))
                .map(|t| VerifiedTx::clone(t)),
        );
        self.limits.check_block(&txs).map_err(|e| ExecError::Invalid(format!("proposal: {e}")))?;
        let time_ms = now_ms.max(parent_time.saturating_add(1));
        let spec = self.chain.execute_verified(&state, txs, time_ms, system, seed.as_ref().map(|s| &s[..])).map_err(machine)?;
        let block =
            Block { parent, view, header: spec.record.header.clone(), txs: spec.record.txs.iter().map(|t| t.encode()).collect(), evidence, seed, reshare };
        let digest = block.digest();
        Ok(self.remember(Arc::new(block), digest, spec, offenses))
    }

    /// Re-execute a peer's block (whose digest the caller computed once: hashing a block of
    /// up to 8 MiB is not free) on its parent's state, which must be known (the caller
    /// executes unknown ancestors first), and check every header field.
    pub fn verify(&self, block: &Arc<Block>, digest: [u8; 32], now_ms: u64) -> Result<Arc<Executed>, ExecError> {
        let _x = lock(&self.exec);
        self.verify_locked(block, digest, Some(now_ms))
    }

    /// `now_ms` bounds the block's time; `None` for a block already finalized, whose time
    /// the network accepted.
    fn verify_locked(&self, block: &Arc<Block>, digest: [u8; 32], now_ms: Option<u64>) -> Result<Arc<Executed>, ExecError> {
        if let Some(e) = lock(&self.inner).pending.get(&digest) {
            return Ok(Arc::clone(e));
        }
        let (state, parent_time) = self.state_after(&block.parent).ok_or_else(|| ExecError::Invalid("parent not executed".into()))?;
        let h = &block.header;
        if h.height != state.height + 1 {
            return Err(ExecError::Invalid(format!("height {} on a parent at {}", h.height, state.height)));
        }
        if h.time_ms <= parent_time {
            return Err(ExecError::Invalid("time does not increase".into()));
        }
        if now_ms.is_some_and(|now| h.time_ms > now.saturating_add(MAX_CLOCK_DRIFT_MS)) {
            return Err(ExecError::Invalid("time is in the future".into()));
        }
        // Everything checkable without executing comes first: a block over the limits costs a
        // verifier its decoding and signature checks, never its execution.
        let txs = self.verified_txs(&block.txs)?;
        for t in &txs {
            self.limits.check_tx(t.tx()).map_err(|e| ExecError::Invalid(format!("transaction: {e}")))?;
        }
        self.limits.check_block(&txs).map_err(|e| ExecError::Invalid(e.to_string()))?;
        let offenses = self.offenses(&block.evidence, &state)?;
        let system = self.system_writes(&state, &offenses, h.height, block.view, block.reshare.as_deref())?;
        let spec = self.chain.execute_verified(&state, txs, h.time_ms, system, block.seed.as_ref().map(|s| &s[..])).map_err(machine)?;
        if spec.record.header != *h {
            return Err(ExecError::Invalid(format!(
                "header differs from execution (state root {} vs {})",
                to_hex(&spec.record.header.state_root),
                to_hex(&h.state_root)
            )));
        }
        Ok(self.remember(Arc::clone(block), digest, spec, offenses))
    }

    /// A block's transactions, verified: those this node's mempool admitted are taken as they
    /// are (each transaction's signature is checked once per node), the rest are decoded and
    /// checked in parallel batches. Any bad one makes the block invalid.
    fn verified_txs(&self, encoded: &[Vec<u8>]) -> Result<Vec<VerifiedTx>, ExecError> {
        let known: Vec<Option<Arc<VerifiedTx>>> = {
            let hashes: Vec<Option<[u8; 32]>> = encoded.iter().map(|b| aivm_runtime::tx::id_of_encoding(b)).collect();
            let pool = lock(&self.mempool);
            hashes.iter().map(|h| h.and_then(|h| pool.get(&h))).collect()
        };
        let missing: Vec<&[u8]> = encoded.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(b, _)| b.as_slice()).collect();
        self.reused.fetch_add((encoded.len() - missing.len()) as u64, std::sync::atomic::Ordering::Relaxed);
        let mut fresh = verify_encoded(&missing, self.chain.config().chain_id).into_iter();
        known
            .into_iter()
            .map(|k| match k {
                Some(v) => Ok(VerifiedTx::clone(&v)),
                None => fresh.next().unwrap_or_else(|| Err(aivm_runtime::TxError::Malformed("not checked".into()))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecError::Invalid(format!("transaction: {e}")))
    }

    fn remember(&self, block: Arc<Block>, digest: [u8; 32], spec: SpeculativeBlock, offenses: Vec<Offense>) -> Arc<Executed> {
        let e = Arc::new(Executed { block, digest, spec, offenses });
        lock(&self.inner).pending.insert(digest, Arc::clone(&e));
        e
    }

    /// Commit a finalized block. Blocks arrive in height order, at least once: those at or
    /// below the head are skipped (`Ok(None)`).
    pub fn finalize(&self, block: &Arc<Block>, digest: [u8; 32]) -> Result<Option<Finalized>, ExecError> {
        let _x = lock(&self.exec);
        let (height, head_digest) = self.head();
        if block.height() <= height {
            return Ok(None);
        }
        let diverged = |why: String| ExecError::Diverged { height: block.height(), why };
        if block.height() != height + 1 || block.parent != head_digest {
            return Err(diverged(format!("does not extend the committed head {height}")));
        }
        let existing = lock(&self.inner).pending.get(&digest).cloned();
        let e = match existing {
            Some(e) => e,
            // Never verified here (this node was down or behind): execute it now. A machine
            // fault decides nothing: try again a few times before giving up.
            None => {
                let mut attempt = 0;
                loop {
                    match self.verify_locked(block, digest, None) {
                        Ok(e) => break e,
                        Err(ExecError::Machine(why)) if attempt < MACHINE_RETRIES => {
                            attempt += 1;
                            tracing::warn!(height = block.height(), attempt, error = %why, "retrying a finalized block after a machine fault");
                            std::thread::sleep(std::time::Duration::from_millis(100 * attempt as u64));
                        }
                        Err(e) => return Err(diverged(e.to_string())),
                    }
                }
            }
        };
        let head = self.chain.commit_speculative(&e.spec, Some(&digest)).map_err(|err| diverged(err.to_string()))?;
        {
            let mut inner = lock(&self.inner);
            inner.head_digest = digest;
            inner.head_time = block.header.time_ms;
            inner.head_height = head.height;
            inner.head_hash = e.spec.record.header.hash();
            inner.pending.retain(|_, p| p.block.height() > head.height);
        }
        // The block's writes hold every account it changed: the pool refreshes those senders
        // without reading the store.
        let changed = e.spec.writes.iter().filter_map(|(k, v)| match (k, v) {
            (StateKey::Account(a), StateValue::Account(acc)) => Some((*a, *acc)),
            _ => None,
        });
        cpu::measure(Part::Mempool, || lock(&self.mempool).on_committed(changed));
        if !e.offenses.is_empty() {
            tracing::warn!(height = head.height, items = e.offenses.len(), "slashing evidence committed");
        }
        let punished = |o: &Offense| self.chain.store().get(&slashed_key(&o.identity, o.view)).ok().flatten().is_some();
        lock(&self.evidence_pool).on_committed(head.height, punished);
        // Still under the execution lock: the checkpoint is exactly this block's state.
        if let Some(s) = self.snapshots.as_ref().filter(|s| s.due(head.height)) {
            match s.take(self.chain.store(), head.height) {
                Ok(()) => tracing::info!(height = head.height, "state snapshot taken"),
                Err(e) => tracing::warn!(height = head.height, error = %e, "state snapshot failed (the node goes on)"),
            }
        }
        Ok(Some(Finalized {
            height: head.height,
            digest,
            state_root: head.state_root,
            txs: block.txs.len(),
            gas_used: block.header.gas_used,
            time_ms: block.header.time_ms,
        }))
    }

    /// Admit a transaction to the mempool, checked against committed state.
    pub fn submit(&self, bytes: &[u8]) -> Result<[u8; 32], crate::mempool::MempoolError> {
        self.submit_many(&[bytes], Origin::Client).pop().unwrap_or(Err(crate::mempool::MempoolError::Duplicate))
    }

    /// Admit transactions (results in input order). They are decoded in parallel; what the
    /// pool would refuse anyway (duplicates, nonces out of range, full senders, a full pool:
    /// [`Mempool::precheck_sized`]) is answered before any signature check; the rest are checked in
    /// batches before the pool's lock is taken, then admitted. A client's admitted
    /// transactions are queued for gossip.
    pub fn submit_many<B: AsRef<[u8]> + Sync>(&self, txs: &[B], origin: Origin) -> Vec<Result<[u8; 32], crate::mempool::MempoolError>> {
        use crate::mempool::MempoolError;
        let decoded = aivm_runtime::tx::decode_all(txs);
        let mut answers: Vec<Option<Result<[u8; 32], MempoolError>>> = Vec::with_capacity(txs.len());
        let mut to_check = Vec::new();
        {
            let pool = lock(&self.mempool);
            let mut cheapest = None;
            for d in decoded {
                match d.map_err(MempoolError::from).and_then(|d| pool.precheck_sized(d.tx(), &d.hash(), d.size(), &mut cheapest).map(|()| d)) {
                    Ok(d) => {
                        answers.push(None);
                        to_check.push(d);
                    }
                    Err(e) => answers.push(Some(Err(e))),
                }
            }
        }
        let mut checked = aivm_runtime::tx::verify_decoded(to_check, self.chain.config().chain_id).into_iter();
        let accounts = ChainAccounts(&self.chain);
        let mut admitted = Vec::new();
        let out: Vec<Result<[u8; 32], MempoolError>> = cpu::measure(Part::Mempool, || {
            let mut pool = lock(&self.mempool);
            txs.iter()
                .zip(answers)
                .map(|(bytes, answer)| {
                    if let Some(refused) = answer {
                        return refused;
                    }
                    let vtx = checked.next().unwrap_or(Err(aivm_runtime::TxError::Malformed("not checked".into())))?;
                    let hash = pool.insert_verified(vtx, &accounts)?;
                    if origin == Origin::Client {
                        admitted.push(bytes.as_ref().to_vec());
                    }
                    Ok(hash)
                })
                .collect()
        });
        if !admitted.is_empty() {
            let mut outbox = lock(&self.gossip);
            if outbox.enabled {
                for tx in admitted {
                    if outbox.bytes + tx.len() > MAX_GOSSIP_BACKLOG {
                        break;
                    }
                    outbox.bytes += tx.len();
                    outbox.txs.push(tx);
                }
            }
        }
        out
    }

    /// Transactions of peers' blocks taken verified from this node's pool (not checked again).
    pub fn reused_verified(&self) -> u64 {
        self.reused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start keeping admitted client transactions for gossip, and take those kept so far.
    pub fn take_gossip(&self) -> Vec<Vec<u8>> {
        let mut outbox = lock(&self.gossip);
        outbox.enabled = true;
        outbox.bytes = 0;
        std::mem::take(&mut outbox.txs)
    }
}

/// How often a finalized block is re-executed after a machine fault before the node stops.
const MACHINE_RETRIES: u32 = 5;

/// Machine faults abstain; every other chain error passes through.
fn machine(e: ChainError) -> ExecError {
    match e {
        ChainError::MachineFault(why) => ExecError::Machine(why),
        e => ExecError::Chain(e),
    }
}

/// How far ahead of this node's clock a proposal's time may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 2_000;

/// Committed accounts, for the mempool's checks.
pub struct ChainAccounts<'a>(pub &'a Chain);

impl Accounts for ChainAccounts<'_> {
    fn account(&self, a: &Address) -> Option<Account> {
        self.0.account(a).ok().flatten()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::mempool::MempoolConfig;
    use aivm::{GasSchedule, Limits, Vm};
    use aivm_runtime::workload::P2p;
    use aivm_runtime::{ChainConfig, ChainVm};

    /// An executor and the directory its chain lives in, removed when this is dropped (the
    /// executor first: fields drop in order).
    pub struct TestExecutor {
        pub exec: Arc<Executor>,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for TestExecutor {
        type Target = Executor;
        fn deref(&self) -> &Executor {
            &self.exec
        }
    }

    /// An executor over a fresh chain (chain id 5) whose genesis funds `P2p::new(5, 2, 1)`'s
    /// two accounts.
    pub fn executor(tag: &str) -> TestExecutor {
        let dir = tempfile::Builder::new().prefix(&format!("aivm-exec-{tag}-")).tempdir().expect("temporary directory");
        let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
        let chain = Chain::open(dir.path(), ChainVm::new(vm), ChainConfig { chain_id: 5, fee_collector: [0; 32] }).expect("chain");
        chain.init_genesis(&P2p::new(5, 2, 1).genesis(1 << 60)).expect("genesis");
        let limits = BlockLimits { max_block_gas: 1 << 40, max_tx_gas: 1 << 40, min_gas_price: 1 };
        let exec = Arc::new(Executor::new(Arc::new(chain), Mempool::new(MempoolConfig::new(5, limits), GasSchedule::default()), limits).expect("executor"));
        TestExecutor { exec, _dir: dir }
    }
}
