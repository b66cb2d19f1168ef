//! # aivm-model: deterministic int8 LLM inference (`spec/inference.md`) and its verification
//! (`spec/verification.md`)
//!
//! The third floor: built on `aivm-tensor` (kernels) and `aivm-backend` (where they run); the
//! VM's model opcodes and the node's `aivm model` commands use it.
//!
//! - [`gguf`]: reads GGUF v3 models.
//! - [`sku`]: the content-addressed AIVM SKU (int8 weights, per-row scales); [`convert`]:
//!   a GGUF to a SKU (rotated, calibrated, smoothed and GPTQ-rounded).
//! - [`tokenizer`]: byte-level BPE with the models' pre-tokenizers and ChatML.
//! - [`quant`]: scales, quantization and the fixed-point primitives (RMSNorm, SiLU, RoPE).
//! - [`hash`], [`merkle`]: model hashes and the Merkle trees of commitments; [`row_leaves`]
//!   hashes a matrix's rows sixteen at a time, with [`blake3_lanes`] for what BLAKE3's own
//!   kernels cannot batch.
//! - [`layer`]: the layer math (norms, dequantization, SwiGLU, softmax, argmax): the
//!   definitions, used by the audit; [`kernels`]: the same math compiled for AVX-512 too,
//!   which the engine runs (property-tested equal).
//! - [`engine`]: the forward pass and greedy generation over a batch.
//! - [`commit`]: the worker's GEMM commitments and receipt; [`audit`]: challenges, the
//!   worker's response and the verifier's checks.

pub mod audit;
pub mod blake3_lanes;
pub mod commit;
pub mod convert;
pub mod engine;
pub mod gguf;
pub mod hash;
pub mod heap;
pub mod kernels;
pub mod layer;
pub mod merkle;
pub mod narrow_y;
pub mod quant;
pub mod row_leaves;
pub mod sku;
pub mod store;
pub mod tokenizer;

pub use engine::{Engine, GemmId, GemmKind, GemmRecord, GemmSink, InferError, NoTrace, Options};
pub use sku::{Sku, SkuError};
pub use store::{ArtifactError, ArtifactStore, ModelRegistry};
pub use tokenizer::Tokenizer;
