//! VERIFY opcodes.

use crate::sys;
use crate::tensor::Tensor;

/// KL(P‖Q) in nats as Q32.32 (`i64::MAX` when infinite). Both tensors are Q16 distributions.
pub fn kl_divergence(p: &Tensor, q: &Tensor) -> i64 {
    unsafe { sys::kl_divergence(p.handle(), q.handle()) }
}

/// Does BLAKE3(data) equal `hash`?
pub fn hash_compare(data: &[u8], hash: &[u8; 32]) -> bool {
    unsafe { sys::hash_compare(data.as_ptr(), data.len() as i32, hash.as_ptr()) == 1 }
}

/// MODEL_HASH over a model's canonical bytes.
pub fn model_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    unsafe { sys::model_hash(bytes.as_ptr(), bytes.len() as i32, out.as_mut_ptr()) };
    out
}

/// Is `leaf` at `index` of a `size`-leaf tree with `root`? `proof` lists siblings, leaf level first.
pub fn merkle_verify(root: &[u8; 32], leaf: &[u8], index: u64, size: u64, proof: &[[u8; 32]]) -> bool {
    unsafe {
        sys::merkle_verify(root.as_ptr(), leaf.as_ptr(), leaf.len() as i32, index as i64, size as i64, proof.as_ptr() as *const u8, proof.len() as i32) == 1
    }
}

/// An attestation format (TEE_VERIFY's `format`, `spec/tee.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeeFormat {
    /// Intel SGX DCAP quote; collateral: the `QuoteCollateralV3` JSON.
    SgxDcap = 1,
    /// Intel TDX DCAP quote; collateral: the `QuoteCollateralV3` JSON.
    TdxDcap = 2,
    /// AMD SEV-SNP report (1184 bytes); collateral: the chip's VCEK (DER).
    SevSnp = 3,
    /// Devnet software attestation (not a TEE; only where genesis enables it).
    Devnet = 4,
}

/// What TEE_VERIFY found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeeVerdict {
    /// Valid at the block's time under the chain's policy, binding the expected report data:
    /// the attested code's measurement (MRENCLAVE, MRTD or the SNP launch measurement).
    /// Whether to trust that code is the contract's decision.
    Valid(alloc::vec::Vec<u8>),
    /// A signature, certificate or format check failed.
    Invalid,
    /// The collateral is not valid at the block's time, or too old.
    Stale,
    /// The TCB status is not one the chain accepts.
    Status,
    /// A debug enclave or guest.
    Debug,
    /// Valid, but for other report data.
    OtherReportData,
}

/// Verify an attestation at the block's time and that it binds `report_data`. Traps on an
/// input over the caps (quote 16 KiB, collateral 64 KiB).
pub fn tee_verify(format: TeeFormat, quote: &[u8], collateral: &[u8], report_data: &[u8; 64]) -> TeeVerdict {
    let r = unsafe { sys::tee_verify(format as i32, quote.as_ptr(), quote.len() as i32, collateral.as_ptr(), collateral.len() as i32, report_data.as_ptr()) };
    match r {
        n if n >= 0 => {
            let mut m = alloc::vec![0u8; n as usize];
            unsafe { sys::result_read(m.as_mut_ptr()) };
            TeeVerdict::Valid(m)
        }
        -2 => TeeVerdict::Stale,
        -3 => TeeVerdict::Status,
        -4 => TeeVerdict::Debug,
        -5 => TeeVerdict::OtherReportData,
        _ => TeeVerdict::Invalid,
    }
}

/// A compute-market job's result (`job_result`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutput {
    /// Accepted on a TEE attestation and still open to challenge: it may be overturned.
    pub provisional: bool,
    pub tokens: alloc::vec::Vec<u32>,
}

/// The result of market job `id`: final ones always, provisional ones only if
/// `accept_provisional`. `None` while there is none the caller accepts.
pub fn job_result(id: &[u8; 32], accept_provisional: bool) -> Option<JobOutput> {
    let n = unsafe { sys::job_result(id.as_ptr(), accept_provisional as i32) };
    if n < 1 {
        return None;
    }
    let mut buf = alloc::vec![0u8; n as usize];
    unsafe { sys::result_read(buf.as_mut_ptr()) };
    let tokens = buf[1..].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Some(JobOutput { provisional: buf[0] == 1, tokens })
}
