//! What the chain pays to verify a market job, against the inference it verifies, on the real
//! model: one job per prompt through a real chain (RocksDB, the VM's model registry), from
//! submit to a settled answer.
//!
//! `cargo run --release -p aivm-benches --bin market -- [--max-new 32] [--repeat N] [--jobs J] [--json]`
//!
//! Inference: MODEL_INFER's gas for the job's prompt and `max_new` (what a contract would pay
//! to run it on chain) and the wall time of the committed run. Verification: the answer
//! transaction's gas (intrinsic, its bytes, Freivalds, row chains, the records it writes) and
//! the wall time of executing its block as a validator does, and of admitting its bytes to a
//! mempool first (decode, canonical check, signature: once per validator). Needs
//! the converted model (`make model`).

use aivm::model::audit::{respond, Challenge};
use aivm::model::commit::run_committed;
use aivm::model::store::default_home;
use aivm::model::{ArtifactStore, ModelRegistry, Options};
use aivm::{GasSchedule, Limits, Vm};
use aivm_runtime::encoding::cbor;
use aivm_runtime::market::genesis::SeedPool;
use aivm_runtime::market::jobs::challenge_seed;
use aivm_runtime::market::{Job, MarketGenesis, MarketKey, MarketParams, MarketTx, ModelEntry, Role};
use aivm_runtime::{Chain, ChainConfig, ChainVm, Genesis, Payload, SignedTransaction, StateValue, Transaction};
use ed25519_dalek::SigningKey;
use std::sync::Arc;
use std::time::Instant;

const PROMPTS: &[&str] =
    &["What is the capital of France?", "Name three primary colors.", "Write one sentence about the ocean.", "Who wrote Romeo and Juliet?"];

#[derive(clap::Parser)]
struct Args {
    /// New tokens per job.
    #[arg(long, default_value_t = 32)]
    max_new: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Admit each answer and execute its block this many times (on the same parent state,
    /// not committed, but the last) and report the medians: one run is noisy, and a large N
    /// gives a profiler the block's own work to sample.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Jobs per prompt: each has its own id and so its own challenge (which GEMMs and row are
    /// opened), and an answer's cost depends on what is opened; the medians over the jobs are
    /// reported, with the dearest. The inference runs once per prompt (every job of a prompt
    /// commits the same receipt).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Also print each job's answer gas and bytes (to stderr): what a challenge's draw costs,
    /// job by job.
    #[arg(long)]
    per_job: bool,
}

struct Net {
    chain: Chain,
    keys: [SigningKey; 2],
    nonces: [u64; 2],
    time: u64,
}

impl Net {
    fn send(&mut self, who: usize, m: MarketTx) -> (aivm_runtime::Receipt, f64) {
        self.send_timed(who, m, 1).0
    }

    /// [`Net::send`], its block executed `repeat` times: the median time; and the median time
    /// of admitting the transaction's bytes (decode, canonical check, signature), which every
    /// validator pays once, when the transaction reaches its mempool, outside the block.
    fn send_timed(&mut self, who: usize, m: MarketTx, repeat: usize) -> ((aivm_runtime::Receipt, f64), f64) {
        let k = &self.keys[who];
        let t: SignedTransaction = Transaction {
            chain_id: 1,
            sender: k.verifying_key().to_bytes(),
            nonce: self.nonces[who],
            gas_limit: 2_000_000_000,
            gas_price: 1,
            payload: Payload::Market(m),
        }
        .sign(k);
        self.nonces[who] += 1;
        let bytes = t.encode();
        let mut verified = None;
        let admit = median((0..repeat.max(1)).map(|_| {
            let start = Instant::now();
            let checked = aivm_runtime::tx::verify_encoded(&[&bytes], 1).pop().expect("one result").expect("the bench's transaction is admitted");
            let secs = start.elapsed().as_secs_f64();
            verified = Some(checked);
            secs
        }));
        (self.block_verified(verified.expect("admitted"), repeat), admit)
    }

    /// A block of `tx` as a validator executes it: the signature was checked at admission
    /// (`execute_verified`), the state-tree update prepared as at commit; executed `repeat`
    /// times on the same parent, the median time, then committed.
    fn block_verified(&mut self, tx: aivm_runtime::VerifiedTx, repeat: usize) -> (aivm_runtime::Receipt, f64) {
        self.time += 1000;
        let parent = self.chain.committed_parent().expect("parent");
        let mut last = None;
        let secs = median((0..repeat.max(1)).map(|_| {
            let start = Instant::now();
            let b = self.chain.execute_verified(&parent, vec![tx.clone()], self.time, Vec::new(), None).expect("execute");
            let prepared = self.chain.store().prepare_delta(&b.tree).expect("prepare");
            let secs = start.elapsed().as_secs_f64();
            drop(prepared);
            last = Some(b);
            secs
        }));
        let b = last.expect("executed");
        let r = b.record.receipts.first().cloned();
        self.chain.commit_speculative(&b, None).expect("commit");
        (r.unwrap_or_else(|| aivm_runtime::Receipt::rejected([0; 32], "empty block")), secs)
    }

    fn block(&mut self, txs: Vec<SignedTransaction>) -> (aivm_runtime::Receipt, f64) {
        self.block_timed(txs)
    }

    fn block_timed(&mut self, txs: Vec<SignedTransaction>) -> (aivm_runtime::Receipt, f64) {
        self.time += 1000;
        let start = Instant::now();
        let b = self.chain.execute(txs, self.time).expect("execute");
        let secs = start.elapsed().as_secs_f64();
        let r = b.record.receipts.first().cloned();
        self.chain.commit(b).expect("commit");
        (r.unwrap_or_else(|| aivm_runtime::Receipt::rejected([0; 32], "empty block")), secs)
    }

    fn get<T: serde::de::DeserializeOwned>(&self, k: MarketKey<'_>) -> T {
        match self.chain.store().get(&k.state_key()).expect("read") {
            Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).expect("decode"),
            _ => panic!("missing {k:?}"),
        }
    }
}

fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One job's answer: its gas and bytes, the check alone, its block, its admission (seconds).
struct Answered {
    gas: u64,
    bytes: usize,
    verify_s: f64,
    check_s: f64,
    admit_s: f64,
}

fn main() -> anyhow::Result<()> {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let args = <Args as clap::Parser>::parse();
    let home = default_home();
    let marker = std::fs::read_to_string(home.join("default-model")).map_err(|_| anyhow::anyhow!("no converted model: run `make model` first"))?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(marker.trim(), &mut hash)?;
    let store = ArtifactStore::open(home.join("artifacts"));
    let size = std::fs::metadata(store.path_of(&hash))?.len();
    let registry = Arc::new(ModelRegistry::new(store, Options::default()));
    let engine = registry.engine(&hash)?;
    // The verifier's packed weights, built once as a validator does at start
    // (`audit::prepare_checks`), so the answers below are timed warm.
    let start = Instant::now();
    aivm::model::audit::prepare_checks(&engine.sku);
    eprintln!("packed every weight for the verifier in {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
    let schedule = GasSchedule::default();
    let vm = Vm::new(Limits::default(), schedule.clone())?.with_models(registry);
    let dir = std::env::temp_dir().join(format!("aivm-market-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let chain = Chain::open(&dir, ChainVm::new(vm), ChainConfig { chain_id: 1, fee_collector: [0xfe; 32] })?;
    let keys = [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32])];
    let params = MarketParams::default();
    let market = MarketGenesis {
        params: params.clone(),
        models: vec![(hash, ModelEntry::of(&engine.sku, size))],
        pools: vec![SeedPool { sku: hash, native: 1 << 60, units: 1 << 40, provider: [9; 32] }],
    };
    let accounts = keys.iter().map(|k| (k.verifying_key().to_bytes(), 1u128 << 100)).collect();
    chain.init_genesis(&Genesis { accounts, time_ms: 0, entries: market.entries()? })?;
    let mut n = Net { chain, keys, nonces: [0; 2], time: 0 };
    let (client, worker) = (0, 1);
    n.send(worker, MarketTx::Bond { role: Role::Worker { sku: hash }, amount: 1 << 40, capacity: 1 << 20 });

    if !args.json {
        println!("challenge: {} GEMMs, {} row chains; max_new {}", params.challenge_gemms, params.challenge_rows, args.max_new);
        println!(
            "{:<38} {:>6} {:>7} {:>14} {:>13} {:>9} {:>10} {:>9} {:>8}",
            "prompt", "tokens", "GEMMs", "infer gas", "answer gas", "gas %", "infer ms", "check ms", "time %"
        );
    }
    for p in PROMPTS {
        let prompt = engine.tokenizer.encode(&engine.tokenizer.chat_prompt(p));
        let infer_gas =
            engine.infer_gas(prompt.len() as u64, args.max_new as u64, |m, a, t, w, n| schedule.model_infer_cost(m, a, t, w, n)).unwrap_or(u64::MAX);
        let start = Instant::now();
        let (receipt, trace) = run_committed(&engine, std::slice::from_ref(&prompt), args.max_new as usize)?;
        let infer_s = start.elapsed().as_secs_f64();
        let mut runs: Vec<Answered> = Vec::new();
        for j in 0..args.jobs.max(1) {
            let submit = MarketTx::SubmitJob { sku: hash, prompt: prompt.clone(), max_new: args.max_new, sla_blocks: 10, budget: 1 << 90, tee: false };
            let (r, _) = n.send(client, submit);
            anyhow::ensure!(r.is_success(), "submit: {:?}", r.status);
            let id = r.tx_hash;
            let (c, _) = n.send(worker, MarketTx::Commit { job: id, receipt: cbor(&receipt) });
            anyhow::ensure!(c.is_success(), "commit: {:?}", c.status);
            let at = n.chain.head().map_or(0, |h| h.height);
            n.block(vec![]);
            let beacon: serde_bytes::ByteArray<32> = n.get(MarketKey::Beacon(at + 1));
            let ch = Challenge { seed: challenge_seed(&beacon, &id), gemms: params.challenge_gemms, rows: params.challenge_rows };
            let response = respond(&engine.sku, &receipt, &trace, &ch)?.encode();
            let bytes = response.len();
            // The check alone (decode and verify, as the chain runs them), apart from the block.
            let start = Instant::now();
            let decoded = aivm::model::audit::Response::decode(&response).ok_or_else(|| anyhow::anyhow!("answer does not decode"))?;
            aivm::model::audit::check_response(&engine.sku, &engine.sku_hash, &receipt, &ch, &decoded)?;
            let verify_s = start.elapsed().as_secs_f64();
            // Which GEMMs the draw opened (kind@step m×k×n): the spread between jobs.
            let opened: Vec<String> = decoded
                .gemms
                .iter()
                .map(|(_, g)| {
                    let c = &g.commit;
                    let kind = c.id().map_or("?".to_string(), |id| format!("{:?}", id.kind));
                    format!("{kind}@{} {}x{}x{}", c.step, c.m, c.k, c.n)
                })
                .collect();
            drop(decoded);
            let ((a, check_s), admit_s) = n.send_timed(worker, MarketTx::Answer { job: id, response }, args.repeat);
            anyhow::ensure!(a.is_success(), "answer: {:?}", a.status);
            let settled: Job = n.get(MarketKey::Job(&id));
            anyhow::ensure!(matches!(settled.status, aivm_runtime::market::JobStatus::Settled { .. }), "not settled: {:?}", settled.status);
            runs.push(Answered { gas: a.gas_used, bytes, verify_s, check_s, admit_s });
            if args.per_job {
                eprintln!(
                    "    job {j}: gas {} bytes {bytes}, check {:.2} ms, admission {:.2} ms; opened {}",
                    a.gas_used,
                    check_s * 1e3,
                    admit_s * 1e3,
                    opened.join(", ")
                );
            }
            if j > 0 {
                continue;
            }
            // What certainty would cost: every GEMM opened (`challenge_gemms` = 0), which
            // catches a cheat confined to one GEMM on its first job (spec/market.md §8). Its
            // gas as the chain would charge it: intrinsic, hashing the bytes, the check.
            let every = Challenge { seed: ch.seed, gemms: 0, rows: params.challenge_rows };
            let resp = respond(&engine.sku, &receipt, &trace, &every)?;
            let bytes = resp.encode().len() as u64;
            let gas = aivm_runtime::market::jobs::check_gas(&schedule, &receipt, &resp, aivm_runtime::market::jobs::AnswerKind::Challenge)
                .and_then(|g| g.checked_add(schedule.blake3.cost(bytes)?)?.checked_add(schedule.tx.cost(bytes)?))
                .unwrap_or(u64::MAX);
            let start = Instant::now();
            aivm::model::audit::check_response(&engine.sku, &engine.sku_hash, &receipt, &every, &resp)?;
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "  every GEMM opened: {:.1} MB answer, {:.0} M gas ({:.1} % of the inference's), check {:.1} ms ({:.1} % of its time)",
                bytes as f64 / 1e6,
                gas as f64 / 1e6,
                100.0 * gas as f64 / infer_gas as f64,
                secs * 1e3,
                100.0 * secs / infer_s
            );
            // What a dispute of the prompt step and of the last step needs: the answer's bytes
            // against the bound the chain checks, its check's gas and time (the check alone).
            let last = receipt.outputs[0].len().saturating_sub(1) as u32;
            let sched = aivm::model::audit::schedule(&engine.sku, &receipt)?;
            for step in [0, last] {
                let bound = aivm::model::audit::step_answer_bytes(&engine.sku, &receipt, &sched, step)?;
                let resp = aivm::model::audit::respond_step(&engine.sku, &receipt, &trace, step)?;
                let bytes = resp.encode().len() as u64;
                let gas = aivm_runtime::market::jobs::check_gas(&schedule, &receipt, &resp, aivm_runtime::market::jobs::AnswerKind::Dispute)
                    .and_then(|g| g.checked_add(schedule.blake3.cost(bytes)?))
                    .unwrap_or(u64::MAX);
                let start = Instant::now();
                aivm::model::audit::check_step(&engine.sku, &engine.sku_hash, &receipt, &ch.seed, step, &resp)?;
                let ms = start.elapsed().as_secs_f64() * 1e3;
                eprintln!("  dispute of step {step}: {bytes} answer bytes (bound {bound}), check {:.1} M gas, {ms:.1} ms", gas as f64 / 1e6);
            }
        }
        let med = |f: fn(&Answered) -> f64| median(runs.iter().map(f));
        let (gas, bytes, verify_s, check_s, admit_s) =
            (med(|r| r.gas as f64), med(|r| r.bytes as f64), med(|r| r.verify_s), med(|r| r.check_s), med(|r| r.admit_s));
        let dearest = runs.iter().map(|r| r.check_s + r.admit_s).fold(0.0, f64::max);
        let (gas_pct, time_pct) = (100.0 * gas / infer_gas as f64, 100.0 * check_s / infer_s);
        if args.json {
            println!(
                "{}",
                serde_json::json!({"prompt": p, "prompt_tokens": prompt.len(), "output_tokens": receipt.outputs[0].len(), "gemms": receipt.gemm_count,
                    "jobs": runs.len(), "infer_gas": infer_gas, "answer_gas": gas, "answer_bytes": bytes, "infer_s": infer_s, "check_s": check_s,
                    "verify_s": verify_s, "admit_s": admit_s, "gas_pct": gas_pct, "time_pct": time_pct, "verify_pct": 100.0 * verify_s / infer_s,
                    "dearest_admit_and_block_pct": 100.0 * dearest / infer_s})
            );
        } else {
            println!(
                "{:<38} {:>6} {:>7} {:>14} {:>13.0} {:>8.2}% {:>10.1} {:>9.2} {:>7.2}%   ({:.0} answer bytes; decode and verify alone {:.2} ms, {:.2} %; admission {:.2} ms, with the block {:.2} %, the dearest of {} jobs {:.2} %)",
                p,
                prompt.len() + receipt.outputs[0].len(),
                receipt.gemm_count,
                infer_gas,
                gas,
                gas_pct,
                infer_s * 1e3,
                check_s * 1e3,
                time_pct,
                bytes,
                verify_s * 1e3,
                100.0 * verify_s / infer_s,
                admit_s * 1e3,
                100.0 * (admit_s + check_s) / infer_s,
                runs.len(),
                100.0 * dearest / infer_s
            );
        }
    }
    // The chain's database closes first, or it writes into the directory as it goes.
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
