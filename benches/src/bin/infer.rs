//! SmolLM2 inference speed (and, with `--quality`, agreement with a float reference).
//!
//! `cargo run --release -p aivm-benches --bin infer -- [--json] [--quality]`
//!
//! Needs the converted model (`make model`). Prompt speed: one forward step over the chat
//! prompt (tokens / time to the first token); decode: the following tokens. Both at 1 and 2
//! threads (results are identical, the bench checks it). `--quality` runs
//! `scripts/float_reference.py` (numpy over the GGUF weights dequantized by the `gguf` package,
//! float32) on the same prompts and reports greedy agreement.
//!
//! `--vs-llamacpp` measures llama.cpp on the same GGUF in the same run
//! (`../shared/tools/llamacpp-bench`: llama-cpp-python, built on first use) and prints the
//! ratios: the same prompt length (512 tokens by default), 32 decoded tokens, 1 and 2 threads,
//! best of three, ours first and then theirs (never at the same time); `--rounds N` repeats
//! that pair N times and adds each ratio's median over the rounds.

use aivm::model::store::default_home;
use aivm::model::{ArtifactStore, Engine, NoTrace, Options};
use aivm::tensor::matmul::SimdPath;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const PROMPTS: &[&str] = &[
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 12 plus 30?",
    "Write one sentence about the ocean.",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?",
    "Translate 'good morning' into French.",
    "List the planets closest to the sun.",
];

/// Teacher-forced agreement (`--quality`): [`PROMPTS`] and these, 32 prompts of 64
/// positions each.
const MORE_PROMPTS: &[&str] = &[
    "Explain why the sky is blue.",
    "Give me a recipe for pancakes.",
    "What does a computer's CPU do?",
    "Describe a cat in two sentences.",
    "Why do leaves change color in autumn?",
    "What is photosynthesis?",
    "Write a haiku about winter.",
    "How many days are in a leap year?",
    "What is the largest ocean on Earth?",
    "Suggest a name for a pet goldfish.",
    "What causes rain?",
    "Summarize the story of Cinderella.",
    "What is the speed of light?",
    "How do vaccines work?",
    "Name a famous painting by Leonardo da Vinci.",
    "What language is spoken in Brazil?",
    "Give three tips for better sleep.",
    "What is the difference between weather and climate?",
    "Write a short thank-you note to a teacher.",
    "How does a bicycle stay upright?",
    "What is the square root of 81?",
    "Explain what a black hole is.",
    "Why is exercise good for you?",
    "What is the tallest mountain in the world?",
];
/// Positions compared per prompt.
const FORCED_POSITIONS: usize = 64;

/// Inference speed of the converted model, and (`--quality`) agreement with a float reference.
#[derive(clap::Parser)]
struct Args {
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Also compare the integer model with the float reference.
    #[arg(long)]
    quality: bool,
    /// Measure llama.cpp on the same GGUF in this run and print the ratios.
    #[arg(long)]
    vs_llamacpp: bool,
    /// With --vs-llamacpp: the prompt length in tokens.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// With --vs-llamacpp: tokens decoded after the prompt.
    #[arg(long, default_value_t = 32)]
    decode: usize,
    /// With --vs-llamacpp: the llama.cpp benchmark script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/tools/llamacpp-bench"))]
    llamacpp: std::path::PathBuf,
    /// With --vs-llamacpp: the GGUF both engines run (default: the one `aivm model fetch` stored).
    #[arg(long)]
    gguf: Option<std::path::PathBuf>,
    /// With --vs-llamacpp: measure ours then llama.cpp this many times in turn and also print
    /// the median of each round's ratio (this VM's speed drifts between the two measurements
    /// of one round; pairing them and taking the median steadies the ratio).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

fn main() {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let args = <Args as clap::Parser>::parse();
    let (json, quality) = (args.json, args.quality);
    let home = default_home();
    let Ok(marker) = std::fs::read_to_string(home.join("default-model")) else {
        eprintln!("no converted model: run `make model` first");
        std::process::exit(2);
    };
    let mut hash = [0u8; 32];
    match hex::decode_to_slice(marker.trim(), &mut hash) {
        Ok(()) => {}
        Err(_) => {
            eprintln!("bad default-model marker");
            std::process::exit(2);
        }
    };
    let sku = match ArtifactStore::open(home.join("artifacts")).get(&hash) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.vs_llamacpp {
        let gguf = args.gguf.clone().unwrap_or_else(|| home.join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf"));
        std::process::exit(match vs_llamacpp(&sku, &gguf, &args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        });
    }
    let long = "Explain, in a few sentences, why the sky is blue, how clouds form, and what causes rain. ".repeat(6);
    let mut results = Vec::new();
    let mut outputs_by_threads = Vec::new();
    for threads in [1usize, 2] {
        let e = Engine::new(sku.clone(), Options::cpu(threads, SimdPath::detect())).expect("CPU backend");
        let prompt = e.tokenizer.encode(&e.tokenizer.chat_prompt(&long));
        // Prompt: best of 3 single forward steps.
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            e.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace).expect("valid prompt");
            best = best.min(t.elapsed().as_secs_f64());
        }
        let n_new = 64;
        let t = Instant::now();
        let out = e.generate(std::slice::from_ref(&prompt), n_new, &mut NoTrace).expect("valid prompt").remove(0);
        let total = t.elapsed().as_secs_f64();
        let decode_tps = (out.len().saturating_sub(1)) as f64 / (total - best).max(1e-9);
        // The worker's run: the same generation with every GEMM committed (copied, rows hashed,
        // the receipt built), against the plain run just timed.
        let t = Instant::now();
        let (receipt, _trace) = aivm::model::commit::run_committed(&e, std::slice::from_ref(&prompt), n_new).expect("committed run");
        let committed = t.elapsed().as_secs_f64();
        assert_eq!(receipt.outputs[0], out, "a committed run gives the plain run's output");
        // Batched decode: all PROMPTS at once.
        let batch: Vec<Vec<u32>> = PROMPTS.iter().map(|p| e.tokenizer.encode(&e.tokenizer.chat_prompt(p))).collect();
        let t = Instant::now();
        let outs = e.generate(&batch, 32, &mut NoTrace).expect("valid prompts");
        let bt = t.elapsed().as_secs_f64();
        let gen: usize = outs.iter().map(Vec::len).sum();
        outputs_by_threads.push((out.clone(), outs.clone()));
        results.push(serde_json::json!({"threads": threads, "prompt_tokens": prompt.len(), "prompt_tok_s": prompt.len() as f64 / best,
            "decode_tokens": out.len(), "decode_tok_s": decode_tps, "plain_run_s": total, "committed_run_s": committed,
            "commit_overhead": committed / total - 1.0, "batch": batch.len(), "batch_generated": gen, "batch_tok_s": gen as f64 / bt}));
    }
    assert_eq!(outputs_by_threads[0], outputs_by_threads[1], "outputs differ between thread counts");
    let mut report = serde_json::json!({"model": marker.trim(), "path": format!("{:?}", SimdPath::detect()), "runs": results});
    if quality {
        report["quality"] = quality_report(&sku, &outputs_by_threads[0].1);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for r in report["runs"].as_array().into_iter().flatten() {
            println!(
                "threads {}: prompt {} tokens at {:.1} tok/s; decode {:.1} tok/s; committed run +{:.1} %; batch of {} decode {:.1} tok/s",
                r["threads"],
                r["prompt_tokens"],
                r["prompt_tok_s"].as_f64().unwrap_or(0.0),
                r["decode_tok_s"].as_f64().unwrap_or(0.0),
                100.0 * r["commit_overhead"].as_f64().unwrap_or(0.0),
                r["batch"],
                r["batch_tok_s"].as_f64().unwrap_or(0.0)
            );
        }
        if quality {
            println!("quality: {}", serde_json::to_string_pretty(&report["quality"]).unwrap_or_default());
        }
    }
}

/// Ours, then llama.cpp, on prompts of the same length and the same decode count, at 1 and 2
/// threads; one line (or JSON object) per thread count with both speeds and their ratios, for
/// each of `--rounds` rounds, then (with more than one) each ratio's median over the rounds.
fn vs_llamacpp(sku: &Arc<aivm::model::Sku>, gguf: &std::path::Path, a: &Args) -> Result<(), String> {
    if !gguf.is_file() {
        return Err(format!("{} not found (run `aivm model fetch`, or pass --gguf)", gguf.display()));
    }
    // (threads, prompt ratio, decode ratio) of every round.
    let mut ratios: Vec<(usize, f64, f64)> = Vec::new();
    for round in 0..a.rounds.max(1) {
        let ours = ours_side_by_side(sku, a)?;
        let theirs = llamacpp_side_by_side(gguf, a)?;
        for (threads, prompt_tps, decode_tps) in ours {
            let Some(t) = theirs.iter().find(|t| t["threads"] == threads) else { return Err(format!("llama.cpp gave no result for {threads} threads")) };
            let (lp, ld) = (t["prompt_tok_s"].as_f64().unwrap_or(0.0), t["decode_tok_s"].as_f64().unwrap_or(0.0));
            ratios.push((threads, prompt_tps / lp, decode_tps / ld));
            let row = serde_json::json!({"round": round + 1, "threads": threads, "prompt_tokens": a.prompt_tokens, "decode_tokens": a.decode,
                "aivm_prompt_tok_s": prompt_tps, "llamacpp_prompt_tok_s": lp, "prompt_ratio": prompt_tps / lp,
                "aivm_decode_tok_s": decode_tps, "llamacpp_decode_tok_s": ld, "decode_ratio": decode_tps / ld, "path": format!("{:?}", SimdPath::detect())});
            if a.json {
                println!("{row}");
            } else {
                println!(
                    "threads {threads}: prompt {} tokens: aivm {prompt_tps:.1} tok/s, llama.cpp {lp:.1} tok/s, ratio {:.2}x; decode {}: aivm {decode_tps:.1} tok/s, llama.cpp {ld:.1} tok/s, ratio {:.2}x",
                    a.prompt_tokens,
                    prompt_tps / lp,
                    a.decode,
                    decode_tps / ld
                );
            }
        }
    }
    if a.rounds > 1 {
        for threads in [1usize, 2] {
            let of = |pick: fn(&(usize, f64, f64)) -> f64| -> (f64, f64, f64) {
                let mut v: Vec<f64> = ratios.iter().filter(|r| r.0 == threads).map(pick).collect();
                v.sort_by(f64::total_cmp);
                (v[v.len() / 2], v[0], v[v.len() - 1])
            };
            let ((pm, plo, phi), (dm, dlo, dhi)) = (of(|r| r.1), of(|r| r.2));
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"threads": threads, "rounds": a.rounds, "prompt_ratio_median": pm, "prompt_ratio_range": [plo, phi],
                        "decode_ratio_median": dm, "decode_ratio_range": [dlo, dhi]})
                );
            } else {
                println!(
                    "threads {threads}, {} rounds: prompt ratio median {pm:.2}x ({plo:.2}-{phi:.2}); decode ratio median {dm:.2}x ({dlo:.2}-{dhi:.2})",
                    a.rounds
                );
            }
        }
    }
    Ok(())
}

/// Our prompt and decode speeds at 1 and 2 threads: (threads, prompt tok/s, decode tok/s).
fn ours_side_by_side(sku: &Arc<aivm::model::Sku>, a: &Args) -> Result<Vec<(usize, f64, f64)>, String> {
    // The text llamacpp-bench tokenizes, cut to the same number of tokens.
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(a.prompt_tokens / 8 + 8);
    let mut ours = Vec::new();
    for threads in [1usize, 2] {
        let e = Engine::new(sku.clone(), Options::cpu(threads, SimdPath::detect())).map_err(|e| e.to_string())?;
        let mut prompt = e.tokenizer.encode(&text);
        if prompt.len() < a.prompt_tokens {
            return Err(format!("the prompt text is only {} tokens", prompt.len()));
        }
        prompt.truncate(a.prompt_tokens);
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            e.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace).map_err(|e| e.to_string())?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        // Decode: timed from the first one-row GEMM (the first decode step; the prompt step's
        // GEMMs have 512 rows) to the end, best of three. Subtracting a prompt time from a
        // whole run instead would leave the decode figure at the mercy of the prompt's noise.
        let mut decode_best = f64::MAX;
        let mut made = 0;
        for _ in 0..3 {
            let mut clock = DecodeClock(None);
            let out = e.generate(std::slice::from_ref(&prompt), a.decode + 1, &mut clock).map_err(|e| e.to_string())?.remove(0);
            let end = Instant::now();
            let Some(start) = clock.0 else { return Err("no decode step ran".into()) };
            decode_best = decode_best.min((end - start).as_secs_f64());
            made = out.len().saturating_sub(1);
        }
        ours.push((threads, a.prompt_tokens as f64 / best, made as f64 / decode_best.max(1e-9)));
    }
    Ok(ours)
}

/// llama.cpp's speeds on the same GGUF (one JSON object per thread count), best of three.
fn llamacpp_side_by_side(gguf: &std::path::Path, a: &Args) -> Result<Vec<serde_json::Value>, String> {
    eprintln!("running llama.cpp ({}; the first run builds it, ~18 min)", a.llamacpp.display());
    let out = Command::new(&a.llamacpp)
        .arg(gguf)
        .args(["--prompt-tokens", &a.prompt_tokens.to_string(), "--decode", &a.decode.to_string(), "--threads", "1,2", "--reps", "3"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", a.llamacpp.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", a.llamacpp.display(), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Notes when the first one-row GEMM (a decode step of a single sequence) starts.
struct DecodeClock(Option<Instant>);

impl aivm::model::GemmSink for DecodeClock {
    fn gemm(&mut self, rec: &aivm::model::GemmRecord<'_>) {
        if rec.m == 1 && self.0.is_none() {
            self.0 = Some(Instant::now());
        }
    }
}

/// Greedy agreement with the float reference on PROMPTS (32 new tokens each).
fn quality_report(sku: &Arc<aivm::model::Sku>, ours: &[Vec<u32>]) -> serde_json::Value {
    let e = Engine::new(sku.clone(), Options::default()).expect("CPU backend");
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| e.tokenizer.encode(&e.tokenizer.chat_prompt(p))).collect();
    let gguf = default_home().join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let req = serde_json::json!({"gguf": gguf, "prompts": prompts, "max_new": 32, "eos": e.tokenizer.eos});
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/float_reference.py");
    let child = Command::new("python3").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let Ok(mut child) = child else { return serde_json::json!({"error": "python3 not available"}) };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(req.to_string().as_bytes());
    }
    let out = child.wait_with_output();
    let Ok(out) = out else { return serde_json::json!({"error": "reference failed"}) };
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let Some(refs) = parsed["outputs"].as_array() else {
        return serde_json::json!({"error": format!("reference failed (pip install numpy gguf?): {}", String::from_utf8_lossy(&out.stderr))});
    };
    let forced = teacher_forced_report(&e, &gguf, script);
    let mut rows = Vec::new();
    let (mut exact, mut prefix_sum, mut total) = (0, 0usize, 0usize);
    for (i, (r, o)) in refs.iter().zip(ours).enumerate() {
        let r: Vec<u32> = r.as_array().into_iter().flatten().filter_map(|v| v.as_u64().map(|x| x as u32)).collect();
        let prefix = r.iter().zip(o).take_while(|(a, b)| a == b).count();
        exact += (r == *o) as usize;
        prefix_sum += prefix;
        total += r.len().max(o.len());
        rows.push(serde_json::json!({"prompt": PROMPTS[i], "ours": e.tokenizer.decode(o), "float": e.tokenizer.decode(&r), "agree_prefix": prefix, "len": r.len().max(o.len())}));
    }
    serde_json::json!({"prompts": rows.len(), "identical": exact, "agreeing_prefix_tokens": prefix_sum, "tokens": total, "per_prompt": rows, "teacher_forced": forced})
}

/// Teacher-forced top-1 agreement: the float model continues each of [`PROMPTS`] and
/// [`MORE_PROMPTS`] for
/// [`FORCED_POSITIONS`] tokens greedily (not stopping at end-of-sequence); ours is fed the
/// same tokens and its top-1 at each position is compared with the float model's, which is
/// the token it produced.
fn teacher_forced_report(e: &Engine, gguf: &std::path::Path, script: &str) -> serde_json::Value {
    let texts: Vec<&str> = PROMPTS.iter().chain(MORE_PROMPTS).copied().collect();
    let prompts: Vec<Vec<u32>> = texts.iter().map(|p| e.tokenizer.encode(&e.tokenizer.chat_prompt(p))).collect();
    let req = serde_json::json!({"gguf": gguf, "prompts": prompts, "max_new": FORCED_POSITIONS, "eos": -1});
    let Ok(mut child) = Command::new("python3").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() else {
        return serde_json::json!({"error": "python3 not available"});
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(req.to_string().as_bytes());
    }
    let Ok(out) = child.wait_with_output() else { return serde_json::json!({"error": "reference failed"}) };
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let Some(refs) = parsed["outputs"].as_array() else {
        return serde_json::json!({"error": format!("reference failed: {}", String::from_utf8_lossy(&out.stderr))});
    };
    let (mut agree, mut total, mut worst) = (0usize, 0usize, (1.0f64, ""));
    for (r, (p, text)) in refs.iter().zip(prompts.iter().zip(&texts)) {
        let r: Vec<u32> = r.as_array().into_iter().flatten().filter_map(|v| v.as_u64().map(|x| x as u32)).collect();
        let Ok(ours) = e.teacher_forced(p, &r) else { return serde_json::json!({"error": format!("teacher forcing failed on {text:?}")}) };
        let a = ours.iter().zip(&r).filter(|(x, y)| x == y).count();
        let frac = a as f64 / r.len().max(1) as f64;
        if frac < worst.0 {
            worst = (frac, text);
        }
        agree += a;
        total += r.len();
    }
    serde_json::json!({"prompts": refs.len(), "positions": total, "agreeing": agree, "agreement": agree as f64 / total.max(1) as f64,
        "worst_prompt": worst.1, "worst_agreement": worst.0})
}
