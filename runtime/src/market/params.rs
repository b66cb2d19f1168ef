//! The market's genesis parameters (`spec/market.md` §3–§6). They are state, written once at
//! genesis, so every validator runs the market with the same numbers.

use serde::{Deserialize, Serialize};

/// Numbers the market runs by. Amounts are native base units. Fields missing from a
/// genesis file take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarketParams {
    /// Least bonded stake of a worker for one SKU (seed 002 Table 6: 10 000).
    pub min_worker_stake: u128,
    /// Least bonded stake of a verifier (Table 6: 50 000).
    pub min_verifier_stake: u128,
    /// Least native side of a liquidity deposit (Table 6: 1 000).
    pub min_lp_deposit: u128,
    /// Blocks between unbonding and withdrawal; the stake stays slashable meanwhile.
    pub unbonding_blocks: u64,
    /// GEMMs opened per challenge (0 = all). Each checked GEMM lets a wrong one pass with
    /// probability ≤ 2⁻⁶⁴ (`spec/verification.md`).
    pub challenge_gemms: u32,
    /// Row chains checked per challenge.
    pub challenge_rows: u32,
    /// Blocks a worker has to answer once its challenge exists.
    pub answer_window: u64,
    /// Longest SLA a job may ask for, in blocks.
    pub max_sla_blocks: u64,
    /// Most prompt tokens and most new tokens per job: they bound the receipt a worker
    /// commits and the schedule the chain derives from it.
    pub max_prompt_tokens: u32,
    pub max_new_tokens: u32,
    /// Most workers per SKU: worker selection reads every one.
    pub max_workers_per_sku: u32,
    /// Swap fee of every pool, basis points (Uniswap v2's 30).
    pub pool_fee_bps: u128,
    /// Blocks after settlement during which a verifier may dispute a job (the worker keeps
    /// its trace that long).
    pub dispute_window: u64,
    /// Most bytes a dispute's answer may need (bounded from the shapes before the dispute is
    /// accepted): a dispute the worker could not answer in one transaction is refused, or a
    /// false report could get an honest worker slashed.
    pub max_answer_bytes: u64,
    /// The optimistic TEE track (`spec/tee.md` §5): off unless genesis trusts a measurement.
    pub tee: TeeParams,
    /// Blocks per epoch of the quality score (`spec/market.md` §5a).
    pub quality_epoch_blocks: u64,
    /// Highest miss rate (basis points) a worker may end an epoch with unpunished: 1 000 is
    /// a quality of 90 %.
    pub max_quality_miss_bps: u32,
    /// α of seed 002 in parts per million: the share of settled jobs each verifier is
    /// sampled for, and may be paid for re-executing (`spec/market.md` §6d).
    pub verify_sample_ppm: u32,
    /// GEMMs a verifier's attestation opens from its own trace.
    pub attest_gemms: u32,
    /// Native minted at every epoch's end and paid to the workers by the verified tokens
    /// they served in the epoch (seed 003 §12; `spec/market.md` §4a). 0: no inflation.
    pub inflation_per_epoch: u128,
}

/// The optimistic track's parameters. Fields missing from a genesis file take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeeParams {
    /// Which attestations count (formats, TCB statuses, maximum age, devnet signers).
    pub policy: aivm::tee::TeePolicy,
    /// Measurements of the worker images the chain trusts (MRENCLAVE, MRTD, SNP measurement,
    /// or a devnet image hash). None: the track is off.
    pub measurements: Vec<aivm::tee::HexBytes>,
    /// W: blocks after the commit during which a provisional result can be proven wrong.
    pub challenge_window: u64,
    /// ρ: the share of provisional jobs spot-checked, in parts per million.
    pub spot_check_ppm: u32,
}

impl Default for TeeParams {
    fn default() -> Self {
        TeeParams { policy: aivm::tee::TeePolicy::default(), measurements: Vec::new(), challenge_window: 50, spot_check_ppm: 100_000 }
    }
}

impl TeeParams {
    pub fn enabled(&self) -> bool {
        !self.measurements.is_empty() && aivm::tee::Format::ALL.iter().any(|f| self.policy.enables(*f))
    }
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            min_worker_stake: 10_000,
            min_verifier_stake: 50_000,
            min_lp_deposit: 1_000,
            unbonding_blocks: 100,
            challenge_gemms: 8,
            challenge_rows: 1,
            answer_window: 20,
            max_sla_blocks: 1_000,
            max_prompt_tokens: 512,
            max_new_tokens: 256,
            max_workers_per_sku: 64,
            pool_fee_bps: super::hmm::DEFAULT_FEE_BPS,
            dispute_window: 50,
            // The answer transaction's own fields (ids, gas, signature) take well under 1 KiB.
            max_answer_bytes: crate::tx::MAX_TX_BYTES as u64 - 1024,
            tee: TeeParams::default(),
            quality_epoch_blocks: 1_000,
            max_quality_miss_bps: 1_000,
            verify_sample_ppm: 3_000,
            attest_gemms: 2,
            inflation_per_epoch: 0,
        }
    }
}

/// Fee split of a settled job, basis points (seed 002 §7.2): worker, validators, verifiers,
/// liquidity providers. The burn takes the remainder, so the parts always sum to the fee.
pub const SPLIT_BPS: [u128; 4] = [8_000, 800, 500, 400];

/// Slashing, basis points of the worker's bonded stake (seed 002 Table 2), once per offence.
pub const SLASH_WRONG_OUTPUT_BPS: u128 = 10_000;
/// No answer before the challenge deadline, or no commit within 2× the SLA.
pub const SLASH_TIMEOUT_BPS: u128 = 1_000;
/// An attestation that does not verify (seed 002 Table 2: invalid attestation).
pub const SLASH_INVALID_ATTESTATION_BPS: u128 = 5_000;
/// A verifier whose dispute the worker answers correctly (a false report).
pub const SLASH_FALSE_REPORT_BPS: u128 = 1_000;
/// Share of a slash paid to whoever proved it (seed 003 §13 leaves it open); the rest burns.
pub const PROVER_SHARE_BPS: u128 = 1_000;
