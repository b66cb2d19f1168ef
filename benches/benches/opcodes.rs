//! Criterion benches for the priced opcodes and the contract call path.
//! `cargo bench -p aivm-benches`

use aivm::gas::GasSchedule;
use aivm::tensor::{matmul, ops, DType, Tensor};
use aivm::verify::kl;
use aivm::{CallContext, CallRequest, Limits, MemState, Vm};
use aivm_benches::workloads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("tensor_matmul");
    g.sample_size(10);
    for &(m, k, n) in &[(64, 64, 64), (256, 256, 256), (1024, 1024, 1024), (1, 576, 1536), (512, 576, 1536)] {
        let a = workloads::i8s(1, m * k);
        let b = workloads::i8s(2, k * n);
        g.throughput(Throughput::Elements((m * k * n) as u64));
        for &path in matmul::SimdPath::available() {
            g.bench_with_input(BenchmarkId::new(format!("{path:?}"), format!("{m}x{k}x{n}")), &(), |bch, _| {
                bch.iter(|| matmul::matmul_i8_on(path, &a, &b, m, k, n))
            });
        }
        if (m, k, n) == (1024, 1024, 1024) {
            let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            let mut cf = vec![0f32; m * n];
            g.bench_function(BenchmarkId::new("matrixmultiply_sgemm_f32", "1024x1024x1024"), |bch| {
                bch.iter(|| unsafe {
                    matrixmultiply::sgemm(m, k, n, 1.0, af.as_ptr(), k as isize, 1, bf.as_ptr(), n as isize, 1, 0.0, cf.as_mut_ptr(), n as isize, 1)
                })
            });
        }
    }
    g.finish();
}

fn bench_kl_and_rows(c: &mut Criterion) {
    let mut g = c.benchmark_group("kl_divergence");
    for e in [4, 10, 16, 20] {
        let n = 1usize << e;
        let (p, q) = (workloads::q16_probs(3, n), workloads::q16_probs(4, n));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("2^{e}")), |b| b.iter(|| kl::kl_divergence_q16(&p, &q)));
    }
    g.finish();
    let x = Tensor::from_i32(DType::Q16, &[64, 1024], workloads::q16_probs(5, 1 << 16)).expect("shape");
    c.bench_function("tensor_softmax/64x1024", |b| b.iter(|| ops::softmax(&x)));
    c.bench_function("tensor_norm_rms/64x1024", |b| b.iter(|| ops::norm(&x, ops::NormKind::Rms, 1)));
}

fn bench_calls(c: &mut Criterion) {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let empty = vm.deploy(&wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run")))"#).expect("wat")).expect("deploy");
    c.bench_function("call/empty_instantiate_included", |b| {
        b.iter(|| vm.call(&empty, CallRequest { entry: "run", input: vec![], gas_limit: 1000, ctx: CallContext::default(), view: &mut MemState::default() }))
    });
    if let Ok(wasm) = aivm_testkit::contract_wasm("token") {
        let mut chain = aivm_testkit::TestChain::new();
        let t = chain.deploy(&wasm).expect("token");
        let input = aivm_testkit::encode(&"00".repeat(32));
        c.bench_function("call/token_balance_of", |b| b.iter(|| chain.call_raw(&t, [0; 32], "balance_of", input.clone(), 10_000_000)));
    }
    let wasm = wat::parse_str(workloads::integer_loop_wat(100_000)).expect("wat");
    let mut g = c.benchmark_group("integer_loop_100k");
    for fuel in [true, false] {
        let mut cfg = aivm::config::engine_config(&Limits::default(), &GasSchedule::default());
        cfg.consume_fuel(fuel);
        let engine = wasmtime::Engine::new(&cfg).expect("engine");
        let module = wasmtime::Module::new(&engine, &wasm).expect("module");
        let pre = wasmtime::Linker::<()>::new(&engine).instantiate_pre(&module).expect("pre");
        g.bench_function(if fuel { "fuel_on" } else { "fuel_off" }, |b| {
            b.iter(|| {
                let mut store = wasmtime::Store::new(&engine, ());
                if fuel {
                    store.set_fuel(u64::MAX / 4).expect("fuel");
                }
                let inst = pre.instantiate(&mut store).expect("instance");
                inst.get_typed_func::<(), ()>(&mut store, "run").expect("run").call(&mut store, ()).expect("runs")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_kl_and_rows, bench_calls);
criterion_main!(benches);
