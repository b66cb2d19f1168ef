//! Gas calibration: measures what each priced operation costs on this machine, prints
//! ns per gas (the target is 0.1 ns per gas), measured-over-priced ratios, and the
//! headline ratios (int8 MATMUL vs f32 sgemm, call latency, fuel-metering overhead).
//!
//! `cargo run --release -p aivm-benches --bin gas-bench [-- --json] [--quick] [--calls] [--adversarial] [--baseline FILE [--threshold X]] [--plot FILE.svg]`

use aivm::gas::GasSchedule;
use aivm::tensor::{matmul, ops, DType, Tensor};
use aivm::verify::{kl, signature};
use aivm::{CallContext, CallRequest, Limits, MemState, Vm};
use aivm_benches::{timing::median_ns, workloads};
use serde_json::json;
use std::time::Duration;

/// 1 gas = 0.1 ns: the one time target all prices are derived from.
const NS_PER_GAS_TARGET: f64 = 0.1;

struct Report {
    json: bool,
    rows: Vec<serde_json::Value>,
    /// Rows measured so far and the last one, on stderr; indicatif hides it when stderr is not
    /// a terminal (CI logs, pipes), so the tables on stdout are unchanged.
    progress: indicatif::ProgressBar,
}

impl Report {
    fn new(json: bool) -> Self {
        let progress = indicatif::ProgressBar::new_spinner();
        progress.set_style(
            indicatif::ProgressStyle::with_template("{spinner} gas-bench: {pos} rows, last {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        progress.enable_steady_tick(std::time::Duration::from_millis(200));
        Report { json, rows: Vec::new(), progress }
    }

    fn row(&mut self, opcode: &str, size: &str, gas: u64, ns: f64) -> f64 {
        let npg = ns / gas as f64;
        self.progress.inc(1);
        self.progress.set_message(format!("{opcode} {size}"));
        // Printed with the bar suspended, so the two do not interleave on a terminal.
        self.progress.suspend(|| {
            if self.json {
                println!("{}", json!({"opcode": opcode, "size": size, "gas": gas, "median_ns": ns, "ns_per_gas": npg}));
            } else {
                println!("{opcode:<16} {size:>18} {gas:>16} {ns:>16.0} {npg:>10.4}");
            }
        });
        self.rows.push(json!({"opcode": opcode, "size": size, "ns_per_gas": npg}));
        npg
    }

    fn note(&self, key: &str, value: serde_json::Value, text: String) {
        self.progress.suspend(|| {
            if self.json {
                println!("{}", json!({ "summary": key, "value": value }));
            } else {
                println!("{text}");
            }
        });
    }
}

fn spread(name: &str, v: &[f64], r: &Report) {
    let mut s = v.to_vec();
    let med = aivm_benches::timing::median(&mut s);
    let (lo, hi) = (s[0] / med, s[s.len() - 1] / med);
    r.note(
        &format!("{name}_ns_per_gas_spread"),
        json!({"median": med, "min_over_median": lo, "max_over_median": hi}),
        format!("{name}: ns/gas median {med:.4}, min {lo:.2}x, max {hi:.2}x of median (target: within 2x)"),
    );
}

/// Measure what each priced operation costs here, against the 0.1 ns-per-gas target.
#[derive(clap::Parser)]
#[command(name = "gas-bench")]
struct Args {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Shorter timing budgets and fewer sizes (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Only the call-latency rows.
    #[arg(long)]
    calls: bool,
    /// Only TEE_VERIFY: each format's verification time on the real vectors, and the time
    /// per extra certificate in a DCAP collateral's chains, against their prices.
    #[arg(long)]
    tee: bool,
    /// Only MODEL_INFER and FREIVALDS_VERIFY on the converted model (`make model`): the
    /// committed run MODEL_INFER performs at several prompt lengths and `max_new`, and the
    /// check of each GEMM kind's opening, against their prices.
    #[arg(long)]
    model: bool,
    /// Only the adversarial deploys: compile time of modules built to be slow, against price.
    #[arg(long)]
    adversarial: bool,
    /// With --adversarial: only the operator cases whose operation or shape contains this.
    #[arg(long)]
    only: Option<String>,
    /// Compare with a saved `--json` run: every row also measured there whose ns/gas grew by
    /// more than --threshold times is a regression, and the exit code is 1.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
    /// With --baseline: the largest ns/gas growth (current / baseline) that is not a regression.
    #[arg(long, default_value_t = 1.5)]
    threshold: f64,
    /// Also draw ns per gas per opcode across its sizes (and the 0.1 ns target) to this SVG.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> std::process::ExitCode {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let args = <Args as clap::Parser>::parse();
    // Read the baseline first: a bad file is an error before minutes of measuring.
    let baseline = match args.baseline.as_deref().map(read_baseline).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut r = Report::new(args.json);
    sweep(&args, &mut r);
    r.progress.finish_and_clear();
    if let Some(path) = &args.plot {
        if let Err(e) = plot(path, &r.rows) {
            eprintln!("error: drawing {}: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
    }
    match baseline {
        Some(b) if regressions(&b, &r.rows, args.threshold) > 0 => std::process::ExitCode::from(1),
        _ => std::process::ExitCode::SUCCESS,
    }
}

/// ns per gas of every measured row, one series per opcode (x: the opcode's sizes in the order
/// measured), on a log scale, with the 0.1 ns target as a line.
fn plot(path: &std::path::Path, rows: &[serde_json::Value]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    for row in rows {
        let (Some(op), Some(npg)) = (row["opcode"].as_str(), row["ns_per_gas"].as_f64()) else { continue };
        match series.iter_mut().find(|(o, _)| o == op) {
            Some((_, v)) => v.push(npg),
            None => series.push((op.to_string(), vec![npg])),
        }
    }
    let xmax = series.iter().map(|(_, v)| v.len()).max().unwrap_or(1) as f64;
    let all = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((NS_PER_GAS_TARGET, NS_PER_GAS_TARGET), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let root = SVGBackend::new(path, (1200, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("ns per gas by opcode (target 0.1)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(0)
        .build_cartesian_2d(0f64..xmax, (lo / 2.0..hi * 2.0).log_scale())?;
    chart.configure_mesh().x_desc("size index (in the order measured)").y_desc("ns per gas").draw()?;
    chart
        .draw_series(LineSeries::new([(0.0, NS_PER_GAS_TARGET), (xmax, NS_PER_GAS_TARGET)], BLACK.stroke_width(2)))?
        .label("target")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    for (i, (op, v)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = v.iter().enumerate().map(|(x, y)| (x as f64, *y)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(1)))?
            .label(op.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw()?;
    root.present()?;
    Ok(())
}

/// `(opcode, size) → ns/gas` of a saved `--json` run (its summary lines are skipped).
fn read_baseline(path: &std::path::Path) -> Result<std::collections::BTreeMap<(String, String), f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut out = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: not JSON ({e}); save a baseline with --json", path.display(), i + 1))?;
        if let (Some(op), Some(size), Some(npg)) = (v["opcode"].as_str(), v["size"].as_str(), v["ns_per_gas"].as_f64()) {
            out.insert((op.to_string(), size.to_string()), npg);
        }
    }
    if out.is_empty() {
        return Err(format!("{} holds no measured rows", path.display()));
    }
    Ok(out)
}

/// Print the rows whose ns/gas grew past `threshold` times the baseline's; how many.
fn regressions(base: &std::collections::BTreeMap<(String, String), f64>, rows: &[serde_json::Value], threshold: f64) -> usize {
    let mut bad = 0;
    let mut compared = 0;
    for row in rows {
        let key = (row["opcode"].as_str().unwrap_or_default().to_string(), row["size"].as_str().unwrap_or_default().to_string());
        let (Some(old), Some(new)) = (base.get(&key), row["ns_per_gas"].as_f64()) else { continue };
        compared += 1;
        let ratio = new / old;
        if ratio > threshold {
            bad += 1;
            eprintln!("regression: {} {}: {new:.4} ns/gas against {old:.4} ({ratio:.2}x > {threshold}x)", key.0, key.1);
        }
    }
    eprintln!("baseline: {compared} rows compared, {bad} over {threshold}x");
    bad
}

fn sweep(args: &Args, r: &mut Report) {
    let (quick, calls_only) = (args.quick, args.calls);
    let s = GasSchedule::default();
    let budget = Duration::from_millis(if quick { 50 } else { 300 });
    if !r.json {
        println!("AIVM gas calibration — target {NS_PER_GAS_TARGET} ns per gas; kernel path {:?}", matmul::SimdPath::detect());
        println!("{:<16} {:>18} {:>16} {:>16} {:>10}", "opcode", "size", "gas", "median_ns", "ns/gas");
    }

    if calls_only {
        call_latency(r, budget);
        return;
    }
    if args.tee {
        tee_verify(r, &s, budget);
        return;
    }
    if args.model {
        model_opcodes(r, &s, quick);
        return;
    }
    if args.adversarial {
        // `--only X` runs the sections whose name contains X (and the operator cases that do).
        let wants = |section: &str| args.only.as_deref().is_none_or(|o| section.contains(o));
        operator_sweep(r, quick, args.only.as_deref());
        if wants("tensor") {
            tensor_extremes(r, &s, quick);
        }
        if wants("peak memory") {
            peak_call_memory(r);
        }
        if wants("storage") {
            storage_writes(r, quick);
        }
        if wants("cold storage") {
            cold_storage_reads(r, quick);
        }
        if wants("deploy compile") {
            compile_bombs(r, &s, quick);
        }
        return;
    }
    // TENSOR_MATMUL: cubes and LLM-like shapes (m tokens × k hidden → n).
    let mut shapes: Vec<(usize, usize, usize)> = [8, 16, 32, 64, 128, 256, 512, 1024].iter().map(|&d| (d, d, d)).collect();
    shapes.extend([(1, 576, 1536), (512, 576, 1536), (512, 1536, 576), (64, 4096, 4096)]);
    if quick {
        shapes.retain(|&(m, k, n)| m * k * n <= 1 << 27);
    }
    let mut mm_npg = Vec::new();
    let mut int8_macs_per_s = 0.0;
    for &(m, k, n) in &shapes {
        let a = Tensor::from_i8(&[m, k], workloads::i8s(1, m * k)).expect("shape");
        let b = Tensor::from_i8(&[k, n], workloads::i8s(2, k * n)).expect("shape");
        let ns = median_ns(|| drop(std::hint::black_box(matmul::matmul(&a, &b))), 5, budget);
        let gas = s.matmul_cost(m as u64, k as u64, n as u64).expect("fits");
        mm_npg.push(r.row("tensor_matmul", &format!("{m}x{k}x{n}"), gas, ns));
        if (m, k, n) == (1024, 1024, 1024) {
            int8_macs_per_s = (m * k * n) as f64 / ns * 1e9;
        }
    }

    // KL_DIVERGE over 2^4 … 2^20 elements.
    let mut kl_npg = Vec::new();
    for e in (4..=20).step_by(2) {
        let n = 1usize << e;
        let (p, q) = (workloads::q16_probs(3, n), workloads::q16_probs(4, n));
        let ns = median_ns(|| drop(std::hint::black_box(kl::kl_divergence_q16(&p, &q))), 5, budget);
        kl_npg.push(r.row("kl_divergence", &format!("2^{e}"), s.kl.cost(n as u64).expect("fits"), ns));
    }

    // Row-wise and elementwise kernels at 64 Ki elements (rows of 1024).
    let n = 1usize << 16;
    let x = Tensor::from_i32(DType::Q16, &[64, 1024], workloads::q16_probs(5, n)).expect("shape");
    let y = Tensor::from_i32(DType::Q16, &[64, 1024], workloads::q16_probs(6, n)).expect("shape");
    let ns = median_ns(|| drop(std::hint::black_box(ops::softmax(&x))), 5, budget);
    let sm = r.row("tensor_softmax", "64x1024", s.softmax.cost(n as u64).expect("fits"), ns);
    let ns = median_ns(|| drop(std::hint::black_box(ops::norm(&x, ops::NormKind::Rms, 1))), 5, budget);
    let nm = r.row("tensor_norm", "64x1024", s.norm.cost(n as u64).expect("fits"), ns);
    let ns = median_ns(|| drop(std::hint::black_box(ops::add(&x, &y))), 5, budget);
    let ew = r.row("tensor_add", "64x1024", s.elementwise.cost(n as u64).expect("fits"), ns);
    let ns = median_ns(|| drop(std::hint::black_box(ops::quantize(&x, 1 << 10))), 5, budget);
    r.row("tensor_quantize", "64x1024", s.quantize.cost(n as u64).expect("fits"), ns);

    // Hashes per byte and signatures.
    let data = vec![7u8; 1 << 20];
    let ns = median_ns(
        || {
            std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(&data));
        },
        5,
        budget,
    );
    r.row("sha256", "1 MiB", s.sha256.cost(data.len() as u64).expect("fits"), ns);
    let ns = median_ns(
        || {
            std::hint::black_box(blake3::hash(&data));
        },
        5,
        budget,
    );
    r.row("blake3", "1 MiB", s.blake3.cost(data.len() as u64).expect("fits"), ns);
    let sk = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let sig = ed25519_dalek::Signer::sign(&sk, b"msg").to_bytes();
    let pk = sk.verifying_key().to_bytes();
    let ns = median_ns(|| assert!(signature::ed25519_verify(&pk, b"msg", &sig)), 20, budget);
    r.row("ed25519_verify", "3 B", s.ed25519_verify.cost(3).expect("fits"), ns);
    let bsk = blst::min_pk::SecretKey::key_gen(&[2; 32], &[]).expect("ikm is long enough");
    let (bpk, bsig) = (bsk.sk_to_pk().compress(), bsk.sign(b"msg", signature::BLS_DST, &[]).compress());
    let ns = median_ns(|| assert!(signature::bls_verify(&bpk, b"msg", &bsig)), 5, budget);
    r.row("bls_verify", "3 B", s.bls_verify.cost(3).expect("fits"), ns);

    // Wasm execution, the host-call boundary and bulk memory, measured through the VM.
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let run = |wat: &str| -> (f64, u64) {
        let c = vm.deploy(&wat::parse_str(wat).expect("wat")).expect("deploys");
        let mut gas = 0;
        let ns = median_ns(
            || {
                let out = vm.call(
                    &c,
                    CallRequest { entry: "run", input: vec![], gas_limit: u64::MAX / 4, ctx: CallContext::default(), view: &mut MemState::default() },
                );
                gas = out.gas.used;
                assert!(out.result.is_ok(), "{:?}", out.result);
            },
            5,
            budget,
        );
        (ns, gas)
    };
    let iters = 1_000_000;
    let (ns, gas) = run(&workloads::integer_loop_wat(iters));
    let wasm_npg = r.row("wasm (integer)", &format!("{iters} iters"), gas, ns);
    let (with, gas_with) = run(&workloads::host_call_loop_wat(100_000, true));
    let (without, gas_without) = run(&workloads::host_call_loop_wat(100_000, false));
    let host_ns = (with - without) / 100_000.0;
    r.row("host_call", "per call", (gas_with - gas_without) / 100_000, host_ns);
    let (ns, gas) = run(&workloads::memcopy_loop_wat(1000, 1 << 19));
    r.row("memory.copy", "512 KiB x1000", gas, ns);

    // Transactions: deploying (validation + compilation) and a native transfer.
    tx_prices(r, &s);

    // Headline ratios.
    if !r.json {
        println!();
    }
    spread("tensor_matmul", &mm_npg, r);
    spread("kl_divergence", &kl_npg, r);
    if int8_macs_per_s > 0.0 {
        let d = 1024;
        let a: Vec<f32> = workloads::i8s(1, d * d).into_iter().map(f32::from).collect();
        let b: Vec<f32> = workloads::i8s(2, d * d).into_iter().map(f32::from).collect();
        let mut c = vec![0f32; d * d];
        let ns = median_ns(
            || unsafe { matrixmultiply::sgemm(d, d, d, 1.0, a.as_ptr(), d as isize, 1, b.as_ptr(), d as isize, 1, 0.0, c.as_mut_ptr(), d as isize, 1) },
            5,
            budget,
        );
        let f32_macs_per_s = (d * d * d) as f64 / ns * 1e9;
        r.note(
            "matmul_1024_int8_vs_sgemm",
            json!({"int8_gmac_s": int8_macs_per_s / 1e9, "sgemm_gmac_s": f32_macs_per_s / 1e9, "ratio": int8_macs_per_s / f32_macs_per_s}),
            format!(
                "1024³: int8 TENSOR_MATMUL {:.1} GMAC/s, matrixmultiply f32 sgemm {:.1} GMAC/s, ratio {:.2}x (target >= 4x)",
                int8_macs_per_s / 1e9,
                f32_macs_per_s / 1e9,
                int8_macs_per_s / f32_macs_per_s
            ),
        );
    }

    // Fuel metering overhead on integer code: the same module in bare wasmtime, fuel on vs off.
    let fuel_ratio = fuel_overhead(iters, budget);
    r.note("fuel_overhead_integer", json!(fuel_ratio), format!("fuel metering on integer code: {fuel_ratio:.3}x the time with fuel off (target <= 1.2x)"));

    call_latency(r, budget);

    // Measured over priced time: 1.0 means the price is exact at 0.1 ns per gas.
    r.note(
        "suggested",
        json!({"wasm_simple_scale": wasm_npg / NS_PER_GAS_TARGET, "host_call_gas": host_ns / NS_PER_GAS_TARGET,
               "softmax_scale": sm / NS_PER_GAS_TARGET, "norm_scale": nm / NS_PER_GAS_TARGET, "elementwise_scale": ew / NS_PER_GAS_TARGET}),
        format!(
            "measured/priced: wasm {:.2}, softmax {:.2}, norm {:.2}, add {:.2}; host call {:.1} ns = {:.0} gas",
            wasm_npg / NS_PER_GAS_TARGET,
            sm / NS_PER_GAS_TARGET,
            nm / NS_PER_GAS_TARGET,
            ew / NS_PER_GAS_TARGET,
            host_ns,
            host_ns / NS_PER_GAS_TARGET
        ),
    );
}

/// Time the integer loop in bare wasmtime engines with the AIVM config, fuel on and off.
fn fuel_overhead(iters: u32, budget: Duration) -> f64 {
    let wasm = wat::parse_str(workloads::integer_loop_wat(iters)).expect("wat");
    let time = |fuel: bool| {
        let mut cfg = aivm::config::engine_config(&Limits::default(), &GasSchedule::default());
        cfg.consume_fuel(fuel);
        let engine = wasmtime::Engine::new(&cfg).expect("engine");
        let module = wasmtime::Module::new(&engine, &wasm).expect("module");
        let linker = wasmtime::Linker::<()>::new(&engine);
        let pre = linker.instantiate_pre(&module).expect("pre");
        median_ns(
            || {
                let mut store = wasmtime::Store::new(&engine, ());
                // The AIVM config interrupts on epochs (query deadlines); no deadline here.
                store.set_epoch_deadline(u64::MAX);
                if fuel {
                    store.set_fuel(u64::MAX / 4).expect("fuel");
                }
                let inst = pre.instantiate(&mut store).expect("instance");
                inst.get_typed_func::<(), ()>(&mut store, "run").expect("run").call(&mut store, ()).expect("runs");
            },
            5,
            budget,
        )
    };
    time(true) / time(false)
}

/// A cached contract call, instantiation included.
fn call_latency(r: &Report, budget: Duration) {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let mut chain = aivm_testkit::TestChain::new();
    if let Ok(wasm) = aivm_testkit::contract_wasm("token") {
        let t = chain.deploy(&wasm).expect("token deploys");
        let input = aivm_testkit::encode(&"00".repeat(32));
        let ns = median_ns(|| assert!(chain.call_raw(&t, [0; 32], "balance_of", input.clone(), 10_000_000).result.is_ok()), 2000, budget);
        r.note(
            "call_token_balance_of_us",
            json!(ns / 1e3),
            format!("cached token.balance_of call, instantiate included: {:.2} µs median (target <= 5 µs)", ns / 1e3),
        );
    }
    let empty = vm.deploy(&wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run")))"#).expect("wat")).expect("deploys");
    let ns = median_ns(
        || drop(vm.call(&empty, CallRequest { entry: "run", input: vec![], gas_limit: 1000, ctx: CallContext::default(), view: &mut MemState::default() })),
        2000,
        budget,
    );
    r.note("call_empty_us", json!(ns / 1e3), format!("cached empty call, instantiate included: {:.2} µs median", ns / 1e3));
}

/// A fresh chain over RocksDB in a temporary directory with `accounts` funded workload
/// accounts; the caller drops the chain, then removes the directory.
fn scratch_chain(name: &str, accounts: u64, seed: u64) -> (std::path::PathBuf, aivm_runtime::Chain, aivm_runtime::workload::P2p) {
    use aivm_runtime::{Chain, ChainConfig, ChainVm};
    let dir = std::env::temp_dir().join(format!("aivm-gas-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let chain = Chain::open(&dir, ChainVm::new(vm), ChainConfig { chain_id: 1, fee_collector: [0xfe; 32] }).expect("open");
    let load = aivm_runtime::workload::P2p::new(1, accounts, seed);
    chain.init_genesis(&load.genesis(1 << 100)).expect("genesis");
    (dir, chain, load)
}

/// Deploy per wasm byte (fresh VM, so nothing is cached) and a native transfer: sequential
/// execution over RocksDB per transaction plus its signature check.
fn tx_prices(r: &mut Report, s: &GasSchedule) {
    use aivm_runtime::blockstm::execute_sequential;
    use aivm_runtime::workload::Asset;
    use aivm_runtime::BlockEnv;
    for name in ["token", "ai_demo", "verifier"] {
        let Ok(wasm) = aivm_testkit::contract_wasm(name) else {
            eprintln!("gas-bench: {name}.wasm not built (run `make contracts`); deploy not measured");
            continue;
        };
        let mut samples: Vec<f64> = (0..3)
            .map(|_| {
                let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
                let t = std::time::Instant::now();
                vm.deploy(&wasm).expect("deploys");
                t.elapsed().as_nanos() as f64
            })
            .collect();
        let ns = aivm_benches::timing::median(&mut samples);
        r.row("deploy", &format!("{name} {} B", wasm.len()), aivm::deploy_price(&wasm, &Limits::default(), s).expect("deploys"), ns);
    }

    let (dir, chain, mut load) = scratch_chain("transfers", 1000, 5);
    let n = 2000;
    let txs = load.block(n, Asset::Native);
    let size = txs[0].encode().len();
    let msg = txs[0].tx.signing_bytes();
    let verified: Vec<_> = aivm_runtime::tx::verify_batch(txs.clone(), 1).into_iter().map(|v| v.expect("valid")).collect();
    let reader = aivm_runtime::store::StoreReader::new(chain.store());
    let bvm = chain.vm().for_block(BlockEnv { height: 1, time_ms: 1 });
    let exec_ns = median_ns(|| drop(std::hint::black_box(execute_sequential(&bvm, &verified, &reader))), 5, Duration::from_millis(500)) / n as f64;
    let sig: &[u8; 64] = txs[0].signature.as_slice().try_into().expect("64 bytes");
    let sig_ns = median_ns(|| assert!(signature::ed25519_verify(&txs[0].tx.sender, &msg, sig)), 20, Duration::from_millis(200));
    let gas = s.tx.cost(size as u64).expect("fits") + s.transfer;
    r.row("native_transfer", &format!("{size} B, exec+sig"), gas, exec_ns + sig_ns);
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The worst ns per gas of every priced wasm operator (`aivm_benches::operators`): each case
/// is timed at two iteration counts and the difference taken, so instantiation and setup
/// cancel. Prints a row per case, the worst per operation, and the worst ratios against the
/// 3x (computation) and 10x (memory latency) bounds.
fn operator_sweep(r: &mut Report, quick: bool, only: Option<&str>) {
    use std::collections::BTreeMap;
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let cap = Limits::default().max_memory_pages;
    let uncapped = Vm::new(Limits { max_memory_pages: 256, ..Limits::default() }, GasSchedule::default()).expect("vm");
    let page_gas = GasSchedule::default().memory_page;
    let target_ns = if quick { 2e6 } else { 2e7 };
    let (mut worst_compute, mut worst_memory) = ((0.0f64, String::new()), (0.0f64, String::new()));
    let mut per_operation: BTreeMap<&str, (f64, String)> = BTreeMap::new();
    for case in aivm_benches::operators::cases(cap) {
        if only.is_some_and(|o| !case.operation.contains(o) && !case.shape.contains(o)) {
            continue;
        }
        let wasm = wat::parse_str(&case.wat).expect("operator wat parses");
        let over_cap = case.pages > cap;
        let vm = if over_cap { &uncapped } else { &vm };
        let contract = match vm.deploy(&wasm) {
            Ok(c) => c,
            Err(e) => {
                r.note("operator_refused", json!({"shape": case.shape, "error": e.to_string()}), format!("{}: refused: {e}", case.shape));
                continue;
            }
        };
        // (median ns, gas) of `run` with `k` iterations.
        let time = |k: u32, runs: usize| -> Result<(f64, u64), String> {
            let mut samples = Vec::with_capacity(runs);
            let mut gas = 0;
            for _ in 0..runs {
                let t = std::time::Instant::now();
                let out = vm.call(
                    &contract,
                    CallRequest {
                        entry: "run",
                        input: k.to_le_bytes().to_vec(),
                        gas_limit: u64::MAX / 4,
                        ctx: CallContext::default(),
                        view: &mut MemState::default(),
                    },
                );
                samples.push(t.elapsed().as_nanos() as f64);
                out.result.map_err(|e| e.to_string())?;
                gas = out.gas.used;
            }
            Ok((aivm_benches::timing::median(&mut samples), gas))
        };
        let measured = (|| {
            let (k1, k2) = match case.counts {
                Some(c) => c,
                None => {
                    let (t0, t1) = (time(0, 5)?.0, time(1024, 5)?.0);
                    let per = ((t1 - t0) / 1024.0).max(1.0);
                    let k = (target_ns / per).clamp(64.0, (1u64 << 24) as f64) as u32;
                    (k, 2 * k)
                }
            };
            let runs = if quick { 3 } else { 5 };
            let ((n1, g1), (n2, g2)) = (time(k1, runs)?, time(k2, runs)?);
            let pages = u64::from(k2 - k1) * case.pages_per_iteration;
            Ok::<_, String>((n2 - n1, g2.saturating_sub(g1) + pages * page_gas))
        })();
        let (ns, gas) = match measured {
            Ok(m) => m,
            Err(e) => {
                r.note("operator_failed", json!({"shape": case.shape, "error": e}), format!("{}: failed: {e}", case.shape));
                continue;
            }
        };
        let shape = if over_cap { format!("{} (over the {} KiB cap)", case.shape, cap * 64) } else { case.shape.clone() };
        let ratio = r.row(&format!("adv {}", case.operation), &shape, gas.max(1), ns) / NS_PER_GAS_TARGET;
        if over_cap {
            continue;
        }
        let worst = if case.memory_bound { &mut worst_memory } else { &mut worst_compute };
        if ratio > worst.0 {
            *worst = (ratio, case.shape.clone());
        }
        let w = per_operation.entry(case.operation).or_insert((0.0, String::new()));
        if ratio > w.0 {
            *w = (ratio, case.shape.clone());
        }
    }
    for (op, (ratio, shape)) in &per_operation {
        r.note("operator_worst", json!({"operation": op, "ratio": ratio, "shape": shape}), format!("worst {op}: {ratio:.1}x the target ({shape})"));
    }
    r.note(
        "operator_worst_ratio",
        json!({"compute": worst_compute.0, "compute_shape": worst_compute.1, "memory": worst_memory.0, "memory_shape": worst_memory.1}),
        format!(
            "worst computation {:.1}x the target (bound 3x: {}), worst memory-latency access {:.1}x (bound 10x: {})",
            worst_compute.0, worst_compute.1, worst_memory.0, worst_memory.1
        ),
    );
}

/// The most memory one call can hold (spec/gas.md, "Limits that bound what gas cannot"): a
/// call that fills the tensor arena with outer products, writes 8 MiB of state, emits ~1 MiB
/// of events and returns 512 KiB, measured as the growth of this process's peak resident
/// set (Linux: `clear_refs` resets the peak before the call).
fn peak_call_memory(r: &mut Report) {
    const HOG: &str = r#"(module
      (import "aivm" "tensor_alloc" (func $talloc (param i32 i32 i32 i32 i32) (result i32)))
      (import "aivm" "tensor_matmul" (func $mm (param i32 i32) (result i32)))
      (import "aivm" "storage_set" (func $set (param i32 i32 i32 i32)))
      (import "aivm" "emit_event" (func $ev (param i32 i32 i32 i32)))
      (import "aivm" "return_data" (func $ret (param i32 i32)))
      (memory (export "memory") 16)
      (data (i32.const 0) "\00\10\00\00\01\00\00\00\01\00\00\00\00\10\00\00\00\08\00\00\01\00\00\00")
      (func (export "run") (local $a i32) (local $b i32) (local $c i32) (local $i i32)
        (local.set $a (call $talloc (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 4096) (i32.const 4096)))
        (local.set $b (call $talloc (i32.const 0) (i32.const 8) (i32.const 2) (i32.const 4096) (i32.const 4096)))
        (local.set $c (call $talloc (i32.const 0) (i32.const 16) (i32.const 2) (i32.const 4096) (i32.const 2048)))
        ;; 3 x 64 MiB + 32 MiB of results: the arena's 256 MiB, less what is already held
        (drop (call $mm (local.get $a) (local.get $b)))
        (drop (call $mm (local.get $a) (local.get $b)))
        (drop (call $mm (local.get $a) (local.get $b)))
        (drop (call $mm (local.get $c) (local.get $b)))
        (block $w (loop $l
          (br_if $w (i32.ge_u (local.get $i) (i32.const 31)))
          (i32.store (i32.const 24) (local.get $i))
          (call $set (i32.const 24) (i32.const 4) (i32.const 65536) (i32.const 262144))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        (local.set $i (i32.const 0))
        (block $e (loop $l
          (br_if $e (i32.ge_u (local.get $i) (i32.const 15)))
          (call $ev (i32.const 24) (i32.const 4) (i32.const 65536) (i32.const 65536))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        (call $ret (i32.const 65536) (i32.const 524288))))"#;
    let status = |field: &str| -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    };
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let contract = vm.deploy(&wat::parse_str(HOG).expect("wat")).expect("deploys");
    let call = || {
        vm.call(&contract, CallRequest { entry: "run", input: vec![], gas_limit: u64::MAX / 4, ctx: CallContext::default(), view: &mut MemState::default() })
    };
    drop(call()); // warm: the pool slot, allocator arenas
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        r.note("peak_call_memory", json!(null), "peak call memory: cannot reset the peak (needs Linux /proc/self/clear_refs)".into());
        return;
    }
    let before = status("VmHWM:").unwrap_or(0);
    let out = call();
    let peak = status("VmHWM:").unwrap_or(0);
    let mib = peak.saturating_sub(before) as f64 / (1 << 20) as f64;
    r.note(
        "peak_call_memory_mib",
        json!({"mib": mib, "cap_mib": 268, "result": format!("{:?}", out.result.as_ref().map(Vec::len)), "gas": out.gas.used}),
        format!(
            "peak memory of one call built to reach the cap: {mib:.0} MiB above the process's resident set (computed cap ~268 MiB; result {:?}, {} gas)",
            out.result.as_ref().map(Vec::len),
            out.gas.used
        ),
    );
}

/// Storage writes against RocksDB: blocks of calls that each write `n` values of `size` random
/// bytes (random: RocksDB compresses), executed and committed (state root included), timed
/// against the gas the receipts charged. Many small writes stress the per-write price, few
/// large ones the per-byte price.
fn storage_writes(r: &mut Report, quick: bool) {
    use aivm_runtime::tx::Payload;
    const WRITER: &str = r#"(module
      (import "aivm" "input_read" (func $input (param i32)))
      (import "aivm" "storage_set" (func $set (param i32 i32 i32 i32)))
      (import "aivm" "storage_get" (func $get (param i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "run") (local $i i32) (local $n i32) (local $size i32)
        ;; input: an 8-byte nonce, n (u32), size (u32), then `size` bytes of value
        (call $input (i32.const 0))
        (local.set $n (i32.load (i32.const 8)))
        (local.set $size (i32.load (i32.const 12)))
        (block $d (loop $l
          (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
          (i32.store (i32.const 8) (local.get $i))
          (call $set (i32.const 0) (i32.const 12) (i32.const 16) (local.get $size))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l))))
      (func (export "read") (local $i i32) (local $n i32)
        ;; input: the nonce and n of an earlier `run`: reads back its n values
        (call $input (i32.const 0))
        (local.set $n (i32.load (i32.const 8)))
        (block $d (loop $l
          (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
          (i32.store (i32.const 8) (local.get $i))
          (if (i32.lt_s (call $get (i32.const 0) (i32.const 12)) (i32.const 0)) (then unreachable))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))))"#;
    let (dir, chain, mut load) = scratch_chain("storage", 64, 9);
    load.gas_limit = 2_000_000_000;
    let deploy = load.sign(0, Payload::Deploy { code: wat::parse_str(WRITER).expect("wat"), args: Vec::new() });
    let b = chain.execute(vec![deploy], 1).expect("deploy executes");
    let Some(writer) = b.record.receipts[0].contract_address.map(|a| a.into_array()) else {
        r.note("storage_failed", json!("deploy"), "storage: the writer did not deploy".into());
        return;
    };
    chain.commit(b).expect("commit");
    let mut rng = aivm_runtime::workload::Rng(7);
    let mut nonce = 0u64;
    let mut time = 2;
    let blocks = if quick { 1 } else { 3 };
    let mut written: Vec<(u64, u32, u32)> = Vec::new();
    for &(n, size, txs) in &[(1u32, 32u32, 400usize), (256, 32, 40), (1, 32_768, 200), (16, 32_768, 20)] {
        let mut samples = Vec::new();
        let mut gas = 0;
        for _ in 0..blocks {
            let batch: Vec<_> = (0..txs)
                .map(|i| {
                    nonce += 1;
                    written.push((nonce, n, size));
                    let mut args = nonce.to_le_bytes().to_vec();
                    args.extend_from_slice(&n.to_le_bytes());
                    args.extend_from_slice(&size.to_le_bytes());
                    args.extend((0..size).map(|_| rng.next_u64() as u8));
                    load.sign(i % 64, Payload::Call { contract: writer, entry: "run".into(), args, value: 0 })
                })
                .collect();
            time += 1;
            let t = std::time::Instant::now();
            let b = chain.execute(batch, time).expect("executes");
            if let Some(bad) = b.record.receipts.iter().find(|x| !x.is_success()) {
                r.note("storage_failed", json!(format!("{:?}", bad.status)), format!("storage: a write failed: {:?}", bad.status));
                return;
            }
            gas = b.record.receipts.iter().map(|x| x.gas_used).sum::<u64>();
            chain.commit(b).expect("commit");
            samples.push(t.elapsed().as_nanos() as f64);
        }
        let ns = aivm_benches::timing::median(&mut samples);
        r.row("adv storage_set", &format!("{txs} calls x {n} writes x {size} B"), gas, ns);
    }
    // Reading back what the many-small-writes and the large-values blocks wrote, in random
    // order (the keys are scattered across RocksDB's files).
    for &(n, size) in &[(256u32, 32u32), (16, 32_768)] {
        let mut keys: Vec<(u64, u32)> = written.iter().filter(|w| (w.1, w.2) == (n, size)).map(|w| (w.0, w.1)).collect();
        for i in (1..keys.len()).rev() {
            keys.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let batch: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, (nonce, n))| {
                let mut args = nonce.to_le_bytes().to_vec();
                args.extend_from_slice(&n.to_le_bytes());
                load.sign(i % 64, Payload::Call { contract: writer, entry: "read".into(), args, value: 0 })
            })
            .collect();
        time += 1;
        let t = std::time::Instant::now();
        let b = chain.execute(batch, time).expect("executes");
        let ns = t.elapsed().as_nanos() as f64;
        if let Some(bad) = b.record.receipts.iter().find(|x| !x.is_success()) {
            r.note("storage_failed", json!(format!("{:?}", bad.status)), format!("storage: a read failed: {:?}", bad.status));
            return;
        }
        let gas = b.record.receipts.iter().map(|x| x.gas_used).sum::<u64>();
        chain.commit(b).expect("commit");
        r.row("adv storage_get", &format!("{} calls x {n} reads x {size} B", keys.len()), gas, ns);
    }
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Drop every file under `dir` from the page cache (`posix_fadvise(DONTNEED)`; clean pages
/// only, so after a flush): the next reads go to the disk, as on a validator whose state is
/// larger than its memory.
fn evict_page_cache(dir: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if let Ok(f) = std::fs::File::open(e.path()) {
            // SAFETY: a valid open descriptor; advice only, no memory is touched.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// Storage reads of a state much larger than RocksDB's caches, with the files out of the page
/// cache: every read a random key (the worst case a contract can ask for), cold and then again
/// warm, against the reads' gas.
fn cold_storage_reads(r: &mut Report, quick: bool) {
    use aivm_runtime::tx::Payload;
    use aivm_runtime::{Chain, ChainConfig, ChainVm, StateKey, StateValue};
    const READER: &str = r#"(module
      (import "aivm" "input_len" (func $len (result i32)))
      (import "aivm" "input_read" (func $input (param i32)))
      (import "aivm" "storage_get" (func $get (param i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "scatter") (local $p i32) (local $end i32)
        ;; input: 8-byte keys, each read once
        (call $input (i32.const 0))
        (local.set $end (call $len))
        (block $d (loop $l
          (br_if $d (i32.ge_u (local.get $p) (local.get $end)))
          (drop (call $get (local.get $p) (i32.const 8)))
          (local.set $p (i32.add (local.get $p) (i32.const 8)))
          (br $l)))))"#;
    let (dir, chain, mut load) = scratch_chain("cold", 64, 11);
    load.gas_limit = 2_000_000_000;
    let deploy = load.sign(0, Payload::Deploy { code: wat::parse_str(READER).expect("wat"), args: Vec::new() });
    let b = chain.execute(vec![deploy], 1).expect("deploy executes");
    let Some(reader) = b.record.receipts[0].contract_address.map(|a| a.into_array()) else {
        r.note("storage_failed", json!("deploy"), "cold storage: the reader did not deploy".into());
        return;
    };
    chain.commit(b).expect("commit");
    // The state: `keys` entries of 32 random bytes under 8-byte keys, committed in blocks
    // through the state tree as a chain would.
    let keys: u64 = if quick { 200_000 } else { 4_000_000 };
    let mut rng = aivm_runtime::workload::Rng(13);
    let t = std::time::Instant::now();
    let mut time = 2;
    for start in (0..keys).step_by(100_000) {
        let writes = (start..(start + 100_000).min(keys)).map(|k| {
            let value: Vec<u8> = (0..32).map(|_| rng.next_u64() as u8).collect();
            (StateKey::Storage(reader, k.to_le_bytes().into()), StateValue::Bytes(value.into()))
        });
        time += 1;
        chain.commit_direct(writes, time).expect("fill");
    }
    let filled_s = t.elapsed().as_secs_f64();
    chain.store().flush().expect("flush");
    drop(chain);
    let size: u64 = std::fs::read_dir(&dir).map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0);
    r.note(
        "cold_storage_state",
        json!({"keys": keys, "bytes_on_disk": size, "fill_s": filled_s}),
        format!("cold storage: {keys} keys, {} MB on disk, filled in {filled_s:.0} s", size >> 20),
    );
    evict_page_cache(&dir);
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let chain = Chain::open(&dir, ChainVm::new(vm), ChainConfig { chain_id: 1, fee_collector: [0xfe; 32] }).expect("reopen");
    // 64 calls × 256 random keys: cold (just evicted), then the same keys again (warm).
    let picks: Vec<Vec<u8>> = (0..64).map(|_| (0..256).flat_map(|_| rng.below(keys).to_le_bytes()).collect()).collect();
    for pass in ["cold", "warm"] {
        let batch: Vec<_> = picks
            .iter()
            .enumerate()
            .map(|(i, args)| load.sign(i % 64, Payload::Call { contract: reader, entry: "scatter".into(), args: args.clone(), value: 0 }))
            .collect();
        time += 1;
        let t = std::time::Instant::now();
        let b = chain.execute(batch, time).expect("executes");
        let ns = t.elapsed().as_nanos() as f64;
        if let Some(bad) = b.record.receipts.iter().find(|x| !x.is_success()) {
            r.note("storage_failed", json!(format!("{:?}", bad.status)), format!("cold storage: a read failed: {:?}", bad.status));
            return;
        }
        let gas = b.record.receipts.iter().map(|x| x.gas_used).sum::<u64>();
        chain.commit(b).expect("commit");
        r.row("adv storage_get", &format!("{pass}: 64 calls x 256 random reads of {keys} keys"), gas, ns);
    }
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tensor opcodes at the shapes that are slowest per gas: outputs much larger than the work
/// (an outer product), the longest reduction (a GEMV over the largest k), and elementwise
/// kernels over the largest tensors the arena holds (memory bandwidth, not computation).
fn tensor_extremes(r: &mut Report, s: &GasSchedule, quick: bool) {
    let budget = Duration::from_millis(if quick { 50 } else { 300 });
    let mut worst: (f64, String) = (0.0, String::new());
    let mut note = |name: String, gas: u64, ns: f64, r: &mut Report| {
        let ratio = r.row("adv tensor", &name, gas, ns) / NS_PER_GAS_TARGET;
        if ratio > worst.0 {
            worst = (ratio, name);
        }
    };
    let big = if quick { 1usize << 20 } else { 1 << 24 };
    for &(m, k, n) in &[(2048usize, 1usize, 2048usize), (4096, 1, 4096), (1, 4096, 4096), (64, 1, 65536)] {
        if quick && m * n > 1 << 22 {
            continue;
        }
        let a = Tensor::from_i8(&[m, k], workloads::i8s(1, m * k)).expect("shape");
        let b = Tensor::from_i8(&[k, n], workloads::i8s(2, k * n)).expect("shape");
        let ns = median_ns(|| drop(std::hint::black_box(matmul::matmul(&a, &b))), 3, budget);
        note(format!("matmul {m}x{k}x{n}"), s.tensor_op(s.matmul_cost(m as u64, k as u64, n as u64), (m * n * 4) as u64).expect("fits"), ns, r);
    }
    let x8 = Tensor::from_i8(&[big], workloads::i8s(3, big)).expect("shape");
    let ns = median_ns(|| drop(std::hint::black_box(ops::dequantize(&x8, 1 << 10))), 3, budget);
    let gas = |price: aivm::gas::LinearGasCost, out_bytes: usize| s.tensor_op(price.cost(big as u64), out_bytes as u64).expect("fits");
    note(format!("dequantize {big}"), gas(s.elementwise, 4 * big), ns, r);
    let x = Tensor::from_i32(DType::Q16, &[big], workloads::q16_probs(5, big)).expect("shape");
    let y = Tensor::from_i32(DType::Q16, &[big], workloads::q16_probs(6, big)).expect("shape");
    let ns = median_ns(|| drop(std::hint::black_box(ops::add(&x, &y))), 3, budget);
    note(format!("add {big}"), gas(s.elementwise, 4 * big), ns, r);
    let ns = median_ns(|| drop(std::hint::black_box(ops::quantize(&x, 1 << 10))), 3, budget);
    note(format!("quantize {big}"), gas(s.quantize, big), ns, r);
    r.note(
        "tensor_worst_ratio",
        json!({"ratio": worst.0, "shape": worst.1}),
        format!("worst tensor opcode {:.1}x the target ({}; bound 3x)", worst.0, worst.1),
    );
}

/// One TEE_VERIFY measurement: an attestation, the time and policy it is checked under.
struct TeeCase {
    name: String,
    format: aivm::tee::Format,
    quote: Vec<u8>,
    collateral: Vec<u8>,
    now: u64,
    policy: aivm::tee::TeePolicy,
}

/// TEE_VERIFY per format on the real vectors (`aivm/tee/vectors/`), each at a time inside its
/// validity, and a DCAP collateral whose TCB-info issuer chain carries k extra copies of a
/// certificate (what an attacker controls): the slope is the per-certificate time.
/// MODEL_INFER: the committed run it performs (`run_committed`, as the host function does),
/// timed at several prompt lengths and `max_new` (best of three: a run is long enough that
/// the median of few adds nothing), against what it charges before running. Runs that stop
/// at end-of-turn pay for `max_new` anyway; the prompts here are token ids of ordinary text
/// that the model continues past `max_new`, so each row runs what it paid for. Then
/// FREIVALDS_VERIFY on one opening of every GEMM kind at the longest prompt, in its prompt
/// step and its first decode step.
fn model_opcodes(r: &mut Report, s: &GasSchedule, quick: bool) {
    use aivm::model::audit::{check_opening, check_response, respond, Challenge, OpenGemm, Response};
    use aivm::model::commit::run_committed;
    use aivm::model::{merkle, ArtifactStore, Engine, Options};
    let home = aivm::model::store::default_home();
    let Some(hash) =
        std::fs::read_to_string(home.join("default-model")).ok().and_then(|m| hex::decode(m.trim()).ok()).and_then(|v| <[u8; 32]>::try_from(v).ok())
    else {
        eprintln!("no converted model: run `make model` first");
        return;
    };
    let sku = match ArtifactStore::open(home.join("artifacts")).get(&hash) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let e = match Engine::new(sku, Options::cpu(1, matmul::SimdPath::detect())) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("{err}");
            return;
        }
    };
    let text = "The history of the river begins in the mountains, where snow melts each spring and runs down through forests, villages and fields. ".repeat(12);
    let all = e.tokenizer.encode(&text);
    let prompts: &[usize] = if quick { &[16, 128] } else { &[16, 64, 163, 256] };
    let news: &[usize] = if quick { &[1, 8] } else { &[1, 8, 32] };
    let mut longest = None;
    let mut short = None;
    for &p in prompts {
        let prompt = all[..p.min(all.len())].to_vec();
        for &n in news {
            let gas = e.infer_gas(prompt.len() as u64, n as u64, |m, a, t, w, k| s.model_infer_cost(m, a, t, w, k)).unwrap_or(u64::MAX);
            let mut best = f64::MAX;
            let mut ran = 0;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let Ok((receipt, trace)) = run_committed(&e, std::slice::from_ref(&prompt), n) else { return };
                best = best.min(t.elapsed().as_nanos() as f64);
                ran = receipt.outputs[0].len();
                if p == *prompts.last().unwrap_or(&0) && n == news[1.min(news.len() - 1)] {
                    longest = Some((receipt.clone(), trace.clone()));
                }
                if p == prompts[0] && n == *news.last().unwrap_or(&0) {
                    short = Some((receipt, trace));
                }
            }
            r.row("model_infer", &format!("prompt {p} + {n} ({ran} run)"), gas, best);
        }
    }
    let Some((receipt, trace)) = longest else { return };
    let leaves = trace.leaves();
    let rh = receipt.hash();
    let mut seen = std::collections::BTreeSet::new();
    // The first GEMM of each kind in the prompt step and in the first decode step (one-row
    // weight GEMMs, which the check recomputes).
    for (i, g) in trace.gemms().iter().enumerate() {
        if g.commit.step > 1 || !seen.insert((g.commit.step, g.commit.kind)) {
            continue;
        }
        let Some(data) = trace.data(i).map(|d| d.into_owned()) else { continue };
        let (m, k, n) = (data.commit.m as u64, data.commit.k as u64, data.commit.n as u64);
        let og = OpenGemm { index: i as u64, data, proof: merkle::prove(&leaves, i).unwrap_or_default() };
        let bytes = og.encode();
        let work = aivm::model::audit::opening_work(&og.data.commit, og.data.rhs.is_some()).unwrap_or(u64::MAX);
        let gas = s.freivalds.cost(work).and_then(|g| g.checked_add(s.blake3.cost(bytes.len() as u64)?)).unwrap_or(u64::MAX);
        let seed = [9u8; 32];
        let ns = median_ns(
            || {
                // What the host function does: decode the opening, then check it.
                let og = OpenGemm::decode(&bytes).expect("own encoding");
                std::hint::black_box(check_opening(&e.sku, &rh, &receipt.gemm_root, receipt.gemm_count, &seed, &og));
            },
            5,
            Duration::from_millis(if quick { 50 } else { 300 }),
        );
        let kind = aivm::model::GemmKind::from_code(g.commit.kind).map_or("?", |k| k.name());
        r.row("freivalds_verify", &format!("{kind} {m}x{k}x{n}"), gas, ns);
    }
    // Weight GEMMs of fewer rows (a market job's prompt is tens of tokens): the first rows of
    // each prompt-step weight GEMM, opened as the one leaf of their own root.
    for g in trace.gemms().iter().filter(|g| g.commit.step == 0 && g.commit.layer == 0) {
        let Some(kind) = aivm::model::GemmKind::from_code(g.commit.kind).filter(|k| k.is_weight() && *k != aivm::model::GemmKind::Logits) else { continue };
        let (k, n) = (g.commit.k as usize, g.commit.n as usize);
        for m in [8usize, 16, 64] {
            if m > g.commit.m as usize {
                continue;
            }
            let mut data = aivm::model::commit::GemmData {
                commit: aivm::model::commit::GemmCommit { m: m as u32, ..g.commit },
                x: g.x[..m * k].to_vec(),
                x_scales: g.x_scales[..m].to_vec(),
                y: g.y[..m * n].to_vec(),
                rhs: None,
            };
            data.commit = data.recommit();
            let root = data.commit.leaf();
            let og = OpenGemm { index: 0, data, proof: vec![] };
            let bytes = og.encode();
            let work = aivm::model::audit::opening_work(&og.data.commit, false).unwrap_or(u64::MAX);
            let gas = s.freivalds.cost(work).and_then(|g| g.checked_add(s.blake3.cost(bytes.len() as u64)?)).unwrap_or(u64::MAX);
            let seed = [9u8; 32];
            let ns = median_ns(
                || {
                    let og = OpenGemm::decode(&bytes).expect("own encoding");
                    std::hint::black_box(check_opening(&e.sku, &rh, &root, 1, &seed, &og));
                },
                5,
                Duration::from_millis(if quick { 50 } else { 300 }),
            );
            r.row("freivalds_verify", &format!("{} {m}x{k}x{n}", kind.name()), gas, ns);
        }
    }
    // A market answer's check (`spec/market.md` §6 step 5) under the default challenge:
    // what the chain charges for it (`check_gas` plus BLAKE3 over the answer; the
    // transaction's intrinsic gas pays for its bytes apart) against decoding and checking it.
    let params = aivm_runtime::market::MarketParams::default();
    for (name, run) in [("16+32", short), ("256+8", Some((receipt, trace)))] {
        let Some((receipt, trace)) = run else { continue };
        for seed in 0..if quick { 2u8 } else { 6 } {
            let ch = Challenge { seed: [seed; 32], gemms: params.challenge_gemms, rows: params.challenge_rows };
            let Ok(resp) = respond(&e.sku, &receipt, &trace, &ch) else { return };
            let bytes = resp.encode();
            let gas = aivm_runtime::market::jobs::check_gas(s, &receipt, &resp, aivm_runtime::market::jobs::AnswerKind::Challenge)
                .and_then(|g| g.checked_add(s.blake3.cost(bytes.len() as u64)?))
                .unwrap_or(u64::MAX);
            let ns = median_ns(
                || {
                    let resp = Response::decode(&bytes).expect("own encoding");
                    std::hint::black_box(check_response(&e.sku, &e.sku_hash, &receipt, &ch, &resp).is_ok());
                },
                5,
                Duration::from_millis(if quick { 50 } else { 200 }),
            );
            r.row("market_answer", &format!("{name} seed {seed}: {} B", bytes.len()), gas, ns);
        }
    }
}

fn tee_verify(r: &mut Report, s: &GasSchedule, budget: Duration) {
    use aivm::tee::{samples, verify, work, Format, TeePolicy};
    let lenient = TeePolicy { accepted_advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()], ..TeePolicy::default() };
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let devnet_policy =
        TeePolicy { formats: vec![Format::Devnet], devnet_signers: vec![key.verifying_key().to_bytes().to_vec().into()], ..TeePolicy::default() };
    let sgx_now = samples::dcap_window(samples::SGX_COLLATERAL).map_or(0, |w| w.0);
    let tdx_now = samples::dcap_window(samples::TDX_COLLATERAL).map_or(0, |w| w.0);
    let case = |name: &str, format, quote: &[u8], collateral: &[u8], now, policy: &TeePolicy| TeeCase {
        name: name.into(),
        format,
        quote: quote.to_vec(),
        collateral: collateral.to_vec(),
        now,
        policy: policy.clone(),
    };
    let mut bad_vcek = samples::SNP_VCEK.to_vec();
    bad_vcek[40] ^= 0xff;
    let mut cases = vec![
        case("sgx quote", Format::SgxDcap, samples::SGX_QUOTE, samples::SGX_COLLATERAL, sgx_now, &lenient),
        case("tdx quote", Format::TdxDcap, samples::TDX_QUOTE, samples::TDX_COLLATERAL, tdx_now, &lenient),
        case("snp report", Format::SevSnp, &samples::snp_report(), samples::SNP_VCEK, samples::SNP_NOW, &lenient),
        case("snp bad vcek", Format::SevSnp, &samples::snp_report(), &bad_vcek, samples::SNP_NOW, &lenient),
        case("devnet", Format::Devnet, &aivm::tee::devnet_quote(&key, &[1; 32], &[2; 64]), &[], 0, &devnet_policy),
    ];
    for k in [8usize, 32] {
        let mut c: serde_json::Value = serde_json::from_slice(samples::TDX_COLLATERAL).unwrap_or_default();
        let chain = c["tcb_info_issuer_chain"].as_str().unwrap_or_default().to_string();
        let first = chain.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap_or_default().to_string();
        c["tcb_info_issuer_chain"] = format!("{chain}{}", first.repeat(k)).into();
        let padded = serde_json::to_vec(&c).unwrap_or_default();
        cases.push(case(&format!("tdx +{k} certs"), Format::TdxDcap, samples::TDX_QUOTE, &padded, tdx_now, &lenient));
    }
    for c in &cases {
        let w = match work(c.format, &c.quote, &c.collateral) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("{}: {e}", c.name);
                continue;
            }
        };
        let ok = verify(c.format, &c.quote, &c.collateral, c.now, &c.policy).is_ok();
        let gas = s.tee_cost(c.format, w).unwrap_or(u64::MAX);
        let ns = median_ns(
            || {
                std::hint::black_box(verify(c.format, &c.quote, &c.collateral, c.now, &c.policy).is_ok());
            },
            5,
            budget,
        );
        r.row("tee_verify", &format!("{}{}", c.name, if ok { "" } else { " (refused)" }), gas, ns);
    }
    // Certificates are counted by their headers and paid for before parsing: a chain padded
    // with extra ones (the "+k certs" rows) is refused early and costs less than its price.
}

/// Deploy-time compile time of adversarial modules against their deploy price. Each module is
/// compiled once per fresh VM (no cache); a module the validator refuses is reported as such.
fn compile_bombs(r: &mut Report, s: &GasSchedule, quick: bool) {
    use aivm_benches::adversarial::*;
    // Within the limits (1 023 locals, 128 KiB bodies, nesting 256) at every size up to the
    // largest module a transaction can deploy, and past them (refused before compiling).
    let mut cases: Vec<(String, String)> = vec![("minimal".into(), minimal())];
    for &(f, l, rounds) in &[
        (1usize, 64usize, 64usize),
        (1, 16, 256),
        (1, 32, 128),
        (1, 128, 32),
        (1, 256, 16),
        (1, 1023, 1),
        (50, 1023, 1),
        (100, 511, 1),
        (200, 255, 1),
        (1, 1023, 12),
        (4, 1023, 12),
        (1, 4095, 4),
    ] {
        cases.push((format!("live_locals {f}x{l}x{rounds}"), live_locals(f, l, rounds)));
    }
    for &(f, d) in &[(1usize, 64usize), (40, 64), (1, 128), (40, 128), (1, 256), (20, 256), (90, 256), (1, 1000), (1, 10_000)] {
        cases.push((format!("nested_ifs {f}x{d}"), nested_ifs(f, d)));
    }
    for &(f, n) in &[(1usize, 256usize), (1, 512), (1, 1024), (1, 2048), (1, 4096), (20, 4096)] {
        cases.push((format!("flat_ifs {f}x{n}"), flat_ifs(f, n)));
    }
    for &(f, n) in &[(1usize, 1024usize), (1, 4096), (1, 16384)] {
        cases.push((format!("dense_br_ifs {f}x{n}"), dense_br_ifs(f, n)));
    }
    for &(l, n) in &[(64usize, 256usize), (64, 1024), (500, 256), (500, 1024), (1000, 64), (1000, 256), (1000, 512)] {
        cases.push((format!("live_across_ifs {l}x{n}"), live_across_ifs(l, n)));
    }
    for &b in &[100usize, 250] {
        cases.push((format!("br_table_fan {b}"), br_table_fan(b)));
    }
    for &(f, ops) in &[(1usize, 10_000usize), (50, 1000), (500, 100)] {
        cases.push((format!("straight_line {f}x{ops}"), straight_line(f, ops)));
    }
    if quick {
        cases.truncate(3);
    }
    let mut cases: Vec<(String, Vec<u8>)> = cases.into_iter().map(|(n, t)| (n, wat::parse_str(&t).expect("wat"))).collect();
    for name in ["token", "ai_demo", "verifier"] {
        if let Ok(wasm) = aivm_testkit::contract_wasm(name) {
            cases.push((format!("contract {name}"), wasm));
        }
    }
    // The shapes real contracts have, for choosing the limits.
    for name in ["token", "ai_demo", "verifier"] {
        if let Ok(wasm) = aivm_testkit::contract_wasm(name) {
            if let Ok(info) = aivm::validate::validate(&wasm, &Limits::default()) {
                r.note(
                    "contract_shape",
                    json!({"contract": name, "bytes": wasm.len(), "max_locals": info.max_locals, "max_function_bytes": info.max_function_bytes, "max_nesting": info.max_nesting, "max_branches": info.max_branches, "branches": info.branches, "functions": info.functions, "compile_work": info.compile_work}),
                    format!("{name}: {} B, {} functions, largest {} B, {} locals, nesting {}, {} branch points ({} in all), compile work {}", wasm.len(), info.functions, info.max_function_bytes, info.max_locals, info.max_nesting, info.max_branches, info.branches, info.compile_work),
                );
            }
        }
    }
    let mut worst: f64 = 0.0;
    for (name, wasm) in cases {
        let gas = aivm::deploy_price(&wasm, &Limits::default(), s).unwrap_or(0);
        // The median of three compilations, each on a fresh VM (nothing cached).
        let mut runs: Vec<(f64, Result<(), String>)> = (0..3)
            .map(|_| {
                let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
                let t = std::time::Instant::now();
                let outcome = vm.deploy(&wasm).map(drop).map_err(|e| e.to_string());
                (t.elapsed().as_nanos() as f64, outcome)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ns, outcome) = runs.swap_remove(1);
        match outcome {
            Ok(_) => worst = worst.max(r.row("deploy_adversarial", &format!("{name} {} B", wasm.len()), gas, ns) / NS_PER_GAS_TARGET),
            Err(e) => r.note(
                "deploy_refused",
                json!({"module": name, "bytes": wasm.len(), "ns": ns, "error": e.to_string()}),
                format!("{name}: {} B refused in {:.1} ms: {e}", wasm.len(), ns / 1e6),
            ),
        }
    }
    r.note("deploy_adversarial_worst_ratio", json!(worst), format!("worst compile time over deploy price: {worst:.1}x the target"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_flags_only_growth_past_the_threshold() {
        let dir = std::env::temp_dir().join(format!("gas-bench-baseline-{}", std::process::id()));
        std::fs::write(&dir, "{\"opcode\":\"a\",\"size\":\"1\",\"gas\":1,\"median_ns\":1,\"ns_per_gas\":0.1}\n{\"summary\":\"x\",\"value\":1}\n{\"opcode\":\"b\",\"size\":\"2\",\"ns_per_gas\":0.1}\n").unwrap();
        let base = read_baseline(&dir).unwrap();
        assert_eq!(base.len(), 2);
        let rows = vec![
            json!({"opcode": "a", "size": "1", "ns_per_gas": 0.14}),
            json!({"opcode": "b", "size": "2", "ns_per_gas": 0.2}),
            json!({"opcode": "c", "size": "3", "ns_per_gas": 9.0}),
        ];
        assert_eq!(regressions(&base, &rows, 1.5), 1, "b grew 2x; a 1.4x; c has no baseline");
        std::fs::write(&dir, "not json\n").unwrap();
        assert!(read_baseline(&dir).is_err());
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn the_plot_is_an_svg_with_every_opcode() {
        let path = std::env::temp_dir().join(format!("gas-bench-plot-{}.svg", std::process::id()));
        let rows: Vec<_> = [("tensor_matmul", 0.08), ("tensor_matmul", 0.11), ("kl_divergence", 0.05)]
            .iter()
            .map(|(op, npg)| json!({"opcode": op, "size": "s", "ns_per_gas": npg}))
            .collect();
        plot(&path, &rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("tensor_matmul") && svg.contains("kl_divergence") && svg.contains("target"));
        let _ = std::fs::remove_file(&path);
    }
}
