//! State sync's serving side (`spec/rpc.md`, "State sync"): the snapshots this node keeps
//! ([`crate::snapshots`]), their anchors and their chunks. Everything here is checked by the
//! joiner (`aivm node sync`); a node serves what it has, nothing it is asked to trust.

use super::api::Api;
use super::{hex32, node_error, NODE_ERROR};
use crate::hexbytes::to_hex;
use crate::snapshots::{SnapshotError, Snapshots};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};
use std::sync::Arc;

#[rpc(server, client, namespace = "aivm")]
pub trait SyncApi {
    /// The snapshots this node serves, newest first: `[{height, state_root}]`.
    #[method(name = "getSnapshots", blocking)]
    fn get_snapshots(&self) -> RpcResult<Vec<Value>>;

    /// What proves a snapshot: `{height, finalization, block, info, record}` (hex: the block's
    /// finalization certificate, the block, its epoch's info, the runtime's record of it).
    #[method(name = "getSnapshotAnchor", blocking)]
    fn get_snapshot_anchor(&self, height: u64) -> RpcResult<Value>;

    /// A snapshot's entries after key hash `after` (`null`: from the first), in key-hash order:
    /// `{entries: [[key, value]], proof, last}` (hex; `proof`: the range proof of the last entry).
    #[method(name = "getSnapshotChunk", blocking)]
    fn get_snapshot_chunk(&self, height: u64, after: Option<String>) -> RpcResult<Value>;
}

fn snapshots(api: &Api) -> Result<&Arc<Snapshots>, ErrorObjectOwned> {
    api.0.executor.snapshots().ok_or_else(|| super::err(NODE_ERROR, "this node serves no snapshots"))
}

fn snapshot_error(e: SnapshotError) -> ErrorObjectOwned {
    match e {
        SnapshotError::Unknown(_) => super::invalid(e.to_string()),
        other => node_error(other),
    }
}

impl SyncApiServer for Api {
    fn get_snapshots(&self) -> RpcResult<Vec<Value>> {
        let s = snapshots(self)?;
        Ok(s.served().into_iter().filter_map(|h| s.state_root(h).ok().map(|r| json!({"height": h, "state_root": to_hex(&r)}))).collect())
    }

    fn get_snapshot_anchor(&self, height: u64) -> RpcResult<Value> {
        let a = snapshots(self)?.anchor(height).map_err(snapshot_error)?;
        Ok(json!({"height": height, "finalization": to_hex(&a.finalization), "block": to_hex(&a.block), "info": to_hex(&a.info), "record": to_hex(&a.record)}))
    }

    fn get_snapshot_chunk(&self, height: u64, after: Option<String>) -> RpcResult<Value> {
        let after = after.map(|a| hex32(&a, "after")).transpose()?;
        let c = snapshots(self)?.chunk(height, after).map_err(snapshot_error)?;
        let entries: Vec<Value> = c.entries.iter().map(|(k, v)| json!([to_hex(k), to_hex(v)])).collect();
        Ok(json!({"entries": entries, "proof": to_hex(&c.proof), "last": c.last}))
    }
}
