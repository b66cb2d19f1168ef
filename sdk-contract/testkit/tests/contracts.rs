//! The real contracts in the real VM.

use aivm::VmError;
use aivm_testkit::{contract_wasm, gas_table, TestChain};
use serde_json::json;

const ALICE: [u8; 32] = [0xa1; 32];
const BOB: [u8; 32] = [0xb0; 32];
const CAROL: [u8; 32] = [0xc4; 32];

use hex::encode as hex;

#[test]
fn token_transfer_allowance_and_revert() {
    let mut chain = TestChain::new();
    let t = chain.deploy(&contract_wasm("token").unwrap()).unwrap();
    // Before instantiation nobody can call `instantiate` as a plain call (front-running it).
    let e = chain.call::<_, u64>(&t, BOB, "instantiate", &json!({"supply": 5})).unwrap_err();
    assert!(matches!(e, aivm_testkit::TestError::Vm(VmError::InstantiateOnly)), "{e}");
    let r = chain.instantiate::<_, u64>(&t, ALICE, &json!({"supply": 1000})).unwrap();
    assert_eq!(r.value, 1000);
    assert!(chain.instantiate::<_, u64>(&t, ALICE, &json!({"supply": 5})).is_err(), "instantiate twice");
    assert!(chain.call::<_, u64>(&t, ALICE, "instantiate", &json!({"supply": 5})).is_err(), "not as a call either");

    let r = chain.call::<_, ()>(&t, ALICE, "transfer", &json!({"to": hex(BOB), "amount": 300})).unwrap();
    assert_eq!(r.events.len(), 1);
    assert!(r.gas.by_op["storage_set"].calls >= 2, "{}", gas_table(&r.gas));
    assert_eq!(chain.call::<_, u64>(&t, ALICE, "balance_of", &hex(ALICE)).unwrap().value, 700);
    assert_eq!(chain.call::<_, u64>(&t, ALICE, "balance_of", &hex(BOB)).unwrap().value, 300);

    // Overdraft reverts, and the state is exactly as before.
    let before = chain.state(&t);
    let e = chain.call::<_, ()>(&t, BOB, "transfer", &json!({"to": hex(ALICE), "amount": 301})).unwrap_err();
    assert!(matches!(e, aivm_testkit::TestError::Vm(VmError::Revert(ref m)) if m.contains("insufficient")), "{e}");
    assert_eq!(chain.state(&t), before);

    chain.call::<_, ()>(&t, BOB, "approve", &json!({"spender": hex(CAROL), "amount": 100})).unwrap();
    chain.call::<_, ()>(&t, CAROL, "transfer_from", &json!({"from": hex(BOB), "to": hex(CAROL), "amount": 60})).unwrap();
    let left: u64 = chain.call(&t, ALICE, "allowance", &json!({"owner": hex(BOB), "spender": hex(CAROL)})).unwrap().value;
    assert_eq!(left, 40);
    assert!(chain.call::<_, ()>(&t, CAROL, "transfer_from", &json!({"from": hex(BOB), "to": hex(CAROL), "amount": 41})).is_err());
    assert_eq!(chain.call::<_, u64>(&t, ALICE, "balance_of", &hex(CAROL)).unwrap().value, 60);
    assert_eq!(chain.call::<_, u64>(&t, ALICE, "total_supply", &()).unwrap().value, 1000);

    // Gas is a deterministic function of the call: the same call costs the same, every time.
    let g1 = chain.call::<_, u64>(&t, ALICE, "balance_of", &hex(CAROL)).unwrap().gas;
    let g2 = chain.call::<_, u64>(&t, BOB, "balance_of", &hex(CAROL)).unwrap().gas;
    assert_eq!(g1, g2);

    // Malformed arguments revert with a clear message.
    let e = chain.call::<_, ()>(&t, ALICE, "transfer", &json!({"to": "nothex", "amount": 1})).unwrap_err();
    assert!(e.to_string().contains("invalid arguments"), "{e}");
}

/// Native value through a Rust contract: the client's value moves into the contract with the
/// call, the contract pays it out with `env::transfer`, and a failed call moves nothing.
#[test]
fn escrow_locks_value_and_releases_or_refunds_it() {
    let mut chain = TestChain::new();
    let e = chain.deploy(&contract_wasm("escrow").unwrap()).unwrap();
    chain.set_balance(ALICE, 1_000);
    let id: u64 = chain.call_with_value(&e, ALICE, "lock", &json!({"worker": hex(BOB), "blocks": 10}), 300, 100_000_000).unwrap().value;
    assert_eq!((chain.balance(&ALICE), chain.balance(&e.address)), (700, 300));
    let held: u128 = chain.call(&e, CAROL, "held", &()).unwrap().value;
    assert_eq!(held, 300);
    // Nothing sent: refused, and a failed call keeps its value.
    assert!(chain.call::<_, u64>(&e, ALICE, "lock", &json!({"worker": hex(BOB), "blocks": 10})).is_err());
    let err = chain.call_with_value::<_, u64>(&e, ALICE, "lock", &json!({"worker": "nothex", "blocks": 1}), 50, 100_000_000).unwrap_err();
    assert!(err.to_string().contains("invalid arguments"), "{err}");
    assert_eq!((chain.balance(&ALICE), chain.balance(&e.address)), (700, 300));
    // More than the caller holds is refused before it runs.
    assert!(matches!(
        chain.call_with_value::<_, u64>(&e, ALICE, "lock", &json!({"worker": hex(BOB), "blocks": 1}), 701, 100_000_000),
        Err(aivm_testkit::TestError::Balance { balance: 700, value: 701 })
    ));
    // Only the client releases; the worker is paid.
    assert!(chain.call::<_, ()>(&e, BOB, "release", &id).is_err());
    let r = chain.call::<_, ()>(&e, ALICE, "release", &id).unwrap();
    assert_eq!(r.gas.by_op["transfer"].calls, 1, "{}", gas_table(&r.gas));
    assert_eq!((chain.balance(&BOB), chain.balance(&e.address)), (300, 0));
    assert!(chain.call::<_, ()>(&e, ALICE, "release", &id).is_err(), "released once");
    // A second lock runs out: the client takes it back only after the deadline.
    let id: u64 = chain.call_with_value(&e, ALICE, "lock", &json!({"worker": hex(BOB), "blocks": 10}), 200, 100_000_000).unwrap().value;
    assert!(chain.call::<_, ()>(&e, ALICE, "reclaim", &id).is_err(), "before the deadline");
    chain.block_height += 10;
    chain.call::<_, ()>(&e, ALICE, "reclaim", &id).unwrap();
    assert_eq!((chain.balance(&ALICE), chain.balance(&BOB), chain.balance(&e.address)), (700, 300, 0));
}

#[test]
fn token_out_of_gas_discards_everything() {
    let mut chain = TestChain::new();
    let t = chain.deploy(&contract_wasm("token").unwrap()).unwrap();
    chain.instantiate::<_, u64>(&t, ALICE, &json!({"supply": 10})).unwrap();
    // What a transaction pays before the VM runs: intrinsic gas and the code load.
    let probe = chain.call::<_, u64>(&t, ALICE, "balance_of", &hex(ALICE)).unwrap().tx;
    let before = chain.state(&t);
    let e = chain.call_with_gas::<_, ()>(&t, ALICE, "transfer", &json!({"to": hex(BOB), "amount": 1}), probe.intrinsic + probe.code + 30_000).unwrap_err();
    assert!(matches!(e, aivm_testkit::TestError::Vm(VmError::OutOfGas)), "{e}");
    assert_eq!(chain.state(&t), before);
    // Below the intrinsic gas the chain refuses the transaction before it runs.
    let e = chain.call_with_gas::<_, ()>(&t, ALICE, "transfer", &json!({"to": hex(BOB), "amount": 1}), 1_000).unwrap_err();
    assert!(matches!(e, aivm_testkit::TestError::Admission(_)), "{e}");
    assert!(probe.gas_used == probe.intrinsic + probe.code + probe.execution && probe.fee == probe.gas_used as u128, "{probe:?}");
}

#[test]
fn ai_demo_matmul_softmax_kl() {
    let mut chain = TestChain::new();
    let c = chain.deploy(&contract_wasm("ai-demo").unwrap()).unwrap();
    // A = [[1, 2]], B = [[1, 0, -1], [0, 1, 1]] → logits [1, 2, 1]; scale 1.0.
    let uniform = vec![21845, 21845, 21846];
    chain.call::<_, ()>(&c, ALICE, "set_reference", &json!({"probs": uniform})).unwrap();
    #[derive(serde::Deserialize, Debug)]
    struct Out {
        probs: Vec<i32>,
        kl_q32: i64,
    }
    let r = chain.call::<_, Out>(&c, ALICE, "infer", &json!({"m": 1, "k": 2, "n": 3, "a": [1, 2], "b": [1, 0, -1, 0, 1, 1], "scale_q16": 65536})).unwrap();
    // The contract's numbers are exactly the host kernels' numbers.
    use aivm::tensor::{ops, DType, Tensor};
    let logits = Tensor::from_i32(DType::Q16, &[1, 3], vec![65536, 131072, 65536]).unwrap();
    let p = ops::softmax(&logits).unwrap();
    assert_eq!(r.value.probs, p.as_i32().unwrap());
    let kl = aivm::verify::kl::kl_divergence_q16(p.as_i32().unwrap(), &uniform).unwrap();
    assert_eq!(r.value.kl_q32, kl);
    assert!(kl > 0);
    for op in ["tensor_matmul", "tensor_softmax", "kl_divergence", "tensor_alloc"] {
        assert!(r.gas.by_op.contains_key(op), "{op} missing from\n{}", gas_table(&r.gas));
    }
    let last: Option<i64> = chain.call(&c, ALICE, "last_kl", &()).unwrap().value;
    assert_eq!(last, Some(kl));
}

#[test]
fn verifier_contract_uses_every_verify_opcode() {
    use aivm::verify::merkle;
    let mut chain = TestChain::new();
    let v = chain.deploy(&contract_wasm("verifier").unwrap()).unwrap();

    let data = b"weights".to_vec();
    let ok: bool = chain.call(&v, ALICE, "hash_compare", &json!({"data": data, "hash": hex(blake3::hash(&data).as_bytes())})).unwrap().value;
    assert!(ok);
    let bad: bool = chain.call(&v, ALICE, "hash_compare", &json!({"data": data, "hash": hex([0; 32])})).unwrap().value;
    assert!(!bad);

    #[derive(serde::Deserialize)]
    struct Digests {
        sha256: String,
        blake3: String,
        model_hash: String,
    }
    let d: Digests = chain.call(&v, ALICE, "digests", &data).unwrap().value;
    use sha2_free::sha256_hex;
    assert_eq!(d.sha256, sha256_hex(&data));
    assert_eq!(d.blake3, hex(blake3::hash(&data).as_bytes()));
    assert_eq!(d.model_hash, hex(aivm::verify::hash::model_hash(&data)));

    let leaves: Vec<merkle::Hash> = (0..5u8).map(|i| merkle::leaf_hash(&[i])).collect();
    let root = merkle::root(&leaves);
    let proof: Vec<String> = merkle::prove(&leaves, 3).unwrap().iter().map(hex).collect();
    let args = json!({"root": hex(root), "leaf": [3], "index": 3, "size": 5, "proof": proof});
    assert!(chain.call::<_, bool>(&v, ALICE, "merkle", &args).unwrap().value);
    let args = json!({"root": hex(root), "leaf": [4], "index": 3, "size": 5, "proof": proof});
    assert!(!chain.call::<_, bool>(&v, ALICE, "merkle", &args).unwrap().value);

    use ed25519_dalek::Signer;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let sig = sk.sign(b"job 7").to_bytes().to_vec();
    let pk = hex(sk.verifying_key().as_bytes());
    assert!(chain.call::<_, bool>(&v, ALICE, "ed25519", &json!({"public_key": pk, "message": b"job 7", "signature": sig})).unwrap().value);
    assert!(!chain.call::<_, bool>(&v, ALICE, "ed25519", &json!({"public_key": pk, "message": b"job 8", "signature": sig})).unwrap().value);

    let bsk = blst::min_pk::SecretKey::key_gen(&[3; 32], &[]).unwrap();
    let bpk = bsk.sk_to_pk().compress().to_vec();
    let bsig = bsk.sign(b"block", aivm::verify::signature::BLS_DST, &[]).compress().to_vec();
    let r = chain.call::<_, bool>(&v, ALICE, "bls", &json!({"public_key": bpk, "message": b"block", "signature": bsig})).unwrap();
    assert!(r.value);
    assert!(r.gas.by_op["bls_verify"].gas >= chain.vm().schedule().bls_verify.base);
    assert!(!chain.call::<_, bool>(&v, ALICE, "bls", &json!({"public_key": bpk, "message": b"blocks", "signature": bsig})).unwrap().value);

    let kl: i64 = chain.call(&v, ALICE, "kl", &json!({"p": [6554, 13107, 19661, 26214], "q": [16384, 16384, 16384, 16384]})).unwrap().value;
    assert_eq!(kl, 457_125_872, "spec/opcodes.md KL vector");
}

/// SHA-256 computed independently of the host's `sha2` (FIPS 180-4), so the test does not
/// compare the host with itself.
mod sha2_free {
    pub fn sha256_hex(data: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
            0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
            0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
            0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
        ];
        let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
            }
            let mut v = h;
            for i in 0..64 {
                let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
                let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
                let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
                let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
                let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
                let t2 = s0.wrapping_add(maj);
                v = [t1.wrapping_add(t2), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
            }
            for (a, b) in h.iter_mut().zip(v) {
                *a = a.wrapping_add(b);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }
}

/// MODEL_LOAD + MODEL_INFER from a contract on the real model (skipped without it, unless
/// AIVM_REQUIRE_MODEL is set, as `make test` does).
#[test]
fn ai_demo_asks_the_real_model() {
    use aivm::model::{commit::run_committed, store::default_home, ArtifactStore, ModelRegistry, Options};
    let home = default_home();
    let Ok(marker) = std::fs::read_to_string(home.join("default-model")) else {
        assert!(std::env::var_os("AIVM_REQUIRE_MODEL").is_none(), "no converted model");
        return;
    };
    let hash: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&marker.trim()[2 * i..2 * i + 2], 16).unwrap()).collect();
    let reg = std::sync::Arc::new(ModelRegistry::new(ArtifactStore::open(home.join("artifacts")), Options::default()));
    let mut chain = TestChain::with_models(reg.clone());
    let c = chain.deploy(&contract_wasm("ai-demo").unwrap()).unwrap();
    #[derive(serde::Deserialize, Debug)]
    struct Answer {
        tokens: Vec<u32>,
        receipt_hash: Vec<u8>,
    }
    let q = "What is the capital of France?";
    let a = chain.call_with_gas::<_, Answer>(&c, ALICE, "ask", &json!({"model": hash, "prompt": q, "max_new": 12}), 50_000_000_000).unwrap();
    let engine = reg.engine(&hash.clone().try_into().unwrap()).unwrap();
    assert!(engine.tokenizer.decode(&a.value.tokens).contains("Paris"));
    // The contract's receipt is the one a worker running the same prompt commits to.
    let prompt = engine.tokenizer.encode(&engine.tokenizer.chat_prompt(q));
    let (receipt, _) = run_committed(&engine, &[prompt], 12).unwrap();
    assert_eq!(a.value.receipt_hash, receipt.hash().to_vec());
    assert!(a.gas.by_op.contains_key("model_infer"), "{}", gas_table(&a.gas));
    // A model the node does not have is the contract's error, not a trap.
    let e = chain.call_with_gas::<_, Answer>(&c, ALICE, "ask", &json!({"model": vec![9u8; 32], "prompt": q, "max_new": 4}), 50_000_000_000);
    assert!(e.is_err());
    // Too little gas for the inference: out of gas before any work.
    let e = chain.call_with_gas::<_, Answer>(&c, ALICE, "ask", &json!({"model": hash, "prompt": q, "max_new": 12}), 50_000_000).unwrap_err();
    assert!(matches!(e, aivm_testkit::TestError::Vm(VmError::OutOfGas)), "{e}");
}
