//! The native token inside a call (`spec/opcodes.md`, "Native value"): what the call was sent,
//! what the contract holds, and paying it out.
//!
//! - `call_value(dst)`: the value sent with this call, 16 bytes little-endian.
//! - `balance(dst)`: the contract's balance now (its balance before the call, plus the value,
//!   minus what it has transferred in this call), 16 bytes little-endian.
//! - `transfer(to_ptr, amount_ptr) -> i32`: pay `amount` (16 bytes LE at `amount_ptr`) to the
//!   32-byte address at `to_ptr`; 0 if done, −1 if the balance is short (nothing moves). Priced
//!   before it runs (`GasSchedule::native_transfer`: the recipient's account is read and
//!   written). The VM only records transfers; the embedder applies them with the call's
//!   writes, so a call that fails moves nothing.

use super::memory::{read_array, write};
use super::{charge, enter, Ctx, HostState};
use wasmtime::Linker;

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "call_value", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "call_value")?;
        let v = c.data().ctx.value.to_le_bytes();
        write(&mut c, "call_value", dst, &v)
    })?;
    l.func_wrap("aivm", "balance", |mut c: Ctx<'_>, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "balance")?;
        let v = c.data().available().to_le_bytes();
        write(&mut c, "balance", dst, &v)
    })?;
    l.func_wrap("aivm", "transfer", |mut c: Ctx<'_>, to: i32, amount: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "transfer")?;
        let to: [u8; 32] = read_array(&mut c, "transfer", to)?;
        let amount = u128::from_le_bytes(read_array(&mut c, "transfer", amount)?);
        let price = c.data().schedule.native_transfer;
        charge(&mut c, "transfer", Some(price))?;
        if amount > c.data().available() {
            return Ok(-1);
        }
        let d = c.data_mut();
        d.sent += amount;
        d.transfers.push((to, amount));
        Ok(0)
    })?;
    Ok(())
}
