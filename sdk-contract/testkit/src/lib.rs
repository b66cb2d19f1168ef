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
//! succeeds, exactly as on chain. Results carry the gas report by opcode and what the same
//! call costs as a transaction on chain ([`TxGas`]: intrinsic gas, code load, execution, fee),
//! with on-chain contract addresses and per-account nonces, so a test's gas is the chain's.

pub mod hostile;
pub mod tx;

pub use tx::TxGas;

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
    /// The chain would refuse the transaction before running it (its gas limit is below the
    /// intrinsic gas and code cost).
    #[error("{0}")]
    Admission(String),
    /// The caller's native balance (`TestChain::set_balance`) cannot cover the value it sends.
    #[error("balance {balance} cannot cover the value {value}")]
    Balance { balance: u128, value: u128 },
}

/// A successful call.
#[derive(Debug)]
pub struct Called<R> {
    pub value: R,
    /// The VM's gas, by opcode.
    pub gas: GasReport,
    pub events: Vec<Event>,
    /// What the same call costs as a signed transaction on chain (the receipt's `gas_used`).
    pub tx: TxGas,
    /// What the call asked of the compute market (`hmm_swap`, `job_submit`), in order. The
    /// testkit has no market: it records them and moves nothing for them; a node carries
    /// them out after the call (`spec/market.md` §6c; `runtime/tests/market.rs`).
    pub market: Vec<aivm::MarketAction>,
}

/// A deployed contract in a [`TestChain`].
#[derive(Clone)]
pub struct Deployed {
    /// The on-chain address: from the deployer and its nonce, as `aivm deploy` gives it.
    pub address: [u8; 32],
    contract: Arc<Contract>,
    code_len: usize,
    /// What the deploy transaction cost (zero for [`TestChain::deploy`], which runs no
    /// transaction's worth of work: no `instantiate`).
    pub deploy_tx: TxGas,
}

/// Deploys made with [`TestChain::deploy`] come from this account.
pub const DEFAULT_DEPLOYER: [u8; 32] = [0xde; 32];

/// A minimal chain: one VM, per-contract state, per-account nonces, a block height and time.
pub struct TestChain {
    vm: Arc<Vm>,
    states: HashMap<[u8; 32], MemState>,
    /// Contracts whose `instantiate` has run.
    instantiated: std::collections::HashSet<[u8; 32]>,
    /// The next nonce of each account that has sent a transaction (0 for the others).
    nonces: HashMap<[u8; 32], u64>,
    /// Native balances: what callers can send with a call and what contracts hold and pay
    /// out (`transfer`). Fees are computed (`TxGas`) but not taken from them.
    balances: HashMap<[u8; 32], u128>,
    pub block_height: u64,
    pub block_time_ms: u64,
    /// The chain id written into transactions (its size counts toward intrinsic gas).
    pub chain_id: u64,
    /// Native units per gas; `aivm send` and `aivm deploy` use 1.
    pub gas_price: u64,
    /// Calls run so far: each gets its own transaction hash (what contract job ids derive from).
    calls: u64,
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
        Self::on(vm.clone())
    }

    fn on(vm: Arc<Vm>) -> Self {
        Self {
            vm,
            states: HashMap::new(),
            instantiated: Default::default(),
            nonces: HashMap::new(),
            balances: HashMap::new(),
            block_height: 1,
            block_time_ms: 1_700_000_000_000,
            chain_id: 7,
            gas_price: 1,
            calls: 0,
        }
    }

    /// A chain whose VM resolves MODEL_LOAD against `models` (its own VM, not the shared one).
    pub fn with_models(models: Arc<aivm::model::ModelRegistry>) -> Self {
        let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("the default VM config is valid").with_models(models);
        Self::on(Arc::new(vm))
    }

    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// Compile and install `wasm` from [`DEFAULT_DEPLOYER`] without running `instantiate` (call
    /// [`TestChain::instantiate`] for that, or use [`TestChain::deploy_by`], which does both
    /// as the deploy transaction does).
    pub fn deploy(&mut self, wasm: &[u8]) -> Result<Deployed, VmError> {
        let contract = self.vm.deploy(wasm)?;
        let address = tx::contract_address(&DEFAULT_DEPLOYER, self.next_nonce(DEFAULT_DEPLOYER));
        self.states.entry(address).or_default();
        Ok(Deployed { address, contract, code_len: wasm.len(), deploy_tx: TxGas::default() })
    }

    /// Deploy `wasm` from `deployer` and run its `instantiate` with `init_args` in the same
    /// step, exactly as a deploy transaction with 2.5·10⁹ gas (`aivm deploy`'s default) does:
    /// same address, same gas; nothing is installed if `instantiate` fails. A contract without
    /// an `instantiate` entry deploys with empty arguments (`&()` or anything: they are not read).
    pub fn deploy_by<A: Serialize>(&mut self, deployer: [u8; 32], wasm: &[u8], init_args: &A) -> Result<Deployed, TestError> {
        self.deploy_with_gas(deployer, wasm, init_args, 2_500_000_000)
    }

    pub fn deploy_with_gas<A: Serialize>(&mut self, deployer: [u8; 32], wasm: &[u8], init_args: &A, gas_limit: u64) -> Result<Deployed, TestError> {
        let contract = self.vm.deploy(wasm)?;
        let has_instantiate = contract.entries().any(|e| e == aivm::INSTANTIATE_ENTRY);
        let args = if has_instantiate { encode(init_args) } else { Vec::new() };
        let nonce = self.next_nonce(deployer);
        let fields = self.fields(deployer, nonce, gas_limit);
        let size = tx::encoded_size(&fields, tx::Payload::Deploy { code: wasm, args: &args });
        let code = self.vm.deploy_price(wasm).unwrap_or(u64::MAX);
        let (charged, budget) = self.admit(size, code, gas_limit)?;
        self.nonces.insert(deployer, nonce + 1);
        let address = tx::contract_address(&deployer, nonce);
        let mut d = Deployed { address, contract, code_len: wasm.len(), deploy_tx: TxGas::default() };
        let execution = if has_instantiate {
            let out = self.run(&d, deployer, aivm::INSTANTIATE_ENTRY, args, budget, Vm::instantiate, 0);
            out.result?;
            self.instantiated.insert(address);
            out.gas.used
        } else {
            self.states.entry(address).or_default();
            0
        };
        d.deploy_tx = self.settle(charged, execution);
        Ok(d)
    }

    fn next_nonce(&self, account: [u8; 32]) -> u64 {
        self.nonces.get(&account).copied().unwrap_or(0)
    }

    /// Set an account's nonce (to mirror an account that has already sent transactions).
    pub fn set_nonce(&mut self, account: [u8; 32], nonce: u64) {
        self.nonces.insert(account, nonce);
    }

    fn fields(&self, sender: [u8; 32], nonce: u64, gas_limit: u64) -> tx::TxFields {
        tx::TxFields { chain_id: self.chain_id, sender, nonce, gas_limit, gas_price: self.gas_price }
    }

    /// Intrinsic gas and the code cost of a transaction of `size` bytes, and what is left of
    /// `gas_limit` for the VM, as the chain computes them; refused below that.
    fn admit(&self, size: usize, code: u64, gas_limit: u64) -> Result<(TxGas, u64), TestError> {
        let intrinsic = tx::intrinsic(self.vm.schedule(), size).unwrap_or(u64::MAX);
        let budget = gas_limit
            .checked_sub(intrinsic.saturating_add(code))
            .ok_or_else(|| TestError::Admission(format!("gas limit {gas_limit} is below the intrinsic gas {intrinsic} plus the code's {code}")))?;
        Ok((TxGas { intrinsic, code, ..TxGas::default() }, budget))
    }

    /// The receipt's gas and fee once the VM has used `execution`.
    fn settle(&self, g: TxGas, execution: u64) -> TxGas {
        let gas_used = g.intrinsic.saturating_add(g.code).saturating_add(execution);
        TxGas { execution, gas_used, fee: gas_used as u128 * self.gas_price as u128, ..g }
    }

    /// Storage of a contract as it is now.
    pub fn state(&self, c: &Deployed) -> MemState {
        self.states.get(&c.address).cloned().unwrap_or_default()
    }

    /// Call with raw input bytes.
    pub fn call_raw(&mut self, c: &Deployed, caller: [u8; 32], entry: &str, input: Vec<u8>, gas_limit: u64) -> aivm::CallOutcome {
        self.run(c, caller, entry, input, gas_limit, Vm::call, 0)
    }

    /// An account's native balance (a contract's included).
    pub fn balance(&self, account: &[u8; 32]) -> u128 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Set an account's native balance (genesis, for tests).
    pub fn set_balance(&mut self, account: [u8; 32], balance: u128) {
        self.balances.insert(account, balance);
    }

    /// Run `how` (a call or an instantiation) on the contract's state; writes kept on success.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        c: &Deployed,
        caller: [u8; 32],
        entry: &str,
        input: Vec<u8>,
        gas_limit: u64,
        how: fn(&Vm, &Contract, CallRequest<'_>) -> aivm::CallOutcome,
        value: u128,
    ) -> aivm::CallOutcome {
        // The value moves to the contract before it runs, as on chain; the caller's balance
        // was checked by the public entry points.
        let balance = self.balance(&c.address).saturating_add(value);
        let state = self.states.entry(c.address).or_default();
        self.calls += 1;
        let tx_hash = *blake3::hash(&[&b"aivm testkit call"[..], &self.calls.to_le_bytes()].concat()).as_bytes();
        let ctx = CallContext { caller, contract: c.address, block_height: self.block_height, block_time_ms: self.block_time_ms, value, balance, tx_hash };
        let out = how(&self.vm, &c.contract, CallRequest { entry, input, gas_limit, ctx, view: &mut state.clone() });
        if out.result.is_ok() {
            state.apply(&out.writes);
            let paid = self.balance(&caller).saturating_sub(value);
            self.balances.insert(caller, paid);
            let sent: u128 = out.transfers.iter().map(|t| t.1).sum();
            self.balances.insert(c.address, balance.saturating_sub(sent));
            for (to, amount) in &out.transfers {
                *self.balances.entry(*to).or_default() += amount;
            }
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
        let out = self.run(c, deployer, aivm::INSTANTIATE_ENTRY, encode(args), 10_000_000_000, Vm::instantiate, 0);
        let bytes = out.result?;
        Ok(Called { value: decode(&bytes)?, tx: TxGas { execution: out.gas.used, ..TxGas::default() }, gas: out.gas, events: out.events, market: out.market })
    }

    /// Call with CBOR-encoded arguments and decode the result, as a transaction with 10^8 gas
    /// (`aivm send`'s default).
    pub fn call<A: Serialize, R: DeserializeOwned>(&mut self, c: &Deployed, caller: [u8; 32], entry: &str, args: &A) -> Result<Called<R>, TestError> {
        self.call_with_gas(c, caller, entry, args, 100_000_000)
    }

    /// A call as a transaction from `caller` with `gas_limit`: the VM gets what is left after
    /// intrinsic gas and the code load, as on chain, and the caller's nonce advances whether or
    /// not the call succeeds.
    pub fn call_with_gas<A: Serialize, R: DeserializeOwned>(
        &mut self,
        c: &Deployed,
        caller: [u8; 32],
        entry: &str,
        args: &A,
        gas_limit: u64,
    ) -> Result<Called<R>, TestError> {
        self.call_with_value(c, caller, entry, args, 0, gas_limit)
    }

    /// A call that sends `value` native units from `caller`'s balance to the contract (moved
    /// only if the call succeeds, as on chain; `aivm send --value`).
    pub fn call_with_value<A: Serialize, R: DeserializeOwned>(
        &mut self,
        c: &Deployed,
        caller: [u8; 32],
        entry: &str,
        args: &A,
        value: u128,
        gas_limit: u64,
    ) -> Result<Called<R>, TestError> {
        let balance = self.balance(&caller);
        if value > balance {
            return Err(TestError::Balance { balance, value });
        }
        let input = encode(args);
        let nonce = self.next_nonce(caller);
        let fields = self.fields(caller, nonce, gas_limit);
        let size = tx::encoded_size(&fields, tx::Payload::Call { contract: &c.address, entry, args: &input, value });
        let schedule = self.vm.schedule();
        let load = schedule.storage_read.cost(c.code_len as u64).and_then(|g| g.checked_add(schedule.storage_read_cold)).unwrap_or(u64::MAX);
        let (charged, budget) = self.admit(size, load, gas_limit)?;
        self.nonces.insert(caller, nonce + 1);
        let out = self.run(c, caller, entry, input, budget, Vm::call, value);
        let bytes = out.result?;
        let value = decode(&bytes)?;
        Ok(Called { value, tx: self.settle(charged, out.gas.used), gas: out.gas, events: out.events, market: out.market })
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

/// The wasm `aivm build` (or `cargo build --target wasm32-unknown-unknown --release`) made for
/// the crate `name` of the project at `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`):
/// under `$CARGO_TARGET_DIR`, or the project's `target/`.
pub fn built_wasm(manifest_dir: &str, name: &str) -> Result<Vec<u8>, TestError> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(manifest_dir).join("target"));
    let path = target.join("wasm32-unknown-unknown/release").join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).map_err(|e| TestError::Missing(format!("{}: {e} (run `aivm build` first)", path.display())))
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
