//! How a 512-token prompt step and decoding scale from one engine thread to two:
//! `cargo run --release -p aivm-model --example scaling -- [reps]` (needs `make model`).
//!
//! This machine's neighbours change its speed from second to second, so the two engines
//! alternate step by step and the ratio is taken per pair (median over the pairs), which
//! cancels drift that is slower than a step; best-of speeds are printed too.
use aivm_model::{Engine, NoTrace, Options};
use aivm_tensor::matmul::SimdPath;
use std::time::Instant;

/// CPU seconds the calling thread has used (user and system).
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    aivm_model::heap::keep_freed_memory();
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let engines = [1, 2].map(|t| Engine::new(sku.clone(), Options::cpu(t, SimdPath::detect())).expect("cpu"));
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(512 / 8 + 8);
    let mut prompt = engines[0].tokenizer.encode(&text);
    prompt.truncate(512);
    let (mut best, mut ratios, mut cpu1) = ([f64::MAX; 2], Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut t = [0.0; 2];
        for (i, e) in engines.iter().enumerate() {
            let (s, c) = (Instant::now(), thread_cpu_seconds());
            e.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace).expect("prompt");
            t[i] = s.elapsed().as_secs_f64();
            best[i] = best[i].min(t[i]);
            if i == 0 {
                // One engine thread runs the step on this thread: its CPU time, which a
                // neighbour's load disturbs less than wall time.
                cpu1.push(thread_cpu_seconds() - c);
            }
        }
        ratios.push(t[0] / t[1]);
    }
    ratios.sort_by(f64::total_cmp);
    cpu1.sort_by(f64::total_cmp);
    println!("prompt 512, 1 thread: CPU time per step median {:.1} ms, best {:.1} ms", cpu1[reps / 2] * 1e3, cpu1[0] * 1e3);
    println!(
        "prompt 512: 1 thread best {:.0} tok/s, 2 threads best {:.0} tok/s; 2t/1t per pair: median {:.2}, quartiles {:.2}-{:.2}",
        512.0 / best[0],
        512.0 / best[1],
        ratios[reps / 2],
        ratios[reps / 4],
        ratios[3 * reps / 4]
    );
    // Decode: 32 new tokens after the 512-token prompt (as `infer --vs-llamacpp`), timed from
    // the first decode step, paired the same way.
    let (mut best, mut ratios) = ([f64::MAX; 2], Vec::new());
    for _ in 0..reps.div_ceil(4) {
        let mut t = [0.0; 2];
        for (i, e) in engines.iter().enumerate() {
            let mut clock = DecodeClock(None);
            let n = e.generate(std::slice::from_ref(&prompt), 33, &mut clock).expect("decode")[0].len();
            let start = clock.0.expect("a decode step ran");
            t[i] = start.elapsed().as_secs_f64() / n.saturating_sub(1).max(1) as f64;
            best[i] = best[i].min(t[i]);
        }
        ratios.push(t[0] / t[1]);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "decode 32 after 512: 1 thread best {:.0} tok/s, 2 threads best {:.0} tok/s; 2t/1t per pair: median {:.2}",
        1.0 / best[0],
        1.0 / best[1],
        ratios[ratios.len() / 2]
    );
}

/// Notes when the first one-row GEMM (the first decode step) starts.
struct DecodeClock(Option<Instant>);

impl aivm_model::GemmSink for DecodeClock {
    fn gemm(&mut self, r: &aivm_model::GemmRecord<'_>) {
        if r.m == 1 && self.0.is_none() {
            self.0 = Some(Instant::now());
        }
    }
}
