//! GEMM throughput per tensor backend at real LLM shapes, with every output hashed and the
//! hashes compared across backends in the same run (a mismatch exits 1).
//!
//! `cargo run --release -p aivm-benches --bin backends -- [--arch smollm2|llama3-8b|qwen2.5-7b] [--tokens 1,64] [--json]`
//!
//! The CPU backend runs with all cores; the OpenCL device is the one `AIVM_OPENCL_DEVICE`
//! selects (default: the first GPU, else the first device). Weights are prepared (packed or
//! uploaded) once and not timed; each timed GEMM includes sending X and reading Y back, as the
//! forward pass does.

use aivm::backend::{Backend, BackendConfig, BackendError, CpuBackend, OpenClBackend};
use aivm_benches::timing::median_ns;
use aivm_benches::workloads::{arch, i8s};
use std::time::Duration;

struct Row {
    kind: &'static str,
    m: usize,
    n: usize,
    k: usize,
    /// Median ns per backend, and the output hash per backend.
    ns: Vec<f64>,
    hash: Vec<String>,
}

/// The same work on every backend: speed ratios and bit-identity.
#[derive(clap::Parser)]
struct Args {
    /// Model shape: smollm2, llama3-8b or qwen2.5-7b.
    #[arg(long, default_value = "smollm2")]
    arch: String,
    /// Tokens per GEMM batch, comma-separated.
    #[arg(long, default_value = "1,64")]
    tokens: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn main() {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let args = <Args as clap::Parser>::parse();
    let json = args.json;
    let name = args.arch.clone();
    let Some(a) = arch(&name) else {
        eprintln!("unknown --arch {name} (llama3-8b, qwen2.5-7b, smollm2)");
        std::process::exit(2);
    };
    let tokens: Vec<usize> = args.tokens.split(',').filter_map(|t| t.trim().parse().ok()).filter(|&t| t > 0).collect();

    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::default())];
    let mut note = None;
    let ocl_cfg = BackendConfig::from_env().map(|c| c.opencl).unwrap_or_default();
    match OpenClBackend::open(&ocl_cfg) {
        Ok(b) => backends.push(Box::new(b)),
        Err(e @ BackendError::NoPlatform(_)) => note = Some(e.to_string()),
        Err(e) => {
            eprintln!("OpenCL backend failed to open: {e}");
            std::process::exit(2);
        }
    }
    let names: Vec<String> = backends.iter().map(|b| b.describe()).collect();

    let mut rows = Vec::new();
    for (i, (kind, n, k)) in a.weight_gemms().into_iter().enumerate() {
        let w = i8s(i as u64 + 1, n * k);
        let prepared: Vec<_> = backends.iter().map(|b| b.prepare(&w, n, k).expect("weights fit the device")).collect();
        for &m in &tokens {
            let x = i8s(100 + (i * 31 + m) as u64, m * k);
            let mut row = Row { kind, m, n, k, ns: Vec::new(), hash: Vec::new() };
            for (b, wp) in backends.iter().zip(&prepared) {
                let mut y = vec![0i32; m * n];
                let min = Duration::from_millis(if m * n * k > 1 << 30 { 2000 } else { 400 });
                row.ns.push(median_ns(|| b.gemm(&x, m, wp, &mut y).expect("gemm runs"), 3, min));
                let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
                row.hash.push(blake3::hash(&bytes).to_hex()[..16].to_string());
            }
            rows.push(row);
        }
    }
    let identical = rows.iter().all(|r| r.hash.iter().all(|h| *h == r.hash[0]));

    if json {
        let per: Vec<_> = rows
            .iter()
            .map(|r| {
                let macs = (r.m * r.n * r.k) as f64;
                serde_json::json!({"kind": r.kind, "m": r.m, "n": r.n, "k": r.k,
                    "gemm_ms": r.ns.iter().map(|ns| ns / 1e6).collect::<Vec<_>>(),
                    "gmac_s": r.ns.iter().map(|ns| macs / ns).collect::<Vec<_>>(),
                    "hash": r.hash})
            })
            .collect();
        let j = serde_json::json!({"arch": name, "backends": names, "opencl_note": note, "identical": identical, "gemms": per});
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
    } else {
        println!("backends: {name} weight GEMMs, Y = X·Wᵀ (m tokens × k) · (n × k)ᵀ");
        for (i, n) in names.iter().enumerate() {
            println!("  [{i}] {n}");
        }
        if let Some(n) = &note {
            println!("  OpenCL: {n}");
        }
        print!("{:<6} {:>5} {:>6} {:>6}", "kind", "m", "n", "k");
        for i in 0..names.len() {
            print!(" {:>10} {:>8}", format!("[{i}] ms"), "GMAC/s");
        }
        println!(" {:>8} {:>18}", if names.len() > 1 { "[1]/[0]" } else { "" }, "output hash");
        for r in &rows {
            let macs = (r.m * r.n * r.k) as f64;
            print!("{:<6} {:>5} {:>6} {:>6}", r.kind, r.m, r.n, r.k);
            for ns in &r.ns {
                print!(" {:>10.3} {:>8.1}", ns / 1e6, macs / ns);
            }
            let ratio = if r.ns.len() > 1 { format!("{:.3}", r.ns[0] / r.ns[1]) } else { String::new() };
            let same = if r.hash.iter().all(|h| *h == r.hash[0]) { "" } else { " MISMATCH" };
            println!(" {:>8} {:>18}{same}", ratio, r.hash[0]);
        }
        println!("outputs identical across backends: {identical}");
    }
    if !identical {
        std::process::exit(1);
    }
}
