//! Deploy and call contracts.

use crate::cache::{cache_key, engine_digest, ByteLru, DiskCache};
use crate::config::{engine_config, Limits};
use crate::error::{ValidationError, VmError};
use crate::gas::{GasReport, GasSchedule};
use crate::host::{self, CallContext, Event, HostState, StateView, ViewPtr, WriteSet};
use crate::validate::validate;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::{Engine, InstancePre, Linker, Module, Store, StoreLimitsBuilder};

/// Compiled contracts by cache key.
pub type ContractCache = ByteLru<[u8; 32], Arc<Contract>>;

/// The entry point a deploy runs, once, with the deploy's arguments (`Vm::instantiate`).
pub const INSTANTIATE_ENTRY: &str = "instantiate";

/// The trap message of a call that passed [`Limits::max_stack_bytes`].
pub const STACK_EXHAUSTED: &str = "call stack exhausted (the deterministic limit, see spec/gas.md)";

/// A deployed, compiled contract, ready to instantiate in microseconds.
pub struct Contract {
    code_hash: [u8; 32],
    pre: InstancePre<HostState>,
    entries: BTreeSet<String>,
    /// Bytes it holds in memory (compiled image and wasm), for cache budgets.
    size: usize,
}

impl Contract {
    /// BLAKE3 of the wasm bytes: the contract's code identity.
    pub fn code_hash(&self) -> [u8; 32] {
        self.code_hash
    }

    /// Bytes it holds in memory (its compiled image and the wasm), for cache budgets.
    pub fn memory_size(&self) -> usize {
        self.size
    }

    /// Exported functions of type `[] -> []` that can be called.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(String::as_str)
    }
}

/// One call to make.
pub struct CallRequest<'a> {
    pub entry: &'a str,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    pub ctx: CallContext,
    pub view: &'a mut dyn StateView,
}

/// What a call did. On error, `writes` and `events` are empty: nothing it did survives.
#[derive(Debug)]
pub struct CallOutcome {
    pub result: Result<Vec<u8>, VmError>,
    pub gas: GasReport,
    pub events: Vec<Event>,
    pub writes: WriteSet,
    /// Native transfers the contract made (`transfer`), in order; empty unless it succeeded.
    pub transfers: Vec<([u8; 32], u128)>,
    /// What the contract asked of the compute market, in order; empty unless it succeeded.
    pub market: Vec<crate::host::MarketAction>,
}

/// The AIVM: one engine, one linker with the host ABI, and a compiled-module cache.
pub struct Vm {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    schedule: Arc<GasSchedule>,
    digest: [u8; 32],
    cache: Mutex<ContractCache>,
    /// One per pooled instance: a call waits here for a free slot instead of failing, so how
    /// many calls run at once (executor threads, queries) never changes a call's result.
    slots: crate::slots::Slots,
    disk: Option<DiskCache>,
    models: Option<Arc<crate::model::ModelRegistry>>,
    tee: Arc<aivm_tee::TeePolicy>,
    /// Where the tensor opcodes run (never changes a result; see [`crate::backend`]).
    backend: Arc<dyn crate::backend::Backend>,
    /// Started by the first query with a deadline ([`Vm::query`]).
    clock: std::sync::OnceLock<Option<crate::deadline::EpochClock>>,
}

/// What deploying `wasm` costs under `limits` and `schedule` (see [`Vm::deploy_price`]);
/// for tools that price a module without a VM.
pub fn deploy_price(wasm: &[u8], limits: &Limits, schedule: &GasSchedule) -> Result<u64, VmError> {
    let info = validate(wasm, limits)?;
    schedule.deploy_cost(wasm.len() as u64, info.compile_work).ok_or(VmError::OutOfGas)
}

impl Vm {
    pub fn new(limits: Limits, schedule: GasSchedule) -> Result<Self, VmError> {
        let config = engine_config(&limits, &schedule);
        Self::with_config(limits, schedule, config)
    }

    /// A VM whose compiler optimises at `opt` instead of the default: for tests that show
    /// compiled code never decides a result (nodes must use [`Vm::new`]).
    pub fn with_opt_level(limits: Limits, schedule: GasSchedule, opt: wasmtime::OptLevel) -> Result<Self, VmError> {
        let mut config = engine_config(&limits, &schedule);
        config.cranelift_opt_level(opt);
        Self::with_config(limits, schedule, config)
    }

    fn with_config(limits: Limits, schedule: GasSchedule, config: wasmtime::Config) -> Result<Self, VmError> {
        // The counter is an i32 that may pass the limit by one frame (itself at most the limit).
        if limits.max_stack_bytes >= 1 << 30 || limits.max_stack_bytes >= limits.max_wasm_stack as u64 {
            return Err(VmError::Internal("max_stack_bytes must be under 2^30 and under max_wasm_stack".into()));
        }
        let engine = Engine::new(&config).map_err(|e| VmError::Internal(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        host::link(&mut linker).map_err(|e| VmError::Internal(format!("{e:#}")))?;
        let digest = engine_digest(&engine, &schedule.digest(), &(&limits, crate::stack::VERSION));
        let (cache, slots) = (Mutex::new(ContractCache::new(limits.compiled_cache_bytes)), crate::slots::Slots::new(limits.pool_instances as usize));
        Ok(Self {
            engine,
            linker,
            limits,
            schedule: Arc::new(schedule),
            digest,
            cache,
            slots,
            disk: None,
            models: None,
            tee: Arc::new(aivm_tee::TeePolicy::default()),
            backend: Arc::new(crate::backend::CpuBackend::SERIAL),
            clock: std::sync::OnceLock::new(),
        })
    }

    /// Also keep compiled modules in `dir`, so later processes skip compilation.
    pub fn with_disk_cache(mut self, dir: impl Into<std::path::PathBuf>) -> std::io::Result<Self> {
        self.disk = Some(DiskCache::new(dir)?);
        Ok(self)
    }

    /// Resolve MODEL_LOAD against `models` (the node's artifact store).
    pub fn with_models(mut self, models: Arc<crate::model::ModelRegistry>) -> Self {
        self.models = Some(models);
        self
    }

    /// Accept attestations in TEE_VERIFY by `policy` (the chain's genesis policy; default:
    /// DCAP and SEV-SNP, `UpToDate` only, no devnet signer).
    pub fn with_tee_policy(mut self, policy: Arc<aivm_tee::TeePolicy>) -> Self {
        self.tee = policy;
        self
    }

    /// The models MODEL_LOAD resolves against (the market's verification loads from here too).
    pub fn models(&self) -> Option<&Arc<crate::model::ModelRegistry>> {
        self.models.as_ref()
    }

    /// Run the tensor opcodes on `backend` (default: the CPU). Gas is the same on every
    /// backend: prices are a property of the operation, not of the machine. A device that
    /// fails mid-call must not decide a transaction's outcome, so a backend that can fail is
    /// wrapped to rerun the failed operation on the CPU (same bits).
    pub fn with_backend(mut self, backend: Arc<dyn crate::backend::Backend>) -> Self {
        use crate::backend::{CpuBackend, Fallback};
        self.backend = if backend.infallible() { backend } else { Arc::new(Fallback::new(backend, CpuBackend::SERIAL)) };
        self
    }

    pub fn schedule(&self) -> &GasSchedule {
        &self.schedule
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What deploying `wasm` costs: validation (a linear scan, paid for by the size part of
    /// the price, which a caller checks first with `schedule().deploy`) tells the module's
    /// compile work. `Err` if the module is invalid; `OutOfGas` if the price overflows.
    pub fn deploy_price(&self, wasm: &[u8]) -> Result<u64, VmError> {
        deploy_price(wasm, &self.limits, &self.schedule)
    }

    /// Validate, compile (or fetch from cache) and prepare a contract.
    pub fn deploy(&self, wasm: &[u8]) -> Result<Arc<Contract>, VmError> {
        let code_hash = *blake3::hash(wasm).as_bytes();
        let key = cache_key(&code_hash, &self.digest);
        if let Some(c) = self.cache.lock().get(&key) {
            return Ok(c);
        }
        validate(wasm, &self.limits)?;
        let module = match self.disk.as_ref().and_then(|d| d.load(&self.engine, &key)) {
            Some(m) => m,
            None => {
                let instrumented = crate::stack::instrument(wasm, &self.limits)?;
                let m = Module::new(&self.engine, &instrumented).map_err(|e| ValidationError::Malformed(format!("{e:#}")))?;
                if let Some(d) = &self.disk {
                    d.store(&key, &m);
                }
                m
            }
        };
        let entries = module
            .exports()
            .filter_map(|e| {
                let f = e.ty().func()?.clone();
                (f.params().len() == 0 && f.results().len() == 0).then(|| e.name().to_string())
            })
            .collect::<BTreeSet<_>>();
        if entries.is_empty() {
            return Err(ValidationError::NoEntryPoints.into());
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| ValidationError::Malformed(format!("imports do not match the AIVM ABI: {e:#}")))?;
        let range = module.image_range();
        let size = (range.end as usize).saturating_sub(range.start as usize).saturating_add(wasm.len());
        let contract = Arc::new(Contract { code_hash, pre, entries, size });
        self.cache.lock().insert(key, contract.clone(), size);
        Ok(contract)
    }

    /// Run one entry point with a gas limit. Never panics on anything the contract does.
    /// [`INSTANTIATE_ENTRY`] is refused here: it runs only through [`Vm::instantiate`].
    pub fn call(&self, contract: &Contract, req: CallRequest<'_>) -> CallOutcome {
        if req.entry == INSTANTIATE_ENTRY {
            return CallOutcome {
                result: Err(VmError::InstantiateOnly),
                gas: GasReport { limit: req.gas_limit, ..GasReport::default() },
                events: Vec::new(),
                writes: WriteSet::new(),
                transfers: Vec::new(),
                market: Vec::new(),
            };
        }
        self.run(contract, req, None)
    }

    /// A read-only call (an RPC query; never consensus) that also stops at a wall-clock
    /// `deadline`, with [`VmError::Deadline`] and its whole gas limit used.
    pub fn query(&self, contract: &Contract, req: CallRequest<'_>, deadline: std::time::Duration) -> CallOutcome {
        if req.entry == INSTANTIATE_ENTRY {
            return self.call(contract, req);
        }
        self.run(contract, req, Some(deadline))
    }

    /// Run a freshly deployed contract's [`INSTANTIATE_ENTRY`] with the deploy's arguments
    /// (`req.entry` is ignored). A contract without one instantiates to nothing, and then
    /// only with empty arguments.
    pub fn instantiate(&self, contract: &Contract, req: CallRequest<'_>) -> CallOutcome {
        if !contract.entries.contains(INSTANTIATE_ENTRY) {
            let result = if req.input.is_empty() { Ok(Vec::new()) } else { Err(VmError::NoSuchEntry(INSTANTIATE_ENTRY.into())) };
            return CallOutcome {
                result,
                gas: GasReport { limit: req.gas_limit, ..GasReport::default() },
                events: Vec::new(),
                writes: WriteSet::new(),
                transfers: Vec::new(),
                market: Vec::new(),
            };
        }
        self.run(contract, CallRequest { entry: INSTANTIATE_ENTRY, ..req }, None)
    }

    /// Whether the trap that ended a call was the deterministic stack limit (`stack.rs`).
    fn stack_exhausted(&self, instance: &wasmtime::Instance, store: &mut Store<HostState>) -> bool {
        match instance.get_global(&mut *store, crate::stack::DEPTH_EXPORT).map(|g| g.get(&mut *store)) {
            Some(wasmtime::Val::I32(depth)) => depth as u32 as u64 > self.limits.max_stack_bytes,
            _ => false,
        }
    }

    fn run(&self, contract: &Contract, req: CallRequest<'_>, deadline: Option<std::time::Duration>) -> CallOutcome {
        // Held until the store (and its pooled instance) is dropped at the end of the call.
        let _slot = self.slots.acquire();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_pages as usize * 65536)
            .table_elements(self.limits.max_table_elements as usize)
            .instances(1)
            .tables(1)
            .memories(1)
            .build();
        let limits = crate::limiter::CallLimits::new(store_limits, self.schedule.memory_page, req.gas_limit);
        let state = HostState::new(req.ctx, req.input, ViewPtr::new(req.view), self.schedule.clone(), limits, self.limits.tensor_arena_bytes);
        let mut state = state;
        state.models = self.models.clone();
        state.backend = self.backend.clone();
        state.tee = self.tee.clone();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let result = (|| {
            match deadline {
                None => store.set_epoch_deadline(crate::deadline::NEVER),
                Some(d) => {
                    let clock = self.clock.get_or_init(|| crate::deadline::EpochClock::start(self.engine.clone()).ok());
                    if clock.is_none() {
                        return Err(VmError::Internal("cannot start the epoch clock thread".into()));
                    }
                    store.set_epoch_deadline(crate::deadline::ticks(d));
                }
            }
            store.set_fuel(req.gas_limit).map_err(|e| VmError::Internal(format!("{e:#}")))?;
            if store.data().input.len() > host::env::MAX_INPUT {
                return Err(VmError::Resource(format!("call input exceeds {} bytes", host::env::MAX_INPUT)));
            }
            if !contract.entries.contains(req.entry) {
                return Err(VmError::NoSuchEntry(req.entry.to_string()));
            }
            let instance = match contract.pre.instantiate(&mut store) {
                Ok(i) => i,
                Err(_) if store.data().limits.initial_unaffordable => {
                    store.set_fuel(0).map_err(|e| VmError::Internal(format!("{e:#}")))?;
                    return Err(VmError::OutOfGas);
                }
                Err(e) if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() => return Err(VmError::Busy(format!("{e:#}"))),
                Err(e) => return Err(VmError::Resource(format!("{e:#}"))),
            };
            // The initial pages are paid before the entry point runs.
            host::pay_memory(&mut store).map_err(host::classify)?;
            let memory = instance.get_memory(&mut store, "memory");
            store.data_mut().memory = memory;
            let func = instance.get_typed_func::<(), ()>(&mut store, req.entry).map_err(|_| VmError::NoSuchEntry(req.entry.to_string()))?;
            if let Err(e) = func.call(&mut store, ()).and_then(|()| host::pay_memory(&mut store)) {
                return Err(match host::classify(e) {
                    VmError::Trap(_) if self.stack_exhausted(&instance, &mut store) => VmError::Trap(STACK_EXHAUSTED.into()),
                    other => other,
                });
            }
            Ok(store.data_mut().output.take().unwrap_or_default())
        })();
        let remaining = store.get_fuel().unwrap_or(0);
        // A wasm trap consumes the whole gas limit. Cranelift keeps the fuel counter in a
        // register and writes it back only at calls and function exits, so after a trap raised
        // by a faulting instruction (division by zero, an out-of-bounds access, a bad float
        // conversion) the store's figure misses everything the trapping function burnt — a
        // loop of nearly the whole limit then a division by zero reported 0 gas. What the
        // store sees also depends on code generation, which must never decide a consensus
        // result. Reverts, aborts and host errors leave through a host call, which writes the
        // counter back: they keep their exact figure.
        let used = match &result {
            Err(VmError::Trap(_) | VmError::Deadline) => req.gas_limit,
            _ => req.gas_limit.saturating_sub(remaining),
        };
        let gas = store.data().meter.report(req.gas_limit, used);
        let state = store.into_data();
        match result {
            Ok(out) => CallOutcome { result: Ok(out), gas, events: state.events, writes: state.writes, transfers: state.transfers, market: state.market },
            Err(e) => CallOutcome { result: Err(e), gas, events: Vec::new(), writes: WriteSet::new(), transfers: Vec::new(), market: Vec::new() },
        }
    }
}
