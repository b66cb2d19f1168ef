//! MODEL opcodes: MODEL_LOAD, MODEL_INFER, FREIVALDS_VERIFY (MODEL_HASH is in `verify.rs`).
//!
//! Models come from the VM's [`ModelRegistry`] (the node's artifact store), by hash. A model
//! that is not there is a status code (−1), not a trap: which artifacts a node has is data.

use super::memory::{read, read_array};
use super::{charge, enter, host_err, Ctx, HostState};
use crate::error::HostError;
use crate::model::audit::{check_opening, OpenGemm};
use crate::model::commit::run_committed;
use wasmtime::Linker;

/// Longest MODEL_INFER input (token ids or prompt text).
pub const MAX_INFER_INPUT: u32 = 64 << 10;
/// Most tokens one MODEL_INFER may generate.
pub const MAX_NEW_TOKENS: u32 = 1024;
/// Longest FREIVALDS_VERIFY opening.
pub const MAX_OPENING: u32 = 32 << 20;

fn arg(m: impl Into<String>) -> wasmtime::Error {
    host_err(HostError::Argument(m.into()))
}

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // model_load(hash_ptr) -> handle ≥ 0, or −1 if the node does not have the model.
    l.func_wrap("aivm", "model_load", |mut c: Ctx<'_>, hash_ptr: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "model_load")?;
        let hash: [u8; 32] = read_array(&mut c, "model_load", hash_ptr)?;
        let Some(reg) = c.data().models.clone() else { return Ok(-1) };
        let Some(size) = reg.size_of(&hash) else { return Ok(-1) };
        let price = c.data().schedule.model_load;
        charge(&mut c, "model_load", price.cost(size.div_ceil(1024)))?;
        match reg.engine(&hash) {
            Ok(e) => {
                let loaded = &mut c.data_mut().loaded;
                if loaded.len() >= 16 {
                    return Err(arg("more than 16 models loaded in one call"));
                }
                loaded.push(e);
                Ok(loaded.len() as i32 - 1)
            }
            Err(crate::model::store::ArtifactError::Backend(e)) => Err(host_err(e)),
            Err(_) => Ok(-1),
        }
    })?;
    // model_infer(handle, kind, ptr, len, max_new) -> result length. kind 0: token ids (u32
    // LE), kind 1: UTF-8 prompt put in the model's chat template. Result register:
    // n u32, n token ids u32, receipt hash (32), gemm root (32).
    l.func_wrap("aivm", "model_infer", |mut c: Ctx<'_>, h: i32, kind: i32, ptr: i32, len: i32, max_new: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "model_infer")?;
        let engine = c.data().loaded.get(h as usize).cloned().ok_or_else(|| arg(format!("no model handle {h}")))?;
        let input = read(&mut c, "model_infer", ptr, len, MAX_INFER_INPUT, "inference input")?;
        let max_new = u32::try_from(max_new).ok().filter(|&n| (1..=MAX_NEW_TOKENS).contains(&n)).ok_or_else(|| arg("max_new out of range"))?;
        // Gas first: for text, every token is at least one byte, so the templated text's
        // length bounds the prompt's token count before any tokenizing is done.
        let text = match kind {
            0 if input.len() % 4 == 0 => None,
            1 => Some(engine.tokenizer.chat_prompt(std::str::from_utf8(&input).map_err(|_| arg("prompt is not UTF-8"))?)),
            _ => return Err(arg("bad inference input kind or length")),
        };
        let prompt_bound = text.as_ref().map_or(input.len() / 4, String::len) as u64;
        let sched = &c.data().schedule;
        let gas = engine.infer_gas(prompt_bound, max_new as u64, |m, a, t, w, n| sched.model_infer_cost(m, a, t, w, n));
        charge(&mut c, "model_infer", gas)?;
        let prompt: Vec<u32> = match text {
            Some(t) => engine.tokenizer.encode(&t),
            None => input.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        };
        let (receipt, _trace) = run_committed(&engine, &[prompt], max_new as usize).map_err(|e| match e {
            crate::model::InferError::Backend(b) => host_err(b),
            e => arg(e.to_string()),
        })?;
        let out = &receipt.outputs[0];
        let mut reg = Vec::with_capacity(4 + out.len() * 4 + 64);
        reg.extend((out.len() as u32).to_le_bytes());
        out.iter().for_each(|t| reg.extend(t.to_le_bytes()));
        reg.extend(receipt.hash());
        reg.extend(receipt.gemm_root);
        let n = reg.len() as i32;
        c.data_mut().register = Some(reg);
        Ok(n)
    })?;
    // freivalds_verify(handle, ptr, len, ctx_ptr) -> 1 valid, 0 not. ctx: receipt hash (32),
    // gemm root (32), gemm count (u64 LE), seed (32); the opening is `OpenGemm::encode`'s form.
    l.func_wrap("aivm", "freivalds_verify", |mut c: Ctx<'_>, h: i32, ptr: i32, len: i32, ctx_ptr: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "freivalds_verify")?;
        let engine = c.data().loaded.get(h as usize).cloned().ok_or_else(|| arg(format!("no model handle {h}")))?;
        let ctx: [u8; 104] = read_array(&mut c, "freivalds_verify", ctx_ptr)?;
        let bytes = read(&mut c, "freivalds_verify", ptr, len, MAX_OPENING, "GEMM opening")?;
        let Some(og) = OpenGemm::decode(&bytes) else { return Ok(0) };
        let elems = crate::model::audit::opening_work(&og.data.commit, og.data.rhs.is_some());
        let price = c.data().schedule.freivalds;
        let hashed = c.data().schedule.blake3;
        let gas = elems.and_then(|e| price.cost(e)).and_then(|g| g.checked_add(hashed.cost(bytes.len() as u64)?));
        charge(&mut c, "freivalds_verify", gas)?;
        let part = |i: usize| -> [u8; 32] { ctx[i * 32..(i + 1) * 32].try_into().unwrap_or([0; 32]) };
        let count = u64::from_le_bytes(ctx[64..72].try_into().unwrap_or([0; 8]));
        let seed: [u8; 32] = ctx[72..104].try_into().unwrap_or([0; 32]);
        Ok(check_opening(&engine.sku, &part(0), &part(1), count, &seed, &og) as i32)
    })?;
    Ok(())
}
