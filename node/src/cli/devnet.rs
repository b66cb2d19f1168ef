//! `aivm devnet`: N real validator processes on loopback, the token contract deployed, a
//! transfer load driven through JSON-RPC, and a report: sustained TPS, finality latency
//! percentiles, and whether every validator has the same state root at every height.

use aivm_node::config::NodeConfig;
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::RpcLimits;
use aivm_node::rpc_client::RpcClient;
use aivm_node::testnet::{self, TestnetParams};
use aivm_runtime::workload::{token_transfer_args, P2p};
use aivm_runtime::{Address, Payload};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DevnetArgs {
    /// Validator processes to start.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Offered load, transactions per second (token transfers).
    #[arg(long, default_value_t = 2000)]
    pub load: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Sending accounts (each funded in genesis and given tokens).
    #[arg(long, default_value_t = 500)]
    pub accounts: u64,
    /// The token contract's wasm (default: the one `make contracts` builds).
    #[arg(long)]
    pub token: Option<PathBuf>,
    /// Directory for the validators' homes (default: a fresh temporary one, removed after).
    /// It must be empty, new, or one an earlier devnet made; anything else is refused.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// First p2p port (RPC at +1000, metrics at +2000).
    #[arg(long, default_value_t = 19000)]
    pub port: u16,
    /// Run the compute market instead of the transfer load: this many worker processes serve
    /// the model `make model` converted (`spec/market.md`).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// With --workers: how many of them cheat (as --cheat says) on every job.
    #[arg(long, default_value_t = 0)]
    pub cheaters: usize,
    /// With --cheaters: how they cheat.
    #[arg(long, value_enum, default_value = "wrong-model")]
    pub cheat: super::worker::Cheat,
    /// With --workers: jobs the client submits.
    #[arg(long, default_value_t = 6)]
    pub jobs: usize,
    /// With --workers: each worker's `--batch` (jobs run together in one engine pass). 1 by
    /// default: here four validators, the workers and the client share the machine, so a
    /// batch's answers arrive together and took 3–5 blocks from commit to settlement where
    /// one at a time took 1–3 (BENCHMARKS.md, "batched jobs").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_batch: u16,
    /// With --workers: new tokens per job.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// With --workers: verifier processes re-running a fraction --alpha of settled jobs.
    #[arg(long, default_value_t = 0)]
    pub verifiers: usize,
    /// With --verifiers: the fraction of settled jobs each re-runs in full.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// With --workers: jobs take the optimistic TEE track, attested by each worker's devnet
    /// enclave key (NOT a TEE: a software key genesis registers; `spec/tee.md` §6).
    #[arg(long, requires = "workers")]
    pub tee: bool,
    /// With --tee: the share of provisional jobs spot-checked (ρ).
    #[arg(long, default_value_t = 0.1, requires = "tee")]
    pub spot_rate: f64,
    /// With --tee: blocks a provisional result stays open to challenge (W).
    #[arg(long, default_value_t = 25, requires = "tee")]
    pub tee_window: u64,
    /// With --workers: after the report, keep the network and its workers running (until
    /// Ctrl-C) and print how to submit jobs to it with `aivm job submit`.
    #[arg(long, requires = "workers")]
    pub serve: bool,
    /// Make the threshold key with the validators' DKG (`aivm node dkg` in every home, no
    /// dealer) instead of dealing it from this process.
    #[arg(long)]
    pub dkg: bool,
}

pub fn run(a: DevnetArgs) -> ExitCode {
    super::verdict_exit(devnet(a))
}

/// The validator processes; killed when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn token_wasm(arg: Option<PathBuf>) -> Result<Vec<u8>> {
    let candidates: Vec<PathBuf> = match arg {
        Some(p) => vec![p],
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
            vec![target.join("wasm32-unknown-unknown/release/token.wasm")]
        }
    };
    for p in &candidates {
        if let Ok(b) = std::fs::read(p) {
            return Ok(b);
        }
    }
    bail!("token contract not found at {} (run `make contracts`, or pass --token FILE)", candidates[0].display())
}

fn log(json: bool, msg: impl AsRef<str>) {
    if !json {
        eprintln!("devnet: {}", msg.as_ref());
    }
}

/// The file that marks a directory as a devnet's own (safe to clear on the next run).
const DEVNET_MARKER: &str = ".aivm-devnet";

fn devnet(a: DevnetArgs) -> Result<bool> {
    if a.validators == 0 || a.validators > 64 {
        bail!("--validators wants 1..=64");
    }
    let market = a.workers > 0;
    if a.cheaters > a.workers {
        bail!("--cheaters {} is more than --workers {}", a.cheaters, a.workers);
    }
    let wasm = if market { Vec::new() } else { token_wasm(a.token.clone())? };
    // Without --dir: a fresh, uniquely named directory, removed when the devnet ends.
    let scratch = match &a.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("aivm-devnet-").tempdir().context("creating a temporary directory")?),
    };
    let dir = a.dir.clone().or_else(|| scratch.as_ref().map(|t| t.path().to_path_buf())).context("no devnet directory")?;
    let temporary = scratch.is_some();
    // A directory is cleared only if a devnet made it: anything else there is someone's data.
    let ours = dir.join(DEVNET_MARKER);
    let empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    if dir.exists() && !empty && !ours.exists() {
        bail!("{} is not empty and was not made by `aivm devnet`; give an empty or new directory", dir.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&ours, b"made by aivm devnet; the next run may clear this directory\n").with_context(|| format!("writing {}", ours.display()))?;
    let chain_id = 7;
    let mut load = P2p::new(chain_id, a.accounts.max(2), 1);
    // A token transfer uses ~1.8M gas (most of it the price of loading the contract's code);
    // blocks are bounded by the gas limits they reserve, so the limit stays close to that.
    load.gas_limit = 2_500_000;
    let people = if market { Some(super::devnet_market::Participants::create(&dir, a.workers, a.verifiers, a.tee)?) } else { None };
    let mut accounts: Vec<(Address, u128)> = load.addresses().into_iter().map(|addr| (addr, 1u128 << 80)).collect();
    for addr in people.as_ref().map(|p| p.addresses()).transpose()?.unwrap_or_default() {
        accounts.push((addr, 1u128 << 80));
    }
    let params = TestnetParams {
        chain_id,
        host: "127.0.0.1".into(),
        port: a.port,
        validators: a.validators,
        stake: 1_000_000,
        balance: 1_000_000_000_000,
        active: None,
        epoch_length: 1000,
        accounts,
        max_block_gas: aivm_node::genesis::DEFAULT_MAX_BLOCK_GAS,
        min_gas_price: aivm_node::genesis::DEFAULT_MIN_GAS_PRICE,
        market: match &people {
            Some(p) => {
                let mut m = aivm_node::market::default_market(&aivm::model::store::default_home(), 1 << 30, 100)?;
                // Verifiers are paid for the sample they re-run (`spec/market.md` §6d).
                m.params.verify_sample_ppm = (a.alpha.clamp(0.0, 1.0) * 1e6).round() as u32;
                if a.tee {
                    if !(0.0..=1.0).contains(&a.spot_rate) {
                        bail!("--spot-rate wants 0..=1");
                    }
                    m.params.tee = aivm_node::tee::devnet_tee_params(&p.enclave_keys()?, a.tee_window, (a.spot_rate * 1e6).round() as u32);
                }
                Some(m)
            }
            None => None,
        },
    };
    let (homes, key) = if a.dkg {
        let (homes, _) = testnet::create_for_dkg(&dir, &params)?;
        let started = Instant::now();
        let key = run_dkg(&homes)?;
        log(a.json, format!("the validators made the threshold key in {:.1} s (DKG, no dealer)", started.elapsed().as_secs_f64()));
        (homes, key)
    } else {
        (testnet::create(&dir, &params)?.0, json!({"made_by": "dealer"}))
    };
    // The load generator is one address sending to every validator: lift the per-peer RPC
    // limits, which exist for public nodes, not for a local benchmark.
    for home in &homes {
        let mut cfg = NodeConfig::load(home).map_err(anyhow::Error::msg)?;
        cfg.rpc_limits = RpcLimits::unlimited();
        cfg.save(home).with_context(|| format!("writing {}", home.display()))?;
    }
    let rpcs: Vec<SocketAddr> = (0..a.validators).map(|i| SocketAddr::from(([127, 0, 0, 1], a.port + 1000 + i as u16))).collect();

    let exe = std::env::current_exe().context("locating the aivm binary")?;
    let mut procs = Processes(Vec::new());
    for home in &homes {
        procs.0.push(spawn_validator(&exe, home)?);
    }
    log(a.json, format!("{} validators starting under {}", a.validators, dir.display()));
    let started = Instant::now();
    for addr in &rpcs {
        wait_height(*addr, 1, Duration::from_secs(60)).with_context(|| format!("validator at {addr} did not finalize a block"))?;
    }
    log(a.json, format!("first blocks finalized after {:.1} s", started.elapsed().as_secs_f64()));

    if let Some(people) = &people {
        let scenario = super::devnet_market::Scenario {
            exe: &exe,
            rpcs: &rpcs,
            people,
            cheaters: a.cheaters,
            cheat: a.cheat,
            worker_batch: a.worker_batch,
            jobs: a.jobs,
            max_tokens: a.max_tokens,
            alpha: a.alpha,
            tee: a.tee,
        };
        let (mut report, workers) = super::devnet_market::run(&scenario, a.json)?;
        let heights: Vec<u64> =
            rpcs.iter().map(|r| RpcClient::new(*r).call("aivm_status", json!([])).ok().and_then(|s| s["height"].as_u64()).unwrap_or(0)).collect();
        let common = heights.iter().copied().min().unwrap_or(0);
        let agree = roots_agree(&rpcs, common)?;
        report["validators"] = json!(a.validators);
        report["threshold_key"] = key;
        report["roots_agree_to_height"] = json!(common);
        report["roots_agree"] = json!(agree);
        println!("{}", if a.json { report.to_string() } else { serde_json::to_string_pretty(&report)? });
        if a.serve {
            println!(
                "\nThe market is up. Ask it a question (Ctrl-C stops everything):\n  aivm job submit --rpc {} --home {} --prompt \"What is the capital of France?\" --budget 1000000 --wait\nWorkers' logs: {}/w*/worker.log",
                rpcs[0],
                people.client.display(),
                dir.display()
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        drop(workers);
        drop(procs);
        if temporary {
            let _ = std::fs::remove_dir_all(&dir);
        }
        // Every cheater that served a job was caught (a one-GEMM flip only when sampled; on the
        // TEE track only when spot-checked or disputed, so only with ρ = 1 or verifiers).
        let sampled_only = a.cheat == super::worker::Cheat::Flip || (a.tee && a.spot_rate < 1.0 && a.verifiers == 0);
        let caught_all = report["cheaters_caught"] == report["cheaters_with_jobs"] || sampled_only;
        return Ok(agree && caught_all && report["honest_workers_slashed"] == 0);
    }

    // Deploy and fund the token.
    let mut c0 = RpcClient::new(rpcs[0]);
    let token = deploy_token(&mut c0, &mut load, wasm)?;
    log(a.json, format!("token deployed at {} and given to {} accounts", to_hex(&token), load.keys.len()));

    // Load.
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = Watcher::start(rpcs[0], Arc::clone(&submitted));
    let signed = sign_load(&mut load, token, a.load.saturating_mul(a.duration) as usize);
    let cpu_before = cpu_sample(&rpcs);
    let load_start = Instant::now();
    let (sent, refused, refusals) = drive_load(&rpcs, &signed, a.load, Duration::from_secs(a.duration), &submitted)?;
    let load_secs = load_start.elapsed().as_secs_f64();
    log(a.json, format!("offered {sent} transfers in {load_secs:.1} s ({refused} refused by the mempool); waiting for them to finalize"));
    let drain_deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < drain_deadline && watcher.finalized_count() < sent {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = watcher.stop();
    let cpu_after = cpu_sample(&rpcs);

    // Every validator's root at every height.
    let heights: Vec<u64> =
        rpcs.iter().map(|r| RpcClient::new(*r).call("aivm_status", json!([])).ok().and_then(|s| s["height"].as_u64()).unwrap_or(0)).collect();
    let common = heights.iter().copied().min().unwrap_or(0);
    let roots_agree = roots_agree(&rpcs, common)?;
    drop(procs);

    let mut lat = stats.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { 0.0 } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    let finalized = stats.latencies_ms.len();
    let window = stats.last_finalized.map_or(0.0, |t| t.duration_since(load_start).as_secs_f64()).max(1e-9);
    let report = json!({
        "validators": a.validators,
        "offered_tps": a.load,
        "duration_s": a.duration,
        "submitted": sent,
        "refused": refused,
        "refused_by_reason": refusals,
        "finalized": finalized,
        "failed_receipts": stats.failed,
        "sustained_tps": (finalized as f64 / window).round(),
        "finality_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99)},
        "blocks": stats.blocks,
        "heights": heights,
        "roots_agree_to_height": common,
        "roots_agree": roots_agree,
        "cpu": cpu_report(&cpu_before, &cpu_after, stats.latencies_ms.len()),
        "threshold_key": key,
    });
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(roots_agree && finalized > 0)
}

/// Longest a devnet waits for its validators' DKG.
const DKG_TIMEOUT_S: u64 = 120;

/// Run `aivm node dkg` in every home at once and check that they made one genesis. Returns
/// the report's `threshold_key` entry.
fn run_dkg(homes: &[PathBuf]) -> Result<Value> {
    let exe = std::env::current_exe().context("locating the aivm binary")?;
    let mut procs = Processes(Vec::new());
    for home in homes {
        let log = std::fs::File::create(home.join("dkg.log")).with_context(|| format!("creating the log in {}", home.display()))?;
        let child = Command::new(&exe)
            .args(["node", "dkg", "--timeout-s", &DKG_TIMEOUT_S.to_string(), "--home"])
            .arg(home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        procs.0.push(child);
    }
    let mut results = Vec::new();
    // A failure stops here, and dropping `procs` stops the others.
    for (home, child) in homes.iter().zip(procs.0.iter_mut()) {
        let status = child.wait().context("waiting for a DKG participant")?;
        if !status.success() {
            let log = std::fs::read_to_string(home.join("dkg.log")).unwrap_or_default();
            bail!("the DKG in {} failed ({status}): {}", home.display(), log.trim());
        }
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().context("the DKG's output")?, &mut out)?;
        let r: Value = serde_json::from_str(&out).with_context(|| format!("the DKG's report in {}", home.display()))?;
        results.push(r);
    }
    let hashes: Vec<&Value> = results.iter().map(|r| &r["genesis_hash"]).collect();
    if hashes.windows(2).any(|w| w[0] != w[1]) {
        bail!("the validators' DKG made different genesis files: {hashes:?}");
    }
    let seconds = results.iter().filter_map(|r| r["seconds"].as_f64()).fold(0.0, f64::max);
    Ok(json!({"made_by": "dkg", "genesis_hash": hashes[0], "dealers": results[0]["dealers"], "revealed": results[0]["revealed"], "seconds": seconds}))
}

fn spawn_validator(exe: &Path, home: &Path) -> Result<Child> {
    let log = std::fs::File::create(home.join("node.log")).with_context(|| format!("creating the log in {}", home.display()))?;
    Command::new(exe)
        .args(["node", "run", "--log", "warn", "--home"])
        .arg(home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// Wait until the node at `addr` has committed `height`.
pub fn wait_height(addr: SocketAddr, height: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    let mut c = RpcClient::new(addr);
    c.timeout = Duration::from_secs(2);
    loop {
        if let Ok(s) = c.call("aivm_status", json!([])) {
            if let Some(h) = s["height"].as_u64().filter(|h| *h >= height) {
                return Ok(h);
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for height {height}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submit one transaction and wait for its receipt.
fn submit_and_wait(c: &mut RpcClient, tx: Vec<u8>) -> Result<Value> {
    let hash = c.call("aivm_sendTransaction", json!([to_hex(&tx)]))?;
    let hash = hash.as_str().ok_or_else(|| anyhow!("no hash"))?.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.call("aivm_getReceipt", json!([hash]))?;
        if !r.is_null() {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("transaction {hash} not committed within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deploy_token(c: &mut RpcClient, load: &mut P2p, wasm: Vec<u8>) -> Result<Address> {
    let gas = load.gas_limit;
    load.gas_limit = aivm_node::genesis::DEFAULT_MAX_BLOCK_GAS;
    // The whole supply is minted to the deployer by the token's `instantiate`, in the deploy.
    let init = aivm_runtime::encoding::cbor(&serde_json::json!({"supply": u64::MAX / 2}));
    let deploy = load.sign(0, Payload::Deploy { code: wasm, args: init });
    load.gas_limit = gas;
    let r = submit_and_wait(c, deploy.encode())?;
    let token: Address = r["contract_address"]
        .as_str()
        .and_then(from_hex)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("deploying the token failed: {}", r["status"]))?;
    let mut txs = Vec::new();
    for to in load.addresses().into_iter().skip(1) {
        txs.push(load.sign(0, Payload::Call { contract: token, entry: "transfer".into(), args: token_transfer_args(&to, 1 << 40), value: 0 }).encode());
    }
    let Some(last) = txs.pop() else { return Ok(token) };
    for chunk in txs.chunks(500) {
        for r in c.batch("aivm_sendTransaction", chunk.iter().map(|t| json!([to_hex(t)])).collect())? {
            r.context("funding the load accounts")?;
        }
    }
    let r = submit_and_wait(c, last)?;
    if r["status"] != "success" {
        bail!("funding the load accounts failed: {}", r["status"]);
    }
    Ok(token)
}

/// `total` token transfers between random distinct accounts, signed on all cores and
/// hex-encoded before the load starts, so the driver's share of the machine while the network
/// runs is submission only.
fn sign_load(load: &mut P2p, token: Address, total: usize) -> Vec<String> {
    use rayon::prelude::*;
    let n = load.keys.len();
    let plan: Vec<(usize, u64, usize)> = (0..total)
        .map(|_| {
            let from = load.rng.below(n as u64) as usize;
            let mut to = load.rng.below(n as u64) as usize;
            if to == from {
                to = (to + 1) % n;
            }
            let nonce = load.nonces[from];
            load.nonces[from] += 1;
            (from, nonce, to)
        })
        .collect();
    let load_ref = &*load;
    let signed: Vec<String> = plan
        .par_iter()
        .map(|&(from, nonce, to)| {
            let key = &load_ref.keys[from];
            let tx = aivm_runtime::Transaction {
                chain_id: load_ref.chain_id,
                sender: aivm_runtime::workload::address(key),
                nonce,
                gas_limit: load_ref.gas_limit,
                gas_price: load_ref.gas_price,
                payload: Payload::Call { contract: token, entry: "transfer".into(), args: token_transfer_args(&address_of(load_ref, to), 1), value: 0 },
            };
            to_hex(&tx.sign(key).encode())
        })
        .collect();
    signed
}

/// Offer the `signed` transfers at `tps` per second for `duration`, spread over the validators
/// in batches (`aivm_sendTransactions`); returns (submitted, refused, refusals by reason).
fn drive_load(
    rpcs: &[SocketAddr],
    signed: &[String],
    tps: u64,
    duration: Duration,
    submitted: &Mutex<HashMap<String, Instant>>,
) -> Result<(usize, usize, std::collections::BTreeMap<String, usize>)> {
    let mut reasons = std::collections::BTreeMap::new();
    const TICK: Duration = Duration::from_millis(50);
    let mut clients: Vec<RpcClient> = rpcs.iter().map(|a| RpcClient::new(*a)).collect();
    let start = Instant::now();
    let (mut sent, mut refused, mut offered) = (0usize, 0usize, 0usize);
    let mut tick = 0u64;
    while start.elapsed() < duration && offered < signed.len() {
        let due = ((tps as f64 * start.elapsed().as_secs_f64()) as usize).min(signed.len());
        let batch = &signed[offered..due.max(offered)];
        offered = due.max(offered);
        let c = &mut clients[(tick as usize) % rpcs.len()];
        tick += 1;
        for chunk in batch.chunks(aivm_node::rpc::MAX_BATCH as usize) {
            let now = Instant::now();
            let answers = c.call("aivm_sendTransactions", json!([chunk]))?;
            let mut map = submitted.lock();
            for r in answers.as_array().map(Vec::as_slice).unwrap_or_default() {
                match r["hash"].as_str() {
                    Some(h) => {
                        map.insert(h.to_string(), now);
                        sent += 1;
                    }
                    None => {
                        refused += 1;
                        // The reason without its numbers ("nonce 7 is too far ahead (...)" → "nonce is too far ahead").
                        let why = r["error"]
                            .as_str()
                            .unwrap_or("no answer")
                            .split(" (")
                            .next()
                            .unwrap_or("")
                            .split(' ')
                            .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
                            .collect::<Vec<_>>()
                            .join(" ");
                        *reasons.entry(why).or_insert(0) += 1;
                    }
                }
            }
        }
        let next = start + TICK * (tick as u32);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok((sent, refused, reasons))
}

/// Each validator's `aivm_cpu` counters and the driver's own CPU time, now.
fn cpu_sample(rpcs: &[SocketAddr]) -> (Vec<Value>, u64) {
    let v = rpcs.iter().map(|r| RpcClient::new(*r).call("aivm_cpu", json!([])).unwrap_or(Value::Null)).collect();
    (v, aivm_runtime::cpu::process_ns())
}

/// CPU microseconds per finalized transaction between two samples: per validator and part
/// (what no part claims is consensus, p2p and the rest), their mean, the driver's, and the
/// whole machine's (validators and driver), with the TPS that figure allows on this machine's
/// cores.
fn cpu_report(before: &(Vec<Value>, u64), after: &(Vec<Value>, u64), txs: usize) -> Value {
    let per_tx = |ns: u64| (ns as f64 / txs.max(1) as f64 / 1e3 * 10.0).round() / 10.0;
    let mut validators = Vec::new();
    let mut sums: HashMap<String, u64> = HashMap::new();
    let mut machine_ns = after.1.saturating_sub(before.1);
    for (b, a) in before.0.iter().zip(&after.0) {
        let process = a["process_ns"].as_u64().unwrap_or(0).saturating_sub(b["process_ns"].as_u64().unwrap_or(0));
        machine_ns += process;
        let mut row = serde_json::Map::new();
        let mut claimed = 0u64;
        for part in aivm_runtime::cpu::PARTS {
            let name = part.name();
            let d = a["parts_ns"][name].as_u64().unwrap_or(0).saturating_sub(b["parts_ns"][name].as_u64().unwrap_or(0));
            claimed += d;
            *sums.entry(name.to_string()).or_default() += d;
            row.insert(name.to_string(), json!(per_tx(d)));
        }
        let rest = process.saturating_sub(claimed);
        *sums.entry("consensus_p2p_rest".into()).or_default() += rest;
        *sums.entry("total".into()).or_default() += process;
        row.insert("consensus_p2p_rest".into(), json!(per_tx(rest)));
        row.insert("total".into(), json!(per_tx(process)));
        validators.push(Value::Object(row));
    }
    // Transactions of peers' blocks each validator took already verified from its pool (gossip
    // and once-per-node verification at work).
    let reused: Vec<u64> = before
        .0
        .iter()
        .zip(&after.0)
        .map(|(b, a)| a["reused_verified"].as_u64().unwrap_or(0).saturating_sub(b["reused_verified"].as_u64().unwrap_or(0)))
        .collect();
    let k = validators.len().max(1) as u64;
    let mean: serde_json::Map<String, Value> = sums.iter().map(|(name, ns)| (name.clone(), json!(per_tx(ns / k)))).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_us = per_tx(machine_ns);
    json!({
        "per_validator_us_per_tx": validators,
        "reused_verified_per_validator": reused,
        "mean_validator_us_per_tx": mean,
        "driver_us_per_tx": per_tx(after.1.saturating_sub(before.1)),
        "machine_us_per_tx": machine_us,
        "cores": cores,
        "tps_the_machine_allows": if machine_us > 0.0 { (cores * 1e6 / machine_us).round() } else { 0.0 },
    })
}

fn address_of(load: &P2p, i: usize) -> Address {
    aivm_runtime::workload::address(&load.keys[i])
}

#[derive(Default, Clone)]
struct WatchStats {
    latencies_ms: Vec<f64>,
    failed: usize,
    blocks: u64,
    last_finalized: Option<Instant>,
}

/// Follows the finalized chain on one validator and times each submitted transaction.
struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<Mutex<WatchStats>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(addr: SocketAddr, submitted: Arc<Mutex<HashMap<String, Instant>>>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stats: Arc<Mutex<WatchStats>> = Arc::default();
        let (s2, st2) = (Arc::clone(&stop), Arc::clone(&stats));
        let handle = std::thread::spawn(move || {
            let mut c = RpcClient::new(addr);
            let mut next = c.call("aivm_status", json!([])).ok().and_then(|s| s["height"].as_u64()).unwrap_or(0) + 1;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let b = c.call("aivm_getBlock", json!([next])).unwrap_or(Value::Null);
                if b.is_null() {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let now = Instant::now();
                next += 1;
                let hashes: Vec<String> = b["txs"].as_array().map(|v| v.iter().filter_map(|h| h.as_str().map(str::to_string)).collect()).unwrap_or_default();
                let mut times = Vec::new();
                {
                    let map = submitted.lock();
                    for h in &hashes {
                        if let Some(t) = map.get(h) {
                            times.push((h.clone(), now.duration_since(*t).as_secs_f64() * 1e3));
                        }
                    }
                }
                let mut failed = 0;
                if !times.is_empty() {
                    for (h, _) in times.iter().take(3) {
                        if let Ok(r) = c.call("aivm_getReceipt", json!([h])) {
                            if r["status"] != "success" {
                                failed += 1;
                            }
                        }
                    }
                }
                let mut st = st2.lock();
                st.blocks += 1;
                st.failed += failed;
                if !times.is_empty() {
                    st.last_finalized = Some(now);
                }
                st.latencies_ms.extend(times.into_iter().map(|(_, ms)| ms));
            }
        });
        Watcher { stop, stats, handle: Some(handle) }
    }

    fn finalized_count(&self) -> usize {
        self.stats.lock().latencies_ms.len()
    }

    fn stop(mut self) -> WatchStats {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.stats.lock().clone()
    }
}

/// Whether every validator reports the same state root for every height up to `height`.
pub fn roots_agree(rpcs: &[SocketAddr], height: u64) -> Result<bool> {
    let mut clients: Vec<RpcClient> = rpcs.iter().map(|a| RpcClient::new(*a)).collect();
    for h in 0..=height {
        let mut root: Option<Value> = None;
        for c in &mut clients {
            let b = c.call("aivm_getBlock", json!([h]))?;
            let r = b["state_root"].clone();
            match &root {
                None => root = Some(r),
                Some(x) if *x == r => {}
                Some(_) => return Ok(false),
            }
        }
    }
    Ok(true)
}
