//! How often one job's challenge, at the market's default size (8 GEMMs, 1 row chain), catches
//! a cheat confined to one GEMM — one element of the middle GEMM's output flipped, as `aivm
//! worker run --cheat flip` does: `cargo run --release -p aivm-model --example flip_odds --
//! [challenges]` (needs `make model`). The odds are about 8 in the run's GEMM count; opening
//! every GEMM would catch it always, at more than the inference's cost (spec/market.md §8).
use aivm_model::audit::{check_response, prepare_checks, respond, Challenge};
use aivm_model::{merkle, Engine, Options};

fn main() {
    let sku = aivm_model::store::default_model().expect("model");
    let e = Engine::new(sku, Options::default()).expect("cpu");
    prepare_checks(&e.sku);
    let seeds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    for p in ["What is the capital of France?", "Who wrote Romeo and Juliet?"] {
        let prompt = e.tokenizer.encode(&e.tokenizer.chat_prompt(p));
        let (mut r, mut t) = aivm_model::commit::run_committed(&e, std::slice::from_ref(&prompt), 16).expect("run");
        // As `aivm worker run --cheat flip`: one element of the middle GEMM.
        let i = t.gemms().len() / 2;
        t.gemms_mut()[i].y[0] ^= 1;
        t.recommit();
        r.gemm_root = merkle::root(&t.leaves());
        let mut caught = 0;
        for s in 0..seeds {
            let ch = Challenge { seed: *blake3::hash(&s.to_le_bytes()).as_bytes(), gemms: 8, rows: 1 };
            let bytes = respond(&e.sku, &r, &t, &ch).expect("respond").encode();
            let resp = aivm_model::audit::Response::decode(&bytes).expect("decode");
            if check_response(&e.sku, &e.sku_hash, &r, &ch, &resp).is_err() {
                caught += 1;
            }
        }
        println!("{p}: {} GEMMs, flip in GEMM {i}; caught by {caught} of {seeds} challenges", t.gemms().len());
    }
}
