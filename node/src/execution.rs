//! Executing consensus blocks: building a proposal from the mempool, re-executing a peer's
//! proposal to check its header, and committing finalized blocks in order. Blocks are
//! executed on their parent's state before the parent is final (consensus votes on a block
//! while its parent is only notarized), so executed blocks wait here, keyed by digest, until
//! the finalized chain reaches them.

use crate::block::{Block, MAX_BLOCK_TXS, MAX_BLOCK_TX_BYTES};
use crate::hexbytes::to_hex;
use crate::mempool::{Accounts, Mempool};
use crate::staking::{slash_writes, Offense};
use aivm_runtime::{Account, Address, Chain, ChainError, Parent, SignedTransaction, SpeculativeBlock};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most gas one block may use.
pub const MAX_BLOCK_GAS: u64 = 50_000_000_000;

/// A block executed on its parent, waiting to be finalized.
pub struct Executed {
    pub block: Arc<Block>,
    pub digest: [u8; 32],
    spec: SpeculativeBlock,
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
}

/// Checks slashing evidence (the consensus module knows its format and signatures).
pub trait EvidenceCheck: Send + Sync {
    /// The offence `evidence` proves, if its signatures verify against the validator set.
    fn offense(&self, evidence: &[u8]) -> Option<Offense>;
}

pub struct Executor {
    chain: Arc<Chain>,
    evidence_check: Option<Arc<dyn EvidenceCheck>>,
    /// Evidence reported by the engine, waiting to be included by this node's proposals.
    evidence_pool: Mutex<Vec<Vec<u8>>>,
    inner: Mutex<Inner>,
    /// Serialises execution and commits: a block's parent state must not move under it.
    exec: Mutex<()>,
    pub mempool: Mutex<Mempool>,
    /// Most transactions a proposal takes from the mempool.
    pub max_block_txs: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Executor {
    /// Open over a chain that holds its genesis block.
    pub fn new(chain: Arc<Chain>, mempool: Mempool) -> Result<Self, ExecError> {
        let head = chain.head().ok_or(ChainError::NoGenesis)?;
        let record = chain.block(head.height)?.ok_or_else(|| ChainError::Corrupt(format!("head block {} missing", head.height)))?;
        let head_digest = match chain.store().head_label().map_err(ChainError::from)? {
            Some(l) if head.height > 0 => l.try_into().map_err(|_| ChainError::Corrupt("head label is not a digest".into()))?,
            _ if head.height == 0 => Block::genesis(record.header.clone()).digest(),
            _ => return Err(ChainError::Corrupt(format!("head {} has no consensus digest", head.height)).into()),
        };
        let inner = Inner { pending: HashMap::new(), head_digest, head_time: record.header.time_ms };
        Ok(Executor { chain, evidence_check: None, evidence_pool: Mutex::new(Vec::new()), inner: Mutex::new(inner), exec: Mutex::new(()), mempool: Mutex::new(mempool), max_block_txs: MAX_BLOCK_TXS })
    }

    /// Accept blocks carrying evidence checked by `check` (without it, any evidence is invalid).
    pub fn with_evidence_check(mut self, check: Arc<dyn EvidenceCheck>) -> Self {
        self.evidence_check = Some(check);
        self
    }

    /// Evidence of a fault seen by the engine, for a later proposal of this node.
    pub fn report_evidence(&self, evidence: Vec<u8>) {
        let mut pool = lock(&self.evidence_pool);
        if pool.len() < 1024 && !pool.contains(&evidence) {
            tracing::warn!(bytes = evidence.len(), "equivocation evidence recorded");
            pool.push(evidence);
        }
    }

    /// The slashing writes `evidence` makes on `state`, or why the evidence is invalid there.
    fn punish(&self, state: &Parent, evidence: &[Vec<u8>]) -> Result<aivm_runtime::Writes, ExecError> {
        if evidence.is_empty() {
            return Ok(Vec::new());
        }
        let check = self.evidence_check.as_ref().ok_or_else(|| ExecError::Invalid("this chain accepts no evidence".into()))?;
        let offenses = evidence.iter().map(|e| check.offense(e).ok_or_else(|| ExecError::Invalid("evidence does not verify".into()))).collect::<Result<Vec<_>, _>>()?;
        slash_writes(&offenses, |k| self.chain.read_at(state, k).ok().flatten()).map_err(ExecError::Invalid)
    }

    /// Pooled evidence valid on `state` and not in the uncommitted ancestors of `parent`.
    fn pick_evidence(&self, parent: &[u8; 32], state: &Parent) -> Vec<Vec<u8>> {
        let pool = lock(&self.evidence_pool).clone();
        if pool.is_empty() {
            return pool;
        }
        let mut included = HashSet::new();
        {
            let inner = lock(&self.inner);
            let mut cursor = *parent;
            while let Some(e) = inner.pending.get(&cursor) {
                included.extend(e.block.evidence.iter().cloned());
                cursor = e.block.parent;
            }
        }
        let mut chosen: Vec<Vec<u8>> = Vec::new();
        for e in pool.into_iter().filter(|e| !included.contains(e)) {
            let mut trial = chosen.clone();
            trial.push(e.clone());
            if chosen.len() < crate::block::MAX_BLOCK_EVIDENCE && self.punish(state, &trial).is_ok() {
                chosen = trial;
            }
        }
        chosen
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The genesis block (height 0) as consensus sees it.
    pub fn genesis_block(&self) -> Result<Block, ExecError> {
        let record = self.chain.block(0)?.ok_or(ChainError::NoGenesis)?;
        Ok(Block::genesis(record.header))
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
        let mut layers = Vec::new();
        let mut cursor = *digest;
        let mut top: Option<(u64, [u8; 32], u64)> = None;
        while cursor != inner.head_digest {
            let e = inner.pending.get(&cursor)?;
            if top.is_none() {
                top = Some((e.block.height(), e.spec.record.header.hash(), e.block.header.time_ms));
            }
            layers.push(Arc::clone(&e.spec.writes));
            cursor = e.block.parent;
        }
        layers.reverse();
        let (height, hash, time) = match top {
            Some(t) => t,
            None => {
                let p = self.chain.committed_parent().ok()?;
                (p.height, p.hash, inner.head_time)
            }
        };
        Some((Parent { height, hash, layers }, time))
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

    /// Build a block on `parent` (which must be known): mempool transactions not already in
    /// an uncommitted ancestor, in fee order, executed.
    pub fn propose(&self, parent: [u8; 32], now_ms: u64) -> Result<Arc<Executed>, ExecError> {
        let _x = lock(&self.exec);
        let (state, parent_time) = self.state_after(&parent).ok_or_else(|| ExecError::Invalid("unknown parent".into()))?;
        let evidence = self.pick_evidence(&parent, &state);
        let system = self.punish(&state, &evidence)?;
        let skip = self.pending_tx_hashes(&parent);
        let picked = lock(&self.mempool).select(self.max_block_txs + skip.len(), MAX_BLOCK_TX_BYTES, MAX_BLOCK_GAS);
        let txs: Vec<SignedTransaction> = picked.iter().filter(|t| !skip.contains(&t.hash)).take(self.max_block_txs).map(|t| t.signed.clone()).collect();
        let time_ms = now_ms.max(parent_time.saturating_add(1));
        let spec = self.chain.execute_with(&state, txs, time_ms, system)?;
        let block = Block { parent, header: spec.record.header.clone(), txs: spec.record.txs.iter().map(|t| t.encode()).collect(), evidence };
        Ok(self.remember(block, spec))
    }

    /// Re-execute a peer's block on its parent's state (which must be known: the caller
    /// executes unknown ancestors first) and check every header field.
    pub fn verify(&self, block: &Block, now_ms: u64) -> Result<Arc<Executed>, ExecError> {
        let _x = lock(&self.exec);
        self.verify_locked(block, Some(now_ms))
    }

    /// `now_ms` bounds the block's time; `None` for a block already finalized, whose time
    /// the network accepted.
    fn verify_locked(&self, block: &Block, now_ms: Option<u64>) -> Result<Arc<Executed>, ExecError> {
        let digest = block.digest();
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
        let txs = block.txs.iter().map(|t| SignedTransaction::decode(t).map_err(|e| ExecError::Invalid(format!("transaction: {e}")))).collect::<Result<Vec<_>, _>>()?;
        let system = self.punish(&state, &block.evidence)?;
        let spec = self.chain.execute_with(&state, txs, h.time_ms, system)?;
        if spec.record.header != *h {
            return Err(ExecError::Invalid(format!("header differs from execution (state root {} vs {})", to_hex(&spec.record.header.state_root), to_hex(&h.state_root))));
        }
        Ok(self.remember(block.clone(), spec))
    }

    fn remember(&self, block: Block, spec: SpeculativeBlock) -> Arc<Executed> {
        let digest = block.digest();
        let e = Arc::new(Executed { block: Arc::new(block), digest, spec });
        lock(&self.inner).pending.insert(digest, Arc::clone(&e));
        e
    }

    /// Commit a finalized block. Blocks arrive in height order, at least once: those at or
    /// below the head are skipped (`Ok(None)`).
    pub fn finalize(&self, block: &Block) -> Result<Option<Finalized>, ExecError> {
        let _x = lock(&self.exec);
        let digest = block.digest();
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
            // Never verified here (this node was down or behind): execute it now.
            None => self.verify_locked(block, None).map_err(|e| diverged(e.to_string()))?,
        };
        let head = self.chain.commit_speculative(&e.spec, Some(&digest)).map_err(|err| diverged(err.to_string()))?;
        {
            let mut inner = lock(&self.inner);
            inner.head_digest = digest;
            inner.head_time = block.header.time_ms;
            inner.pending.retain(|_, p| p.block.height() > head.height);
        }
        let accounts = ChainAccounts(&self.chain);
        lock(&self.mempool).on_committed(&accounts);
        if !block.evidence.is_empty() {
            tracing::warn!(height = head.height, items = block.evidence.len(), "slashing evidence committed");
            lock(&self.evidence_pool).retain(|e| !block.evidence.contains(e));
        }
        Ok(Some(Finalized { height: head.height, digest, state_root: head.state_root, txs: block.txs.len(), gas_used: block.header.gas_used, time_ms: block.header.time_ms }))
    }

    /// Admit a transaction to the mempool, checked against committed state.
    pub fn submit(&self, bytes: &[u8]) -> Result<[u8; 32], crate::mempool::MempoolError> {
        let accounts = ChainAccounts(&self.chain);
        lock(&self.mempool).insert(bytes, &accounts)
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
