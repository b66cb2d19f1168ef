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

use super::memory::{read_array, write};
use super::{charge, enter, Ctx, Exit, HostState};
use wasmtime::Linker;

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
    Ok(())
}
