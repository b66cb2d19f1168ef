//! Offline verification of TEE attestations (`spec/tee.md`): Intel SGX and TDX DCAP quotes with
//! their collateral, AMD SEV-SNP reports with their VCEK, and a devnet-only software signer.
//!
//! Everything here is a pure function of its bytes, the block's time and the chain's
//! [`TeePolicy`]: no clock, no network, no file. That is what lets TEE_VERIFY and the market's
//! optimistic track be consensus rules. The work is bounded before it is done: [`work`] counts
//! what a verification will cost from the sizes alone, and inputs over the caps are refused.

mod claim;
mod dcap;
mod devnet;
mod error;
mod hexbytes;
mod policy;
pub mod samples;
mod snp;

pub use claim::{report_data, token_hash, JobClaim};
pub use devnet::{devnet_quote, DEVNET_QUOTE_LEN};
pub use error::TeeError;
pub use hexbytes::HexBytes;
pub use policy::{SnpTcb, TeePolicy};

use serde::{Deserialize, Serialize};

/// Longest quote or report accepted (a DCAP v4 quote with its PCK chain is ~5 KB).
pub const MAX_QUOTE: usize = 16 << 10;
/// Longest collateral accepted (DCAP collateral JSON is 14–19 KB; a VCEK is ~1.4 KB).
pub const MAX_COLLATERAL: usize = 64 << 10;

/// An attestation format. The codes are TEE_VERIFY's `format` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Intel SGX DCAP quote (v3/v4), collateral as the `QuoteCollateralV3` JSON.
    SgxDcap,
    /// Intel TDX DCAP quote (v4/v5), collateral as the `QuoteCollateralV3` JSON.
    TdxDcap,
    /// AMD SEV-SNP attestation report (1184 bytes), collateral the chip's VCEK (DER).
    SevSnp,
    /// Not a TEE: a key registered in genesis signs the report data (devnets without TEEs).
    Devnet,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::SgxDcap, Format::TdxDcap, Format::SevSnp, Format::Devnet];

    pub fn code(self) -> u32 {
        match self {
            Format::SgxDcap => 1,
            Format::TdxDcap => 2,
            Format::SevSnp => 3,
            Format::Devnet => 4,
        }
    }

    pub fn from_code(code: u32) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::SgxDcap => "sgx-dcap",
            Format::TdxDcap => "tdx-dcap",
            Format::SevSnp => "sev-snp",
            Format::Devnet => "devnet",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An attestation as a worker submits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub format: Format,
    #[serde(with = "serde_bytes")]
    pub quote: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub collateral: Vec<u8>,
}

/// What a valid attestation proves: this code (`measurement`) ran in a TEE of this format whose
/// TCB has `status`, and it bound `report_data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub format: Format,
    /// MRENCLAVE (SGX, 32 bytes), MRTD (TDX, 48), the launch measurement (SNP, 48), or the
    /// declared image hash (devnet, 32).
    #[serde(with = "serde_bytes")]
    pub measurement: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub report_data: Vec<u8>,
    /// The TCB status (Intel's names; SNP: `UpToDate` or `OutOfDate` against the policy's
    /// minimum TCB; devnet: `Devnet`).
    pub status: String,
    pub advisories: Vec<String>,
}

/// The size of a verification, known before it runs: what gas is charged from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Certificates whose signatures are checked (counted in the input, plus built-in roots).
    pub certificates: u64,
    /// Bytes parsed and hashed.
    pub bytes: u64,
}

/// The work of verifying `quote` with `collateral` in `format`, from sizes and a scan for
/// certificate headers only. Inputs over [`MAX_QUOTE`] or [`MAX_COLLATERAL`] are refused here.
pub fn work(format: Format, quote: &[u8], collateral: &[u8]) -> Result<Work, TeeError> {
    if quote.len() > MAX_QUOTE {
        return Err(TeeError::TooLarge { what: "quote", len: quote.len(), max: MAX_QUOTE });
    }
    if collateral.len() > MAX_COLLATERAL {
        return Err(TeeError::TooLarge { what: "collateral", len: collateral.len(), max: MAX_COLLATERAL });
    }
    let certificates = match format {
        // Every PEM certificate in the quote's certification data and the collateral's
        // issuer chains, plus Intel's root (built in), plus the TCB info, QE identity,
        // QE report and quote signatures and the two CRLs.
        Format::SgxDcap | Format::TdxDcap => count_pem(quote) + count_pem(collateral) + 1 + 6,
        // ARK and ASK (built in), the VCEK, and the report's signature.
        Format::SevSnp => 4,
        Format::Devnet => 1,
    };
    Ok(Work { certificates, bytes: (quote.len() + collateral.len()) as u64 })
}

fn count_pem(bytes: &[u8]) -> u64 {
    const TAG: &[u8] = b"BEGIN CERTIFICATE";
    bytes.windows(TAG.len()).filter(|w| *w == TAG).count() as u64
}

/// Verify an attestation at `now_secs` (the block's time, seconds since the Unix epoch) under
/// `policy`. A format the policy does not enable is refused like an invalid one.
pub fn verify(format: Format, quote: &[u8], collateral: &[u8], now_secs: u64, policy: &TeePolicy) -> Result<Verified, TeeError> {
    work(format, quote, collateral)?;
    if !policy.enables(format) {
        return Err(TeeError::Disabled(format));
    }
    match format {
        Format::SgxDcap | Format::TdxDcap => dcap::verify(format, quote, collateral, now_secs, policy),
        Format::SevSnp => snp::verify(quote, collateral, now_secs, policy),
        Format::Devnet => devnet::verify(quote, collateral, policy),
    }
}

/// [`verify`] an [`Evidence`], and require that it binds `expected` report data and carries a
/// measurement the chain trusts.
pub fn verify_bound(e: &Evidence, expected: &[u8; 64], now_secs: u64, policy: &TeePolicy, trusted: &[HexBytes]) -> Result<Verified, TeeError> {
    let v = verify(e.format, &e.quote, &e.collateral, now_secs, policy)?;
    if v.report_data != expected[..] {
        return Err(TeeError::ReportData);
    }
    if !trusted.iter().any(|m| m.0 == v.measurement) {
        return Err(TeeError::Measurement(hex::encode(&v.measurement)));
    }
    Ok(v)
}
