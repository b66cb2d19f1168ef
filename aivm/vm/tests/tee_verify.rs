//! TEE_VERIFY through a contract on the real vectors: the block's time decides freshness, the
//! VM's policy decides the TCB status, the report data must match, and the price is charged
//! before the work.

use aivm::tee::{samples, Format, TeePolicy};
use aivm::{CallContext, CallOutcome, CallRequest, GasSchedule, Limits, MemState, Vm, VmError};
use std::sync::Arc;

/// Input: format u32, quote length u32, collateral length u32, report data (64), quote,
/// collateral. Returns the status (i32 LE) and, when valid, the measurement.
const CONTRACT: &str = r#"(module
  (import "aivm" "input_read" (func $input_read (param i32)))
  (import "aivm" "tee_verify" (func $tee (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "aivm" "result_read" (func $result_read (param i32)))
  (import "aivm" "return_data" (func $ret (param i32 i32)))
  (memory (export "memory") 2)
  (func (export "run") (local $r i32) (local $ql i32) (local $cl i32) (local $n i32)
    (call $input_read (i32.const 0))
    (local.set $ql (i32.load (i32.const 4)))
    (local.set $cl (i32.load (i32.const 8)))
    (local.set $r (call $tee (i32.load (i32.const 0)) (i32.const 76) (local.get $ql)
        (i32.add (i32.const 76) (local.get $ql)) (local.get $cl) (i32.const 12)))
    (i32.store (i32.const 65536) (local.get $r))
    (if (i32.ge_s (local.get $r) (i32.const 0))
      (then (call $result_read (i32.const 65540)) (local.set $n (local.get $r))))
    (call $ret (i32.const 65536) (i32.add (i32.const 4) (local.get $n)))))"#;

fn input(format: u32, quote: &[u8], collateral: &[u8], report_data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&(quote.len() as u32).to_le_bytes());
    v.extend_from_slice(&(collateral.len() as u32).to_le_bytes());
    v.extend_from_slice(report_data);
    v.extend_from_slice(quote);
    v.extend_from_slice(collateral);
    v
}

fn call(vm: &Vm, input: Vec<u8>, time_secs: u64, gas_limit: u64) -> CallOutcome {
    let c = vm.deploy(&wat::parse_str(CONTRACT).unwrap()).unwrap();
    let state = MemState::default();
    let ctx = CallContext { block_time_ms: time_secs * 1000, ..CallContext::default() };
    vm.call(&c, CallRequest { entry: "run", input, gas_limit, ctx, view: &mut state.clone() })
}

fn status(out: &CallOutcome) -> (i32, Vec<u8>) {
    let o = out.result.as_ref().unwrap_or_else(|e| panic!("{e:?}"));
    (i32::from_le_bytes(o[..4].try_into().unwrap()), o[4..].to_vec())
}

fn vm() -> Vm {
    Vm::new(Limits::default(), GasSchedule::default()).unwrap()
}

const GAS: u64 = 1_000_000_000;

#[test]
fn a_tdx_quote_verifies_at_the_block_time_and_binds_its_report_data() {
    let vm = vm();
    let (from, until) = samples::dcap_window(samples::TDX_COLLATERAL).unwrap();
    let v = aivm::tee::verify(Format::TdxDcap, samples::TDX_QUOTE, samples::TDX_COLLATERAL, from, &TeePolicy::default()).unwrap();
    let ok = call(&vm, input(2, samples::TDX_QUOTE, samples::TDX_COLLATERAL, &v.report_data), from, GAS);
    assert_eq!(status(&ok), (48, v.measurement.clone()));
    let w = aivm::tee::work(Format::TdxDcap, samples::TDX_QUOTE, samples::TDX_COLLATERAL).unwrap();
    let price = vm.schedule().tee_cost(Format::TdxDcap, w).unwrap();
    assert!(ok.gas.by_op["tee_verify"].gas >= price);
    let mut other = v.report_data.clone();
    other[63] ^= 1;
    assert_eq!(status(&call(&vm, input(2, samples::TDX_QUOTE, samples::TDX_COLLATERAL, &other), from, GAS)).0, -5);
    // Expired at the block's time (whatever this machine's clock says).
    assert_eq!(status(&call(&vm, input(2, samples::TDX_QUOTE, samples::TDX_COLLATERAL, &v.report_data), until, GAS)).0, -2);
    // A flipped byte of the signed body.
    let mut q = samples::TDX_QUOTE.to_vec();
    q[200] ^= 1;
    assert_eq!(status(&call(&vm, input(2, &q, samples::TDX_COLLATERAL, &v.report_data), from, GAS)).0, -1);
    // The price is taken before the work: a limit below it runs out of gas.
    let poor = call(&vm, input(2, samples::TDX_QUOTE, samples::TDX_COLLATERAL, &v.report_data), from, price / 2);
    assert_eq!(poor.result, Err(VmError::OutOfGas));
}

#[test]
fn the_chains_policy_decides_the_tcb_status() {
    let (from, _) = samples::dcap_window(samples::SGX_COLLATERAL).unwrap();
    let lenient = TeePolicy { accepted_advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()], ..TeePolicy::default() };
    let v = aivm::tee::verify(Format::SgxDcap, samples::SGX_QUOTE, samples::SGX_COLLATERAL, from, &lenient).unwrap();
    let strict = call(&vm(), input(1, samples::SGX_QUOTE, samples::SGX_COLLATERAL, &v.report_data), from, GAS);
    assert_eq!(status(&strict).0, -3);
    let vm = vm().with_tee_policy(Arc::new(lenient));
    assert_eq!(status(&call(&vm, input(1, samples::SGX_QUOTE, samples::SGX_COLLATERAL, &v.report_data), from, GAS)), (32, v.measurement));
}

#[test]
fn sev_snp_and_devnet() {
    let report = samples::snp_report();
    let v = aivm::tee::verify(Format::SevSnp, &report, samples::SNP_VCEK, samples::SNP_NOW, &TeePolicy::default()).unwrap();
    assert_eq!(status(&call(&vm(), input(3, &report, samples::SNP_VCEK, &v.report_data), samples::SNP_NOW, GAS)), (48, v.measurement));
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let q = aivm::tee::devnet_quote(&key, &[6; 32], &[7; 64]);
    assert_eq!(status(&call(&vm(), input(4, &q, &[], &[7; 64]), 1, GAS)).0, -1, "devnet attestations are off by default");
    let on = TeePolicy { formats: vec![Format::Devnet], devnet_signers: vec![key.verifying_key().to_bytes().to_vec().into()], ..TeePolicy::default() };
    assert_eq!(status(&call(&vm().with_tee_policy(Arc::new(on)), input(4, &q, &[], &[7; 64]), 1, GAS)), (32, vec![6; 32]));
}

#[test]
fn misuse_traps() {
    let big = vec![0u8; aivm::tee::MAX_QUOTE + 1];
    assert!(matches!(call(&vm(), input(2, &big, &[], &[0; 64]), 1, GAS).result, Err(VmError::Host(_))));
    assert!(matches!(call(&vm(), input(9, &[1], &[], &[0; 64]), 1, GAS).result, Err(VmError::Host(_))));
}
