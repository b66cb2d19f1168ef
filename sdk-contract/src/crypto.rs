//! Hashes and signature checks, computed by the host.

use crate::sys;

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    unsafe { sys::sha256(data.as_ptr(), data.len() as i32, out.as_mut_ptr()) };
    out
}

pub fn blake3(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    unsafe { sys::blake3(data.as_ptr(), data.len() as i32, out.as_mut_ptr()) };
    out
}

pub fn ed25519_verify(public_key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    unsafe { sys::ed25519_verify(public_key.as_ptr(), msg.as_ptr(), msg.len() as i32, sig.as_ptr()) == 1 }
}

/// BLS12-381 min-pk (48-byte key, 96-byte signature).
pub fn bls_verify(public_key: &[u8; 48], msg: &[u8], sig: &[u8; 96]) -> bool {
    unsafe { sys::bls_verify(public_key.as_ptr(), msg.as_ptr(), msg.len() as i32, sig.as_ptr()) == 1 }
}
