//! Hostile and broken contracts: every one ends in a clear, typed error, leaves no state
//! change behind, and the process (this test) keeps running.

use aivm::error::{HostError, ValidationError, VmError};
use aivm::tensor::TensorError;
use aivm::{CallContext, CallOutcome, CallRequest, GasSchedule, Limits, MemState, Vm};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn vm() -> &'static Vm {
    static VM: OnceLock<Vm> = OnceLock::new();
    VM.get_or_init(|| Vm::new(Limits::default(), GasSchedule::default()).expect("vm"))
}

/// Wrap function bodies in a module with the common imports and a memory.
fn module(body: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
            (import "aivm" "return_data" (func $ret (param i32 i32)))
            (import "aivm" "storage_set" (func $set (param i32 i32 i32 i32)))
            (import "aivm" "tensor_alloc" (func $talloc (param i32 i32 i32 i32 i32) (result i32)))
            (import "aivm" "tensor_free" (func $tfree (param i32)))
            (import "aivm" "tensor_matmul" (func $tmatmul (param i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 0) "key-value")
            {body})"#
    );
    wat::parse_str(src).expect("test wat parses")
}

fn call(wasm: &[u8], entry: &str, gas: u64) -> CallOutcome {
    let c = vm().deploy(wasm).expect("deploys");
    let state = MemState::default();
    vm().call(&c, CallRequest { entry, input: vec![], gas_limit: gas, ctx: CallContext::default(), view: &mut state.clone() })
}

fn assert_failed_cleanly(out: &CallOutcome) {
    assert!(out.result.is_err(), "expected an error, got {:?}", out.result);
    assert!(out.writes.is_empty(), "state changes must be discarded");
    assert!(out.events.is_empty());
    assert!(out.gas.used <= out.gas.limit);
}

#[test]
fn malformed_wasm_is_refused() {
    for bytes in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0\xff\xff", b"not wasm at all"] {
        assert!(matches!(vm().deploy(bytes), Err(VmError::Validation(ValidationError::Malformed(_)))), "{bytes:?}");
    }
}

#[test]
fn disallowed_and_unknown_imports_are_refused() {
    let w = wat::parse_str(r#"(module (import "env" "clock" (func)) (memory (export "memory") 1) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&w), Err(VmError::Validation(ValidationError::ForbiddenImport { .. }))));
    let w = wat::parse_str(r#"(module (import "aivm" "fork_chain" (func)) (memory (export "memory") 1) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&w), Err(VmError::Validation(ValidationError::UnknownImport(_)))));
    let w = wat::parse_str(r#"(module (import "aivm" "input_len" (func (param i64))) (memory (export "memory") 1) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&w), Err(VmError::Validation(_))), "wrong import signature");
    let w = wat::parse_str(r#"(module (func (export "run")))"#).unwrap();
    assert_eq!(vm().deploy(&w).err(), Some(VmError::Validation(ValidationError::MissingMemory)));
    let w = wat::parse_str(r#"(module (memory (export "memory") 1) (func $s) (start $s) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&w), Err(VmError::Validation(ValidationError::Feature(_)))));
    let w = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run") (local v128)))"#).unwrap();
    assert!(vm().deploy(&w).is_err(), "SIMD is not enabled");
}

#[test]
fn floats_are_nan_canonical() {
    // A NaN with a payload, passed through arithmetic, must come out as the canonical NaN.
    let w = module(
        r#"(func (export "run")
             (i32.store (i32.const 64)
               (i32.reinterpret_f32 (f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1))))
             (i64.store (i32.const 72)
               (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0))))
             (call $ret (i32.const 64) (i32.const 16)))"#,
    );
    let out = call(&w, "run", 1_000_000);
    let bytes = out.result.expect("runs");
    assert_eq!(u32::from_le_bytes(bytes[0..4].try_into().unwrap()), 0x7fc0_0000);
    assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 0x7ff8_0000_0000_0000);
}

#[test]
fn infinite_loop_runs_out_of_gas_quickly() {
    let w = module(r#"(func (export "run") (call $set (i32.const 0) (i32.const 3) (i32.const 4) (i32.const 5)) (loop $l (br $l)))"#);
    let t = Instant::now();
    let out = call(&w, "run", 100_000_000);
    assert_eq!(out.result, Err(VmError::OutOfGas));
    assert_eq!(out.gas.used, out.gas.limit);
    assert_failed_cleanly(&out);
    assert!(t.elapsed() < Duration::from_secs(20), "bounded time");
}

#[test]
fn memory_grow_bomb_is_capped() {
    let w = module(
        r#"(func (export "run")
             (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
             (i32.store (i32.const 64) (memory.size))
             (call $ret (i32.const 64) (i32.const 4)))"#,
    );
    let out = call(&w, "run", 100_000_000);
    let pages = u32::from_le_bytes(out.result.expect("grow failure is a -1, not a crash")[..4].try_into().unwrap());
    assert!(pages <= Limits::default().max_memory_pages, "{pages} pages");
    // With little gas the same bomb stops on gas instead.
    assert_eq!(call(&w, "run", 2_000).result, Err(VmError::OutOfGas));
}

#[test]
fn deep_recursion_traps() {
    let w = module(r#"(func $f (export "run") (call $f))"#);
    let out = call(&w, "run", u64::MAX / 2);
    assert!(matches!(out.result, Err(VmError::Trap(ref m)) if m.contains("stack")), "{:?}", out.result);
    assert_failed_cleanly(&out);
}

#[test]
fn tensor_shape_overflow_is_refused() {
    // shape [0xffffffff, 0xffffffff, 0xffffffff] at 64: m·n·k and the element count overflow.
    let w = module(
        r#"(func (export "run")
             (i64.store (i32.const 64) (i64.const -1)) (i32.store (i32.const 72) (i32.const -1))
             (drop (call $talloc (i32.const 0) (i32.const 64) (i32.const 3) (i32.const 0) (i32.const 0))))"#,
    );
    let out = call(&w, "run", 10_000_000);
    assert!(matches!(out.result, Err(VmError::Host(HostError::Tensor(TensorError::TooLarge(_))))), "{:?}", out.result);
}

#[test]
fn invalid_and_freed_handles_trap() {
    let w = module(
        r#"(func (export "bogus") (drop (call $tmatmul (i32.const 7) (i32.const -3))))
           (func (export "double_free")
             (local $h i32)
             (i32.store (i32.const 64) (i32.const 4))
             (local.set $h (call $talloc (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 0) (i32.const 4)))
             (call $tfree (local.get $h))
             (call $tfree (local.get $h)))"#,
    );
    assert!(matches!(call(&w, "bogus", 1_000_000).result, Err(VmError::Host(HostError::Tensor(TensorError::BadHandle(7))))));
    let out = call(&w, "double_free", 1_000_000);
    assert!(matches!(out.result, Err(VmError::Host(HostError::Tensor(TensorError::BadHandle(1))))), "{:?}", out.result);
}

#[test]
fn out_of_bounds_pointers_and_oversized_inputs_trap() {
    let w = module(
        r#"(func (export "oob") (call $set (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 1)))
           (func (export "wrap") (call $set (i32.const -1) (i32.const 2) (i32.const 0) (i32.const 1)))
           (func (export "huge") (call $set (i32.const 0) (i32.const 1048576) (i32.const 0) (i32.const 1)))
           (func (export "negative") (call $ret (i32.const 0) (i32.const -5)))"#,
    );
    assert!(matches!(call(&w, "oob", 1_000_000).result, Err(VmError::Host(HostError::OutOfBounds { .. }))));
    assert!(matches!(call(&w, "wrap", 1_000_000).result, Err(VmError::Host(HostError::OutOfBounds { .. }))));
    assert!(matches!(call(&w, "huge", 1_000_000).result, Err(VmError::Host(HostError::TooLong { .. }))));
    assert!(matches!(call(&w, "negative", 1_000_000).result, Err(VmError::Host(HostError::TooLong { .. }))));
}

#[test]
fn huge_matmul_runs_out_of_gas_before_working() {
    // Two 4096×4096 int8 tensors (zero-filled by alloc from a zero page region).
    let w = module(
        r#"(func (export "run")
             (local $a i32)
             (i32.store (i32.const 64) (i32.const 2048)) (i32.store (i32.const 68) (i32.const 16))
             (local.set $a (call $talloc (i32.const 0) (i32.const 64) (i32.const 2) (i32.const 1024) (i32.const 32768)))
             (i32.store (i32.const 64) (i32.const 16)) (i32.store (i32.const 68) (i32.const 2048))
             (drop (call $tmatmul (local.get $a) (call $talloc (i32.const 0) (i32.const 64) (i32.const 2) (i32.const 1024) (i32.const 32768)))))"#,
    );
    let out = call(&w, "run", 1_000_000);
    assert_eq!(out.result, Err(VmError::OutOfGas));
    assert!(out.gas.by_op.get("tensor_matmul").is_some_and(|g| g.calls == 1));
    // With enough gas the same call succeeds.
    assert!(call(&w, "run", 1_000_000_000_000).result.is_ok());
}

#[test]
fn missing_entry_point_is_an_error() {
    let w = module(r#"(func (export "run"))"#);
    assert_eq!(call(&w, "nope", 1000).result, Err(VmError::NoSuchEntry("nope".into())));
}

#[test]
fn failed_call_discards_writes() {
    let w = module(r#"(func (export "run") (call $set (i32.const 0) (i32.const 3) (i32.const 4) (i32.const 5)) unreachable)"#);
    let out = call(&w, "run", 1_000_000);
    assert!(matches!(out.result, Err(VmError::Trap(_))));
    assert_failed_cleanly(&out);
    let ok = module(r#"(func (export "run") (call $set (i32.const 0) (i32.const 3) (i32.const 4) (i32.const 5)))"#);
    let out = call(&ok, "run", 1_000_000);
    assert_eq!(out.writes.get(&b"key"[..]), Some(&Some(b"value".to_vec())));
}

#[test]
fn static_caps_are_enforced_at_deploy() {
    let too_many_locals = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run") (local i64 i64) (local i32 i32 i32)))"#).unwrap();
    let vm_small = Vm::new(Limits { max_locals: 4, ..Limits::default() }, GasSchedule::default()).unwrap();
    assert!(matches!(vm_small.deploy(&too_many_locals), Err(VmError::Validation(ValidationError::Limit { what: "locals in one function", .. }))));
    let big_memory = wat::parse_str(r#"(module (memory (export "memory") 257) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&big_memory), Err(VmError::Validation(ValidationError::Limit { .. }))));
    let big_table = wat::parse_str(r#"(module (memory (export "memory") 1) (table 100000 funcref) (func (export "run")))"#).unwrap();
    assert!(matches!(vm().deploy(&big_table), Err(VmError::Validation(ValidationError::Limit { .. }))));
    let huge = vec![0u8; Limits::default().max_module_bytes + 1];
    assert!(matches!(vm().deploy(&huge), Err(VmError::Validation(ValidationError::TooLarge { .. }))));
    let no_entry = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "f") (param i32)))"#).unwrap();
    assert!(matches!(vm().deploy(&no_entry), Err(VmError::Validation(ValidationError::NoEntryPoints))));
}

/// Compile bombs (`gas-bench --adversarial`): the shapes Cranelift compiles in more than linear
/// time are refused before anything is compiled, quickly, and a module at every limit deploys.
#[test]
fn compile_bomb_shapes_are_refused_before_compiling() {
    let limits = Limits::default();
    let nested = |depth: usize| {
        let (open, close) = ("(block ".repeat(depth), ")".repeat(depth));
        wat::parse_str(format!(r#"(module (memory (export "memory") 1) (func (export "run") {open}{close}))"#)).unwrap()
    };
    let locals =
        |n: usize| wat::parse_str(format!(r#"(module (memory (export "memory") 1) (func (export "run") (local {})))"#, vec!["i64"; n].join(" "))).unwrap();
    let body = |ops: usize| wat::parse_str(format!(r#"(module (memory (export "memory") 1) (func (export "run") {}))"#, "(nop)".repeat(ops))).unwrap();
    let refused = |wasm: &[u8], what: &str| {
        let t = Instant::now();
        match vm().deploy(wasm) {
            Err(VmError::Validation(ValidationError::Limit { what: w, .. })) => assert_eq!(w, what),
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{what}: refused in {:?}", t.elapsed());
    };
    refused(&nested(limits.max_nesting as usize + 1), "nested blocks in one function");
    refused(&nested(20_000), "nested blocks in one function");
    refused(&locals(limits.max_locals as usize + 1), "locals in one function");
    refused(&body(limits.max_function_bytes as usize + 1), "bytes in one function body");
    for at_the_limit in [nested(limits.max_nesting as usize), locals(limits.max_locals as usize), body(limits.max_function_bytes as usize - 16)] {
        vm().deploy(&at_the_limit).expect("a module at the limits deploys");
    }
}

#[test]
fn corrupt_module_cache_entries_are_recompiled_not_loaded() {
    let dir = std::env::temp_dir().join(format!("aivm-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = module(r#"(func (export "run") (call $ret (i32.const 0) (i32.const 3)))"#);
    let fresh = || Vm::new(Limits { pool_instances: 2, ..Limits::default() }, GasSchedule::default()).unwrap().with_disk_cache(&dir).unwrap();
    let run = |vm: &Vm| {
        let c = vm.deploy(&w).unwrap();
        vm.call(&c, CallRequest { entry: "run", input: vec![], gas_limit: 100_000, ctx: CallContext::default(), view: &mut MemState::default() })
            .result
            .unwrap()
    };
    assert_eq!(run(&fresh()), b"key");
    let cwasm: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect();
    assert_eq!(cwasm.len(), 1);
    assert_eq!(run(&fresh()), b"key", "loaded from disk");
    // Flip bytes in the compiled code: the checksum no longer matches, so it is recompiled.
    let mut bytes = std::fs::read(&cwasm[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&cwasm[0], &bytes).unwrap();
    assert_eq!(run(&fresh()), b"key");
    std::fs::write(&cwasm[0], b"garbage").unwrap();
    assert_eq!(run(&fresh()), b"key");
    let _ = std::fs::remove_dir_all(&dir);
}
