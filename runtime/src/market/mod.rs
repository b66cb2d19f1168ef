//! The PoAI compute market (`spec/market.md`): staked workers and verifiers, an HMM pricing
//! pool per model SKU, and jobs that a client pays for, a worker runs off chain and commits,
//! and the chain challenges, verifies and settles or slashes.
//!
//! - [`hmm`]: the constant-product pool's exact integer math.
//! - [`params`]: genesis parameters and the split and slashing numbers.
//! - [`split`]: where a settled fee and a slashed stake go.
//! - [`state`]: the records and their keys.
//! - [`tx`]: the transactions.
//! - [`ledger`]: gas-metered typed reads and writes for one transaction.
//! - [`exec`]: stake and pool operations, and dispatch.
//! - [`jobs`]: submit, commit, answer (verify), expire; settle and slash.
//! - [`quality`]: the worker quality score and its per-epoch slash.
//! - [`attest`]: verifiers paid for re-executions they prove with openings of their own trace.
//! - [`dispute`]: a verifier's claim against a settled job, decided by opening one step.
//! - [`tee`]: the optimistic track: attested commits, provisional results, spot checks,
//!   finalization (`spec/tee.md`).
//! - [`treasury`]: the validators' share paid out by stake at every epoch's end.
//! - [`genesis`]: the market's initial state.

pub mod attest;
pub mod dispute;
pub mod exec;
pub mod genesis;
pub mod hmm;
pub mod jobs;
pub mod ledger;
pub mod params;
pub mod quality;
pub mod quote;
pub mod split;
pub mod state;
pub mod tee;
pub mod treasury;
pub mod tx;

pub use exec::{execute, MarketCtx, MarketOutcome};
pub use genesis::MarketGenesis;
pub use params::MarketParams;
pub use state::{market_address, Bond, Job, JobStatus, MarketKey, ModelEntry, Treasury};
pub use tx::{JobId, MarketTx, Role};

/// Why a market transaction failed. The texts are receipt text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    #[error("out of gas")]
    OutOfGas,
    #[error("model {0} is not registered on this chain")]
    UnknownModel(String),
    #[error("no pool for this model")]
    NoPool,
    #[error(transparent)]
    Pool(#[from] hmm::HmmError),
    #[error("the swap returns {got}, below the minimum {min}")]
    Slippage { got: u128, min: u128 },
    #[error("need {need}, have {have}")]
    InsufficientBalance { need: u128, have: u128 },
    #[error("stake {have} is below the minimum {min}")]
    BelowMinimum { have: u128, min: u128 },
    #[error("{0}")]
    Invalid(String),
    #[error("the quote {quote} is above the budget {budget}")]
    BudgetBelowQuote { quote: u128, budget: u128 },
    #[error("no staked worker with free capacity serves this model")]
    NoWorker,
    #[error("no such job")]
    NoJob,
    #[error("the job is {0}")]
    WrongState(String),
    #[error("only the job's worker may do this")]
    NotWorker,
    #[error("too early: {0}")]
    TooEarly(String),
    #[error("too late: {0}")]
    TooLate(String),
    #[error("arithmetic overflow")]
    Overflow,
    #[error("corrupt market record {0}")]
    Corrupt(String),
    /// An answer whose openings are another challenge's (`spec/market.md` §6): refused, so a
    /// worker told a wrong seed answers again instead of being slashed.
    #[error("the answer is to another challenge ({0}); answer the job's challenge")]
    OtherChallenge(String),
}

impl MarketError {
    /// The receipt's failure kind.
    pub fn kind(&self) -> &'static str {
        match self {
            MarketError::OutOfGas => "out_of_gas",
            _ => "market",
        }
    }
}
