//! Every page of linear memory a call gains is paid for: the module's initial pages before the
//! entry point runs, grown pages by the next host call or the end of the call, and a grow the
//! call's gas limit could not pay for fails (`aivm::limiter`).

use aivm::{CallContext, CallOutcome, CallRequest, GasSchedule, Limits, MemState, Vm, VmError};

fn vm() -> Vm {
    Vm::new(Limits::default(), GasSchedule::default()).unwrap()
}

fn call(vm: &Vm, wat: &str, gas_limit: u64) -> CallOutcome {
    let c = vm.deploy(&wat::parse_str(wat).unwrap()).unwrap();
    let state = MemState::default();
    vm.call(&c, CallRequest { entry: "run", input: vec![], gas_limit, ctx: CallContext::default(), view: &mut state.clone() })
}

fn memory_gas(out: &CallOutcome) -> u64 {
    out.gas.by_op.get("memory").map_or(0, |g| g.gas)
}

#[test]
fn initial_and_grown_pages_are_charged() {
    let vm = vm();
    let page = vm.schedule().memory_page;
    let out = call(&vm, r#"(module (memory (export "memory") 3) (func (export "run")))"#, 10_000_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(memory_gas(&out), 3 * page);
    // Grown pages, paid at the end of the call.
    let grow = r#"(module (memory (export "memory") 1)
        (func (export "run") (if (i32.ne (memory.grow (i32.const 9)) (i32.const 1)) (then unreachable))))"#;
    let out = call(&vm, grow, 10_000_000);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(memory_gas(&out), 10 * page);
    assert!(out.gas.used >= 10 * page);
}

#[test]
fn a_grow_the_gas_limit_cannot_pay_for_fails() {
    let vm = vm();
    let page = vm.schedule().memory_page;
    // 1 initial page plus 9 grown need 10 pages of gas; with 5 the grow returns -1.
    let grow = r#"(module (memory (export "memory") 1)
        (func (export "run") (if (i32.ne (memory.grow (i32.const 9)) (i32.const -1)) (then unreachable))))"#;
    let out = call(&vm, grow, 5 * page);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(memory_gas(&out), page);
}

#[test]
fn initial_memory_over_the_gas_limit_is_out_of_gas() {
    let vm = vm();
    let page = vm.schedule().memory_page;
    let out = call(&vm, r#"(module (memory (export "memory") 4) (func (export "run")))"#, 3 * page);
    assert_eq!(out.result, Err(VmError::OutOfGas));
    assert_eq!(out.gas.used, 3 * page, "out of gas spends the whole limit");
}

#[test]
fn grown_pages_unpaid_at_the_end_are_out_of_gas() {
    let vm = vm();
    let page = vm.schedule().memory_page;
    // Affordable against the limit when granted (10 pages <= 10.5), but the loop then burns
    // fuel the debt needed: the end-of-call payment fails.
    // The loop costs about 6 gas an iteration: ~6 pages' worth, within the 9.5 left.
    let wat = format!(
        r#"(module (memory (export "memory") 1)
        (func (export "run") (local i32)
          (drop (memory.grow (i32.const 9)))
          (loop $l (br_if $l (i32.lt_u (local.tee 0 (i32.add (local.get 0) (i32.const 1))) (i32.const {page}))))))"#
    );
    let out = call(&vm, &wat, 10 * page + page / 2);
    assert!(memory_gas(&out) > page, "the debt was paid in part: {:?}", out.gas.by_op);
    assert_eq!(out.result, Err(VmError::OutOfGas));
    assert!(out.writes.is_empty());
}
