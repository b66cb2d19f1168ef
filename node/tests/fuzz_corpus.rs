//! Every fuzz target of `fuzz/` (FUZZING.md) run briefly on the stable toolchain: its checked-in
//! corpus, seeds built here, and deterministic mutations of both, through the same functions
//! the cargo-fuzz targets call. A crash the long runs found stays in the corpus, so it stays
//! fixed.

use aivm_node::block::Block;
use aivm_node::fuzzing;
use aivm_runtime::workload::{Asset, P2p};
use aivm_runtime::{BlockHeader, BlockRecord, Receipt};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// xorshift: deterministic mutations (flip, truncate, splice, extend).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutations(seeds: &[Vec<u8>], n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut v = if seeds.is_empty() { Vec::new() } else { seeds[i % seeds.len()].clone() };
        for _ in 0..1 + r.below(4) {
            match r.below(5) {
                0 if !v.is_empty() => {
                    let k = r.below(v.len());
                    v[k] ^= 1 << r.below(8);
                }
                1 if !v.is_empty() => v.truncate(r.below(v.len())),
                2 => v.extend((0..r.below(64)).map(|_| r.next() as u8)),
                3 if !v.is_empty() => {
                    let k = r.below(v.len());
                    v[k] = [0, 0xff, 0x7f, 0x80, 0x1b][r.below(5)];
                }
                _ => v = (0..r.below(256)).map(|_| r.next() as u8).collect(),
            }
        }
        out.push(v);
    }
    out
}

fn run(target: &str, seeds: Vec<Vec<u8>>, n: usize, f: impl Fn(&[u8])) {
    let mut all = corpus(target);
    all.extend(seeds);
    for input in all.iter().chain(mutations(&all, n, target.len() as u64 * 7919).iter()) {
        f(input);
    }
}

fn sample_txs() -> Vec<Vec<u8>> {
    let mut load = P2p::new(1, 4, 1);
    load.block(4, Asset::Native).into_iter().map(|t| t.encode()).collect()
}

fn sample_block() -> Block {
    let header = BlockHeader { height: 3, parent_hash: [1; 32], time_ms: 9, tx_root: [2; 32], receipts_root: [3; 32], state_root: [4; 32], gas_used: 5 };
    Block {
        parent: [7; 32],
        view: 5,
        header,
        txs: sample_txs(),
        evidence: vec![vec![1; 20]],
        seed: Some([3; aivm_node::block::SEED_BYTES]),
        reshare: Some(vec![9; 16]),
    }
}

#[test]
fn transaction() {
    run("transaction", sample_txs(), 3000, fuzzing::transaction);
}

#[test]
fn market_answer() {
    let sample = fuzzing::sample_market_answer();
    assert!(aivm::model::audit::Response::decode(&sample).is_some(), "the seed is an answer");
    run("market_answer", vec![fuzzing::sample_market_answer()], 3000, fuzzing::market_answer);
}

#[test]
fn block() {
    run("block", vec![sample_block().encode()], 3000, fuzzing::block);
}

#[test]
fn block_record() {
    let b = sample_block();
    let txs = P2p::new(1, 4, 1).block(3, Asset::Native).into_iter().map(std::sync::Arc::new).collect();
    let record = BlockRecord { header: b.header, txs, receipts: vec![Receipt::rejected([5; 32], "why")] };
    run("block_record", vec![record.encode()], 3000, fuzzing::block_record);
}

#[test]
fn gguf() {
    let header = [&b"GGUF"[..], &3u32.to_le_bytes(), &1u64.to_le_bytes(), &1u64.to_le_bytes()].concat();
    run("gguf", vec![header], 3000, fuzzing::gguf);
}

#[test]
fn sku() {
    run("sku", vec![b"AIVMSKU1".to_vec()], 3000, fuzzing::sku);
}

#[test]
fn rpc() {
    let t = fuzzing::RpcTarget::new();
    let seeds = [
        r#"{"jsonrpc":"2.0","id":1,"method":"aivm_status","params":[]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"aivm_getAccount","params":["0707070707070707070707070707070707070707070707070707070707070707"]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"aivm_getBlock","params":[0]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"aivm_sendTransaction","params":["00"]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"aivm_query","params":["0707070707070707070707070707070707070707070707070707070707070707","x","",1000]}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"aivm_stateRoot","params":[]},{"jsonrpc":"2.0","id":2,"method":"aivm_getReceipt","params":["00"]}]"#,
    ];
    run("rpc", seeds.iter().map(|s| s.as_bytes().to_vec()).collect(), 1500, |d| t.request(d));
}

#[test]
fn deploy() {
    let vm = fuzzing::deploy_vm();
    run("deploy", Vec::new(), 300, |d| fuzzing::deploy_from(&vm, d));
}

/// Writes the seeds above as the starting corpus of the cargo-fuzz targets (run by hand:
/// `cargo test --release --test fuzz_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |t: &str, items: Vec<Vec<u8>>| {
        let d = root.join(t);
        std::fs::create_dir_all(&d).unwrap();
        for (i, v) in items.into_iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i}")), v).unwrap();
        }
    };
    write("transaction", sample_txs());
    write("market_answer", vec![fuzzing::sample_market_answer()]);
    write("block", vec![sample_block().encode()]);
    let b = sample_block();
    write(
        "block_record",
        vec![BlockRecord {
            header: b.header,
            txs: P2p::new(1, 4, 1).block(3, Asset::Native).into_iter().map(std::sync::Arc::new).collect(),
            receipts: vec![Receipt::rejected([5; 32], "why")],
        }
        .encode()],
    );
    write("gguf", vec![[&b"GGUF"[..], &3u32.to_le_bytes(), &1u64.to_le_bytes(), &1u64.to_le_bytes()].concat()]);
    write("sku", vec![b"AIVMSKU1".to_vec()]);
    write("rpc", vec![br#"{"jsonrpc":"2.0","id":1,"method":"aivm_status","params":[]}"#.to_vec()]);
    write("deploy", vec![vec![0; 64], (0..=255).collect()]);
}

#[test]
fn wasm_smith_generates_modules_the_vm_compiles() {
    let vm = fuzzing::deploy_vm();
    let mut r = Rng(99);
    let (mut generated, mut deployed, mut calls_host) = (0, 0, 0);
    for _ in 0..50 {
        let data: Vec<u8> = (0..2048).map(|_| r.next() as u8).collect();
        let mut u = arbitrary::Unstructured::new(&data);
        if let Ok(m) = wasm_smith::Module::new(fuzzing::wasm_smith_config(), &mut u) {
            generated += 1;
            let wasm = m.to_bytes();
            deployed += vm.speed.deploy(&wasm).is_ok() as usize;
            calls_host += (vm.speed.deploy(&wasm).is_ok() && wasm.windows(4).any(|w| w == b"aivm")) as usize;
        }
    }
    assert!(generated >= 40 && deployed >= 10 && calls_host >= 5, "generated {generated}, deployed {deployed}, importing the host {calls_host}");
}
