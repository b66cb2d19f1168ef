//! End-to-end: `aivm model run` and `aivm model verify` on the real model. `make test`
//! fetches and converts it first (and sets AIVM_REQUIRE_MODEL); without it these skip.

mod common;

use common::{aivm, have_model};
use serde_json::Value;

#[test]
fn run_is_reproducible_and_its_receipt_verifies() {
    if !have_model() {
        return;
    }
    let q = "What is the capital of France?";
    let mut hashes = Vec::new();
    for threads in ["1", "2"] {
        let (code, out, err) = aivm(&["model", "run", "--prompt", q, "--max-tokens", "10", "--json", "--threads", threads]);
        assert_eq!(code, 0, "{err}");
        let j: Value = serde_json::from_str(&out).unwrap();
        assert!(j["text"].as_str().unwrap().contains("Paris"), "{j}");
        assert!(j["prompt_tok_s"].as_f64().unwrap() > 0.0);
        hashes.push(j["output_hash"].as_str().unwrap().to_string());
    }
    assert_eq!(hashes[0], hashes[1], "output hash differs between 1 and 2 threads");

    let dir = std::env::temp_dir().join(format!("aivm-model-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = dir.join("receipt.json");
    let (code, _, err) = aivm(&["model", "run", "--prompt", q, "--max-tokens", "6", "--receipt", r.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = aivm(&["model", "verify", r.to_str().unwrap(), "--gemms", "40", "--rows", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["valid"], true);

    // A receipt claiming another output is rejected (exit 2, with the reason).
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap();
    rec["outputs"][0][0] = Value::from(rec["outputs"][0][0].as_u64().unwrap() + 1);
    std::fs::write(&r, serde_json::to_vec(&rec).unwrap()).unwrap();
    let (code, out, _) = aivm(&["model", "verify", r.to_str().unwrap(), "--gemms", "4", "--rows", "1"]);
    assert_eq!(code, 2, "{out}");
    // A corrupt trace is an error, not a crash.
    std::fs::write(dir.join("receipt.json.trace"), b"garbage").unwrap();
    let (code, _, err) = aivm(&["model", "verify", r.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
