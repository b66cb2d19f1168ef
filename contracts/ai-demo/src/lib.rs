//! AI demo: int8 logits by TENSOR_MATMUL, TENSOR_SOFTMAX, and the KL divergence of the
//! result from a stored reference distribution; and `ask`, a question to a real model by
//! MODEL_LOAD + MODEL_INFER, with the answer's receipt hash stored.
#![no_std]

use aivm_sdk::prelude::*;

const REFERENCE: &[u8] = b"reference";
const LAST_KL: &[u8] = b"last_kl";

/// A reference distribution in Q16 (`65536` = probability 1), one row per output row.
#[derive(Serialize, Deserialize, Schema)]
pub struct Reference {
    pub probs: Vec<i32>,
}

/// `A (m×k, int8) · B (k×n, int8)`; accumulators are scaled by `scale_q16` into Q16 logits.
#[derive(Serialize, Deserialize, Schema)]
pub struct Infer {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    pub a: Vec<i8>,
    pub b: Vec<i8>,
    pub scale_q16: i32,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct InferResult {
    /// Softmax output, Q16, row-major `m×n`.
    pub probs: Vec<i32>,
    /// KL(probs ‖ reference) in nats as Q32.32.
    pub kl_q32: i64,
}

#[entry_point]
pub fn set_reference(r: Reference) -> Result<(), ContractError> {
    if r.probs.iter().any(|&p| p < 0) {
        return Err("probabilities must be non-negative".into());
    }
    storage::set(REFERENCE, &r.probs);
    Ok(())
}

#[entry_point]
pub fn infer(x: Infer) -> Result<InferResult, ContractError> {
    let reference: Vec<i32> = storage::get(REFERENCE).ok_or(ContractError::from("no reference set"))?;
    if reference.len() != (x.m as usize) * (x.n as usize) {
        return Err(ContractError::new(format!("reference has {} values, output has {}", reference.len(), x.m * x.n)));
    }
    let a = Tensor::from_i8(&[x.m, x.k], &x.a);
    let b = Tensor::from_i8(&[x.k, x.n], &x.b);
    let logits = a.matmul(&b).dequantize(x.scale_q16);
    let probs = logits.softmax();
    let q = Tensor::from_q16(&[x.m, x.n], &reference);
    let kl_q32 = verify::kl_divergence(&probs, &q);
    storage::set(LAST_KL, &kl_q32);
    events::emit("kl", &kl_q32);
    Ok(InferResult { probs: probs.to_i32_vec(), kl_q32 })
}

#[entry_point]
pub fn last_kl(_: ()) -> Result<Option<i64>, ContractError> {
    Ok(storage::get(LAST_KL))
}

/// A question for a model in the node's artifact store.
#[derive(Serialize, Deserialize, Schema)]
pub struct Ask {
    pub model: Vec<u8>,
    pub prompt: String,
    pub max_new: u32,
}

#[derive(Serialize, Deserialize, Schema)]
pub struct Answer {
    pub tokens: Vec<u32>,
    pub receipt_hash: Vec<u8>,
}

#[entry_point]
pub fn ask(a: Ask) -> Result<Answer, ContractError> {
    let hash: [u8; 32] = a.model.as_slice().try_into().map_err(|_| ContractError::from("model hash must be 32 bytes"))?;
    let model = Model::load(&hash).ok_or(ContractError::from("model not available on this node"))?;
    let out = model.infer_prompt(&a.prompt, a.max_new);
    storage::set(b"last_receipt", &out.receipt_hash.to_vec());
    events::emit("answer", &out.receipt_hash.to_vec());
    Ok(Answer { tokens: out.tokens, receipt_hash: out.receipt_hash.to_vec() })
}
