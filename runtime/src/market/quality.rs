//! The worker quality score (`spec/market.md` §5a; seed 002 §3.3 "Level 3" and Table 2's
//! "quality below threshold: 5 %/epoch"). The seed scores a worker by comparing output
//! distributions with a reference; our inference is exact, so a wrong output is already slashed
//! in full, and what is left to score is service: whether a worker's jobs end well and on time.
//!
//! Each job outcome scores once: a settlement whose commit came within the job's SLA is good,
//! anything else (a late commit, a timeout, a wrong output, a dispute lost) is bad. The score is
//! kept as a *miss rate*, an exponential average in basis points with weight 1/16 per outcome,
//! rounded up (against the worker); it starts at 0, so a new bond starts at full quality.
//! At a worker's first outcome in a later epoch (`quality_epoch_blocks`), if its miss rate is
//! over `max_quality_miss_bps` it loses 5 % of its slashable stake, burned: once per epoch in
//! which it worked and ended below the threshold. Scoring happens in the transaction that ends
//! the job, so it costs no unmetered work at epoch ends.

use super::exec::{event, MarketCtx};
use super::jobs::take;
use super::ledger::{Ledger, Step};
use super::state::{Bond, MarketKey, Treasury};
use super::tx::{Role, Sku};
use super::{MarketError, MarketParams};
use crate::receipt::LogEvent;
use crate::state::Address;

/// A perfect score's miss rate is 0; every outcome missed is this.
pub const FULL_MISS_BPS: u32 = 10_000;
/// Outcomes averaged over: each moves the miss rate 1/16 of the way.
pub const SMOOTHING: u32 = 16;
/// Seed 002 Table 2: quality below threshold, per epoch.
pub const SLASH_QUALITY_BPS: u128 = 500;

/// The miss rate after one more outcome: `⌈(miss·15 + outcome)/16⌉`.
pub fn next_miss(miss: u32, good: bool) -> u32 {
    let outcome = if good { 0 } else { FULL_MISS_BPS };
    (miss.min(FULL_MISS_BPS) * (SMOOTHING - 1) + outcome).div_ceil(SMOOTHING)
}

/// Score one outcome of `worker`'s job for `sku` at this block, first applying the epoch
/// penalty if the worker ended its last scored epoch below the threshold.
pub(super) fn score(
    ctx: &MarketCtx<'_>,
    l: &mut Ledger<'_>,
    params: &MarketParams,
    sku: &Sku,
    worker: &Address,
    good: bool,
    events: &mut Vec<LogEvent>,
) -> Step<()> {
    let epoch = ctx.height / params.quality_epoch_blocks.max(1);
    let role = Role::Worker { sku: *sku };
    let b: Bond = l.get(MarketKey::Bond(&role, worker))?.unwrap_or_default();
    if epoch > b.quality_epoch && b.quality_miss_bps > params.max_quality_miss_bps {
        let s = take(l, &role, worker, SLASH_QUALITY_BPS, 0)?;
        let mut t: Treasury = l.get(MarketKey::Treasury)?.unwrap_or_default();
        t.burned = t.burned.checked_add(s.taken).ok_or(MarketError::Overflow)?;
        l.put(MarketKey::Treasury, &t)?;
        events.push(event("worker.quality_slashed", [&worker[..], &sku[..], &s.taken.to_le_bytes()[..]].concat()));
    }
    // Re-read: the penalty may have changed the bond.
    let mut b: Bond = l.get(MarketKey::Bond(&role, worker))?.unwrap_or_default();
    b.quality_epoch = epoch;
    b.quality_miss_bps = next_miss(b.quality_miss_bps, good);
    l.put(MarketKey::Bond(&role, worker), &b)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_miss_rate_moves_a_sixteenth_rounding_against_the_worker() {
        assert_eq!(next_miss(0, true), 0, "a new worker stays at full quality");
        assert_eq!(next_miss(0, false), 625);
        assert_eq!(next_miss(625, false), 1_211, "two misses in a row: over a 10 % threshold");
        assert_eq!(next_miss(1, true), 1, "rounded up");
        assert_eq!(next_miss(FULL_MISS_BPS, false), FULL_MISS_BPS);
        assert_eq!(next_miss(u32::MAX, false), FULL_MISS_BPS, "a corrupt record cannot overflow");
        // Settled on time from then on, a worker climbs back from 0 % to 90 % in 36 outcomes.
        let mut m = FULL_MISS_BPS;
        let mut n = 0;
        while m > 1_000 {
            m = next_miss(m, true);
            n += 1;
        }
        assert_eq!(n, 36);
    }
}
