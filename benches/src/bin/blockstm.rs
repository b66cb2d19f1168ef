//! Block-STM throughput on the paper's peer-to-peer workload: sequential and parallel
//! execution of the same signed block over the same RocksDB state, in one run, with the two
//! results checked equal.
//!
//! ```text
//! cargo run --release -p aivm-benches --bin blockstm -- \
//!     [--accounts N] [--txs M] [--threads T] [--asset native|token|both] [--reps R] [--json]
//! cargo run --release -p aivm-benches --bin blockstm -- --sweep [--json]
//! ```
//! `--raw-scaling` also splits the block over two threads without Block-STM (see the flag).
//! `--sweep` runs accounts 2, 10, 100, 1 000, 10 000 × blocks of 1 000 and 10 000, both assets.
//! `seq tps`/`par tps`/`speedup`: execution of the block alone (sequential vs Block-STM), with
//! reads from RocksDB. `node`/`n.spd`: the executor a node picks for this block
//! (`ExecConfig::use_parallel`) and its speedup over sequential. `block`: the speedup of what
//! a node does per block, signature checks (one thread vs `--threads`) plus that executor.

use aivm::{GasSchedule, Limits, Vm};
use aivm_benches::timing::median;
use aivm_runtime::blockstm::{execute_parallel, execute_sequential, ExecStats};
use aivm_runtime::store::StoreReader;
use aivm_runtime::tx::verify_batch;
use aivm_runtime::workload::{deploy_token, Asset, P2p};
use aivm_runtime::{BlockEnv, Chain, ChainConfig, ChainVm, ExecConfig};
use serde_json::json;
use std::time::Instant;

const CHAIN: u64 = 1;

/// Block-STM against sequential execution on the peer-to-peer workload.
#[derive(clap::Parser)]
struct Cli {
    /// Accounts the transfers move between.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    accounts: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    txs: u64,
    /// Block-STM worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    threads: u64,
    /// Native transfers, token-contract transfers, or both.
    #[arg(long, default_value = "native", value_parser = ["native", "token", "both"])]
    asset: String,
    /// Repetitions per configuration, the median reported (default 5; 3 with --sweep).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    reps: Option<u64>,
    /// Accounts 2, 10, 100, 1 000, 10 000 × blocks of 1 000 and 10 000, both assets.
    #[arg(long)]
    sweep: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Also time each step of Block-STM (1 thread and `--threads`) and of sequential execution,
    /// in ns per transaction (`runtime/src/blockstm/profile.rs`), on a run after the timed ones.
    #[arg(long)]
    profile: bool,
    /// Also run the block's two halves sequentially on two threads at once (no Block-STM)
    /// against one thread running both: how the VM's call path scales inside one process.
    #[arg(long)]
    raw_scaling: bool,
    /// Also time the block's signatures on one thread: strict RFC 8032 checks one at a time
    /// (the rule before ZIP-215, still `ED25519_VERIFY`'s), ZIP-215 one at a time, and ZIP-215
    /// in batches (`runtime/src/sig.rs`), in ns per signature.
    #[arg(long)]
    signatures: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Args {
    accounts: Vec<u64>,
    txs: Vec<usize>,
    threads: usize,
    assets: Vec<&'static str>,
    reps: usize,
    json: bool,
    profile: bool,
    raw_scaling: bool,
    signatures: bool,
}

fn parse() -> Args {
    let c = <Cli as clap::Parser>::parse();
    let assets = match c.asset.as_str() {
        "token" => vec!["token"],
        "both" => vec!["native", "token"],
        _ => vec!["native"],
    };
    let reps = c.reps.unwrap_or(if c.sweep { 3 } else { 5 }) as usize;
    let mut a = Args {
        accounts: vec![c.accounts],
        txs: vec![c.txs as usize],
        threads: c.threads as usize,
        assets,
        reps,
        json: c.json,
        profile: c.profile,
        raw_scaling: c.raw_scaling,
        signatures: c.signatures,
    };
    if c.sweep {
        a.accounts = vec![2, 10, 100, 1000, 10_000];
        a.txs = vec![1000, 10_000];
        a.assets = vec!["native", "token"];
    }
    a
}

/// A chain with `accounts` funded accounts (and, for the token variant, the token contract
/// deployed and a balance for every account), and the loader that signs for them.
fn setup(dir: &std::path::Path, accounts: u64, token: bool) -> Result<(Chain, P2p, Asset), String> {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).map_err(|e| e.to_string())?;
    let mut chain = Chain::open(dir, ChainVm::new(vm), ChainConfig { chain_id: CHAIN, fee_collector: [0xfe; 32] }).map_err(|e| e.to_string())?;
    chain.exec = ExecConfig { threads: 2, parallel_min_txs: 16 };
    let mut load = P2p::new(CHAIN, accounts, 42);
    load.gas_limit = 20_000_000;
    chain.init_genesis(&load.genesis(1 << 100)).map_err(|e| e.to_string())?;
    if !token {
        return Ok((chain, load, Asset::Native));
    }
    let wasm = aivm_testkit::contract_wasm("token").map_err(|e| format!("the token variant needs token.wasm: {e}"))?;
    let contract = deploy_token(&chain, &mut load, wasm, u64::MAX / 2, 1 << 40)?;
    Ok((chain, load, Asset::Token(contract)))
}

fn run(accounts: u64, n: usize, asset_name: &str, a: &Args) {
    let dir = std::env::temp_dir().join(format!("aivm-blockstm-{}-{accounts}-{asset_name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (chain, mut load, asset) = match setup(&dir, accounts, asset_name == "token") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("blockstm: {e}");
            std::process::exit(2);
        }
    };
    let txs = load.block(n, asset);
    // Signature checks, which a node does for every block before executing it (in batches on
    // the rayon pool): on a pool of one thread versus `--threads`.
    let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let (one, many) = (pool(1), pool(a.threads));
    let (mut vseq, mut vpar) = (Vec::new(), Vec::new());
    for _ in 0..a.reps {
        let t = Instant::now();
        drop(one.install(|| verify_batch(txs.clone(), CHAIN)));
        vseq.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        drop(many.install(|| verify_batch(txs.clone(), CHAIN)));
        vpar.push(t.elapsed().as_secs_f64());
    }
    let verified: Vec<_> = verify_batch(txs, CHAIN).into_iter().map(|r| r.expect("valid")).collect();
    let head = chain.head().expect("head").height;
    let vm = chain.vm().for_block(BlockEnv { height: head + 1, time_ms: 1 });
    let reader = StoreReader::new(chain.store());

    let want = execute_sequential(&vm, &verified, &reader); // warm-up: caches, compiled code
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    let mut stats = ExecStats::default();
    for _ in 0..a.reps {
        let t = Instant::now();
        let s = execute_sequential(&vm, &verified, &reader);
        seq.push(t.elapsed().as_secs_f64());
        assert!(s == want, "sequential run differs from the first");
        let t = Instant::now();
        let (p, st) = execute_parallel(&vm, &verified, &reader, a.threads);
        par.push(t.elapsed().as_secs_f64());
        assert!(p == want, "parallel result differs from sequential");
        stats = st;
    }
    // Diagnostic: the same block split in halves run sequentially on separate threads at once
    // (no Block-STM; results discarded), against one thread running both halves: how well the
    // VM's call path itself scales inside one process.
    if a.signatures {
        use aivm_runtime::sig;
        let messages: Vec<Vec<u8>> = verified.iter().map(|v| v.tx().signing_bytes()).collect();
        let sigs: Vec<[u8; 64]> = verified.iter().map(|v| v.signed.signature.as_slice().try_into().expect("64 bytes")).collect();
        let items: Vec<sig::Item> =
            verified.iter().zip(&messages).zip(&sigs).map(|((v, m), s)| sig::Item { key: &v.tx().sender, signature: s, message: m }).collect();
        let per = |t: Instant| t.elapsed().as_nanos() as f64 / n as f64;
        let (mut strict, mut single, mut batched) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.reps {
            let t = Instant::now();
            assert!(items.iter().all(|i| aivm::verify::signature::ed25519_verify(i.key, i.message, i.signature)));
            strict.push(per(t));
            let t = Instant::now();
            assert!(items.iter().all(|i| sig::verify(*i)));
            single.push(per(t));
            let t = Instant::now();
            assert!(one.install(|| sig::verify_all(&items)).into_iter().all(|ok| ok));
            batched.push(per(t));
        }
        eprintln!(
            "signatures, one thread: strict RFC 8032 {:.0} ns, ZIP-215 single {:.0} ns, ZIP-215 batches of {} {:.0} ns per signature",
            median(&mut strict),
            median(&mut single),
            sig::BATCH,
            median(&mut batched)
        );
    }
    if a.raw_scaling {
        let half = verified.len() / 2;
        let (x, y) = verified.split_at(half);
        let t = Instant::now();
        drop(execute_sequential(&vm, x, &reader));
        drop(execute_sequential(&vm, y, &reader));
        let one = t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::thread::scope(|sc| {
            sc.spawn(|| drop(execute_sequential(&vm, x, &reader)));
            sc.spawn(|| drop(execute_sequential(&vm, y, &reader)));
        });
        let two = t.elapsed().as_secs_f64();
        eprintln!("raw scaling: one thread {:.0} ns/tx, two threads {:.0} ns/tx wall: {:.2}x", one * 1e9 / n as f64, two * 1e9 / n as f64, one / two);
    }
    let profile = a.profile.then(|| {
        use aivm_runtime::blockstm::profile;
        let mut rows = Vec::new();
        for (name, threads) in [("sequential", 0), ("block-stm 1 thread", 1), ("block-stm", a.threads)] {
            profile::enable(true);
            let t = Instant::now();
            if threads == 0 {
                drop(execute_sequential(&vm, &verified, &reader));
            } else {
                drop(execute_parallel(&vm, &verified, &reader, threads));
            }
            let wall = t.elapsed().as_nanos() as f64;
            let totals = profile::totals();
            profile::enable(false);
            let per_tx: serde_json::Map<String, serde_json::Value> =
                totals.iter().map(|(s, ns)| (s.name().to_string(), json!((*ns as f64 / n as f64).round()))).collect();
            rows.push(json!({"run": name, "threads": threads.max(1), "wall_ns_per_tx": (wall / n as f64).round(), "cpu_ns_per_tx_by_step": per_tx}));
        }
        rows
    });
    assert!(reader.into_error().is_none(), "storage error during the run");
    let ok = want.outputs.iter().filter(|r| r.is_success()).count();
    let (s, p) = (median(&mut seq), median(&mut par));
    let (seq_tps, par_tps) = (n as f64 / s, n as f64 / p);
    let (vs, vp) = (median(&mut vseq), median(&mut vpar));
    // What a node does: the executor `ExecConfig::use_parallel` picks, after parallel
    // signature checks.
    let policy = ExecConfig { threads: a.threads, parallel_min_txs: 16 };
    let chosen = if policy.use_parallel(&verified) { p } else { s };
    let (block_seq_tps, block_par_tps) = (n as f64 / (s + vs), n as f64 / (chosen + vp));
    let mode = if chosen == p { "par" } else { "seq" };
    let per = |x: usize| x as f64 / n as f64;
    if a.json {
        println!(
            "{}",
            json!({"asset": asset_name, "accounts": accounts, "txs": n, "threads": a.threads, "reps": a.reps,
                   "seq_tps": seq_tps, "par_tps": par_tps, "speedup": par_tps / seq_tps, "states_equal": true,
                   "node_executor": mode, "node_exec_speedup": s / chosen, "block_seq_tps": block_seq_tps, "block_par_tps": block_par_tps, "block_speedup": block_par_tps / block_seq_tps,
                   "successful_txs": ok, "executions_per_tx": per(stats.executions),
                   "validations_per_tx": per(stats.validations), "aborts_per_tx": per(stats.aborts),
                   "dependency_waits_per_tx": per(stats.dependency_waits), "profile": profile})
        );
    } else {
        println!(
            "{asset_name:<7} {accounts:>7} {n:>7} {:>3} {seq_tps:>11.0} {par_tps:>11.0} {:>8.2}x {mode:>5} {:>6.2}x {:>7.2}x {:>8.2} {:>8.2} {:>8.2}   equal",
            a.threads,
            par_tps / seq_tps,
            s / chosen,
            block_par_tps / block_seq_tps,
            per(stats.executions),
            per(stats.validations),
            per(stats.aborts)
        );
        for row in profile.iter().flatten() {
            let steps =
                row["cpu_ns_per_tx_by_step"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")).unwrap_or_default();
            println!(
                "    profile {:<20} wall {} ns/tx; by step (ns/tx, summed over threads): {steps}",
                row["run"].as_str().unwrap_or(""),
                row["wall_ns_per_tx"]
            );
        }
    }
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let a = parse();
    if !a.json {
        println!("asset   accounts     txs thr     seq tps     par tps  speedup  node  n.spd    block  exec/tx   val/tx abort/tx   states");
    }
    for asset in &a.assets {
        for &n in &a.txs {
            for &accounts in &a.accounts {
                run(accounts, n, asset, &a);
            }
        }
    }
}
