//! The market's transactions (`spec/market.md` §7): what a [`crate::Payload::Market`] carries.

use super::hmm::Side;
use serde::{Deserialize, Serialize};

/// A model SKU's MODEL_HASH.
pub type Sku = [u8; 32];
/// A job's id: the hash of the transaction that submitted it.
pub type JobId = [u8; 32];

/// A role that holds stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Serves jobs on one SKU.
    Worker {
        #[serde(with = "serde_bytes")]
        sku: Sku,
    },
    /// Proves settled jobs wrong (paid from the verifiers' share).
    Verifier,
}

/// One market operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketTx {
    /// Bond `amount` more of the sender's balance to `role`. A worker also declares its
    /// capacity: compute units (tokens) it will hold in flight at once.
    Bond { role: Role, amount: u128, capacity: u64 },
    /// Start unbonding `amount`: it stops counting for selection at once and can be withdrawn
    /// after the unbonding delay, slashable until then.
    Unbond { role: Role, amount: u128 },
    /// Move stake whose unbonding delay has passed back to the balance.
    Withdraw { role: Role },
    /// Deposit both sides into the SKU's pool for shares.
    AddLiquidity {
        #[serde(with = "serde_bytes")]
        sku: Sku,
        native: u128,
        units: u128,
    },
    /// Burn shares for both sides.
    RemoveLiquidity {
        #[serde(with = "serde_bytes")]
        sku: Sku,
        shares: u128,
    },
    /// Trade against the SKU's pool; fails if fewer than `min_out` would come out.
    Swap {
        #[serde(with = "serde_bytes")]
        sku: Sku,
        side: Side,
        amount_in: u128,
        min_out: u128,
    },
    /// Buy one inference: quote, escrow the fee (at most `budget`), assign a worker.
    SubmitJob {
        #[serde(with = "serde_bytes")]
        sku: Sku,
        prompt: Vec<u32>,
        max_new: u32,
        /// Blocks the worker has to commit; past twice this the job can be expired.
        sla_blocks: u64,
        budget: u128,
        /// Ask for the optimistic TEE track (`spec/tee.md` §5).
        #[serde(default)]
        tee: bool,
    },
    /// The assigned worker's receipt for a job (`InferenceReceipt` as canonical CBOR).
    Commit {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
    },
    /// A TEE-track job's receipt with an attestation binding it ([`aivm::tee::JobClaim`]
    /// with the enclave's `time_ms`): verified at once; the result is provisional if it holds,
    /// and the worker is slashed if it does not.
    CommitAttested {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
        attestation: aivm::tee::Evidence,
        time_ms: u64,
    },
    /// Pay out a provisional job whose challenge window has passed (anyone may send it).
    Finalize {
        #[serde(with = "serde_bytes")]
        job: JobId,
    },
    /// The openings that answer a job's challenge (`Response::encode`); verified at once,
    /// then the job settles or its worker is slashed.
    Answer {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        response: Vec<u8>,
    },
    /// A bonded verifier sampled for a settled job says it re-executed it and agrees; it is
    /// paid once it opens the GEMMs the next block's beacon names from its own trace.
    Attest {
        #[serde(with = "serde_bytes")]
        job: JobId,
    },
    /// The verifier's openings for its attestation (`Response::encode`).
    AttestAnswer {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        response: Vec<u8>,
    },
    /// End an attestation its verifier did not answer by the deadline (anyone may send it).
    ExpireAttestation {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        verifier: crate::state::Address,
    },
    /// A bonded verifier's claim that a settled job's output is wrong: its own receipt of
    /// the job, whose output differs. The worker must then open the first step where they
    /// differ; whoever is wrong is slashed.
    Dispute {
        #[serde(with = "serde_bytes")]
        job: JobId,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
    },
    /// End a job whose worker missed a deadline: slash the worker, refund the client, pay
    /// the sender the prover's share.
    Expire {
        #[serde(with = "serde_bytes")]
        job: JobId,
    },
}

impl MarketTx {
    /// Native value the operation may take from the sender's balance (the executor checks
    /// it against what the balance holds after the reserved fee).
    pub fn value(&self) -> u128 {
        match self {
            MarketTx::Bond { amount, .. } => *amount,
            MarketTx::AddLiquidity { native, .. } => *native,
            MarketTx::Swap { side: Side::Native, amount_in, .. } => *amount_in,
            MarketTx::SubmitJob { budget, .. } => *budget,
            _ => 0,
        }
    }
}
