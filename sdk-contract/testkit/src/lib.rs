//! # aivm-testkit
//!
//! Deploy and call contracts in the real AIVM from ordinary Rust tests:
//!
//! ```no_run
//! use aivm_testkit::{contract_wasm, TestChain};
//! let mut chain = TestChain::new();
//! let token = chain.deploy(&contract_wasm("token").unwrap()).unwrap();
//! let alice = [1u8; 32];
//! // `instantiate` runs once, as the deploy transaction does on chain.
//! let minted: u64 = chain.instantiate(&token, alice, &serde_json::json!({"supply": 1000})).unwrap().value;
//! ```
//!
//! Each contract has its own in-memory state; a call's writes are applied only if it
//! succeeds, exactly as on chain. Results carry the gas report by opcode.

pub mod hostile;

use aivm::{CallContext, CallRequest, Contract, Event, GasReport, GasSchedule, Limits, MemState, Vm, VmError};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a test call failed.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("{0}")]
    Vm(#[from] VmError),
    #[error("could not decode the result: {0}")]
    Decode(String),
    #[error("{0}")]
    Missing(String),
}

/// A successful call.
#[derive(Debug)]
pub struct Called<R> {
    pub value: R,
    pub gas: GasReport,
    pub events: Vec<Event>,
}

/// A deployed contract in a [`TestChain`].
#[derive(Clone)]
pub struct Deployed {
    pub address: [u8; 32],
    contract: Arc<Contract>,
}

/// A minimal chain: one VM, per-contract state, a block height and time.
pub struct TestChain {
    vm: Arc<Vm>,
    states: HashMap<[u8; 32], MemState>,
    /// Contracts whose `instantiate` has run.
    instantiated: std::collections::HashSet<[u8; 32]>,
    pub block_height: u64,
    pub block_time_ms: u64,
}

impl Default for TestChain {
    fn default() -> Self {
        Self::new()
    }
}

impl TestChain {
    /// A chain on a shared VM with the default limits and gas schedule.
    pub fn new() -> Self {
        static VM: std::sync::OnceLock<Arc<Vm>> = std::sync::OnceLock::new();
        let vm = VM.get_or_init(|| Arc::new(Vm::new(Limits::default(), GasSchedule::default()).expect("the default VM config is valid")));
        Self { vm: vm.clone(), states: HashMap::new(), instantiated: Default::default(), block_height: 1, block_time_ms: 1_700_000_000_000 }
    }

    /// A chain whose VM resolves MODEL_LOAD against `models` (its own VM, not the shared one).
    pub fn with_models(models: Arc<aivm::model::ModelRegistry>) -> Self {
        let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("the default VM config is valid").with_models(models);
        Self { vm: Arc::new(vm), states: HashMap::new(), instantiated: Default::default(), block_height: 1, block_time_ms: 1_700_000_000_000 }
    }

    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// Deploy wasm; the address is the code hash.
    pub fn deploy(&mut self, wasm: &[u8]) -> Result<Deployed, VmError> {
        let contract = self.vm.deploy(wasm)?;
        let address = contract.code_hash();
        self.states.entry(address).or_default();
        Ok(Deployed { address, contract })
    }

    /// Storage of a contract as it is now.
    pub fn state(&self, c: &Deployed) -> MemState {
        self.states.get(&c.address).cloned().unwrap_or_default()
    }

    /// Call with raw input bytes.
    pub fn call_raw(&mut self, c: &Deployed, caller: [u8; 32], entry: &str, input: Vec<u8>, gas_limit: u64) -> aivm::CallOutcome {
        self.run(c, caller, entry, input, gas_limit, Vm::call)
    }

    /// Run `how` (a call or an instantiation) on the contract's state; writes kept on success.
    fn run(
        &mut self,
        c: &Deployed,
        caller: [u8; 32],
        entry: &str,
        input: Vec<u8>,
        gas_limit: u64,
        how: fn(&Vm, &Contract, CallRequest<'_>) -> aivm::CallOutcome,
    ) -> aivm::CallOutcome {
        let state = self.states.entry(c.address).or_default();
        let ctx = CallContext { caller, contract: c.address, block_height: self.block_height, block_time_ms: self.block_time_ms };
        let out = how(&self.vm, &c.contract, CallRequest { entry, input, gas_limit, ctx, view: &mut state.clone() });
        if out.result.is_ok() {
            state.apply(&out.writes);
        }
        out
    }

    /// Run the contract's `instantiate` entry with CBOR-encoded arguments, as its deploy
    /// transaction does on chain: once per deployment (later calls naming it are refused by
    /// the VM), writes applied only if it succeeds.
    pub fn instantiate<A: Serialize, R: DeserializeOwned>(&mut self, c: &Deployed, deployer: [u8; 32], args: &A) -> Result<Called<R>, TestError> {
        if !self.instantiated.insert(c.address) {
            return Err(TestError::Vm(VmError::InstantiateOnly));
        }
        let out = self.run(c, deployer, aivm::INSTANTIATE_ENTRY, encode(args), 10_000_000_000, Vm::instantiate);
        let bytes = out.result?;
        Ok(Called { value: decode(&bytes)?, gas: out.gas, events: out.events })
    }

    /// Call with CBOR-encoded arguments and decode the result, with 10^10 gas (1 s).
    pub fn call<A: Serialize, R: DeserializeOwned>(&mut self, c: &Deployed, caller: [u8; 32], entry: &str, args: &A) -> Result<Called<R>, TestError> {
        self.call_with_gas(c, caller, entry, args, 10_000_000_000)
    }

    pub fn call_with_gas<A: Serialize, R: DeserializeOwned>(
        &mut self,
        c: &Deployed,
        caller: [u8; 32],
        entry: &str,
        args: &A,
        gas_limit: u64,
    ) -> Result<Called<R>, TestError> {
        let out = self.call_raw(c, caller, entry, encode(args), gas_limit);
        let bytes = out.result?;
        let value = decode(&bytes)?;
        Ok(Called { value, gas: out.gas, events: out.events })
    }
}

/// CBOR-encode arguments as the SDK expects them.
pub fn encode<A: Serialize + ?Sized>(args: &A) -> Vec<u8> {
    let mut v = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(args, &mut v);
    v
}

/// Decode a CBOR result (empty output decodes as `null`).
pub fn decode<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, TestError> {
    let bytes = if bytes.is_empty() { &[0xf6][..] } else { bytes };
    ciborium::from_reader(bytes).map_err(|e| TestError::Decode(format!("{e}")))
}

/// Where `make contracts` puts the compiled contracts.
pub fn contracts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("wasm32-unknown-unknown/release")
}

/// The compiled wasm of a contract in `contracts/` (name as in its Cargo.toml).
pub fn contract_wasm(name: &str) -> Result<Vec<u8>, TestError> {
    let path = contracts_dir().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).map_err(|e| TestError::Missing(format!("{}: {e} (run `make contracts` first)", path.display())))
}

/// A human-readable table of gas by opcode.
pub fn gas_table(g: &GasReport) -> String {
    let mut s = format!("{:<18} {:>6} {:>14}\n", "opcode", "calls", "gas");
    for (op, e) in &g.by_op {
        s += &format!("{op:<18} {:>6} {:>14}\n", e.calls, e.gas);
    }
    s += &format!("{:<18} {:>6} {:>14}\n", "total", "", g.used);
    s
}
