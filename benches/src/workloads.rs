//! Deterministic inputs and small wasm programs used by the benchmarks.

/// Pseudo-random int8 values from a 64-bit LCG (same bytes on every machine).
pub use aivm::tensor::lcg_bytes as i8s;

/// A Q16 probability-like vector with strictly positive entries.
pub fn q16_probs(seed: u64, len: usize) -> Vec<i32> {
    i8s(seed, len).into_iter().map(|v| (v as i32 + 129) * 64).collect()
}

/// Integer-heavy loop: `n` iterations of an LCG and xor-shift mix. `run` takes no
/// arguments and returns nothing, and the module has no imports, so it runs both in the
/// AIVM and in a bare wasmtime engine (the fuel-off baseline).
pub fn integer_loop_wat(n: u32) -> String {
    format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "run")
            (local $i i32) (local $x i64)
            (local.set $x (i64.const 12345))
            (loop $l
              (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
              (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 29))))
              (local.set $x (i64.add (local.get $x) (i64.rotl (local.get $x) (i64.const 7))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
            (i64.store (i32.const 0) (local.get $x))))"#
    )
}

/// `n` calls of the cheapest host function, to price the host-call boundary.
pub fn host_call_loop_wat(n: u32, with_call: bool) -> String {
    let call = if with_call { "(drop (call $h))" } else { "" };
    format!(
        r#"(module
          (import "aivm" "block_height" (func $h (result i64)))
          (memory (export "memory") 1)
          (func (export "run")
            (local $i i32)
            (loop $l
              {call}
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))))"#
    )
}

/// `memory.copy` of `bytes` bytes (at most half the 1 MiB memory cap), `n` times.
pub fn memcopy_loop_wat(n: u32, bytes: u32) -> String {
    format!(
        r#"(module
          (memory (export "memory") 16)
          (func (export "run")
            (local $i i32)
            (loop $l
              (memory.copy (i32.const {bytes}) (i32.const 0) (i32.const {bytes}))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))))"#
    )
}

/// The weight-GEMM shapes of one transformer layer of a real model architecture.
pub struct Arch {
    pub d: usize,
    pub kv: usize,
    pub ffn: usize,
}

impl Arch {
    /// `(kind, n outputs, k inputs)` of each weight GEMM of one layer.
    pub fn weight_gemms(&self) -> [(&'static str, usize, usize); 7] {
        let (d, kv, f) = (self.d, self.kv, self.ffn);
        [("q", d, d), ("k", kv, d), ("v", kv, d), ("o", d, d), ("gate", f, d), ("up", f, d), ("down", d, f)]
    }
}

/// `llama3-8b`, `qwen2.5-7b` or `smollm2`.
pub fn arch(name: &str) -> Option<Arch> {
    Some(match name {
        "llama3-8b" => Arch { d: 4096, kv: 1024, ffn: 14336 },
        "qwen2.5-7b" => Arch { d: 3584, kv: 512, ffn: 18944 },
        "smollm2" => Arch { d: 576, kv: 192, ffn: 1536 },
        _ => return None,
    })
}
