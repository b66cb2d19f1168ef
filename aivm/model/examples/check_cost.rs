//! What a market answer's check costs against the committed inference it checks, and where it
//! goes: `cargo run --release -p aivm-model --example check_cost -- [max_new] [seeds]` (needs
//! `make model`).
//!
//! For each of the market bench's four prompts: one committed run (all threads, as a worker
//! runs it), then `seeds` challenges of the market's default size (8 GEMMs, 1 row chain), each
//! answered, encoded, decoded and checked as the chain does. It prints the median check, its
//! parts (the GEMMs alone, the row chain alone), the answer's bytes split the same way, and
//! the worker's time to make the answer (`respond` and its encoding).
use aivm_model::audit::{check_response, prepare_checks, respond, Challenge, Response};
use aivm_model::{Engine, Options};
use std::time::Instant;

const PROMPTS: &[&str] =
    &["What is the capital of France?", "Name three primary colors.", "Write one sentence about the ocean.", "Who wrote Romeo and Juliet?"];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let max_new: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let seeds: u32 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    aivm_model::heap::keep_freed_memory();
    let e = Engine::new(sku, Options::default()).expect("cpu");
    prepare_checks(&e.sku);
    println!(
        "{:<38} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "prompt", "tokens", "infer ms", "check ms", "check %", "gemms ms", "rows ms", "gemm bytes", "row bytes", "answer ms"
    );
    for p in PROMPTS {
        let prompt = e.tokenizer.encode(&e.tokenizer.chat_prompt(p));
        let t = Instant::now();
        let (receipt, trace) = aivm_model::commit::run_committed(&e, std::slice::from_ref(&prompt), max_new).expect("run");
        let infer = t.elapsed().as_secs_f64();
        let (mut all, mut gemms, mut rows, mut gb, mut rb, mut answer) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        for s in 0..seeds {
            let seed = *blake3::hash(&s.to_le_bytes()).as_bytes();
            for (which, ch) in
                [(0, Challenge { seed, gemms: 8, rows: 1 }), (1, Challenge { seed, gemms: 8, rows: 0 }), (2, Challenge { seed, gemms: 1, rows: 1 })]
            {
                let t = Instant::now();
                let bytes = respond(&e.sku, &receipt, &trace, &ch).expect("respond").encode();
                if which == 0 {
                    answer.push(t.elapsed().as_secs_f64());
                }
                let t = Instant::now();
                let resp = Response::decode(&bytes).expect("decode");
                check_response(&e.sku, &e.sku_hash, &receipt, &ch, &resp).expect("honest answer");
                let dt = t.elapsed().as_secs_f64();
                match which {
                    0 => all.push(dt),
                    1 => {
                        gemms.push(dt);
                        gb.push(bytes.len() as f64);
                    }
                    _ => {
                        rows.push(dt);
                        rb.push(bytes.len() as f64);
                    }
                }
            }
        }
        if std::env::var_os("LOOP").is_some() {
            // For a profile: the default challenge's check alone, over and over.
            let answers: Vec<(Challenge, Vec<u8>)> = (0..seeds)
                .map(|s| {
                    let ch = Challenge { seed: *blake3::hash(&s.to_le_bytes()).as_bytes(), gemms: 8, rows: 1 };
                    (ch, respond(&e.sku, &receipt, &trace, &ch).expect("respond").encode())
                })
                .collect();
            let t = Instant::now();
            let reps: u32 = std::env::var("LOOP").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
            for _ in 0..reps {
                for (ch, bytes) in &answers {
                    let resp = Response::decode(bytes).expect("decode");
                    check_response(&e.sku, &e.sku_hash, &receipt, ch, &resp).expect("honest answer");
                }
            }
            println!("looped: {:.2} ms per check", t.elapsed().as_secs_f64() * 1e3 / (reps * seeds) as f64);
            return;
        }
        let check = median(all);
        println!(
            "{:<38} {:>6} {:>9.1} {:>9.2} {:>7.2}% {:>9.2} {:>9.2} {:>10.0} {:>10.0} {:>10.2}",
            p,
            prompt.len() + receipt.outputs[0].len(),
            infer * 1e3,
            check * 1e3,
            100.0 * check / infer,
            median(gemms) * 1e3,
            median(rows) * 1e3,
            median(gb),
            median(rb),
            median(answer) * 1e3
        );
    }
}
