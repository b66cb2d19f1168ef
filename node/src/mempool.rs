//! The mempool: signed transactions waiting for a block, admitted with the executor's own rules
//! and proposed by fee.
//!
//! Admission (`insert`) refuses, before anything is kept: oversized, malformed or non-canonical
//! bytes; a bad signature or another chain's transaction; a duplicate; an unknown sender; a nonce
//! below the account's or more than `max_nonce_gap` above it; a gas limit below the intrinsic gas
//! ([`Admission`], shared with `chain_vm`); and a sender whose balance cannot cover the most all of
//! its pending transactions could cost. Equal `(sender, nonce)` replaces only with a
//! `replace_bump_pct` higher gas price.
//!
//! Capacity: at most `max_txs` transactions and `max_bytes` encoded bytes, `max_per_sender` per
//! sender. When full, a transaction paying more than the cheapest evictable one (the last nonce of
//! some sender, so no sender is left with a gap) takes its place; otherwise [`MempoolError::Full`]
//! is the backpressure signal RPC clients see.
//!
//! Proposal (`select`) takes ready transactions (contiguous nonces from the account's) by gas
//! price, highest first, keeping each sender's nonce order; ties go to the earlier arrival.

use aivm::GasSchedule;
use aivm_runtime::{Account, Address, Admission, BlockLimits, LimitError, SignedTransaction, TxError, VerifiedTx};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// Limits and policy.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    pub chain_id: u64,
    /// The chain's block limits: a transaction that breaks them could never be included.
    pub limits: BlockLimits,
    pub max_txs: usize,
    pub max_bytes: usize,
    pub max_per_sender: usize,
    /// Highest accepted nonce is the account's nonce plus this.
    pub max_nonce_gap: u64,
    /// A replacement must raise the gas price by at least this percentage.
    pub replace_bump_pct: u64,
}

impl MempoolConfig {
    pub fn new(chain_id: u64, limits: BlockLimits) -> Self {
        Self { chain_id, limits, max_txs: 100_000, max_bytes: 256 << 20, max_per_sender: 1024, max_nonce_gap: 1024, replace_bump_pct: 10 }
    }
}

/// Why a transaction was not admitted. Each is an answer to the submitter, never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("transaction already in the mempool")]
    Duplicate,
    #[error("sender account does not exist")]
    UnknownSender,
    #[error("nonce {got} is below the account nonce {expected}")]
    NonceTooLow { got: u64, expected: u64 },
    #[error("nonce {got} is too far ahead (highest accepted {max})")]
    NonceTooHigh { got: u64, max: u64 },
    #[error(transparent)]
    Admission(#[from] aivm_runtime::admission::AdmissionError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("balance {have} cannot cover {need}, the most this and the sender's pending transactions can cost")]
    Insufficient { need: u128, have: u128 },
    #[error("sender has {0} pending transactions, the limit")]
    SenderFull(usize),
    #[error("replacement must pay a gas price of at least {need}")]
    ReplacementUnderpriced { need: u64 },
    #[error("mempool is full; a gas price above {min} may displace a pending transaction")]
    Full { min: u64 },
}

/// Committed accounts, as the pool checks nonces and balances against them.
pub trait Accounts {
    fn account(&self, address: &Address) -> Option<Account>;
}

impl<F: Fn(&Address) -> Option<Account>> Accounts for F {
    fn account(&self, address: &Address) -> Option<Account> {
        self(address)
    }
}

struct Entry {
    vtx: Arc<VerifiedTx>,
    /// `max_fee + value`.
    cost: u128,
    /// Arrival order (ties in `select`).
    seq: u64,
}

impl Entry {
    fn price(&self) -> u64 {
        self.vtx.tx().gas_price
    }
}

/// One sender's pending transactions by nonce, with the account as last seen.
struct Queue {
    account: Account,
    txs: BTreeMap<u64, Entry>,
    /// Σ cost of `txs`, kept as they come and go (admission checks it on every insert).
    cost: u128,
}

impl Queue {
    fn pending_cost(&self) -> u128 {
        self.cost
    }
}

/// The two cheapest sender tails of a full pool (price, sender), for [`Mempool::precheck_sized`].
pub struct CheapestTails(Vec<(u64, Address)>);

/// Pending transactions.
pub struct Mempool {
    cfg: MempoolConfig,
    schedule: GasSchedule,
    queues: HashMap<Address, Queue>,
    by_hash: HashMap<[u8; 32], (Address, u64)>,
    bytes: usize,
    seq: u64,
}

impl Mempool {
    pub fn new(cfg: MempoolConfig, schedule: GasSchedule) -> Self {
        Self { cfg, schedule, queues: HashMap::new(), by_hash: HashMap::new(), bytes: 0, seq: 0 }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Admit submitted bytes; returns the transaction hash.
    pub fn insert(&mut self, bytes: &[u8], accounts: &dyn Accounts) -> Result<[u8; 32], MempoolError> {
        let vtx = Self::decode(bytes, self.cfg.chain_id)?;
        self.insert_verified(vtx, accounts)
    }

    /// The stateless, costly part of admission (CBOR decode, canonical check, ed25519): callers
    /// run it before taking the pool's lock, so a flood of submissions does not hold the pool.
    pub fn decode(bytes: &[u8], chain_id: u64) -> Result<VerifiedTx, MempoolError> {
        Ok(SignedTransaction::decode(bytes)?.verify(chain_id)?)
    }

    /// What admission would refuse `tx` for without its signature being checked: a duplicate,
    /// another chain, the block limits, and for a sender with pending transactions (whose
    /// committed account the pool holds) a nonce out of range or a full queue. Callers ask
    /// before the signature check, so a flood of transactions the pool cannot take costs no
    /// ed25519 work. `Ok` promises nothing: [`Mempool::insert_verified`] decides.
    pub fn precheck(&self, tx: &aivm_runtime::Transaction, hash: &[u8; 32]) -> Result<(), MempoolError> {
        if self.by_hash.contains_key(hash) {
            return Err(MempoolError::Duplicate);
        }
        if tx.chain_id != self.cfg.chain_id {
            return Err(TxError::WrongChain { expected: self.cfg.chain_id, got: tx.chain_id }.into());
        }
        self.cfg.limits.check_tx(tx)?;
        let Some(q) = self.queues.get(&tx.sender) else { return Ok(()) };
        self.check_nonce(tx.nonce, &q.account)?;
        if !q.txs.contains_key(&tx.nonce) && q.txs.len() >= self.cfg.max_per_sender {
            return Err(MempoolError::SenderFull(self.cfg.max_per_sender));
        }
        Ok(())
    }

    /// `nonce` is at or above the account's and at most `max_nonce_gap` ahead of it.
    fn check_nonce(&self, nonce: u64, account: &Account) -> Result<(), MempoolError> {
        if nonce < account.nonce {
            return Err(MempoolError::NonceTooLow { got: nonce, expected: account.nonce });
        }
        let max = account.nonce.saturating_add(self.cfg.max_nonce_gap);
        if nonce > max {
            return Err(MempoolError::NonceTooHigh { got: nonce, max });
        }
        Ok(())
    }

    /// Whether one more transaction of `size` bytes fits without evicting any.
    fn has_room(&self, size: usize) -> bool {
        self.by_hash.len() < self.cfg.max_txs && self.bytes + size <= self.cfg.max_bytes
    }

    /// Each sender's last (evictable) transaction: price, arrival order, sender, nonce.
    fn tails(&self) -> impl Iterator<Item = (u64, Reverse<u64>, Address, u64)> + '_ {
        self.queues.iter().filter_map(|(a, q)| q.txs.iter().next_back().map(|(n, e)| (e.price(), Reverse(e.seq), *a, *n)))
    }

    /// [`Mempool::precheck`] also for a full pool: a new transaction that could not displace
    /// the cheapest evictable one (as [`Mempool::make_room`] would find it) is `Full`. The
    /// cheapest tails are found once per `cheapest` (scanning the senders only when the pool is
    /// full), so a batch of prechecks under one lock scans at most once.
    pub fn precheck_sized(
        &self,
        tx: &aivm_runtime::Transaction,
        hash: &[u8; 32],
        size: usize,
        cheapest: &mut Option<CheapestTails>,
    ) -> Result<(), MempoolError> {
        self.precheck(tx, hash)?;
        let replaces = self.queues.get(&tx.sender).is_some_and(|q| q.txs.contains_key(&tx.nonce));
        if replaces || self.has_room(size) {
            return Ok(());
        }
        let tails = cheapest.get_or_insert_with(|| {
            let mut t: Vec<(u64, Address)> = self.tails().map(|(p, _, a, _)| (p, a)).collect();
            t.sort_unstable();
            t.truncate(2);
            CheapestTails(t)
        });
        // The cheapest tail of another sender (make_room never evicts the sender's own).
        match tails.0.iter().find(|(_, a)| *a != tx.sender).map(|(p, _)| *p) {
            Some(p) if p < tx.gas_price => Ok(()),
            Some(p) => Err(MempoolError::Full { min: p }),
            None => Err(MempoolError::Full { min: 0 }),
        }
    }

    /// Admit a transaction [`Mempool::decode`] checked (for this pool's chain id).
    pub fn insert_verified(&mut self, vtx: VerifiedTx, accounts: &dyn Accounts) -> Result<[u8; 32], MempoolError> {
        // Duplicate, chain, limits, and for a pending sender its nonce range and queue size.
        self.precheck(vtx.tx(), &vtx.hash)?;
        let adm = Admission::of(&vtx, &self.schedule)?;
        let tx = vtx.tx();
        let (sender, nonce, price) = (tx.sender, tx.nonce, tx.gas_price);
        // A sender with pending transactions has its committed account in its queue (refreshed
        // from every committed block's writes); only a new sender costs a store read.
        let account = match self.queues.get(&sender) {
            Some(q) => q.account,
            None => accounts.account(&sender).ok_or(MempoolError::UnknownSender)?,
        };
        self.check_nonce(nonce, &account)?;
        let cost = adm.max_cost().ok_or(MempoolError::Insufficient { need: u128::MAX, have: account.balance })?;
        let queue = self.queues.get(&sender);
        let replaced = queue.and_then(|q| q.txs.get(&nonce));
        if let Some(old) = replaced {
            let need = old.price().saturating_mul(100 + self.cfg.replace_bump_pct).div_ceil(100).max(old.price().saturating_add(1));
            if price < need {
                return Err(MempoolError::ReplacementUnderpriced { need });
            }
        }
        let pending = queue.map_or(0, |q| q.pending_cost()).saturating_sub(replaced.map_or(0, |e| e.cost));
        let need = pending.saturating_add(cost);
        if need > account.balance {
            return Err(MempoolError::Insufficient { need, have: account.balance });
        }
        let (freed, is_replacement) = (replaced.map_or(0, |e| e.vtx.size), replaced.is_some());
        if !is_replacement {
            self.make_room(vtx.size, price, &sender)?;
        }
        if let Some(q) = self.queues.get_mut(&sender) {
            if let Some(old) = q.txs.remove(&nonce) {
                q.cost = q.cost.saturating_sub(old.cost);
                self.by_hash.remove(&old.vtx.hash);
            }
        }
        self.bytes = self.bytes - freed + vtx.size;
        self.seq += 1;
        let hash = vtx.hash;
        self.by_hash.insert(hash, (sender, nonce));
        let q = self.queues.entry(sender).or_insert_with(|| Queue { account, txs: BTreeMap::new(), cost: 0 });
        q.cost = q.cost.saturating_add(cost);
        q.txs.insert(nonce, Entry { vtx: Arc::new(vtx), cost, seq: self.seq });
        Ok(hash)
    }

    /// Evict the cheapest sender tails until `size` more bytes and one more transaction fit,
    /// if each is cheaper than `price`; else `Full`.
    fn make_room(&mut self, size: usize, price: u64, sender: &Address) -> Result<(), MempoolError> {
        while !self.has_room(size) {
            let victim = self.tails().filter(|t| t.2 != *sender).min();
            match victim {
                Some((p, _, a, n)) if p < price => self.remove_at(&a, n),
                Some((p, ..)) => return Err(MempoolError::Full { min: p }),
                None => return Err(MempoolError::Full { min: 0 }),
            }
        }
        Ok(())
    }

    fn remove_at(&mut self, sender: &Address, nonce: u64) {
        if let Some(q) = self.queues.get_mut(sender) {
            if let Some(e) = q.txs.remove(&nonce) {
                q.cost = q.cost.saturating_sub(e.cost);
                self.by_hash.remove(&e.vtx.hash);
                self.bytes -= e.vtx.size;
            }
            if q.txs.is_empty() {
                self.queues.remove(sender);
            }
        }
    }

    /// Bring one sender up to its committed account: drop what was included (nonce below the
    /// account's) and, in nonce order, whatever the balance no longer covers.
    /// Nothing to do when the account is as last seen: every pending transaction was admitted
    /// against it with the balance covering all of them.
    fn refresh(&mut self, sender: &Address, account: Account) {
        let Some(q) = self.queues.get_mut(sender) else { return };
        if q.account == account {
            return;
        }
        q.account = account;
        let mut spend = 0u128;
        let drop: Vec<u64> = q
            .txs
            .iter()
            .filter(|(&n, e)| {
                if n < account.nonce {
                    return true;
                }
                spend = spend.saturating_add(e.cost);
                spend > account.balance
            })
            .map(|(&n, _)| n)
            .collect();
        for n in drop {
            self.remove_at(sender, n);
        }
    }

    /// After a block commits: re-check the senders whose accounts it `changed` (the block's
    /// account writes). A queue depends on nothing but its sender's account, and accounts are
    /// never removed, so the others stay as they are and nothing is read from the store.
    pub fn on_committed(&mut self, changed: impl IntoIterator<Item = (Address, Account)>) {
        for (address, account) in changed {
            self.refresh(&address, account);
        }
    }

    /// The admitted (so verified) transaction with this hash, if it is pooled.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<VerifiedTx>> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.queues.get(sender)?.txs.get(nonce).map(|e| Arc::clone(&e.vtx))
    }

    /// Up to `max_txs` ready transactions within `max_bytes` and `max_gas` (sum of gas limits),
    /// highest gas price first, each sender's in nonce order. Nothing is removed.
    pub fn select(&self, max_txs: usize, max_bytes: usize, max_gas: u64) -> Vec<Arc<VerifiedTx>> {
        // Heap of each sender's next ready transaction.
        let mut heap: BinaryHeap<(u64, Reverse<u64>, Address, u64)> = BinaryHeap::new();
        for (a, q) in &self.queues {
            if let Some(e) = q.txs.get(&q.account.nonce) {
                heap.push((e.price(), Reverse(e.seq), *a, q.account.nonce));
            }
        }
        let (mut out, mut bytes, mut gas) = (Vec::new(), 0usize, 0u64);
        while let Some((_, _, a, n)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let q = &self.queues[&a];
            let e = &q.txs[&n];
            let g = e.vtx.tx().gas_limit;
            if bytes + e.vtx.size > max_bytes || gas.saturating_add(g) > max_gas {
                continue; // this sender's later nonces cannot come before this one
            }
            bytes += e.vtx.size;
            gas += g;
            out.push(e.vtx.clone());
            if let Some(next) = n.checked_add(1).and_then(|m| q.txs.get(&m).map(|e| (e, m))) {
                heap.push((next.0.price(), Reverse(next.0.seq), a, next.1));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aivm_runtime::workload::{account_key, address};
    use aivm_runtime::{Payload, Transaction};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use std::cell::RefCell;

    const CHAIN: u64 = 7;
    const LIMITS: BlockLimits = BlockLimits { max_block_gas: 1 << 40, max_tx_gas: 1 << 40, min_gas_price: 1 };

    /// A transfer from `key` at `nonce` on this pool's chain, unsigned.
    fn transfer(key: &SigningKey, nonce: u64, price: u64, amount: u128) -> Transaction {
        Transaction { chain_id: CHAIN, sender: address(key), nonce, gas_limit: 1_000_000, gas_price: price, payload: Payload::Transfer { to: [9; 32], amount } }
    }

    fn tx(key: &SigningKey, nonce: u64, price: u64, amount: u128) -> Vec<u8> {
        transfer(key, nonce, price, amount).sign(key).encode()
    }

    struct State(RefCell<HashMap<Address, Account>>);
    impl State {
        fn new(keys: &[&SigningKey], balance: u128) -> Self {
            Self(RefCell::new(keys.iter().map(|k| (address(k), Account { balance, nonce: 0, code_hash: None })).collect()))
        }
        fn set_nonce(&self, k: &SigningKey, nonce: u64) {
            self.0.borrow_mut().get_mut(&address(k)).unwrap().nonce = nonce;
        }
    }
    impl Accounts for State {
        fn account(&self, a: &Address) -> Option<Account> {
            self.0.borrow().get(a).copied()
        }
    }

    fn pool(max_txs: usize) -> Mempool {
        Mempool::new(MempoolConfig { max_txs, max_nonce_gap: 8, max_per_sender: 16, ..MempoolConfig::new(CHAIN, LIMITS) }, GasSchedule::default())
    }

    #[test]
    fn admission_checks() {
        let (a, b) = (account_key(1), account_key(2));
        let st = State::new(&[&a], 10_000_000);
        let mut p = pool(100);
        let t = tx(&a, 0, 1, 5);
        p.insert(&t, &st).unwrap();
        assert_eq!(p.insert(&t, &st), Err(MempoolError::Duplicate));
        assert_eq!(p.insert(&tx(&b, 0, 1, 5), &st), Err(MempoolError::UnknownSender));
        assert!(matches!(p.insert(&tx(&a, 9, 1, 5), &st), Err(MempoolError::NonceTooHigh { got: 9, max: 8 })));
        st.set_nonce(&a, 1);
        p.on_committed([(address(&a), st.account(&address(&a)).unwrap())]);
        assert!(matches!(p.insert(&tx(&a, 0, 2, 6), &st), Err(MempoolError::NonceTooLow { .. })));
        // Bad signature, other chain, garbage, oversize, low gas limit: typed errors.
        let mut bad = transfer(&a, 1, 1, 1).sign(&a);
        bad.signature[0] ^= 1;
        assert_eq!(p.insert(&bad.encode(), &st), Err(MempoolError::Tx(TxError::BadSignature)));
        let other = Transaction { chain_id: CHAIN + 1, ..transfer(&a, 1, 1, 1) }.sign(&a);
        assert!(matches!(p.insert(&other.encode(), &st), Err(MempoolError::Tx(TxError::WrongChain { .. }))));
        assert!(matches!(p.insert(b"\xff\x00garbage", &st), Err(MempoolError::Tx(TxError::Malformed(_)))));
        assert!(matches!(p.insert(&vec![0u8; aivm_runtime::tx::MAX_TX_BYTES + 1], &st), Err(MempoolError::Tx(TxError::TooLarge(_)))));
        let low = Transaction { gas_limit: 1, ..transfer(&a, 1, 1, 1) }.sign(&a);
        assert!(matches!(p.insert(&low.encode(), &st), Err(MempoolError::Admission(_))));
    }

    #[test]
    fn balance_covers_all_pending_and_replacement_needs_a_bump() {
        let a = account_key(1);
        let st = State::new(&[&a], 2_500_000); // two transactions of 1_000_000 gas at price 1, plus value
        let mut p = pool(100);
        p.insert(&tx(&a, 0, 1, 10_000), &st).unwrap();
        p.insert(&tx(&a, 1, 1, 10_000), &st).unwrap();
        assert!(matches!(p.insert(&tx(&a, 2, 1, 10_000), &st), Err(MempoolError::Insufficient { .. })));
        assert!(matches!(p.insert(&tx(&a, 1, 1, 9_999), &st), Err(MempoolError::ReplacementUnderpriced { need: 2 })));
        // Price 2 costs 2_000_000 + value: with the first pending it no longer fits.
        assert!(matches!(p.insert(&tx(&a, 1, 2, 9_999), &st), Err(MempoolError::Insufficient { .. })));
        let st2 = State::new(&[&a], 10_000_000);
        p.on_committed([(address(&a), st2.account(&address(&a)).unwrap())]);
        let h = p.insert(&tx(&a, 1, 2, 9_999), &st2).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.contains(&h));
    }

    #[test]
    fn zero_price_and_oversized_gas_are_refused_at_admission() {
        let a = account_key(1);
        let st = State::new(&[&a], u128::MAX / 2);
        let mut p = Mempool::new(
            MempoolConfig { max_nonce_gap: 8, ..MempoolConfig::new(CHAIN, BlockLimits { max_block_gas: 5_000_000, max_tx_gas: 5_000_000, min_gas_price: 2 }) },
            GasSchedule::default(),
        );
        assert_eq!(p.insert(&tx(&a, 0, 1, 1), &st), Err(MempoolError::Limit(LimitError::PriceTooLow { price: 1, min: 2 })));
        assert_eq!(p.insert(&tx(&a, 0, 0, 1), &st), Err(MempoolError::Limit(LimitError::PriceTooLow { price: 0, min: 2 })));
        let huge = Transaction {
            chain_id: CHAIN,
            sender: address(&a),
            nonce: 0,
            gas_limit: 5_000_001,
            gas_price: 2,
            payload: Payload::Transfer { to: [9; 32], amount: 1 },
        }
        .sign(&a)
        .encode();
        assert_eq!(p.insert(&huge, &st), Err(MempoolError::Limit(LimitError::TxGasTooHigh { limit: 5_000_001, max: 5_000_000 })));
        p.insert(&tx(&a, 0, 2, 1), &st).unwrap();
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn select_orders_by_fee_within_nonce_order() {
        let (a, b, c) = (account_key(1), account_key(2), account_key(3));
        let st = State::new(&[&a, &b, &c], 1_000_000_000);
        let mut p = pool(100);
        p.insert(&tx(&a, 0, 1, 1), &st).unwrap();
        p.insert(&tx(&a, 1, 50, 1), &st).unwrap(); // rich, but behind a cheap nonce
        p.insert(&tx(&b, 0, 10, 1), &st).unwrap();
        p.insert(&tx(&c, 1, 99, 1), &st).unwrap(); // gap: not ready
        let order: Vec<(Address, u64)> = p.select(10, usize::MAX, u64::MAX).iter().map(|v| (v.tx().sender, v.tx().nonce)).collect();
        assert_eq!(order, vec![(address(&b), 0), (address(&a), 0), (address(&a), 1)]);
        assert_eq!(p.select(1, usize::MAX, u64::MAX).len(), 1);
        assert_eq!(p.select(10, usize::MAX, 1_500_000).len(), 1, "gas limit bounds the batch");
        // The block includes a's first two; the pool drops them.
        st.set_nonce(&a, 2);
        p.on_committed([(address(&a), st.account(&address(&a)).unwrap())]);
        assert_eq!(p.len(), 2);
        let h = SignedTransaction::decode(&tx(&b, 0, 10, 1)).unwrap().hash();
        assert_eq!(p.get(&h).map(|v| v.hash), Some(h), "pooled transactions are found by hash, verified");
        assert!(p.get(&[0; 32]).is_none());
    }

    /// What the pool would refuse anyway is refused before the signature is looked at: a
    /// transaction with a broken signature from a full sender gets `SenderFull`.
    #[test]
    fn precheck_refuses_before_the_signature_check() {
        let a = account_key(1);
        let st = State::new(&[&a], 1 << 60);
        let mut p =
            Mempool::new(MempoolConfig { max_txs: 100, max_nonce_gap: 64, max_per_sender: 16, ..MempoolConfig::new(CHAIN, LIMITS) }, GasSchedule::default());
        for n in 0..16 {
            p.insert(&tx(&a, n, 1, 1), &st).unwrap();
        }
        let mut forged = transfer(&a, 16, 1, 1).sign(&a);
        forged.signature[0] ^= 1;
        let h = forged.hash();
        assert_eq!(p.precheck(&forged.tx, &h), Err(MempoolError::SenderFull(16)));
        forged.tx.nonce = 99;
        assert!(matches!(p.precheck(&forged.tx, &h), Err(MempoolError::NonceTooHigh { .. })));
        let dup = tx(&a, 3, 1, 1);
        let decoded = SignedTransaction::decode(&dup).unwrap();
        assert_eq!(p.precheck(&decoded.tx, &decoded.hash()), Err(MempoolError::Duplicate));
        let replacement = SignedTransaction::decode(&tx(&a, 3, 5, 1)).unwrap();
        assert_eq!(p.precheck(&replacement.tx, &[1; 32]), Ok(()), "a replacement of a pending nonce may go on to the full check");
        // A full pool: only a price that could displace the cheapest tail gets through.
        let b = account_key(2);
        let st2 = State::new(&[&a, &b], 1 << 60);
        let mut full = Mempool::new(MempoolConfig { max_txs: 2, ..MempoolConfig::new(CHAIN, LIMITS) }, GasSchedule::default());
        full.insert(&tx(&a, 0, 3, 1), &st2).unwrap();
        full.insert(&tx(&a, 1, 3, 1), &st2).unwrap();
        let cheap = SignedTransaction::decode(&tx(&b, 0, 3, 1)).unwrap();
        assert_eq!(full.precheck_sized(&cheap.tx, &[2; 32], 200, &mut None), Err(MempoolError::Full { min: 3 }));
        let dear = SignedTransaction::decode(&tx(&b, 0, 4, 1)).unwrap();
        assert_eq!(full.precheck_sized(&dear.tx, &[3; 32], 200, &mut None), Ok(()));
        let own = SignedTransaction::decode(&tx(&a, 2, 4, 1)).unwrap();
        assert_eq!(full.precheck_sized(&own.tx, &[4; 32], 200, &mut None), Err(MempoolError::Full { min: 0 }), "a sender never displaces its own");
    }

    #[test]
    fn full_pool_is_backpressure_unless_the_fee_is_higher() {
        let keys: Vec<SigningKey> = (1..=4).map(account_key).collect();
        let st = State::new(&keys.iter().collect::<Vec<_>>(), 10_000_000);
        let mut p = pool(3);
        for (i, k) in keys.iter().take(3).enumerate() {
            p.insert(&tx(k, 0, 5 + i as u64, 1), &st).unwrap();
        }
        assert_eq!(p.insert(&tx(&keys[3], 0, 5, 1), &st), Err(MempoolError::Full { min: 5 }));
        p.insert(&tx(&keys[3], 0, 6, 1), &st).unwrap();
        assert_eq!(p.len(), 3);
        let senders: Vec<Address> = p.select(10, usize::MAX, u64::MAX).iter().map(|v| v.tx().sender).collect();
        assert!(!senders.contains(&address(&keys[0])), "the cheapest was evicted");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever arrives, limits hold and every selection is a nonce-contiguous run per sender
        /// starting at the account nonce.
        #[test]
        fn limits_and_nonce_order_hold(ops in prop::collection::vec((0u64..4, 0u64..6, 1u64..20), 1..80), commit_at in 0usize..80) {
            let keys: Vec<SigningKey> = (1..=4).map(account_key).collect();
            let st = State::new(&keys.iter().collect::<Vec<_>>(), 50_000_000);
            let mut p = pool(10);
            for (i, &(s, n, price)) in ops.iter().enumerate() {
                let _ = p.insert(&tx(&keys[s as usize], n, price, 1), &st);
                prop_assert!(p.len() <= 10);
                if i == commit_at {
                    st.set_nonce(&keys[0], 2);
                    p.on_committed([(address(&keys[0]), st.account(&address(&keys[0])).unwrap())]);
                }
            }
            let sel = p.select(usize::MAX, usize::MAX, u64::MAX);
            let mut next: HashMap<Address, u64> = HashMap::new();
            for v in &sel {
                let t = v.tx();
                let want = *next.entry(t.sender).or_insert_with(|| st.account(&t.sender).unwrap().nonce);
                prop_assert_eq!(t.nonce, want);
                next.insert(t.sender, want + 1);
            }
        }
    }
}
