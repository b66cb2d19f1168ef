//! The market's state (`spec/market.md` §7): records in the storage of a reserved address
//! that holds no code, so only the market's own rules write them (as validator stakes live
//! under `aivm/staking`). Records are canonical CBOR; amounts are u128.

use super::tx::{JobId, Role, Sku};
use crate::state::{Address, StateKey};
use serde::{Deserialize, Serialize};

/// The reserved address: BLAKE3 of `aivm/market`.
pub fn market_address() -> Address {
    *blake3::hash(b"aivm/market").as_bytes()
}

/// Every market record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketKey<'a> {
    /// [`super::MarketParams`], written at genesis.
    Params,
    /// [`ModelEntry`]: a model the chain serves.
    Model(&'a Sku),
    /// [`super::hmm::Pool`] of a SKU.
    Pool(&'a Sku),
    /// An address's pool shares (u128).
    Shares(&'a Sku, &'a Address),
    /// An address's compute units of a SKU (u128).
    Units(&'a Sku, &'a Address),
    /// [`Bond`] of an address in a role.
    Bond(&'a Role, &'a Address),
    /// [`WorkerSet`] of a SKU.
    Workers(&'a Sku),
    /// [`Job`].
    Job(&'a JobId),
    /// [`Treasury`].
    Treasury,
    /// The randomness of one block (32 bytes), written by the chain before its transactions.
    Beacon(u64),
    /// [`Attestation`] of a job by a verifier (`super::attest`).
    Attestation(&'a JobId, &'a Address),
    /// [`PendingCredits`].
    PendingCredits,
}

impl MarketKey<'_> {
    pub fn state_key(&self) -> StateKey {
        let k: Vec<u8> = match self {
            MarketKey::Params => b"params".to_vec(),
            MarketKey::Model(s) => [&b"model/"[..], &s[..]].concat(),
            MarketKey::Pool(s) => [&b"pool/"[..], &s[..]].concat(),
            MarketKey::Shares(s, a) => [&b"shares/"[..], &s[..], &a[..]].concat(),
            MarketKey::Units(s, a) => [&b"units/"[..], &s[..], &a[..]].concat(),
            MarketKey::Bond(Role::Worker { sku }, a) => [&b"bond/worker/"[..], &sku[..], &a[..]].concat(),
            MarketKey::Bond(Role::Verifier, a) => [&b"bond/verifier/"[..], &a[..]].concat(),
            MarketKey::Workers(s) => [&b"workers/"[..], &s[..]].concat(),
            MarketKey::Job(id) => [&b"job/"[..], &id[..]].concat(),
            MarketKey::Treasury => b"treasury".to_vec(),
            MarketKey::Beacon(h) => [&b"beacon/"[..], &h.to_be_bytes()[..]].concat(),
            MarketKey::Attestation(j, a) => [&b"attest/"[..], &j[..], &a[..]].concat(),
            MarketKey::PendingCredits => b"pending-credits".to_vec(),
        };
        StateKey::Storage(market_address(), k.into())
    }
}

/// The value of a [`MarketKey::Beacon`] record.
pub type BeaconRecord = serde_bytes::ByteArray<32>;

/// A model the chain serves: registered at genesis by hash, with its artifact's size.
/// Validators must hold the artifact; one that lacks it cannot verify answers and stops
/// executing rather than decide anything (a machine fault, never a consensus result).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The artifact's bytes (MODEL_LOAD's price).
    pub size: u64,
    /// Token ids a prompt may hold are below this.
    pub vocab: u32,
    /// Prompt plus new tokens fit in this.
    pub max_ctx: u32,
}

impl ModelEntry {
    pub fn of(sku: &aivm::model::sku::Sku, size: u64) -> Self {
        ModelEntry { size, vocab: sku.config.vocab, max_ctx: sku.config.max_ctx }
    }
}

/// Stake in one role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bond {
    /// Counts for selection and is slashable.
    pub bonded: u128,
    /// Leaving: slashable until `unlock_at`, then withdrawable.
    pub unbonding: u128,
    pub unlock_at: u64,
    /// Workers: units (tokens) the worker will hold in flight at once.
    pub capacity: u64,
    /// Workers: units of jobs assigned and not yet ended.
    pub in_flight: u64,
    /// Workers: verified tokens, for epoch rewards.
    pub credits: u64,
    /// Workers: the quality score as a miss rate, basis points (`super::quality`).
    #[serde(default)]
    pub quality_miss_bps: u32,
    /// Workers: the epoch of the last scored outcome.
    #[serde(default)]
    pub quality_epoch: u64,
}

impl Bond {
    /// What a slash takes from: bonded and unbonding stake alike.
    pub fn slashable(&self) -> u128 {
        self.bonded.saturating_add(self.unbonding)
    }
}

/// A verifier's claim that it re-executed a settled job (`super::attest`): made at `at`,
/// open until answered or expired; what it was paid, or what it lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub at: u64,
    pub open: bool,
    pub paid: u128,
    pub slashed: u128,
}

/// The workers registered for a SKU, in address order (selection walks it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSet {
    pub workers: Vec<serde_bytes::ByteArray<32>>,
}

/// Where a job stands. Every job ends in exactly one of `Settled`, `Slashed`, `Refunded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Waiting for the worker's receipt.
    Assigned,
    /// Receipt committed at `at`; the challenge is drawn from block `at + 1`'s beacon.
    Committed {
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
        at: u64,
    },
    /// Verified and paid; the verified output and the receipt stay on record, and a verifier
    /// may dispute the job until block `until`.
    Settled {
        at: u64,
        output: Vec<u32>,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
        until: u64,
    },
    /// Optimistic track: the attestation verified at block `at` and the result stands
    /// provisionally; it is final after block `until` unless proven wrong. If block `at + 1`'s
    /// beacon selects it for a spot check, the worker must answer that challenge as on the
    /// Freivalds track (`checked` once it has).
    Provisional {
        at: u64,
        output: Vec<u32>,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
        until: u64,
        checked: bool,
    },
    /// Settled, then disputed at block `at` by `verifier`, whose own run first differs from
    /// the worker's at `step`; the worker must open that step (challenge from block `at + 1`).
    Disputed {
        at: u64,
        #[serde(with = "serde_bytes")]
        verifier: Address,
        step: u32,
        output: Vec<u32>,
        #[serde(with = "serde_bytes")]
        receipt: Vec<u8>,
        until: u64,
        /// Disputed while provisional: the commit's block and whether its spot check was
        /// answered. The fee is still in escrow.
        #[serde(default)]
        provisional: Option<(u64, bool)>,
    },
    /// The worker was slashed `taken` and the client refunded.
    Slashed { at: u64, taken: u128, reason: String },
}

/// One job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    #[serde(with = "serde_bytes")]
    pub client: Address,
    #[serde(with = "serde_bytes")]
    pub worker: Address,
    #[serde(with = "serde_bytes")]
    pub sku: Sku,
    pub prompt: Vec<u32>,
    pub max_new: u32,
    pub sla_blocks: u64,
    /// Escrowed native: the quote at submission.
    pub fee: u128,
    /// Compute units reserved on the worker: prompt + max_new tokens.
    pub units: u64,
    pub submitted_at: u64,
    /// The optimistic TEE track (an attestation with the commit), not the Freivalds one.
    #[serde(default)]
    pub tee: bool,
    pub status: JobStatus,
}

/// Native the market holds outside balances, stakes, pools and escrow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Treasury {
    /// The validators' 8 %, paid out by stake at every epoch's end (`treasury.rs`).
    pub validators: u128,
    /// The verifiers' 5 %, paid per verification.
    pub verifiers: u128,
    /// Burned: fee remainders and slashes not paid to provers. Gone from the supply.
    pub burned: u128,
    /// Minted: the epochs' inflation paid to workers by credits (`treasury::work_payout`).
    /// New to the supply.
    #[serde(default)]
    pub minted: u128,
}

/// Verified tokens each worker earned since the last epoch's end, by address (the work
/// rewards are split by them, `treasury::work_payout`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCredits {
    pub workers: Vec<(serde_bytes::ByteArray<32>, u64)>,
}
