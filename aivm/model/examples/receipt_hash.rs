//! The receipt hash of a committed run of the real model (a 300-token prompt and a short one
//! batched, 8 new tokens) on 1 and 2 threads: `cargo run --release -p aivm-model --example
//! receipt_hash`. A change meant to keep outputs and commitments bit-identical must print the
//! same hash before and after. The plain run's tokens are checked against the committed
//! run's (a plain run with two threads takes the team's paths).
use aivm_model::{Engine, Options};
use aivm_tensor::matmul::SimdPath;

/// Hashes every GEMM's id and operands as the engine records them (on the pool: a plain
/// run's sink).
struct HashAll(blake3::Hasher);

impl aivm_model::GemmSink for HashAll {
    fn gemm(&mut self, r: &aivm_model::GemmRecord<'_>) {
        let h = &mut self.0;
        for v in [r.id.step, r.id.layer, r.id.kind as u32, r.id.seq, r.id.head, r.m as u32, r.k as u32, r.n as u32] {
            h.update(&v.to_le_bytes());
        }
        h.update(bytemuck::cast_slice(r.x));
        r.x_scales.iter().for_each(|s| {
            h.update(&s.m.to_le_bytes());
            h.update(&s.e.to_le_bytes());
        });
        h.update(bytemuck::cast_slice(r.y));
        h.update(bytemuck::cast_slice(r.rhs.unwrap_or(&[])));
    }
}

fn main() {
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    for &path in SimdPath::available() {
        for threads in [1, 2] {
            let e = Engine::new(sku.clone(), Options::cpu(threads, path)).expect("cpu");
            let long = e.tokenizer.encode(&"Explain, in a few sentences, why the sky is blue and what causes rain. ".repeat(20));
            let prompts = vec![long[..300.min(long.len())].to_vec(), e.tokenizer.encode(&e.tokenizer.chat_prompt("What is the capital of France?"))];
            let (r, _) = aivm_model::commit::run_committed(&e, &prompts, 8).expect("run");
            // A plain run (with several threads, its steps on the pool as a team) must give
            // the committed run's tokens; its every GEMM operand is hashed too.
            let mut all = HashAll(blake3::Hasher::new());
            let plain = e.generate(&prompts, 8, &mut all).expect("run");
            assert_eq!(plain, r.outputs, "{path:?} threads {threads}: plain and committed runs agree");
            println!("{path:?} threads {threads}: receipt {} operands {}", hex::encode(r.hash()), all.0.finalize().to_hex());
        }
    }
}
