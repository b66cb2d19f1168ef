//! `aivm inspect X.wasm`: what the chain will make of a contract before it is deployed — whether
//! it validates and compiles, its entry points and host imports, what it costs to deploy, what
//! every call pays for its memory, and how deep it can call (`spec/gas.md`).

use aivm::{GasSchedule, Limits, Vm};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The contract: a `.wasm` file, or `.wat` text.
    pub wasm: PathBuf,
}

/// Exit 0 when the module deploys, 1 when the chain would refuse it (the JSON says why), 2 when
/// the file cannot be read.
pub fn run(a: InspectArgs) -> ExitCode {
    super::verdict_exit(inspect(&a).map(|(report, deploys)| {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        deploys
    }))
}

fn inspect(a: &InspectArgs) -> Result<(serde_json::Value, bool)> {
    let bytes = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let wasm = if a.wasm.extension().is_some_and(|e| e == "wat") { wat::parse_bytes(&bytes).context("parsing the wat")?.into_owned() } else { bytes };
    let (limits, schedule) = (Limits::default(), GasSchedule::default());
    let mut report = json!({
        "file": a.wasm.display().to_string(),
        "bytes": wasm.len(),
        "code_hash": hex::encode(blake3::hash(&wasm).as_bytes()),
        "deploy_gas": aivm::deploy_price(&wasm, &limits, &schedule).ok(),
    });
    let info = match aivm::validate::validate(&wasm, &limits) {
        Ok(info) => info,
        Err(e) => {
            report["deploys"] = json!(false);
            report["error"] = json!(e.to_string());
            return Ok((report, false));
        }
    };
    let frames = match aivm::stack::instrument_with_frames(&wasm, &limits) {
        Ok((_, frames)) => frames,
        Err(e) => {
            report["deploys"] = json!(false);
            report["error"] = json!(e.to_string());
            return Ok((report, false));
        }
    };
    let vm = Vm::new(limits.clone(), schedule.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let compiled = vm.deploy(&wasm);
    report["deploys"] = json!(compiled.is_ok());
    if let Err(e) = &compiled {
        report["error"] = json!(e.to_string());
    }
    let entries: Vec<String> = compiled.as_ref().map(|c| c.entries().map(str::to_string).collect()).unwrap_or_default();
    let (largest, smallest) = (frames.iter().copied().max().unwrap_or(0), frames.iter().copied().min().unwrap_or(0));
    report["entries"] = json!(entries);
    // Each entry's argument and result types, and the shapes of the types they name, as the
    // source wrote them (`#[entry_point]`, `#[derive(Schema)]`).
    report["abi"] = aivm_node::abi::Abi::parse(&info.abi).to_json();
    report["imports"] = json!(info.imports);
    report["functions"] = json!(info.functions);
    report["memory"] = json!({
        "initial_pages": info.initial_pages,
        "cap_pages": limits.max_memory_pages,
        "gas_per_call": info.initial_pages.saturating_mul(schedule.memory_page),
        "gas_per_grown_page": schedule.memory_page,
    });
    report["largest_function"] = json!({"bytes": info.max_function_bytes, "locals": info.max_locals, "nesting": info.max_nesting});
    report["stack"] = json!({
        "limit_bytes": limits.max_stack_bytes,
        "largest_frame_bytes": largest,
        "smallest_frame_bytes": smallest,
        "frames_of_the_largest": limits.max_stack_bytes.checked_div(largest),
        "frames_of_the_smallest": limits.max_stack_bytes.checked_div(smallest),
    });
    Ok((report, compiled.is_ok()))
}
