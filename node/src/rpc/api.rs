//! The node's JSON-RPC interface as one typed trait (`jsonrpsee`'s `#[rpc]`): the server
//! implements [`AivmApiServer`], and every client (the `aivm` command line, tests, tools)
//! calls the generated [`AivmApiClient`] over HTTP or WebSocket, so a method's name,
//! parameters and result type are written once. Results are JSON objects documented in
//! `spec/rpc.md`; the market's read methods are [`super::market::MarketApi`].

use super::{
    block_json, err, finalized_json, hex32, invalid, node_error, receipt_json, RpcContext, BUSY, MAX_BATCH, MAX_CONCURRENT_QUERIES, MAX_QUERY_GAS,
    MAX_QUERY_TIME, NODE_ERROR, STALE_AFTER_MS, TX_REFUSED,
};
use crate::hexbytes::{from_hex, to_hex};
use aivm::CallContext;
use aivm_runtime::cpu;
use aivm_runtime::overlay::Overlay;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::PendingSubscriptionSink;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::broadcast;

#[rpc(server, client, namespace = "aivm")]
pub trait AivmApi {
    /// Submit a signed transaction (hex of its canonical CBOR); its hash.
    #[method(name = "sendTransaction", blocking)]
    fn send_transaction(&self, tx_hex: String) -> RpcResult<String>;

    /// Up to [`MAX_BATCH`] transactions, their signatures checked as batches; per transaction
    /// `{hash}` or `{error}`, in order.
    #[method(name = "sendTransactions", blocking)]
    fn send_transactions(&self, txs_hex: Vec<String>) -> RpcResult<Vec<Value>>;

    /// This process's CPU time per part of the transaction path.
    #[method(name = "cpu")]
    fn cpu(&self) -> RpcResult<Value>;

    /// A committed transaction's receipt with its block height and index, or `null`.
    #[method(name = "getReceipt")]
    fn get_receipt(&self, hash: String) -> RpcResult<Option<Value>>;

    /// A committed block's header and transaction hashes, or `null`.
    #[method(name = "getBlock")]
    fn get_block(&self, height: u64) -> RpcResult<Option<Value>>;

    /// `{height, state_root}` of the committed head.
    #[method(name = "stateRoot")]
    fn state_root(&self) -> RpcResult<Value>;

    /// `{balance, nonce, code_hash}`, or `null` for an account that does not exist.
    #[method(name = "getAccount")]
    fn get_account(&self, address: String) -> RpcResult<Option<Value>>;

    /// The contract's entry points and types (`crate::abi`), or `null` if no contract is there.
    #[method(name = "getAbi")]
    fn get_abi(&self, contract: String) -> RpcResult<Option<Value>>;

    /// A validator's stake (decimal string), or `null`.
    #[method(name = "getStake")]
    fn get_stake(&self, identity: String) -> RpcResult<Option<String>>;

    /// A validator's staking record: `{identity, stake, unbonding, unlock_at, tombstoned,
    /// consensus_key, p2p, epoch, active, signing, jailed_until, liveness}` (`epoch`: the one
    /// the head is in; `active`: in that epoch's recorded set; `signing`: among that epoch's
    /// engine signers, holding a share of the threshold key; `liveness`: leader slots led and
    /// missed in this epoch and the last), or `null` if it never bonded.
    #[method(name = "getValidator")]
    fn get_validator(&self, identity: String) -> RpcResult<Option<Value>>;

    /// A read-only call on the committed head: `{status, output, error, gas_used}`.
    #[method(name = "query", blocking)]
    fn query(&self, contract: String, entry: String, args_hex: String, gas_limit: Option<u64>) -> RpcResult<Value>;

    /// `{height, head_age_ms}`, or an error if no block was finalized for [`STALE_AFTER_MS`].
    #[method(name = "health")]
    fn health(&self) -> RpcResult<Value>;

    /// Head, mempool size, chain id; `epoch`: the engine epoch of the next block, `signer`:
    /// whether this node holds a share of the threshold key for it (`null`: no scheme yet).
    #[method(name = "status")]
    fn status(&self) -> RpcResult<Value>;

    /// A notification (`aivm_finalized`) per finalized block.
    #[subscription(name = "subscribeFinalized" => "finalized", unsubscribe = "unsubscribeFinalized", item = Value)]
    async fn subscribe_finalized(&self) -> SubscriptionResult;
}

/// The server side: every method reads the node through its [`RpcContext`].
#[derive(Clone)]
pub struct Api(pub Arc<RpcContext>);

#[jsonrpsee::core::async_trait]
impl AivmApiServer for Api {
    // Admission decodes CBOR and checks an ed25519 signature: blocking work, off the async threads.
    fn send_transaction(&self, tx_hex: String) -> RpcResult<String> {
        cpu::measure(cpu::Part::Rpc, || {
            let tx = from_hex(&tx_hex).ok_or_else(|| invalid("transaction: not hex"))?;
            let hash = self.0.executor.submit(&tx).map_err(|e| err(TX_REFUSED, e.to_string()))?;
            Ok(to_hex(&hash))
        })
    }

    // Many transactions in one call: their signatures are checked as batches (`runtime::sig`),
    // which a JSON-RPC batch of single calls cannot do.
    fn send_transactions(&self, list: Vec<String>) -> RpcResult<Vec<Value>> {
        cpu::measure(cpu::Part::Rpc, || {
            if list.len() > MAX_BATCH as usize {
                return Err(invalid(format!("at most {MAX_BATCH} transactions per call")));
            }
            let decoded: Vec<Option<Vec<u8>>> = list.iter().map(|h| from_hex(h)).collect();
            let bytes: Vec<&[u8]> = decoded.iter().flatten().map(Vec::as_slice).collect();
            let mut results = self.0.executor.submit_many(&bytes, crate::execution::Origin::Client).into_iter();
            Ok(decoded
                .iter()
                .map(|d| match d {
                    None => json!({"error": "not hex"}),
                    Some(_) => match results.next() {
                        Some(Ok(h)) => json!({"hash": to_hex(&h)}),
                        Some(Err(e)) => json!({"error": e.to_string()}),
                        None => json!({"error": "not admitted"}),
                    },
                })
                .collect())
        })
    }

    fn cpu(&self) -> RpcResult<Value> {
        let (parts, process_ns) = cpu::snapshot();
        let named: serde_json::Map<String, Value> = cpu::PARTS.iter().zip(parts).map(|(p, ns)| (p.name().to_string(), json!(ns))).collect();
        let e = &self.0.executor;
        Ok(json!({"process_ns": process_ns, "parts_ns": named, "height": e.head().0, "reused_verified": e.reused_verified()}))
    }

    fn get_receipt(&self, hash: String) -> RpcResult<Option<Value>> {
        let hash = hex32(&hash, "transaction hash")?;
        let chain = self.0.executor.chain();
        let Some((height, index)) = chain.store().tx_location(&hash).map_err(node_error)? else { return Ok(None) };
        let block = chain.block(height).map_err(node_error)?.ok_or_else(|| node_error("indexed block missing"))?;
        let r = block.receipts.get(index as usize).ok_or_else(|| node_error("indexed receipt missing"))?;
        let mut v = receipt_json(r);
        v["block_height"] = json!(height);
        v["index"] = json!(index);
        Ok(Some(v))
    }

    fn get_block(&self, height: u64) -> RpcResult<Option<Value>> {
        let chain = self.0.executor.chain();
        let Some(b) = chain.block(height).map_err(node_error)? else { return Ok(None) };
        let mut v = block_json(&b);
        // The block's beacon (`spec/market.md` §6), while the chain keeps it (256 blocks).
        let beacon = super::market::record::<aivm_runtime::market::state::BeaconRecord>(chain, aivm_runtime::market::state::MarketKey::Beacon(height))?;
        v["beacon"] = beacon.map_or(Value::Null, |b| Value::String(to_hex(&b[..])));
        Ok(Some(v))
    }

    fn state_root(&self) -> RpcResult<Value> {
        let head = self.0.executor.chain().head().ok_or_else(|| node_error("no genesis"))?;
        Ok(json!({"height": head.height, "state_root": to_hex(&head.state_root)}))
    }

    fn get_account(&self, address: String) -> RpcResult<Option<Value>> {
        let a = hex32(&address, "address")?;
        Ok(self
            .0
            .executor
            .chain()
            .account(&a)
            .map_err(node_error)?
            .map(|acc| json!({"balance": acc.balance.to_string(), "nonce": acc.nonce, "code_hash": acc.code_hash.map(|h| to_hex(&h))})))
    }

    // The schema the contract's code carries (`#[entry_point]`, `#[derive(Schema)]`): clients
    // check arguments against it before they sign. A linear scan of code the chain accepted.
    fn get_abi(&self, contract: String) -> RpcResult<Option<Value>> {
        let a = hex32(&contract, "contract")?;
        let chain = self.0.executor.chain();
        let Some(hash) = chain.account(&a).map_err(node_error)?.and_then(|acc| acc.code_hash) else { return Ok(None) };
        Ok(match chain.store().get(&aivm_runtime::StateKey::Code(hash)).map_err(node_error)? {
            Some(aivm_runtime::StateValue::Bytes(code)) => Some(crate::abi::Abi::of_wasm(&code).to_json()),
            _ => None,
        })
    }

    fn get_stake(&self, identity: String) -> RpcResult<Option<String>> {
        let id = hex32(&identity, "validator identity")?;
        let v = self.0.executor.chain().store().get(&crate::staking::stake_key(&id)).map_err(node_error)?;
        Ok(crate::staking::decode_stake(v.as_ref()).map(|s| s.to_string()))
    }

    fn get_validator(&self, identity: String) -> RpcResult<Option<Value>> {
        use aivm_runtime::staking::{epoch, StakingKey, Validator};
        let id = hex32(&identity, "validator identity")?;
        let chain = self.0.executor.chain();
        let read = |k: &aivm_runtime::StateKey| chain.store().get(k).ok().flatten();
        let v: Validator = match read(&StakingKey::Validator(&id).state_key()) {
            Some(aivm_runtime::StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).map_err(node_error)?,
            _ => return Ok(None),
        };
        let stake = crate::staking::decode_stake(read(&crate::staking::stake_key(&id)).as_ref()).unwrap_or(0);
        let height = chain.head().map_or(0, |h| h.height);
        let current = epoch::params(read).map(|p| height / p.epoch_length.max(1));
        let active = current.and_then(|e| epoch::epoch_set(e, read)).is_some_and(|s| s.validators.iter().any(|v| **v == id));
        // Whether the engine's signers of this epoch include it (it holds a key share).
        let signing = current.and_then(|e| crate::execution::read_engine(read, e)).is_some_and(|s| s.signers.iter().any(|v| **v == id));
        // Leader slots of this epoch and the last (`staking::liveness`).
        let slots = |e: u64| -> Value {
            let l: aivm_runtime::staking::Liveness = match read(&StakingKey::Liveness(e, &id).state_key()) {
                Some(aivm_runtime::StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).unwrap_or_default(),
                _ => Default::default(),
            };
            serde_json::json!({"epoch": e, "led": l.led, "missed": l.missed})
        };
        let liveness: Vec<Value> = current.map(|e| [Some(e), e.checked_sub(1)].into_iter().flatten().map(slots).collect()).unwrap_or_default();
        Ok(Some(serde_json::json!({
            "identity": to_hex(&id), "stake": stake.to_string(), "unbonding": v.unbonding.to_string(), "unlock_at": v.unlock_at,
            "tombstoned": v.tombstoned, "consensus_key": to_hex(&v.consensus_key), "epoch": current, "active": active, "signing": signing,
            "p2p": v.p2p,
            "jailed_until": v.jailed_until, "liveness": liveness,
        })))
    }

    fn query(&self, contract: String, entry: String, args_hex: String, gas_limit: Option<u64>) -> RpcResult<Value> {
        let gas = gas_limit.unwrap_or(MAX_QUERY_GAS).min(MAX_QUERY_GAS);
        let contract = hex32(&contract, "contract")?;
        let args = from_hex(&args_hex).ok_or_else(|| invalid("args: not hex"))?;
        let c = &self.0;
        let _slot = c.queries.clone().try_acquire_owned().map_err(|_| err(BUSY, format!("{MAX_CONCURRENT_QUERIES} queries are running; try again")))?;
        let chain = c.executor.chain();
        let head = chain.block(chain.head().map_or(0, |h| h.height)).map_err(node_error)?.ok_or_else(|| node_error("head block missing"))?;
        let mut view = Overlay::new(chain.store());
        let balance = chain.account(&contract).map_err(node_error)?.map_or(0, |a| a.balance);
        let ctx = CallContext {
            caller: [0; 32],
            contract,
            block_height: head.header.height,
            block_time_ms: head.header.time_ms,
            value: 0,
            balance,
            tx_hash: [0; 32],
        };
        let out = chain.vm().query(&mut view, contract, &entry, args, gas, ctx, Some(MAX_QUERY_TIME)).map_err(|e| err(TX_REFUSED, e.to_string()))?;
        if let Some(e) = view.take_error() {
            return Err(node_error(e));
        }
        Ok(json!({
            "status": if out.result.is_ok() { "success" } else { "error" },
            "output": out.result.as_ref().map(|o| to_hex(o)).ok(),
            "error": out.result.as_ref().err().map(|e| e.to_string()),
            "gas_used": out.gas.used,
        }))
    }

    fn health(&self) -> RpcResult<Value> {
        // Head height and time from memory: no block is read or decoded per health check.
        let height = self.0.executor.head().0;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let age = now_ms.saturating_sub(self.0.executor.head_time());
        if age > STALE_AFTER_MS {
            return Err(err(NODE_ERROR, format!("no block finalized for {} s (height {height})", age / 1000)));
        }
        Ok(json!({"height": height, "head_age_ms": age}))
    }

    fn status(&self) -> RpcResult<Value> {
        let (height, digest) = self.0.executor.head();
        // The engine epoch of the next block, and whether this node holds a share for it.
        let chain = self.0.executor.chain();
        let epoch = aivm_runtime::staking::epoch::params(|k| chain.store().get(k).ok().flatten()).map(|p| (height + 1) / p.epoch_length.max(1));
        let signer = epoch.and_then(|e| self.0.executor.signer_epochs.lock().get(&e).copied());
        let pool = self.0.executor.mempool.lock();
        Ok(json!({"chain_id": self.0.chain_id, "height": height, "head_digest": to_hex(&digest), "epoch": epoch, "signer": signer,
            "mempool_txs": pool.len(), "mempool_bytes": pool.bytes()}))
    }

    async fn subscribe_finalized(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut rx = self.0.finalized.subscribe();
        let sink = pending.accept().await?;
        loop {
            match rx.recv().await {
                Ok(f) => {
                    let raw = serde_json::value::to_raw_value(&finalized_json(&f))?;
                    if sink.send(raw).await.is_err() {
                        return Ok(());
                    }
                }
                // A slow subscriber misses blocks rather than holding the node back.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}
