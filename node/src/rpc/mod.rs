//! JSON-RPC over HTTP and WebSocket (one port, `jsonrpsee`). Methods (`spec/rpc.md`):
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
//! | `aivm_getJob`, `aivm_getPool`, `aivm_quote`, `aivm_getBond`, `aivm_getWorkers`, `aivm_getMarket` | see [`market`] | the compute market's state |
//!
//! Every bad input is a JSON-RPC error (`-32602` invalid params, `-32000` transaction
//! refused, `-32001` node error, `-32005` busy, `-32029` rate limited); nothing a client sends
//! can stop the node. Limits: the constants below, per peer in [`limits`]; the server in [`server`].

pub mod limits;
pub mod market;
pub mod server;

pub use limits::RpcLimits;
pub use server::{serve, RpcServer, HEALTH_PATH, RATE_LIMITED};

use crate::execution::{Executor, Finalized};
use crate::hexbytes::{from_hex, to_hex};
use aivm::CallContext;
use aivm_runtime::cpu;
use aivm_runtime::overlay::Overlay;
use aivm_runtime::{BlockRecord, Receipt, TxStatus};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{PendingSubscriptionSink, RpcModule};
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
}

impl RpcContext {
    pub fn new(executor: Arc<Executor>, finalized: broadcast::Sender<Finalized>, chain_id: u64) -> Self {
        RpcContext { executor, finalized, chain_id, queries: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_QUERIES)) }
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

fn one_str(p: &Params, what: &str) -> Result<String, ErrorObjectOwned> {
    let v: Vec<String> = p.parse().map_err(|e| invalid(format!("expected [{what}]: {e}")))?;
    match v.as_slice() {
        [s] => Ok(s.clone()),
        _ => Err(invalid(format!("expected exactly one parameter: {what}"))),
    }
}

pub fn module(ctx: RpcContext) -> Result<RpcModule<RpcContext>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(ctx);
    // Admission decodes CBOR and checks an ed25519 signature: blocking work, off the async threads.
    m.register_blocking_method("aivm_sendTransaction", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        cpu::measure(cpu::Part::Rpc, || {
            let tx = from_hex(&one_str(&p, "transaction hex")?).ok_or_else(|| invalid("transaction: not hex"))?;
            let hash = c.executor.submit(&tx).map_err(|e| err(TX_REFUSED, e.to_string()))?;
            Ok(json!(to_hex(&hash)))
        })
    })?;
    // Many transactions in one call: their signatures are checked as batches (`runtime::sig`),
    // which a JSON-RPC batch of single calls cannot do.
    m.register_blocking_method("aivm_sendTransactions", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        cpu::measure(cpu::Part::Rpc, || {
            let [list]: [Vec<String>; 1] = p.parse().map_err(|e| invalid(format!("expected [[tx_hex, ...]]: {e}")))?;
            if list.len() > MAX_BATCH as usize {
                return Err(invalid(format!("at most {MAX_BATCH} transactions per call")));
            }
            let decoded: Vec<Option<Vec<u8>>> = list.iter().map(|h| from_hex(h)).collect();
            let bytes: Vec<&[u8]> = decoded.iter().flatten().map(Vec::as_slice).collect();
            let mut results = c.executor.submit_many(&bytes, crate::execution::Origin::Client).into_iter();
            let answers: Vec<Value> = decoded
                .iter()
                .map(|d| match d {
                    None => json!({"error": "not hex"}),
                    Some(_) => match results.next() {
                        Some(Ok(h)) => json!({"hash": to_hex(&h)}),
                        Some(Err(e)) => json!({"error": e.to_string()}),
                        None => json!({"error": "not admitted"}),
                    },
                })
                .collect();
            Ok(Value::Array(answers))
        })
    })?;
    m.register_method("aivm_cpu", |_, c, _| -> Result<Value, ErrorObjectOwned> {
        let (parts, process_ns) = cpu::snapshot();
        let named: serde_json::Map<String, Value> = cpu::PARTS.iter().zip(parts).map(|(p, ns)| (p.name().to_string(), json!(ns))).collect();
        Ok(json!({"process_ns": process_ns, "parts_ns": named, "height": c.executor.head().0, "reused_verified": c.executor.reused_verified()}))
    })?;
    m.register_method("aivm_getReceipt", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let hash = hex32(&one_str(&p, "transaction hash")?, "transaction hash")?;
        let chain = c.executor.chain();
        let Some((height, index)) = chain.store().tx_location(&hash).map_err(node_error)? else { return Ok(Value::Null) };
        let block = chain.block(height).map_err(node_error)?.ok_or_else(|| node_error("indexed block missing"))?;
        let r = block.receipts.get(index as usize).ok_or_else(|| node_error("indexed receipt missing"))?;
        let mut v = receipt_json(r);
        v["block_height"] = json!(height);
        v["index"] = json!(index);
        Ok(v)
    })?;
    m.register_method("aivm_getBlock", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let v: Vec<u64> = p.parse().map_err(|e| invalid(format!("expected [height]: {e}")))?;
        let [height] = v.as_slice() else { return Err(invalid("expected exactly one parameter: height")) };
        Ok(c.executor.chain().block(*height).map_err(node_error)?.map_or(Value::Null, |b| block_json(&b)))
    })?;
    m.register_method("aivm_stateRoot", |_, c, _| -> Result<Value, ErrorObjectOwned> {
        let head = c.executor.chain().head().ok_or_else(|| node_error("no genesis"))?;
        Ok(json!({"height": head.height, "state_root": to_hex(&head.state_root)}))
    })?;
    m.register_method("aivm_getAccount", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let a = hex32(&one_str(&p, "address")?, "address")?;
        Ok(match c.executor.chain().account(&a).map_err(node_error)? {
            None => Value::Null,
            Some(acc) => json!({"balance": acc.balance.to_string(), "nonce": acc.nonce, "code_hash": acc.code_hash.map(|h| to_hex(&h))}),
        })
    })?;
    // The schema the contract's code carries (`#[entry_point]`, `#[derive(Schema)]`): clients
    // check arguments against it before they sign. A linear scan of code the chain accepted.
    m.register_method("aivm_getAbi", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let a = hex32(&one_str(&p, "contract")?, "contract")?;
        let chain = c.executor.chain();
        let Some(hash) = chain.account(&a).map_err(node_error)?.and_then(|acc| acc.code_hash) else { return Ok(Value::Null) };
        match chain.store().get(&aivm_runtime::StateKey::Code(hash)).map_err(node_error)? {
            Some(aivm_runtime::StateValue::Bytes(code)) => Ok(crate::abi::Abi::of_wasm(&code).to_json()),
            _ => Ok(Value::Null),
        }
    })?;
    m.register_method("aivm_getStake", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let id = hex32(&one_str(&p, "validator identity")?, "validator identity")?;
        let v = c.executor.chain().store().get(&crate::staking::stake_key(&id)).map_err(node_error)?;
        Ok(crate::staking::decode_stake(v.as_ref()).map_or(Value::Null, |s| json!(s.to_string())))
    })?;
    m.register_blocking_method("aivm_query", |p, c, _| -> Result<Value, ErrorObjectOwned> {
        let v: Vec<Value> = p.parse().map_err(|e| invalid(format!("expected [contract, entry, args_hex, gas_limit?]: {e}")))?;
        let (contract, entry, args, gas) = match v.as_slice() {
            [Value::String(c), Value::String(e), Value::String(a)] => (c, e, a, MAX_QUERY_GAS),
            [Value::String(c), Value::String(e), Value::String(a), Value::Number(g)] => {
                (c, e, a, g.as_u64().ok_or_else(|| invalid("gas_limit"))?.min(MAX_QUERY_GAS))
            }
            _ => return Err(invalid("expected [contract_hex, entry, args_hex, gas_limit?]")),
        };
        let contract = hex32(contract, "contract")?;
        let args = from_hex(args).ok_or_else(|| invalid("args: not hex"))?;
        let _slot = c.queries.clone().try_acquire_owned().map_err(|_| err(BUSY, format!("{MAX_CONCURRENT_QUERIES} queries are running; try again")))?;
        let chain = c.executor.chain();
        let head = chain.block(chain.head().map_or(0, |h| h.height)).map_err(node_error)?.ok_or_else(|| node_error("head block missing"))?;
        let mut view = Overlay::new(chain.store());
        let ctx = CallContext { caller: [0; 32], contract, block_height: head.header.height, block_time_ms: head.header.time_ms };
        let out = chain.vm().query(&mut view, contract, entry, args, gas, ctx, Some(MAX_QUERY_TIME)).map_err(|e| err(TX_REFUSED, e.to_string()))?;
        if let Some(e) = view.take_error() {
            return Err(node_error(e));
        }
        Ok(json!({
            "status": if out.result.is_ok() { "success" } else { "error" },
            "output": out.result.as_ref().map(|o| to_hex(o)).ok(),
            "error": out.result.as_ref().err().map(|e| e.to_string()),
            "gas_used": out.gas.used,
        }))
    })?;
    m.register_method("aivm_health", |_, c, _| -> Result<Value, ErrorObjectOwned> {
        // Head height and time from memory: no block is read or decoded per health check.
        let height = c.executor.head().0;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let age = now_ms.saturating_sub(c.executor.head_time());
        if age > STALE_AFTER_MS {
            return Err(node_error(format!("no block finalized for {} s (height {height})", age / 1000)));
        }
        Ok(json!({"height": height, "head_age_ms": age}))
    })?;
    m.register_method("aivm_status", |_, c, _| -> Result<Value, ErrorObjectOwned> {
        let (height, digest) = c.executor.head();
        let pool = c.executor.mempool.lock();
        Ok(json!({"chain_id": c.chain_id, "height": height, "head_digest": to_hex(&digest), "mempool_txs": pool.len(), "mempool_bytes": pool.bytes()}))
    })?;
    market::register(&mut m)?;
    m.register_subscription(
        "aivm_subscribeFinalized",
        "aivm_finalized",
        "aivm_unsubscribeFinalized",
        |_, pending: PendingSubscriptionSink, c, _| async move {
            let mut rx = c.finalized.subscribe();
            let Ok(sink) = pending.accept().await else { return };
            loop {
                match rx.recv().await {
                    Ok(f) => {
                        let Ok(raw) = serde_json::value::to_raw_value(&finalized_json(&f)) else { return };
                        if sink.send(raw).await.is_err() {
                            return;
                        }
                    }
                    // A slow subscriber misses blocks rather than holding the node back.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        },
    )?;
    Ok(m)
}
