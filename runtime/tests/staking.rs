//! Validator staking through transactions on a real chain (RocksDB, Block-STM): bonding with
//! a proof of possession, refusals that move nothing, unbonding that waits, and the active
//! set each epoch computes from the stake (`spec/consensus.md`, "Validator lifecycle").

use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::staking::epoch::{epoch_set, genesis_entries};
use aivm_runtime::staking::{decode_stake, stake_key, StakingKey, StakingParams, StakingTx, Validator, POP_DST, SET_LAG};
use aivm_runtime::{Chain, ChainConfig, ChainVm, ExecConfig, Genesis, Payload, Receipt, StateValue, Transaction, TxStatus};
use ed25519_dalek::SigningKey;
use std::path::PathBuf;

const CHAIN_ID: u64 = 11;
const FUNDS: u128 = 1_000_000_000;
const GAS: u64 = 50_000_000;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A validator's keys: ed25519 identity (its account) and BLS consensus key.
struct Keys {
    identity: SigningKey,
    bls: blst::min_pk::SecretKey,
}

impl Keys {
    fn new(i: u8) -> Self {
        let bls = blst::min_pk::SecretKey::key_gen(&[i.wrapping_add(100); 32], &[]).expect("bls key");
        Keys { identity: SigningKey::from_bytes(&[i + 1; 32]), bls }
    }
    fn id(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }
    fn consensus(&self) -> Vec<u8> {
        self.bls.sk_to_pk().compress().to_vec()
    }
    fn pop(&self) -> Vec<u8> {
        self.bls.sign(&self.bls.sk_to_pk().compress(), POP_DST, &[]).compress().to_vec()
    }
    fn bond(&self, amount: u128) -> StakingTx {
        StakingTx::Bond { consensus_key: self.consensus(), pop: self.pop(), amount, p2p: "127.0.0.1:9000".into() }
    }
}

const PARAMS: StakingParams = StakingParams {
    min_stake: 100,
    unbonding_blocks: 3,
    max_validators: 5,
    active_set_size: 2,
    epoch_length: 4,
    jail: aivm_runtime::staking::JailParams { downtime_min_slots: 2, downtime_max_missed_bps: 5_000, jail_epochs: 1 },
};

struct Net {
    chain: Chain,
    keys: Vec<Keys>,
    nonces: Vec<u64>,
    time: u64,
    _dir: TempDir,
}

impl Net {
    /// Validators 0 and 1 at genesis (stakes 300 and 200); 2..6 funded accounts.
    fn new(name: &str, threads: usize) -> Self {
        let dir = TempDir(std::env::temp_dir().join(format!("aivm-staking-{name}-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&dir.0);
        let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
        let mut chain = Chain::open(&dir.0, ChainVm::new(vm), ChainConfig { chain_id: CHAIN_ID, fee_collector: [0xfe; 32] }).expect("chain");
        chain.exec = ExecConfig { threads, parallel_min_txs: 0 };
        let keys: Vec<Keys> = (0..7).map(Keys::new).collect();
        let entries = genesis_entries(
            &PARAMS,
            &[(keys[0].id(), keys[0].consensus(), 300, "127.0.0.1:1".into()), (keys[1].id(), keys[1].consensus(), 200, "127.0.0.1:2".into())],
        );
        let g = Genesis { accounts: keys.iter().map(|k| (k.id(), FUNDS)).collect(), time_ms: 0, entries };
        chain.init_genesis(&g).expect("genesis");
        Net { chain, nonces: vec![0; keys.len()], keys, time: 0, _dir: dir }
    }

    fn tx(&mut self, who: usize, s: StakingTx) -> aivm_runtime::SignedTransaction {
        let t = Transaction {
            chain_id: CHAIN_ID,
            sender: self.keys[who].id(),
            nonce: self.nonces[who],
            gas_limit: GAS,
            gas_price: 1,
            payload: Payload::Staking(s),
        };
        self.nonces[who] += 1;
        t.sign(&self.keys[who].identity)
    }

    fn block(&mut self, txs: Vec<aivm_runtime::SignedTransaction>) -> Vec<Receipt> {
        self.time += 1000;
        let b = self.chain.execute(txs, self.time).expect("execute");
        let receipts = b.record.receipts.clone();
        self.chain.commit(b).expect("commit");
        receipts
    }

    fn one(&mut self, who: usize, s: StakingTx) -> Receipt {
        let t = self.tx(who, s);
        self.block(vec![t]).remove(0)
    }

    /// Empty blocks up to `height`.
    fn advance_to(&mut self, height: u64) {
        while self.height() < height {
            self.block(Vec::new());
        }
    }

    fn height(&self) -> u64 {
        self.chain.head().expect("head").height
    }

    fn stake(&self, who: usize) -> u128 {
        decode_stake(self.chain.store().get(&stake_key(&self.keys[who].id())).expect("read").as_ref()).unwrap_or(0)
    }

    fn validator(&self, who: usize) -> Option<Validator> {
        match self.chain.store().get(&StakingKey::Validator(&self.keys[who].id()).state_key()).expect("read") {
            Some(StateValue::Bytes(b)) => Some(ciborium::from_reader(&b[..]).expect("decode")),
            _ => None,
        }
    }

    fn balance(&self, who: usize) -> u128 {
        self.chain.account(&self.keys[who].id()).expect("read").map_or(0, |a| a.balance)
    }

    /// Identities (as key indices) of an epoch's recorded set.
    fn set(&self, epoch: u64) -> Vec<usize> {
        let set = epoch_set(epoch, |k| self.chain.store().get(k).expect("read")).expect("epoch set");
        set.validators.iter().map(|id| self.keys.iter().position(|k| k.id() == **id).expect("known key")).collect()
    }
}

fn ok(r: &Receipt) {
    assert_eq!(r.status, TxStatus::Success, "{r:?}");
}

/// Why a transaction failed (or was refused before executing: one that cannot pay its value).
fn failed(r: &Receipt) -> String {
    match &r.status {
        TxStatus::Failed { message, .. } => message.clone(),
        TxStatus::Rejected { reason } => reason.clone(),
        s => panic!("expected a failure, got {s:?}"),
    }
}

#[test]
fn a_bonded_validator_enters_the_next_epoch_and_the_threads_agree() {
    let mut roots = Vec::new();
    for threads in [1, 4] {
        let mut n = Net::new(&format!("enter-{threads}"), threads);
        assert_eq!(n.set(0), vec![0, 1], "genesis: most stake first");
        let before = n.balance(2);
        let bond = n.tx(2, n.keys[2].bond(500));
        let r = n.block(vec![bond]).remove(0);
        ok(&r);
        assert_eq!(n.stake(2), 500);
        assert_eq!(n.balance(2), before - 500 - r.gas_used as u128, "the stake and the fee leave the balance");
        assert_eq!(n.validator(2).map(|v| v.consensus_key), Some(n.keys[2].consensus()));
        // Adding stake with the same key.
        ok(&n.one(2, n.keys[2].bond(50)));
        assert_eq!(n.stake(2), 550);
        n.advance_to(4);
        assert_eq!(n.set(1), vec![0, 1], "sets are recorded SET_LAG epochs ahead: epoch 1's is genesis'");
        assert_eq!(n.set(1 + SET_LAG), vec![2, 0], "the new validator has the most stake; the set size is 2");
        roots.push(n.chain.head().expect("head").state_root);
    }
    assert_eq!(roots[0], roots[1], "1 and 4 threads give the same state");
}

#[test]
fn bad_bonds_are_refused_and_move_nothing() {
    let mut n = Net::new("bad", 1);
    let (k2, k3) = (n.keys[2].consensus(), n.keys[3].pop());
    let cases: Vec<(usize, StakingTx, &str)> = vec![
        (2, StakingTx::Bond { consensus_key: k2.clone(), pop: k3, amount: 500, p2p: "127.0.0.1:9".into() }, "proof of possession"),
        (2, StakingTx::Bond { consensus_key: k2[..47].to_vec(), pop: n.keys[2].pop(), amount: 500, p2p: "127.0.0.1:9".into() }, "48 bytes"),
        (2, StakingTx::Bond { consensus_key: n.keys[0].consensus(), pop: n.keys[0].pop(), amount: 500, p2p: "127.0.0.1:9".into() }, "already validator"),
        (2, StakingTx::Bond { consensus_key: n.keys[2].consensus(), pop: n.keys[2].pop(), amount: 500, p2p: String::new() }, "p2p address"),
        (2, StakingTx::Bond { consensus_key: n.keys[2].consensus(), pop: n.keys[2].pop(), amount: 500, p2p: "localhost".into() }, "ip:port"),
        (2, n.keys[2].bond(99), "below the minimum"),
        (2, n.keys[2].bond(0), "positive"),
        (2, n.keys[2].bond(FUNDS), "cannot cover"),
        (0, n.keys[2].bond(10), "another consensus key"),
        (3, StakingTx::Unbond { amount: 1 }, "not a validator"),
        (0, StakingTx::Unbond { amount: 301 }, "need 301, have 300"),
        (0, StakingTx::Unbond { amount: 250 }, "below the minimum"),
        (0, StakingTx::Withdraw, "nothing is unbonding"),
    ];
    for (who, tx, why) in cases {
        let (stake, balance) = (n.stake(who), n.balance(who));
        let r = n.one(who, tx);
        let msg = failed(&r);
        assert!(msg.contains(why), "{msg:?} should say {why:?}");
        assert_eq!(n.stake(who), stake, "{why}: stake unchanged");
        assert_eq!(n.balance(who), balance - r.gas_used as u128, "{why}: only the fee is paid");
    }
    assert!(n.validator(2).is_none());
}

#[test]
fn unbonded_stake_waits_for_its_delay_and_the_validator_leaves_the_set() {
    let mut n = Net::new("unbond", 1);
    ok(&n.one(2, n.keys[2].bond(150)));
    let r = n.one(1, StakingTx::Unbond { amount: 200 });
    ok(&r);
    let unlock_at: u64 = ciborium::from_reader(&r.output[..]).expect("unlock height");
    assert_eq!(unlock_at, n.height() + PARAMS.unbonding_blocks);
    assert_eq!((n.stake(1), n.validator(1).map(|v| v.unbonding)), (0, Some(200)));
    let early = n.one(1, StakingTx::Withdraw);
    assert!(failed(&early).contains(&format!("unbonding ends at block {unlock_at}")));
    n.advance_to(4);
    assert_eq!(n.set(1 + SET_LAG), vec![0, 2], "the unbonded validator left; the one that bonded took its place");
    n.advance_to(unlock_at - 1);
    let before = n.balance(1);
    let r = n.one(1, StakingTx::Withdraw);
    ok(&r);
    assert_eq!(n.balance(1), before + 200 - r.gas_used as u128);
    assert_eq!(n.validator(1).map(|v| v.unbonding), Some(0));
    // Re-bonding later with the same key works (not tombstoned).
    ok(&n.one(1, n.keys[1].bond(100)));
}
