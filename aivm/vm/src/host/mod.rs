//! The host ABI (`spec/abi.md`): the functions a contract imports from the `aivm` module.
//!
//! Every host function follows one order: count the call and charge `host_call`, check and
//! read bounded input (charged per byte), charge the operation from its size, then do the
//! work. Misuse (bad pointers, bad handles, oversized input) traps; data outcomes (a missing
//! key, an invalid signature) are status codes.

mod crypto;
pub(crate) mod env;
mod market;
pub use market::{contract_job_id, MAX_JOB_PROMPT, MAX_MARKET_ACTIONS};
mod memory;
mod model;
mod native;
mod tee;
mod tensor;
mod verify;

use crate::error::{HostError, VmError};
use crate::gas::{GasMeter, GasSchedule};
use crate::limiter::CallLimits;
use crate::tensor::Arena;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::{AsContextMut, Caller, Linker, Memory};

/// Every import a contract may use, in `spec/abi.md` order.
pub const IMPORTS: &[&str] = &[
    "input_len",
    "input_read",
    "return_data",
    "revert",
    "abort",
    "result_read",
    "storage_get",
    "storage_set",
    "storage_remove",
    "caller",
    "contract_address",
    "block_height",
    "block_time",
    "emit_event",
    "sha256",
    "blake3",
    "ed25519_verify",
    "bls_verify",
    "tensor_alloc",
    "tensor_info",
    "tensor_read",
    "tensor_free",
    "tensor_matmul",
    "tensor_add",
    "tensor_quantize",
    "tensor_dequantize",
    "tensor_norm",
    "tensor_softmax",
    "kl_divergence",
    "hash_compare",
    "model_hash",
    "merkle_verify",
    "model_load",
    "model_infer",
    "freivalds_verify",
    "tee_verify",
    "job_result",
    "call_value",
    "balance",
    "transfer",
    "hmm_quote",
    "hmm_swap",
    "job_submit",
];

/// Who is calling what, and when. Supplied by the caller of the VM (CLI, runtime).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    pub caller: [u8; 32],
    pub contract: [u8; 32],
    pub block_height: u64,
    pub block_time_ms: u64,
    /// Native units sent with this call (already in `balance`).
    pub value: u128,
    /// The contract's native balance when the call starts, the value included.
    pub balance: u128,
    /// The transaction the call runs in (zero in queries): the jobs a contract submits to the
    /// market are named after it (`job_submit`).
    pub tx_hash: [u8; 32],
}

/// A read that cannot be answered yet: in a parallel executor, an earlier transaction of the
/// block has not produced the value. The call stops at once; the executor runs it again later,
/// and nothing of the stopped call (gas, writes, events) is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state read blocked on an unfinished transaction")]
pub struct ReadBlocked;

/// Read access to the contract's storage as of the start of the call. `&mut self` so that a
/// view can record what was read (Block-STM validates read sets).
pub trait StateView {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadBlocked>;

    /// The compute market's job `id`, if it has a result a contract may use (`job_result`).
    /// The embedder knows the market (the runtime does); without one there is none.
    fn job_result(&mut self, _id: &[u8; 32]) -> Result<Option<JobResult>, ReadBlocked> {
        Ok(None)
    }

    /// How many workers serve the SKU `sku` in the compute market (what a quote reads), if
    /// any (`hmm_quote`; none without a market).
    fn market_workers(&mut self, _sku: &[u8; 32]) -> Result<Option<usize>, ReadBlocked> {
        Ok(None)
    }

    /// HMM_QUOTE: the price of `units` on the SKU's pool and a worker with room for them,
    /// drawn for the calling contract in this block (`ctx`).
    fn market_quote(&mut self, _sku: &[u8; 32], _units: u64, _ctx: &CallContext) -> Result<Option<MarketQuote>, ReadBlocked> {
        Ok(None)
    }
}

/// What a contract asks of the compute market in a call (`hmm_swap`, `job_submit`;
/// `spec/market.md` §6c). The VM records these in order; the embedder carries them out after
/// the call succeeds, with the contract as their sender, and a call whose action fails fails
/// as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarketAction {
    /// HMM_SWAP: trade `amount_in` against the SKU's pool, selling native (`sell_units`
    /// false) or the contract's compute units; fails below `min_out`.
    Swap { sku: [u8; 32], sell_units: bool, amount_in: u128, min_out: u128 },
    /// A native market job: quoted, escrowed out of the contract's balance (at most
    /// `budget`), assigned, challenged and settled or slashed like any other.
    SubmitJob { id: [u8; 32], sku: [u8; 32], prompt: Vec<u32>, max_new: u32, sla_blocks: u64, budget: u128, tee: bool },
}

/// A compute-market quote as a contract reads it (`hmm_quote`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketQuote {
    pub price: u128,
    pub worker: [u8; 32],
    /// Bytes of the records read to make it (priced per byte).
    pub bytes: usize,
}

/// A market job's result as a contract reads it (`spec/tee.md` §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    /// `None`: final. `Some(h)`: provisional on an attestation until block `h` (the
    /// optimistic track's window), final after it.
    pub provisional_until: Option<u64>,
    pub output: Vec<u32>,
    /// Bytes of the record read to find it (priced per byte).
    pub bytes: usize,
}

/// The call's borrowed [`StateView`]. wasmtime's `Store<T>` needs `T: 'static`, so the borrow
/// is erased here; [`crate::Vm::call`] creates the store and drops it before it returns, so the
/// pointer never outlives the `&mut dyn StateView` it came from.
pub(crate) struct ViewPtr(std::ptr::NonNull<dyn StateView + 'static>);

impl ViewPtr {
    pub(crate) fn new(view: &mut dyn StateView) -> Self {
        // SAFETY: only the lifetime is changed (same fat-pointer layout); see the type's doc
        // for why the erased borrow is never used after the call.
        let erased: &mut (dyn StateView + 'static) = unsafe { std::mem::transmute(view) };
        Self(std::ptr::NonNull::from(erased))
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadBlocked> {
        // SAFETY: the pointee is alive for the whole call (see the type's doc), and the store
        // that owns `self` is used by one thread at a time, so this is the only live access.
        unsafe { self.0.as_mut() }.get(key)
    }

    pub(crate) fn job_result(&mut self, id: &[u8; 32]) -> Result<Option<JobResult>, ReadBlocked> {
        // SAFETY: as in `get`.
        unsafe { self.0.as_mut() }.job_result(id)
    }

    pub(crate) fn market_workers(&mut self, sku: &[u8; 32]) -> Result<Option<usize>, ReadBlocked> {
        // SAFETY: as in `get`.
        unsafe { self.0.as_mut() }.market_workers(sku)
    }

    pub(crate) fn market_quote(&mut self, sku: &[u8; 32], units: u64, ctx: &CallContext) -> Result<Option<MarketQuote>, ReadBlocked> {
        // SAFETY: as in `get`.
        unsafe { self.0.as_mut() }.market_quote(sku, units, ctx)
    }
}

/// A storage change buffered by a call: `None` removes the key.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An event emitted by a contract.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub topic: Vec<u8>,
    pub data: Vec<u8>,
}

/// How a contract ended a call early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Exit {
    #[error("abort: {0}")]
    Abort(String),
    #[error("revert: {0}")]
    Revert(String),
    #[error("out of gas")]
    OutOfGas,
    #[error("{0}")]
    Blocked(ReadBlocked),
}

/// The store data of one call.
pub struct HostState {
    pub(crate) ctx: CallContext,
    pub(crate) input: Vec<u8>,
    pub(crate) output: Option<Vec<u8>>,
    pub(crate) register: Option<Vec<u8>>,
    pub(crate) view: ViewPtr,
    pub(crate) writes: WriteSet,
    pub(crate) events: Vec<Event>,
    /// Bytes of topics and data in `events`, and storage writes made with their bytes (the
    /// per-call caps in `env.rs`).
    pub(crate) event_bytes: usize,
    pub(crate) write_count: usize,
    pub(crate) write_bytes: usize,
    /// Storage keys this call has already read from the state: a second read of one is warm
    /// (the node holds it), the first pays `storage_read_cold` for the disk (`env.rs`).
    pub(crate) warm: std::collections::HashSet<Vec<u8>>,
    /// Native transfers out of the contract, in order, and their sum (`native.rs`).
    pub(crate) transfers: Vec<([u8; 32], u128)>,
    /// Native units spent in this call: transfers, plus what market actions may take.
    pub(crate) sent: u128,
    /// Market actions, in order (`market.rs`).
    pub(crate) market: Vec<MarketAction>,
    pub(crate) arena: Arena,
    pub(crate) meter: GasMeter,
    pub(crate) schedule: Arc<GasSchedule>,
    pub(crate) limits: CallLimits,
    pub(crate) memory: Option<Memory>,
    /// Where MODEL_LOAD finds models (none: every load returns −1).
    pub(crate) models: Option<Arc<crate::model::ModelRegistry>>,
    /// Models loaded by this call; a handle is an index.
    pub(crate) loaded: Vec<Arc<crate::model::Engine>>,
    /// Where the tensor opcodes run.
    pub(crate) backend: Arc<dyn crate::backend::Backend>,
    /// Which attestations TEE_VERIFY accepts (the chain's genesis policy).
    pub(crate) tee: Arc<aivm_tee::TeePolicy>,
}

impl HostState {
    /// What the contract can still pay out in this call.
    pub(crate) fn available(&self) -> u128 {
        self.ctx.balance.saturating_sub(self.sent)
    }

    pub(crate) fn new(ctx: CallContext, input: Vec<u8>, view: ViewPtr, schedule: Arc<GasSchedule>, limits: CallLimits, arena_bytes: usize) -> Self {
        Self {
            ctx,
            input,
            output: None,
            register: None,
            view,
            writes: WriteSet::new(),
            events: Vec::new(),
            event_bytes: 0,
            write_count: 0,
            write_bytes: 0,
            warm: Default::default(),
            transfers: Vec::new(),
            sent: 0,
            market: Vec::new(),
            arena: Arena::new(arena_bytes),
            meter: GasMeter::default(),
            schedule,
            limits,
            memory: None,
            models: None,
            loaded: Vec::new(),
            backend: Arc::new(crate::backend::CpuBackend::SERIAL),
            tee: Arc::new(aivm_tee::TeePolicy::default()),
        }
    }
}

type Ctx<'a> = Caller<'a, HostState>;

/// Take `gas` from the call's fuel for `op`, or run it dry and trap out of gas.
/// `None` means the price computation overflowed, which is also out of gas.
pub(crate) fn charge(caller: &mut Ctx<'_>, op: &'static str, gas: Option<u64>) -> wasmtime::Result<()> {
    let fuel = caller.get_fuel()?;
    match gas {
        Some(g) if g <= fuel => {
            caller.set_fuel(fuel - g)?;
            caller.data_mut().meter.record(op, g);
            Ok(())
        }
        _ => {
            caller.set_fuel(0)?;
            caller.data_mut().meter.record(op, fuel);
            Err(wasmtime::Error::new(Exit::OutOfGas))
        }
    }
}

/// Take the memory pages granted since the last payment from the fuel (`limiter.rs`), or run
/// the fuel dry and fail out of gas.
pub(crate) fn pay_memory(mut cx: impl AsContextMut<Data = HostState>) -> wasmtime::Result<()> {
    let mut cx = cx.as_context_mut();
    let debt = cx.data_mut().limits.take_debt();
    if debt == 0 {
        return Ok(());
    }
    let fuel = cx.get_fuel()?;
    let paid = debt.min(fuel);
    cx.set_fuel(fuel - paid)?;
    cx.data_mut().meter.count_call("memory");
    cx.data_mut().meter.record("memory", paid);
    if paid < debt {
        return Err(wasmtime::Error::new(Exit::OutOfGas));
    }
    Ok(())
}

/// Count the call and charge the flat host-call price (and any memory pages owed).
pub(crate) fn enter(caller: &mut Ctx<'_>, op: &'static str) -> wasmtime::Result<()> {
    pay_memory(&mut *caller)?;
    caller.data_mut().meter.count_call(op);
    let base = caller.data().schedule.host_call;
    charge(caller, op, Some(base))
}

pub(crate) fn host_err(e: impl Into<HostError>) -> wasmtime::Error {
    wasmtime::Error::new(e.into())
}

/// Register every host function.
pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    env::link(linker)?;
    crypto::link(linker)?;
    tensor::link(linker)?;
    verify::link(linker)?;
    model::link(linker)?;
    tee::link(linker)?;
    market::link(linker)?;
    native::link(linker)?;
    Ok(())
}

/// Turn a wasmtime error from a call into a typed [`VmError`].
pub(crate) fn classify(err: wasmtime::Error) -> VmError {
    if let Some(exit) = err.downcast_ref::<Exit>() {
        return match exit {
            Exit::Abort(m) => VmError::Abort(m.clone()),
            Exit::Revert(m) => VmError::Revert(m.clone()),
            Exit::OutOfGas => VmError::OutOfGas,
            Exit::Blocked(_) => VmError::Blocked,
        };
    }
    if let Some(h) = err.downcast_ref::<HostError>() {
        return match h {
            // The machine failed, not the contract: never a receipt (see VmError::Backend).
            HostError::Backend(e) | HostError::Tensor(crate::tensor::TensorError::Backend(e)) => VmError::Backend(e.to_string()),
            h => VmError::Host(h.clone()),
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => VmError::OutOfGas,
            wasmtime::Trap::Interrupt => VmError::Deadline,
            t => VmError::Trap(t.to_string()),
        };
    }
    VmError::Trap(format!("{err:#}"))
}
