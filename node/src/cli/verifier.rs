//! `aivm verifier run`: a bonded verifier. It watches settled jobs, re-runs a sampled fraction
//! α of them in full on the model, and disputes any whose output differs from its own run
//! (`spec/market.md` §6a); the chain then makes the worker open the step where the runs part.
//! A re-run that agrees, of a job in the chain's sample for this verifier, is attested and
//! proven with openings of this verifier's own trace, for which it is paid (§6d).

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
    /// The verifier's bond: stake and unbonding.
    Status(super::stake::HomeArgs),
    /// Start unbonding: it stays slashable (a false report) until the delay has passed.
    Unbond(super::stake::AmountArgs),
    /// Move unbonded stake whose delay has passed back to the balance.
    Withdraw(super::stake::HomeArgs),
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
    /// Fraction of settled jobs re-run in full (seed 002's α; default: the chain's
    /// `verify_sample_ppm`, the sample a verifier is paid for).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// TEST ONLY: dispute sampled jobs with a made-up output (to see a false report punished).
    #[arg(long, hide = true)]
    pub lie: bool,
}

pub fn run(cmd: VerifierCommand) -> ExitCode {
    match cmd {
        VerifierCommand::Run(a) => super::verdict_exit(serve(a).map(|()| true)),
        VerifierCommand::Status(a) => super::verdict_exit(super::stake::status(&a, Role::Verifier)),
        VerifierCommand::Unbond(a) => super::verdict_exit(super::stake::unbond(&a, Role::Verifier)),
        VerifierCommand::Withdraw(a) => super::verdict_exit(super::stake::withdraw(&a, Role::Verifier)),
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

/// An attestation waiting for its challenge: the block it was made in, and this verifier's
/// own run of the job.
struct Pending {
    at: u64,
    receipt: aivm::model::commit::InferenceReceipt,
    trace: aivm::model::commit::Trace,
}

fn serve(a: RunArgs) -> Result<()> {
    let model = super::job::model_hash(a.model.as_deref())?;
    let engine = aivm_node::market::registry().engine(&model).with_context(|| format!("loading model {}", to_hex(&model)))?;
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    let me = acct.address();
    let params = acct.rpc.call(|c| c.get_market())?["params"].clone();
    let ppm = params["verify_sample_ppm"].as_u64().unwrap_or(0).min(1_000_000) as u32;
    let attest_gemms = params["attest_gemms"].as_u64().unwrap_or(1) as u32;
    let alpha = a.alpha.unwrap_or(ppm as f64 / 1e6);
    if !(0.0..=1.0).contains(&alpha) {
        bail!("--alpha must be between 0 and 1");
    }
    acct.bond_once(Role::Verifier, a.stake, 0)?;
    log(&format!("verifier {} checking {alpha} of settled jobs on model {} (paid for {ppm} ppm)", to_hex(&me), to_hex(&model)));
    let mut pending: BTreeMap<[u8; 32], Pending> = BTreeMap::new();
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
                if data.len() < 32 || !sampled(&data[..32], &me, alpha) {
                    continue;
                }
                let id = to_hex(&data[..32]);
                let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
                if job["model"].as_str() != Some(to_hex(&model).as_str()) || !(job["state"] == "settled" || job["state"] == "provisional") {
                    continue;
                }
                let ids = |k: &str| -> Vec<u32> { job[k].as_array().into_iter().flatten().filter_map(|t| t.as_u64().map(|t| t as u32)).collect() };
                let (prompt, claimed) = (ids("prompt"), ids("output"));
                let (mut mine, trace) = run_committed(&engine, &[prompt], job["max_new"].as_u64().unwrap_or(1) as usize)?;
                if a.lie {
                    let first = mine.outputs[0].first_mut().ok_or_else(|| anyhow!("empty output"))?;
                    *first = (*first + 1) % engine.sku.config.vocab;
                    mine.output_root = tokens_root(&mine.outputs);
                }
                let job_id: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id"))?;
                if mine.outputs[0] == claimed {
                    log(&format!("job {id}: re-ran it; the output is right"));
                    if job["state"] == "settled" && aivm_runtime::market::attest::sampled(&job_id, &me, ppm) {
                        let r = acct.send_with(Payload::Market(MarketTx::Attest { job: job_id }), 1_000_000, Duration::from_secs(60))?;
                        match r["block_height"].as_u64().filter(|_| r["status"] == "success") {
                            Some(at) => {
                                pending.insert(job_id, Pending { at, receipt: mine, trace });
                            }
                            None => log(&format!("job {id}: attestation refused ({})", r["status"])),
                        }
                    }
                    continue;
                }
                let r = acct.send_with(Payload::Market(MarketTx::Dispute { job: job_id, receipt: cbor(&mine) }), 50_000_000, Duration::from_secs(60))?;
                log(&format!("job {id}: output differs from my run; disputed ({})", r["status"]));
                disputed.insert(id, ());
            }
        }
        // Answer attestations whose challenge exists, from this verifier's own trace.
        let ready: Vec<[u8; 32]> = pending.iter().filter(|(_, p)| height > p.at).map(|(k, _)| *k).collect();
        for job_id in ready {
            let Some(p) = pending.remove(&job_id) else { continue };
            let block = acct.rpc.call(|c| c.get_block(p.at + 1))?.unwrap_or_default();
            let Some(beacon) = block["beacon"].as_str().and_then(from_hex).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                log(&format!("job {}: no beacon at block {}; attestation left to expire", to_hex(&job_id), p.at + 1));
                continue;
            };
            let ch = aivm_runtime::market::attest::challenge(&beacon, &job_id, &me, attest_gemms);
            let response = aivm::model::audit::respond(&engine.sku, &p.receipt, &p.trace, &ch)?.encode();
            let r = acct.send_with(Payload::Market(MarketTx::AttestAnswer { job: job_id, response }), 1_000_000_000, Duration::from_secs(60))?;
            let paid = r["events"].as_array().into_iter().flatten().find(|e| e["topic"].as_str() == Some(to_hex(b"job.attestation_paid").as_str()));
            match paid.and_then(|e| e["data"].as_str().and_then(from_hex)).filter(|d| d.len() == 80) {
                Some(d) => log(&format!("job {}: re-execution proven; paid {}", to_hex(&job_id), u128::from_le_bytes(d[64..80].try_into().unwrap_or([0; 16])))),
                None => log(&format!("job {}: attestation answer not paid ({})", to_hex(&job_id), r["status"])),
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
