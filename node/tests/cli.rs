//! End-to-end: the real `aivm` binary on real contracts.

use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

fn contract(name: &str) -> PathBuf {
    let p = aivm_testkit::contracts_dir().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} missing: run `make contracts`", p.display());
    p
}

/// Run `aivm call`, check it was not killed by a signal, and parse its JSON.
fn aivm_call(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_aivm")).arg("call").args(args).output().expect("runs");
    assert_eq!(out.status.signal(), None, "killed by a signal: {}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn token_calls_persist_in_a_state_dir() {
    let dir = std::env::temp_dir().join(format!("aivm-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (w, d) = (contract("token"), dir.to_str().unwrap().to_string());
    let w = w.to_str().unwrap();
    let (code, j) = aivm_call(&[w, "instantiate", "--args", r#"{"supply": 500}"#, "--state", &d]);
    assert_eq!((code, j["status"].as_str()), (0, Some("ok")), "{j}");
    assert_eq!(j["output"], 500);
    // Each successful call commits one block to the RocksDB chain state (genesis is 0).
    assert_eq!(j["height"], 1, "{j}");
    assert_eq!(j["state_root"].as_str().map(str::len), Some(64), "{j}");
    assert!(j["gas_used"].as_u64().unwrap() > 0);
    assert!(j["gas_by_op"]["storage_set"]["calls"].as_u64().unwrap() >= 2, "{j}");
    assert!(j["gas_by_op"]["wasm"]["gas"].as_u64().unwrap() > 0);

    let bob = "b0".repeat(32);
    let (code, j) = aivm_call(&[w, "transfer", "--args", &format!(r#"{{"to":"{bob}","amount":120}}"#), "--state", &d]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["events"][0]["topic"], "transfer");
    assert_eq!(j["height"], 2, "{j}");
    let (_, j) = aivm_call(&[w, "balance_of", "--args", &format!(r#""{bob}""#), "--state", &d]);
    assert_eq!(j["output"], 120);

    // A failing call exits 1, reports why, and changes nothing.
    let (code, j) = aivm_call(&[w, "transfer", "--args", &format!(r#"{{"to":"{bob}","amount":100000}}"#), "--state", &d]);
    assert_eq!((code, j["status"].as_str(), j["error"]["kind"].as_str()), (1, Some("error"), Some("revert")), "{j}");
    let (_, j) = aivm_call(&[w, "balance_of", "--args", &format!(r#""{bob}""#), "--state", &d]);
    assert_eq!(j["output"], 120);

    // A corrupt database is a clear error, not a crash.
    std::fs::write(dir.join("db").join("CURRENT"), "garbage").unwrap();
    let (code, j) = aivm_call(&[w, "balance_of", "--args", &format!(r#""{bob}""#), "--state", &d]);
    assert_eq!(code, 2);
    assert!(j["error"]["message"].as_str().unwrap().contains("opening the state database"), "{j}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_contracts_end_in_json_errors_not_signals() {
    let dir = std::env::temp_dir().join(format!("aivm-cli-wat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("loop", r#"(module (memory (export "memory") 1) (func (export "run") (loop $l (br $l))))"#, "out_of_gas"),
        ("recurse", r#"(module (memory (export "memory") 1) (func $f (export "run") (call $f)))"#, "trap"),
        ("oob", r#"(module (memory (export "memory") 1) (func (export "run") (drop (i32.load (i32.const -4)))))"#, "trap"),
        ("import", r#"(module (import "env" "x" (func)) (memory (export "memory") 1) (func (export "run")))"#, "validation"),
    ];
    for (name, src, kind) in cases {
        let p = dir.join(format!("{name}.wat"));
        std::fs::write(&p, src).unwrap();
        let (code, j) = aivm_call(&[p.to_str().unwrap(), "run", "--gas-limit", "50000000"]);
        assert_eq!((code, j["error"]["kind"].as_str()), (1, Some(kind)), "{name}: {j}");
    }
    let (code, j) = aivm_call(&["/nonexistent.wasm", "run"]);
    assert_eq!(code, 2, "{j}");
    let (code, j) = aivm_call(&[contract("token").to_str().unwrap(), "instantiate", "--args", "{bad json"]);
    assert_eq!(code, 2, "{j}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Through `aivm call`: a loop then a trap reports the whole gas limit, for every trap kind.
#[test]
fn a_trap_after_a_loop_reports_the_whole_gas_limit() {
    let dir = std::env::temp_dir().join(format!("aivm-cli-traps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in aivm_testkit::hostile::TRAPS {
        let path = dir.join(format!("{name}.wat"));
        std::fs::write(&path, aivm_testkit::hostile::loop_then_wat(200_000, body)).unwrap();
        let (code, j) = aivm_call(&[path.to_str().unwrap(), "run", "--gas-limit", "5000000"]);
        assert_eq!((code, j["status"].as_str()), (1, Some("error")), "{name}: {j}");
        assert_eq!(j["error"]["kind"], "trap", "{name}: {j}");
        assert_eq!(j["gas_used"], 5_000_000, "{name}: {j}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `aivm inspect`: a real contract deploys (exit 0) and the report shows its entries, memory
/// gas and stack depth; a module the chain refuses exits 1 with the reason; an unreadable file 2.
#[test]
fn inspect_reports_what_the_chain_makes_of_a_contract() {
    let inspect = |path: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_aivm")).args(["inspect", path]).output().expect("runs");
        (out.status.code().unwrap_or(-1), serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null))
    };
    let token = contract("token");
    let (code, j) = inspect(token.to_str().unwrap());
    assert_eq!((code, &j["deploys"]), (0, &Value::Bool(true)), "{j}");
    assert!(j["entries"].as_array().unwrap().iter().any(|e| e == "transfer"), "{j}");
    // `#[entry_point]` recorded every entry's types; each recorded entry is exported.
    let abi = j["abi"]["entries"].as_array().unwrap();
    assert!(abi.iter().any(|e| *e == serde_json::json!({"entry": "transfer", "args": "Transfer", "returns": "Result<(),ContractError>"})), "{j}");
    assert!(abi.iter().any(|e| e["entry"] == "total_supply" && e["args"] == "()"), "{j}");
    assert_eq!(abi.len(), j["entries"].as_array().unwrap().len(), "{j}");
    // `#[derive(Schema)]` recorded the argument types' fields.
    let types = j["abi"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| *t == serde_json::json!({"type": "Transfer", "fields": [["to", "Address"], ["amount", "u64"]]})), "{j}");
    assert_eq!(j["memory"]["gas_per_call"], j["memory"]["initial_pages"].as_u64().unwrap() * 30_000, "{j}");
    assert!(j["stack"]["frames_of_the_largest"].as_u64().unwrap() >= 10, "{j}");

    let dir = std::env::temp_dir().join(format!("aivm-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("start.wat");
    std::fs::write(&bad, r#"(module (memory (export "memory") 1) (func $s) (start $s) (func (export "run")))"#).unwrap();
    let (code, j) = inspect(bad.to_str().unwrap());
    assert_eq!((code, &j["deploys"]), (1, &Value::Bool(false)), "{j}");
    assert!(j["error"].as_str().unwrap().contains("start function"), "{j}");
    let big = dir.join("big.wat");
    std::fs::write(&big, r#"(module (memory (export "memory") 17) (func (export "run")))"#).unwrap();
    let (code, j) = inspect(big.to_str().unwrap());
    assert_eq!(code, 1, "{j}");
    assert!(j["error"].as_str().unwrap().contains("initial memory pages"), "{j}");
    let (code, _) = inspect(dir.join("missing.wasm").to_str().unwrap());
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The converted SmolLM2's hash, if `make model` ran (with AIVM_REQUIRE_MODEL, as `make test`
/// sets, its absence fails the test).
fn model_hash() -> Option<String> {
    let marker = aivm::model::store::default_home().join("default-model");
    let hash = std::fs::read_to_string(&marker).ok().map(|s| s.trim().to_string());
    assert!(hash.is_some() || std::env::var_os("AIVM_REQUIRE_MODEL").is_none(), "no converted model ({})", marker.display());
    hash
}

/// `aivm call` gives contracts the node's models (MODEL_LOAD no longer returns -1 outside the
/// testkit), and MODEL_INFER's gas is charged before any work: a huge prompt or `max_new`
/// under a small gas limit runs out of gas at once, and `max_new` past the limit is refused.
#[test]
fn aivm_call_runs_models_and_charges_inference_first() {
    let Some(hash) = model_hash() else { return };
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap()).collect();
    let w = contract("ai_demo");
    let w = w.to_str().unwrap();
    let ask = |prompt: &str, max_new: u32| serde_json::json!({"model": bytes, "prompt": prompt, "max_new": max_new}).to_string();
    let (code, j) = aivm_call(&[w, "ask", "--args", &ask("What is the capital of France?", 6)]);
    assert_eq!((code, j["status"].as_str()), (0, Some("ok")), "{j}");
    assert!(!j["output"]["tokens"].as_array().unwrap().is_empty(), "{j}");
    assert!(j["gas_by_op"]["model_infer"]["gas"].as_u64().unwrap() > 0, "{j}");

    let huge = "why ".repeat(15_000);
    for (prompt, max_new, gas) in [(huge.as_str(), 8, "50000000"), ("Hello", 256, "5000000")] {
        let start = std::time::Instant::now();
        let (code, j) = aivm_call(&[w, "ask", "--args", &ask(prompt, max_new), "--gas-limit", gas]);
        assert_eq!((code, j["error"]["kind"].as_str()), (1, Some("out_of_gas")), "{j}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "ran {:?}: work before payment?", start.elapsed());
    }
    let (code, j) = aivm_call(&[w, "ask", "--args", &ask("Hello", 1_000_000)]);
    assert_eq!(code, 1, "{j}");
    assert!(j["error"]["message"].as_str().unwrap().contains("max_new"), "{j}");
}
