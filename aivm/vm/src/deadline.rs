//! Wall-clock deadlines for calls that are not consensus (RPC queries): wasmtime's epoch
//! interruption, driven by a clock thread that ticks the engine's epoch.
//!
//! Gas bounds a call's work only as well as the prices match the machine; a read-only query
//! served to anyone should not rely on that alone. Consensus calls never get a deadline (time
//! must not decide a receipt): their stores are given [`NEVER`], which no clock reaches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Engine;

/// One epoch tick. Compiled code checks the epoch at function entries and loop heads, so a
/// deadline is met to within a tick plus the longest host call.
pub const TICK: Duration = Duration::from_millis(10);

/// Ticks beyond the current epoch for a call without a deadline: 2⁶² ticks of 10 ms are
/// about 1.5·10⁹ years, and the addition wasmtime makes cannot overflow.
pub const NEVER: u64 = 1 << 62;

/// Ticks beyond the current epoch for `d`, rounded up, and at least one.
pub fn ticks(d: Duration) -> u64 {
    let t = d.as_nanos().div_ceil(TICK.as_nanos()).max(1);
    u64::try_from(t).unwrap_or(NEVER).min(NEVER)
}

/// The thread that advances an engine's epoch every [`TICK`]; it stops when this is dropped.
pub struct EpochClock {
    stop: Arc<AtomicBool>,
}

impl EpochClock {
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new().name("aivm-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochClock { stop })
    }
}

impl Drop for EpochClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_saturate() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(10)), 1);
        assert_eq!(ticks(Duration::from_millis(11)), 2);
        assert_eq!(ticks(Duration::from_secs(1)), 100);
        assert_eq!(ticks(Duration::MAX), NEVER);
    }
}
