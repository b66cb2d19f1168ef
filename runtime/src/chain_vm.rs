//! Executing one transaction against the state: the [`TxVm`] that Block-STM runs.
//!
//! Order of work (`spec/state.md`): read the sender, check the nonce, compute intrinsic gas,
//! check that `gas_limit · gas_price` (plus a transfer's amount) is affordable, run the
//! payload within the remaining gas, then charge `gas_used · gas_price` and bump the nonce.
//! A failed payload keeps the fee and the nonce bump and discards everything else. Fees are
//! *not* written here: the block credits their sum to the fee collector after execution, so
//! no transaction ever reads or writes the collector because of fees (no conflicts).

use crate::admission::Admission;
use crate::blockstm::{ReadError, StateRead, TxVm};
use crate::receipt::{LogEvent, Receipt, TxStatus};
use crate::state::{Account, Address, CodeHash, StateKey, StateValue};
use crate::tx::{Payload, VerifiedTx};
use aivm::cache::ByteLru;
use aivm::{CallContext, CallRequest, Contract, ReadBlocked, StateView, Vm, VmError};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The block a transaction runs in, as contracts see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEnv {
    pub height: u64,
    pub time_ms: u64,
}

/// The VM plus compiled contracts by code hash. Shared by all blocks.
pub struct ChainVm {
    vm: Vm,
    /// Code is content-addressed and never changes, so a compiled contract found here is the
    /// right one for any state that names its hash. Holds the code length too, which the
    /// load price is charged on whether or not the cache hits.
    /// Bounded by bytes (least recently used evicted): code deployed by proposals that never
    /// finalize must not stay forever.
    contracts: Mutex<ByteLru<CodeHash, (Arc<Contract>, usize)>>,
}

/// A contract's address: BLAKE3 of a domain tag, the deployer and the deployer's nonce.
pub fn contract_address(deployer: &Address, nonce: u64) -> Address {
    let mut h = blake3::Hasher::new();
    h.update(b"aivm-contract-v1");
    h.update(deployer);
    h.update(&nonce.to_le_bytes());
    *h.finalize().as_bytes()
}

/// The state entries that install a contract: its code (`hash` = BLAKE3 of it, as
/// [`Contract::code_hash`] gives) and its account.
pub fn contract_entries(address: Address, hash: CodeHash, code: &[u8]) -> [(StateKey, StateValue); 2] {
    [
        (StateKey::Code(hash), StateValue::Bytes(code.into())),
        (StateKey::Account(address), StateValue::Account(Account { balance: 0, nonce: 0, code_hash: Some(hash) })),
    ]
}

/// A call's storage writes (contract-relative keys, `None` = removed) as state entries.
pub fn storage_entries(contract: Address, writes: aivm::WriteSet) -> impl Iterator<Item = (StateKey, StateValue)> {
    writes.into_iter().map(move |(k, v)| (StateKey::Storage(contract, k.into()), v.map_or(StateValue::Deleted, |v| StateValue::Bytes(v.into()))))
}

impl ChainVm {
    pub fn new(vm: Vm) -> Self {
        let budget = vm.limits().compiled_cache_bytes;
        Self { vm, contracts: Mutex::new(ByteLru::new(budget)) }
    }

    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// The executor for one block.
    pub fn for_block(&self, env: BlockEnv) -> BlockVm<'_> {
        BlockVm { chain: self, env, fault: OnceLock::new() }
    }

    fn cached(&self, hash: &CodeHash) -> Option<(Arc<Contract>, usize)> {
        self.contracts.lock().get(hash)
    }

    fn compile(&self, code: &[u8]) -> Result<Arc<Contract>, VmError> {
        let c = self.vm.deploy(code)?;
        self.contracts.lock().insert(c.code_hash(), (c.clone(), code.len()), c.memory_size());
        Ok(c)
    }

    /// Run a read-only contract call against `view` (RPC queries, `aivm call`): no
    /// transaction, no fee, writes returned but never applied by the caller. With a
    /// `deadline` the call also stops at that wall-clock time ([`aivm::Vm::query`]).
    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        contract: Address,
        entry: &str,
        args: Vec<u8>,
        gas_limit: u64,
        ctx: CallContext,
        deadline: Option<std::time::Duration>,
    ) -> Result<aivm::CallOutcome, VmError> {
        self.run_at(view, contract, |vm, c, cv| {
            let req = CallRequest { entry, input: args, gas_limit, ctx, view: cv };
            match deadline {
                Some(d) => vm.query(c, req, d),
                None => vm.call(c, req),
            }
        })
    }

    /// Run the `instantiate` entry of the contract at `address` against `view`, as a deploy
    /// does (`aivm call ... instantiate` installs a contract this way): writes returned, never
    /// applied here.
    pub fn instantiate(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        contract: Address,
        args: Vec<u8>,
        gas_limit: u64,
        ctx: CallContext,
    ) -> Result<aivm::CallOutcome, VmError> {
        self.run_at(view, contract, |vm, c, cv| vm.instantiate(c, CallRequest { entry: aivm::INSTANTIATE_ENTRY, input: args, gas_limit, ctx, view: cv }))
    }

    /// Load the contract at `contract` from `view` and run `f` on it with its storage view.
    fn run_at(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        contract: Address,
        f: impl FnOnce(&Vm, &Contract, &mut ContractView<'_>) -> aivm::CallOutcome,
    ) -> Result<aivm::CallOutcome, VmError> {
        let (c, _) = self.load(view, contract).map_err(|_| VmError::Blocked)??;
        let mut cv = ContractView { contract, view, blocked: None };
        Ok(f(&self.vm, &c, &mut cv))
    }

    /// The compiled contract at `address`, or why there is none.
    fn load(&self, view: &mut dyn StateRead<StateKey, StateValue>, address: Address) -> Result<Result<(Arc<Contract>, usize), VmError>, ReadError> {
        let hash = match view.read(&StateKey::Account(address))? {
            Some(StateValue::Account(Account { code_hash: Some(h), .. })) => h,
            _ => return Ok(Err(VmError::Resource("no contract at this address".into()))),
        };
        if let Some(hit) = self.cached(&hash) {
            return Ok(Ok(hit));
        }
        let Some(StateValue::Bytes(code)) = view.read(&StateKey::Code(hash))? else {
            return Ok(Err(VmError::Internal("contract code missing from state".into())));
        };
        Ok(self.compile(&code).map(|c| (c, code.len())))
    }
}

/// [`ChainVm`] bound to one block's environment.
pub struct BlockVm<'a> {
    chain: &'a ChainVm,
    env: BlockEnv,
    /// The first machine fault met (see [`VmError::is_machine_fault`]): the block's execution
    /// is then abandoned as a whole, so no receipt records it.
    fault: OnceLock<String>,
}

impl BlockVm<'_> {
    /// The machine fault that spoiled this execution, if any.
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }

    fn machine_fault(&self, e: &VmError) {
        let _ = self.fault.set(e.to_string());
    }
}

/// What the payload did, before the fee is settled.
struct PayloadResult {
    status: TxStatus,
    gas: u64,
    output: Vec<u8>,
    events: Vec<LogEvent>,
    contract_address: Option<Address>,
    writes: BTreeMap<StateKey, StateValue>,
}

impl PayloadResult {
    fn failed(kind: &str, message: impl Into<String>, gas: u64) -> Self {
        PayloadResult {
            status: TxStatus::Failed { kind: kind.into(), message: message.into() },
            gas,
            output: Vec::new(),
            events: Vec::new(),
            contract_address: None,
            writes: BTreeMap::new(),
        }
    }

    fn ok(gas: u64) -> Self {
        PayloadResult { status: TxStatus::Success, gas, output: Vec::new(), events: Vec::new(), contract_address: None, writes: BTreeMap::new() }
    }
}

/// The accounts a successful call leaves: `payer` (already less the value it sent), the
/// contract (`account`, whose balance in the call was `balance`, the value included) less what
/// it transferred, and each recipient credited, in order. `None` if a credit overflows.
fn native_moves(
    view: &mut dyn StateRead<StateKey, StateValue>,
    payer: Option<(Address, Account)>,
    (contract, account): (Address, Account),
    balance: u128,
    transfers: Vec<([u8; 32], u128)>,
) -> Result<Option<BTreeMap<Address, Account>>, ReadError> {
    let mut accounts: BTreeMap<Address, Account> = payer.into_iter().collect();
    let sent: u128 = transfers.iter().map(|t| t.1).sum(); // ≤ balance: the VM checked each
    accounts.insert(contract, Account { balance: balance - sent, ..account });
    for (to, amount) in transfers {
        let mut recipient = match accounts.get(&to) {
            Some(a) => *a,
            None => read_account(view, &to)?.unwrap_or_default(),
        };
        let Some(credited) = recipient.balance.checked_add(amount) else { return Ok(None) };
        recipient.balance = credited;
        accounts.insert(to, recipient);
    }
    Ok(Some(accounts))
}

fn read_account(view: &mut dyn StateRead<StateKey, StateValue>, a: &Address) -> Result<Option<Account>, ReadError> {
    Ok(match view.read(&StateKey::Account(*a))? {
        Some(StateValue::Account(acc)) => Some(acc),
        _ => None,
    })
}

impl TxVm for BlockVm<'_> {
    type Tx = VerifiedTx;
    type Key = StateKey;
    type Value = StateValue;
    type Output = Receipt;

    fn execute(&self, vtx: &VerifiedTx, view: &mut dyn StateRead<StateKey, StateValue>) -> Result<(Receipt, Vec<(StateKey, StateValue)>), ReadError> {
        let tx = vtx.tx();
        let schedule = self.chain.vm.schedule();
        let reject = |why: String| Ok((Receipt::rejected(vtx.hash, why), Vec::new()));

        let Some(mut sender) = read_account(view, &tx.sender)? else {
            return reject("sender account does not exist".into());
        };
        if tx.nonce != sender.nonce {
            return reject(format!("wrong nonce {}, expected {}", tx.nonce, sender.nonce));
        }
        let adm = match Admission::of(vtx, schedule) {
            Ok(a) => a,
            Err(why) => return reject(why.to_string()),
        };
        match adm.max_cost() {
            Some(need) if need <= sender.balance => {}
            _ => return reject(format!("balance {} cannot cover gas_limit·gas_price {} plus {}", sender.balance, adm.max_fee, adm.value)),
        }
        let intrinsic = adm.intrinsic;

        let budget = tx.gas_limit - intrinsic;
        let mut res = match &tx.payload {
            Payload::Transfer { to, amount } => self.transfer(view, sender, &tx.sender, to, *amount)?,
            Payload::Deploy { code, args } => self.deploy(view, vtx.hash, sender, &tx.sender, tx.nonce, code, args, budget)?,
            Payload::Call { contract, entry, args, value } => self.call(view, vtx.hash, sender, &tx.sender, *contract, entry, args, *value, budget)?,
            Payload::Market(m) => self.market(view, vtx, sender, adm.max_fee, m, budget)?,
            Payload::Staking(s) => self.staking(view, vtx, sender, adm.max_fee, s, budget)?,
        };
        // Every payload stays within its budget; the min only guards the arithmetic below.
        let gas_used = intrinsic + res.gas.min(budget);
        let fee = gas_used as u128 * tx.gas_price as u128;

        // Settle the sender last: a transfer to oneself or a call that moved nothing native
        // leaves only the fee and the nonce.
        if let Some(StateValue::Account(a)) = res.writes.get(&StateKey::Account(tx.sender)) {
            sender = *a;
        }
        sender.balance = sender.balance.saturating_sub(fee); // affordable: checked against max_fee + value above
        sender.nonce += 1;
        res.writes.insert(StateKey::Account(tx.sender), StateValue::Account(sender));

        let receipt = Receipt {
            tx_hash: vtx.hash,
            status: res.status,
            gas_used,
            fee,
            output: res.output,
            events: res.events,
            contract_address: res.contract_address.map(serde_bytes::ByteArray::new),
        };
        Ok((receipt, res.writes.into_iter().collect()))
    }
}

impl BlockVm<'_> {
    /// `sender` is the account as read once by `execute`: speculative reads of one key can
    /// disagree within an execution (validation rejects such runs later), so nothing here
    /// may rely on a second read agreeing with the first.
    fn transfer(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        mut sender: Account,
        from: &Address,
        to: &Address,
        amount: u128,
    ) -> Result<PayloadResult, ReadError> {
        let mut res = PayloadResult::ok(0);
        if from == to {
            return Ok(res);
        }
        let mut recipient = read_account(view, to)?.unwrap_or_default();
        let Some(credited) = recipient.balance.checked_add(amount) else {
            return Ok(PayloadResult::failed("overflow", "recipient balance would overflow", 0));
        };
        sender.balance = sender.balance.saturating_sub(amount); // affordable: checked by `execute`
        recipient.balance = credited;
        res.writes.insert(StateKey::Account(*from), StateValue::Account(sender));
        res.writes.insert(StateKey::Account(*to), StateValue::Account(recipient));
        Ok(res)
    }

    /// Install `code` and run its `instantiate` entry with `args`, atomically: nobody can
    /// initialise the contract before its deployer, and a failed instantiation installs
    /// nothing. Anyone can send native tokens to a contract's address before it is deployed
    /// (the address is predictable): the deploy keeps that balance. An address that already
    /// holds code is never overwritten.
    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        tx_hash: [u8; 32],
        sender: Account,
        deployer: &Address,
        nonce: u64,
        code: &[u8],
        args: &[u8],
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        // The size part first (it pays for the validation that tells the rest), then the
        // whole price: size plus the module's compile work (spec/gas.md "Deploy").
        let Some(by_size) = self.chain.vm.schedule().deploy.cost(code.len() as u64).filter(|g| *g <= budget) else {
            return Ok(PayloadResult::failed("out_of_gas", "deploy costs more than the remaining gas", budget));
        };
        let g = match self.chain.vm.deploy_price(code) {
            Ok(g) if g <= budget => g,
            Ok(_) | Err(VmError::OutOfGas) => {
                return Ok(PayloadResult::failed("out_of_gas", "deploy costs more than the remaining gas", budget));
            }
            Err(e) => return Ok(PayloadResult::failed(e.kind(), e.to_string(), by_size)),
        };
        let address = contract_address(deployer, nonce);
        let existing = read_account(view, &address)?.unwrap_or_default();
        if existing.code_hash.is_some() {
            return Ok(PayloadResult::failed("deploy", "the contract address already holds code", g));
        }
        let contract = match self.chain.compile(code) {
            Ok(c) => c,
            Err(e) => return Ok(PayloadResult::failed(e.kind(), e.to_string(), g)),
        };
        let ctx = CallContext {
            caller: *deployer,
            contract: address,
            block_height: self.env.height,
            block_time_ms: self.env.time_ms,
            value: 0,
            balance: existing.balance,
            tx_hash,
        };
        let mut cv = ContractView { contract: address, view, blocked: None };
        let out = self
            .chain
            .vm
            .instantiate(&contract, CallRequest { entry: aivm::INSTANTIATE_ENTRY, input: args.to_vec(), gas_limit: budget - g, ctx, view: &mut cv });
        if let Some(e) = cv.blocked {
            return Err(e);
        }
        let gas = g + out.gas.used;
        let output = match out.result {
            Ok(o) => o,
            Err(e) => {
                if e.is_machine_fault() {
                    self.machine_fault(&e);
                }
                return Ok(PayloadResult::failed(e.kind(), format!("instantiate: {e}"), gas));
            }
        };
        let mut res = PayloadResult::ok(gas);
        let [code_entry, _] = contract_entries(address, contract.code_hash(), code);
        res.writes.insert(code_entry.0, code_entry.1);
        // What `instantiate` paid out of a balance sent to the address beforehand.
        let installed = Account { code_hash: Some(contract.code_hash()), ..existing };
        let sent = !out.transfers.is_empty();
        let Some(accounts) = native_moves(view, Some((*deployer, sender)), (address, installed), existing.balance, out.transfers)? else {
            return Ok(PayloadResult::failed("overflow", "a transfer's recipient balance would overflow", gas));
        };
        for (a, acc) in accounts {
            if a == address || sent {
                res.writes.insert(StateKey::Account(a), StateValue::Account(acc));
            }
        }
        res.writes.extend(storage_entries(address, out.writes));
        res.events = out.events.into_iter().map(|e| LogEvent { contract: address, topic: e.topic, data: e.data }).collect();
        res.output = output;
        res.contract_address = Some(address);
        self.market_actions(view, tx_hash, address, out.market, res, budget)
    }

    /// Run `entry` of `contract` for `caller`, who sends it `value` (affordable: checked by
    /// `execute` against the account `sender` it read). The value and the contract's own
    /// transfers are applied with the call's writes: a failed call moves nothing.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        tx_hash: [u8; 32],
        sender: Account,
        caller: &Address,
        contract: Address,
        entry: &str,
        args: &[u8],
        value: u128,
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        let (code, code_len) = match self.chain.load(view, contract)? {
            Ok(c) => c,
            Err(e) => {
                if e.is_machine_fault() {
                    self.machine_fault(&e);
                }
                return Ok(PayloadResult::failed(e.kind(), e.to_string(), 0));
            }
        };
        // Loading is priced like a cold read of the code from storage, cache hit or not.
        let schedule = self.chain.vm.schedule();
        let load = schedule.storage_read.cost(code_len as u64).and_then(|g| g.checked_add(schedule.storage_read_cold)).unwrap_or(u64::MAX);
        if load > budget {
            return Ok(PayloadResult::failed("out_of_gas", "loading the contract costs more than the remaining gas", budget));
        }
        let account = read_account(view, &contract)?.unwrap_or_default();
        let Some(balance) = account.balance.checked_add(value) else {
            return Ok(PayloadResult::failed("overflow", "the contract's balance would overflow", load));
        };
        let ctx = CallContext { caller: *caller, contract, block_height: self.env.height, block_time_ms: self.env.time_ms, value, balance, tx_hash };
        let mut cv = ContractView { contract, view, blocked: None };
        let out = self.chain.vm.call(&code, CallRequest { entry, input: args.to_vec(), gas_limit: budget - load, ctx, view: &mut cv });
        if let Some(e) = cv.blocked {
            return Err(e);
        }
        let gas = load + out.gas.used;
        if let Err(e) = &out.result {
            if e.is_machine_fault() {
                self.machine_fault(e);
            }
        }
        let output = match out.result {
            Err(e) => return Ok(PayloadResult::failed(e.kind(), e.to_string(), gas)),
            Ok(output) => output,
        };
        let mut res = PayloadResult::ok(gas);
        let payer = Some((*caller, Account { balance: sender.balance.saturating_sub(value), ..sender }));
        let sent: u128 = out.transfers.iter().map(|t| t.1).sum();
        let Some(accounts) = native_moves(view, payer, (contract, account), balance, out.transfers)? else {
            return Ok(PayloadResult::failed("overflow", "a transfer's recipient balance would overflow", gas));
        };
        if value > 0 || sent > 0 {
            res.writes.extend(accounts.into_iter().map(|(a, acc)| (StateKey::Account(a), StateValue::Account(acc))));
        }
        res.output = output;
        res.events = out.events.into_iter().map(|e| LogEvent { contract, topic: e.topic, data: e.data }).collect();
        res.writes.extend(storage_entries(contract, out.writes));
        self.market_actions(view, tx_hash, contract, out.market, res, budget)
    }

    /// Carry out what a successful call asked of the market (`spec/market.md` §6c), in order,
    /// each as the market transaction it names with `contract` as its sender, on top of the
    /// call's own writes and within the gas the call left. The first that fails fails the
    /// call: its gas is charged, nothing else is kept.
    fn market_actions(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        tx_hash: [u8; 32],
        contract: Address,
        actions: Vec<aivm::MarketAction>,
        mut res: PayloadResult,
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        use crate::market::exec::{execute, MarketCtx, MarketFailure};
        use crate::market::{hmm::Side, MarketTx};
        for action in actions {
            let (id, tx) = match action {
                aivm::MarketAction::Swap { sku, sell_units, amount_in, min_out } => {
                    let side = if sell_units { Side::Units } else { Side::Native };
                    (tx_hash, MarketTx::Swap { sku, side, amount_in, min_out })
                }
                aivm::MarketAction::SubmitJob { id, sku, prompt, max_new, sla_blocks, budget, tee } => {
                    (id, MarketTx::SubmitJob { sku, prompt, max_new, sla_blocks, budget, tee })
                }
            };
            let ctx = MarketCtx {
                schedule: self.chain.vm.schedule(),
                models: self.chain.vm.models(),
                height: self.env.height,
                time_ms: self.env.time_ms,
                tx_hash: id,
                sender: contract,
            };
            let mut pending = Pending { view: &mut *view, writes: &res.writes };
            let account = read_account(&mut pending, &contract)?.unwrap_or_default();
            match execute(&ctx, &mut pending, account, 0, &tx, budget.saturating_sub(res.gas)) {
                Ok(out) => {
                    res.gas += out.gas;
                    res.writes.extend(out.writes);
                    res.events.extend(out.events);
                }
                Err(MarketFailure::Read(e)) => return Err(e),
                Err(MarketFailure::Failed { gas, error }) => {
                    return Ok(PayloadResult::failed(error.kind(), format!("market action: {error}"), res.gas + gas));
                }
                Err(MarketFailure::Fault(f)) => {
                    let _ = self.fault.set(f.clone());
                    return Ok(PayloadResult::failed("machine_fault", f, budget));
                }
            }
        }
        Ok(res)
    }
}

/// The state as a call left it: its writes over the block's view (what a call's market
/// actions read).
struct Pending<'a> {
    view: &'a mut dyn StateRead<StateKey, StateValue>,
    writes: &'a BTreeMap<StateKey, StateValue>,
}

impl StateRead<StateKey, StateValue> for Pending<'_> {
    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, ReadError> {
        match self.writes.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => self.view.read(key),
        }
    }
}

impl BlockVm<'_> {
    /// A market operation (`crate::market`): it may spend the sender's balance beyond the
    /// reserved fee, so it gets the account as read above.
    fn market(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        vtx: &VerifiedTx,
        sender: Account,
        reserved: u128,
        m: &crate::market::MarketTx,
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        let ctx = self.ledger_ctx(vtx);
        self.ledger_result(crate::market::exec::execute(&ctx, view, sender, reserved, m, budget), budget)
    }

    /// A validator staking operation (`crate::staking`), through the same ledger as the market.
    fn staking(
        &self,
        view: &mut dyn StateRead<StateKey, StateValue>,
        vtx: &VerifiedTx,
        sender: Account,
        reserved: u128,
        s: &crate::staking::StakingTx,
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        let ctx = self.ledger_ctx(vtx);
        self.ledger_result(crate::staking::execute(&ctx, view, sender, reserved, s, budget), budget)
    }

    fn ledger_ctx(&self, vtx: &VerifiedTx) -> crate::market::exec::MarketCtx<'_> {
        crate::market::exec::MarketCtx {
            schedule: self.chain.vm.schedule(),
            models: self.chain.vm.models(),
            height: self.env.height,
            time_ms: self.env.time_ms,
            tx_hash: vtx.hash,
            sender: vtx.tx().sender,
        }
    }

    fn ledger_result(
        &self,
        r: Result<crate::market::exec::MarketOutcome, crate::market::exec::MarketFailure>,
        budget: u64,
    ) -> Result<PayloadResult, ReadError> {
        use crate::market::exec::MarketFailure;
        Ok(match r {
            Ok(out) => {
                PayloadResult { status: TxStatus::Success, gas: out.gas, output: out.output, events: out.events, contract_address: None, writes: out.writes }
            }
            Err(MarketFailure::Read(e)) => return Err(e),
            Err(MarketFailure::Failed { gas, error }) => PayloadResult::failed(error.kind(), error.to_string(), gas),
            Err(MarketFailure::Fault(f)) => {
                let _ = self.fault.set(f.clone());
                PayloadResult::failed("machine_fault", f, budget)
            }
        })
    }
}

/// A contract's storage as the VM sees it: its keys live under `StateKey::Storage(contract, _)`.
struct ContractView<'a> {
    contract: Address,
    view: &'a mut dyn StateRead<StateKey, StateValue>,
    /// Set when a read hit an unfinished transaction; the call is then re-run by Block-STM.
    blocked: Option<ReadError>,
}

impl StateView for ContractView<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadBlocked> {
        self.bytes(&StateKey::Storage(self.contract, key.into()))
    }

    /// A settled job is final; a provisional one (the optimistic track) carries its window.
    fn job_result(&mut self, id: &[u8; 32]) -> Result<Option<aivm::JobResult>, ReadBlocked> {
        use crate::market::{Job, JobStatus, MarketKey};
        let Some(bytes) = self.bytes(&MarketKey::Job(id).state_key())? else { return Ok(None) };
        let Ok(job) = ciborium::from_reader::<Job, _>(&bytes[..]) else { return Ok(None) };
        Ok(match job.status {
            JobStatus::Settled { output, .. } => Some(aivm::JobResult { provisional_until: None, output, bytes: bytes.len() }),
            JobStatus::Provisional { output, until, .. } => Some(aivm::JobResult { provisional_until: Some(until), output, bytes: bytes.len() }),
            _ => None,
        })
    }

    fn market_workers(&mut self, sku: &[u8; 32]) -> Result<Option<usize>, ReadBlocked> {
        crate::market::quote::workers(&mut |k| self.bytes(k), sku)
    }

    fn market_quote(&mut self, sku: &[u8; 32], units: u64, ctx: &CallContext) -> Result<Option<aivm::MarketQuote>, ReadBlocked> {
        let key = crate::market::quote::quote_key(&ctx.contract, ctx.block_height, sku, units);
        let q = crate::market::quote::quote(&mut |k| self.bytes(k), sku, units, &key)?;
        Ok(q.map(|q| aivm::MarketQuote { price: q.price, worker: q.worker, bytes: q.bytes }))
    }
}

impl ContractView<'_> {
    fn bytes(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, ReadBlocked> {
        match self.view.read(key) {
            Ok(Some(StateValue::Bytes(b))) => Ok(Some(b.to_vec())),
            Ok(_) => Ok(None),
            Err(e) => {
                self.blocked = Some(e);
                Err(ReadBlocked)
            }
        }
    }
}
