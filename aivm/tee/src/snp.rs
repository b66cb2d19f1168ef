//! AMD SEV-SNP attestation reports, verified by the `sev` crate under AMD's ARK and ASK (built
//! into it for Milan, Genoa and Turin) and the chip's VCEK, which the worker supplies as the
//! collateral. The VCEK certifies one chip (its `hwID` extension) at one TCB (its SPL
//! extensions): both must equal the report's, or an old VCEK could vouch for a newer report.

use crate::{Format, SnpTcb, TeeError, TeePolicy, Verified};
use sev::certs::snp::{builtin, ca, Certificate, Verifiable};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use x509_cert::der::{Decode, Encode};

/// Bytes of an attestation report (versions 2–5).
pub const REPORT_LEN: usize = 1184;
/// Where the signature starts; everything before it is signed.
const SIGNATURE_AT: usize = 0x2A0;

/// AMD's VCEK extensions (VCEK specification, 57230 §3.1).
const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_HW_ID: &str = "1.3.6.1.4.1.3704.1.4";
const OID_PRODUCT: &str = "1.3.6.1.4.1.3704.1.2";

fn invalid(e: impl std::fmt::Display) -> TeeError {
    TeeError::Invalid(e.to_string())
}

/// The VCEK's TCB and chip id, and its validity window (Unix seconds).
struct VcekFacts {
    tcb: SnpTcb,
    hw_id: Vec<u8>,
    /// The `productName` extension's bytes (e.g. an IA5String "Milan-B0").
    product: Vec<u8>,
    not_before: u64,
    not_after: u64,
}

fn facts(der: &[u8]) -> Result<VcekFacts, TeeError> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| TeeError::Malformed(format!("VCEK: {e}")))?;
    let v = &cert.tbs_certificate.validity;
    let (not_before, not_after) = (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs());
    let mut spl = [None::<u8>; 4];
    let mut hw_id = None;
    let mut product = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let raw = ext.extn_value.as_bytes();
        let slot = match oid.as_str() {
            OID_BL_SPL => 0,
            OID_TEE_SPL => 1,
            OID_SNP_SPL => 2,
            OID_UCODE_SPL => 3,
            OID_HW_ID => {
                // Raw 64 bytes, or wrapped in an OCTET STRING by some KDS versions.
                let inner = x509_cert::der::asn1::OctetString::from_der(raw).map(|o| o.as_bytes().to_vec()).unwrap_or_else(|_| raw.to_vec());
                hw_id = Some(inner);
                continue;
            }
            OID_PRODUCT => {
                product = raw.to_vec();
                continue;
            }
            _ => continue,
        };
        let n = x509_cert::der::asn1::Uint::from_der(raw).map_err(|e| TeeError::Malformed(format!("VCEK SPL {oid}: {e}")))?;
        let b = n.as_bytes();
        let value = match b {
            [v] => *v,
            [] => 0,
            _ => return Err(TeeError::Malformed(format!("VCEK SPL {oid} is over 255"))),
        };
        spl[slot] = Some(value);
    }
    let [Some(bootloader), Some(tee), Some(snp), Some(microcode)] = spl else {
        return Err(TeeError::Malformed("the VCEK lacks a TCB extension".into()));
    };
    let hw_id = hw_id.ok_or_else(|| TeeError::Malformed("the VCEK lacks its hwID".into()))?;
    Ok(VcekFacts { tcb: SnpTcb { bootloader, tee, snp, microcode }, hw_id, product, not_before, not_after })
}

/// AMD's built-in ARK/ASK pairs by product name, each kept only if the ARK signs itself and
/// the ASK (checked once per process: they are constants).
fn roots() -> &'static [(&'static str, ca::Chain)] {
    static ROOTS: std::sync::OnceLock<Vec<(&'static str, ca::Chain)>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let pair = |ark: std::io::Result<Certificate>, ask: std::io::Result<Certificate>| Some(ca::Chain { ark: ark.ok()?, ask: ask.ok()? });
        [
            ("Milan", pair(builtin::milan::ark(), builtin::milan::ask())),
            ("Genoa", pair(builtin::genoa::ark(), builtin::genoa::ask())),
            ("Turin", pair(builtin::turin::ark(), builtin::turin::ask())),
        ]
        .into_iter()
        .filter_map(|(name, c)| Some((name, c?)))
        .filter(|(_, c)| c.verify().is_ok())
        .collect()
    })
}

pub(crate) fn verify(quote: &[u8], collateral: &[u8], now: u64, policy: &TeePolicy) -> Result<Verified, TeeError> {
    if quote.len() != REPORT_LEN {
        return Err(TeeError::Malformed(format!("an SEV-SNP report is {REPORT_LEN} bytes, not {}", quote.len())));
    }
    // r and s are 48-byte P-384 scalars in 72-byte fields: the rest must be zero, as the
    // verifier never reads it.
    let sig = &quote[SIGNATURE_AT..];
    if sig[48..72].iter().chain(&sig[72 + 48..144]).any(|b| *b != 0) {
        return Err(TeeError::Malformed("non-zero padding in the report's signature".into()));
    }
    let report = AttestationReport::from_bytes(quote).map_err(|e| TeeError::Malformed(format!("report: {e}")))?;
    // The signature is checked over the re-encoded report: it must be the bytes given, or a
    // change in a field the parser drops would go unnoticed.
    if report.to_bytes().map_err(|e| TeeError::Malformed(format!("report: {e}")))?[..] != *quote {
        return Err(TeeError::Malformed("the report is not in canonical form".into()));
    }
    let f = facts(collateral)?;
    if now < f.not_before || now > f.not_after {
        return Err(TeeError::Stale { now, why: format!("the VCEK is valid from {} to {}", f.not_before, f.not_after) });
    }
    let vek = Certificate::from_der(collateral).map_err(|e| TeeError::Malformed(format!("VCEK: {e}")))?;
    // The VCEK must be exactly the bytes parsed above (no trailing data).
    if x509_cert::Certificate::from(vek.clone()).to_der().map_err(invalid)? != collateral {
        return Err(TeeError::Malformed("trailing bytes after the VCEK".into()));
    }
    // The VCEK names its product: only that root's ASK is tried (one RSA check, not three).
    let (_, ca) = roots()
        .iter()
        .find(|(name, _)| f.product.windows(name.len()).any(|w| w == name.as_bytes()))
        .ok_or_else(|| invalid("the VCEK names no product with a known AMD root"))?;
    (&ca.ask, &vek).verify().map_err(|e| invalid(format!("the VCEK is not signed by AMD's ASK: {e}")))?;
    (&vek, &report).verify().map_err(invalid)?;
    let reported = SnpTcb {
        bootloader: report.reported_tcb.bootloader,
        tee: report.reported_tcb.tee,
        snp: report.reported_tcb.snp,
        microcode: report.reported_tcb.microcode,
    };
    if reported != f.tcb {
        return Err(invalid(format!("the report's TCB {reported:?} is not the VCEK's {:?}", f.tcb)));
    }
    if f.hw_id != report.chip_id[..] {
        return Err(invalid("the VCEK belongs to another chip"));
    }
    if report.policy.debug_allowed() {
        return Err(TeeError::Debug);
    }
    if !reported.meets(&policy.snp_min_tcb) {
        return Err(TeeError::Status { status: "OutOfDate".into(), advisories: Vec::new() });
    }
    Ok(Verified {
        format: Format::SevSnp,
        measurement: report.measurement.to_vec(),
        report_data: report.report_data.to_vec(),
        status: "UpToDate".into(),
        advisories: Vec::new(),
    })
}
