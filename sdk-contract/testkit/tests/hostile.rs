//! Contracts written to hurt. Gas spent before a trap is charged, whatever the trap and
//! wherever it happens: a contract that loops for most of its gas limit and then traps in the
//! same function must pay for the loop (before the fix, seven of these kinds reported 0). And
//! output a call keeps (events, storage writes) is capped per call, whatever gas it has.

use aivm::{CallContext, CallRequest, GasSchedule, Limits, MemState, Vm, VmError};
use aivm_testkit::hostile::{loop_then, TRAPS};

#[test]
fn every_trap_consumes_the_gas_limit() {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let limit = 5_000_000;
    for (name, body) in TRAPS {
        let c = vm.deploy(&loop_then(200_000, body)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = vm.call(&c, CallRequest { entry: "run", input: vec![], gas_limit: limit, ctx: CallContext::default(), view: &mut MemState::default() });
        assert!(matches!(out.result, Err(VmError::Trap(_))), "{name}: {:?}", out.result);
        assert_eq!(out.gas.used, limit, "{name}: a trap consumes the whole gas limit");
    }
}

fn call_wat(vm: &Vm, src: &str, gas_limit: u64) -> aivm::CallOutcome {
    let c = vm.deploy(&wat::parse_str(src).expect("wat")).expect("deploy");
    vm.call(&c, CallRequest { entry: "run", input: vec![], gas_limit, ctx: CallContext::default(), view: &mut MemState::default() })
}

#[test]
fn millions_of_empty_events_are_refused_at_the_cap() {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    let src = r#"(module
        (import "aivm" "emit_event" (func $emit (param i32 i32 i32 i32)))
        (memory (export "memory") 1)
        (func (export "run") (local $i i32)
          (loop $l
            (call $emit (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))))"#;
    let out = call_wat(&vm, src, 10_000_000_000);
    assert!(matches!(&out.result, Err(VmError::Host(aivm::HostError::CallLimit { .. }))), "{:?}", out.result);
    assert!(out.events.is_empty(), "a failed call keeps nothing");
    assert!(out.gas.by_op["emit_event"].calls <= 1025, "stopped at the cap (1024 events), not a million");
}

#[test]
fn storage_writes_are_capped_per_call() {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).expect("vm");
    // Distinct 4-byte keys with 64 KiB values: the byte cap is reached first.
    let src = r#"(module
        (import "aivm" "storage_set" (func $set (param i32 i32 i32 i32)))
        (memory (export "memory") 2)
        (func (export "run") (local $i i32)
          (loop $l
            (i32.store (i32.const 0) (local.get $i))
            (call $set (i32.const 0) (i32.const 4) (i32.const 16) (i32.const 65536))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))))"#;
    let out = call_wat(&vm, src, 10_000_000_000);
    assert!(matches!(&out.result, Err(VmError::Host(aivm::HostError::CallLimit { .. }))), "{:?}", out.result);
    assert!(out.writes.is_empty());
}
