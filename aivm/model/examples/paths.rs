//! Prompt and decode speed of the real model on every SIMD path this CPU runs (scalar, AVX2,
//! AVX-512 VNNI), one engine thread:
//! `cargo run --release -p aivm-model --example paths` (needs `make model`).
//!
//! A CPU without VNNI (AMD before Zen 4, Intel before Cascade Lake / Ice Lake) runs the AVX2
//! rows; this machine runs them all, so their ratios are measured side by side. Prompt: the
//! same 512 tokens as `infer --vs-llamacpp`, best of five; decode: 64 new tokens after a
//! 64-token prompt, best of two. Outputs are checked equal across paths.
use aivm_model::{Engine, NoTrace, Options};
use aivm_tensor::matmul::SimdPath;
use std::time::Instant;

fn main() {
    aivm_model::heap::keep_freed_memory();
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    let mut outputs = Vec::new();
    for &path in SimdPath::available() {
        let e = Engine::new(sku.clone(), Options::cpu(1, path)).expect("cpu");
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(512 / 8 + 8);
        let mut prompt = e.tokenizer.encode(&text);
        prompt.truncate(512);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            e.generate(std::slice::from_ref(&prompt), 1, &mut NoTrace).expect("prompt");
            best = best.min(t.elapsed().as_secs_f64());
        }
        let short = prompt[..64].to_vec();
        let (mut per_token, mut out) = (f64::MAX, Vec::new());
        for _ in 0..2 {
            let t = Instant::now();
            out = e.generate(std::slice::from_ref(&short), 65, &mut NoTrace).expect("decode").remove(0);
            per_token = per_token.min(t.elapsed().as_secs_f64() / out.len().max(1) as f64);
        }
        println!("{path:?}: prompt {} tokens {:.0} tok/s; decode {:.0} tok/s", prompt.len(), prompt.len() as f64 / best, 1.0 / per_token);
        outputs.push(out);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "every path gives the same tokens");
}
