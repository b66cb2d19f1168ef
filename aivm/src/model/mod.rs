//! Deterministic int8 LLM inference (`spec/inference.md`) and its verification
//! (`spec/verification.md`).
//!
//! - [`gguf`]: reads GGUF v3 models.
//! - [`sku`]: converts one to the content-addressed AIVM SKU (int8 weights, per-row scales).
//! - [`tokenizer`]: byte-level BPE with the models' pre-tokenizers and ChatML.
//! - [`fixed`]: the fixed-point pieces (scales, quantization, RMSNorm, SiLU, RoPE).
//! - [`gemm`]: the exact int8 GEMM on packed weights.
//! - [`layer`]: the layer math (norms, dequantization, SwiGLU, softmax, argmax), shared by
//!   the engine and the audit.
//! - [`engine`]: the forward pass and greedy generation over a batch.
//! - [`commit`]: the worker's GEMM commitments and receipt; [`audit`]: challenges, the
//!   worker's response and the verifier's checks.

pub mod audit;
pub mod commit;
pub mod engine;
pub mod fixed;
pub mod gemm;
pub mod gguf;
pub mod layer;
pub mod sku;
pub mod store;
pub mod tokenizer;

pub use engine::{Engine, GemmId, GemmKind, GemmRecord, GemmSink, InferError, NoTrace, Options};
pub use sku::{Sku, SkuError};
pub use store::{ArtifactStore, ModelRegistry, StoreError};
pub use tokenizer::Tokenizer;
