//! TEE_VERIFY (`spec/tee.md` §3): verify an attestation at the block's time under the chain's
//! policy, and that it binds the report data the contract expects.
//!
//! `tee_verify(format, quote, quote_len, collateral, collateral_len, report_data) -> i32`:
//! the measurement's length (32 or 48; read it with `result_read`) when the attestation is
//! valid and binds the 64 bytes at `report_data`; otherwise −1 invalid, −2 stale collateral,
//! −3 TCB status not accepted, −4 debug enclave, −5 other report data. An unknown format or
//! an input over the caps traps. The price comes from the format and the input's size and
//! certificate count, charged before any parsing.

use super::memory::{read, read_array};
use super::{charge, enter, host_err, Ctx, HostState};
use crate::error::HostError;
use aivm_tee::{Format, MAX_COLLATERAL, MAX_QUOTE};
use wasmtime::Linker;

/// The status for a valid attestation of other report data.
pub const TEE_OTHER_REPORT_DATA: i32 = -5;

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "tee_verify", |mut c: Ctx<'_>, format: i32, q: i32, q_len: i32, col: i32, col_len: i32, rd: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "tee_verify")?;
        let format = Format::from_code(format as u32).ok_or_else(|| host_err(HostError::Argument(format!("unknown TEE format {format}"))))?;
        let quote = read(&mut c, "tee_verify", q, q_len, MAX_QUOTE as u32, "TEE quote")?;
        let collateral = read(&mut c, "tee_verify", col, col_len, MAX_COLLATERAL as u32, "TEE collateral")?;
        let expected: [u8; 64] = read_array(&mut c, "tee_verify", rd)?;
        let work = aivm_tee::work(format, &quote, &collateral).map_err(|e| host_err(HostError::Argument(e.to_string())))?;
        let gas = c.data().schedule.tee_cost(format, work);
        charge(&mut c, "tee_verify", gas)?;
        // The block's time, never the machine's clock.
        let now = c.data().ctx.block_time_ms / 1000;
        let policy = c.data().tee.clone();
        match aivm_tee::verify(format, &quote, &collateral, now, &policy) {
            Ok(v) if v.report_data[..] != expected[..] => Ok(TEE_OTHER_REPORT_DATA),
            Ok(v) => {
                let n = v.measurement.len() as i32;
                c.data_mut().register = Some(v.measurement);
                Ok(n)
            }
            Err(e) => {
                c.data_mut().register = None;
                Ok(e.code())
            }
        }
    })?;
    Ok(())
}
