//! Reading the compute market from a contract (`spec/tee.md` §5).
//!
//! `job_result(id32, accept_provisional) -> i32`: −1 if job `id` has no result the caller
//! accepts (no such job, not yet verified, disputed, slashed; or provisional when
//! `accept_provisional` is 0); otherwise the result register holds one state byte (1
//! provisional, 2 final) and the output token ids (u32 LE), and the return value is its
//! length. A provisional result is one accepted on a TEE attestation whose challenge window
//! is still open: a contract that accepts it takes the risk that it is overturned.

use super::memory::read_array;
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
    Ok(())
}
