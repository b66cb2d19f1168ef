//! The compute market end to end on a real chain (RocksDB, Block-STM, the VM's model
//! registry) with a tiny model: honest jobs settle with the exact split, every cheat is caught
//! on its first job, bad inputs move nothing, and native is conserved over random sequences
//! of market transactions on 1–4 executor threads alike.

use aivm::model::audit::{respond, respond_step, Challenge};
use aivm::model::commit::{run_committed, tokens_root, InferenceReceipt, Trace};
use aivm::model::sku::testing::tiny;
use aivm::model::sku::Arch;
use aivm::model::{merkle, ArtifactStore, Engine, ModelRegistry, Options};
use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::encoding::cbor;
use aivm_runtime::market::genesis::SeedPool;
use aivm_runtime::market::hmm::{amount_in, Pool, Side};
use aivm_runtime::market::jobs::challenge_seed;
use aivm_runtime::market::split::{FeeSplit, Slash};
use aivm_runtime::market::{Bond, Job, JobStatus, MarketGenesis, MarketKey, MarketParams, MarketTx, ModelEntry, Role, Treasury};
use aivm_runtime::{Chain, ChainConfig, ChainVm, ExecConfig, Genesis, Payload, Receipt, StateValue, Transaction, TxStatus};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

const CHAIN_ID: u64 = 9;
const COLLECTOR: [u8; 32] = [0xfe; 32];
const FUNDS: u128 = 1_000_000_000_000;
const GAS: u64 = 40_000_000;
const POOL: u128 = 10_000_000;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("aivm-market-{name}-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A chain with the tiny model registered and a seeded pool; `keys[0]` is the pool's provider.
struct Net {
    chain: Chain,
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
    engine: Arc<Engine>,
    sku: [u8; 32],
    time: u64,
    /// Blocks Block-STM ran speculatively (validations happened).
    parallel_blocks: usize,
    params: MarketParams,
    /// Contracts deployed by the test (their balances count as native in circulation).
    contracts: Vec<[u8; 32]>,
    _dirs: (TempDir, TempDir),
}

fn addr(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

/// A validator's stake record (16 bytes LE), as the node keeps them under its staking address.
fn stake_key(a: &[u8; 32]) -> aivm_runtime::StateKey {
    aivm_runtime::StateKey::Storage([0x5a; 32], [&b"stake/"[..], a].concat().into())
}

fn params() -> MarketParams {
    // Every GEMM opened: a cheat anywhere is caught on its first job, so the tests are exact.
    MarketParams { challenge_gemms: 0, challenge_rows: 2, answer_window: 3, unbonding_blocks: 5, dispute_window: 0, ..MarketParams::default() }
}

impl Net {
    fn new(name: &str, accounts: usize, threads: usize) -> Self {
        Self::with_params(name, accounts, threads, params())
    }

    fn with_params(name: &str, accounts: usize, threads: usize, params: MarketParams) -> Self {
        let art = TempDir::new(&format!("{name}-art"));
        let store = ArtifactStore::open(&art.0);
        let sku = tiny(Arch::Llama, 21);
        let hash = store.put(&sku).expect("put");
        let size = std::fs::metadata(store.path_of(&hash)).expect("size").len();
        let registry = Arc::new(ModelRegistry::new(ArtifactStore::open(&art.0), Options::default()));
        let engine = registry.engine(&hash).expect("engine");
        let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm").with_models(registry);
        let dir = TempDir::new(name);
        let mut chain = Chain::open(&dir.0, ChainVm::new(vm), ChainConfig { chain_id: CHAIN_ID, fee_collector: COLLECTOR }).expect("chain");
        chain.exec = ExecConfig { threads, parallel_min_txs: 0 };
        let keys: Vec<SigningKey> = (0..accounts).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let market = MarketGenesis {
            params: params.clone(),
            models: vec![(hash, ModelEntry::of(&sku, size))],
            pools: vec![SeedPool { sku: hash, native: POOL, units: POOL, provider: addr(&keys[0]) }],
        };
        let mut entries = market.entries().expect("market genesis");
        // Validator stakes for the epoch payout (read only where a test sets `chain.rewards`).
        for (i, k) in keys.iter().enumerate().skip(3).take(2) {
            entries.push((stake_key(&addr(k)), StateValue::Bytes((100 * (i as u128 - 2)).to_le_bytes().to_vec().into())));
        }
        let g = Genesis { accounts: keys.iter().map(|k| (addr(k), FUNDS)).collect(), time_ms: 0, entries };
        chain.init_genesis(&g).expect("genesis");
        Net { chain, nonces: vec![0; accounts], keys, engine, sku: hash, time: 0, parallel_blocks: 0, params, contracts: Vec::new(), _dirs: (dir, art) }
    }

    fn tx(&mut self, who: usize, m: MarketTx) -> aivm_runtime::SignedTransaction {
        self.tx_with(who, Payload::Market(m), GAS)
    }

    fn tx_with(&mut self, who: usize, payload: Payload, gas_limit: u64) -> aivm_runtime::SignedTransaction {
        let t = Transaction { chain_id: CHAIN_ID, sender: addr(&self.keys[who]), nonce: self.nonces[who], gas_limit, gas_price: 1, payload };
        self.nonces[who] += 1;
        t.sign(&self.keys[who])
    }

    fn block(&mut self, txs: Vec<aivm_runtime::SignedTransaction>) -> Vec<Receipt> {
        self.time += 1000;
        let b = self.chain.execute(txs, self.time).expect("execute");
        let receipts = b.record.receipts.clone();
        self.parallel_blocks += (b.stats.validations > 0) as usize;
        self.chain.commit(b).expect("commit");
        receipts
    }

    /// One transaction in its own block; its receipt.
    fn one(&mut self, who: usize, m: MarketTx) -> Receipt {
        let t = self.tx(who, m);
        self.block(vec![t]).remove(0)
    }

    fn height(&self) -> u64 {
        self.chain.head().expect("head").height
    }

    fn get<T: serde::de::DeserializeOwned>(&self, k: MarketKey<'_>) -> Option<T> {
        match self.chain.store().get(&k.state_key()).expect("read") {
            Some(StateValue::Bytes(b)) => Some(ciborium::from_reader(&b[..]).expect("decode")),
            _ => None,
        }
    }

    fn balance(&self, a: &[u8; 32]) -> u128 {
        self.chain.account(a).expect("read").map_or(0, |a| a.balance)
    }

    fn worker_bond(&self, who: usize) -> Bond {
        self.get(MarketKey::Bond(&Role::Worker { sku: self.sku }, &addr(&self.keys[who]))).unwrap_or_default()
    }

    fn job(&self, id: &[u8; 32]) -> Job {
        self.get(MarketKey::Job(id)).expect("job")
    }

    /// Native everywhere it can be: balances (the collector's too), stakes, escrow, the pool,
    /// the treasury and the burned total.
    fn native_total(&self, jobs: &[[u8; 32]]) -> u128 {
        let mut t: u128 = self.keys.iter().map(|k| self.balance(&addr(k))).sum::<u128>() + self.balance(&COLLECTOR);
        t += self.contracts.iter().map(|c| self.balance(c)).sum::<u128>();
        for k in &self.keys {
            for role in [Role::Worker { sku: self.sku }, Role::Verifier] {
                let b: Bond = self.get(MarketKey::Bond(&role, &addr(k))).unwrap_or_default();
                t += b.bonded + b.unbonding;
            }
        }
        for id in jobs {
            if let Some(j) = self.get::<Job>(MarketKey::Job(id)) {
                // Escrow: fees not yet paid out or refunded.
                if matches!(
                    j.status,
                    JobStatus::Assigned | JobStatus::Committed { .. } | JobStatus::Provisional { .. } | JobStatus::Disputed { provisional: Some(_), .. }
                ) {
                    t += j.fee;
                }
            }
        }
        t += self.get::<Pool>(MarketKey::Pool(&self.sku)).map_or(0, |p| p.native);
        let tr: Treasury = self.get(MarketKey::Treasury).unwrap_or_default();
        t + tr.validators + tr.verifiers + tr.burned
    }

    fn initial_total(&self) -> u128 {
        FUNDS * self.keys.len() as u128 + POOL
    }

    /// Bond `who` as a worker with `stake` and room for `capacity` units.
    fn bond_worker(&mut self, who: usize, stake: u128, capacity: u64) {
        let r = self.one(who, MarketTx::Bond { role: Role::Worker { sku: self.sku }, amount: stake, capacity });
        assert!(r.is_success(), "{:?}", r.status);
    }

    fn submit(&mut self, who: usize, prompt: Vec<u32>, max_new: u32) -> ([u8; 32], Receipt) {
        self.submit_on(who, prompt, max_new, false)
    }

    /// Submit a job on the Freivalds track or (`tee`) the optimistic one; its id and receipt.
    fn submit_on(&mut self, who: usize, prompt: Vec<u32>, max_new: u32, tee: bool) -> ([u8; 32], Receipt) {
        let t = self.tx(who, MarketTx::SubmitJob { sku: self.sku, prompt, max_new, sla_blocks: 4, budget: FUNDS / 10, tee });
        let id = t.hash();
        (id, self.block(vec![t]).remove(0))
    }

    fn run(&self, job: &Job) -> (InferenceReceipt, Trace) {
        run_committed(&self.engine, std::slice::from_ref(&job.prompt), job.max_new as usize).expect("inference")
    }

    /// The challenge of a job committed at `at` (needs block `at + 1`).
    fn challenge(&self, id: &[u8; 32], at: u64) -> Challenge {
        let beacon: serde_bytes::ByteArray<32> = self.get(MarketKey::Beacon(at + 1)).expect("beacon");
        let p = &self.params;
        Challenge { seed: challenge_seed(&beacon, id), gemms: p.challenge_gemms, rows: p.challenge_rows }
    }

    /// Commit `(receipt, trace)` for job `id` as worker `who`, wait a block, answer. Returns the
    /// answer's receipt.
    fn commit_and_answer(&mut self, who: usize, id: [u8; 32], r: &InferenceReceipt, t: &Trace) -> Receipt {
        let c = self.one(who, MarketTx::Commit { job: id, receipt: cbor(r) });
        assert!(c.is_success(), "commit: {:?}", c.status);
        let at = self.height();
        self.block(vec![]);
        let ch = self.challenge(&id, at);
        let response = respond(&self.engine.sku, r, t, &ch).map(|x| x.encode()).unwrap_or_default();
        self.one(who, MarketTx::Answer { job: id, response })
    }
}

fn failed(r: &Receipt) -> String {
    match &r.status {
        TxStatus::Failed { message, .. } => message.clone(),
        s => panic!("expected a failure, got {s:?}"),
    }
}

/// Rebuild a tampered trace's root, as a cheating worker commits to what it claims.
fn recommit(r: &mut InferenceReceipt, t: &mut Trace) {
    t.recommit();
    r.gemm_root = merkle::root(&t.leaves());
    r.gemm_count = t.gemms().len() as u64;
}

#[test]
fn honest_job_settles_with_the_exact_split() {
    let mut n = Net::new("honest", 3, 1);
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    let pool_before: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
    let quote = amount_in(6 + 5, pool_before.native, pool_before.units, pool_before.fee_bps).expect("quote");
    let client_before = n.balance(&addr(&n.keys[client]));
    let (id, r) = n.submit(client, vec![3, 9, 27, 4, 5, 6], 5);
    assert!(r.is_success(), "{:?}", r.status);
    assert_eq!(n.balance(&addr(&n.keys[client])), client_before - quote - r.fee, "the client pays the quote and its gas");
    let job = n.job(&id);
    assert_eq!((job.worker, job.fee, job.units), (addr(&n.keys[worker]), quote, 11));
    assert_eq!(n.worker_bond(worker).in_flight, 11);

    let (receipt, trace) = n.run(&job);
    let worker_before = n.balance(&addr(&n.keys[worker]));
    let fees_before = n.balance(&COLLECTOR);
    let c = n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&receipt) });
    let at = n.height();
    let mid = n.block(vec![]);
    assert!(mid.is_empty());
    let ch = n.challenge(&id, at);
    let response = respond(&n.engine.sku, &receipt, &trace, &ch).expect("respond").encode();
    let a = n.one(worker, MarketTx::Answer { job: id, response });
    assert!(a.is_success(), "{:?}", a.status);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));

    let split = FeeSplit::of(quote);
    assert_eq!(split.total(), quote);
    // The answer's receipt says where the fee went, part by part, as `aivm_getJob` shows it.
    let settled = a.events.iter().find(|e| e.topic == b"job.settled").expect("a job.settled event");
    assert_eq!(&settled.data[..32], &id[..]);
    assert_eq!(FeeSplit::from_event(&settled.data[32..]), Some(split));
    let gas_paid = c.fee + a.fee;
    assert_eq!(n.balance(&addr(&n.keys[worker])), worker_before + split.worker - gas_paid);
    let tr: Treasury = n.get(MarketKey::Treasury).expect("treasury");
    assert_eq!((tr.validators, tr.verifiers, tr.burned), (split.validators, split.verifiers, split.burn));
    let pool: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
    assert_eq!(pool.native, pool_before.native + split.liquidity, "the LPs' 4 % enters the pool");
    assert_eq!(n.balance(&COLLECTOR), fees_before + gas_paid);
    let bond = n.worker_bond(worker);
    assert_eq!((bond.in_flight, bond.bonded), (0, 20_000));
    assert_eq!(bond.credits, 6 + receipt.outputs[0].len() as u64, "verified tokens are credited");
    assert_eq!(n.native_total(&[id]), n.initial_total());
    // The verification's gas is what its price says, far below the job's inference.
    assert!(a.gas_used < GAS, "answer used {} gas", a.gas_used);

    // Settling again, or anything else on a settled job, is refused and moves nothing.
    let again = respond(&n.engine.sku, &receipt, &trace, &ch).expect("respond").encode();
    assert!(failed(&n.one(worker, MarketTx::Answer { job: id, response: again })).contains("settled"));
    assert!(failed(&n.one(0, MarketTx::Expire { job: id })).contains("settled"));
    assert_eq!(n.native_total(&[id]), n.initial_total());
    // Without inflation no work-reward record is kept (`spec/market.md` §4a).
    assert!(n.get::<aivm_runtime::market::state::PendingCredits>(MarketKey::PendingCredits).is_none());
}

/// How a cheating worker produces its receipt and trace.
#[derive(Clone, Copy, Debug)]
enum Cheat {
    /// One element of one GEMM's output flipped (and committed to).
    Flip,
    /// A layer's GEMMs left out of one step.
    SkipLayer,
    /// Another model's run, claimed as this one.
    WrongModel,
}

#[test]
fn each_cheat_is_caught_on_its_first_job() {
    for cheat in [Cheat::Flip, Cheat::SkipLayer, Cheat::WrongModel] {
        let mut n = Net::new(&format!("cheat-{cheat:?}"), 3, 1);
        let (client, worker) = (1, 2);
        n.bond_worker(worker, 30_000, 1_000);
        let client_before = n.balance(&addr(&n.keys[client]));
        let (id, sub) = n.submit(client, vec![7, 1, 2], 4);
        let job = n.job(&id);
        let (mut r, mut t) = n.run(&job);
        match cheat {
            Cheat::Flip => {
                let i = t.gemms().len() / 2;
                t.gemms_mut()[i].y[0] ^= 1;
            }
            Cheat::SkipLayer => t.retain(|g| !(g.commit.step == 1 && g.commit.layer == 1)),
            Cheat::WrongModel => {
                let other = Engine::new(Arc::new(tiny(Arch::Llama, 22)), Options::default()).expect("engine");
                (r, t) = run_committed(&other, std::slice::from_ref(&job.prompt), job.max_new as usize).expect("run");
                r.sku = n.sku;
            }
        }
        recommit(&mut r, &mut t);
        let a = n.commit_and_answer(worker, id, &r, &t);
        assert!(a.is_success(), "{cheat:?}: {:?}", a.status);
        let JobStatus::Slashed { taken, reason, .. } = n.job(&id).status else { panic!("{cheat:?}: not slashed") };
        assert!(reason.starts_with("wrong output"), "{cheat:?}: {reason}");
        assert_eq!(taken, Slash::of(30_000, 10_000).taken, "{cheat:?}: the whole stake");
        assert_eq!(n.worker_bond(worker).bonded, 0);
        let set: aivm_runtime::market::state::WorkerSet = n.get(MarketKey::Workers(&n.sku)).expect("set");
        assert!(set.workers.is_empty(), "{cheat:?}: a worker slashed to nothing leaves the set");
        assert_eq!(n.balance(&addr(&n.keys[client])), client_before - sub.fee, "{cheat:?}: the client is refunded in full");
        assert_eq!(n.native_total(&[id]), n.initial_total(), "{cheat:?}");
    }
}

#[test]
fn a_worker_that_does_not_answer_loses_a_tenth_and_the_prover_is_paid() {
    let mut n = Net::new("no-answer", 4, 1);
    let (client, worker, prover) = (1, 2, 3);
    n.bond_worker(worker, 40_000, 1_000);
    let (id, _) = n.submit(client, vec![5, 5], 3);
    let job = n.job(&id);
    let (r, _) = n.run(&job);
    assert!(n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) }).is_success());
    let at = n.height();
    // Too early: the answer window (3 blocks after the challenge at `at + 1`) is still open.
    assert!(failed(&n.one(prover, MarketTx::Expire { job: id })).contains("too early"));
    while n.height() <= at + 1 + params().answer_window {
        n.block(vec![]);
    }
    let prover_before = n.balance(&addr(&n.keys[prover]));
    let e = n.one(prover, MarketTx::Expire { job: id });
    assert!(e.is_success(), "{:?}", e.status);
    let s = Slash::of(40_000, 1_000);
    assert_eq!(n.worker_bond(worker).bonded, 40_000 - s.taken);
    assert_eq!(n.balance(&addr(&n.keys[prover])), prover_before + s.prover - e.fee);
    assert!(matches!(n.job(&id).status, JobStatus::Slashed { .. }));
    // A late answer changes nothing.
    assert!(failed(&n.one(worker, MarketTx::Answer { job: id, response: vec![] })).contains("slashed"));
    assert_eq!(n.native_total(&[id]), n.initial_total());

    // A worker that never commits: expirable after twice the SLA (4 blocks).
    let (id2, _) = n.submit(client, vec![1], 1);
    let start = n.height();
    while n.height() <= start + 8 {
        n.block(vec![]);
    }
    assert!(n.one(prover, MarketTx::Expire { job: id2 }).is_success());
    assert!(failed(&n.one(worker, MarketTx::Commit { job: id2, receipt: cbor(&r) })).contains("slashed"));
    assert_eq!(n.native_total(&[id, id2]), n.initial_total());
}

#[test]
fn bad_inputs_are_clear_errors_that_move_nothing() {
    let mut n = Net::new("bad", 4, 1);
    let (client, worker, other) = (1, 2, 3);
    let total = n.initial_total();
    let sku = n.sku;
    let submit = |sku: [u8; 32], prompt: Vec<u32>, max_new: u32, budget: u128| MarketTx::SubmitJob { sku, prompt, max_new, sla_blocks: 4, budget, tee: false };

    // No worker yet.
    assert!(failed(&n.one(client, submit(sku, vec![1, 2], 2, 1_000_000))).contains("no staked worker"));
    // Unknown model, below minimum stake, zero capacity.
    assert!(failed(&n.one(client, submit([7; 32], vec![1], 1, 1_000_000))).contains("not registered"));
    assert!(failed(&n.one(worker, MarketTx::Bond { role: Role::Worker { sku }, amount: 9_999, capacity: 10 })).contains("below the minimum"));
    assert!(failed(&n.one(worker, MarketTx::Bond { role: Role::Worker { sku }, amount: 10_000, capacity: 0 })).contains("capacity"));
    assert!(failed(&n.one(worker, MarketTx::Bond { role: Role::Worker { sku: [7; 32] }, amount: 10_000, capacity: 5 })).contains("not registered"));
    n.bond_worker(worker, 10_000, 20);
    // Prompts outside the vocabulary, empty, too long for the context; budget below the quote.
    assert!(failed(&n.one(client, submit(sku, vec![64], 1, 1_000_000))).contains("vocabulary"));
    assert!(failed(&n.one(client, submit(sku, vec![], 1, 1_000_000))).contains("prompt"));
    assert!(failed(&n.one(client, submit(sku, vec![1; 300], 200, 1_000_000))).contains("context"));
    assert!(failed(&n.one(client, submit(sku, vec![1, 2], 2, 1))).contains("above the budget"));
    // Capacity: 20 units; a 25-unit job finds no worker.
    assert!(failed(&n.one(client, submit(sku, vec![1; 20], 5, 1_000_000))).contains("no staked worker"));
    assert_eq!(n.native_total(&[]), total);

    let (id, ok) = n.submit(client, vec![3, 4], 3);
    assert!(ok.is_success());
    let job = n.job(&id);
    let (r, t) = n.run(&job);
    // Not the worker; not this job's receipt; garbage.
    assert!(failed(&n.one(other, MarketTx::Commit { job: id, receipt: cbor(&r) })).contains("only the job's worker"));
    let mut wrong = r.clone();
    wrong.prompts[0][0] = 9;
    assert!(failed(&n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&wrong) })).contains("not for this job"));
    assert!(failed(&n.one(worker, MarketTx::Commit { job: id, receipt: vec![0xff; 40] })).contains("receipt"));
    assert!(failed(&n.one(worker, MarketTx::Commit { job: [1; 32], receipt: cbor(&r) })).contains("no such job"));
    // Commit, then a second commit and an early answer are refused.
    assert!(n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) }).is_success());
    let at = n.height();
    assert!(failed(&n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) })).contains("committed"));
    // (the refused commit above was block at + 1; the challenge exists now)
    let ch = n.challenge(&id, at);
    let response = respond(&n.engine.sku, &r, &t, &ch).expect("respond").encode();
    // Someone else's hostile openings cannot get the worker slashed.
    assert!(failed(&n.one(other, MarketTx::Answer { job: id, response: vec![1, 2, 3] })).contains("only the job's worker"));
    // A replayed transaction is rejected before execution.
    let t1 = n.tx(worker, MarketTx::Answer { job: id, response: response.clone() });
    let rs = n.block(vec![t1.clone(), t1]);
    assert!(rs[0].is_success(), "{:?}", rs[0].status);
    assert!(matches!(rs[1].status, TxStatus::Rejected { .. }));
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    assert_eq!(n.native_total(&[id]), total);

    // Late answers: a fresh job whose answer window has passed.
    let (id2, _) = n.submit(client, vec![3], 1);
    let (r2, t2) = n.run(&n.job(&id2));
    assert!(n.one(worker, MarketTx::Commit { job: id2, receipt: cbor(&r2) }).is_success());
    let at2 = n.height();
    while n.height() <= at2 + 1 + params().answer_window {
        n.block(vec![]);
    }
    let late = respond(&n.engine.sku, &r2, &t2, &n.challenge(&id2, at2)).expect("respond").encode();
    assert!(failed(&n.one(worker, MarketTx::Answer { job: id2, response: late })).contains("too late"));
    assert_eq!(n.native_total(&[id, id2]), total);
}

#[test]
fn unbonding_stays_slashable_and_withdraws_after_the_delay() {
    let mut n = Net::new("unbond", 3, 1);
    let (client, worker) = (1, 2);
    let role = Role::Worker { sku: n.sku };
    n.bond_worker(worker, 20_000, 100);
    let (id, _) = n.submit(client, vec![2], 1);
    assert!(failed(&n.one(worker, MarketTx::Unbond { role, amount: 15_000 })).contains("below the minimum"));
    assert!(n.one(worker, MarketTx::Unbond { role, amount: 20_000 }).is_success());
    // Unbonded workers get no new jobs; the open one still binds the stake.
    assert!(failed(&n.one(client, MarketTx::SubmitJob { sku: n.sku, prompt: vec![1], max_new: 1, sla_blocks: 4, budget: 1_000_000, tee: false }))
        .contains("no staked worker"));
    for _ in 0..8 {
        n.block(vec![]);
    }
    assert!(failed(&n.one(worker, MarketTx::Withdraw { role })).contains("in flight"));
    assert!(n.one(0, MarketTx::Expire { job: id }).is_success());
    let b = n.worker_bond(worker);
    assert_eq!((b.bonded, b.unbonding), (0, 20_000 - Slash::of(20_000, 1_000).taken), "the unbonding stake was slashed");
    let before = n.balance(&addr(&n.keys[worker]));
    let w = n.one(worker, MarketTx::Withdraw { role });
    assert!(w.is_success(), "{:?}", w.status);
    assert_eq!(n.balance(&addr(&n.keys[worker])), before + b.unbonding - w.fee);
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

#[test]
fn liquidity_and_swaps_through_transactions() {
    let mut n = Net::new("pool", 3, 1);
    let sku = n.sku;
    // Account 1 has no units: it buys some, then provides liquidity with them.
    let r = n.one(1, MarketTx::Swap { sku, side: Side::Native, amount_in: 100_000, min_out: 0 });
    assert!(r.is_success(), "{:?}", r.status);
    let units: u128 = ciborium::from_reader(&r.output[..]).expect("out");
    assert!(failed(&n.one(1, MarketTx::Swap { sku, side: Side::Native, amount_in: 100_000, min_out: u128::MAX })).contains("below the minimum"));
    assert!(failed(&n.one(1, MarketTx::AddLiquidity { sku, native: 999, units: 10 })).contains("below the minimum"));
    let add = n.one(1, MarketTx::AddLiquidity { sku, native: 50_000, units });
    assert!(add.is_success(), "{:?}", add.status);
    let shares: u128 = ciborium::from_reader(&add.output[..]).expect("shares");
    assert!(failed(&n.one(1, MarketTx::RemoveLiquidity { sku, shares: shares + 1 })).contains("need"));
    assert!(n.one(1, MarketTx::RemoveLiquidity { sku, shares }).is_success());
    // The genesis provider cannot take the locked minimum.
    let all: u128 = n.get(MarketKey::Shares(&sku, &addr(&n.keys[0]))).expect("shares");
    assert!(n.one(0, MarketTx::RemoveLiquidity { sku, shares: all }).is_success());
    let pool: Pool = n.get(MarketKey::Pool(&sku)).expect("pool");
    assert!(pool.native > 0 && pool.units > 0 && pool.shares == 1_000);
    assert_eq!(n.native_total(&[]), n.initial_total());
}

/// One random market step for the conservation property.
#[derive(Clone, Debug)]
enum Op {
    Bond(usize, u128, u64),
    Unbond(usize, u128),
    Withdraw(usize),
    Swap(usize, bool, u128),
    Add(usize, u128, u128),
    Remove(usize, u128),
    Submit(usize, u8, u32, u128),
    Commit(usize, usize),
    Expire(usize, usize),
    /// Through contracts: a swap (`SWAPPER`) and a job (`contracts/escrow`'s `ask`).
    ContractSwap(usize, bool, u128),
    ContractAsk(usize, u8, u32, u128),
    Empty,
}

/// `contracts/escrow`'s `ask` arguments.
#[derive(serde::Serialize)]
struct AskArgs {
    #[serde(with = "serde_bytes")]
    sku: [u8; 32],
    prompt: Vec<u32>,
    max_new: u32,
    sla_blocks: u64,
}

fn op(accounts: usize) -> impl Strategy<Value = Op> {
    let a = 0..accounts;
    prop_oneof![
        (a.clone(), 5_000u128..40_000, 1u64..60).prop_map(|(w, s, c)| Op::Bond(w, s, c)),
        (a.clone(), 1u128..40_000).prop_map(|(w, s)| Op::Unbond(w, s)),
        a.clone().prop_map(Op::Withdraw),
        (a.clone(), any::<bool>(), 1u128..200_000).prop_map(|(w, s, x)| Op::Swap(w, s, x)),
        (a.clone(), 500u128..100_000, 1u128..50_000).prop_map(|(w, x, u)| Op::Add(w, x, u)),
        (a.clone(), 1u128..100_000).prop_map(|(w, s)| Op::Remove(w, s)),
        (a.clone(), 1u8..12, 1u32..6, 0u128..2_000_000).prop_map(|(w, p, m, b)| Op::Submit(w, p, m, b)),
        (a.clone(), 0usize..64).prop_map(|(w, j)| Op::Commit(w, j)),
        (a.clone(), 0usize..64).prop_map(|(w, j)| Op::Expire(w, j)),
        (a.clone(), any::<bool>(), 1u128..200_000).prop_map(|(w, s, x)| Op::ContractSwap(w, s, x)),
        (a.clone(), 1u8..12, 1u32..6, 0u128..2_000_000).prop_map(|(w, p, m, b)| Op::ContractAsk(w, p, m, b)),
        Just(Op::Empty),
    ]
}

/// Run `blocks` on a fresh chain with `threads` executor threads; the state roots and the
/// job ids.
fn replay(blocks: &[Vec<Op>], accounts: usize, threads: usize) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
    let mut n = Net::new(&format!("prop{threads}"), accounts, threads);
    let sku = n.sku;
    let swapper = n.deploy(0, wat::parse_str(SWAPPER).expect("wat"));
    let escrow = n.deploy(0, aivm_testkit::contract_wasm("escrow").expect("escrow.wasm (run `make contracts`)"));
    let mut jobs: Vec<[u8; 32]> = Vec::new();
    let mut roots = Vec::new();
    for ops in blocks {
        let mut txs = Vec::new();
        for o in ops {
            let m = match o.clone() {
                Op::ContractSwap(w, native, x) => {
                    let t = n.swap_call(w, swapper, !native, x, 0, if native { x } else { 0 });
                    txs.push(t);
                    continue;
                }
                Op::ContractAsk(w, p, m, b) => {
                    let args = cbor(&AskArgs { sku, prompt: (0..p as u32).collect(), max_new: m, sla_blocks: 1 });
                    let t = n.tx_with(w, Payload::Call { contract: escrow, entry: "ask".into(), args, value: b }, 60_000_000);
                    jobs.push(aivm::contract_job_id(&t.hash(), &escrow, 0));
                    txs.push(t);
                    continue;
                }
                Op::Bond(_, s, c) => MarketTx::Bond { role: Role::Worker { sku }, amount: s, capacity: c },
                Op::Unbond(_, s) => MarketTx::Unbond { role: Role::Worker { sku }, amount: s },
                Op::Withdraw(_) => MarketTx::Withdraw { role: Role::Worker { sku } },
                Op::Swap(_, native, x) => MarketTx::Swap { sku, side: if native { Side::Native } else { Side::Units }, amount_in: x, min_out: 0 },
                Op::Add(_, x, u) => MarketTx::AddLiquidity { sku, native: x, units: u },
                Op::Remove(_, s) => MarketTx::RemoveLiquidity { sku, shares: s },
                Op::Submit(_, p, m, b) => MarketTx::SubmitJob { sku, prompt: (0..p as u32).collect(), max_new: m, sla_blocks: 1, budget: b, tee: false },
                Op::Commit(_, j) => {
                    let Some(id) = jobs.get(j % jobs.len().max(1)).copied() else { continue };
                    let Some(job) = n.get::<Job>(MarketKey::Job(&id)) else { continue };
                    let (r, _) = n.run(&job);
                    MarketTx::Commit { job: id, receipt: cbor(&r) }
                }
                Op::Expire(_, j) => {
                    let Some(id) = jobs.get(j % jobs.len().max(1)).copied() else { continue };
                    MarketTx::Expire { job: id }
                }
                Op::Empty => continue,
            };
            let who = match o {
                Op::Bond(w, ..)
                | Op::Unbond(w, _)
                | Op::Withdraw(w)
                | Op::Swap(w, ..)
                | Op::Add(w, ..)
                | Op::Remove(w, _)
                | Op::Submit(w, ..)
                | Op::Expire(w, _) => *w,
                Op::ContractSwap(..) | Op::ContractAsk(..) => continue,
                Op::Commit(w, j) => {
                    // Half the time the job's own worker commits.
                    let id = jobs[j % jobs.len()];
                    let job: Job = n.get(MarketKey::Job(&id)).expect("job");
                    if w % 2 == 0 {
                        n.keys.iter().position(|k| addr(k) == job.worker).unwrap_or(*w)
                    } else {
                        *w
                    }
                }
                Op::Empty => continue,
            };
            let t = n.tx(who, m);
            if matches!(o, Op::Submit(..)) {
                jobs.push(t.hash());
            }
            txs.push(t);
        }
        let receipts = n.block(txs);
        // A rejected transaction did not use its nonce.
        for r in &receipts {
            if let TxStatus::Rejected { reason } = &r.status {
                panic!("nothing here should be rejected: {reason}");
            }
        }
        assert_eq!(n.native_total(&jobs), n.initial_total(), "native is conserved");
        roots.push(n.chain.head().expect("head").state_root);
    }
    if threads > 1 {
        assert!(n.parallel_blocks > 0, "Block-STM ran no block speculatively on {threads} threads");
    }
    (roots, jobs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Σ balances + stakes + escrow + pool + treasury + burned is invariant, and Block-STM on
    /// 2, 3 and 4 threads gives the sequential executor's state roots — with swaps and jobs
    /// from contracts among the transactions.
    #[test]
    fn native_is_conserved_and_threads_agree(blocks in proptest::collection::vec(proptest::collection::vec(op(80), 64..128), 1..5)) {
        let (seq, _) = replay(&blocks, 80, 1);
        for threads in [2, 3, 4] {
            let (par, _) = replay(&blocks, 80, threads);
            prop_assert_eq!(&par, &seq, "{} threads", threads);
        }
    }
}

/// A settled job whose last output token was changed (committed to consistently) that a
/// sample without row chains let through; returns the net, the job, the worker's receipt and
/// trace, and the honest receipt.
fn settled_liar() -> (Net, [u8; 32], InferenceReceipt, Trace, InferenceReceipt) {
    let p = MarketParams { challenge_gemms: 1, challenge_rows: 0, answer_window: 3, dispute_window: 10, ..MarketParams::default() };
    let mut n = Net::with_params("dispute", 5, 1, p);
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 30_000, 1_000);
    let (id, _) = n.submit(client, vec![7, 1, 2], 4);
    let job = n.job(&id);
    let (honest, t) = n.run(&job);
    let mut r = honest.clone();
    let last = r.outputs[0].len() - 1;
    r.outputs[0][last] = (r.outputs[0][last] + 1) % 64;
    r.output_root = tokens_root(&r.outputs);
    let a = n.commit_and_answer(worker, id, &r, &t);
    assert!(a.is_success(), "{:?}", a.status);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }), "the sample let the lie through: {:?}", n.job(&id).status);
    (n, id, r, t, honest)
}

#[test]
fn a_true_dispute_slashes_the_worker_and_pays_the_verifier() {
    let (mut n, id, r, t, honest) = settled_liar();
    let (client, worker, verifier) = (1, 2, 3);
    // Unbonded verifiers cannot dispute.
    assert!(failed(&n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&honest) })).contains("below the minimum"));
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    // Agreeing outputs are no dispute.
    assert!(failed(&n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&r) })).contains("agree"));
    let (client_before, verifier_before) = (n.balance(&addr(&n.keys[client])), n.balance(&addr(&n.keys[verifier])));
    let d = n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&honest) });
    assert!(d.is_success(), "{:?}", d.status);
    let at = n.height();
    let JobStatus::Disputed { step, .. } = n.job(&id).status else { panic!("not disputed") };
    assert_eq!(step as usize, r.outputs[0].len() - 1, "the runs part at the last token");
    n.block(vec![]);
    let resp = respond_step(&n.engine.sku, &r, &t, step).expect("respond").encode();
    let wrong_sender = n.one(verifier, MarketTx::Answer { job: id, response: resp.clone() });
    assert!(failed(&wrong_sender).contains("only the job's worker"));
    let a = n.one(worker, MarketTx::Answer { job: id, response: resp });
    assert!(a.is_success(), "{:?}", a.status);
    let JobStatus::Slashed { taken, reason, .. } = n.job(&id).status else { panic!("worker not slashed") };
    assert!(reason.contains(&format!("step {step}")), "{reason}");
    let s = Slash::of(30_000, 10_000);
    assert_eq!(taken, s.taken);
    assert!(at + 2 <= n.height());
    let job = n.job(&id);
    let bounty = FeeSplit::of(job.fee).verifiers; // the pot holds this job's own 5 %
    assert_eq!(
        n.balance(&addr(&n.keys[verifier])),
        verifier_before - d.fee - wrong_sender.fee + s.prover + bounty,
        "the verifier gets the prover's share and a bounty"
    );
    assert_eq!(n.balance(&addr(&n.keys[client])), client_before + s.burn.min(job.fee), "the client is refunded from the slash");
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

#[test]
fn a_false_dispute_slashes_the_verifier_and_an_unanswered_one_the_worker() {
    let mut n = Net::with_params("false-dispute", 5, 1, MarketParams { answer_window: 3, dispute_window: 10, unbonding_blocks: 100, ..params() });
    let (client, worker, verifier) = (1, 2, 3);
    n.bond_worker(worker, 30_000, 1_000);
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 60_000, capacity: 0 }).is_success());
    let (id, _) = n.submit(client, vec![5, 6, 7], 3);
    let (r, t) = n.run(&n.job(&id));
    assert!(n.commit_and_answer(worker, id, &r, &t).is_success());
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    // A made-up output.
    let mut fake = r.clone();
    fake.outputs[0][0] = (fake.outputs[0][0] + 3) % 64;
    fake.output_root = tokens_root(&fake.outputs);
    assert!(n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&fake) }).is_success());
    n.block(vec![]);
    let JobStatus::Disputed { step, .. } = n.job(&id).status else { panic!("not disputed") };
    assert_eq!(step, 0);
    let worker_before = n.balance(&addr(&n.keys[worker]));
    let a = n.one(worker, MarketTx::Answer { job: id, response: respond_step(&n.engine.sku, &r, &t, step).expect("respond").encode() });
    assert!(a.is_success(), "{:?}", a.status);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }), "the job stands");
    let s = Slash::of(60_000, 1_000);
    let vb: Bond = n.get(MarketKey::Bond(&Role::Verifier, &addr(&n.keys[verifier]))).expect("bond");
    assert_eq!(vb.bonded, 60_000 - s.taken, "a false report costs the verifier a tenth");
    assert_eq!(n.balance(&addr(&n.keys[worker])), worker_before - a.fee + s.prover);
    assert_eq!(n.native_total(&[id]), n.initial_total());

    // Disputed again, the worker stays silent: after the deadline anyone expires it, and the
    // worker loses as if it had answered wrongly.
    assert!(n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&fake) }).is_success());
    let at = n.height();
    assert!(failed(&n.one(client, MarketTx::Expire { job: id })).contains("too early"));
    while n.height() <= at + 1 + 3 {
        n.block(vec![]);
    }
    assert!(n.one(client, MarketTx::Expire { job: id }).is_success());
    let JobStatus::Slashed { reason, .. } = n.job(&id).status else { panic!("not slashed") };
    assert!(reason.contains("no answer to a dispute"), "{reason}");
    assert_eq!(n.worker_bond(worker).bonded, 0);
    assert_eq!(n.native_total(&[id]), n.initial_total());

    // Past the dispute window a settled job cannot be disputed.
    n.bond_worker(4, 30_000, 1_000);
    let (id2, _) = n.submit(client, vec![1], 1);
    let (r2, t2) = n.run(&n.job(&id2));
    assert!(n.commit_and_answer(4, id2, &r2, &t2).is_success());
    let JobStatus::Settled { until, .. } = n.job(&id2).status else { panic!("not settled") };
    while n.height() <= until {
        n.block(vec![]);
    }
    let mut fake2 = r2.clone();
    fake2.outputs[0][0] = (fake2.outputs[0][0] + 1) % 64;
    fake2.output_root = tokens_root(&fake2.outputs);
    assert!(failed(&n.one(verifier, MarketTx::Dispute { job: id2, receipt: cbor(&fake2) })).contains("disputes closed"));
    assert_eq!(n.native_total(&[id, id2]), n.initial_total());
}

/// The beacon of the block after the commit is fixed before that block is built (here from
/// the commit block's hash; on a network from the seed of the round that certified it), so
/// the worker can answer in that very block: its transactions read the beacon it carries.
/// Not in the commit's own block.
#[test]
fn an_answer_can_be_in_the_block_after_the_commit() {
    let mut n = Net::new("next-block", 3, 1);
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    let (id, _) = n.submit(client, vec![3, 9, 27, 4], 3);
    let (r, t) = n.run(&n.job(&id));
    let commit = n.tx(worker, MarketTx::Commit { job: id, receipt: cbor(&r) });
    let early = n.tx(worker, MarketTx::Answer { job: id, response: vec![0] });
    let rs = n.block(vec![commit, early]);
    assert!(rs[0].is_success(), "{:?}", rs[0].status);
    assert!(failed(&rs[1]).contains("too early"), "not in the commit's block");
    let at = n.height();
    let head = n.chain.block(at).expect("read").expect("block").header.hash();
    let beacon = aivm_runtime::market::jobs::beacon(&head, None);
    let ch = Challenge { seed: challenge_seed(&beacon, &id), gemms: n.params.challenge_gemms, rows: n.params.challenge_rows };
    let a = n.one(worker, MarketTx::Answer { job: id, response: respond(&n.engine.sku, &r, &t, &ch).expect("respond").encode() });
    assert!(a.is_success(), "{:?}", a.status);
    assert_eq!(n.height(), at + 1);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    assert_eq!(n.challenge(&id, at), ch, "the beacon the block recorded");
}

/// An answer to another challenge than the job's (its worker was told a wrong seed) is refused
/// and moves nothing but its fee; the worker then answers the job's challenge and is paid.
#[test]
fn an_answer_to_another_challenge_is_refused_and_can_be_given_again() {
    let mut n = Net::new("other-challenge", 3, 1);
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    let (id, _) = n.submit(client, vec![3, 9, 27, 4], 3);
    let (r, t) = n.run(&n.job(&id));
    let c = n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) });
    assert!(c.is_success(), "{:?}", c.status);
    let at = n.height();
    n.block(vec![]);
    let right = n.challenge(&id, at);
    let answer = |ch: &Challenge| respond(&n.engine.sku, &r, &t, ch).expect("respond");
    let first_row = |a: &aivm::model::audit::Response| a.rows.first().map(|o| (o.index, o.row));
    let right_answer = answer(&right);
    // Every GEMM is opened here (`params`): a wrong seed shows in the row chains.
    let wrong = (0..=255u8)
        .map(|b| Challenge { seed: [b; 32], gemms: right.gemms, rows: right.rows })
        .find(|ch| first_row(&answer(ch)) != first_row(&right_answer))
        .expect("a seed that opens other rows");
    let (bond, balance) = (n.worker_bond(worker), n.balance(&addr(&n.keys[worker])));
    let refused = n.one(worker, MarketTx::Answer { job: id, response: answer(&wrong).encode() });
    assert!(failed(&refused).contains("another challenge"), "{:?}", refused.status);
    assert!(matches!(n.job(&id).status, JobStatus::Committed { .. }), "still answerable");
    assert_eq!(n.worker_bond(worker), bond, "not slashed");
    assert_eq!(n.balance(&addr(&n.keys[worker])), balance - refused.fee, "only the fee moved");
    let a = n.one(worker, MarketTx::Answer { job: id, response: right_answer.encode() });
    assert!(a.is_success(), "{:?}", a.status);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Hostile bytes where a receipt or openings go: a mangled receipt is refused and moves
    /// nothing; mangled openings from the worker end the job (settled only if they still
    /// verify, else slashed) unless they open other GEMMs or rows than the challenge's (then
    /// refused) — never a panic, never a token created or lost.
    #[test]
    fn mangled_receipts_and_openings_never_break_the_chain(cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), truncate in any::<bool>()) {
        let mut n = Net::new("mangled", 3, 1);
        let (client, worker) = (1, 2);
        n.bond_worker(worker, 20_000, 1_000);
        let (id, _) = n.submit(client, vec![3, 4, 5], 2);
        let (r, t) = n.run(&n.job(&id));
        let mangle = |mut b: Vec<u8>| {
            for (at, x) in &cuts {
                let i = at.index(b.len());
                b[i] ^= x | 1;
            }
            if truncate {
                b.truncate(b.len() / 2);
            }
            b
        };
        let bad = n.one(worker, MarketTx::Commit { job: id, receipt: mangle(cbor(&r)) });
        if bad.is_success() {
            // The mangled bytes still decode to a receipt for this job: the chain took it.
            let committed = matches!(n.job(&id).status, JobStatus::Committed { .. });
            prop_assert!(committed, "a successful commit commits");
        } else {
            prop_assert_eq!(n.job(&id).status, JobStatus::Assigned);
            let honest = n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) });
            prop_assert!(honest.is_success(), "{:?}", honest.status);
        }
        let JobStatus::Committed { at, receipt } = n.job(&id).status else { panic!("not committed") };
        let committed: InferenceReceipt = ciborium::from_reader(&receipt[..]).expect("decodes");
        n.block(vec![]);
        let response = respond(&n.engine.sku, &committed, &t, &n.challenge(&id, at)).map(|x| x.encode()).unwrap_or_default();
        let a = n.one(worker, MarketTx::Answer { job: id, response: mangle(response) });
        if a.is_success() {
            let ended = matches!(n.job(&id).status, JobStatus::Settled { .. } | JobStatus::Slashed { .. });
            prop_assert!(ended, "the answer ends the job");
        } else {
            // Mangled into openings of other GEMMs or rows: an answer to another challenge,
            // refused; the job waits for its answer.
            prop_assert!(failed(&a).contains("another challenge"), "{:?}", a.status);
            let waiting = matches!(n.job(&id).status, JobStatus::Committed { .. });
            prop_assert!(waiting, "the job still waits for its answer");
        }
        prop_assert_eq!(n.native_total(&[id]), n.initial_total());
    }
}

/// The challenge depends on what was committed: the beacon of block `commit + 1` is derived
/// from block `commit`'s header, whose transactions and state root include the receipt. Two
/// chains that differ only in the receipt's bytes draw different challenges, so a worker
/// cannot fix its challenge before it commits (a colluding proposer still could grind: the
/// threshold-BLS beacon is not built, `spec/market.md` §6).
#[test]
fn the_challenge_is_fixed_only_after_the_commit() {
    let mut seeds = Vec::new();
    for variant in 0..2u32 {
        let mut n = Net::new(&format!("beacon-{variant}"), 3, 1);
        n.bond_worker(2, 20_000, 1_000);
        let (id, _) = n.submit(1, vec![3, 4], 2);
        let (mut r, _) = n.run(&n.job(&id));
        if variant == 1 {
            // A different but equally valid-looking receipt (another GEMM root).
            r.gemm_root[0] ^= 1;
        }
        assert!(n.one(2, MarketTx::Commit { job: id, receipt: cbor(&r) }).is_success());
        let at = n.height();
        // Before block `at + 1` there is no beacon to draw from.
        assert!(n.get::<serde_bytes::ByteArray<32>>(MarketKey::Beacon(at + 1)).is_none());
        n.block(vec![]);
        seeds.push((id, n.challenge(&id, at).seed));
    }
    assert_eq!(seeds[0].0, seeds[1].0, "the same job");
    assert_ne!(seeds[0].1, seeds[1].1, "a different commit draws a different challenge");
}

/// A verifier's claim longer than `max_new` is refused: the runs would part at a step the
/// worker never ran, and an honest worker whose output filled `max_new` could not open it.
#[test]
fn a_dispute_cannot_point_past_max_new() {
    let mut n = Net::with_params("dispute-past", 5, 1, MarketParams { answer_window: 3, dispute_window: 10, unbonding_blocks: 100, ..params() });
    let (client, worker, verifier) = (1, 2, 3);
    n.bond_worker(worker, 30_000, 1_000);
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 60_000, capacity: 0 }).is_success());
    let (id, _) = n.submit(client, vec![5, 6, 7], 2);
    let (r, t) = n.run(&n.job(&id));
    assert_eq!(r.outputs[0].len(), 2, "the honest output fills max_new");
    assert!(n.commit_and_answer(worker, id, &r, &t).is_success());
    let mut longer = r.clone();
    longer.outputs[0].push(1);
    longer.output_root = tokens_root(&longer.outputs);
    assert!(failed(&n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&longer) })).contains("not for this job"));
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
}

/// A dispute whose answer would not fit (here: a tiny limit; for SmolLM2, the prompt step of
/// a real prompt) is refused before it starts, so a false report cannot get an honest worker
/// slashed for an answer it has no way to send.
#[test]
fn a_dispute_the_worker_could_not_answer_is_refused() {
    let p = MarketParams { answer_window: 3, dispute_window: 10, unbonding_blocks: 100, max_answer_bytes: 1_000, ..params() };
    let mut n = Net::with_params("dispute-size", 5, 1, p);
    let (client, worker, verifier) = (1, 2, 3);
    n.bond_worker(worker, 30_000, 1_000);
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 60_000, capacity: 0 }).is_success());
    let (id, _) = n.submit(client, vec![5, 6, 7], 2);
    let (r, t) = n.run(&n.job(&id));
    assert!(n.commit_and_answer(worker, id, &r, &t).is_success());
    let mut fake = r.clone();
    fake.outputs[0][0] = (fake.outputs[0][0] + 3) % 64;
    fake.output_root = tokens_root(&fake.outputs);
    assert!(failed(&n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&fake) })).contains("could not answer"));
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
}

// ---- The optimistic TEE track (`spec/tee.md` §5), with devnet attestations. ----

use aivm::tee::{devnet_quote, report_data, Evidence, Format, HexBytes, TeePolicy};
use aivm_runtime::market::params::TeeParams;
use aivm_runtime::market::tee::job_claim;

/// The devnet enclave key genesis registers, and the worker image it vouches for.
fn enclave() -> SigningKey {
    SigningKey::from_bytes(&[0xEE; 32])
}
const IMAGE: [u8; 32] = [0x1A; 32];

fn tee_params(window: u64, spot_check_ppm: u32) -> MarketParams {
    let mut p = MarketParams { answer_window: 3, dispute_window: 10, unbonding_blocks: 100, ..params() };
    p.tee = TeeParams {
        policy: TeePolicy { formats: vec![Format::Devnet], devnet_signers: vec![HexBytes(addr(&enclave()).to_vec())], ..TeePolicy::default() },
        measurements: vec![HexBytes(IMAGE.to_vec())],
        challenge_window: window,
        spot_check_ppm,
    };
    p
}

impl Net {
    fn submit_tee(&mut self, who: usize, prompt: Vec<u32>, max_new: u32) -> ([u8; 32], Receipt) {
        self.submit_on(who, prompt, max_new, true)
    }

    /// A commit of `r` with `key`'s attestation of the job's tuple at `claim_ms`, sent as
    /// made at `tx_ms`.
    fn attested(&self, id: &[u8; 32], r: &InferenceReceipt, key: &SigningKey, claim_ms: u64, tx_ms: u64) -> MarketTx {
        let job = self.job(id);
        let bytes = cbor(r);
        let claim = job_claim(id, &job.sku, &job.prompt, r, &bytes, claim_ms);
        let quote = devnet_quote(key, &IMAGE, &report_data(&claim));
        MarketTx::CommitAttested { job: *id, receipt: bytes, attestation: Evidence { format: Format::Devnet, quote, collateral: vec![] }, time_ms: tx_ms }
    }

    fn until_past(&mut self, h: u64) {
        while self.height() <= h {
            self.block(vec![]);
        }
    }
}

#[test]
fn a_tee_job_is_provisional_at_once_and_final_after_its_window() {
    let mut n = Net::with_params("tee-final", 4, 1, tee_params(6, 0));
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    let (id, s) = n.submit_tee(client, vec![3, 9, 27], 4);
    assert!(s.is_success(), "{:?}", s.status);
    let (r, _) = n.run(&n.job(&id));
    assert!(failed(&n.one(worker, MarketTx::Commit { job: id, receipt: cbor(&r) })).contains("attestation"));
    let c = n.one(worker, n.attested(&id, &r, &enclave(), n.time, n.time));
    assert!(c.is_success(), "{:?}", c.status);
    let at = n.height();
    let JobStatus::Provisional { at: p_at, until, checked, ref output, .. } = n.job(&id).status else { panic!("not provisional: {:?}", n.job(&id).status) };
    assert_eq!((p_at, until, checked, output), (at, at + 6, false, &r.outputs[0]), "provisional in the commit's own block");
    assert_eq!(n.native_total(&[id]), n.initial_total());
    assert!(failed(&n.one(client, MarketTx::Finalize { job: id })).contains("too early"));
    n.until_past(until);
    let worker_before = n.balance(&addr(&n.keys[worker]));
    assert!(n.one(client, MarketTx::Finalize { job: id }).is_success(), "anyone finalizes");
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    let fee = n.job(&id).fee;
    assert_eq!(n.balance(&addr(&n.keys[worker])), worker_before + FeeSplit::of(fee).worker);
    assert_eq!(n.worker_bond(worker).in_flight, 0);
    // Final: no longer open to challenge.
    assert!(n.one(3, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    let mut fake = r.clone();
    fake.outputs[0][0] = (fake.outputs[0][0] + 1) % 64;
    fake.output_root = tokens_root(&fake.outputs);
    assert!(failed(&n.one(3, MarketTx::Dispute { job: id, receipt: cbor(&fake) })).contains("disputes closed"));
    assert!(failed(&n.one(client, MarketTx::Finalize { job: id })).contains("settled"));
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

#[test]
fn a_fraudulent_provisional_result_is_overturned_inside_the_window() {
    let mut n = Net::with_params("tee-fraud", 5, 1, tee_params(8, 0));
    let (client, worker, verifier) = (1, 2, 3);
    n.bond_worker(worker, 30_000, 1_000);
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    let (id, _) = n.submit_tee(client, vec![7, 1, 2], 4);
    let (honest, t) = n.run(&n.job(&id));
    // A compromised enclave attests a wrong last token.
    let mut lie = honest.clone();
    let last = lie.outputs[0].len() - 1;
    lie.outputs[0][last] = (lie.outputs[0][last] + 1) % 64;
    lie.output_root = tokens_root(&lie.outputs);
    assert!(n.one(worker, n.attested(&id, &lie, &enclave(), n.time, n.time)).is_success());
    assert!(matches!(n.job(&id).status, JobStatus::Provisional { .. }));
    let client_before = n.balance(&addr(&n.keys[client]));
    let verifier_before = n.balance(&addr(&n.keys[verifier]));
    let d = n.one(verifier, MarketTx::Dispute { job: id, receipt: cbor(&honest) });
    assert!(d.is_success(), "{:?}", d.status);
    let JobStatus::Disputed { step, provisional: Some(_), .. } = n.job(&id).status else { panic!("not disputed: {:?}", n.job(&id).status) };
    assert!(failed(&n.one(4, MarketTx::Finalize { job: id })).contains("disputed"));
    n.block(vec![]);
    let a = n.one(worker, MarketTx::Answer { job: id, response: respond_step(&n.engine.sku, &lie, &t, step).expect("respond").encode() });
    assert!(a.is_success(), "{:?}", a.status);
    let JobStatus::Slashed { taken, reason, .. } = n.job(&id).status else { panic!("not slashed") };
    assert!(reason.contains(&format!("step {step}")), "{reason}");
    let s = Slash::of(30_000, 10_000);
    assert_eq!(taken, s.taken, "a wrong result is slashed in full");
    let fee = n.job(&id).fee;
    assert_eq!(n.balance(&addr(&n.keys[client])), client_before + fee, "the escrowed fee goes back");
    assert_eq!(n.balance(&addr(&n.keys[verifier])), verifier_before - d.fee + s.prover);
    assert_eq!(n.worker_bond(worker).in_flight, 0);
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

#[test]
fn invalid_attestations_cost_half_the_stake() {
    let mut n = Net::with_params("tee-invalid", 6, 1, tee_params(6, 0));
    let client = 1;
    let stranger = SigningKey::from_bytes(&[0x55; 32]);
    let mut jobs = Vec::new();
    // Each case on a fresh worker: a key genesis does not list; the right key over another
    // tuple (the claim's time differs from the one the transaction states).
    for (w, key, claim_ms) in [(2, stranger, 0u64), (3, enclave(), 1)] {
        n.bond_worker(w, 20_000, 1_000);
        let (id, _) = n.submit_tee(client, vec![4, 4], 2);
        jobs.push(id);
        assert_eq!(n.job(&id).worker, addr(&n.keys[w]));
        let (r, _) = n.run(&n.job(&id));
        let client_before = n.balance(&addr(&n.keys[client]));
        let c = n.one(w, n.attested(&id, &r, &key, claim_ms, 0));
        assert!(c.is_success(), "{:?}", c.status);
        let JobStatus::Slashed { taken, reason, .. } = n.job(&id).status else { panic!("not slashed: {:?}", n.job(&id).status) };
        assert!(reason.contains("invalid attestation"), "{reason}");
        assert_eq!(taken, Slash::of(20_000, 5_000).taken);
        assert_eq!(n.balance(&addr(&n.keys[client])), client_before + n.job(&id).fee);
        // Out of the set: the next case gets the next worker.
        n.one(w, MarketTx::Unbond { role: Role::Worker { sku: n.sku }, amount: 10_000 });
    }
    // An attestation on a Freivalds-track job, or from the future, is refused; nothing moves.
    n.bond_worker(4, 20_000, 1_000);
    let (id, _) = n.submit(client, vec![1], 1);
    jobs.push(id);
    let (r, _) = n.run(&n.job(&id));
    assert!(failed(&n.one(4, n.attested(&id, &r, &enclave(), 0, 0))).contains("Freivalds-track"));
    let (id2, _) = n.submit_tee(client, vec![2], 1);
    jobs.push(id2);
    let w2 = n.keys.iter().position(|k| addr(k) == n.job(&id2).worker).expect("worker");
    let (r2, _) = n.run(&n.job(&id2));
    assert!(failed(&n.one(w2, n.attested(&id2, &r2, &enclave(), u64::MAX, u64::MAX))).contains("after the block"));
    assert_eq!(n.job(&id2).status, JobStatus::Assigned);
    assert_eq!(n.native_total(&jobs), n.initial_total());
    // A chain whose genesis trusts no measurement has no TEE track.
    let mut plain = Net::new("tee-off", 3, 1);
    plain.bond_worker(2, 20_000, 1_000);
    assert!(failed(&plain.submit_tee(1, vec![1], 1).1).contains("no TEE track"));
}

#[test]
fn spot_checked_jobs_answer_before_they_finalize() {
    // ρ = 1: every provisional job is spot-checked.
    let mut n = Net::with_params("tee-spot", 4, 1, tee_params(8, 1_000_000));
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    let (id, _) = n.submit_tee(client, vec![3, 1, 4], 3);
    let (r, t) = n.run(&n.job(&id));
    assert!(n.one(worker, n.attested(&id, &r, &enclave(), n.time, n.time)).is_success());
    let at = n.height();
    n.block(vec![]);
    let ch = n.challenge(&id, at);
    let a = n.one(worker, MarketTx::Answer { job: id, response: respond(&n.engine.sku, &r, &t, &ch).expect("respond").encode() });
    assert!(a.is_success(), "{:?}", a.status);
    let JobStatus::Provisional { checked: true, until, .. } = n.job(&id).status else { panic!("not checked: {:?}", n.job(&id).status) };
    assert!(failed(&n.one(worker, MarketTx::Answer { job: id, response: vec![] })).contains("not awaiting a spot check"));
    n.until_past(until);
    assert!(n.one(worker, MarketTx::Finalize { job: id }).is_success());

    // Unanswered: not finalizable; expired after the deadline, the worker loses a tenth.
    let (id2, _) = n.submit_tee(client, vec![2, 7], 2);
    let (r2, _) = n.run(&n.job(&id2));
    assert!(n.one(worker, n.attested(&id2, &r2, &enclave(), n.time, n.time)).is_success());
    let at = n.height();
    assert!(failed(&n.one(client, MarketTx::Expire { job: id2 })).contains("too early"));
    n.until_past(at + 1 + 3);
    let JobStatus::Provisional { until, .. } = n.job(&id2).status else { panic!() };
    n.until_past(until);
    assert!(failed(&n.one(client, MarketTx::Finalize { job: id2 })).contains("spot check was not answered"));
    let client_before = n.balance(&addr(&n.keys[client]));
    let e = n.one(client, MarketTx::Expire { job: id2 });
    assert!(e.is_success(), "{:?}", e.status);
    let JobStatus::Slashed { taken, reason, .. } = n.job(&id2).status else { panic!() };
    assert!(reason.contains("spot check"), "{reason}");
    let s = Slash::of(20_000, 1_000);
    assert_eq!(taken, s.taken);
    assert_eq!(n.balance(&addr(&n.keys[client])), client_before - e.fee + n.job(&id2).fee + s.prover);
    assert_eq!(n.native_total(&[id, id2]), n.initial_total());
}

/// Blocks mixing both tracks (submits from 32 clients, plain and attested commits, answers, a
/// dispute of a provisional job, finalization by every client) give the same state root on 1
/// and 4 executor threads; the blocks with 32 senders run under Block-STM.
fn mixed_tracks(threads: usize) -> ([u8; 32], usize) {
    const CLIENTS: std::ops::Range<usize> = 6..38;
    let mut n = Net::with_params(&format!("tee-mixed-{threads}"), CLIENTS.end, threads, tee_params(6, 500_000));
    for w in 2..6 {
        n.bond_worker(w, 20_000 + w as u128, 1_000);
    }
    assert!(n.one(1, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    let txs: Vec<_> = CLIENTS
        .map(|c| {
            n.tx(c, MarketTx::SubmitJob { sku: n.sku, prompt: vec![c as u32 % 60 + 1, 2], max_new: 2, sla_blocks: 4, budget: FUNDS / 10, tee: c % 2 == 0 })
        })
        .collect();
    let ids: Vec<[u8; 32]> = txs.iter().map(|t| t.hash()).collect();
    for r in n.block(txs) {
        assert!(r.is_success(), "{:?}", r.status);
    }
    let who = |n: &Net, id: &[u8; 32]| n.keys.iter().position(|k| addr(k) == n.job(id).worker).expect("worker");
    let runs: Vec<_> = ids.iter().map(|id| n.run(&n.job(id))).collect();
    let commits: Vec<_> = ids
        .iter()
        .zip(&runs)
        .map(|(id, (r, _))| {
            let w = who(&n, id);
            let m = if n.job(id).tee { n.attested(id, r, &enclave(), n.time, n.time) } else { MarketTx::Commit { job: *id, receipt: cbor(r) } };
            n.tx(w, m)
        })
        .collect();
    n.block(commits);
    let at = n.height();
    n.block(vec![]);
    // Answers: every Freivalds-track job, and the spot-checked TEE ones.
    let mut answers = Vec::new();
    for (id, (r, t)) in ids.iter().zip(&runs) {
        let w = who(&n, id);
        let ch = n.challenge(id, at);
        let spot = aivm_runtime::market::tee::spot_checked(&ch.seed, 500_000);
        if !n.job(id).tee || spot {
            let m = MarketTx::Answer { job: *id, response: respond(&n.engine.sku, r, t, &ch).expect("respond").encode() };
            answers.push(n.tx(w, m));
        }
    }
    // A (false) dispute of a provisional job in the same block.
    let mut fake = runs[0].0.clone();
    fake.outputs[0][0] = (fake.outputs[0][0] + 1) % 64;
    fake.output_root = tokens_root(&fake.outputs);
    answers.push(n.tx(1, MarketTx::Dispute { job: ids[0], receipt: cbor(&fake) }));
    n.block(answers);
    n.until_past(at + 6);
    let finals: Vec<_> = CLIENTS.zip(&ids).map(|(c, id)| n.tx(c, MarketTx::Finalize { job: *id })).collect();
    n.block(finals);
    let settled = ids.iter().filter(|id| matches!(n.job(id).status, JobStatus::Settled { .. })).count();
    assert!(settled >= 16, "the Freivalds jobs and the finalized TEE jobs: {settled}");
    assert_eq!(n.native_total(&ids), n.initial_total());
    (n.chain.head().expect("head").state_root, n.parallel_blocks)
}

#[test]
fn block_stm_agrees_with_sequential_on_both_tracks() {
    let (one, _) = mixed_tracks(1);
    let (four, parallel) = mixed_tracks(4);
    assert_eq!(one, four, "state roots differ between 1 and 4 threads");
    assert!(parallel > 0, "Block-STM ran no block speculatively");
}

/// Reads a job's result for contracts: input = job id (32 bytes) and a flag byte (accept
/// provisional); returns `job_result`'s status (i32 LE) and the register.
const JOB_READER: &str = r#"(module
  (import "aivm" "input_read" (func $input_read (param i32)))
  (import "aivm" "job_result" (func $job (param i32 i32) (result i32)))
  (import "aivm" "result_read" (func $result_read (param i32)))
  (import "aivm" "return_data" (func $ret (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "read") (local $n i32) (local $len i32)
    (call $input_read (i32.const 0))
    (local.set $n (call $job (i32.const 0) (i32.load8_u (i32.const 32))))
    (i32.store (i32.const 100) (local.get $n))
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (call $result_read (i32.const 104)) (local.set $len (local.get $n))))
    (call $ret (i32.const 100) (i32.add (i32.const 4) (local.get $len)))))"#;

#[test]
fn contracts_read_provisional_and_final_results() {
    let mut n = Net::with_params("tee-read", 4, 1, tee_params(6, 0));
    let (client, worker) = (1, 2);
    let deploy = n.tx_with(3, Payload::Deploy { code: wat::parse_str(JOB_READER).expect("wat"), args: vec![] }, 2_000_000_000);
    let d = n.block(vec![deploy]).remove(0);
    assert!(d.is_success(), "{:?}", d.status);
    let reader = *d.contract_address.expect("address");
    let read = |n: &mut Net, id: &[u8; 32], accept: bool| -> (i32, Vec<u8>) {
        let t = n.tx_with(3, Payload::Call { contract: reader, entry: "read".into(), args: [&id[..], &[accept as u8][..]].concat(), value: 0 }, 10_000_000);
        let r = n.block(vec![t]).remove(0);
        assert!(r.is_success(), "{:?}", r.status);
        (i32::from_le_bytes(r.output[..4].try_into().expect("status")), r.output[4..].to_vec())
    };
    n.bond_worker(worker, 20_000, 1_000);
    let (id, _) = n.submit_tee(client, vec![3, 1], 3);
    assert_eq!(read(&mut n, &id, true).0, -1, "nothing before the commit");
    let (r, _) = n.run(&n.job(&id));
    assert!(n.one(worker, n.attested(&id, &r, &enclave(), n.time, n.time)).is_success());
    let tokens: Vec<u8> = r.outputs[0].iter().flat_map(|t| t.to_le_bytes()).collect();
    assert_eq!(read(&mut n, &id, false).0, -1, "provisional is refused unless accepted");
    let (len, got) = read(&mut n, &id, true);
    assert_eq!((len as usize, got[0], &got[1..]), (1 + tokens.len(), 1, &tokens[..]), "provisional, with its output");
    let JobStatus::Provisional { until, .. } = n.job(&id).status else { panic!() };
    n.until_past(until);
    // Final once the window has passed, even before anyone finalizes it.
    let (_, got) = read(&mut n, &id, false);
    assert_eq!((got[0], &got[1..]), (2, &tokens[..]));
    assert!(n.one(worker, MarketTx::Finalize { job: id }).is_success());
    assert_eq!(read(&mut n, &id, false).1[0], 2);
    assert_eq!(read(&mut n, &[9; 32], true).0, -1, "no such job");
}

/// HMM_QUOTE from a Rust contract (seed 002 Listing 1's `submitJob`): `contracts/escrow`'s
/// `hire` quotes the work on the model's pool, keeps the price for the quoted worker out of
/// the value sent and returns the rest; the quote is the pool's `amount_in` and its worker one
/// with room; no worker with room (or no pool) is a clear failure that moves nothing.
#[test]
fn a_contract_quotes_the_pool_and_escrows_the_price_for_a_worker() {
    let mut n = Net::new("quote", 4, 1);
    let (client, deployer, sku) = (1, 3, n.sku);
    let code = aivm_testkit::contract_wasm("escrow").expect("escrow.wasm (run `make contracts`)");
    let d = n.tx_with(deployer, Payload::Deploy { code, args: vec![] }, 2_500_000_000);
    let d = n.block(vec![d]).remove(0);
    assert!(d.is_success(), "{:?}", d.status);
    let escrow = *d.contract_address.expect("address");
    #[derive(serde::Serialize)]
    struct Hire {
        #[serde(with = "serde_bytes")]
        sku: [u8; 32],
        units: u64,
        blocks: u64,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Hired {
        id: u64,
        /// The SDK writes addresses as hex.
        worker: String,
        price: u128,
    }
    let hire = |n: &mut Net, sku: [u8; 32], units: u64, value: u128| {
        let args = cbor(&Hire { sku, units, blocks: 10 });
        let t = n.tx_with(client, Payload::Call { contract: escrow, entry: "hire".into(), args, value }, 50_000_000);
        n.block(vec![t]).remove(0)
    };
    // No worker yet: no quote, and nothing moves but the fee.
    let before = n.balance(&addr(&n.keys[client]));
    let r = hire(&mut n, sku, 40, 1_000);
    assert!(failed(&r).contains("no quote"), "{:?}", r.status);
    assert_eq!(n.balance(&addr(&n.keys[client])), before - r.fee);
    n.bond_worker(2, 20_000, 100);
    let pool: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
    let price = amount_in(40, pool.native, pool.units, pool.fee_bps).expect("quote");
    let before = n.balance(&addr(&n.keys[client]));
    let r = hire(&mut n, sku, 40, price + 77);
    assert!(r.is_success(), "{:?}", r.status);
    let hired: Hired = ciborium::from_reader(&r.output[..]).expect("output");
    assert_eq!((hired.id, hired.worker, hired.price), (0, hex::encode(addr(&n.keys[2])), price), "the only worker with room, at the pool's price");
    assert_eq!(n.balance(&escrow), price, "the escrow keeps the price");
    assert_eq!(n.balance(&addr(&n.keys[client])), before - price - r.fee, "and sends back the rest");
    // Too little sent, more units than the worker has room for, an unknown model: refused.
    assert!(failed(&hire(&mut n, sku, 40, price - 1)).contains("the quote is"));
    assert!(failed(&hire(&mut n, sku, 101, price * 3)).contains("no quote"));
    assert!(failed(&hire(&mut n, [7; 32], 1, 1_000)).contains("no quote"));
    assert_eq!(n.balance(&escrow), price);
}

/// Swaps from a contract: input = SKU (32 bytes), a side byte (0 sells native, 1 sells
/// units), amount and min_out (16 bytes LE each); returns `hmm_swap`'s status (i32 LE).
const SWAPPER: &str = r#"(module
  (import "aivm" "input_read" (func $input_read (param i32)))
  (import "aivm" "hmm_swap" (func $swap (param i32 i32 i32 i32) (result i32)))
  (import "aivm" "return_data" (func $ret (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "swap")
    (call $input_read (i32.const 0))
    (i32.store (i32.const 100) (call $swap (i32.const 0) (i32.load8_u (i32.const 32)) (i32.const 33) (i32.const 49)))
    (call $ret (i32.const 100) (i32.const 4))))"#;

impl Net {
    fn deploy(&mut self, who: usize, code: Vec<u8>) -> [u8; 32] {
        let d = self.tx_with(who, Payload::Deploy { code, args: vec![] }, 2_500_000_000);
        let d = self.block(vec![d]).remove(0);
        assert!(d.is_success(), "{:?}", d.status);
        let address = *d.contract_address.expect("address");
        self.contracts.push(address);
        address
    }

    fn units(&self, owner: &[u8; 32]) -> u128 {
        self.get(MarketKey::Units(&self.sku, owner)).unwrap_or(0)
    }

    fn swap_call(&mut self, who: usize, swapper: [u8; 32], sell_units: bool, amount: u128, min_out: u128, value: u128) -> aivm_runtime::SignedTransaction {
        let args = [&self.sku[..], &[sell_units as u8][..], &amount.to_le_bytes()[..], &min_out.to_le_bytes()[..]].concat();
        self.tx_with(who, Payload::Call { contract: swapper, entry: "swap".into(), args, value }, 20_000_000)
    }
}

fn status(r: &Receipt) -> i32 {
    assert!(r.is_success(), "{:?}", r.status);
    i32::from_le_bytes(r.output[..4].try_into().expect("status"))
}

/// HMM_SWAP from a contract (seed 002 Table 4): carried out after the call with the contract
/// as the trader, exactly as a `Swap` transaction would trade; slippage fails the whole call
/// and moves nothing (the value sent stays with the caller); selling more native than the
/// contract holds is refused in the call; several in one block agree on 1 and 4 threads.
#[test]
fn a_contract_trades_against_the_pool() {
    let run = |threads: usize| {
        let mut n = Net::new(&format!("swap-{threads}"), 3, threads);
        let swapper = n.deploy(2, wat::parse_str(SWAPPER).expect("wat"));
        let client = addr(&n.keys[1]);

        let mut pool: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
        let out = pool.clone().swap(Side::Native, 5_000).expect("swap");
        let before = n.balance(&client);
        let t = n.swap_call(1, swapper, false, 5_000, out, 5_000);
        let r = n.block(vec![t]).remove(0);
        assert_eq!(status(&r), 0);
        assert_eq!(n.units(&swapper), out, "the contract holds the units it bought");
        assert_eq!(n.balance(&swapper), 0, "and paid the value it was sent into the pool");
        assert_eq!(n.balance(&client), before - 5_000 - r.fee);
        pool.swap(Side::Native, 5_000).expect("swap");
        assert_eq!(n.get::<Pool>(MarketKey::Pool(&n.sku)).expect("pool"), pool, "the pool moved as a Swap transaction moves it");
        assert!(r.events.iter().all(|e| e.contract != swapper), "no event from the contract itself");

        // Below min_out: the call fails as a whole; the value is not taken.
        let before = n.balance(&client);
        let t = n.swap_call(1, swapper, false, 5_000, out * 2, 5_000);
        let r = n.block(vec![t]).remove(0);
        assert!(failed(&r).contains("market action"), "{:?}", r.status);
        assert_eq!((n.balance(&client), n.balance(&swapper), n.units(&swapper)), (before - r.fee, 0, out));
        // More native than the contract can pay: refused inside the call (−1), nothing recorded.
        let t = n.swap_call(1, swapper, false, 5_001, 0, 5_000);
        let r = n.block(vec![t]).remove(0);
        assert_eq!(status(&r), -1);
        assert_eq!(n.balance(&swapper), 5_000, "the call kept the value it was sent");

        // Sell the units back, two calls in one block (Block-STM orders them).
        let (a, b) = (out / 2, out - out / 2);
        let p: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
        let mut expect = p.clone();
        let got = expect.swap(Side::Units, a).expect("swap") + expect.swap(Side::Units, b).expect("swap");
        let txs = vec![n.swap_call(1, swapper, true, a, 0, 0), n.swap_call(1, swapper, true, b, 0, 0)];
        let rs = n.block(txs);
        assert!(rs.iter().all(|r| status(r) == 0));
        assert_eq!((n.units(&swapper), n.balance(&swapper)), (0, 5_000 + got));
        let t = n.swap_call(1, swapper, true, 1, 0, 0);
        assert!(failed(&n.block(vec![t]).remove(0)).contains("market action"), "no units left to sell");
        n.chain.head().expect("head").state_root
    };
    assert_eq!(run(1), run(4), "state roots differ between 1 and 4 threads");
}

/// A Rust contract buys a verified inference from the chain's market (`contracts/escrow`'s
/// `ask`: quote, `market::submit_job` with the quote as budget, the rest sent back): the job
/// is the market's — assigned to a staked worker, challenged, settled with the exact split —
/// its id derives from the transaction, and the contract reads the verified answer. A job the
/// market refuses (no worker with room) fails the call and moves nothing.
#[test]
fn a_contract_submits_a_job_the_chain_verifies() {
    let mut n = Net::new("ask", 4, 1);
    let (client, worker) = (1, 2);
    let escrow = n.deploy(3, aivm_testkit::contract_wasm("escrow").expect("escrow.wasm (run `make contracts`)"));
    #[derive(serde::Deserialize, Debug)]
    struct Asked {
        job: String,
        fee: u128,
    }
    let prompt = vec![3, 9, 27, 4];
    let ask = |n: &mut Net, value: u128| {
        let args = cbor(&AskArgs { sku: n.sku, prompt: prompt.clone(), max_new: 5, sla_blocks: 4 });
        let t = n.tx_with(client, Payload::Call { contract: escrow, entry: "ask".into(), args, value }, 60_000_000);
        let hash = t.hash();
        (hash, n.block(vec![t]).remove(0))
    };
    let before = n.balance(&addr(&n.keys[client]));
    let (_, r) = ask(&mut n, 1_000_000);
    assert!(failed(&r).contains("no quote"), "{:?}", r.status);
    assert_eq!(n.balance(&addr(&n.keys[client])), before - r.fee, "nothing moved but the fee");

    n.bond_worker(worker, 20_000, 100);
    let pool: Pool = n.get(MarketKey::Pool(&n.sku)).expect("pool");
    let price = amount_in(4 + 5, pool.native, pool.units, pool.fee_bps).expect("quote");
    let before = n.balance(&addr(&n.keys[client]));
    let (hash, r) = ask(&mut n, price + 1_000);
    assert!(r.is_success(), "{:?}", r.status);
    let asked: Asked = ciborium::from_reader(&r.output[..]).expect("output");
    let id = aivm::contract_job_id(&hash, &escrow, 0);
    assert_eq!((asked.job, asked.fee), (hex::encode(id), price));
    assert_eq!(n.balance(&addr(&n.keys[client])), before - price - r.fee, "the client pays the quote, the rest comes back");
    assert_eq!(n.balance(&escrow), 0, "the fee is in the market's escrow, not the contract's");
    let job = n.job(&id);
    assert_eq!((job.client, job.worker, job.fee, job.units, &job.prompt), (escrow, addr(&n.keys[worker]), price, 9, &prompt));
    assert!(r.events.iter().any(|e| e.topic == b"job.assigned" && e.data[..32] == id), "the worker sees its assignment in the receipt");

    let read = |n: &mut Net| -> Option<Vec<u32>> {
        let t =
            n.tx_with(client, Payload::Call { contract: escrow, entry: "answer".into(), args: cbor(&serde_bytes::ByteArray::new(id)), value: 0 }, 20_000_000);
        let r = n.block(vec![t]).remove(0);
        assert!(r.is_success(), "{:?}", r.status);
        ciborium::from_reader(&r.output[..]).expect("answer")
    };
    assert_eq!(read(&mut n), None, "no answer before it is verified");
    let (receipt, trace) = n.run(&job);
    let a = n.commit_and_answer(worker, id, &receipt, &trace);
    assert!(a.is_success(), "{:?}", a.status);
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    let split = FeeSplit::of(price);
    let tr: Treasury = n.get(MarketKey::Treasury).expect("treasury");
    assert_eq!((tr.validators, tr.verifiers, tr.burned), (split.validators, split.verifiers, split.burn), "settled with the exact split");
    assert_eq!(n.worker_bond(worker).credits, 4 + receipt.outputs[0].len() as u64);
    assert_eq!(read(&mut n), Some(receipt.outputs[0].clone()), "the contract reads the verified answer");
}

/// The validators' 8 % of settled fees accrues in the treasury and is paid out at the end of
/// every epoch, by stake (100 : 200 here), after the block's transactions; rounding leaves
/// at most a unit per validator in the pot; native is conserved throughout.
#[test]
fn the_validators_share_is_paid_by_stake_at_each_epoch_end() {
    use aivm_runtime::market::treasury::{split_by_stake, EpochRewards};
    let mut n = Net::new("rewards", 5, 1);
    let (v1, v2) = (addr(&n.keys[3]), addr(&n.keys[4]));
    n.chain.rewards = Some(EpochRewards { epoch_length: 4, validators: vec![(v1, stake_key(&v1)), (v2, stake_key(&v2))] });
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 20_000, 1_000);
    // Units made dear (a large buy), so the job's 8 % is worth splitting.
    let sku = n.sku;
    assert!(n.one(0, MarketTx::Swap { sku, side: Side::Native, amount_in: 1_000_000_000, min_out: 0 }).is_success());
    let (id, r) = n.submit(client, vec![3, 9, 27, 4, 5, 6], 5);
    assert!(r.is_success(), "{:?}", r.status);
    let job = n.job(&id);
    let (receipt, trace) = n.run(&job);
    assert!(n.commit_and_answer(worker, id, &receipt, &trace).is_success());
    let pot = FeeSplit::of(job.fee).validators;
    assert!(pot > 1_000, "{pot}");
    // Until the next epoch end the share waits in the treasury.
    if !n.height().is_multiple_of(4) {
        let tr: Treasury = n.get(MarketKey::Treasury).expect("treasury");
        assert_eq!(tr.validators, pot);
        assert_eq!((n.balance(&v1), n.balance(&v2)), (FUNDS, FUNDS));
    }
    while !n.height().is_multiple_of(4) {
        n.block(vec![]);
    }
    let shares = split_by_stake(pot, &[100, 200]);
    assert_eq!((n.balance(&v1), n.balance(&v2)), (FUNDS + shares[0], FUNDS + shares[1]));
    let tr: Treasury = n.get(MarketKey::Treasury).expect("treasury");
    assert_eq!(tr.validators, pot - shares[0] - shares[1]);
    assert!(tr.validators < 2, "at most a unit per validator stays");
    assert_eq!(n.native_total(&[id]), n.initial_total());
    // The next epoch end has (almost) nothing to pay.
    for _ in 0..4 {
        n.block(vec![]);
    }
    assert_eq!((n.balance(&v1), n.balance(&v2)), (FUNDS + shares[0], FUNDS + shares[1]));
}

/// Quality (`spec/market.md` §5a): a worker that commits late twice ends its epoch over the
/// 10 % miss threshold and loses 5 % of its stake, burned, at its first outcome in a later
/// epoch, once for that epoch; a worker that is on time is never charged; nothing is created
/// or lost.
#[test]
fn a_worker_late_too_often_loses_five_percent_in_the_next_epoch() {
    const EPOCH: u64 = 40;
    let mut n = Net::with_params("quality", 4, 1, MarketParams { quality_epoch_blocks: EPOCH, ..params() });
    let (client, worker) = (1, 2);
    n.bond_worker(worker, 30_000, 1_000);
    let role = Role::Worker { sku: n.sku };
    let me = addr(&n.keys[worker]);
    let mut ids = Vec::new();
    let job = |n: &mut Net, ids: &mut Vec<[u8; 32]>, wait: usize| {
        let (id, _) = n.submit(client, vec![5, 6, 7], 2);
        assert_eq!(n.job(&id).worker, me);
        for _ in 0..wait {
            n.block(vec![]);
        }
        let (r, t) = n.run(&n.job(&id));
        let a = n.commit_and_answer(worker, id, &r, &t);
        assert!(a.is_success() && matches!(n.job(&id).status, JobStatus::Settled { .. }), "{:?}", a.status);
        ids.push(id);
        a
    };
    // On time (the SLA is 4 blocks): no miss.
    job(&mut n, &mut ids, 0);
    let b: Bond = n.get(MarketKey::Bond(&role, &me)).expect("bond");
    assert_eq!((b.quality_miss_bps, b.bonded), (0, 30_000));
    // Two commits after the SLA (within twice it: not a timeout): 625, then 1 211 > 1 000.
    job(&mut n, &mut ids, 5);
    job(&mut n, &mut ids, 5);
    let b: Bond = n.get(MarketKey::Bond(&role, &me)).expect("bond");
    assert_eq!((b.quality_miss_bps, b.bonded, b.quality_epoch), (1_211, 30_000, 0), "no charge inside the epoch");
    assert!(n.height() < EPOCH);
    while n.height() < EPOCH {
        n.block(vec![]);
    }
    let burned_before = n.get::<Treasury>(MarketKey::Treasury).unwrap_or_default().burned;
    let a = job(&mut n, &mut ids, 0);
    let b: Bond = n.get(MarketKey::Bond(&role, &me)).expect("bond");
    assert_eq!(b.bonded, 30_000 - 1_500, "5 % of its stake");
    assert_eq!(b.quality_miss_bps, 1_136, "and the on-time job scored");
    assert!(a.events.iter().any(|e| e.topic.starts_with(b"worker.quality_slashed")), "{:?}", a.events);
    let job_burn = FeeSplit::of(n.job(ids.last().expect("job")).fee).burn;
    let burned = n.get::<Treasury>(MarketKey::Treasury).unwrap_or_default().burned;
    assert!(burned >= burned_before + 1_500 + job_burn, "the penalty is burned");
    // Once per epoch: another outcome in the same epoch charges nothing more.
    job(&mut n, &mut ids, 0);
    let b: Bond = n.get(MarketKey::Bond(&role, &me)).expect("bond");
    assert_eq!(b.bonded, 28_500);
    assert_eq!(n.native_total(&ids), n.initial_total());
}

/// Verifiers paid per re-execution (`spec/market.md` §6d): a sampled verifier that re-ran a
/// settled job opens the challenged GEMMs from its own trace and is paid the job's verifiers'
/// share from the pot; one that attests without the trace, or never answers, loses 10 % of its
/// bond; attesting twice, unsampled, unbonded, or too early is refused; nothing is created.
#[test]
fn a_verifier_is_paid_for_a_re_execution_it_proves() {
    let p = MarketParams { answer_window: 8, dispute_window: 30, unbonding_blocks: 100, verify_sample_ppm: 1_000_000, ..params() };
    let mut n = Net::with_params("attest", 7, 1, p.clone());
    let (client, worker, honest, lazy, silent, outsider) = (1, 2, 3, 4, 5, 6);
    n.bond_worker(worker, 30_000, 1_000);
    // Units made dear (the test pool starts at one native per unit), so the job's 5 % is not 0.
    assert!(n.one(0, MarketTx::Swap { sku: n.sku, side: Side::Native, amount_in: 30 * POOL, min_out: 0 }).is_success());
    let (id, _) = n.submit(client, vec![5, 6, 7], 3);
    let (r, t) = n.run(&n.job(&id));
    assert!(n.commit_and_answer(worker, id, &r, &t).is_success());
    assert!(matches!(n.job(&id).status, JobStatus::Settled { .. }));
    assert!(failed(&n.one(honest, MarketTx::Attest { job: id })).contains("below the minimum"), "unbonded");
    for v in [honest, lazy, silent] {
        assert!(n.one(v, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    }
    let attest = |n: &mut Net, v: usize| -> u64 {
        let a = n.one(v, MarketTx::Attest { job: id });
        assert!(a.is_success(), "{:?}", a.status);
        n.height()
    };
    let challenge_of = |n: &Net, v: usize, at: u64| {
        let beacon: serde_bytes::ByteArray<32> = n.get(MarketKey::Beacon(at + 1)).expect("beacon");
        aivm_runtime::market::attest::challenge(&beacon, &id, &addr(&n.keys[v]), p.attest_gemms)
    };
    let at = attest(&mut n, honest);
    assert!(failed(&n.one(honest, MarketTx::AttestAnswer { job: id, response: vec![] })).contains("too early"), "the challenge is not drawn yet");
    assert!(failed(&n.one(honest, MarketTx::Attest { job: id })).contains("already attested"));
    attest(&mut n, lazy);
    let at_silent = attest(&mut n, silent);
    n.block(vec![]);
    // The honest verifier re-ran the job: its own trace answers.
    let (mine, my_trace) = n.run(&n.job(&id));
    let resp = respond(&n.engine.sku, &mine, &my_trace, &challenge_of(&n, honest, at)).expect("respond").encode();
    let pot = n.get::<Treasury>(MarketKey::Treasury).expect("treasury").verifiers;
    let before = n.balance(&addr(&n.keys[honest]));
    let a = n.one(honest, MarketTx::AttestAnswer { job: id, response: resp });
    assert!(a.is_success(), "{:?}", a.status);
    let pay = FeeSplit::of(n.job(&id).fee).verifiers.min(pot);
    assert!(pay > 0, "fee {} pot {pot}", n.job(&id).fee);
    assert_eq!(n.balance(&addr(&n.keys[honest])), before - a.fee + pay, "paid the job's verifiers' share");
    assert_eq!(n.get::<Treasury>(MarketKey::Treasury).expect("treasury").verifiers, pot - pay);
    assert!(failed(&n.one(honest, MarketTx::AttestAnswer { job: id, response: vec![] })).contains("closed"));
    // The lazy one answers with the openings of the wrong GEMMs (the worker's challenge's).
    let wrong = respond(&n.engine.sku, &r, &t, &challenge_of(&n, honest, at)).expect("respond").encode();
    let a = n.one(lazy, MarketTx::AttestAnswer { job: id, response: wrong });
    assert!(a.is_success(), "{:?}", a.status);
    let b: Bond = n.get(MarketKey::Bond(&Role::Verifier, &addr(&n.keys[lazy]))).expect("bond");
    assert_eq!(b.bonded, 45_000, "a false attestation costs a tenth");
    // The silent one: expired by an outsider after the deadline, who gets the prover's share.
    assert!(failed(&n.one(outsider, MarketTx::ExpireAttestation { job: id, verifier: addr(&n.keys[silent]) })).contains("too early"));
    while n.height() < at_silent + 1 + p.answer_window {
        n.block(vec![]);
    }
    let before = n.balance(&addr(&n.keys[outsider]));
    let e = n.one(outsider, MarketTx::ExpireAttestation { job: id, verifier: addr(&n.keys[silent]) });
    assert!(e.is_success(), "{:?}", e.status);
    let s = Slash::of(50_000, 1_000);
    assert_eq!(n.balance(&addr(&n.keys[outsider])), before - e.fee + s.prover);
    let b: Bond = n.get(MarketKey::Bond(&Role::Verifier, &addr(&n.keys[silent]))).expect("bond");
    assert_eq!(b.bonded, 50_000 - s.taken);
    assert_eq!(n.native_total(&[id]), n.initial_total());
}

/// At the default α a verifier is sampled for few jobs: attesting an unsampled one is refused.
#[test]
fn attestations_are_limited_to_the_verifiers_sample() {
    let p = MarketParams { dispute_window: 20, unbonding_blocks: 100, verify_sample_ppm: 0, ..params() };
    let mut n = Net::with_params("attest-sample", 4, 1, p);
    let (client, worker, verifier) = (1, 2, 3);
    n.bond_worker(worker, 30_000, 1_000);
    let (id, _) = n.submit(client, vec![5, 6, 7], 2);
    let (r, t) = n.run(&n.job(&id));
    assert!(n.commit_and_answer(worker, id, &r, &t).is_success());
    assert!(n.one(verifier, MarketTx::Bond { role: Role::Verifier, amount: 50_000, capacity: 0 }).is_success());
    assert!(failed(&n.one(verifier, MarketTx::Attest { job: id })).contains("not in this verifier's sample"));
}

/// Work rewards (`spec/market.md` §4a, seed 003 §12): at an epoch's end the inflation is
/// minted to the workers by the verified tokens they served in the epoch, exactly (the
/// rounding is not minted), counted in the treasury's `minted`; the credits start again, and
/// an epoch without work mints nothing.
#[test]
fn inflation_is_paid_to_workers_by_verified_tokens() {
    use aivm_runtime::market::treasury::{split_by_stake, EpochRewards};
    const EPOCH: u64 = 30;
    const INFLATION: u128 = 1_000_003;
    let mut n = Net::with_params("inflation", 5, 1, MarketParams { inflation_per_epoch: INFLATION, ..params() });
    n.chain.rewards = Some(EpochRewards { epoch_length: EPOCH, validators: Vec::new() });
    let (client, w1, w2) = (1, 2, 3);
    n.bond_worker(w1, 20_000, 1_000);
    let mut served: std::collections::BTreeMap<[u8; 32], u128> = Default::default();
    let mut ids = Vec::new();
    for prompt in [vec![3, 9, 27], vec![4, 5, 6, 7, 8]] {
        let (id, _) = n.submit(client, prompt, 3);
        let job = n.job(&id);
        let who = if job.worker == addr(&n.keys[w1]) { w1 } else { w2 };
        let (r, t) = n.run(&job);
        assert!(n.commit_and_answer(who, id, &r, &t).is_success());
        *served.entry(job.worker).or_default() += r.prompts.iter().chain(&r.outputs).map(|s| s.len() as u128).sum::<u128>();
        ids.push(id);
        if ids.len() == 1 {
            // The second job goes to the other worker: the first leaves the set.
            n.bond_worker(w2, 20_000, 1_000);
            assert!(n.one(w1, MarketTx::Unbond { role: Role::Worker { sku: n.sku }, amount: 20_000 }).is_success());
        }
    }
    assert_eq!(served.len(), 2, "both workers served");
    let before: Vec<u128> = served.keys().map(|w| n.balance(w)).collect();
    assert!(n.height() < EPOCH);
    while n.height() < EPOCH {
        n.block(vec![]);
    }
    let shares = split_by_stake(INFLATION, &served.values().copied().collect::<Vec<_>>());
    for ((w, b), s) in served.keys().zip(&before).zip(&shares) {
        assert_eq!(n.balance(w), b + s, "paid by verified tokens");
    }
    let tr: Treasury = n.get(MarketKey::Treasury).expect("treasury");
    assert_eq!(tr.minted, shares.iter().sum::<u128>());
    assert!(INFLATION - tr.minted < served.len() as u128, "the rounding is not minted");
    assert_eq!(n.native_total(&ids), n.initial_total() + tr.minted);
    // An epoch without work mints nothing.
    while n.height() < 2 * EPOCH {
        n.block(vec![]);
    }
    assert_eq!(n.get::<Treasury>(MarketKey::Treasury).expect("treasury").minted, tr.minted);
}
