//! Real attestations from real hardware (`aivm/tee/vectors/`, copied unchanged with their
//! licences from dcap-qvl and virtee/sev; `vectors/README.md` says what each verifies to).
//! For tests, `gas-bench --tee` and examples: nothing on the chain reads them.

pub const SGX_QUOTE: &[u8] = include_bytes!("../vectors/intel-dcap/sgx_quote");
pub const SGX_COLLATERAL: &[u8] = include_bytes!("../vectors/intel-dcap/sgx_quote_collateral.json");
pub const TDX_QUOTE: &[u8] = include_bytes!("../vectors/intel-dcap/tdx_quote");
pub const TDX_COLLATERAL: &[u8] = include_bytes!("../vectors/intel-dcap/tdx_quote_collateral.json");
pub const TDX_OLD_QUOTE: &[u8] = include_bytes!("../vectors/intel-dcap/tdx_quote_outdated");
pub const TDX_OLD_COLLATERAL: &[u8] = include_bytes!("../vectors/intel-dcap/tdx_quote_outdated_collateral.json");
pub const SNP_REPORT_HEX: &str = include_str!("../vectors/amd-sev-snp/report_milan.hex");
pub const SNP_VCEK: &[u8] = include_bytes!("../vectors/amd-sev-snp/vcek_milan.der");
pub const SNP_CHAIN_PEM: &[u8] = include_bytes!("../vectors/amd-sev-snp/cert_chain_milan");

/// A time inside the Milan VCEK's validity (2023-04-03 to 2030-04-03): 2025-12-02.
pub const SNP_NOW: u64 = 1_764_633_600;

/// The SEV-SNP report's bytes.
pub fn snp_report() -> Vec<u8> {
    hex::decode(SNP_REPORT_HEX.trim()).unwrap_or_default()
}

/// The seconds `[from, until)` in which DCAP `collateral` is valid (the verifier's own window:
/// `spec/tee.md` §2). `None` for malformed collateral.
pub fn dcap_window(collateral: &[u8]) -> Option<(u64, u64)> {
    let c: dcap_qvl::QuoteCollateralV3 = serde_json::from_slice(collateral).ok()?;
    crate::dcap::collateral_window(&c).ok().filter(|(from, until)| from < until)
}
