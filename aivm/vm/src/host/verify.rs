//! VERIFY opcodes: KL_DIVERGE, HASH_COMPARE, MODEL_HASH, MERKLE_VERIFY.

use super::crypto::MAX_HASH_INPUT;
use super::memory::{check_len, read, read_array, write};
use super::{charge, enter, host_err, Ctx, HostState};
use crate::verify::{hash, kl, merkle};
use wasmtime::Linker;

/// Most sibling hashes in one Merkle proof (trees of up to 2^64 leaves).
pub const MAX_PROOF_LEN: u32 = 64;
/// Longest Merkle leaf.
pub const MAX_LEAF: u32 = 64 << 10;

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "kl_divergence", |mut c: Ctx<'_>, p: i32, q: i32| -> wasmtime::Result<i64> {
        enter(&mut c, "kl_divergence")?;
        let n = c.data().arena.get(p as u32).map_err(host_err)?.len();
        let price = c.data().schedule.kl;
        charge(&mut c, "kl_divergence", price.cost(n as u64))?;
        let arena = &c.data().arena;
        let (tp, tq) = (arena.get(p as u32).map_err(host_err)?, arena.get(q as u32).map_err(host_err)?);
        let (vp, vq) = (tp.as_q16().map_err(host_err)?, tq.as_q16().map_err(host_err)?);
        kl::kl_divergence_q16_on(&*c.data().backend, vp, vq).map_err(host_err)
    })?;
    l.func_wrap("aivm", "hash_compare", |mut c: Ctx<'_>, ptr: i32, len: i32, hash_ptr: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "hash_compare")?;
        let data = read(&mut c, "hash_compare", ptr, len, MAX_HASH_INPUT, "hash input")?;
        let expected: [u8; 32] = read_array(&mut c, "hash_compare", hash_ptr)?;
        let price = c.data().schedule.blake3;
        charge(&mut c, "hash_compare", price.cost(data.len() as u64))?;
        Ok(hash::hash_compare(&data, &expected) as i32)
    })?;
    l.func_wrap("aivm", "model_hash", |mut c: Ctx<'_>, ptr: i32, len: i32, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "model_hash")?;
        let data = read(&mut c, "model_hash", ptr, len, MAX_HASH_INPUT, "model bytes")?;
        let price = c.data().schedule.blake3;
        charge(&mut c, "model_hash", price.cost(data.len() as u64))?;
        write(&mut c, "model_hash", dst, &hash::model_hash(&data))
    })?;
    l.func_wrap(
        "aivm",
        "merkle_verify",
        |mut c: Ctx<'_>, root: i32, leaf: i32, leaf_len: i32, index: i64, size: i64, proof: i32, proof_len: i32| -> wasmtime::Result<i32> {
            enter(&mut c, "merkle_verify")?;
            let levels = check_len(proof_len, MAX_PROOF_LEN, "merkle proof").map_err(host_err)?;
            let root: [u8; 32] = read_array(&mut c, "merkle_verify", root)?;
            let leaf = read(&mut c, "merkle_verify", leaf, leaf_len, MAX_LEAF, "merkle leaf")?;
            let raw = read(&mut c, "merkle_verify", proof, (levels * 32) as i32, MAX_PROOF_LEN * 32, "merkle proof")?;
            let b3 = c.data().schedule.blake3;
            let per_level = c.data().schedule.merkle_per_level;
            let gas = b3.cost(leaf.len() as u64).and_then(|g| g.checked_add(per_level.cost(levels as u64)?));
            charge(&mut c, "merkle_verify", gas)?;
            let siblings: Vec<merkle::Hash> = raw.chunks_exact(32).map(|s| s.try_into().unwrap_or([0; 32])).collect();
            let ok = index >= 0 && size > 0 && merkle::verify(&root, &merkle::leaf_hash(&leaf), index as u64, size as u64, &siblings);
            Ok(ok as i32)
        },
    )?;
    Ok(())
}
