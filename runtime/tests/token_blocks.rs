//! Block-STM on real AIVM transactions: blocks of token-contract transfers (some of which
//! revert for lack of balance) mixed with native transfers, over RocksDB state. Parallel
//! execution on 1–4 threads must equal sequential execution exactly, repeatedly, and whole
//! blocks must give the same state root whatever the thread count.

use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::blockstm::{execute_parallel, execute_sequential};
use aivm_runtime::store::StoreReader;
use aivm_runtime::tx::verify_batch;
use aivm_runtime::workload::{deploy_token, token_transfer_args, Asset, P2p};
use aivm_runtime::{Address, BlockEnv, Chain, ChainConfig, ChainVm, ExecConfig, Payload, SignedTransaction, TxStatus};

const CHAIN: u64 = 3;

fn chain_with_token(dir: &std::path::Path, accounts: u64) -> (Chain, P2p, Address) {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let chain = Chain::open(dir, ChainVm::new(vm), ChainConfig { chain_id: CHAIN, fee_collector: [0xfe; 32] }).expect("open");
    let mut load = P2p::new(CHAIN, accounts, 11);
    load.gas_limit = 50_000_000;
    chain.init_genesis(&load.genesis(1 << 80)).expect("genesis");
    let wasm = aivm_testkit::contract_wasm("token").expect("token.wasm (run `make contracts`)");
    // Mint to account 0, then give every account a million tokens.
    let token = deploy_token(&chain, &mut load, wasm, u64::MAX / 2, 1_000_000).expect("token deployed and funded");
    (chain, load, token)
}

/// Random token transfers (amounts up to twice a starting balance, so many revert) mixed with
/// native transfers.
fn mixed_block(load: &mut P2p, token: Address, n: usize) -> Vec<SignedTransaction> {
    let k = load.keys.len() as u64;
    (0..n)
        .map(|i| {
            if i % 5 == 0 {
                return load.block(1, Asset::Native).remove(0);
            }
            let from = load.rng.below(k) as usize;
            let to = load.addresses()[load.rng.below(k) as usize];
            let amount = load.rng.below(2_000_000);
            load.sign(from, Payload::Call { contract: token, entry: "transfer".into(), args: token_transfer_args(&to, amount), value: 0 })
        })
        .collect()
}

fn check_equivalence(accounts: u64, txs_per_block: usize) {
    let dir = tempdir(&format!("token-{accounts}"));
    let (chain, mut load, token) = chain_with_token(&dir, accounts);
    let txs = mixed_block(&mut load, token, txs_per_block);
    let verified: Vec<_> = verify_batch(txs.clone(), CHAIN).into_iter().map(|r| r.expect("valid signature")).collect();
    let vm = chain.vm().for_block(BlockEnv { height: 3, time_ms: 3 });
    let reader = StoreReader::new(chain.store());
    let want = execute_sequential(&vm, &verified, &reader);
    let failed = want.outputs.iter().filter(|r| matches!(r.status, TxStatus::Failed { .. })).count();
    assert!(failed > 0 && failed < txs_per_block, "the block should mix successes and reverts ({failed} failed)");
    for threads in 1..=4 {
        for _ in 0..3 {
            let (got, stats) = execute_parallel(&vm, &verified, &reader, threads);
            assert_eq!(got, want, "threads={threads} stats={stats:?}");
        }
    }
    assert!(reader.into_error().is_none());

    // Whole blocks: the header (state root included) does not depend on the thread count.
    let mut chain = chain;
    let mut headers = Vec::new();
    for threads in [1, 2, 4] {
        chain.exec = ExecConfig { threads, parallel_min_txs: 1 };
        headers.push(chain.execute(txs.clone(), 3).expect("execute").record.header);
    }
    assert!(headers.windows(2).all(|w| w[0] == w[1]), "{headers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("aivm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn token_transfers_parallel_equals_sequential_under_contention() {
    check_equivalence(4, 200);
}

#[test]
fn token_transfers_parallel_equals_sequential_over_many_accounts() {
    check_equivalence(300, 400);
}
