//! The receipt hash of a committed run of the real model (a 300-token prompt and a short one
//! batched, 8 new tokens) on 1 and 2 threads: `cargo run --release -p aivm-model --example
//! receipt_hash`. A change meant to keep outputs and commitments bit-identical must print the
//! same hash before and after.
use aivm_model::{ArtifactStore, Engine, Options};
use aivm_tensor::matmul::SimdPath;

fn main() {
    let home = aivm_model::store::default_home();
    let marker = std::fs::read_to_string(home.join("default-model")).expect("make model");
    let mut hash = [0u8; 32];
    hex::decode_to_slice(marker.trim(), &mut hash).expect("marker");
    let sku = ArtifactStore::open(home.join("artifacts")).get(&hash).expect("sku");
    for &path in SimdPath::available() {
        for threads in [1, 2] {
            let e = Engine::new(sku.clone(), Options::cpu(threads, path)).expect("cpu");
            let long = e.tokenizer.encode(&"Explain, in a few sentences, why the sky is blue and what causes rain. ".repeat(20));
            let prompts = vec![long[..300.min(long.len())].to_vec(), e.tokenizer.encode(&e.tokenizer.chat_prompt("What is the capital of France?"))];
            let (r, _) = aivm_model::commit::run_committed(&e, &prompts, 8).expect("run");
            println!("{path:?} threads {threads}: receipt {}", hex::encode(r.hash()));
        }
    }
}
