//! What the coverage-guided fuzz targets (`fuzz/`, cargo-fuzz, see FUZZING.md) exercise, one
//! function per target. Each takes arbitrary bytes from outside and must return without a
//! panic, in bounded time and memory. `make test` replays every target's corpus through these
//! same functions on the stable toolchain (`node/tests/fuzz_corpus.rs`).

use crate::block::Block;
use aivm::{CallContext, CallRequest, GasSchedule, Limits, MemState, Vm};
use aivm_runtime::{BlockRecord, SignedTransaction};

/// A transaction from the network: decoding is canonical (what decodes re-encodes to the same
/// bytes), and checking its signature never fails loudly.
pub fn transaction(data: &[u8]) {
    if let Ok(tx) = SignedTransaction::decode(data) {
        assert_eq!(tx.encode(), data, "decoding is canonical");
        let _ = tx.verify(1);
    }
}

/// A block from a peer: decoding is bounded and canonical.
pub fn block(data: &[u8]) {
    if let Ok(b) = Block::decode(data) {
        assert_eq!(b.encode(), data, "decoding is canonical");
        assert!(b.encoded_len() <= crate::block::MAX_ENCODED);
        // A peer's reshare payload goes through commonware's decoder (bounded sets).
        if let Some(p) = &b.reshare {
            let _ = crate::consensus::epochs::decode_payload(p);
        }
    }
}

/// A stored block record with its receipts (the node reads them back from disk).
pub fn block_record(data: &[u8]) {
    if let Ok(r) = BlockRecord::decode(data) {
        let _ = BlockRecord::decode(&r.encode());
    }
}

/// A market answer's openings (`MarketTx::Answer`'s response, `spec/market.md` §6): decoding
/// is bounded and canonical — what decodes re-encodes to the same bytes, so one answer has
/// one encoding.
pub fn market_answer(data: &[u8]) {
    if let Some(r) = aivm::model::audit::Response::decode(data) {
        assert_eq!(r.encode(), data, "one encoding per answer");
    }
}

/// A sample answer for seeds: two GEMMs' commitments, a sibling, a whole GEMM and two rows
/// (one with padding before it).
pub fn sample_market_answer() -> Vec<u8> {
    use aivm::model::audit::{OpenRow, Response};
    use aivm::model::commit::{GemmCommit, GemmData};
    use aivm::model::quant::Scale;
    let commit = |i: u32, m: u32| GemmCommit {
        step: 0,
        layer: i,
        kind: 0,
        seq: 0,
        head: 0,
        m,
        k: 3,
        n: 2,
        y_bytes: 4,
        x_root: [1; 32],
        y_root: [2; 32],
        rhs_root: [0; 32],
    };
    let data = GemmData { commit: commit(0, 1), x: vec![1, -2, 3], x_scales: vec![Scale { m: 1 << 14, e: -20 }], y: vec![5, -6], rhs: None };
    Response {
        commits: vec![(0, commit(0, 1)), (7, commit(1, 2))],
        proof: vec![[3; 32]],
        gemms: vec![(0, data)],
        rows: vec![
            OpenRow { index: 7, is_y: false, row: 1, bytes: vec![0, 64, 0, 0, 236, 255, 255, 255, 1, 2, 3].into(), row_proof: vec![[4; 32]] },
            OpenRow { index: 7, is_y: true, row: 0, bytes: vec![9, 0, 0, 0, 8, 0, 0, 0].into(), row_proof: vec![] },
        ],
    }
    .encode()
}

/// A GGUF model file.
pub fn gguf(data: &[u8]) {
    if let Ok(g) = aivm::model::gguf::Gguf::parse(data.to_vec()) {
        let names: Vec<String> = g.tensors.keys().take(4).cloned().collect();
        for n in names {
            let _ = g.dequantize(&n);
        }
    }
}

/// A SKU artifact (the converted model a node loads).
pub fn sku(data: &[u8]) {
    let _ = aivm::model::sku::Sku::from_bytes(data);
}

/// The VMs a deployed module runs on: the node's (optimised, serial kernels) and one whose
/// compiler does not optimise and whose tensor kernels run on 4 threads. A result or gas
/// figure that differs between them depends on code generation or on the thread count.
pub struct DeployVms {
    pub speed: Vm,
    pub unoptimised: Vm,
}

/// A module a deployer sends: validation and compilation, then every entry point called twice
/// with a small gas limit on each VM; all four runs must give the same result, gas, writes and
/// events (determinism, whatever the compiler does and however many threads run kernels).
pub fn deploy(vms: &DeployVms, wasm: &[u8]) {
    let (c, u) = match (vms.speed.deploy(wasm), vms.unoptimised.deploy(wasm)) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(_), Err(_)) => return,
        (a, b) => panic!("deploys differ between the VMs: {:?} vs {:?}", a.map(|_| ()), b.map(|_| ())),
    };
    let entries: Vec<String> = c.entries().take(4).map(str::to_string).collect();
    for entry in entries {
        let run = |vm: &Vm, c: &aivm::Contract| {
            let out = vm.call(
                c,
                CallRequest { entry: &entry, input: vec![1, 2, 3], gas_limit: 2_000_000, ctx: CallContext::default(), view: &mut MemState::default() },
            );
            (format!("{:?}", out.result), out.gas.used, out.writes, out.events.len())
        };
        let first = run(&vms.speed, &c);
        assert_eq!(first, run(&vms.speed, &c), "entry {entry} is deterministic");
        assert_eq!(first, run(&vms.unoptimised, &u), "entry {entry} does not depend on optimisation or threads");
    }
}

/// The VMs the deploy target runs on: default limits and prices, few pooled instances.
pub fn deploy_vm() -> DeployVms {
    let limits = Limits { pool_instances: 4, ..Limits::default() };
    let vm = |opt| Vm::with_opt_level(limits.clone(), GasSchedule::default(), opt).unwrap_or_else(|e| panic!("default VM: {e}"));
    let threaded = std::sync::Arc::new(aivm::backend::CpuBackend::with_threads(4));
    DeployVms { speed: vm(aivm::OptLevel::Speed), unoptimised: vm(aivm::OptLevel::None).with_backend(threaded) }
}

/// The host ABI as imports wasm-smith may choose from (name, parameters, result): generated
/// modules call into the host with arbitrary arguments.
const HOST_IMPORTS: &[(&str, usize, &str)] = &[
    ("input_len", 0, "i32"),
    ("input_read", 1, ""),
    ("return_data", 2, ""),
    ("revert", 2, ""),
    ("abort", 2, ""),
    ("result_read", 1, ""),
    ("storage_get", 2, "i32"),
    ("storage_set", 4, ""),
    ("storage_remove", 2, ""),
    ("caller", 1, ""),
    ("block_height", 0, "i64"),
    ("emit_event", 4, ""),
    ("sha256", 3, ""),
    ("blake3", 3, ""),
    ("ed25519_verify", 4, "i32"),
    ("tensor_alloc", 5, "i32"),
    ("tensor_info", 2, ""),
    ("tensor_read", 2, "i32"),
    ("tensor_free", 1, ""),
    ("tensor_matmul", 2, "i32"),
    ("tensor_add", 2, "i32"),
    ("tensor_quantize", 2, "i32"),
    ("tensor_dequantize", 2, "i32"),
    ("tensor_norm", 3, "i32"),
    ("tensor_softmax", 1, "i32"),
    ("kl_divergence", 2, "i64"),
    ("hash_compare", 3, "i32"),
    ("model_load", 1, "i32"),
];

fn host_imports_module() -> Vec<u8> {
    let imports: String = HOST_IMPORTS
        .iter()
        .map(|(name, params, result)| {
            let result = if result.is_empty() { String::new() } else { format!("(result {result})") };
            format!(r#"(import "aivm" "{name}" (func (param {}) {result}))"#, vec!["i32"; *params].join(" "))
        })
        .collect();
    wat::parse_str(format!("(module {imports})")).unwrap_or_default()
}

/// wasm-smith's configuration for the deploy target: the proposals the VM enables, sizes
/// around its limits, so most generated modules reach compilation.
pub fn wasm_smith_config() -> wasm_smith::Config {
    wasm_smith::Config {
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        gc_enabled: false,
        reference_types_enabled: false,
        tail_call_enabled: false,
        exceptions_enabled: false,
        memory64_enabled: false,
        multi_value_enabled: true,
        bulk_memory_enabled: true,
        available_imports: Some(host_imports_module()),
        compact_imports_enabled: false,
        allow_start_export: false,
        max_imports: 12,
        // The exports the VM requires: a memory named `memory` and `[] -> []` entry points.
        exports: Some(wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run")) (func (export "call")))"#).unwrap_or_default()),
        max_memories: 0,
        max_memory32_bytes: 1 << 20,
        max_tables: 1,
        max_table_elements: 16_384,
        max_funcs: 64,
        max_instructions: 2_000,
        ..wasm_smith::Config::default()
    }
}

/// Generate a module from fuzzer bytes and run [`deploy`] on it.
pub fn deploy_from(vms: &DeployVms, data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    if let Ok(m) = wasm_smith::Module::new(wasm_smith_config(), &mut u) {
        deploy(vms, &m.to_bytes());
    }
}

/// A JSON-RPC request body, answered by a node's RPC methods over a fresh chain.
pub struct RpcTarget {
    module: jsonrpsee::RpcModule<()>,
    runtime: tokio::runtime::Runtime,
    /// The chain's database, removed on drop.
    _dir: std::path::PathBuf,
}

impl RpcTarget {
    pub fn new() -> Self {
        use aivm_runtime::{BlockLimits, Chain, ChainConfig, ChainVm, Genesis};
        use std::sync::Arc;
        let dir = std::env::temp_dir().join(format!("aivm-fuzz-rpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let chain =
            Chain::open(&dir, ChainVm::new(deploy_vm().speed), ChainConfig { chain_id: 1, fee_collector: [0; 32] }).unwrap_or_else(|e| panic!("chain: {e}"));
        chain.init_genesis(&Genesis { accounts: vec![([7; 32], 1 << 60)], ..Genesis::default() }).unwrap_or_else(|e| panic!("genesis: {e}"));
        let limits = BlockLimits { max_block_gas: crate::genesis::DEFAULT_MAX_BLOCK_GAS, max_tx_gas: crate::genesis::DEFAULT_MAX_BLOCK_GAS, min_gas_price: 1 };
        let mempool = crate::mempool::Mempool::new(crate::mempool::MempoolConfig::new(1, limits), GasSchedule::default());
        let executor = Arc::new(crate::execution::Executor::new(Arc::new(chain), mempool, limits).unwrap_or_else(|e| panic!("executor: {e}")));
        let (finalized, _) = tokio::sync::broadcast::channel(4);
        let module = crate::rpc::module(crate::rpc::RpcContext::new(executor, finalized, 1)).unwrap_or_else(|e| panic!("rpc module: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        RpcTarget { module, runtime, _dir: dir }
    }

    /// Answer one request body (a call or a batch).
    pub fn request(&self, data: &[u8]) {
        let body = String::from_utf8_lossy(data);
        let _ = self.runtime.block_on(self.module.raw_json_request(&body, 1));
    }
}

impl Drop for RpcTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

impl Default for RpcTarget {
    fn default() -> Self {
        Self::new()
    }
}
