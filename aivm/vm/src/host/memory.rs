//! Bounded, charged access to guest linear memory.

use super::{charge, host_err, Ctx};
use crate::error::HostError;

fn memory(caller: &Ctx<'_>) -> wasmtime::Result<wasmtime::Memory> {
    caller.data().memory.ok_or_else(|| host_err(HostError::NoMemory))
}

fn range(ptr: i32, len: usize, size: usize) -> Result<std::ops::Range<usize>, HostError> {
    let start = ptr as u32 as usize;
    let oob = HostError::OutOfBounds { ptr: ptr as u32, len: u32::try_from(len).unwrap_or(u32::MAX) };
    let end = start.checked_add(len).ok_or(oob.clone())?;
    if end > size {
        return Err(oob);
    }
    Ok(start..end)
}

/// Length argument from the guest: non-negative and at most `max`.
pub(crate) fn check_len(len: i32, max: u32, what: &'static str) -> Result<u32, HostError> {
    let l = len as u32;
    if len < 0 || l > max {
        return Err(HostError::TooLong { what, len: l, limit: max });
    }
    Ok(l)
}

/// Copy `len` bytes (at most `max`) out of guest memory, charging per byte first.
pub(crate) fn read(caller: &mut Ctx<'_>, op: &'static str, ptr: i32, len: i32, max: u32, what: &'static str) -> wasmtime::Result<Vec<u8>> {
    let len = check_len(len, max, what).map_err(host_err)?;
    let per = caller.data().schedule.copy_per_byte;
    charge(caller, op, per.checked_mul(len as u64))?;
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let r = range(ptr, len as usize, data.len()).map_err(host_err)?;
    Ok(data[r].to_vec())
}

/// Read a fixed-size array (keys, hashes, signatures).
pub(crate) fn read_array<const N: usize>(caller: &mut Ctx<'_>, op: &'static str, ptr: i32) -> wasmtime::Result<[u8; N]> {
    let v = read(caller, op, ptr, N as i32, N as u32, "fixed-size argument")?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

/// Copy `bytes` into guest memory at `ptr`, charging per byte first.
pub(crate) fn write(caller: &mut Ctx<'_>, op: &'static str, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let per = caller.data().schedule.copy_per_byte;
    charge(caller, op, per.checked_mul(bytes.len() as u64))?;
    let mem = memory(caller)?;
    let data = mem.data_mut(&mut *caller);
    let r = range(ptr, bytes.len(), data.len()).map_err(host_err)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}
