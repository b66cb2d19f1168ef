//! `aivm node sync`: fill a fresh home's state from a peer's snapshot instead of replaying the
//! chain from genesis (`spec/consensus.md` §State sync). The peer is not trusted: its block must
//! carry a finalization certificate under the genesis threshold key, its record must match the
//! block's header, and every chunk of state is checked against the block's state root. On any
//! failure the home is left as it was (no state).

use super::node::SyncArgs;
use aivm_node::config::NodeConfig;
use aivm_node::consensus::sync::{check_anchor, check_info, save_floor, FLOOR_FILE};
use aivm_node::genesis::GenesisFile;
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::SyncApiClient;
use aivm_node::rpc_client::NodeClient;
use aivm_runtime::store::snapshot::{Chunk, Restore};
use aivm_runtime::{BlockRecord, Store};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub fn run(a: SyncArgs) -> Result<()> {
    let cfg = NodeConfig::load(&a.home)?;
    let genesis_path = a.home.join(&cfg.genesis);
    let genesis = GenesisFile::from_json(&std::fs::read(&genesis_path).with_context(|| format!("reading {}", genesis_path.display()))?)
        .with_context(|| format!("{}", genesis_path.display()))?;
    let data = a.home.join(&cfg.data);
    let state_dir = data.join("state");
    refuse_a_used_home(&data, &state_dir)?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let started = Instant::now();
    let r = sync(&a, &genesis, &data, &state_dir);
    if r.is_err() {
        // Leave the home fresh: a half-restored store would be taken for a chain.
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    let mut out = r?;
    out["seconds"] = json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    println!("{out}");
    Ok(())
}

fn refuse_a_used_home(data: &Path, state_dir: &Path) -> Result<()> {
    if data.join(FLOOR_FILE).exists() {
        bail!("{} was already state-synced; state sync fills a fresh home", data.display());
    }
    if state_dir.exists() {
        let store = Store::open(state_dir).with_context(|| format!("opening {}", state_dir.display()))?;
        if let Some(h) = store.head() {
            bail!("{} already holds a chain at height {}: state sync fills a fresh home (move its data away first)", data.display(), h.height);
        }
    }
    if std::fs::read_dir(data.join("consensus")).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} holds consensus data: state sync fills a fresh home (move its data away first)", data.display());
    }
    Ok(())
}

fn hex_field(v: &Value, name: &str) -> Result<Vec<u8>> {
    v[name].as_str().and_then(from_hex).with_context(|| format!("the peer's answer has no hex `{name}`"))
}

fn sync(a: &super::node::SyncArgs, genesis: &GenesisFile, data: &Path, state_dir: &Path) -> Result<Value> {
    let peer = NodeClient::connect(a.from)?;
    let height = match a.height {
        Some(h) => h,
        None => {
            let list = peer.call(|c| c.get_snapshots())?;
            list.first().and_then(|s| s["height"].as_u64()).with_context(|| format!("{} serves no snapshot", a.from))?
        }
    };
    let anchor = peer.call(|c| c.get_snapshot_anchor(height))?;
    let (cert, block, record_bytes) = (hex_field(&anchor, "finalization")?, hex_field(&anchor, "block")?, hex_field(&anchor, "record")?);
    let info = hex_field(&anchor, "info")?;
    let anchor = check_anchor(genesis, &cert, &block, &info)?;
    if anchor.height != height {
        bail!("the peer's snapshot block is at height {}, not {height}", anchor.height);
    }
    let record = BlockRecord::decode(&record_bytes)?;
    if record.header != anchor.block.header || !record.receipts_match_header() {
        bail!("the peer's block record does not match the finalized block");
    }
    let root = anchor.block.header.state_root;
    let store = Arc::new(Store::open(state_dir).with_context(|| format!("creating {}", state_dir.display()))?);
    let mut restore = Restore::begin(Arc::clone(&store), height, root)?;
    let (mut chunks, mut bytes) = (0u64, 0u64);
    loop {
        let after = restore.after().map(|h| to_hex(&h));
        let v = peer.call(|c| c.get_snapshot_chunk(height, after))?;
        let entries = v["entries"].as_array().context("chunk without entries")?;
        let mut chunk = Chunk { entries: Vec::with_capacity(entries.len()), proof: hex_field(&v, "proof")?, last: v["last"].as_bool().unwrap_or(false) };
        for e in entries {
            let (k, val) = (e[0].as_str().and_then(from_hex), e[1].as_str().and_then(from_hex));
            let (Some(k), Some(val)) = (k, val) else { bail!("a chunk entry is not a pair of hex strings") };
            bytes += (k.len() + val.len()) as u64;
            chunk.entries.push((k, val));
        }
        restore.add_chunk(&chunk).with_context(|| format!("chunk {chunks} from {}", a.from))?;
        chunks += 1;
        if chunk.last {
            break;
        }
    }
    let entries = restore.entries();
    let head = restore.finish(&record_bytes, &anchor.digest)?;
    check_info(&anchor, |k| store.get(k).ok().flatten())?;
    drop(store);
    save_floor(data, &anchor.finalization, &anchor.info).with_context(|| format!("writing {}", data.join(FLOOR_FILE).display()))?;
    Ok(json!({
        "height": head.height,
        "state_root": to_hex(&head.state_root),
        "block": to_hex(&anchor.digest),
        "entries": entries,
        "chunks": chunks,
        "bytes": bytes,
        "from": a.from.to_string(),
    }))
}
