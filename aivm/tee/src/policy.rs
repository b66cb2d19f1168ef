//! The chain's attestation policy: genesis parameters (`spec/tee.md` §2).

use crate::Format;
use serde::{Deserialize, Serialize};

/// Least SEV-SNP TCB (security patch levels) a report must carry to count as `UpToDate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl SnpTcb {
    /// Every component at least `min`'s.
    pub fn meets(&self, min: &SnpTcb) -> bool {
        self.bootloader >= min.bootloader && self.tee >= min.tee && self.snp >= min.snp && self.microcode >= min.microcode
    }
}

/// Which attestations count. Fields missing from a genesis file take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeePolicy {
    /// Formats accepted at all. The devnet format is never enabled by default.
    pub formats: Vec<Format>,
    /// A DCAP TCB status other than `UpToDate` is accepted only if it needs configuration or
    /// software hardening (never `OutOfDate*` or `Revoked`) and every advisory it lists is
    /// here: governance's judgement that those advisories do not matter to this workload.
    pub accepted_advisories: Vec<String>,
    /// Collateral issued longer ago than this (seconds before the block time) is stale even
    /// inside its own validity window.
    pub max_age_secs: u64,
    /// SEV-SNP: the least reported TCB that counts as `UpToDate`.
    pub snp_min_tcb: SnpTcb,
    /// Devnet signers (ed25519 public keys, hex in JSON). Only used when `formats` holds
    /// `Devnet`.
    pub devnet_signers: Vec<crate::HexBytes>,
}

impl Default for TeePolicy {
    fn default() -> Self {
        TeePolicy {
            formats: vec![Format::SgxDcap, Format::TdxDcap, Format::SevSnp],
            accepted_advisories: Vec::new(),
            // Intel's TCB info and QE identity are reissued daily and valid for 30 days.
            max_age_secs: 30 * 24 * 3600,
            snp_min_tcb: SnpTcb::default(),
            devnet_signers: Vec::new(),
        }
    }
}

impl TeePolicy {
    pub fn enables(&self, f: Format) -> bool {
        self.formats.contains(&f) && (f != Format::Devnet || !self.devnet_signers.is_empty())
    }

    /// Whether a DCAP TCB `status` with `advisories` is accepted.
    pub fn accepts_status(&self, status: &str, advisories: &[String]) -> bool {
        match status {
            "UpToDate" => true,
            "SWHardeningNeeded" | "ConfigurationNeeded" | "ConfigurationAndSWHardeningNeeded" => {
                !advisories.is_empty() && advisories.iter().all(|a| self.accepted_advisories.contains(a))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_up_to_date_unless_every_advisory_is_listed() {
        let mut p = TeePolicy::default();
        let adv = vec!["INTEL-SA-00289".to_string(), "INTEL-SA-00615".to_string()];
        assert!(p.accepts_status("UpToDate", &[]));
        assert!(!p.accepts_status("SWHardeningNeeded", &adv));
        p.accepted_advisories = vec![adv[0].clone()];
        assert!(!p.accepts_status("SWHardeningNeeded", &adv));
        p.accepted_advisories = adv.clone();
        assert!(p.accepts_status("ConfigurationAndSWHardeningNeeded", &adv));
        assert!(!p.accepts_status("OutOfDate", &adv));
        assert!(!p.accepts_status("Revoked", &[]));
        assert!(!p.accepts_status("SWHardeningNeeded", &[]));
    }

    #[test]
    fn devnet_needs_a_signer() {
        let mut p = TeePolicy { formats: Format::ALL.to_vec(), ..TeePolicy::default() };
        assert!(!p.enables(Format::Devnet));
        p.devnet_signers.push(vec![1; 32].into());
        assert!(p.enables(Format::Devnet));
        assert!(!TeePolicy::default().enables(Format::Devnet));
    }
}
