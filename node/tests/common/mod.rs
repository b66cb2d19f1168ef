//! Helpers shared by the end-to-end tests of the `aivm` binary.
#![allow(dead_code)] // each test file uses some of these

use std::process::Command;

/// Run `aivm` with `env` set (and the backend variables of the calling environment cleared);
/// returns the exit code, stdout and stderr.
pub fn aivm_env(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aivm"));
    c.args(args);
    for k in ["AIVM_BACKEND", "AIVM_BACKEND_FALLBACK", "AIVM_OPENCL_DEVICE", "AIVM_OPENCL_MEM_LIMIT", "AIVM_OPENCL_GEMM"] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    let out = c.output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

pub fn aivm(args: &[&str]) -> (i32, String, String) {
    aivm_env(&[], args)
}

/// Whether the converted SmolLM2 is there; with AIVM_REQUIRE_MODEL (as `make test` sets) its
/// absence fails the test instead of skipping it.
pub fn have_model() -> bool {
    let home = aivm::model::store::default_home();
    let ok = home.join("default-model").is_file();
    assert!(ok || std::env::var_os("AIVM_REQUIRE_MODEL").is_none(), "no converted model under {}", home.display());
    ok
}
