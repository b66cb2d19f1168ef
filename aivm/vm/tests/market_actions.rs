//! What a contract asks of the market (`hmm_swap`, `job_submit`; `spec/market.md` §6c): the
//! VM records it in order and reserves the native it may take, refuses what the contract
//! cannot pay or what is malformed (−1, nothing recorded), bounds the count, and a call that
//! fails afterwards keeps no action. Carrying the actions out is the runtime's
//! (`runtime/tests/market.rs`).

use aivm::{contract_job_id, CallContext, CallOutcome, CallRequest, GasSchedule, Limits, MarketAction, MemState, Vm};

/// Entry points take their numbers from the input: `swap` = side (i32 LE) ‖ amount (16) ‖
/// min_out (16); `job` = prompt length (i32) ‖ budget (16) ‖ flags (i32); `swaps` records `n`
/// (i32) swaps of 1 unit; each returns the status codes (i32 LE each) and then the balance
/// (16 bytes) the contract sees. `job_then_revert` records a job and reverts.
const ACTOR: &str = r#"(module
  (import "aivm" "input_read" (func $input (param i32)))
  (import "aivm" "hmm_swap" (func $swap (param i32 i32 i32 i32) (result i32)))
  (import "aivm" "job_submit" (func $job (param i32 i32 i32 i32 i64 i32 i32 i32) (result i32)))
  (import "aivm" "balance" (func $balance (param i32)))
  (import "aivm" "return_data" (func $ret (param i32 i32)))
  (import "aivm" "revert" (func $revert (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "sku-sku-sku-sku-sku-sku-sku-sku-")
  (data (i32.const 64) "\03\00\00\00\09\00\00\00\1b\00\00\00")
  (func (export "swap")
    (call $input (i32.const 200))
    (i32.store (i32.const 400) (call $swap (i32.const 0) (i32.load (i32.const 200)) (i32.const 204) (i32.const 220)))
    (call $balance (i32.const 404))
    (call $ret (i32.const 400) (i32.const 20)))
  (func (export "job")
    (call $input (i32.const 200))
    (i32.store (i32.const 400)
      (call $job (i32.const 0) (i32.const 64) (i32.load (i32.const 200)) (i32.const 5) (i64.const 4) (i32.const 204) (i32.load (i32.const 220)) (i32.const 500)))
    (call $balance (i32.const 404))
    (call $ret (i32.const 400) (i32.const 20)))
  (func (export "swaps") (local $i i32) (local $n i32)
    (call $input (i32.const 200))
    (local.set $n (i32.load (i32.const 200)))
    (i64.store (i32.const 300) (i64.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store (i32.add (i32.const 600) (i32.mul (local.get $i) (i32.const 4)))
        (call $swap (i32.const 0) (i32.const 1) (i32.const 300) (i32.const 320)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $ret (i32.const 600) (i32.mul (local.get $n) (i32.const 4))))
  (func (export "job_then_revert")
    (drop (call $job (i32.const 0) (i32.const 64) (i32.const 3) (i32.const 5) (i64.const 4) (i32.const 340) (i32.const 0) (i32.const 500)))
    (call $revert (i32.const 0) (i32.const 4))))"#;

const SKU: [u8; 32] = *b"sku-sku-sku-sku-sku-sku-sku-sku-";

struct Actor {
    vm: Vm,
    contract: std::sync::Arc<aivm::Contract>,
}

impl Actor {
    fn new() -> Self {
        let vm = Vm::new(Limits::default(), GasSchedule::default()).unwrap();
        let contract = vm.deploy(&wat::parse_str(ACTOR).unwrap()).unwrap();
        Actor { vm, contract }
    }

    fn call(&self, entry: &str, input: Vec<u8>, balance: u128) -> CallOutcome {
        let ctx = CallContext { contract: [7; 32], balance, tx_hash: [9; 32], ..CallContext::default() };
        let mut view = MemState::default();
        self.vm.call(&self.contract, CallRequest { entry, input, gas_limit: 50_000_000, ctx, view: &mut view })
    }
}

/// The status codes and the balance the contract saw, from an entry's output.
fn statuses(out: &CallOutcome) -> (i32, u128) {
    let o = out.result.as_ref().expect("call");
    (i32::from_le_bytes(o[..4].try_into().unwrap()), u128::from_le_bytes(o[4..20].try_into().unwrap()))
}

fn swap_input(side: i32, amount: u128, min_out: u128) -> Vec<u8> {
    [&side.to_le_bytes()[..], &amount.to_le_bytes(), &min_out.to_le_bytes()].concat()
}

fn job_input(prompt_len: i32, budget: u128, flags: i32) -> Vec<u8> {
    [&prompt_len.to_le_bytes()[..], &budget.to_le_bytes(), &flags.to_le_bytes()].concat()
}

#[test]
fn actions_are_recorded_in_order_with_their_native_reserved() {
    let a = Actor::new();
    // Selling native reserves it: the contract sees its balance less the amount.
    let out = a.call("swap", swap_input(0, 600, 5), 1_000);
    assert_eq!(statuses(&out), (0, 400));
    assert_eq!(out.market, vec![MarketAction::Swap { sku: SKU, sell_units: false, amount_in: 600, min_out: 5 }]);
    // Selling units reserves no native.
    let out = a.call("swap", swap_input(1, 600, 0), 1_000);
    assert_eq!((statuses(&out), out.market.len()), ((0, 1_000), 1));
    // A job reserves its whole budget and gets its id at once.
    let out = a.call("job", job_input(3, 700, 1), 1_000);
    assert_eq!(statuses(&out), (0, 300));
    let id = contract_job_id(&[9; 32], &[7; 32], 0);
    assert_eq!(out.market, vec![MarketAction::SubmitJob { id, sku: SKU, prompt: vec![3, 9, 27], max_new: 5, sla_blocks: 4, budget: 700, tee: true }]);
    assert_ne!(id, contract_job_id(&[9; 32], &[7; 32], 1), "the next action's id differs");
    assert_ne!(id, contract_job_id(&[8; 32], &[7; 32], 0), "and another transaction's");
}

#[test]
fn what_the_contract_cannot_pay_or_state_is_refused_and_not_recorded() {
    let a = Actor::new();
    for (input, entry, why) in [
        (swap_input(0, 1_001, 0), "swap", "more native than the balance"),
        (swap_input(0, 0, 0), "swap", "a zero amount"),
        (swap_input(2, 10, 0), "swap", "an unknown side"),
        (job_input(3, 1_001, 0), "job", "a budget over the balance"),
        (job_input(3, 10, 2), "job", "unknown flags"),
        (job_input(4_097, 10, 0), "job", "a prompt over 4 096 tokens"),
        (job_input(-1, 10, 0), "job", "a negative prompt length"),
    ] {
        let out = a.call(entry, input, 1_000);
        assert_eq!(statuses(&out), (-1, 1_000), "{why}");
        assert!(out.market.is_empty(), "{why}");
    }
    // At most 16 actions a call: the 17th is refused.
    let out = a.call("swaps", 17i32.to_le_bytes().to_vec(), 0);
    let codes: Vec<i32> = out.result.as_ref().unwrap().chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(codes, [vec![0; 16], vec![-1]].concat());
    assert_eq!(out.market.len(), aivm::MAX_MARKET_ACTIONS);
    // A call that fails after recording keeps nothing.
    let out = a.call("job_then_revert", vec![], 1_000);
    assert!(out.result.is_err() && out.market.is_empty());
}

#[test]
fn recording_is_priced_before_it_happens() {
    let a = Actor::new();
    let s = GasSchedule::default();
    let out = a.call("swap", swap_input(0, 10, 0), 1_000);
    let g = out.gas.by_op.get("hmm_swap").expect("priced").gas;
    assert!(g >= s.native_transfer + s.host_call, "{g}");
    // Refused for the balance: still paid (the check is the work).
    let refused = a.call("swap", swap_input(0, 5_000, 0), 1_000);
    assert_eq!(refused.gas.by_op.get("hmm_swap").expect("priced").gas, g);
}
