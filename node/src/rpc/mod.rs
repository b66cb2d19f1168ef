//! JSON-RPC over HTTP and WebSocket (one port, `jsonrpsee`), declared once as typed traits
//! ([`api::AivmApi`], [`market::MarketApi`]) whose generated clients the CLI uses. Methods
//! (`spec/rpc.md`):
//!
//! | method | params | result |
//! |---|---|---|
//! | `aivm_sendTransaction` | `[tx_hex]` | transaction hash (hex) |
//! | `aivm_sendTransactions` | `[[tx_hex, …]]` (at most [`MAX_BATCH`]) | per transaction `{hash}` or `{error}`, in order; signatures checked as one batch |
//! | `aivm_cpu` | `[]` | this process's CPU time per part of the transaction path (`aivm_runtime::cpu`), and how many transactions of peers' blocks were taken already verified from the pool |
//! | `aivm_getReceipt` | `[hash_hex]` | receipt with block height, or `null` |
//! | `aivm_getBlock` | `[height]` | header and transaction hashes, or `null` |
//! | `aivm_stateRoot` | `[]` | `{height, state_root}` of the committed head |
//! | `aivm_getAccount` | `[address_hex]` | `{balance, nonce, code_hash}` or `null` |
//! | `aivm_query` | `[contract_hex, entry, args_hex, gas_limit?]` | read-only call outcome |
//! | `aivm_getAbi` | `[contract_hex]` | the contract's entry points and types (`crate::abi`), or `null` if no contract is there |
//! | `aivm_getStake` | `[identity_hex]` | a validator's stake (decimal string) or `null` |
//! | `aivm_status` | `[]` | head, mempool size, chain id |
//! | `aivm_health` | `[]` | `{height, head_age_ms}`, or an error if no block was finalized for [`STALE_AFTER_MS`] (also `GET /health`) |
//! | `aivm_subscribeFinalized` | `[]` | notifications `aivm_finalized` per block |
//! | `aivm_getBlockReceipts` | `[height]` | the block's receipts, or `null` |
//! | `aivm_getSnapshots`, `aivm_getSnapshotAnchor`, `aivm_getSnapshotChunk` | see [`sync`] | state snapshots for joining nodes |
//! | `aivm_getJob`, `aivm_getPool`, `aivm_getHoldings`, `aivm_quote`, `aivm_getBond`, `aivm_getWorkers`, `aivm_getMarket`, `aivm_nextBeacon` | see [`market`] | the compute market's state |
//!
//! Every bad input is a JSON-RPC error (`-32602` invalid params, `-32000` transaction
//! refused, `-32001` node error, `-32005` busy, `-32029` rate limited); nothing a client sends
//! can stop the node. Limits: the constants below, per peer in [`limits`]; the server in [`server`].

pub mod api;
pub mod limits;
pub mod market;
pub mod server;
pub mod sync;

pub use limits::RpcLimits;
pub use server::{serve, RpcServer, HEALTH_PATH, RATE_LIMITED};

pub use api::{AivmApiClient, AivmApiServer};
pub use market::{MarketApiClient, MarketApiServer};
pub use sync::{SyncApiClient, SyncApiServer};

use crate::execution::{Executor, Finalized};
use crate::hexbytes::{from_hex, to_hex};
use aivm_runtime::{BlockRecord, Receipt, TxStatus};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Largest request body: a transaction at its size limit, hex-encoded, plus framing.
pub const MAX_REQUEST_BYTES: u32 = (aivm_runtime::tx::MAX_TX_BYTES as u32) * 2 + 4096;
/// Most gas a read-only query may use: 0.1 s of nominal execution (1 gas = 0.1 ns).
pub const MAX_QUERY_GAS: u64 = 1_000_000_000;
/// Wall-clock limit of one query: ten times its gas cap at the nominal 0.1 ns per gas, for
/// operations priced below their worst case (issue 14) and machines slower than the reference.
pub const MAX_QUERY_TIME: std::time::Duration = std::time::Duration::from_secs(1);
/// `aivm_health` fails when the newest committed block is older than this: an idle network
/// still finalizes an empty block every few hundred milliseconds.
pub const STALE_AFTER_MS: u64 = 30_000;
/// Most queries running at once; more are refused with [`BUSY`] rather than queued.
pub const MAX_CONCURRENT_QUERIES: usize = 4;
/// Most calls in one JSON-RPC batch.
pub const MAX_BATCH: u32 = 1000;
/// Most open connections (HTTP keep-alive and WebSocket together).
pub const MAX_CONNECTIONS: u32 = 256;
/// Worker threads of the RPC runtime, and the most blocking tasks (queries, transaction
/// admission) it runs at once. The RPC has a runtime of its own, at a lower CPU priority, so
/// that no amount of RPC work takes the consensus runtime's threads.
pub const RPC_THREADS: usize = 2;
pub const RPC_BLOCKING_THREADS: usize = MAX_CONCURRENT_QUERIES + 4;

pub const INVALID_PARAMS: i32 = -32602;
pub const TX_REFUSED: i32 = -32000;
pub const NODE_ERROR: i32 = -32001;
/// The node is at its limit for this kind of request (queries): try again later.
pub const BUSY: i32 = -32005;

pub struct RpcContext {
    pub executor: Arc<Executor>,
    pub finalized: broadcast::Sender<Finalized>,
    pub chain_id: u64,
    /// Free query slots.
    pub queries: Arc<tokio::sync::Semaphore>,
    /// A validator's certified rounds' seeds (`None` off consensus): with them a job's
    /// challenge shows as soon as it is fixed, a block before the chain records it.
    pub seeds: Option<Arc<crate::consensus::threshold::Seeds>>,
}

impl RpcContext {
    pub fn new(executor: Arc<Executor>, finalized: broadcast::Sender<Finalized>, chain_id: u64) -> Self {
        RpcContext { executor, finalized, chain_id, queries: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_QUERIES)), seeds: None }
    }
}

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    err(INVALID_PARAMS, msg)
}

fn node_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(NODE_ERROR, e.to_string())
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32], ErrorObjectOwned> {
    from_hex(s).and_then(|v| v.try_into().ok()).ok_or_else(|| invalid(format!("{what}: expected 32 bytes of hex")))
}

fn receipt_json(r: &Receipt) -> Value {
    let status = match &r.status {
        TxStatus::Success => json!("success"),
        other => json!(format!("{other:?}")),
    };
    json!({
        "tx_hash": to_hex(&r.tx_hash),
        "status": status,
        "gas_used": r.gas_used,
        "fee": r.fee.to_string(),
        "output": to_hex(&r.output),
        "events": r.events.iter().map(|e| json!({"contract": to_hex(&e.contract), "topic": to_hex(&e.topic), "data": to_hex(&e.data)})).collect::<Vec<_>>(),
        "contract_address": r.contract_address.as_ref().map(|a| to_hex(&a[..])),
    })
}

fn block_json(b: &BlockRecord) -> Value {
    let h = &b.header;
    json!({
        "height": h.height,
        "hash": to_hex(&h.hash()),
        "parent_hash": to_hex(&h.parent_hash),
        "time_ms": h.time_ms,
        "tx_root": to_hex(&h.tx_root),
        "receipts_root": to_hex(&h.receipts_root),
        "state_root": to_hex(&h.state_root),
        "gas_used": h.gas_used,
        "txs": b.receipts.iter().map(|r| to_hex(&r.tx_hash)).collect::<Vec<_>>(),
    })
}

pub fn finalized_json(f: &Finalized) -> Value {
    json!({"height": f.height, "digest": to_hex(&f.digest), "state_root": to_hex(&f.state_root), "txs": f.txs, "gas_used": f.gas_used, "time_ms": f.time_ms})
}

/// Every method, typed ([`api::AivmApi`], [`market::MarketApi`]), on one module.
pub fn module(ctx: RpcContext) -> Result<RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
    let api = api::Api(Arc::new(ctx));
    let mut m = RpcModule::new(());
    m.merge(api::AivmApiServer::into_rpc(api.clone()))?;
    m.merge(market::MarketApiServer::into_rpc(api.clone()))?;
    m.merge(sync::SyncApiServer::into_rpc(api))?;
    Ok(m)
}
