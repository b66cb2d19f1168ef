//! An honest worker is never slashed: thousands of honest runs, each challenged as the market
//! challenges a job (and some with every GEMM opened), all verify — on the CPU and, where an
//! OpenCL device is present, on it too (whose receipts must also equal the CPU's).

use aivm::backend::OpenClBackend;
use aivm::model::audit::{check_response, respond, Challenge};
use aivm::model::commit::run_committed;
use aivm::model::sku::testing::tiny;
use aivm::model::sku::Arch;
use aivm::model::{Engine, Options};
use std::sync::Arc;

/// A deterministic stream of test cases: (prompt, max_new, seed, open every GEMM).
fn cases(n: usize, vocab: u32) -> impl Iterator<Item = (Vec<u32>, usize, [u8; 32], bool)> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n).map(move |i| {
        let len = 1 + (next() % 12) as usize;
        let prompt = (0..len).map(|_| (next() % vocab as u64) as u32).collect();
        let max_new = 1 + (next() % 6) as usize;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&next().to_le_bytes());
        (prompt, max_new, seed, i % 10 == 0)
    })
}

fn challenge_all(engine: &Engine, n: usize, reference: Option<&Engine>) -> usize {
    let mut checked = 0;
    for (prompt, max_new, seed, all) in cases(n, engine.sku.config.vocab) {
        let (r, t) = run_committed(engine, std::slice::from_ref(&prompt), max_new).expect("run");
        if let Some(cpu) = reference {
            let (rc, _) = run_committed(cpu, std::slice::from_ref(&prompt), max_new).expect("run");
            assert_eq!(r.hash(), rc.hash(), "the device's receipt differs from the CPU's for {prompt:?}");
        }
        let ch = Challenge { seed, gemms: if all { 0 } else { 8 }, rows: 1 + (seed[0] % 3) as u32 };
        let resp = respond(&engine.sku, &r, &t, &ch).expect("respond");
        // What crosses the wire is what the chain checks.
        let bytes = resp.encode();
        let resp = aivm::model::audit::Response::decode(&bytes).expect("decodes");
        check_response(&engine.sku, &engine.sku_hash, &r, &ch, &resp).unwrap_or_else(|e| panic!("honest run rejected ({prompt:?}, {max_new}): {e}"));
        checked += 1;
    }
    checked
}

#[test]
fn thousands_of_honest_challenges_all_pass_on_the_cpu() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let engine = Engine::new(Arc::new(tiny(arch, 31)), Options::default()).expect("engine");
        assert_eq!(challenge_all(&engine, 1_500, None), 1_500);
    }
}

#[test]
fn honest_challenges_pass_on_opencl_with_the_cpus_receipts() {
    let Some(ocl) = OpenClBackend::open_or_skip("honest challenges on OpenCL", &Default::default()).expect("OpenCL backend") else { return };
    let sku = Arc::new(tiny(Arch::Llama, 31));
    let cpu = Engine::new(sku.clone(), Options::default()).expect("engine");
    let dev = Engine::new(sku, Options::on(Arc::new(ocl))).expect("engine");
    assert_eq!(challenge_all(&dev, 200, Some(&cpu)), 200);
}
