//! End-to-end: a newcomer's contract project outside the workspace — `aivm new`, `aivm build`
//! (reproducible from two paths), `aivm inspect` (entry points and types), `aivm call` with
//! arguments checked against the schema.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-contract")
}

/// `aivm build --json` in `project`, with the project's own target directory (a newcomer's
/// setting; `CARGO_TARGET_DIR` from the test environment would share one between the paths).
fn build(project: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_aivm")).args(["build", "--json"]).current_dir(project).env_remove("CARGO_TARGET_DIR").output().expect("runs");
    assert!(out.status.success(), "aivm build in {}: {}", project.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn new_build_inspect_and_call_a_project_reproducibly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (one, two) = (tmp.path().join("one/hello"), tmp.path().join("somewhere/much/deeper/hello"));
    for dir in [&one, &two] {
        let (code, out, err) = common::aivm(&["new", "hello", "--path", dir.to_str().unwrap(), "--sdk", sdk().to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        for f in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "tests/contract.rs", "README.md", ".cargo/config.toml"] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
    }
    let (code, _, err) = common::aivm(&["new", "hello", "--path", one.to_str().unwrap(), "--sdk", sdk().to_str().unwrap()]);
    assert!(code == 2 && err.contains("already exists"), "never overwrites: {err}");
    assert_eq!(common::aivm(&["new", "9lives", "--path", tmp.path().join("x").to_str().unwrap()]).0, 2, "not a crate name");

    // Same source from two checkout paths: the same bytes.
    let (a, b) = (build(&one), build(&two));
    let hash = |v: &Value| v["built"][0]["code_hash"].as_str().expect("hash").to_string();
    assert_eq!(hash(&a), hash(&b), "{a}\n{b}");
    assert!(a["remapped"].as_array().is_some_and(|r| r.iter().any(|m| m["to"] == "/src/aivm-sdk-0.1.0")), "the SDK outside the project is remapped: {a}");
    let wasm = a["built"][0]["wasm"].as_str().expect("path").to_string();
    let bytes = std::fs::read(&wasm).expect("wasm");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(tmp.path().to_str().unwrap()) && !text.contains("/.cargo/registry"), "no machine paths in the wasm");

    // Its entry points and their argument types.
    let (code, out, err) = common::aivm(&["inspect", &wasm]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["code_hash"].as_str(), Some(hash(&a).as_str()));
    let entries: Vec<&str> = report["abi"]["entries"].as_array().expect("entries").iter().filter_map(|e| e["entry"].as_str()).collect();
    assert_eq!(entries, ["count", "greet", "instantiate"]);
    assert!(report["abi"]["types"].as_array().is_some_and(|t| t.iter().any(|t| t["type"] == "Greet" && t["fields"][0][0] == "name")), "{report}");

    // Arguments are checked against the schema; the contract runs with good ones.
    let (code, out, _) = common::aivm(&["call", &wasm, "greet", "--args", r#"{"nam": "ada"}"#]);
    assert!(code == 2 && out.contains("unknown field `nam`"), "{out}");
    let (code, out, _) = common::aivm(&["call", &wasm, "greet", "--args", r#"{"name": "ada"}"#]);
    let j: Value = serde_json::from_str(&out).expect("json");
    assert_eq!((code, &j["output"]), (0, &Value::from("hello, ada")), "{j}");
    let (code, out, _) = common::aivm(&["call", &wasm, "greet", "--args", r#"{"nam": "ada"}"#, "--no-check"]);
    assert_eq!(code, 1, "unchecked, the contract itself refuses it: {out}");
}
