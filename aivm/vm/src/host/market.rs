//! Reading the compute market from a contract (`spec/tee.md` §5).
//!
//! `job_result(id32, accept_provisional) -> i32`: −1 if job `id` has no result the caller
//! accepts (no such job, not yet verified, disputed, slashed; or provisional when
//! `accept_provisional` is 0); otherwise the result register holds one state byte (1
//! provisional, 2 final) and the output token ids (u32 LE), and the return value is its
//! length. A provisional result is one accepted on a TEE attestation whose challenge window
//! is still open: a contract that accepts it takes the risk that it is overturned.
//!
//! `hmm_quote(sku32, units, dst) -> i32` (HMM_QUOTE, seed 002 Table 4): −1 if the SKU has no
//! pool that can sell `units` (≥ 1) or no staked worker with room for them; otherwise 0, and
//! `dst` gets 48 bytes: the price in native units (u128 LE, the pool's `amount_in`, what a job
//! of that many units costs) and the worker (32 bytes), drawn by stake among those with room
//! (`spec/market.md` §6b). Every record read is priced before it is read, as a cold storage read.
//!
//! Acting on the market (`spec/market.md` §6c): the VM records each action in order and the
//! embedder carries them out after the call succeeds, with the contract as their sender (a
//! failed action fails the call). What an action may take from the contract's balance is
//! reserved at once, so `balance` and `transfer` in the rest of the call cannot spend it.
//!
//! - `hmm_swap(sku32, sell_units, amount_ptr, min_out_ptr) -> i32` (HMM_SWAP): trade the
//!   16-byte LE `amount` against the SKU's pool — native for compute units (`sell_units` 0)
//!   or the contract's units for native (1) — failing the call if less than `min_out` would
//!   come out. −1 (nothing recorded) if `amount` is 0, `sell_units` is neither 0 nor 1, the
//!   native sold exceeds what the contract can still pay, or the call has no actions left.
//! - `job_submit(sku32, prompt_ptr, prompt_len, max_new, sla_blocks, budget_ptr, flags, id_dst)
//!   -> i32`: submit a native market job — `prompt_len` token ids (u32 LE) at `prompt_ptr`,
//!   at most `max_new` new tokens, `sla_blocks`, paid out of the contract's balance at the
//!   pool's quote, at most the 16-byte `budget` (reserved now); `flags` bit 0 asks for the
//!   optimistic TEE track. 0 and the job's id (32 bytes) at `id_dst`, or −1 as for a swap
//!   (and for a prompt longer than 4 096 tokens, negative `max_new` or `sla_blocks`, or
//!   unknown `flags` bits).
//!   The job is checked, quoted and assigned when it is carried out; its result is read with
//!   `job_result`, and a refund on a slash goes to the contract.

use super::memory::{check_len, read, read_array, write};
use super::{charge, enter, Ctx, Exit, HostState, MarketAction};
use wasmtime::Linker;

/// Market actions one call may record: each is a market transaction's work for the embedder,
/// bounded here before any of it is recorded.
pub const MAX_MARKET_ACTIONS: usize = 16;
/// Prompt tokens one `job_submit` may copy (the market's own limit is lower, 512: it refuses
/// longer prompts when the job is carried out).
pub const MAX_JOB_PROMPT: u32 = 4096;

/// Take `amount` of the contract's balance for an action, if it can pay it and has actions
/// left; the action's record price is charged first.
fn reserve(c: &mut Ctx<'_>, op: &'static str, amount: u128) -> wasmtime::Result<bool> {
    let price = c.data().schedule.native_transfer;
    charge(c, op, Some(price))?;
    let d = c.data_mut();
    if d.market.len() >= MAX_MARKET_ACTIONS || amount > d.available() {
        return Ok(false);
    }
    d.sent += amount;
    Ok(true)
}

/// The id of the `index`-th job a contract submits in transaction `tx_hash`.
pub fn contract_job_id(tx_hash: &[u8; 32], contract: &[u8; 32], index: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("aivm 2026-12 contract job v1");
    h.update(tx_hash);
    h.update(contract);
    h.update(&index.to_le_bytes());
    *h.finalize().as_bytes()
}

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "job_result", |mut c: Ctx<'_>, id: i32, accept_provisional: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "job_result")?;
        let id: [u8; 32] = read_array(&mut c, "job_result", id)?;
        let price = c.data().schedule.storage_read;
        let first = price.cost(32).and_then(|g| g.checked_add(c.data().schedule.storage_read_cold));
        charge(&mut c, "job_result", first)?;
        let found = c.data_mut().view.job_result(&id).map_err(|b| wasmtime::Error::new(Exit::Blocked(b)))?;
        c.data_mut().register = None;
        let Some(job) = found else { return Ok(-1) };
        // The record's bytes are paid for whatever the answer.
        charge(&mut c, "job_result", price.per_item.checked_mul(job.bytes as u64))?;
        let height = c.data().ctx.block_height;
        let provisional = job.provisional_until.is_some_and(|until| height <= until);
        if provisional && accept_provisional == 0 {
            return Ok(-1);
        }
        let mut out = Vec::with_capacity(1 + 4 * job.output.len());
        out.push(if provisional { 1 } else { 2 });
        for t in &job.output {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let n = out.len() as i32;
        c.data_mut().register = Some(out);
        Ok(n)
    })?;
    l.func_wrap("aivm", "hmm_quote", |mut c: Ctx<'_>, sku: i32, units: i64, dst: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "hmm_quote")?;
        let sku: [u8; 32] = read_array(&mut c, "hmm_quote", sku)?;
        let read = c.data().schedule.storage_read;
        let record = read.base.checked_add(c.data().schedule.storage_read_cold);
        // The worker set first: it says how many more records the quote reads.
        charge(&mut c, "hmm_quote", record)?;
        if units < 1 {
            return Ok(-1);
        }
        let workers = c.data_mut().view.market_workers(&sku).map_err(|b| wasmtime::Error::new(Exit::Blocked(b)))?;
        let Some(n) = workers else { return Ok(-1) };
        // Params, pool, the set again (warm in the node, priced anyway) and each worker's bond.
        charge(&mut c, "hmm_quote", record.and_then(|g| g.checked_mul(n as u64 + 3)))?;
        let ctx = c.data().ctx.clone();
        let quote = c.data_mut().view.market_quote(&sku, units as u64, &ctx).map_err(|b| wasmtime::Error::new(Exit::Blocked(b)))?;
        let Some(q) = quote else { return Ok(-1) };
        charge(&mut c, "hmm_quote", read.per_item.checked_mul(q.bytes as u64))?;
        let mut out = [0u8; 48];
        out[..16].copy_from_slice(&q.price.to_le_bytes());
        out[16..].copy_from_slice(&q.worker);
        write(&mut c, "hmm_quote", dst, &out)?;
        Ok(0)
    })?;
    l.func_wrap("aivm", "hmm_swap", |mut c: Ctx<'_>, sku: i32, sell_units: i32, amount: i32, min_out: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "hmm_swap")?;
        let sku: [u8; 32] = read_array(&mut c, "hmm_swap", sku)?;
        let amount_in = u128::from_le_bytes(read_array(&mut c, "hmm_swap", amount)?);
        let min_out = u128::from_le_bytes(read_array(&mut c, "hmm_swap", min_out)?);
        let sell_units = match sell_units {
            0 => false,
            1 => true,
            _ => return Ok(-1),
        };
        if amount_in == 0 || !reserve(&mut c, "hmm_swap", if sell_units { 0 } else { amount_in })? {
            return Ok(-1);
        }
        c.data_mut().market.push(MarketAction::Swap { sku, sell_units, amount_in, min_out });
        Ok(0)
    })?;
    l.func_wrap(
        "aivm",
        "job_submit",
        |mut c: Ctx<'_>,
         sku: i32,
         prompt: i32,
         prompt_len: i32,
         max_new: i32,
         sla_blocks: i64,
         budget: i32,
         flags: i32,
         id_dst: i32|
         -> wasmtime::Result<i32> {
            enter(&mut c, "job_submit")?;
            let sku: [u8; 32] = read_array(&mut c, "job_submit", sku)?;
            let Ok(tokens) = check_len(prompt_len, MAX_JOB_PROMPT, "job prompt") else { return Ok(-1) };
            let bytes = read(&mut c, "job_submit", prompt, (tokens * 4) as i32, MAX_JOB_PROMPT * 4, "job prompt")?;
            let budget = u128::from_le_bytes(read_array(&mut c, "job_submit", budget)?);
            if max_new < 0 || sla_blocks < 0 || flags & !1 != 0 || !reserve(&mut c, "job_submit", budget)? {
                return Ok(-1);
            }
            let d = c.data();
            let id = contract_job_id(&d.ctx.tx_hash, &d.ctx.contract, d.market.len() as u32);
            write(&mut c, "job_submit", id_dst, &id)?;
            let prompt = bytes.chunks_exact(4).map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]])).collect();
            let job = MarketAction::SubmitJob { id, sku, prompt, max_new: max_new as u32, sla_blocks: sla_blocks as u64, budget, tee: flags & 1 == 1 };
            c.data_mut().market.push(job);
            Ok(0)
        },
    )?;
    Ok(())
}
