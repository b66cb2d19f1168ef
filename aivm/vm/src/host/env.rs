//! Call input and output, storage, context, events, and ending a call.

use super::memory::{read, write};
use super::{charge, enter, host_err, Ctx, Event, Exit, HostState};
use crate::error::HostError;
use wasmtime::Linker;

/// Longest storage key.
pub const MAX_KEY: u32 = 1024;
/// Longest storage value.
pub const MAX_VALUE: u32 = 256 << 10;
/// Longest call input (checked by `Vm::call` before the contract runs).
pub const MAX_INPUT: usize = 1 << 20;
/// Longest return data.
pub const MAX_RETURN: u32 = 1 << 20;
/// Longest abort or revert message kept (longer ones are truncated, not refused).
pub const MAX_MESSAGE: u32 = 4096;
/// Longest event topic and event data.
pub const MAX_TOPIC: u32 = 256;
pub const MAX_EVENT_DATA: u32 = 64 << 10;
/// Most events one call may emit, and most bytes (topics and data) in them. Gas alone let one
/// call hold millions of empty events (12 GB in `aivm call`); a block's receipts live in one
/// stored value.
pub const MAX_EVENTS: usize = 1024;
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most storage writes (`storage_set` and `storage_remove` calls) one call may make, and most
/// key and value bytes they carry together.
pub const MAX_WRITES: usize = 16_384;
pub const MAX_WRITE_BYTES: usize = 8 << 20;

/// Refuse an output that would pass a per-call cap, before it is kept.
fn within(what: &'static str, count: usize, max_count: usize, bytes: usize, max_bytes: usize) -> wasmtime::Result<()> {
    if count > max_count || bytes > max_bytes {
        return Err(host_err(HostError::CallLimit { what, max_count, max_bytes }));
    }
    Ok(())
}

fn message(caller: &mut Ctx<'_>, op: &'static str, ptr: i32, len: i32) -> wasmtime::Result<String> {
    let len = if len < 0 { 0 } else { len.min(MAX_MESSAGE as i32) };
    let bytes = read(caller, op, ptr, len, MAX_MESSAGE, "message")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "input_len", |mut c: Ctx<'_>| -> wasmtime::Result<i32> {
        enter(&mut c, "input_len")?;
        Ok(c.data().input.len() as i32)
    })?;
    l.func_wrap("aivm", "input_read", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "input_read")?;
        let input = std::mem::take(&mut c.data_mut().input);
        let r = write(&mut c, "input_read", dst, &input);
        c.data_mut().input = input;
        r
    })?;
    l.func_wrap("aivm", "return_data", |mut c: Ctx<'_>, ptr: i32, len: i32| -> wasmtime::Result<()> {
        enter(&mut c, "return_data")?;
        if c.data().output.is_some() {
            return Err(host_err(HostError::ReturnTwice));
        }
        // Receipt bytes, priced before they are read (a bad length is refused by `read`).
        let n = u64::try_from(len).unwrap_or(0).min(MAX_RETURN as u64);
        let per = c.data().schedule.receipt_per_byte;
        charge(&mut c, "return_data", per.checked_mul(n))?;
        let v = read(&mut c, "return_data", ptr, len, MAX_RETURN, "return data")?;
        c.data_mut().output = Some(v);
        Ok(())
    })?;
    l.func_wrap("aivm", "revert", |mut c: Ctx<'_>, ptr: i32, len: i32| -> wasmtime::Result<()> {
        enter(&mut c, "revert")?;
        let m = message(&mut c, "revert", ptr, len)?;
        Err(wasmtime::Error::new(Exit::Revert(m)))
    })?;
    l.func_wrap("aivm", "abort", |mut c: Ctx<'_>, ptr: i32, len: i32| -> wasmtime::Result<()> {
        enter(&mut c, "abort")?;
        let m = message(&mut c, "abort", ptr, len)?;
        Err(wasmtime::Error::new(Exit::Abort(m)))
    })?;
    l.func_wrap("aivm", "result_read", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "result_read")?;
        let reg = c.data_mut().register.take().ok_or_else(|| host_err(HostError::NoResult))?;
        write(&mut c, "result_read", dst, &reg)
    })?;
    l.func_wrap("aivm", "storage_get", |mut c: Ctx<'_>, kptr: i32, klen: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "storage_get")?;
        let key = read(&mut c, "storage_get", kptr, klen, MAX_KEY, "storage key")?;
        let price = c.data().schedule.storage_read;
        charge(&mut c, "storage_get", price.cost(key.len() as u64))?;
        // The first read of a key that this call has not written goes to the state (maybe
        // the disk): it pays the cold surcharge before it is made.
        let cold = !c.data().writes.contains_key(&key) && !c.data().warm.contains(&key);
        if cold {
            let surcharge = c.data().schedule.storage_read_cold;
            charge(&mut c, "storage_get", Some(surcharge))?;
        }
        let d = c.data_mut();
        let value = match d.writes.get(&key) {
            Some(v) => v.clone(),
            None => d.view.get(&key).map_err(|b| wasmtime::Error::new(Exit::Blocked(b)))?,
        };
        if cold {
            d.warm.insert(key);
        }
        let Some(value) = value else {
            c.data_mut().register = None;
            return Ok(-1);
        };
        // The value's bytes are paid for before the guest can read them.
        let per = c.data().schedule.storage_read.per_item;
        charge(&mut c, "storage_get", per.checked_mul(value.len() as u64))?;
        let n = value.len() as i32;
        c.data_mut().register = Some(value);
        Ok(n)
    })?;
    l.func_wrap("aivm", "storage_set", |mut c: Ctx<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> wasmtime::Result<()> {
        enter(&mut c, "storage_set")?;
        let key = read(&mut c, "storage_set", kptr, klen, MAX_KEY, "storage key")?;
        let value = read(&mut c, "storage_set", vptr, vlen, MAX_VALUE, "storage value")?;
        let (n, bytes) = (c.data().write_count + 1, c.data().write_bytes + key.len() + value.len());
        within("storage writes", n, MAX_WRITES, bytes, MAX_WRITE_BYTES)?;
        let price = c.data().schedule.storage_write;
        charge(&mut c, "storage_set", price.cost((key.len() + value.len()) as u64))?;
        (c.data_mut().write_count, c.data_mut().write_bytes) = (n, bytes);
        c.data_mut().writes.insert(key, Some(value));
        Ok(())
    })?;
    l.func_wrap("aivm", "storage_remove", |mut c: Ctx<'_>, kptr: i32, klen: i32| -> wasmtime::Result<()> {
        enter(&mut c, "storage_remove")?;
        let key = read(&mut c, "storage_remove", kptr, klen, MAX_KEY, "storage key")?;
        let (n, bytes) = (c.data().write_count + 1, c.data().write_bytes + key.len());
        within("storage writes", n, MAX_WRITES, bytes, MAX_WRITE_BYTES)?;
        let price = c.data().schedule.storage_write;
        charge(&mut c, "storage_remove", price.cost(key.len() as u64))?;
        (c.data_mut().write_count, c.data_mut().write_bytes) = (n, bytes);
        c.data_mut().writes.insert(key, None);
        Ok(())
    })?;
    l.func_wrap("aivm", "caller", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "caller")?;
        let v = c.data().ctx.caller;
        write(&mut c, "caller", dst, &v)
    })?;
    l.func_wrap("aivm", "contract_address", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "contract_address")?;
        let v = c.data().ctx.contract;
        write(&mut c, "contract_address", dst, &v)
    })?;
    l.func_wrap("aivm", "block_height", |mut c: Ctx<'_>| -> wasmtime::Result<i64> {
        enter(&mut c, "block_height")?;
        Ok(c.data().ctx.block_height as i64)
    })?;
    l.func_wrap("aivm", "block_time", |mut c: Ctx<'_>| -> wasmtime::Result<i64> {
        enter(&mut c, "block_time")?;
        Ok(c.data().ctx.block_time_ms as i64)
    })?;
    l.func_wrap("aivm", "emit_event", |mut c: Ctx<'_>, tptr: i32, tlen: i32, dptr: i32, dlen: i32| -> wasmtime::Result<()> {
        enter(&mut c, "emit_event")?;
        let topic = read(&mut c, "emit_event", tptr, tlen, MAX_TOPIC, "event topic")?;
        let data = read(&mut c, "emit_event", dptr, dlen, MAX_EVENT_DATA, "event data")?;
        let (n, bytes) = (c.data().events.len() + 1, c.data().event_bytes + topic.len() + data.len());
        within("events", n, MAX_EVENTS, bytes, MAX_EVENT_BYTES)?;
        let price = c.data().schedule.event;
        charge(&mut c, "emit_event", price.cost((topic.len() + data.len()) as u64))?;
        c.data_mut().event_bytes = bytes;
        c.data_mut().events.push(Event { topic, data });
        Ok(())
    })?;
    Ok(())
}
