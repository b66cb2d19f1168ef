//! Native value in contract calls (`Payload::Call { value }`, `env::value`/`balance`/
//! `transfer`) through the real chain: the escrow contract locks what a client sends and
//! pays it to the worker; a failed call moves no value; a call cannot send more than its
//! sender holds beyond the fee; every unit stays accounted for; and Block-STM on 1–4 threads
//! equals sequential execution on blocks of value-bearing calls.

use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::blockstm::{execute_parallel, execute_sequential};
use aivm_runtime::store::StoreReader;
use aivm_runtime::tx::verify_batch;
use aivm_runtime::workload::P2p;
use aivm_runtime::{Address, BlockEnv, Chain, ChainConfig, ChainVm, Payload, TxStatus};

const CHAIN: u64 = 4;
const COLLECTOR: Address = [0xfe; 32];

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aivm-native-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    aivm_runtime::encoding::cbor(v)
}

fn lock_args(worker: &Address, blocks: u64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Lock {
        #[serde(with = "serde_bytes")]
        worker: Address,
        blocks: u64,
    }
    cbor(&Lock { worker: *worker, blocks })
}

fn setup(dir: &std::path::Path) -> (Chain, P2p, Address) {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let chain = Chain::open(dir, ChainVm::new(vm), ChainConfig { chain_id: CHAIN, fee_collector: COLLECTOR }).expect("open");
    let mut load = P2p::new(CHAIN, 4, 3);
    chain.init_genesis(&load.genesis(1 << 40)).expect("genesis");
    load.gas_limit = 2_500_000_000;
    let wasm = aivm_testkit::contract_wasm("escrow").expect("escrow.wasm (run `make contracts`)");
    let b = chain.execute(vec![load.sign(0, Payload::Deploy { code: wasm, args: Vec::new() })], 1).expect("deploy");
    assert!(b.record.receipts[0].is_success(), "{:?}", b.record.receipts[0].status);
    let escrow = b.record.receipts[0].contract_address.expect("address").into_array();
    chain.commit(b).expect("commit");
    load.gas_limit = 20_000_000;
    (chain, load, escrow)
}

fn balance(chain: &Chain, a: &Address) -> u128 {
    chain.account(a).expect("read").map_or(0, |a| a.balance)
}

fn total(chain: &Chain, accounts: &[Address]) -> u128 {
    accounts.iter().map(|a| balance(chain, a)).sum()
}

#[test]
fn a_call_carries_value_and_a_contract_pays_it_out() {
    let dir = tempdir("escrow");
    let (chain, mut load, escrow) = setup(&dir);
    let [alice, bob, ..] = load.addresses()[..] else { panic!("accounts") };
    let everyone = [load.addresses(), vec![escrow, COLLECTOR]].concat();
    let supply = total(&chain, &everyone);

    // Alice locks 300 for Bob; a second call with bad arguments sends 50 and fails.
    let lock = load.sign(0, Payload::Call { contract: escrow, entry: "lock".into(), args: lock_args(&bob, 5), value: 300 });
    let bad = load.sign(0, Payload::Call { contract: escrow, entry: "lock".into(), args: vec![0xff], value: 50 });
    let before = balance(&chain, &alice);
    let b = chain.execute(vec![lock, bad], 2).expect("execute");
    let [ok, failed] = &b.record.receipts[..] else { panic!("two receipts") };
    assert!(ok.is_success(), "{:?}", ok.status);
    assert!(matches!(failed.status, TxStatus::Failed { .. }), "{:?}", failed.status);
    let fees = ok.fee + failed.fee;
    chain.commit(b).expect("commit");
    assert_eq!(balance(&chain, &escrow), 300, "only the successful call's value moved");
    assert_eq!(balance(&chain, &alice), before - 300 - fees);
    assert_eq!(total(&chain, &everyone), supply);

    // Release: the contract pays Bob.
    let bob_before = balance(&chain, &bob);
    let release = load.sign(0, Payload::Call { contract: escrow, entry: "release".into(), args: cbor(&0u64), value: 0 });
    let b = chain.execute(vec![release], 3).expect("execute");
    assert!(b.record.receipts[0].is_success(), "{:?}", b.record.receipts[0].status);
    chain.commit(b).expect("commit");
    assert_eq!((balance(&chain, &bob), balance(&chain, &escrow)), (bob_before + 300, 0));
    assert_eq!(total(&chain, &everyone), supply);

    // Value beyond what the sender holds after the fee reservation: refused before running.
    let all = balance(&chain, &alice);
    let greedy = load.sign(0, Payload::Call { contract: escrow, entry: "lock".into(), args: lock_args(&bob, 5), value: all });
    let b = chain.execute(vec![greedy], 4).expect("execute");
    assert!(matches!(&b.record.receipts[0].status, TxStatus::Rejected { reason } if reason.contains("cannot cover")), "{:?}", b.record.receipts[0].status);
    // A zero value is not written: an explicit 0 is not the canonical encoding.
    let call = load.sign(1, Payload::Call { contract: escrow, entry: "held".into(), args: cbor(&()), value: 0 });
    let bytes = call.encode();
    assert!(!bytes.windows(5).any(|w| w == b"value"), "zero value omitted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn value_bearing_calls_execute_the_same_on_any_thread_count() {
    let dir = tempdir("parallel");
    let (chain, mut load, escrow) = setup(&dir);
    let workers = load.addresses();
    let mut txs = Vec::new();
    for i in 0..24usize {
        let from = i % 4;
        let worker = workers[(i + 1) % 4];
        txs.push(load.sign(from, Payload::Call { contract: escrow, entry: "lock".into(), args: lock_args(&worker, 1), value: 10 + i as u128 }));
        if i % 3 == 0 {
            // Release an escrow an earlier transaction of the block may have created (ids are
            // sequential); some of these fail, as they should.
            txs.push(load.sign(from, Payload::Call { contract: escrow, entry: "release".into(), args: cbor(&(i as u64 / 2)), value: 0 }));
        }
    }
    let verified: Vec<_> = verify_batch(txs, CHAIN).into_iter().map(|r| r.expect("valid")).collect();
    let vm = chain.vm().for_block(BlockEnv { height: 2, time_ms: 2 });
    let reader = StoreReader::new(chain.store());
    let want = execute_sequential(&vm, &verified, &reader);
    assert!(want.outputs.iter().filter(|r| r.is_success()).count() >= 24);
    for threads in 1..=4 {
        let (got, stats) = execute_parallel(&vm, &verified, &reader, threads);
        assert_eq!(got, want, "threads={threads} stats={stats:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
