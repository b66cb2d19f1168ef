//! `aivm devnet --workers K`: the compute market on the devnet. Worker processes (`aivm
//! worker run`, `--cheaters` of them cheating) serve the real model; a client submits jobs
//! and follows each to its end; the report counts jobs settled and slashed, cheaters caught,
//! latencies, and the on-chain verification's gas against the job's inference gas.

use super::account::{failure, Account};
use super::worker::Cheat;
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::keys::NodeKeys;
use aivm_node::rpc::{AivmApiClient, MarketApiClient};
use aivm_runtime::market::MarketTx;
use aivm_runtime::Payload;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SLA the client asks for. A busy devnet makes a block every 40-250 ms and a worker runs
/// its jobs one at a time, so a worker drawn for seven jobs in a row finishes the last some
/// 5 s (~100 blocks) after it was submitted; at 20 blocks an honest worker was sometimes
/// expired (2·SLA) and slashed for it.
const SLA_BLOCKS: u64 = 100;

/// Questions the client asks, in turn.
const PROMPTS: &[&str] = &[
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 12 plus 30?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?",
    "Translate 'good morning' into French.",
];

/// The market's participants' homes, made before genesis so that genesis funds them.
pub struct Participants {
    pub workers: Vec<PathBuf>,
    pub verifiers: Vec<PathBuf>,
    pub client: PathBuf,
}

impl Participants {
    /// Homes `w0..w{k-1}`, `verifier0..`, and `client` under `dir`, each with a fresh
    /// identity key.
    /// With `tee`, each worker also gets a devnet enclave key.
    pub fn create(dir: &Path, workers: usize, verifiers: usize, tee: bool) -> Result<Self> {
        let mk = |name: String| -> Result<PathBuf> {
            let home = dir.join(name);
            NodeKeys::generate()?.save(&home)?;
            Ok(home)
        };
        let worker = |name: String| -> Result<PathBuf> {
            let home = mk(name)?;
            if tee {
                aivm_node::tee::DevnetEnclave::create(&home)?;
            }
            Ok(home)
        };
        Ok(Participants {
            workers: (0..workers).map(|i| worker(format!("w{i}"))).collect::<Result<_>>()?,
            verifiers: (0..verifiers).map(|i| mk(format!("verifier{i}"))).collect::<Result<_>>()?,
            client: mk("client".into())?,
        })
    }

    /// The workers' devnet enclave keys, for genesis.
    pub fn enclave_keys(&self) -> Result<Vec<[u8; 32]>> {
        self.workers.iter().map(|h| Ok(aivm_node::tee::DevnetEnclave::load(h)?.public())).collect()
    }

    /// Every participant's address, for genesis funding.
    pub fn addresses(&self) -> Result<Vec<[u8; 32]>> {
        self.workers.iter().chain(&self.verifiers).chain(std::iter::once(&self.client)).map(|h| Ok(NodeKeys::load(h)?.identity_public())).collect()
    }
}

/// The worker processes; killed when dropped.
pub struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Scenario<'a> {
    pub exe: &'a Path,
    pub rpcs: &'a [SocketAddr],
    pub people: &'a Participants,
    pub cheaters: usize,
    pub cheat: Cheat,
    /// Each worker's `--batch`.
    pub worker_batch: u16,
    pub jobs: usize,
    pub max_tokens: u32,
    /// Each verifier's sampling fraction.
    pub alpha: f64,
    /// Jobs take the optimistic TEE track.
    pub tee: bool,
}

/// One job as the client saw it.
#[derive(Default)]
struct Seen {
    submitted: Option<Instant>,
    committed_at: Option<u64>,
    ended_at: Option<u64>,
    ended: Option<Instant>,
    state: String,
    worker: String,
    slashed: u128,
    units: u64,
    prompt_len: u64,
    /// A verifier disputed it.
    disputed: bool,
    /// TEE track: the block its result became provisional, and whether it was spot-checked.
    provisional_at: Option<u64>,
    spot_checked: bool,
    submitted_block: Option<u64>,
    /// The challenge seed JSON-RPC showed before the block that fixes it was executed.
    early_seed: Option<String>,
    /// The gas of the transaction that ended it (`aivm_getJob`'s `ended_by`): for an answer,
    /// what checking the work cost.
    end_gas: Option<u64>,
}

/// Run the market on the devnet; the report's JSON, and the workers (still serving).
pub fn run(s: &Scenario<'_>, json_log: bool) -> Result<(Value, Workers)> {
    let log = |m: String| {
        if !json_log {
            eprintln!("devnet: {m}");
        }
    };
    let model = super::job::model_hash(None)?;
    let local = super::job::LocalModel::open(&model).context("loading the model")?;
    let mut procs = Workers(Vec::new());
    let mut cheater_addrs = BTreeSet::new();
    for (i, home) in s.people.workers.iter().enumerate() {
        let cheat = (i < s.cheaters).then_some(s.cheat);
        if cheat.is_some() {
            cheater_addrs.insert(to_hex(&NodeKeys::load(home)?.identity_public()));
        }
        procs.0.push(spawn_worker(s.exe, home, &rotated(s.rpcs, i), cheat, s.worker_batch)?);
    }
    for (i, home) in s.people.verifiers.iter().enumerate() {
        procs.0.push(spawn_verifier(s.exe, home, s.rpcs[i % s.rpcs.len()], s.alpha)?);
    }
    let mut client = Account::open(&s.people.client, s.rpcs[0])?;
    // Wait for every worker's bond.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = client.rpc.call(|c| c.get_workers(to_hex(&model)))?.len();
        if n >= s.people.workers.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {n} of {} workers bonded within 120 s (their logs are in the devnet directory)", s.people.workers.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    log(format!("{} workers bonded ({} cheating: {:?}); submitting {} jobs", s.people.workers.len(), s.cheaters, s.cheat, s.jobs));

    let tok = &local.tokenizer;
    let started = Instant::now();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for i in 0..s.jobs {
        let prompt = tok.encode(&tok.chat_prompt(PROMPTS[i % PROMPTS.len()]));
        let prompt_len = prompt.len() as u64;
        let t = Instant::now();
        let r = client.send(Payload::Market(MarketTx::SubmitJob {
            sku: model,
            prompt,
            max_new: s.max_tokens,
            sla_blocks: SLA_BLOCKS,
            budget: 1 << 40,
            tee: s.tee,
        }))?;
        if let Some(why) = failure(&r) {
            bail!("submitting job {i} failed: {why}");
        }
        let id = r["tx_hash"].as_str().unwrap_or_default().to_string();
        seen.insert(id, Seen { submitted: Some(t), prompt_len, ..Seen::default() });
    }
    // Follow every job to its end.
    let deadline = Instant::now() + Duration::from_secs(60 + 30 * s.jobs as u64);
    // With verifiers, a settled job is final only once its dispute window has passed.
    let watch_disputes = !s.people.verifiers.is_empty();
    let mut blocks = aivm_node::rpc_client::FinalizedWaiter::default();
    while seen.values().any(|j| j.ended.is_none()) {
        if Instant::now() > deadline {
            bail!("{} jobs did not end in time", seen.values().filter(|j| j.ended.is_none()).count());
        }
        let height = client.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
        let mut expire = Vec::new();
        for (id, j) in seen.iter_mut().filter(|(_, j)| j.ended.is_none()) {
            let v = client.rpc.call(|c| c.get_job(id.to_string()))?.unwrap_or_default();
            // A worker past its deadline: anyone may expire the job (the client does here).
            let late = match v["state"].as_str() {
                Some("assigned") => v["submitted_at"].as_u64().zip(v["sla_blocks"].as_u64()).is_some_and(|(s, sla)| height > s + 2 * sla),
                Some("committed") => v["challenge"]["deadline"].as_u64().is_some_and(|d| height > d),
                // A spot check left unanswered.
                Some("provisional") | Some("final") => v["spot_check_answered"] == false && v["challenge"]["deadline"].as_u64().is_some_and(|d| height > d),
                _ => false,
            };
            if late {
                expire.push(id.clone());
            }
            j.worker = v["worker"].as_str().unwrap_or_default().to_string();
            j.units = v["units"].as_u64().unwrap_or(0);
            j.submitted_block = v["submitted_at"].as_u64();
            if let Some(c) = v["committed_at"].as_u64() {
                j.committed_at = Some(c);
            }
            let state = v["state"].as_str().unwrap_or_default();
            if state == "committed" && v["challenge"]["recorded"] == false {
                j.early_seed = v["challenge"]["seed"].as_str().map(str::to_string);
            }
            if matches!(state, "provisional" | "final") {
                j.provisional_at = j.provisional_at.or(v["committed_at"].as_u64());
                j.spot_checked |= v["spot_checked"] == true;
            }
            let open_to_disputes = watch_disputes && state == "settled" && v["disputable_until"].as_u64().is_some_and(|u| height <= u);
            if state == "disputed" {
                j.disputed = true;
            }
            if (state == "settled" && !open_to_disputes) || state == "slashed" {
                j.state = state.to_string();
                j.ended = Some(Instant::now());
                j.ended_at = v["settled_at"].as_u64().or(v["slashed_at"].as_u64());
                j.slashed = v["slashed"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                j.end_gas = v["ended_by"]["gas_used"].as_u64();
            }
        }
        for id in expire {
            let job: [u8; 32] = from_hex(&id).and_then(|v| v.try_into().ok()).unwrap_or([0; 32]);
            let r = client.send(Payload::Market(MarketTx::Expire { job }))?;
            log(format!("expired job {id}: {}", r["status"]));
        }
        // The next block (jobs move only in blocks), or a while.
        blocks.wait(&client.rpc, Duration::from_millis(100));
    }
    // Challenges shown ahead of their block must be the ones the chain then drew.
    let (mut early, mut early_wrong) = (0, 0);
    for (id, j) in &seen {
        let (Some(shown), Some(c)) = (&j.early_seed, j.committed_at) else { continue };
        let beacon = client.rpc.call(|rpc| rpc.get_block(c + 1))?.unwrap_or_default()["beacon"].as_str().and_then(from_hex);
        let job: Option<[u8; 32]> = from_hex(id).and_then(|v| v.try_into().ok());
        let drawn = beacon.and_then(|b| <[u8; 32]>::try_from(b).ok()).zip(job).map(|(b, job)| to_hex(&aivm_runtime::market::jobs::challenge_seed(&b, &job)));
        early += 1;
        if drawn.as_deref() != Some(shown.as_str()) {
            early_wrong += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // The answers' gas against the jobs' inference gas.
    let mut gas_ratios = Vec::new();
    for j in seen.values() {
        if let (Some(gas), Some(infer)) = (j.end_gas, local.infer_gas(j.prompt_len, j.units - j.prompt_len)) {
            gas_ratios.push(gas as f64 / infer as f64);
        }
    }
    let (attested, attest_pay) = if s.people.verifiers.is_empty() {
        (0, 0)
    } else {
        let height = client.rpc.call(|c| c.status())?["height"].as_u64().unwrap_or(0);
        attestations_paid(&mut client, height)?
    };
    let settled = seen.values().filter(|j| j.state == "settled").count();
    let slashed: Vec<&Seen> = seen.values().filter(|j| j.state == "slashed").collect();
    let caught: BTreeSet<&String> = slashed.iter().map(|j| &j.worker).collect();
    let honest_slashed = caught.iter().filter(|w| !cheater_addrs.contains(**w)).count();
    let mut ms: Vec<f64> = seen.values().filter_map(|j| Some(j.ended?.duration_since(j.submitted?).as_secs_f64() * 1e3)).collect();
    let mut after_commit: Vec<f64> = seen.values().filter_map(|j| Some((j.ended_at? - j.committed_at?) as f64)).collect();
    ms.sort_by(f64::total_cmp);
    after_commit.sort_by(f64::total_cmp);
    gas_ratios.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| if v.is_empty() { 0.0 } else { v[((v.len() - 1) as f64 * p).round() as usize] };
    let cheater_jobs = seen.values().filter(|j| cheater_addrs.contains(&j.worker)).count();
    // Selection is stake-weighted: a cheater may be given no job, and then has nothing to be
    // caught at.
    let cheaters_with_jobs = seen.values().filter(|j| cheater_addrs.contains(&j.worker)).map(|j| &j.worker).collect::<BTreeSet<_>>().len();
    let report = json!({
        "workers": s.people.workers.len(),
        "cheaters": s.cheaters,
        "cheat": format!("{:?}", s.cheat),
        "jobs": {"submitted": seen.len(), "settled": settled, "slashed_and_refunded": slashed.len(), "by_cheaters": cheater_jobs,
                 "disputed": seen.values().filter(|j| j.disputed).count()},
        "track": if s.tee { "tee (devnet attestation: not a TEE)" } else { "freivalds" },
        "verifiers": s.people.verifiers.len(),
        "verifier_attestations_paid": {"count": attested, "total": attest_pay.to_string()},
        "cheaters_caught": caught.len() - honest_slashed,
        "cheaters_with_jobs": cheaters_with_jobs,
        "honest_workers_slashed": honest_slashed,
        "slashed_total": slashed.iter().map(|j| j.slashed).sum::<u128>().to_string(),
        "latency_ms": {"p50": pct(&ms, 0.5), "p99": pct(&ms, 0.99)},
        "blocks_from_commit_to_end": {"p50": pct(&after_commit, 0.5), "p99": pct(&after_commit, 0.99)},
        "challenges_shown_early": {"seen": early, "wrong": early_wrong},
        "verification_gas_over_inference_gas": {"p50": pct(&gas_ratios, 0.5), "mean": gas_ratios.iter().sum::<f64>() / gas_ratios.len().max(1) as f64,
                                                "max": gas_ratios.last().copied().unwrap_or(0.0)},
        "jobs_per_s": seen.len() as f64 / elapsed,
        "tee": s.tee.then(|| {
            let mut to_prov: Vec<f64> = seen.values().filter_map(|j| Some((j.provisional_at? - j.submitted_block?) as f64)).collect();
            let mut to_final: Vec<f64> = seen.values().filter(|j| j.state == "settled").filter_map(|j| Some((j.ended_at? - j.provisional_at?) as f64)).collect();
            to_prov.sort_by(f64::total_cmp);
            to_final.sort_by(f64::total_cmp);
            json!({
                "blocks_submit_to_provisional": {"p50": pct(&to_prov, 0.5), "p99": pct(&to_prov, 0.99)},
                "blocks_provisional_to_paid": {"p50": pct(&to_final, 0.5), "p99": pct(&to_final, 0.99)},
                "spot_checked": seen.values().filter(|j| j.spot_checked).count(),
            })
        }),
    });
    Ok((report, procs))
}

/// Verifier attestations paid in blocks `1..=to` (`spec/market.md` §6d): how many, and the
/// total paid.
fn attestations_paid(c: &mut Account, to: u64) -> Result<(u64, u128)> {
    let topic = to_hex(b"job.attestation_paid");
    let (mut n, mut total) = (0u64, 0u128);
    for h in 1..=to {
        for r in Value::from(c.rpc.call(|c| c.get_block_receipts(h))?.unwrap_or_default()).as_array().into_iter().flatten() {
            for e in r["events"].as_array().into_iter().flatten().filter(|e| e["topic"].as_str() == Some(topic.as_str())) {
                let data = e["data"].as_str().and_then(from_hex).unwrap_or_default();
                if let Some(amount) = data.get(64..80).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                    n += 1;
                    total += u128::from_le_bytes(amount);
                }
            }
        }
    }
    Ok((n, total))
}

fn spawn_verifier(exe: &Path, home: &Path, rpc: SocketAddr, alpha: f64) -> Result<Child> {
    let log = std::fs::File::create(home.join("verifier.log")).with_context(|| format!("creating the log in {}", home.display()))?;
    Command::new(exe)
        .args(["verifier", "run", "--home"])
        .arg(home)
        .args(["--rpc", &rpc.to_string(), "--alpha", &alpha.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting a verifier from {}", exe.display()))
}

/// Every validator's RPC, starting with the `i`-th (a worker's primary node).
fn rotated(rpcs: &[SocketAddr], i: usize) -> String {
    (0..rpcs.len()).map(|k| rpcs[(i + k) % rpcs.len()].to_string()).collect::<Vec<_>>().join(",")
}

fn spawn_worker(exe: &Path, home: &Path, rpc: &str, cheat: Option<Cheat>, batch: u16) -> Result<Child> {
    let log = std::fs::File::create(home.join("worker.log")).with_context(|| format!("creating the log in {}", home.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["worker", "run", "--home"]).arg(home).args(["--rpc", rpc, "--batch", &batch.to_string()]);
    if let Some(c) = cheat {
        cmd.args(["--cheat", &c.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()]);
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn().with_context(|| format!("starting a worker from {}", exe.display()))
}
