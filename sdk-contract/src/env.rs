//! Call context, input and output, ending a call.

use crate::sys;
use crate::types::{Address, Bytes32};
use alloc::vec;
use alloc::vec::Vec;

/// The raw call input.
pub fn input() -> Vec<u8> {
    // SAFETY: the buffer is exactly `input_len` bytes.
    unsafe {
        let mut buf = vec![0u8; sys::input_len().max(0) as usize];
        sys::input_read(buf.as_mut_ptr());
        buf
    }
}

/// Set the call's return data (once).
pub fn set_return(data: &[u8]) {
    unsafe { sys::return_data(data.as_ptr(), data.len() as i32) }
}

/// End the call as failed: storage writes and events are discarded.
pub fn revert(msg: &str) -> ! {
    unsafe { sys::revert(msg.as_ptr(), msg.len() as i32) }
}

/// End the call as aborted (used by the panic handler).
pub fn abort(msg: &str) -> ! {
    unsafe { sys::abort(msg.as_ptr(), msg.len() as i32) }
}

fn read32(f: unsafe extern "C" fn(*mut u8)) -> [u8; 32] {
    let mut out = [0u8; 32];
    unsafe { f(out.as_mut_ptr()) };
    out
}

/// The account that made this call.
pub fn caller() -> Address {
    Bytes32(read32(sys::caller))
}

/// This contract's address.
pub fn contract_address() -> Address {
    Bytes32(read32(sys::contract_address))
}

pub fn block_height() -> u64 {
    unsafe { sys::block_height() as u64 }
}

/// Block time in milliseconds since the Unix epoch.
pub fn block_time_ms() -> u64 {
    unsafe { sys::block_time() as u64 }
}

fn read_u128(f: unsafe extern "C" fn(*mut u8)) -> u128 {
    let mut out = [0u8; 16];
    unsafe { f(out.as_mut_ptr()) };
    u128::from_le_bytes(out)
}

/// Native units sent with this call (`aivm send --value`). They are already in [`balance`],
/// and go back to the caller if the call fails.
pub fn value() -> u128 {
    read_u128(sys::call_value)
}

/// This contract's native balance now: before the call, plus [`value`], minus what it has
/// transferred in this call.
pub fn balance() -> u128 {
    read_u128(sys::balance)
}

/// The contract's balance cannot cover a [`transfer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsufficientBalance;

/// Pay `amount` native units from this contract to `to`. Nothing moves if the balance is
/// short; the transfer happens with the call's other effects, so a call that fails later
/// pays nothing.
pub fn transfer(to: &Address, amount: u128) -> Result<(), InsufficientBalance> {
    let amount = amount.to_le_bytes();
    match unsafe { sys::transfer(to.0.as_ptr(), amount.as_ptr()) } {
        0 => Ok(()),
        _ => Err(InsufficientBalance),
    }
}

/// Read the host's result register (after a call that returned its length).
pub(crate) fn take_result(len: i32) -> Vec<u8> {
    let mut buf = vec![0u8; len.max(0) as usize];
    unsafe { sys::result_read(buf.as_mut_ptr()) };
    buf
}
