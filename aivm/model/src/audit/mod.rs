//! Auditing an inference receipt (`spec/verification.md`): the challenge, the worker's
//! answer, and the verifier's checks, one concern per file.
//!
//! After the receipt is published, randomness (a seed now; the chain's later) selects GEMMs
//! and activation rows. The worker answers with the selected GEMMs' data and rows, each with
//! Merkle proofs to the receipt. The verifier, holding only the receipt, the response and the
//! SKU, checks:
//! 1. the run's shape: the exact list of GEMMs a run with these prompts and outputs performs;
//! 2. every opened GEMM against its commitment, and `Y·r = X·(B·r)` exactly for eight random
//!    vectors `r` with entries uniform over i8 (Freivalds): a wrong `Y` passes one vector
//!    with probability ≤ 1/256, all eight with ≤ 2^-64;
//! 3. every opened row chain: from the token's embedding, each layer's quantized inputs are
//!    recomputed from the previous committed outputs (RMSNorm, SwiGLU, residual adds), and
//!    the committed logits give the token the receipt says was produced.

//!
//! | file | what |
//! |---|---|
//! | `challenge.rs` | the challenge and everything drawn from it (GEMMs, rows, vectors) |
//! | `schedule.rs` | the GEMM list a run performs, and the rows a row chain opens |
//! | `opening.rs` | openings of GEMMs and rows, the response, their wire form |
//! | `freivalds.rs` | the algebra: `Y·r = X·(B·r)`, reference and on the int8 kernel |
//! | `verifier.rs` | the verifier's checks of a response |
//! | `responder.rs` | the worker's answer from its trace |

mod challenge;
mod freivalds;
mod opening;
mod responder;
mod schedule;
#[cfg(test)]
mod tests;
mod verifier;

pub use challenge::{select, step_answer_bytes, step_selection, vectors, weight_vectors, Challenge, VECTORS};
pub use freivalds::{
    check_work, freivalds, opening_work, prepare_checks, weight_check_work, FastCheck, Prepared, RECOMPUTE_MACS_PER_UNIT, UNITS_PER_HASHED_ROW,
};
pub use opening::{OpenGemm, OpenRow, Response};
pub use responder::{respond, respond_step};
pub use schedule::schedule;
pub use verifier::{check_opening, check_response, check_step};

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuditError {
    #[error("receipt is for model {0}, not the one given")]
    WrongModel(String),
    #[error("receipt is inconsistent: {0}")]
    Receipt(String),
    #[error("response does not answer the challenge: {0}")]
    Response(String),
    /// The openings are not the ones this challenge selects: an answer to another challenge
    /// (its worker was told a wrong seed), which says nothing about the run. The chain
    /// refuses it rather than judge it (`spec/market.md` §6).
    #[error("response answers another challenge: {0}")]
    OtherChallenge(String),
    #[error("GEMM {index} ({what}): commitment or proof does not match")]
    Commitment { index: u64, what: String },
    #[error("GEMM {index} ({what}): Freivalds check failed")]
    Freivalds { index: u64, what: String },
    #[error("step {step} row {row}: {what} is not consistent with the previous layer")]
    Chain { step: u32, row: u32, what: String },
}
