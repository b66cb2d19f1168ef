//! Contracts written to hurt, for tests of metering and isolation across the crates.

/// Every wasm trap kind a contract can reach, as `(name, body that traps when run)`.
pub const TRAPS: [(&str, &str); 9] = [
    ("div_by_zero", "(drop (i32.div_s (i32.const 1) (i32.const 0)))"),
    ("rem_by_zero", "(drop (i64.rem_u (i64.const 1) (i64.const 0)))"),
    ("oob_load", "(drop (i32.load (i32.const 70000)))"),
    ("oob_store", "(i64.store (i32.const 65535) (i64.const 1))"),
    ("oob_copy", "(memory.copy (i32.const 0) (i32.const 65000) (i32.const 1000))"),
    ("int_overflow", "(drop (i32.trunc_f64_s (f64.const 1e300)))"),
    ("nan_to_int", "(drop (i32.trunc_f32_u (f32.const nan)))"),
    ("unreachable", "unreachable"),
    ("bad_indirect", "(call_indirect (i32.const 5))"),
];

/// WAT of a contract whose entry `run` loops `iterations` times (about 6 gas each), then runs
/// `trap` in the same function (where the fuel counter is not written back).
pub fn loop_then_wat(iterations: u32, trap: &str) -> String {
    format!(
        r#"(module
             (memory (export "memory") 1)
             (table 1 funcref)
             (func (export "run") (local $i i32)
               (local.set $i (i32.const {iterations}))
               (loop $l
                 (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                 (br_if $l (local.get $i)))
               {trap}))"#
    )
}

/// [`loop_then_wat`] compiled to wasm.
pub fn loop_then(iterations: u32, trap: &str) -> Vec<u8> {
    // The template is valid WAT for every body in [`TRAPS`].
    wat::parse_str(loop_then_wat(iterations, trap)).unwrap_or_default()
}
