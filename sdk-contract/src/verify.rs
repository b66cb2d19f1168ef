//! VERIFY opcodes.

use crate::sys;
use crate::tensor::Tensor;

/// KL(P‖Q) in nats as Q32.32 (`i64::MAX` when infinite). Both tensors are Q16 distributions.
pub fn kl_divergence(p: &Tensor, q: &Tensor) -> i64 {
    unsafe { sys::kl_divergence(p.handle(), q.handle()) }
}

/// Does BLAKE3(data) equal `hash`?
pub fn hash_compare(data: &[u8], hash: &[u8; 32]) -> bool {
    unsafe { sys::hash_compare(data.as_ptr(), data.len() as i32, hash.as_ptr()) == 1 }
}

/// MODEL_HASH over a model's canonical bytes.
pub fn model_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    unsafe { sys::model_hash(bytes.as_ptr(), bytes.len() as i32, out.as_mut_ptr()) };
    out
}

/// Is `leaf` at `index` of a `size`-leaf tree with `root`? `proof` lists siblings, leaf level first.
pub fn merkle_verify(root: &[u8; 32], leaf: &[u8], index: u64, size: u64, proof: &[[u8; 32]]) -> bool {
    unsafe {
        sys::merkle_verify(root.as_ptr(), leaf.as_ptr(), leaf.len() as i32, index as i64, size as i64, proof.as_ptr() as *const u8, proof.len() as i32) == 1
    }
}
