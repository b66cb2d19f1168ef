//! Storage reads are priced cold the first time a call reads a key and warm after
//! (`storage_read_cold`, spec/gas.md "Cold storage reads"): per call, not per machine cache.

use aivm::{CallContext, CallOutcome, CallRequest, GasSchedule, Limits, MemState, Vm};

const READER: &str = r#"(module
  (import "aivm" "storage_get" (func $get (param i32 i32) (result i32)))
  (import "aivm" "storage_set" (func $set (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "key-a")
  (data (i32.const 8) "key-b")
  (func (export "once") (drop (call $get (i32.const 0) (i32.const 5))))
  (func (export "twice") (drop (call $get (i32.const 0) (i32.const 5))) (drop (call $get (i32.const 0) (i32.const 5))))
  (func (export "two_keys") (drop (call $get (i32.const 0) (i32.const 5))) (drop (call $get (i32.const 8) (i32.const 5))))
  (func (export "write_then_read") (call $set (i32.const 8) (i32.const 5) (i32.const 0) (i32.const 5)) (drop (call $get (i32.const 8) (i32.const 5)))))"#;

fn storage_gas(out: &CallOutcome) -> u64 {
    assert!(out.result.is_ok(), "{:?}", out.result);
    out.gas.by_op.get("storage_get").map_or(0, |g| g.gas)
}

#[test]
fn the_first_read_of_a_key_in_a_call_is_cold_and_later_ones_warm() {
    let vm = Vm::new(Limits::default(), GasSchedule::default()).unwrap();
    let s = vm.schedule().clone();
    let c = vm.deploy(&wat::parse_str(READER).unwrap()).unwrap();
    let state = MemState::from_map([(b"key-a".to_vec(), b"value".to_vec())].into());
    let run = |entry: &str| {
        let mut view = state.clone();
        storage_gas(&vm.call(&c, CallRequest { entry, input: vec![], gas_limit: 10_000_000, ctx: CallContext::default(), view: &mut view }))
    };
    // One read of a present key, as the call pays it: entering the host, copying the key, the
    // read with its key and value bytes, and the first-read surcharge.
    let once = run("once");
    let warm = once - s.storage_read_cold;
    assert!(warm >= s.storage_read.cost(5).unwrap() + 5 * s.storage_read.per_item, "{once}");
    assert_eq!(run("twice"), once + warm, "the second read of the key is warm");
    // A key that is not there is read from the state too (a miss costs its key's bytes only).
    assert_eq!(run("two_keys"), once + s.storage_read_cold + warm - 5 * s.storage_read.per_item, "a missing key is a cold read too");
    // A key the call wrote is read from its own writes: warm.
    assert_eq!(run("write_then_read"), warm);
    // Another call starts cold again: the price does not depend on what a node has cached.
    assert_eq!(run("once"), once);
}
