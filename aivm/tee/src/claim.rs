//! The job tuple an attestation binds (seed 002 Definition 2: h_input, h_output, h_model,
//! time, metrics), and the report data that carries it (`spec/tee.md` §1).

/// One job's result as the enclave states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobClaim {
    /// The market's job id: the attestation is good for this job only.
    pub job: [u8; 32],
    /// The model's MODEL_HASH (its SKU).
    pub h_model: [u8; 32],
    /// [`token_hash`] of the prompt and of the output.
    pub h_input: [u8; 32],
    pub h_output: [u8; 32],
    /// BLAKE3 of the committed receipt: binds the GEMM commitments a fraud proof opens.
    pub h_receipt: [u8; 32],
    /// When the enclave finished, Unix milliseconds.
    pub time_ms: u64,
    /// Metrics: prompt tokens, new tokens, GEMMs run.
    pub prompt_tokens: u32,
    pub new_tokens: u32,
    pub gemms: u64,
}

/// BLAKE3 of token ids as u32 little-endian.
pub fn token_hash(tokens: &[u32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 tee tokens v1");
    for t in tokens {
        h.update(&t.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

impl JobClaim {
    /// The fixed-layout encoding that is hashed: the fields in order, integers little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(5 * 32 + 8 + 4 + 4 + 8);
        for h in [&self.job, &self.h_model, &self.h_input, &self.h_output, &self.h_receipt] {
            v.extend_from_slice(h);
        }
        v.extend_from_slice(&self.time_ms.to_le_bytes());
        v.extend_from_slice(&self.prompt_tokens.to_le_bytes());
        v.extend_from_slice(&self.new_tokens.to_le_bytes());
        v.extend_from_slice(&self.gemms.to_le_bytes());
        v
    }
}

/// The 64 report-data bytes that bind `claim`: a domain-separated BLAKE3 of its encoding,
/// then 32 zero bytes (every format carries 64 bytes of report data).
pub fn report_data(claim: &JobClaim) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 tee job claim v1");
    h.update(&claim.encode());
    out[..32].copy_from_slice(h.finalize().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_report_data() {
        let c = JobClaim {
            job: [1; 32],
            h_model: [2; 32],
            h_input: [3; 32],
            h_output: [4; 32],
            h_receipt: [5; 32],
            time_ms: 6,
            prompt_tokens: 7,
            new_tokens: 8,
            gemms: 9,
        };
        let base = report_data(&c);
        assert_eq!(base[32..], [0; 32]);
        let variants = [
            JobClaim { job: [0; 32], ..c.clone() },
            JobClaim { h_model: [0; 32], ..c.clone() },
            JobClaim { h_input: [0; 32], ..c.clone() },
            JobClaim { h_output: [0; 32], ..c.clone() },
            JobClaim { h_receipt: [0; 32], ..c.clone() },
            JobClaim { time_ms: 0, ..c.clone() },
            JobClaim { prompt_tokens: 0, ..c.clone() },
            JobClaim { new_tokens: 0, ..c.clone() },
            JobClaim { gemms: 0, ..c.clone() },
        ];
        for v in variants {
            assert_ne!(report_data(&v), base, "{v:?}");
        }
        assert_ne!(token_hash(&[1, 2]), token_hash(&[2, 1]));
    }
}
