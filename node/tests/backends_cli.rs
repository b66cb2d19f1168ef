//! End-to-end: the `aivm` binary on the OpenCL backend. The same contract calls and the same
//! model run give the CPU's bits; a machine without OpenCL gets a clear error, and the CPU
//! only when fallback is configured. `make test` installs pocl and sets AIVM_REQUIRE_OPENCL=1,
//! so in CI nothing here skips.

mod common;

use common::{aivm_env as aivm, have_model};
use serde_json::Value;

/// An ICD vendor directory with no drivers in it: the loader finds no platform.
const NO_OPENCL: (&str, &str) = ("OCL_ICD_VENDORS", "/nonexistent-aivm-icd-dir");

fn have_opencl() -> bool {
    let (code, out, err) = aivm(&[], &["devices", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    let ok = j["opencl"].as_array().is_some_and(|d| !d.is_empty());
    if !ok {
        assert!(std::env::var("AIVM_REQUIRE_OPENCL").map_or(true, |v| v != "1"), "AIVM_REQUIRE_OPENCL=1 but no OpenCL device: {j}");
        eprintln!("SKIPPED: no OpenCL device on this machine ({})", j["opencl_note"]);
    }
    ok
}

fn run_json(env: &[(&str, &str)], extra: &[&str]) -> Value {
    let mut args = vec!["model", "run", "--prompt", "What is the capital of France?", "--max-tokens", "12", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = aivm(env, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn opencl_model_run_gives_the_cpu_output_hash() {
    if !have_opencl() || !have_model() {
        return;
    }
    let cpu = run_json(&[], &[]);
    let dev = run_json(&[("AIVM_BACKEND", "opencl")], &[]);
    assert!(dev["backend"].as_str().unwrap().starts_with("opencl"), "{dev}");
    assert_eq!(dev["output_hash"], cpu["output_hash"]);
    assert_eq!(dev["tokens"], cpu["tokens"]);
    // The flag overrides the environment.
    let flag = run_json(&[("AIVM_BACKEND", "cpu")], &["--backend", "opencl"]);
    assert_eq!(flag["output_hash"], cpu["output_hash"]);
    assert!(flag["backend"].as_str().unwrap().starts_with("opencl"));
}

#[test]
fn contract_tensor_opcodes_on_opencl_match_the_cpu() {
    if !have_opencl() {
        return;
    }
    let wasm = aivm_testkit::contracts_dir().join("ai_demo.wasm");
    assert!(wasm.exists(), "{} missing: run `make contracts`", wasm.display());
    let w = wasm.to_str().unwrap();
    let (m, k, n) = (3usize, 21usize, 7usize);
    let a: Vec<i32> = (0..m * k).map(|i| ((i * 37 + 11) % 255) as i32 - 127).collect();
    let b: Vec<i32> = (0..k * n).map(|i| ((i * 91 + 5) % 255) as i32 - 127).collect();
    let reference: Vec<i32> = (0..m * n).map(|i| 3000 + (i as i32 * 997) % 9000).collect();
    let infer = serde_json::json!({"m": m, "k": k, "n": n, "a": a, "b": b, "scale_q16": 512}).to_string();
    let set = serde_json::json!({"probs": reference}).to_string();
    let mut results = Vec::new();
    // The third run's device cannot hold any operand (a 16-byte buffer limit): inside the VM a
    // failing device never decides the call, each operation reruns on the CPU.
    for (i, limit) in ["", "", "16"].into_iter().enumerate() {
        let backend = if i == 0 { "cpu" } else { "opencl" };
        let dir = std::env::temp_dir().join(format!("aivm-backend-call-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.to_str().unwrap();
        let env = [("AIVM_BACKEND", backend), ("AIVM_OPENCL_MEM_LIMIT", limit)];
        let (code, out, err) = aivm(&env, &["call", w, "set_reference", "--args", &set, "--state", d]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = aivm(&env, &["call", w, "infer", "--args", &infer, "--state", d]);
        assert_eq!(code, 0, "{out}{err}");
        let j: Value = serde_json::from_str(&out).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        results.push((j["output"].clone(), j["gas_used"].clone(), j["gas_by_op"].clone()));
    }
    assert!(results[0].0["probs"].as_array().is_some_and(|p| p.len() == m * n), "{:?}", results[0]);
    assert_eq!(results[0], results[1], "output and gas must not depend on the backend");
    assert_eq!(results[0], results[2], "a failing device must not change a call's outcome");
}

#[test]
fn no_platform_is_a_clear_error_and_fallback_is_opt_in() {
    let (code, out, _) = aivm(&[NO_OPENCL], &["devices"]);
    assert_eq!(code, 0);
    assert!(out.contains("opencl   none: no OpenCL platform"), "{out}");
    // Where the model's weights live (2 MiB pages or not) is said too.
    assert!(out.contains("memory   model weights on "), "{out}");
    let (code, out, _) = aivm(&[NO_OPENCL], &["devices", "--json"]);
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["opencl"], serde_json::json!([]));
    assert!(j.get("weights_on_huge_pages").is_some(), "{j}");
    // A bad backend name is a usage error.
    let (code, _, err) = aivm(&[("AIVM_BACKEND", "tpu")], &["model", "run", "--prompt", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown backend"), "{err}");
    if !have_model() {
        return;
    }
    let (code, _, err) = aivm(&[NO_OPENCL, ("AIVM_BACKEND", "opencl")], &["model", "run", "--prompt", "Hi", "--max-tokens", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("no OpenCL platform"), "{err}");
    // Configured fallback: the CPU runs it, and says so.
    let cpu = run_json(&[], &[]);
    let (code, out, err) = aivm(
        &[NO_OPENCL, ("AIVM_BACKEND", "opencl"), ("AIVM_BACKEND_FALLBACK", "cpu")],
        &["model", "run", "--prompt", "What is the capital of France?", "--max-tokens", "12", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("falling back to the CPU"), "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert!(j["backend"].as_str().unwrap().starts_with("cpu"));
    assert_eq!(j["output_hash"], cpu["output_hash"]);
}

#[test]
fn device_out_of_memory_is_an_error_unless_fallback() {
    if !have_opencl() || !have_model() {
        return;
    }
    let limit = ("AIVM_OPENCL_MEM_LIMIT", "1048576"); // 1 MiB: the 28 MB output matrix does not fit
    let (code, _, err) = aivm(&[("AIVM_BACKEND", "opencl"), limit], &["model", "run", "--prompt", "Hi", "--max-tokens", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("device out of memory"), "{err}");
    let cpu = run_json(&[], &[]);
    let (code, out, err) = aivm(
        &[("AIVM_BACKEND", "opencl"), limit, ("AIVM_BACKEND_FALLBACK", "cpu")],
        &["model", "run", "--prompt", "What is the capital of France?", "--max-tokens", "12", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["output_hash"], cpu["output_hash"]);
}
