//! Blocks: executing a list of transactions over the committed state with Block-STM, settling
//! fees, computing the state root, and committing the block atomically.

use crate::blockstm::{execute_parallel, execute_sequential, ExecStats, Storage};
use crate::chain_vm::{BlockEnv, ChainVm};
use crate::encoding::cbor;
use crate::receipt::Receipt;
use crate::state::{Account, Address, StateKey, StateValue, SystemKey};
use crate::store::{Head, Prepared, Store, StoreError, StoreReader, TreeDelta, Writes};
use crate::tx::{verify_batch, SignedTransaction, VerifiedTx};
use aivm::verify::merkle;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// What every validator must agree on about a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    #[serde(with = "serde_bytes")]
    pub parent_hash: [u8; 32],
    pub time_ms: u64,
    /// RFC 6962-shaped BLAKE3 Merkle root over the transaction hashes.
    #[serde(with = "serde_bytes")]
    pub tx_root: [u8; 32],
    /// The same over BLAKE3 of each receipt's CBOR.
    #[serde(with = "serde_bytes")]
    pub receipts_root: [u8; 32],
    /// The Jellyfish Merkle root of the state after the block (`spec/state.md`).
    #[serde(with = "serde_bytes")]
    pub state_root: [u8; 32],
    pub gas_used: u64,
}

impl BlockHeader {
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&cbor(self)).as_bytes()
    }
}

/// A block as stored: header, transactions and their receipts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub header: BlockHeader,
    /// Shared with the verified transactions they came from (encoded as the transactions
    /// themselves).
    pub txs: Vec<Arc<SignedTransaction>>,
    pub receipts: Vec<Receipt>,
}

impl BlockRecord {
    pub fn encode(&self) -> Vec<u8> {
        cbor(self)
    }

    pub fn decode(b: &[u8]) -> Result<Self, ChainError> {
        ciborium::from_reader(b).map_err(|e| ChainError::Corrupt(format!("block record: {e}")))
    }

    /// Whether the receipts are the ones the header commits to (its transaction and receipt
    /// roots): a record from a peer (state sync) is taken only if they are.
    pub fn receipts_match_header(&self) -> bool {
        let hashes: Vec<[u8; 32]> = self.receipts.iter().map(|r| *blake3::hash(&cbor(r)).as_bytes()).collect();
        merkle_root(self.receipts.iter().map(|r| &r.tx_hash[..])) == self.header.tx_root
            && merkle_root(hashes.iter().map(|h| &h[..])) == self.header.receipts_root
    }
}

fn merkle_root<'a>(items: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    let leaves: Vec<_> = items.map(merkle::leaf_hash).collect();
    merkle::root(&leaves)
}

/// Chain parameters every validator shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    pub chain_id: u64,
    /// Receives every block's fees, credited after the block's transactions.
    pub fee_collector: Address,
}

/// How this node executes blocks; does not affect results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecConfig {
    /// Block-STM worker threads.
    pub threads: usize,
    /// Blocks with fewer transactions run sequentially (no speculation overhead).
    pub parallel_min_txs: usize,
}

/// Below this many distinct senders per thread a block runs sequentially (see
/// [`ExecConfig::use_parallel`]).
pub const MIN_SENDERS_PER_THREAD: usize = 8;

impl ExecConfig {
    /// Whether to run `txs` with Block-STM. Every transaction writes its sender's account
    /// (nonce and fee), so transactions of one sender form a dependency chain: with few
    /// distinct senders per thread, speculation mostly aborts and re-executes (measured in
    /// BENCHMARKS.md), and the sequential executor is faster. The result is the same either
    /// way; only the time differs.
    pub fn use_parallel(&self, txs: &[VerifiedTx]) -> bool {
        if self.threads < 2 || txs.len() < self.parallel_min_txs {
            return false;
        }
        let senders: std::collections::HashSet<&Address> = txs.iter().map(|t| &t.tx().sender).collect();
        senders.len() >= self.threads * MIN_SENDERS_PER_THREAD
    }
}

impl Default for ExecConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ExecConfig { threads, parallel_min_txs: 16 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt chain data: {0}")]
    Corrupt(String),
    #[error("the chain has no genesis block yet")]
    NoGenesis,
    #[error("the chain already has a genesis block")]
    HasGenesis,
    /// This machine could not execute the block (a device, the instance pool): nothing about
    /// the block is decided; the caller retries or abstains.
    #[error("this node could not execute the block: {0}")]
    MachineFault(String),
    #[error("block {height} does not extend the committed head: {why}")]
    NotOnHead { height: u64, why: String },
}

/// A block executed but not yet committed: propose or verify it, then [`Chain::commit`].
pub struct ExecutedBlock {
    pub record: BlockRecord,
    pub stats: ExecStats,
    prepared: Prepared,
}

/// The state a block executes on: the committed head plus the writes of the uncommitted
/// ancestors between it and the parent (a consensus engine votes on blocks before their
/// parents are final).
#[derive(Clone, Debug)]
pub struct Parent {
    /// The parent's height and runtime header hash.
    pub height: u64,
    pub hash: [u8; 32],
    /// Writes of the uncommitted ancestors, oldest first, ending with the parent's; empty
    /// when the parent is the committed head.
    pub layers: Vec<Arc<Writes>>,
    /// Their tree updates, one per layer.
    pub trees: Vec<Arc<TreeDelta>>,
}

impl Parent {
    /// The state after `b`, executed on this one: `b` is the next child's parent.
    pub fn then(&self, b: &SpeculativeBlock) -> Parent {
        let mut layers = self.layers.clone();
        layers.push(Arc::clone(&b.writes));
        let mut trees = self.trees.clone();
        trees.push(Arc::clone(&b.tree));
        Parent { height: b.record.header.height, hash: b.record.header.hash(), layers, trees }
    }
}

/// A block executed on a [`Parent`], not yet committed; [`Chain::commit_speculative`]
/// writes it once its parent is the committed head.
#[derive(Clone, Debug)]
pub struct SpeculativeBlock {
    pub record: BlockRecord,
    pub writes: Arc<Writes>,
    /// Its state-tree update, written as it is at commit.
    pub tree: Arc<TreeDelta>,
    pub stats: ExecStats,
}

/// The state machine a node runs: the store, the VM, and the rules that connect them.
pub struct Chain {
    store: Store,
    vm: ChainVm,
    config: ChainConfig,
    pub exec: ExecConfig,
    /// Paying the market treasury's validator pot at epoch ends (the node sets it from its
    /// genesis; `None` never pays).
    pub rewards: Option<crate::market::treasury::EpochRewards>,
    /// Hash of the head block's header (the next block's parent).
    head_hash: parking_lot::RwLock<[u8; 32]>,
}

/// The initial state.
#[derive(Clone, Debug, Default)]
pub struct Genesis {
    pub accounts: Vec<(Address, u128)>,
    pub time_ms: u64,
    /// Other initial entries (a node's validator stakes, pre-deployed contracts).
    pub entries: Vec<(StateKey, StateValue)>,
}

impl Chain {
    /// Open the chain's database in `dir`.
    pub fn open(dir: impl AsRef<Path>, vm: ChainVm, config: ChainConfig) -> Result<Self, ChainError> {
        let store = Store::open(dir)?;
        let head_hash = match store.head() {
            None => [0; 32],
            Some(h) => {
                let rec = store.block(h.height)?.ok_or_else(|| ChainError::Corrupt(format!("head block {} missing", h.height)))?;
                BlockRecord::decode(&rec)?.header.hash()
            }
        };
        Ok(Chain { store, vm, config, exec: ExecConfig::default(), rewards: None, head_hash: parking_lot::RwLock::new(head_hash) })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn vm(&self) -> &ChainVm {
        &self.vm
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    pub fn head(&self) -> Option<Head> {
        self.store.head()
    }

    /// Commit the genesis block (height 0).
    pub fn init_genesis(&self, g: &Genesis) -> Result<Head, ChainError> {
        if self.head().is_some() {
            return Err(ChainError::HasGenesis);
        }
        let mut writes: Vec<(StateKey, StateValue)> =
            g.accounts.iter().map(|(a, b)| (StateKey::Account(*a), StateValue::Account(Account { balance: *b, ..Account::default() }))).collect();
        writes.extend(g.entries.iter().cloned());
        writes.push((StateKey::System(SystemKey::Height), StateValue::Bytes(0u64.to_le_bytes().into())));
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        writes.dedup_by(|a, b| a.0 == b.0);
        self.commit_without_txs(0, writes, g.time_ms)
    }

    /// Execute `txs` as the next block. Transactions with a bad signature or chain id get a
    /// `Rejected` receipt and are not run.
    pub fn execute(&self, txs: Vec<SignedTransaction>, time_ms: u64) -> Result<ExecutedBlock, ChainError> {
        let parent = self.committed_parent()?;
        let b = self.execute_on(&parent, txs, time_ms)?;
        let prepared = self.store.prepare_delta(&b.tree)?;
        Ok(ExecutedBlock { record: b.record, stats: b.stats, prepared })
    }

    /// The committed head as a [`Parent`].
    pub fn committed_parent(&self) -> Result<Parent, ChainError> {
        let head = self.head().ok_or(ChainError::NoGenesis)?;
        Ok(Parent { height: head.height, hash: *self.head_hash.read(), layers: Vec::new(), trees: Vec::new() })
    }

    /// Execute `txs` as the child of `parent`, whose uncommitted ancestors' writes must all
    /// be in `parent.layers` (the committed head is `parent.height - layers.len()`).
    pub fn execute_on(&self, parent: &Parent, txs: Vec<SignedTransaction>, time_ms: u64) -> Result<SpeculativeBlock, ChainError> {
        self.execute_with(parent, txs, time_ms, Vec::new())
    }

    /// The value of `key` in the state `parent` describes.
    pub fn read_at(&self, parent: &Parent, key: &StateKey) -> Result<Option<StateValue>, ChainError> {
        let reader = StoreReader::layered(&self.store, &parent.layers);
        let v = Storage::get(&reader, key);
        match reader.into_error() {
            Some(e) => Err(e.into()),
            None => Ok(v),
        }
    }

    /// [`Chain::execute_on`], then `system` writes (the node's own rules, such as slashing)
    /// applied after the transactions and fees, before the state root.
    pub fn execute_with(&self, parent: &Parent, txs: Vec<SignedTransaction>, time_ms: u64, system: Writes) -> Result<SpeculativeBlock, ChainError> {
        let height = self.check_parent(parent)?;
        let checked = verify_batch(txs.clone(), self.config.chain_id);
        let mut receipts: Vec<Option<Receipt>> = Vec::with_capacity(txs.len());
        let mut valid: Vec<VerifiedTx> = Vec::with_capacity(txs.len());
        for (r, tx) in checked.into_iter().zip(&txs) {
            match r {
                Ok(v) => {
                    receipts.push(None);
                    valid.push(v);
                }
                Err(e) => receipts.push(Some(Receipt::rejected(tx.hash(), e.to_string()))),
            }
        }
        self.execute_checked(parent, height, txs.into_iter().map(Arc::new).collect(), receipts, valid, time_ms, system, None)
    }

    /// [`Chain::execute_with`] for transactions whose signatures and chain id the caller has
    /// already checked (a validator checks a proposal's before executing any of it).
    /// `entropy` is the block's unbiasable randomness (the consensus threshold signature the
    /// node checked); the block's beacon derives from it (`spec/market.md` §6). Without it the
    /// beacon derives from the parent header hash, which the proposer can grind.
    pub fn execute_verified(
        &self,
        parent: &Parent,
        txs: Vec<VerifiedTx>,
        time_ms: u64,
        system: Writes,
        entropy: Option<&[u8]>,
    ) -> Result<SpeculativeBlock, ChainError> {
        let height = self.check_parent(parent)?;
        let signed = txs.iter().map(|v| v.signed.clone()).collect();
        let receipts = vec![None; txs.len()];
        self.execute_checked(parent, height, signed, receipts, txs, time_ms, system, entropy)
    }

    /// The height of `parent`'s child, if `parent` sits on the committed head.
    fn check_parent(&self, parent: &Parent) -> Result<u64, ChainError> {
        let head = self.head().ok_or(ChainError::NoGenesis)?;
        let height = parent.height.checked_add(1).ok_or_else(|| ChainError::Corrupt("height overflow".into()))?;
        if head.height.checked_add(parent.layers.len() as u64) != Some(parent.height) || parent.trees.len() != parent.layers.len() {
            return Err(ChainError::NotOnHead {
                height,
                why: format!("head is {}, parent {} with {} pending layers", head.height, parent.height, parent.layers.len()),
            });
        }
        Ok(height)
    }

    /// Run `valid` (the transactions of `txs` without a receipt yet in `receipts`, in order).
    #[allow(clippy::too_many_arguments)]
    fn execute_checked(
        &self,
        parent: &Parent,
        height: u64,
        txs: Vec<Arc<SignedTransaction>>,
        receipts: Vec<Option<Receipt>>,
        valid: Vec<VerifiedTx>,
        time_ms: u64,
        system: Writes,
        entropy: Option<&[u8]>,
    ) -> Result<SpeculativeBlock, ChainError> {
        let vm = self.vm.for_block(BlockEnv { height, time_ms });
        // The block's beacon, under its transactions: it is fixed before they run (see
        // `beacon_record`); written with the system writes below.
        let beacon = crate::market::jobs::beacon_record(height, &parent.hash, entropy);
        let mut layers = parent.layers.clone();
        layers.push(Arc::new(vec![beacon.clone()]));
        let reader = StoreReader::layered(&self.store, &layers);
        let (out, stats) = if self.exec.use_parallel(&valid) {
            execute_parallel(&vm, &valid, &reader, self.exec.threads)
        } else {
            let out = crate::cpu::measure(crate::cpu::Part::Execution, || execute_sequential(&vm, &valid, &reader));
            (out, ExecStats { executions: valid.len(), ..ExecStats::default() })
        };
        if let Some(fault) = vm.fault() {
            return Err(ChainError::MachineFault(fault.to_string()));
        }
        let mut writes = out.writes;

        // Settle fees: one commutative credit after every transaction (see chain_vm.rs).
        let fees: u128 = out.outputs.iter().fold(0u128, |s, r| s.saturating_add(r.fee));
        if fees > 0 {
            let key = StateKey::Account(self.config.fee_collector);
            let mut acc = match read_through(&writes, &reader, &key) {
                Some(StateValue::Account(a)) => a,
                _ => Account::default(),
            };
            acc.balance = acc.balance.saturating_add(fees);
            upsert(&mut writes, key, StateValue::Account(acc));
        }
        for (k, v) in system {
            upsert(&mut writes, k, v);
        }
        // The validators' pot, on the state the transactions and the system writes left.
        // Paid to the ending epoch's set as the state records it (staking), else to the set
        // the node configured from genesis.
        if let Some(r) = &self.rewards {
            let recorded = height
                .checked_div(r.epoch_length)
                .and_then(|e| e.checked_sub(1))
                .and_then(|e| crate::staking::epoch::epoch_set(e, |k| read_through(&writes, &reader, k)));
            let r = match recorded {
                Some(set) => crate::market::treasury::EpochRewards {
                    epoch_length: r.epoch_length,
                    validators: set.validators.iter().map(|id| (**id, crate::staking::stake_key(id))).collect(),
                },
                None => r.clone(),
            };
            let paid = crate::market::treasury::payout(&r, height, |k| read_through(&writes, &reader, k));
            for (k, v) in paid {
                upsert(&mut writes, k, v);
            }
            // The epoch's work rewards: inflation to the workers by verified tokens.
            let minted = crate::market::treasury::work_payout(r.epoch_length, height, |k| read_through(&writes, &reader, k));
            for (k, v) in minted {
                upsert(&mut writes, k, v);
            }
        }
        // The next epoch's active set, on the stake the block left.
        for (k, v) in crate::staking::epoch_writes(height, |k| read_through(&writes, &reader, k)) {
            upsert(&mut writes, k, v);
        }
        for (k, v) in crate::market::jobs::beacon_writes(height, beacon) {
            upsert(&mut writes, k, v);
        }
        upsert(&mut writes, StateKey::System(SystemKey::Height), StateValue::Bytes(height.to_le_bytes().into()));
        if let Some(e) = reader.into_error() {
            return Err(e.into());
        }

        let mut executed = out.outputs.into_iter();
        let receipts: Vec<Receipt> =
            receipts.into_iter().map(|r| r.or_else(|| executed.next()).unwrap_or_else(|| unreachable!("one receipt per valid tx"))).collect();
        let receipt_hashes: Vec<[u8; 32]> = receipts.iter().map(|r| *blake3::hash(&cbor(r)).as_bytes()).collect();
        let tree = crate::cpu::measure(crate::cpu::Part::StateTree, || self.store.tree_update(height, &parent.trees, &writes))?;
        let state_root = tree.root;
        let header = BlockHeader {
            height,
            parent_hash: parent.hash,
            time_ms,
            tx_root: merkle_root(receipts.iter().map(|r| &r.tx_hash[..])),
            receipts_root: merkle_root(receipt_hashes.iter().map(|h| &h[..])),
            state_root,
            gas_used: receipts.iter().fold(0u64, |s, r| s.saturating_add(r.gas_used)),
        };
        Ok(SpeculativeBlock { record: BlockRecord { header, txs, receipts }, writes: Arc::new(writes), tree: Arc::new(tree), stats })
    }

    /// Commit a block executed with [`Chain::execute_on`] once its parent is the committed
    /// head. Fails without writing if it does not extend the head or if its writes do not
    /// give the state root it was executed with.
    /// `label` is stored with the head (see [`Store::commit_labelled`]).
    pub fn commit_speculative(&self, b: &SpeculativeBlock, label: Option<&[u8]>) -> Result<Head, ChainError> {
        let header = &b.record.header;
        let head_hash = *self.head_hash.read();
        if header.parent_hash != head_hash {
            return Err(ChainError::NotOnHead { height: header.height, why: "its parent is not the committed head".into() });
        }
        let prepared = crate::cpu::measure(crate::cpu::Part::Storage, || self.store.prepare_delta(&b.tree))?;
        if prepared.head.state_root != header.state_root || b.tree.height != header.height {
            return Err(ChainError::Corrupt(format!("block {}: state root differs on commit", header.height)));
        }
        self.write(prepared, &b.record, label)
    }

    /// Write an executed block. Fails without writing if another block was committed since.
    pub fn commit(&self, b: ExecutedBlock) -> Result<Head, ChainError> {
        self.write(b.prepared, &b.record, None)
    }

    fn write(&self, prepared: Prepared, record: &BlockRecord, label: Option<&[u8]>) -> Result<Head, ChainError> {
        // The index points at the receipt that executed a transaction. A `Rejected` receipt
        // (a replay, a duplicate) never replaces one; it is indexed only when the hash is new.
        let mut seen = std::collections::HashSet::new();
        let mut hashes: Vec<Option<[u8; 32]>> = Vec::with_capacity(record.receipts.len());
        for r in &record.receipts {
            let rejected = matches!(r.status, crate::receipt::TxStatus::Rejected { .. });
            let keep = if rejected { !seen.contains(&r.tx_hash) && self.store.tx_location(&r.tx_hash)?.is_none() } else { true };
            seen.insert(r.tx_hash);
            hashes.push(keep.then_some(r.tx_hash));
        }
        let head = crate::cpu::measure(crate::cpu::Part::Storage, || self.store.commit_labelled(prepared, &record.encode(), &hashes, label))?;
        *self.head_hash.write() = record.header.hash();
        Ok(head)
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<BlockRecord>, ChainError> {
        self.store.block(height)?.map(|b| BlockRecord::decode(&b)).transpose()
    }

    /// Commit `writes` as the next block, with no transactions. For development tools only
    /// (`aivm call --state`), which run contracts without signed transactions.
    pub fn commit_direct(&self, writes: impl IntoIterator<Item = (StateKey, StateValue)>, time_ms: u64) -> Result<Head, ChainError> {
        let head = self.head().ok_or(ChainError::NoGenesis)?;
        let height = head.height + 1;
        let mut writes: Vec<_> = writes.into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().collect();
        upsert(&mut writes, StateKey::System(SystemKey::Height), StateValue::Bytes(height.to_le_bytes().into()));
        self.commit_without_txs(height, writes, time_ms)
    }

    /// Commit a block with no transactions that makes `writes` (sorted by key).
    fn commit_without_txs(&self, height: u64, writes: Vec<(StateKey, StateValue)>, time_ms: u64) -> Result<Head, ChainError> {
        let prepared = self.store.prepare(height, &writes)?;
        let header = BlockHeader {
            height,
            parent_hash: *self.head_hash.read(),
            time_ms,
            tx_root: merkle_root(std::iter::empty()),
            receipts_root: merkle_root(std::iter::empty()),
            state_root: prepared.head.state_root,
            gas_used: 0,
        };
        self.write(prepared, &BlockRecord { header, txs: Vec::new(), receipts: Vec::new() }, None)
    }

    /// Committed account state.
    pub fn account(&self, a: &Address) -> Result<Option<Account>, ChainError> {
        Ok(match self.store.get(&StateKey::Account(*a))? {
            Some(StateValue::Account(acc)) => Some(acc),
            _ => None,
        })
    }
}

/// Insert or replace in a key-sorted write list.
/// `key` as the block's writes so far (sorted) leave it over `reader`; a deleted key is absent.
fn read_through(writes: &[(StateKey, StateValue)], reader: &impl Storage<StateKey, StateValue>, key: &StateKey) -> Option<StateValue> {
    match writes.binary_search_by(|(k, _)| k.cmp(key)) {
        Ok(i) => Some(writes[i].1.clone()).filter(|v| *v != StateValue::Deleted),
        Err(_) => Storage::get(reader, key),
    }
}

fn upsert(writes: &mut Vec<(StateKey, StateValue)>, key: StateKey, value: StateValue) {
    match writes.binary_search_by(|(k, _)| k.cmp(&key)) {
        Ok(i) => writes[i].1 = value,
        Err(i) => writes.insert(i, (key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Asset, P2p};

    fn verified(accounts: u64, n: usize) -> Vec<VerifiedTx> {
        let txs = P2p::new(1, accounts, 0).block(n, Asset::Native);
        verify_batch(txs, 1).into_iter().map(|r| r.expect("valid")).collect()
    }

    #[test]
    fn few_senders_run_sequentially() {
        let cfg = ExecConfig { threads: 2, parallel_min_txs: 16 };
        assert!(!cfg.use_parallel(&verified(2, 200)), "2 senders: a dependency chain");
        assert!(cfg.use_parallel(&verified(100, 200)));
        assert!(!cfg.use_parallel(&verified(100, 10)), "small block");
        assert!(!ExecConfig { threads: 1, parallel_min_txs: 16 }.use_parallel(&verified(100, 200)));
    }
}
