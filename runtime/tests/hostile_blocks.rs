//! Blocks a hostile user or machine pressure could exploit: a replayed transaction must not
//! hide the receipt that executed it, a deploy must not wipe a balance sent to its address
//! beforehand, and results must not depend on how many instance slots or threads there are.

use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::workload::{deploy_token, Asset, P2p};
use aivm_runtime::{contract_address, Chain, ChainConfig, ChainVm, ExecConfig, Payload, TxStatus};

const CHAIN: u64 = 5;

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aivm-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &std::path::Path, limits: Limits) -> Chain {
    let vm = Vm::new(limits, GasSchedule::default()).expect("vm");
    Chain::open(dir, ChainVm::new(vm), ChainConfig { chain_id: CHAIN, fee_collector: [0xfe; 32] }).expect("open chain")
}

#[test]
fn a_replayed_transaction_keeps_its_executed_receipt_indexed() {
    let dir = tempdir("replay");
    let chain = open(&dir, Limits::default());
    let mut load = P2p::new(CHAIN, 4, 1);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let tx = load.block(1, Asset::Native).remove(0);
    let hash = tx.hash();
    let b = chain.execute(vec![tx.clone()], 1).expect("execute");
    assert!(b.record.receipts[0].is_success());
    chain.commit(b).expect("commit");
    // The same bytes again, twice in one block: both rejected (nonce), neither indexed.
    let b = chain.execute(vec![tx.clone(), tx], 2).expect("execute");
    assert!(b.record.receipts.iter().all(|r| matches!(r.status, TxStatus::Rejected { .. })));
    chain.commit(b).expect("commit");
    assert_eq!(chain.store().tx_location(&hash).expect("index"), Some((1, 0)), "the executed receipt stays indexed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_keeps_a_balance_sent_to_the_contract_address() {
    let dir = tempdir("deploy");
    let chain = open(&dir, Limits::default());
    let mut load = P2p::new(CHAIN, 2, 1);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let deployer = load.addresses()[0];
    // Account 1 pays the address account 0's deploy at nonce 0 will get.
    let target = contract_address(&deployer, 0);
    let pay = load.sign(1, Payload::Transfer { to: target, amount: 12_345 });
    let b = chain.execute(vec![pay], 1).expect("execute");
    chain.commit(b).expect("commit");
    load.gas_limit = 2_000_000_000;
    let wasm = aivm_testkit::contract_wasm("token").expect("token.wasm (run `make contracts`)");
    let deploy = load.sign(0, Payload::Deploy { code: wasm, args: aivm_runtime::encoding::cbor(&std::collections::BTreeMap::from([("supply", 5u64)])) });
    let b = chain.execute(vec![deploy], 2).expect("execute");
    assert!(b.record.receipts[0].is_success(), "{:?}", b.record.receipts[0].status);
    chain.commit(b).expect("commit");
    let acc = chain.account(&target).expect("read").expect("contract account");
    assert_eq!(acc.balance, 12_345, "the balance sent before the deploy is kept");
    assert!(acc.code_hash.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Token blocks executed with one pooled instance and four executor threads (calls wait for
/// the slot) give the headers of the default configuration, and so does a run with queries
/// holding slots while the block executes.
#[test]
fn results_do_not_depend_on_pool_pressure_or_threads() {
    let wasm = aivm_testkit::contract_wasm("token").expect("token.wasm (run `make contracts`)");
    let run = |tag: &str, limits: Limits, threads: usize, queries: bool| {
        let dir = tempdir(tag);
        let mut chain = open(&dir, limits);
        chain.exec = ExecConfig { threads, parallel_min_txs: 1 };
        let mut load = P2p::new(CHAIN, 40, 9);
        load.gas_limit = 50_000_000;
        chain.init_genesis(&load.genesis(1 << 80)).expect("genesis");
        let token = deploy_token(&chain, &mut load, wasm.clone(), u64::MAX / 2, 1_000_000).expect("token");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let headers = std::thread::scope(|s| {
            if queries {
                for _ in 0..3 {
                    s.spawn(|| {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let mut view = aivm_runtime::overlay::Overlay::new(chain.store());
                            let ctx = aivm::CallContext { caller: [0; 32], contract: token, block_height: 1, block_time_ms: 1, ..Default::default() };
                            let _ = chain.vm().query(&mut view, token, "total_supply", vec![0xf6], 1_000_000, ctx, None);
                        }
                    });
                }
            }
            // Stops the query threads even if a block fails (a panic must end the test).
            struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(&stop);
            let mut headers = Vec::new();
            for h in 0..3 {
                let txs = load.block(120, Asset::Token(token));
                let b = chain.execute(txs, 10 + h).expect("execute");
                headers.push(b.record.header.clone());
                chain.commit(b).expect("commit");
            }
            headers
        });
        let _ = std::fs::remove_dir_all(&dir);
        headers
    };
    let reference = run("ref", Limits::default(), 1, false);
    let starved = run("starved", Limits { pool_instances: 1, ..Limits::default() }, 4, true);
    assert_eq!(reference, starved);
}

/// A call that loops and then traps pays for its whole gas limit in its fee, for every trap
/// kind (before the fix, most kinds reported 0 gas: the loop was free).
#[test]
fn a_trapping_call_pays_its_gas_limit_in_fees() {
    use aivm_testkit::hostile::{loop_then, TRAPS};
    let dir = tempdir("traps");
    let chain = open(&dir, Limits::default());
    let mut load = P2p::new(CHAIN, 2, 1);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    load.gas_limit = 100_000_000;
    let deploys: Vec<_> = TRAPS.iter().map(|(_, body)| load.sign(0, Payload::Deploy { code: loop_then(200_000, body), args: Vec::new() })).collect();
    let b = chain.execute(deploys, 1).expect("execute");
    let contracts: Vec<_> = b.record.receipts.iter().map(|r| r.contract_address.expect("deployed").into_array()).collect();
    chain.commit(b).expect("commit");
    load.gas_limit = 5_000_000;
    load.gas_price = 3;
    let calls = contracts.iter().map(|c| load.sign(1, Payload::Call { contract: *c, entry: "run".into(), args: Vec::new(), value: 0 })).collect();
    let b = chain.execute(calls, 2).expect("execute");
    for ((name, _), r) in TRAPS.iter().zip(&b.record.receipts) {
        assert!(matches!(&r.status, TxStatus::Failed { kind, .. } if kind == "trap"), "{name}: {:?}", r.status);
        assert_eq!(r.gas_used, 5_000_000, "{name}");
        assert_eq!(r.fee, 15_000_000, "{name}: gas_limit × price");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A deploy pays for its module's shape, not only its size (`aivm::deploy_price`): a compile
/// bomb that the size part would let through is refused for gas before it is compiled, pays its
/// whole limit and installs nothing; a module without `instantiate` pays exactly its price.
#[test]
fn a_deploy_pays_for_the_shape_of_its_module() {
    let dir = tempdir("shape");
    let chain = open(&dir, Limits::default());
    let mut load = P2p::new(CHAIN, 2, 1);
    chain.init_genesis(&load.genesis(1 << 60)).expect("genesis");
    let schedule = GasSchedule::default();
    // 8 192 `br_if`s out of one block: 33 KB, quadratic to compile (seconds).
    let bomb =
        wat::parse_str(format!(r#"(module (memory (export "memory") 1) (func (export "f") (local i32) (block {})))"#, "(br_if 0 (local.get 0))".repeat(8192)))
            .unwrap();
    let plain = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "f")))"#).unwrap();
    let by_size = schedule.deploy.cost(bomb.len() as u64).unwrap();
    let price = aivm::deploy_price(&bomb, &Limits::default(), &schedule).unwrap();
    assert!(price > 50 * by_size, "{price} vs {by_size}");
    load.gas_limit = 2_500_000_000;
    assert!(by_size < load.gas_limit && price > load.gas_limit);
    let txs = vec![load.sign(0, Payload::Deploy { code: bomb, args: Vec::new() }), load.sign(0, Payload::Deploy { code: plain.clone(), args: Vec::new() })];
    let intrinsic: Vec<u64> = txs.iter().map(|t| schedule.tx.cost(t.encode().len() as u64).unwrap()).collect();
    let started = std::time::Instant::now();
    let b = chain.execute(txs, 1).expect("execute");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "refused before compiling: {:?}", started.elapsed());
    let [bomb_r, plain_r] = &b.record.receipts[..] else { panic!("two receipts") };
    assert!(matches!(&bomb_r.status, TxStatus::Failed { kind, .. } if kind == "out_of_gas"), "{:?}", bomb_r.status);
    assert_eq!((bomb_r.gas_used, bomb_r.contract_address), (load.gas_limit, None));
    assert!(plain_r.is_success(), "{:?}", plain_r.status);
    let plain_price = aivm::deploy_price(&plain, &Limits::default(), &schedule).unwrap();
    assert_eq!(plain_r.gas_used, intrinsic[1] + plain_price);
    let _ = std::fs::remove_dir_all(&dir);
}
