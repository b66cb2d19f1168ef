//! A worker's committed runs of several jobs, one after another against one batched pass
//! committed per job (`commit::run_committed_each`):
//! `cargo run --release -p aivm-model --example batch_commit -- [jobs] [max_new] [rounds]`
//! (needs `make model`). The two alternate round by round (this machine's speed drifts);
//! each job's receipt is checked equal both ways. One engine thread, as `aivm worker run`
//! has by default, the commitments on a thread of their own.
use aivm_model::commit::{run_committed, run_committed_each};
use aivm_model::{Engine, Options};
use aivm_tensor::matmul::SimdPath;
use std::time::Instant;

const QUESTIONS: [&str; 8] = [
    "What is the capital of France?",
    "Name three primary colors.",
    "Write a short poem about the ocean.",
    "Who wrote Romeo and Juliet?",
    "How many legs does a spider have?",
    "What is photosynthesis?",
    "Give me a synonym for happy.",
    "Why is the sky blue?",
];

fn main() {
    aivm_model::heap::keep_freed_memory();
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (jobs, max_new, rounds) = (arg(1, 8).clamp(1, 64), arg(2, 16), arg(3, 3));
    let sku = aivm_model::store::default_model().expect("the converted model (`make model`)");
    let e = Engine::new(sku, Options::cpu(1, SimdPath::detect())).expect("cpu");
    let prompts: Vec<Vec<u32>> = (0..jobs).map(|i| e.tokenizer.encode(&e.tokenizer.chat_prompt(QUESTIONS[i % QUESTIONS.len()]))).collect();
    let (mut solo, mut batched) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let one: Vec<_> = prompts.iter().map(|p| run_committed(&e, std::slice::from_ref(p), max_new).expect("run").0).collect();
        solo.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let each = run_committed_each(&e, &prompts, max_new).expect("run");
        batched.push(t.elapsed().as_secs_f64());
        assert!(each.iter().zip(&one).all(|((r, _), o)| r == o), "each job's receipt is its solo run's");
    }
    let ratios: Vec<f64> = solo.iter().zip(&batched).map(|(s, b)| s / b).collect();
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
    println!("{jobs} jobs, max_new {max_new}: one after another {} s; one batched pass {} s; ratio {}", fmt(&solo), fmt(&batched), fmt(&ratios));
}
