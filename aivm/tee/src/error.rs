//! Why an attestation was refused.

use crate::Format;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    #[error("{what} is {len} bytes; at most {max} are accepted")]
    TooLarge { what: &'static str, len: usize, max: usize },
    #[error("attestation format {0} is not enabled on this chain")]
    Disabled(Format),
    #[error("malformed attestation: {0}")]
    Malformed(String),
    /// A signature, certificate chain or revocation check failed.
    #[error("attestation does not verify: {0}")]
    Invalid(String),
    /// The collateral (or certificate) is not valid at the block's time, or older than the
    /// policy's maximum age.
    #[error("attestation collateral is not valid at block time {now}: {why}")]
    Stale { now: u64, why: String },
    /// The TCB is not one the policy accepts.
    #[error("TCB status {status} is not accepted (advisories: {advisories:?})")]
    Status { status: String, advisories: Vec<String> },
    /// A debug enclave or guest: its memory is readable by the host.
    #[error("the attested enclave or guest runs in debug mode")]
    Debug,
    #[error("the attestation binds other report data than the job's")]
    ReportData,
    #[error("measurement {0} is not registered as trusted")]
    Measurement(String),
}

impl TeeError {
    /// TEE_VERIFY's status code for a refusal (`spec/tee.md`): −1 invalid, −2 stale,
    /// −3 TCB status, −4 debug. Sizes over the caps trap instead.
    pub fn code(&self) -> i32 {
        match self {
            TeeError::Stale { .. } => -2,
            TeeError::Status { .. } => -3,
            TeeError::Debug => -4,
            _ => -1,
        }
    }
}
