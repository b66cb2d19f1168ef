//! Intel SGX and TDX DCAP quotes, verified offline by `dcap-qvl` against the collateral the
//! worker supplies (Intel's root CA is built in; the collateral is signed under it).

use crate::{Format, TeeError, TeePolicy, Verified};
use dcap_qvl::policy::{Policy, QuoteClaims};
use dcap_qvl::quote::Report;
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::QuoteCollateralV3;
use parity_scale_codec::Encode;
use x509_cert::der::Decode;

/// `tee_type` of SGX and TDX quotes.
const TEE_SGX: u32 = 0;
const TEE_TDX: u32 = 0x81;

/// Claims are wanted whatever they say: the chain's own policy is applied after.
struct ClaimsOnly;

impl Policy for ClaimsOnly {
    fn validate(&self, _: &QuoteClaims) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The seconds `[from, until)` in which `c` is valid: from its latest issue date (TCB info, QE
/// identity) and CRL `thisUpdate`, through the JSONs' `nextUpdate` inclusive, and until a
/// CRL's `nextUpdate` (RFC 5280: a CRL is expired from then on; webpki agrees).
pub(crate) fn collateral_window(c: &QuoteCollateralV3) -> Result<(u64, u64), TeeError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Dates {
        issue_date: String,
        next_update: String,
    }
    let (mut from, mut until) = (0u64, u64::MAX);
    for (json, what) in [(&c.tcb_info, "TCB info"), (&c.qe_identity, "QE identity")] {
        let d: Dates = serde_json::from_str(json).map_err(|e| TeeError::Malformed(format!("{what}: {e}")))?;
        let secs = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .and_then(|t| u64::try_from(t.timestamp()).ok())
                .ok_or_else(|| TeeError::Malformed(format!("{what}: bad date {s}")))
        };
        from = from.max(secs(&d.issue_date)?);
        until = until.min(secs(&d.next_update)?.saturating_add(1));
    }
    for (der, what) in [(&c.root_ca_crl, "root CA CRL"), (&c.pck_crl, "PCK CRL")] {
        let crl = x509_cert::crl::CertificateList::from_der(der).map_err(|e| TeeError::Malformed(format!("{what}: {e}")))?;
        let t = &crl.tbs_cert_list;
        from = from.max(t.this_update.to_unix_duration().as_secs());
        if let Some(n) = &t.next_update {
            until = until.min(n.to_unix_duration().as_secs());
        }
    }
    Ok((from, until))
}

/// The quote's bytes must be exactly its structure, then nothing but zero padding (TDX quote
/// buffers come zero-padded): no other bytes can ride along with a valid quote.
fn canonical(quote: &[u8]) -> Result<(), TeeError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| TeeError::Malformed(format!("quote: {e}")))?;
    let encoded = parsed.encode();
    if !quote.starts_with(&encoded) || quote[encoded.len()..].iter().any(|b| *b != 0) {
        return Err(TeeError::Malformed("the quote has bytes outside its structure".into()));
    }
    Ok(())
}

pub(crate) fn verify(format: Format, quote: &[u8], collateral: &[u8], now: u64, policy: &TeePolicy) -> Result<Verified, TeeError> {
    canonical(quote)?;
    let c: QuoteCollateralV3 = serde_json::from_slice(collateral).map_err(|e| TeeError::Malformed(format!("collateral: {e}")))?;
    // The validity window is checked first, so that expired collateral is reported as such
    // (dcap-qvl refuses it too, as one error among many).
    let (from, until) = collateral_window(&c)?;
    if now < from || now >= until {
        return Err(TeeError::Stale { now, why: format!("the collateral is valid from {from} until {until}") });
    }
    let verifier = QuoteVerifier::new_prod().with_config::<dcap_qvl::configs::RustCryptoConfig>();
    let claims = verifier.verify_with_policy(quote, c, now, &ClaimsOnly).map_err(|e| {
        let why = format!("{e:#}");
        // A platform below every TCB level Intel still lists predates them all: out of date
        // (Intel's QVL says "TCB not supported"; the vectors' README calls it out of date).
        if why.contains("No matching TCB level") {
            TeeError::Status { status: "OutOfDate".into(), advisories: Vec::new() }
        } else {
            TeeError::Invalid(why)
        }
    })?;
    let expected = if format == Format::SgxDcap { TEE_SGX } else { TEE_TDX };
    if claims.tee_type != expected {
        return Err(TeeError::Malformed(format!("a {format} quote has TEE type {:#x}", claims.tee_type)));
    }
    let age = now.saturating_sub(claims.latest_issue_date);
    if age > policy.max_age_secs {
        return Err(TeeError::Stale { now, why: format!("collateral issued {age} s ago; at most {} s", policy.max_age_secs) });
    }
    let status = claims.tcb.status.to_string();
    let advisories = claims.tcb.advisory_ids.clone();
    if !policy.accepts_status(&status, &advisories) {
        return Err(TeeError::Status { status, advisories });
    }
    let (measurement, report_data) = match &claims.report {
        Report::SgxEnclave(r) => (r.mr_enclave.to_vec(), r.report_data),
        other => {
            let td = other.as_td10().ok_or_else(|| TeeError::Malformed("unknown report body".into()))?;
            (td.mr_td.to_vec(), td.report_data)
        }
    };
    Ok(Verified { format, measurement, report_data: report_data.to_vec(), status, advisories })
}
