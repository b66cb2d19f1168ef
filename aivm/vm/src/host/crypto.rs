//! Hashes and signature verification.

use super::memory::{read, read_array, write};
use super::{charge, enter, Ctx, HostState};
use crate::verify::signature::{bls_verify, ed25519_verify};
use wasmtime::Linker;

/// Longest input to a hash function in one call.
pub const MAX_HASH_INPUT: u32 = 4 << 20;
/// Longest signed message.
pub const MAX_SIGNED_MESSAGE: u32 = 64 << 10;

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "sha256", |mut c: Ctx<'_>, ptr: i32, len: i32, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "sha256")?;
        let data = read(&mut c, "sha256", ptr, len, MAX_HASH_INPUT, "hash input")?;
        let price = c.data().schedule.sha256;
        charge(&mut c, "sha256", price.cost(data.len() as u64))?;
        use sha2::Digest;
        let h: [u8; 32] = sha2::Sha256::digest(&data).into();
        write(&mut c, "sha256", dst, &h)
    })?;
    l.func_wrap("aivm", "blake3", |mut c: Ctx<'_>, ptr: i32, len: i32, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "blake3")?;
        let data = read(&mut c, "blake3", ptr, len, MAX_HASH_INPUT, "hash input")?;
        let price = c.data().schedule.blake3;
        charge(&mut c, "blake3", price.cost(data.len() as u64))?;
        write(&mut c, "blake3", dst, blake3::hash(&data).as_bytes())
    })?;
    l.func_wrap("aivm", "ed25519_verify", |mut c: Ctx<'_>, pk: i32, msg: i32, msg_len: i32, sig: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "ed25519_verify")?;
        let pk: [u8; 32] = read_array(&mut c, "ed25519_verify", pk)?;
        let sig: [u8; 64] = read_array(&mut c, "ed25519_verify", sig)?;
        let m = read(&mut c, "ed25519_verify", msg, msg_len, MAX_SIGNED_MESSAGE, "signed message")?;
        let price = c.data().schedule.ed25519_verify;
        charge(&mut c, "ed25519_verify", price.cost(m.len() as u64))?;
        Ok(ed25519_verify(&pk, &m, &sig) as i32)
    })?;
    l.func_wrap("aivm", "bls_verify", |mut c: Ctx<'_>, pk: i32, msg: i32, msg_len: i32, sig: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "bls_verify")?;
        let pk: [u8; 48] = read_array(&mut c, "bls_verify", pk)?;
        let sig: [u8; 96] = read_array(&mut c, "bls_verify", sig)?;
        let m = read(&mut c, "bls_verify", msg, msg_len, MAX_SIGNED_MESSAGE, "signed message")?;
        let price = c.data().schedule.bls_verify;
        charge(&mut c, "bls_verify", price.cost(m.len() as u64))?;
        Ok(bls_verify(&pk, &m, &sig) as i32)
    })?;
    Ok(())
}
