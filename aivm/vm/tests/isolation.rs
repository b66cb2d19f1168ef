//! Calls are isolated: each starts from the module's initial memory, whatever the previous
//! call on the same pooled slot did. (Pages are reset in place, not unmapped; this proves
//! the reset is complete.)

use aivm::{CallContext, CallRequest, GasSchedule, Limits, MemState, Vm};

#[test]
fn memory_is_reset_between_calls() {
    let vm = Vm::new(Limits { pool_instances: 2, ..Limits::default() }, GasSchedule::default()).unwrap();
    let w = wat::parse_str(
        r#"(module
             (import "aivm" "return_data" (func $ret (param i32 i32)))
             (memory (export "memory") 2)
             (data (i32.const 100) "\07")
             (func (export "dirty")
               (i32.store (i32.const 100) (i32.const 42))
               (i32.store (i32.const 70000) (i32.const 43))
               (drop (memory.grow (i32.const 3)))
               (i32.store (i32.const 200000) (i32.const 44)))
             (func (export "read")
               (i32.store (i32.const 0) (i32.load (i32.const 100)))
               (i32.store (i32.const 4) (i32.load (i32.const 70000)))
               (i32.store (i32.const 8) (memory.size))
               (call $ret (i32.const 0) (i32.const 12))))"#,
    )
    .unwrap();
    let c = vm.deploy(&w).unwrap();
    let call = |entry| vm.call(&c, CallRequest { entry, input: vec![], gas_limit: 1_000_000, ctx: CallContext::default(), view: &mut MemState::default() });
    for _ in 0..20 {
        assert!(call("dirty").result.is_ok());
        let out = call("read").result.unwrap();
        assert_eq!(out, [7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0], "initial data, zeroed page, initial size");
    }
}

/// A query stops at its wall-clock deadline however much gas it was given, charging its whole
/// limit; a consensus call of the same code is bounded by gas alone, never by time.
#[test]
fn a_query_stops_at_its_deadline_and_a_call_has_none() {
    use aivm::VmError;
    use std::time::{Duration, Instant};
    let vm = Vm::new(Limits::default(), GasSchedule::default()).unwrap();
    let spin = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "spin") (loop (br 0))))"#).unwrap();
    let c = vm.deploy(&spin).unwrap();
    let req = |gas_limit, view| CallRequest { entry: "spin", input: vec![], gas_limit, ctx: CallContext::default(), view };

    let (mut view, started) = (MemState::default(), Instant::now());
    let out = vm.query(&c, req(u64::MAX / 2, &mut view), Duration::from_millis(50));
    assert!(matches!(out.result, Err(VmError::Deadline)), "{:?}", out.result);
    assert!(started.elapsed() < Duration::from_secs(5), "stopped near its deadline: {:?}", started.elapsed());
    assert_eq!(out.gas.used, u64::MAX / 2, "a query past its deadline used its whole limit");
    assert!(out.result.as_ref().unwrap_err().is_machine_fault(), "a deadline can never become a receipt");

    // The clock keeps ticking for queries; calls without a deadline do not see it.
    std::thread::sleep(Duration::from_millis(100));
    let mut view = MemState::default();
    let out = vm.call(&c, req(100_000_000, &mut view));
    assert!(matches!(out.result, Err(VmError::OutOfGas)), "{:?}", out.result);
}
