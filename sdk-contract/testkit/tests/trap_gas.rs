//! Gas spent before a trap is charged, whatever the trap and wherever it happens. A contract
//! that loops for most of its gas limit and then traps in the same function must pay for the
//! loop: its fee comes from `gas_used`. (Before the fix, seven of these kinds reported 0.)

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
