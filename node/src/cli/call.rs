//! `aivm call`: deploy a wasm file and run one entry point, without a transaction (no
//! signature, no fee): a development tool. With `--state` the storage persists in the same
//! RocksDB database and Merkle tree a node uses.

use super::codec::{hex, json_to_cbor, output_to_json, unhex};
use aivm::{CallContext, GasSchedule, Limits, Vm};
use aivm_runtime::overlay::Overlay;
use aivm_runtime::{contract_entries, storage_entries, Chain, ChainConfig, ChainVm, Genesis, StateKey};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CallArgs {
    /// The contract's wasm file (`.wat` text is accepted too).
    pub wasm: PathBuf,
    /// The entry point to call.
    pub entry: String,
    /// Arguments as JSON (encoded to CBOR for the contract); default `null`.
    #[arg(long, default_value = "null")]
    pub args: String,
    /// Gas limit (1 gas ≈ 0.1 ns on the reference machine).
    #[arg(long, default_value_t = 10_000_000_000)]
    pub gas_limit: u64,
    /// Keep state (a RocksDB chain database, `DIR/db`) and compiled modules (`DIR/modules`)
    /// in this directory across calls; each successful call commits one block.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Caller address, 64 hex digits.
    #[arg(long, default_value = "0101010101010101010101010101010101010101010101010101010101010101")]
    pub caller: String,
    /// Block height and time (ms) the contract sees.
    #[arg(long, default_value_t = 1)]
    pub height: u64,
    /// Skip checking --args against the contract's entry-point schema.
    #[arg(long)]
    pub no_check: bool,
    #[arg(long, default_value_t = 0)]
    pub time_ms: u64,
}

/// Exit codes: 0 the call succeeded, 1 the contract failed (JSON says why), 2 bad usage or I/O.
pub fn run(args: CallArgs) -> ExitCode {
    match execute(&args) {
        Ok((report, ok)) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let report = json!({"status": "error", "gas_used": 0, "gas_by_op": {}, "output": null,
                                "error": {"kind": "usage", "message": format!("{e:#}")}});
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::from(2)
        }
    }
}

fn execute(a: &CallArgs) -> Result<(Value, bool)> {
    let mut wasm = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    if a.wasm.extension().is_some_and(|e| e == "wat") {
        wasm = wat::parse_bytes(&wasm).with_context(|| format!("parsing {}", a.wasm.display()))?.into_owned();
    }
    let caller: [u8; 32] = unhex(&a.caller).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("--caller must be 64 hex digits"))?;
    let json_args: Value = serde_json::from_str(&a.args).context("--args is not valid JSON")?;
    if !a.no_check {
        aivm_node::abi::Abi::of_wasm(&wasm).check(&a.entry, &json_args).context("--args do not fit the entry point (--no-check skips this)")?;
    }
    // Without --state the call runs against a fresh chain in a scratch directory.
    let scratch = match &a.state {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("aivm-call-").tempdir().context("creating a scratch directory")?),
    };
    let dir = a.state.clone().or_else(|| scratch.as_ref().map(|s| s.path().to_path_buf())).context("no state directory")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating state directory {}", dir.display()))?;

    let vm = Vm::new(Limits::default(), GasSchedule::default())?
        .with_disk_cache(dir.join("modules"))
        .context("opening the module cache")?
        .with_backend(super::devices::open_backend(None, Some(1))?)
        .with_models(std::sync::Arc::new(aivm_node::market::registry()));
    let contract = match vm.deploy(&wasm) {
        Ok(c) => c,
        Err(e) => {
            let report = json!({"status": "error", "gas_used": 0, "gas_limit": a.gas_limit, "gas_by_op": {},
                                "output": null, "events": [], "error": {"kind": e.kind(), "message": e.to_string()}});
            return Ok((report, false));
        }
    };
    let chain = Chain::open(dir.join("db"), ChainVm::new(vm), ChainConfig { chain_id: 0, fee_collector: [0; 32] })
        .with_context(|| format!("opening the state database in {}", dir.display()))?;
    if chain.head().is_none() {
        chain.init_genesis(&Genesis::default())?;
    }
    // The contract lives at its code hash; install it on first use.
    let address = contract.code_hash();
    let mut view = Overlay::new(chain.store());
    let installed = chain.store().get(&StateKey::Account(address))?.is_some();
    if !installed {
        view.writes.extend(contract_entries(address, address, &wasm));
    }
    let ctx = CallContext { caller, contract: address, block_height: a.height, block_time_ms: a.time_ms, ..CallContext::default() };
    // `instantiate` installs the contract in this state (once), as a deploy does on chain.
    let out = if a.entry == aivm::INSTANTIATE_ENTRY {
        if installed {
            bail!("the contract is already installed in {}: `instantiate` runs once, when it is deployed", dir.display());
        }
        chain.vm().instantiate(&mut view, address, json_to_cbor(&json_args), a.gas_limit, ctx)?
    } else {
        chain.vm().query(&mut view, address, &a.entry, json_to_cbor(&json_args), a.gas_limit, ctx, None)?
    };
    if let Some(e) = view.take_error() {
        return Err(e).context("reading state");
    }

    let events: Vec<Value> = out.events.iter().map(|e| json!({"topic": String::from_utf8_lossy(&e.topic), "data": output_to_json(&e.data)})).collect();
    let mut report = json!({
        "contract": hex(&address),
        "entry": a.entry,
        "gas_used": out.gas.used,
        "gas_limit": out.gas.limit,
        "gas_by_op": out.gas.by_op,
        "events": events,
    });
    let ok = match &out.result {
        Ok(bytes) => {
            view.writes.extend(storage_entries(address, out.writes));
            let head = chain.commit_direct(std::mem::take(&mut view.writes), a.time_ms)?;
            report["status"] = json!("ok");
            report["output"] = output_to_json(bytes);
            report["error"] = Value::Null;
            report["height"] = json!(head.height);
            report["state_root"] = json!(hex(&head.state_root));
            true
        }
        Err(e) => {
            report["status"] = json!("error");
            report["output"] = Value::Null;
            report["error"] = json!({"kind": e.kind(), "message": e.to_string()});
            false
        }
    };
    Ok((report, ok))
}
