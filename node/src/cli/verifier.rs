//! `aivm verifier run`: a bonded verifier. It watches settled jobs, re-runs a sampled fraction
//! α of them in full on the model, and disputes any whose output differs from its own run
//! (`spec/market.md` §6a); the chain then makes the worker open the step where the runs part.

use super::account::{rpc_addr, Account};
use aivm::model::commit::{run_committed, tokens_root};
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::{AivmApiClient, MarketApiClient};
use aivm_runtime::encoding::cbor;
use aivm_runtime::market::{market_address, MarketTx, Role};
use aivm_runtime::Payload;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum VerifierCommand {
    /// Bond, then re-run a sample of settled jobs and dispute wrong ones, until stopped.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The verifier's home: its identity key (created if absent) bonds and is paid.
    #[arg(long)]
    pub home: PathBuf,
    /// A node's JSON-RPC address (host:port).
    #[arg(long)]
    pub rpc: String,
    /// The model whose jobs to check (default: the model `make model` converted).
    #[arg(long)]
    pub model: Option<String>,
    /// Stake to bond if not bonded yet (the genesis minimum is 50 000).
    #[arg(long, default_value_t = 50_000)]
    pub stake: u128,
    /// Fraction of settled jobs re-run in full (seed 002's α).
    #[arg(long, default_value_t = 0.003)]
    pub alpha: f64,
    /// TEST ONLY: dispute sampled jobs with a made-up output (to see a false report punished).
    #[arg(long, hide = true)]
    pub lie: bool,
}

pub fn run(cmd: VerifierCommand) -> ExitCode {
    match cmd {
        VerifierCommand::Run(a) => super::verdict_exit(serve(a).map(|()| true)),
    }
}

/// Whether this verifier re-runs job `id`: BLAKE3 of the job and the verifier, as a fraction
/// of 2⁶⁴, below α. Deterministic, so a worker cannot tell which verifier will check it
/// without knowing every verifier's key, and each verifier samples independently.
fn sampled(id: &[u8], me: &[u8; 32], alpha: f64) -> bool {
    let h = blake3::hash(&[id, &me[..]].concat());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    (x as f64) < alpha.clamp(0.0, 1.0) * (u64::MAX as f64)
}

fn serve(a: RunArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha must be between 0 and 1");
    }
    let model = super::job::model_hash(a.model.as_deref())?;
    let engine = aivm_node::market::registry().engine(&model).with_context(|| format!("loading model {}", to_hex(&model)))?;
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    let me = acct.address();
    acct.bond_once(Role::Verifier, a.stake, 0)?;
    log(&format!("verifier {} checking {} of settled jobs on model {}", to_hex(&me), a.alpha, to_hex(&model)));
    // Settled Freivalds-track jobs, and provisional TEE-track ones (the same dispute overturns
    // them inside their challenge window: `spec/tee.md` §5).
    let (market, topics) = (to_hex(&market_address()), [to_hex(b"job.settled"), to_hex(b"job.provisional")]);
    let mut next = acct.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
    let mut disputed: BTreeMap<String, ()> = BTreeMap::new();
    loop {
        acct.rpc.reconnect_if_closed()?;
        let height = acct.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
        while next <= height {
            let receipts = serde_json::Value::from(acct.rpc.call(|c| c.get_block_receipts(next))?.unwrap_or_default());
            next += 1;
            for e in receipts.as_array().into_iter().flatten().flat_map(|r| r["events"].as_array().cloned().unwrap_or_default()) {
                if e["contract"].as_str() != Some(market.as_str()) || !topics.iter().any(|t| e["topic"].as_str() == Some(t.as_str())) {
                    continue;
                }
                let data = e["data"].as_str().and_then(from_hex).unwrap_or_default();
                if data.len() < 32 || !sampled(&data[..32], &me, a.alpha) {
                    continue;
                }
                let id = to_hex(&data[..32]);
                let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
                if job["model"].as_str() != Some(to_hex(&model).as_str()) || !(job["state"] == "settled" || job["state"] == "provisional") {
                    continue;
                }
                let ids = |k: &str| -> Vec<u32> { job[k].as_array().into_iter().flatten().filter_map(|t| t.as_u64().map(|t| t as u32)).collect() };
                let (prompt, claimed) = (ids("prompt"), ids("output"));
                let (mut mine, _) = run_committed(&engine, &[prompt], job["max_new"].as_u64().unwrap_or(1) as usize)?;
                if a.lie {
                    let first = mine.outputs[0].first_mut().ok_or_else(|| anyhow!("empty output"))?;
                    *first = (*first + 1) % engine.sku.config.vocab;
                    mine.output_root = tokens_root(&mine.outputs);
                }
                if mine.outputs[0] == claimed {
                    log(&format!("job {id}: re-ran it; the output is right"));
                    continue;
                }
                let job_id: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id"))?;
                let r = acct.send_with(Payload::Market(MarketTx::Dispute { job: job_id, receipt: cbor(&mine) }), 50_000_000, Duration::from_secs(60))?;
                log(&format!("job {id}: output differs from my run; disputed ({})", r["status"]));
                disputed.insert(id, ());
            }
        }
        // Report how disputes ended.
        let ids: Vec<String> = disputed.keys().cloned().collect();
        for id in ids {
            let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
            match job["state"].as_str() {
                Some("slashed") => {
                    log(&format!("job {id}: the worker was slashed {} ({})", job["slashed"].as_str().unwrap_or("?"), job["reason"].as_str().unwrap_or("")))
                }
                Some("settled") | Some("provisional") | Some("final") => {
                    log(&format!("job {id}: the worker opened the step correctly; this dispute was false"))
                }
                _ => continue,
            }
            disputed.remove(&id);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log(s: &str) {
    eprintln!("[verifier] {s}");
}
