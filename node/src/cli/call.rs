//! `aivm call`: deploy a wasm file and run one entry point.

use super::codec::{hex, json_to_cbor, output_to_json, unhex};
use super::state_dir::StateDir;
use aivm::{CallContext, CallRequest, GasSchedule, Limits, MemState, Vm};
use anyhow::{anyhow, Context, Result};
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
    /// Keep contract storage and compiled modules in this directory across calls.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Caller address, 64 hex digits.
    #[arg(long, default_value = "0101010101010101010101010101010101010101010101010101010101010101")]
    pub caller: String,
    /// Block height and time (ms) the contract sees.
    #[arg(long, default_value_t = 1)]
    pub height: u64,
    #[arg(long, default_value_t = 0)]
    pub time_ms: u64,
}

/// Exit codes: 0 the call succeeded, 1 the contract failed (JSON says why), 2 bad usage or I/O.
pub fn run(args: CallArgs) -> ExitCode {
    match execute(&args) {
        Ok((report, ok)) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
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
    let caller: [u8; 32] = unhex(&a.caller)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("--caller must be 64 hex digits"))?;
    let json_args: Value = serde_json::from_str(&a.args).context("--args is not valid JSON")?;
    let dir = a.state.as_deref().map(StateDir::open).transpose()?;

    let mut vm = Vm::new(Limits::default(), GasSchedule::default())?;
    if let Some(d) = &dir {
        vm = vm.with_disk_cache(d.modules_dir()).context("opening the module cache")?;
    }
    let contract = match vm.deploy(&wasm) {
        Ok(c) => c,
        Err(e) => {
            let report = json!({"status": "error", "gas_used": 0, "gas_limit": a.gas_limit, "gas_by_op": {},
                                "output": null, "events": [], "error": {"kind": e.kind(), "message": e.to_string()}});
            return Ok((report, false));
        }
    };
    let address = contract.code_hash();
    let state = match &dir {
        Some(d) => d.load(&address)?,
        None => MemState::default(),
    };
    let ctx = CallContext { caller, contract: address, block_height: a.height, block_time_ms: a.time_ms };
    let out = vm.call(&contract, CallRequest { entry: &a.entry, input: json_to_cbor(&json_args), gas_limit: a.gas_limit, ctx, view: state.view() });

    let events: Vec<Value> = out
        .events
        .iter()
        .map(|e| json!({"topic": String::from_utf8_lossy(&e.topic), "data": output_to_json(&e.data)}))
        .collect();
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
            if let Some(d) = &dir {
                d.save(&address, state, &out.writes)?;
            }
            report["status"] = json!("ok");
            report["output"] = output_to_json(bytes);
            report["error"] = Value::Null;
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
