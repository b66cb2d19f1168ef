//! `aivm worker run`: a staked worker. It bonds for a model, watches finalized blocks for jobs
//! assigned to it, runs each on the model off chain (committing every GEMM), commits the
//! receipt, waits for the challenge the chain draws after the commit, and answers it with
//! openings (`spec/market.md` §6). On the optimistic TEE track it commits with an attestation
//! instead (its home's devnet enclave key: `spec/tee.md` §6), answers a spot check if one is
//! drawn, and finalizes the job once its window has passed to be paid. `--cheat` modes exist to
//! show each cheat being caught.

use super::account::{rpc_addrs, Account};
use aivm::model::audit::{respond, respond_step, Challenge};
use aivm::model::commit::{run_committed, run_committed_each, InferenceReceipt, Trace};
use aivm::model::{merkle, Engine};
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::{AivmApiClient, MarketApiClient};
use aivm_runtime::encoding::cbor;
use aivm_runtime::market::{market_address, MarketTx, Role};
use aivm_runtime::Payload;
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// Bond, then serve assigned jobs until stopped (or --max-jobs have ended).
    Run(RunArgs),
    /// The worker's bond: stake, unbonding, capacity, jobs in flight, verified tokens, quality.
    Status(BondArgs),
    /// Start unbonding: the stake stops counting for new jobs at once and stays slashable
    /// until the unbonding delay has passed.
    Unbond(UnbondArgs),
    /// Move unbonded stake whose delay has passed (and no job in flight) back to the balance.
    Withdraw(BondArgs),
}

#[derive(Args)]
pub struct BondArgs {
    #[command(flatten)]
    pub home: super::stake::HomeArgs,
    /// The model the bond serves (default: the model `make model` converted).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Args)]
pub struct UnbondArgs {
    #[command(flatten)]
    pub bond: BondArgs,
    /// Native units to unbond.
    #[arg(long)]
    pub amount: u128,
}

fn role(model: Option<&str>) -> Result<Role> {
    Ok(Role::Worker { sku: super::job::model_hash(model)? })
}

/// TEST ONLY: how a cheating worker departs from the honest run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Cheat {
    /// Leave layer 1's GEMMs of the first step out of the trace (the run's shape is wrong).
    SkipLayer,
    /// Change one output element of one GEMM (caught when the challenge samples that GEMM).
    Flip,
    /// Run another model (the real one with two layers swapped) and claim the job's model.
    WrongModel,
    /// Commit honestly, then never answer the challenge.
    NoAnswer,
    /// Claim a different last output token: a sampled challenge rarely looks at it, so the
    /// job usually settles — and a verifier re-running it disputes it.
    WrongToken,
}

#[derive(Args)]
pub struct RunArgs {
    /// The worker's home: its identity key (created if absent) pays and is paid.
    #[arg(long)]
    pub home: PathBuf,
    /// A node's JSON-RPC address (host:port); several, comma-separated, to send commits and
    /// answers to every one (they reach the next block whoever leads).
    #[arg(long)]
    pub rpc: String,
    /// The model to serve (default: the model `make model` converted).
    #[arg(long)]
    pub model: Option<String>,
    /// Stake to bond if not bonded yet.
    #[arg(long, default_value_t = 20_000)]
    pub stake: u128,
    /// Compute units (tokens) in flight at once.
    #[arg(long, default_value_t = 4096)]
    pub capacity: u64,
    /// TEST ONLY: cheat this way on every job.
    #[arg(long, value_enum)]
    pub cheat: Option<Cheat>,
    /// Exit after this many of its jobs have ended (settled or slashed).
    #[arg(long)]
    pub max_jobs: Option<usize>,
    /// CPU priority of inference against everything else on the machine: `idle` runs it only
    /// on CPU time nothing else wants (Linux SCHED_IDLE), so the chain and this worker's
    /// answers never wait behind it; `low` is nice 10; `normal` leaves it alone.
    #[arg(long, value_enum, default_value = "idle")]
    pub inference_priority: InferencePriority,
    /// Most jobs run together in one batched pass of the engine (jobs waiting when the last
    /// run ended, with the same `max_new`); each is committed apart with the receipt its
    /// solo run gives. Eight waiting jobs finish 2.1–2.8× sooner in one pass than one after
    /// another, but their answers then reach the chain together (BENCHMARKS.md, "Batched
    /// jobs"). 1 runs jobs one at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub batch: u16,
}

/// How the inference threads share the CPU (`--inference-priority`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InferencePriority {
    Idle,
    Low,
    Normal,
}

pub fn run(cmd: WorkerCommand) -> ExitCode {
    match cmd {
        WorkerCommand::Run(a) => super::verdict_exit(serve(a).map(|()| true)),
        WorkerCommand::Status(a) => super::verdict_exit(role(a.model.as_deref()).and_then(|r| super::stake::status(&a.home, r))),
        WorkerCommand::Unbond(a) => super::verdict_exit(
            role(a.bond.model.as_deref()).and_then(|r| super::stake::unbond(&super::stake::AmountArgs { home: a.bond.home, amount: a.amount }, r)),
        ),
        WorkerCommand::Withdraw(a) => super::verdict_exit(role(a.model.as_deref()).and_then(|r| super::stake::withdraw(&a.home, r))),
    }
}

/// A job this worker holds: its committed run, until the job ends.
struct Held {
    receipt: InferenceReceipt,
    trace: Trace,
    /// The challenge seed answered. A job still committed under another seed is answered
    /// again: the chain refuses an answer to another challenge instead of slashing it, so a
    /// seed shown ahead wrongly costs a fee, not the stake.
    answered: Option<[u8; 32]>,
    /// The answer's transaction, to see whether its block took it.
    answer_tx: Option<String>,
    /// Settled (counted as ended), kept for disputes.
    settled: bool,
    /// The height of the last dispute answered.
    disputes_answered: u64,
    /// A Finalize was sent (TEE track).
    finalized: bool,
}

/// A job waiting for its commit: its track and prompt.
struct Pending {
    tee: bool,
    prompt: Vec<u32>,
}

fn serve(a: RunArgs) -> Result<()> {
    let model = super::job::model_hash(a.model.as_deref())?;
    let registry = aivm_node::market::registry();
    let engine = registry.engine(&model).with_context(|| format!("loading model {}", to_hex(&model)))?;
    let runner = match a.cheat {
        Some(Cheat::WrongModel) => {
            let mut sku = (*engine.sku).clone();
            sku.layers.swap(0, 1);
            Arc::new(Engine::with_hash(Arc::new(sku), model, aivm::model::Options::default())?)
        }
        _ => engine.clone(),
    };
    // Inference runs on a thread of its own, so answering a challenge (whose deadline runs in
    // blocks) never waits behind another job's run; and at a lower CPU priority, so that on a
    // machine it shares (a devnet, a validator's) the answer and the chain are not starved.
    let priority = a.inference_priority;
    rayon::broadcast(|_| lower_this_thread(priority));
    let (to_runner, jobs_in) = std::sync::mpsc::channel::<Queued>();
    let (runs_out, from_runner) = std::sync::mpsc::channel::<(String, Ran, f64)>();
    let (cheat, vocab) = (a.cheat, engine.sku.config.vocab);
    let most = usize::from(a.batch);
    std::thread::spawn(move || {
        lower_this_thread(priority);
        let mut waiting: std::collections::VecDeque<Queued> = Default::default();
        loop {
            if waiting.is_empty() {
                match jobs_in.recv() {
                    Ok(j) => waiting.push_back(j),
                    Err(_) => return,
                }
            }
            waiting.extend(jobs_in.try_iter());
            let start = Instant::now();
            let batch = next_batch(&mut waiting, most);
            if batch.len() > 1 {
                log(&format!("running {} jobs as one batch", batch.len()));
            }
            for (id, run) in run_batch(&runner, batch) {
                let run = run.map(|(mut r, mut t)| {
                    cheat_on(cheat, &mut r, &mut t, vocab);
                    (r, t)
                });
                if runs_out.send((id, run, start.elapsed().as_secs_f64())).is_err() {
                    return;
                }
            }
        }
    });
    let rpcs = rpc_addrs(&a.rpc)?;
    let mut acct = Account::open(&a.home, *rpcs.first().ok_or_else(|| anyhow!("--rpc is empty"))?)?;
    acct.also = rpcs[1..].iter().map(|r| aivm_node::rpc_client::NodeClient::connect(*r)).collect::<Result<_, _>>()?;
    let me = acct.address();
    let enclave = aivm_node::tee::DevnetEnclave::load(&a.home).ok();
    let role = Role::Worker { sku: model };
    acct.bond_once(role, a.stake, a.capacity)?;
    log(&format!("worker {} serving model {} (cheat: {:?})", to_hex(&me), to_hex(&model), a.cheat));
    let mut next = acct.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<String> = Default::default();
    let mut to_commit: std::collections::VecDeque<(String, InferenceReceipt, Trace, f64)> = Default::default();
    let mut ended = 0usize;
    let mut last_height = next;
    let mut blocks = aivm_node::rpc_client::FinalizedWaiter::default();
    let (mut chain_moved, mut last_check) = (true, Instant::now());
    loop {
        acct.rpc.reconnect_if_closed()?;
        // Jobs change only in finalized blocks: read them when one came (or every
        // `RECHECK`, should notifications stop).
        if chain_moved {
            last_check = Instant::now();
            // Answers first: a challenge's deadline runs in blocks. Sends do not wait for their
            // receipts; the job's state on chain says what happened.
            let ids: Vec<String> = held.keys().cloned().collect();
            let mut answers = Vec::new();
            for id in ids {
                let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
                match job["state"].as_str() {
                    // A settled job's trace is kept until no verifier can dispute it any more.
                    Some("settled") if job["disputable_until"].as_u64().is_some_and(|u| last_height <= u) => {
                        if let Some(h) = held.get_mut(&id).filter(|h| !h.settled) {
                            log(&format!("job {id}: settled"));
                            h.settled = true;
                            ended += 1;
                        }
                    }
                    Some("settled") | Some("slashed") => {
                        if held.get(&id).is_some_and(|h| !h.settled) {
                            log(&format!("job {id}: {} {}", job["state"].as_str().unwrap_or("?"), job["reason"].as_str().unwrap_or("")));
                            ended += 1;
                        }
                        held.remove(&id);
                    }
                    Some("disputed") if !job["challenge"].is_null() => {
                        let Some(h) = held.get_mut(&id) else { continue };
                        let at = job["disputed_at"].as_u64().unwrap_or(0);
                        if h.disputes_answered == at || a.cheat == Some(Cheat::NoAnswer) {
                            continue;
                        }
                        // A dispute opens a whole step; the chain draws its Freivalds vectors itself.
                        let step = job["challenge"]["step"].as_u64().unwrap_or(0) as u32;
                        let response = respond_step(&engine.sku, &h.receipt, &h.trace, step).map(|r| r.encode()).unwrap_or_default();
                        let job_id: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id"))?;
                        match acct.send_nowait(Payload::Market(MarketTx::Answer { job: job_id, response }), 1_000_000_000) {
                            Ok(_) => {
                                h.disputes_answered = at;
                                log(&format!("job {id}: disputed at step {step}; opened it"));
                            }
                            Err(e) => log(&format!("job {id}: dispute answer not sent ({e}); retrying")),
                        }
                    }
                    // The window has passed: collect the pay (anyone may; the worker wants it).
                    Some("final") => {
                        let Some(h) = held.get_mut(&id).filter(|h| !h.finalized) else { continue };
                        let job_id: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id"))?;
                        match acct.send_nowait(Payload::Market(MarketTx::Finalize { job: job_id }), 5_000_000) {
                            Ok(_) => {
                                h.finalized = true;
                                log(&format!("job {id}: window passed; finalized"));
                            }
                            Err(e) => log(&format!("job {id}: finalize not sent ({e}); retrying")),
                        }
                    }
                    // A Freivalds-track challenge, or a provisional job's spot check.
                    Some("committed") | Some("provisional") if !job["challenge"].is_null() => {
                        let Some(h) = held.get_mut(&id) else { continue };
                        let ch = &job["challenge"];
                        let seed: [u8; 32] = ch["seed"].as_str().and_then(from_hex).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad challenge"))?;
                        if job["spot_check_answered"] == true || a.cheat == Some(Cheat::NoAnswer) {
                            continue;
                        }
                        let mut refused = false;
                        if h.answered == Some(seed) {
                            // Answered: wait, unless its block refused it (a quiet leader can
                            // take an answer sent on a challenge shown ahead into block
                            // `c + 1`, where it is too early), then answer again.
                            refused = match &h.answer_tx {
                                Some(tx) => acct.rpc.call(|c| c.get_receipt(tx.clone()))?.is_some_and(|r| r["status"] != "success"),
                                None => false,
                            };
                            if !refused {
                                continue;
                            }
                            log(&format!("job {id}: the answer's block refused it; answering again"));
                        }
                        let challenge = Challenge { seed, gemms: ch["gemms"].as_u64().unwrap_or(0) as u32, rows: ch["rows"].as_u64().unwrap_or(0) as u32 };
                        let opened = Instant::now();
                        let answer = respond(&engine.sku, &h.receipt, &h.trace, &challenge).ok();
                        let response = answer.as_ref().map(|a| a.encode()).unwrap_or_default();
                        // Sent again after a refusal, with the most gas an answer is given.
                        let gas_limit = match &answer {
                            Some(a) if !refused => answer_gas_limit(&h.receipt, a, response.len()),
                            _ => ANSWER_GAS_MAX,
                        };
                        let job: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id"))?;
                        // Shown ahead: JSON-RPC knew the seed before the block that fixes it.
                        answers.push(Answer {
                            id,
                            job,
                            seed,
                            bytes: response.len(),
                            response,
                            gas_limit,
                            opened: opened.elapsed(),
                            ahead: ch["recorded"] == false,
                        });
                    }
                    _ => {}
                }
            }
            send_answers(&mut acct, &mut held, std::mem::take(&mut answers));
            if a.max_jobs.is_some_and(|m| ended >= m) {
                return Ok(());
            }
            // New blocks: jobs assigned to this worker.
            let height = acct.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
            last_height = height;
            while next <= height {
                queue.extend(assigned_in(&acct.rpc, next, &me)?);
                next += 1;
            }
        }
        // Hand new jobs to the runner; commit finished runs.
        for id in queue.drain(..) {
            let job = acct.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
            let prompt: Vec<u32> = job["prompt"].as_array().into_iter().flatten().filter_map(|t| t.as_u64().map(|t| t as u32)).collect();
            let max_new = job["max_new"].as_u64().unwrap_or(1) as usize;
            pending.insert(id.clone(), Pending { tee: job["track"] == "tee", prompt: prompt.clone() });
            to_runner.send((id, prompt, max_new)).map_err(|_| anyhow!("the inference thread stopped"))?;
        }
        let mut committed_any = false;
        while let Ok((id, run, secs)) = from_runner.try_recv() {
            let (receipt, trace) = run.map_err(|e| anyhow!("job {id}: inference failed: {e}"))?;
            to_commit.push_back((id, receipt, trace, secs));
        }
        while let Some((id, receipt, trace, secs)) = to_commit.pop_front() {
            let job_id: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("bad job id {id}"))?;
            let bytes = cbor(&receipt);
            let tx = match pending.get(&id) {
                Some(p) if p.tee => {
                    let Some(enclave) = &enclave else {
                        log(&format!("job {id}: the TEE track needs an enclave key ({}); not committed", aivm_node::tee::ENCLAVE_KEY_FILE));
                        pending.remove(&id);
                        continue;
                    };
                    // The enclave's time: the last finalized block's. Block times rise strictly
                    // (`spec/consensus.md`), so it is never after the commit's block's time,
                    // whatever this machine's clock says.
                    let time_ms = acct.rpc.call(|c| c.get_block(last_height))?.unwrap_or_default()["time_ms"].as_u64().unwrap_or(0);
                    let claim = aivm_runtime::market::tee::job_claim(&job_id, &model, &p.prompt, &receipt, &bytes, time_ms);
                    MarketTx::CommitAttested { job: job_id, receipt: bytes, attestation: enclave.attest(&claim), time_ms }
                }
                _ => MarketTx::Commit { job: job_id, receipt: bytes },
            };
            match acct.send_nowait(Payload::Market(tx), 50_000_000) {
                Ok(txh) => {
                    log(&format!("job {id}: ran {} tokens in {secs:.2} s, committed {txh}", receipt.outputs[0].len()));
                    pending.remove(&id);
                    held.insert(id, Held { receipt, trace, answered: None, answer_tx: None, settled: false, disputes_answered: 0, finalized: false });
                    committed_any = true;
                }
                Err(e) => {
                    log(&format!("job {id}: commit not sent ({e}); retrying"));
                    to_commit.push_front((id, receipt, trace, secs));
                    break;
                }
            }
        }
        if committed_any {
            continue;
        }
        // Until the next finalized block (a challenge is drawn by one), or a short while for
        // the inference thread's next run.
        chain_moved = blocks.wait(&acct.rpc, Duration::from_millis(20)) || last_check.elapsed() >= RECHECK;
    }
}

/// A challenge's answer, made and not sent yet.
struct Answer {
    id: String,
    job: [u8; 32],
    seed: [u8; 32],
    /// Moved into its transaction when sent.
    response: Vec<u8>,
    bytes: usize,
    gas_limit: u64,
    opened: Duration,
    /// The challenge was shown before the block that fixes it.
    ahead: bool,
}

/// Send the answers made in one pass over the held jobs: one alone as any transaction, several
/// side by side (`Account::send_many_nowait`), so a batch's answers, whose challenges come in
/// one block, reach the same block rather than one block each. A refused send is retried on
/// the next pass (the job stays unanswered).
fn send_answers(acct: &mut Account, held: &mut BTreeMap<String, Held>, mut answers: Vec<Answer>) {
    let sending = Instant::now();
    let txs = answers
        .iter_mut()
        .map(|a| (Payload::Market(MarketTx::Answer { job: a.job, response: std::mem::take(&mut a.response) }), a.gas_limit))
        .collect::<Vec<_>>();
    let sent = match txs.len() {
        0 => return,
        1 => txs.into_iter().map(|(p, g)| acct.send_nowait(p, g)).collect(),
        _ => acct.send_many_nowait(txs).unwrap_or_else(|e| answers.iter().map(|_| Err(anyhow!("{e}"))).collect()),
    };
    let took = sending.elapsed();
    for (a, r) in answers.into_iter().zip(sent) {
        let id = &a.id;
        match r {
            Ok(txh) => {
                if let Some(h) = held.get_mut(id) {
                    h.answered = Some(a.seed);
                    h.answer_tx = Some(txh.clone());
                }
                let ahead = if a.ahead { ", challenge shown ahead of its block" } else { "" };
                let (bytes, opened, gas_limit) = (a.bytes, a.opened, a.gas_limit);
                log(&format!("job {id}: answered ({bytes} bytes opened in {opened:.1?}, sent in {took:.1?}{ahead}; gas limit {gas_limit}; tx {txh})"));
            }
            Err(e) => log(&format!("job {id}: answer not sent ({e}); retrying")),
        }
    }
}

/// The most gas an answer is given (also what one refused by its block is sent again with).
const ANSWER_GAS_MAX: u64 = 1_000_000_000;
/// Room above an answer's check for its transaction's intrinsic gas beyond the response's
/// bytes and the records settlement reads and writes (a few dozen at the storage prices, a
/// few hundred thousand gas each).
const ANSWER_GAS_ROOM: u64 = 30_000_000;

/// An answer's gas limit: twice what checking it costs at the chain's prices (BLAKE3 over
/// its bytes, the transaction's bytes and `check_gas`: the functions the chain charges with,
/// on the default schedule every node runs), plus [`ANSWER_GAS_ROOM`], at most
/// [`ANSWER_GAS_MAX`]. A proposer fills a block by transactions' limits, not their use: when
/// every answer declared 1 G, two fitted the 2.5 G block, and answers sent together (a batch's,
/// or several workers') waited blocks for each other.
fn answer_gas_limit(receipt: &InferenceReceipt, answer: &aivm::model::audit::Response, bytes: usize) -> u64 {
    use aivm_runtime::market::jobs::{check_gas, AnswerKind};
    let s = aivm::GasSchedule::default();
    let bytes = bytes as u64;
    let cost = check_gas(&s, receipt, answer, AnswerKind::Challenge).and_then(|g| g.checked_add(s.blake3.cost(bytes)?)?.checked_add(s.tx.cost(bytes)?));
    cost.and_then(|c| c.checked_mul(2)?.checked_add(ANSWER_GAS_ROOM)).map_or(ANSWER_GAS_MAX, |g| g.min(ANSWER_GAS_MAX))
}

/// A job as the inference thread gets it: id, prompt, `max_new`.
type Queued = (String, Vec<u32>, usize);
/// A job's committed run, or why it failed.
type Ran = Result<(InferenceReceipt, Trace), String>;

/// The next batch: the oldest waiting job and, in order, up to `most − 1` more that ask for
/// the same `max_new` (the engine runs one `max_new` a batch).
fn next_batch(waiting: &mut std::collections::VecDeque<Queued>, most: usize) -> Vec<Queued> {
    let Some(max_new) = waiting.front().map(|j| j.2) else { return Vec::new() };
    let mut batch = Vec::new();
    let mut rest = std::collections::VecDeque::with_capacity(waiting.len());
    for j in waiting.drain(..) {
        if j.2 == max_new && batch.len() < most {
            batch.push(j);
        } else {
            rest.push_back(j);
        }
    }
    *waiting = rest;
    batch
}

/// Run a batch of jobs in one pass, each committed apart (`run_committed_each`); if the pass
/// fails (one job's prompt the engine refuses), each job alone, so one bad job fails only itself.
fn run_batch(engine: &Engine, batch: Vec<Queued>) -> Vec<(String, Ran)> {
    let Some(max_new) = batch.first().map(|j| j.2) else { return Vec::new() };
    let prompts: Vec<Vec<u32>> = batch.iter().map(|j| j.1.clone()).collect();
    match run_committed_each(engine, &prompts, max_new) {
        Ok(runs) if runs.len() == batch.len() => batch.into_iter().zip(runs).map(|(j, run)| (j.0, Ok(run))).collect(),
        _ => batch.into_iter().map(|(id, prompt, max_new)| (id, run_committed(engine, &[prompt], max_new).map_err(|e| e.to_string()))).collect(),
    }
}

/// Job ids assigned to `me` by the transactions of block `height`.
fn assigned_in(rpc: &aivm_node::rpc_client::NodeClient, height: u64, me: &[u8; 32]) -> Result<Vec<String>> {
    let receipts = serde_json::Value::from(rpc.call(|c| c.get_block_receipts(height))?.unwrap_or_default());
    let market = to_hex(&market_address());
    let topic = to_hex(b"job.assigned");
    let mut out = Vec::new();
    for r in receipts.as_array().into_iter().flatten() {
        for e in r["events"].as_array().into_iter().flatten() {
            if e["contract"].as_str() != Some(market.as_str()) || e["topic"].as_str() != Some(topic.as_str()) {
                continue;
            }
            let data = e["data"].as_str().and_then(from_hex).unwrap_or_default();
            if data.len() == 64 && data[32..] == me[..] {
                out.push(to_hex(&data[..32]));
            }
        }
    }
    Ok(out)
}

/// Tamper with an honest run as `cheat` says, committing to the result as a cheater would.
fn cheat_on(cheat: Option<Cheat>, r: &mut InferenceReceipt, t: &mut Trace, vocab: u32) {
    match cheat {
        Some(Cheat::SkipLayer) => t.retain(|g| !(g.commit.step == 0 && g.commit.layer == 1)),
        Some(Cheat::Flip) => {
            let i = t.gemms().len() / 2;
            if let Some(y) = t.gemms_mut().get_mut(i).and_then(|g| g.y.first_mut()) {
                *y ^= 1;
            }
        }
        Some(Cheat::WrongToken) => {
            if let Some(last) = r.outputs.first_mut().and_then(|o| o.last_mut()) {
                *last = (*last + 1) % vocab;
            }
            r.output_root = aivm::model::commit::tokens_root(&r.outputs);
            return;
        }
        _ => return,
    }
    t.recommit();
    r.gemm_root = merkle::root(&t.leaves());
    r.gemm_count = t.gemms().len() as u64;
}

/// How often the worker reads its jobs without a block notification.
const RECHECK: Duration = Duration::from_millis(500);

/// Nice value of inference at `--inference-priority low`.
const INFERENCE_NICE: i32 = 10;

/// Set the calling thread's CPU priority for inference: rayon's pool threads (the engine's
/// steps) and the inference thread, whose children inherit it (`run_committed`'s committing
/// thread). Answers are a few milliseconds of work against a deadline counted in blocks; a
/// run's SLA is tens of blocks. On a devnet (4 validators, 3 workers, 2 cores) nice 10 still
/// left an answer's send waiting up to ~240 ms for CPU under load, and p99 at 1–4 blocks from
/// commit to end; at SCHED_IDLE most sends took 8.5–25 ms (at most 114 ms) and p99 was 1–2
/// blocks (BENCHMARKS.md, "Inference on CPU time nothing else wants").
fn lower_this_thread(priority: InferencePriority) {
    #[cfg(target_os = "linux")]
    {
        let r = match priority {
            InferencePriority::Normal => 0,
            InferencePriority::Low => {
                // SAFETY: setpriority on this thread's own id; no memory is touched.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, INFERENCE_NICE) }
            }
            InferencePriority::Idle => {
                let p = libc::sched_param { sched_priority: 0 };
                // SAFETY: pid 0 is the calling thread; `p` outlives the call.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) }
            }
        };
        if r != 0 {
            log(&format!("could not set the inference threads' priority to {priority:?}"));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// A log line stamped with Unix time to the millisecond, to line up with blocks' `time_ms`.
fn log(s: &str) {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    eprintln!("[worker {}.{:03}] {s}", ms / 1000, ms % 1000);
}

#[cfg(test)]
mod tests {
    use super::next_batch;

    /// A batch is the oldest waiting job and the next ones with its `max_new`, in order, up to
    /// the limit; the rest keep their order for later batches.
    #[test]
    fn a_batch_takes_the_oldest_jobs_of_one_max_new() {
        let job = |id: &str, max_new| (id.to_string(), vec![1u32], max_new);
        let mut waiting: std::collections::VecDeque<_> = [job("a", 16), job("b", 32), job("c", 16), job("d", 16), job("e", 32)].into();
        let ids = |b: Vec<super::Queued>| b.into_iter().map(|j| j.0).collect::<Vec<_>>();
        assert_eq!(ids(next_batch(&mut waiting, 2)), ["a", "c"]);
        assert_eq!(ids(next_batch(&mut waiting, 8)), ["b", "e"]);
        assert_eq!(ids(next_batch(&mut waiting, 8)), ["d"]);
        assert!(next_batch(&mut waiting, 8).is_empty());
    }
}
