//! `aivm job submit` and `aivm job status`: a client buying one inference on the market and
//! following it to its answer (`spec/market.md` §6).

use super::account::{failure, rpc_addr, Account};
use aivm::model::store::default_home;
use aivm::model::{Engine, Tokenizer};
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::MarketApiClient;
use aivm_node::rpc_client::NodeClient;
use aivm_runtime::market::MarketTx;
use aivm_runtime::Payload;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Pay for one inference: quote, escrow, a worker assigned; with --wait, follow it to its end.
    Submit(SubmitArgs),
    /// Where a job stands: its state, output text, receipt, verification and payout.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct SubmitArgs {
    /// A node's JSON-RPC address (host:port).
    #[arg(long)]
    pub rpc: String,
    /// The home whose identity key pays (created with a new key if empty).
    #[arg(long)]
    pub home: PathBuf,
    /// The model's hash (default: the model `make model` converted).
    #[arg(long)]
    pub model: Option<String>,
    /// The question; it is put in the model's chat template and tokenized here.
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 32)]
    pub max_tokens: u32,
    /// The most this job may cost (native units); the quote must not exceed it.
    #[arg(long)]
    pub budget: u128,
    /// Blocks the worker has to commit (it can be expired after twice this).
    #[arg(long, default_value_t = 20)]
    pub sla: u64,
    /// Take the optimistic TEE track: accepted on the worker's attestation, final after the
    /// chain's challenge window (`spec/tee.md`).
    #[arg(long)]
    pub tee: bool,
    /// Wait until the job is settled or its worker slashed, and print the answer.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The job id (its submit transaction's hash).
    pub id: String,
    #[arg(long)]
    pub rpc: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: JobCommand) -> ExitCode {
    let r = match cmd {
        JobCommand::Submit(a) => submit(a),
        JobCommand::Status(a) => status(a),
    };
    super::verdict_exit(r)
}

/// The model hash given, or the default model's.
pub fn model_hash(given: Option<&str>) -> Result<[u8; 32]> {
    let s = match given {
        Some(s) => s.to_string(),
        None => std::fs::read_to_string(default_home().join("default-model"))
            .map_err(|_| anyhow!("no --model and no converted default model: run `make model`"))?
            .trim()
            .to_string(),
    };
    from_hex(&s).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("--model must be 64 hex digits"))
}

/// A model from the local artifact store, for what a client works out itself: the prompt's
/// tokens, the answer's text, and MODEL_INFER's gas for the job (what running it on chain
/// would cost, against which its verification's gas is shown).
pub struct LocalModel {
    pub tokenizer: Tokenizer,
    pub engine: Arc<Engine>,
}

impl LocalModel {
    pub fn open(model: &[u8; 32]) -> Result<Self> {
        let engine = aivm_node::market::registry().engine(model).with_context(|| format!("model {} is not in the local artifact store", to_hex(model)))?;
        Ok(LocalModel { tokenizer: Tokenizer::new(&engine.sku.tokenizer), engine })
    }

    /// MODEL_INFER's gas for one prompt of `prompt` tokens generating up to `max_new`.
    pub fn infer_gas(&self, prompt: u64, max_new: u64) -> Option<u64> {
        let s = aivm::GasSchedule::default();
        self.engine.infer_gas(prompt, max_new, |m, a, t, w, n| s.model_infer_cost(m, a, t, w, n))
    }
}

fn submit(a: SubmitArgs) -> Result<bool> {
    let model = model_hash(a.model.as_deref())?;
    let local = LocalModel::open(&model)?;
    let tok = &local.tokenizer;
    let prompt = tok.encode(&tok.chat_prompt(&a.prompt));
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    let quote = acct.rpc.call(|c| c.quote(to_hex(&model), prompt.len() as u64 + a.max_tokens as u64))?;
    eprintln!("{} prompt tokens + {} new: quote {} (budget {})", prompt.len(), a.max_tokens, quote, a.budget);
    let r = acct.send(Payload::Market(MarketTx::SubmitJob { sku: model, prompt, max_new: a.max_tokens, sla_blocks: a.sla, budget: a.budget, tee: a.tee }))?;
    if let Some(why) = failure(&r) {
        bail!("the submit failed: {why}");
    }
    let id = r["tx_hash"].as_str().unwrap_or_default().to_string();
    let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
    println!("job {id}: fee {}, worker {}", job["fee"].as_str().unwrap_or("?"), job["worker"].as_str().unwrap_or("?"));
    if !a.wait {
        return Ok(true);
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let mut told_provisional = false;
    loop {
        acct.rpc.reconnect_if_closed()?;
        let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
        match job["state"].as_str() {
            // The TEE track: usable now, final after the window (the client may act on it).
            Some("provisional") if !told_provisional => {
                told_provisional = true;
                print_status(&job, &local)?;
                println!("provisional on the worker's attestation; final after block {}", job["challengeable_until"]);
            }
            Some("settled") | Some("slashed") => {
                print_status(&job, &local)?;
                return Ok(job["state"] == "settled");
            }
            _ if Instant::now() > deadline => bail!("job {id} did not end within {} s (state {})", a.timeout, job["state"]),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A job in words: state, answer, receipt, how it ended (for an answer: what checking it
/// cost against running the job on chain) and where the money went.
fn print_status(job: &Value, m: &LocalModel) -> Result<()> {
    let state = job["state"].as_str().unwrap_or("?");
    let fee = job["fee"].as_str().unwrap_or("?");
    println!("state: {state}");
    if let Some(out) = job["output"].as_array() {
        let ids: Vec<u32> = out.iter().filter_map(|t| t.as_u64().map(|t| t as u32)).collect();
        println!("answer: {}", m.tokenizer.decode(&ids).trim());
    }
    if let Some(h) = job["receipt_hash"].as_str() {
        println!("receipt {h}: {} GEMMs committed", job["gemm_count"]);
    }
    let ended = &job["ended_by"];
    let by = ended["tx"].as_str().map(|tx| format!(" by transaction {tx} ({} gas)", ended["gas_used"])).unwrap_or_default();
    match state {
        "settled" => {
            let checked = match (job["track"].as_str(), ended["gas_used"].as_u64(), inference_gas_of(job, m)) {
                (Some("freivalds"), Some(gas), Some(infer)) => {
                    format!("; checking the answer cost {:.2} % of the {infer} gas of running the job on chain", 100.0 * gas as f64 / infer as f64)
                }
                _ => String::new(),
            };
            println!("settled at block {}{by}{checked}", job["settled_at"]);
            let p = &job["payout"];
            match p["worker"].as_str() {
                Some(w) => println!(
                    "fee {fee} paid: worker {w}, validators {}, verifiers {}, liquidity providers {}, burned {}",
                    p["validators"].as_str().unwrap_or("?"),
                    p["verifiers"].as_str().unwrap_or("?"),
                    p["liquidity"].as_str().unwrap_or("?"),
                    p["burned"].as_str().unwrap_or("?")
                ),
                None => println!("the worker was paid 80 % of {fee}"),
            }
        }
        "slashed" => println!(
            "worker slashed {} at block {}{by}: {}; the client was refunded {fee}",
            job["slashed"].as_str().unwrap_or("?"),
            job["slashed_at"],
            job["reason"].as_str().unwrap_or("?"),
        ),
        _ => {}
    }
    Ok(())
}

/// MODEL_INFER's gas for the job's shape (its prompt, `max_new`).
fn inference_gas_of(job: &Value, m: &LocalModel) -> Option<u64> {
    let prompt = job["prompt"].as_array()?.len() as u64;
    m.infer_gas(prompt, job["max_new"].as_u64()?)
}

fn status(a: StatusArgs) -> Result<bool> {
    let rpc = NodeClient::connect(rpc_addr(&a.rpc)?)?;
    let job = rpc.call(|c| c.get_job(a.id.to_string()))?.unwrap_or_default();
    if job.is_null() {
        bail!("no job {}", a.id);
    }
    if a.json {
        println!("{job}");
        return Ok(true);
    }
    let model = from_hex(job["model"].as_str().unwrap_or_default()).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("job has no model"))?;
    print_status(&job, &LocalModel::open(&model)?)?;
    Ok(true)
}
