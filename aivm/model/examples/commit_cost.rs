//! The worker's commitment cost, split into the prompt step and the decode steps:
//! `cargo run --release -p aivm-model --example commit_cost -- [threads]` (needs `make model`).
//!
//! Best of three plain and committed runs of the `infer` bench's prompt (one forward step, then
//! 64 new tokens): wall time, and the process's CPU time over every thread (steadier than wall
//! time on a shared machine, and what the commitment costs a worker whatever its core count).
//! With `TABLE=1` it also recomputes every GEMM's commitment from scratch and prints bytes and
//! time per (prompt/decode, GEMM kind): where the hashing goes.
use aivm_model::{Engine, NoTrace, Options};
use aivm_tensor::matmul::SimdPath;
use std::time::Instant;

/// CPU seconds this process has used, every thread (user and system).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    let threads: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let e = Engine::new(sku, Options::cpu(threads, SimdPath::detect())).expect("cpu");
    let long = "Explain, in a few sentences, why the sky is blue, how clouds form, and what causes rain. ".repeat(6);
    let prompt = e.tokenizer.encode(&e.tokenizer.chat_prompt(&long));
    aivm_model::heap::keep_freed_memory();
    let (mut plain, mut committed, mut prompt_plain, mut prompt_committed) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let (mut cpu_plain, mut cpu_committed) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        e.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace).unwrap();
        prompt_plain = prompt_plain.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let r = aivm_model::commit::run_committed(&e, std::slice::from_ref(&prompt), 1).unwrap();
        prompt_committed = prompt_committed.min(t.elapsed().as_secs_f64());
        drop(r);
        let (t, c) = (Instant::now(), cpu_seconds());
        e.generate(std::slice::from_ref(&prompt), 64, &mut NoTrace).unwrap();
        plain = plain.min(t.elapsed().as_secs_f64());
        cpu_plain = cpu_plain.min(cpu_seconds() - c);
        let (t, c) = (Instant::now(), cpu_seconds());
        let r = aivm_model::commit::run_committed(&e, std::slice::from_ref(&prompt), 64).unwrap();
        committed = committed.min(t.elapsed().as_secs_f64());
        cpu_committed = cpu_committed.min(cpu_seconds() - c);
        drop(r);
    }
    let (_, trace) = aivm_model::commit::run_committed(&e, std::slice::from_ref(&prompt), if std::env::var_os("TABLE").is_some() { 64 } else { 1 }).unwrap();
    /// Per (decode?, kind): GEMMs, x bytes, y bytes, rhs bytes, recommit seconds.
    type Row = (usize, usize, usize, usize, f64);
    let mut by: std::collections::BTreeMap<(bool, u8), Row> = Default::default();
    for i in 0..trace.gemms().len() {
        let g = trace.data(i).unwrap();
        let t = Instant::now();
        let c = g.recommit();
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(c, g.commit);
        let en = by.entry((g.commit.step > 0, g.commit.kind)).or_default();
        en.0 += 1;
        en.1 += g.x.len();
        en.2 += g.y.len() * 4;
        en.3 += g.rhs.as_ref().map_or(0, Vec::len);
        en.4 += dt;
    }
    for ((dec, kind), (n, x, y, r, dt)) in by {
        println!(
            "decode {dec} kind {kind}: {n} gemms, x {:.1} MB, y {:.1} MB, rhs {:.1} MB, recommit {:.1} ms",
            x as f64 / 1e6,
            y as f64 / 1e6,
            r as f64 / 1e6,
            dt * 1e3
        );
    }
    println!(
        "threads {threads}: CPU time of the 64-token run, best of three: plain {:.1} ms committed {:.1} ms (+{:.0} %)",
        cpu_plain * 1e3,
        cpu_committed * 1e3,
        (cpu_committed / cpu_plain - 1.0) * 100.0
    );
    println!(
        "threads {threads}: prompt {} tokens plain {:.1} ms committed {:.1} ms (+{:.0} %); 64 new: plain {:.1} ms committed {:.1} ms (+{:.0} %); decode part +{:.0} %",
        prompt.len(),
        prompt_plain * 1e3,
        prompt_committed * 1e3,
        (prompt_committed / prompt_plain - 1.0) * 100.0,
        plain * 1e3,
        committed * 1e3,
        (committed / plain - 1.0) * 100.0,
        ((committed - prompt_committed) / (plain - prompt_plain) - 1.0) * 100.0
    );
}
