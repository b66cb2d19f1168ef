//! Where a deep recursion traps is a function of the wasm alone (`aivm::stack`): the same
//! depth succeeds, and one more traps with the deterministic limit, at every optimisation
//! level — and the native stack check (which depends on the compiler) never fires first, even
//! with only a small margin above the deterministic limit. The shapes try to make compiled
//! frames as large as possible for their bound: values held across the call on the operand
//! stack, in locals, as floats (spilled at 16 bytes), as recomputed expressions the optimiser
//! may keep alive, and through `call_indirect`.

use aivm::vm::STACK_EXHAUSTED;
use aivm::{CallContext, CallRequest, GasSchedule, Limits, MemState, Vm, VmError};
use wasmtime::OptLevel;

/// A recursive `$rec (param i32)` around `hold` (pushed before the call) and `fold` (after
/// it); `run` recurses as deep as the input is long.
fn recursion(extra: &str, hold: &str, fold: &str, call: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
            (import "aivm" "input_len" (func $len (result i32)))
            (memory (export "memory") 1)
            (type $t (func (param i32) (result i64)))
            (table 1 funcref)
            (elem (i32.const 0) $rec)
            (func $rec (type $t) {extra}
              (if (result i64) (local.get 0)
                (then {hold} (i32.sub (local.get 0) (i32.const 1)) {call} {fold})
                (else (i64.const 0))))
            (func (export "run") (drop (call $rec (call $len)))))"#
    );
    wat::parse_str(src).expect("test wat parses")
}

fn repeat(n: usize, f: impl Fn(usize) -> String) -> String {
    (0..n).map(f).collect::<Vec<_>>().join(" ")
}

fn shapes() -> Vec<(&'static str, Vec<u8>)> {
    let direct = "call $rec";
    let n = 48;
    vec![
        ("minimal", recursion("", "", "", direct)),
        (
            "operand stack",
            recursion("", &repeat(n, |i| format!("(i64.add (i64.extend_i32_u (local.get 0)) (i64.const {i}))")), &repeat(n, |_| "i64.add".into()), direct),
        ),
        (
            "locals",
            recursion(
                &repeat(n, |i| format!("(local $l{i} i64)")),
                &repeat(n, |i| format!("(local.set $l{i} (i64.mul (i64.extend_i32_u (local.get 0)) (i64.const {})))", i + 3)),
                &repeat(n, |i| format!("(i64.add (local.get $l{i}))")),
                direct,
            ),
        ),
        (
            "floats",
            recursion(
                "",
                &repeat(n, |i| format!("(f64.add (f64.convert_i32_u (local.get 0)) (f64.const {i}.5))")),
                &format!("f64.convert_i64_u {} i64.trunc_sat_f64_u", repeat(n, |_| "f64.add".into())),
                direct,
            ),
        ),
        (
            "recomputed",
            recursion(
                "",
                &repeat(n, |i| format!("(drop (i64.mul (i64.extend_i32_u (local.get 0)) (i64.const {})))", i + 7)),
                &repeat(n, |i| format!("(i64.add (i64.mul (i64.extend_i32_u (local.get 0)) (i64.const {})))", i + 7)),
                direct,
            ),
        ),
        ("call_indirect", recursion("", "", "", "(call_indirect (type $t) (i32.const 0))")),
        (
            "stores and loads around the call",
            recursion(
                "",
                &repeat(n, |i| format!("(i64.store offset={} (local.get 0) (i64.extend_i32_u (local.get 0)))", i * 8)),
                &repeat(n, |i| format!("(i64.add (i64.load offset={} (local.get 0)))", i * 8)),
                direct,
            ),
        ),
    ]
}

fn depth_ok(vm: &Vm, wasm: &[u8], depth: usize) -> Result<(), String> {
    let c = vm.deploy(wasm).map_err(|e| format!("deploy: {e}"))?;
    let state = MemState::default();
    let out =
        vm.call(&c, CallRequest { entry: "run", input: vec![0; depth], gas_limit: 10_000_000_000, ctx: CallContext::default(), view: &mut state.clone() });
    match out.result {
        Ok(_) => Ok(()),
        Err(VmError::Trap(m)) if m == STACK_EXHAUSTED => Err("limit".into()),
        Err(e) => Err(format!("{e}")),
    }
}

/// The deepest recursion that succeeds (binary search; depth 0 always does).
fn deepest(vm: &Vm, wasm: &[u8]) -> usize {
    let (mut ok, mut bad) = (0usize, 1usize << 16);
    assert!(depth_ok(vm, wasm, bad).is_err(), "recursion of {bad} should exhaust the stack");
    while bad - ok > 1 {
        let mid = (ok + bad) / 2;
        match depth_ok(vm, wasm, mid) {
            Ok(()) => ok = mid,
            Err(e) => {
                assert_eq!(e, "limit", "depth {mid} failed with something other than the deterministic limit");
                bad = mid;
            }
        }
    }
    ok
}

#[test]
fn recursion_traps_at_the_same_depth_at_every_optimisation_level() {
    // Only 24 KiB of native stack above the deterministic limit: a frame bound that missed
    // even a few bytes per frame would let the native check fire first.
    let tight = Limits { max_stack_bytes: 256 << 10, max_wasm_stack: (256 + 24) << 10, ..Limits::default() };
    let vms =
        [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize].map(|opt| (opt, Vm::with_opt_level(tight.clone(), GasSchedule::default(), opt).unwrap()));
    for (name, wasm) in shapes() {
        let depth = deepest(&vms[1].1, &wasm);
        assert!(depth > 20, "{name}: only {depth} frames fit");
        for (opt, vm) in &vms {
            assert_eq!(depth_ok(vm, &wasm, depth), Ok(()), "{name} at {opt:?}: depth {depth}");
            assert_eq!(depth_ok(vm, &wasm, depth + 1), Err("limit".into()), "{name} at {opt:?}: depth {}", depth + 1);
        }
        eprintln!("{name}: {depth} frames within {} bytes", tight.max_stack_bytes);
    }
}

#[test]
fn the_default_limits_allow_deep_recursion_of_small_functions() {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).unwrap();
    let depth = deepest(&vm, &shapes()[0].1);
    assert!(depth >= 1_500, "{depth}");
}

#[test]
fn the_depth_export_name_is_reserved() {
    let wasm =
        wat::parse_str(r#"(module (memory (export "memory") 1) (global (export "__aivm_stack_depth") i32 (i32.const 0)) (func (export "run")))"#).unwrap();
    let vm = Vm::new(Limits::default(), GasSchedule::default()).unwrap();
    assert!(matches!(vm.deploy(&wasm), Err(VmError::Validation(_))));
}
