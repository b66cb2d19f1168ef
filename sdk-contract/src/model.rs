//! MODEL opcodes: load a model by hash, run inference, check a GEMM opening.

use crate::sys;
use alloc::vec;
use alloc::vec::Vec;

/// A model loaded from the node's artifact store for this call.
#[derive(Clone, Copy, Debug)]
pub struct Model {
    handle: i32,
}

/// What MODEL_INFER returns: the generated token ids and the run's commitments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inference {
    pub tokens: Vec<u32>,
    /// Hash of the worker-style receipt (model, prompt, output, GEMM root).
    pub receipt_hash: [u8; 32],
    /// Merkle root over every GEMM commitment of the run.
    pub gemm_root: [u8; 32],
}

impl Model {
    /// MODEL_LOAD: `None` if the node does not have the model.
    pub fn load(hash: &[u8; 32]) -> Option<Model> {
        let handle = unsafe { sys::model_load(hash.as_ptr()) };
        (handle >= 0).then_some(Model { handle })
    }

    fn infer(&self, kind: i32, input: &[u8], max_new: u32) -> Inference {
        let len = unsafe { sys::model_infer(self.handle, kind, input.as_ptr(), input.len() as i32, max_new as i32) };
        let mut buf = vec![0u8; len.max(0) as usize];
        unsafe { sys::result_read(buf.as_mut_ptr()) };
        let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let tokens = buf[4..4 + 4 * n].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut receipt_hash = [0u8; 32];
        let mut gemm_root = [0u8; 32];
        receipt_hash.copy_from_slice(&buf[4 + 4 * n..36 + 4 * n]);
        gemm_root.copy_from_slice(&buf[36 + 4 * n..68 + 4 * n]);
        Inference { tokens, receipt_hash, gemm_root }
    }

    /// MODEL_INFER on token ids, greedy, up to `max_new` new tokens.
    pub fn infer_tokens(&self, prompt: &[u32], max_new: u32) -> Inference {
        let bytes: Vec<u8> = prompt.iter().flat_map(|t| t.to_le_bytes()).collect();
        self.infer(0, &bytes, max_new)
    }

    /// MODEL_INFER on a user prompt, put in the model's chat template by the host.
    pub fn infer_prompt(&self, prompt: &str, max_new: u32) -> Inference {
        self.infer(1, prompt.as_bytes(), max_new)
    }

    /// FREIVALDS_VERIFY: is `opening` (a GEMM opened by a worker, in its binary form) leaf
    /// `gemm_count`-tree member of `gemm_root`, and does Freivalds hold with vectors from `seed`?
    pub fn verify_gemm(&self, receipt_hash: &[u8; 32], gemm_root: &[u8; 32], gemm_count: u64, seed: &[u8; 32], opening: &[u8]) -> bool {
        let mut ctx = [0u8; 104];
        ctx[..32].copy_from_slice(receipt_hash);
        ctx[32..64].copy_from_slice(gemm_root);
        ctx[64..72].copy_from_slice(&gemm_count.to_le_bytes());
        ctx[72..].copy_from_slice(seed);
        unsafe { sys::freivalds_verify(self.handle, opening.as_ptr(), opening.len() as i32, ctx.as_ptr()) == 1 }
    }
}
