//! Where a settled job's fee and a slashed stake go (`spec/market.md` §4–§5). Every share
//! rounds down and the burn takes what rounding leaves, so the parts sum to the whole exactly
//! and rounding never creates tokens.

use super::hmm::BPS;
use super::params::{PROVER_SHARE_BPS, SPLIT_BPS};

/// ⌊amount·bps / 10⁴⌋ without overflow for any u128 amount.
pub fn share(amount: u128, bps: u128) -> u128 {
    amount / BPS * bps + amount % BPS * bps / BPS
}

/// A settled job's fee, split 80 / 8 / 5 / 4 / 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeSplit {
    pub worker: u128,
    pub validators: u128,
    pub verifiers: u128,
    pub liquidity: u128,
    /// 3 % plus every unit the other shares rounded away.
    pub burn: u128,
}

impl FeeSplit {
    pub fn of(fee: u128) -> Self {
        let [worker, validators, verifiers, liquidity] = SPLIT_BPS.map(|b| share(fee, b));
        // Σ of four shares ≤ 97 % of fee: no underflow.
        let burn = fee - worker - validators - verifiers - liquidity;
        FeeSplit { worker, validators, verifiers, liquidity, burn }
    }

    pub fn total(&self) -> u128 {
        self.worker + self.validators + self.verifiers + self.liquidity + self.burn
    }

    /// The `job.settled` event's data after the job id: the parts as paid (a CBOR 5-tuple in
    /// this order), which RPC and clients read back with [`FeeSplit::from_event`].
    pub fn event_bytes(&self) -> Vec<u8> {
        crate::encoding::cbor(&(self.worker, self.validators, self.verifiers, self.liquidity, self.burn))
    }

    /// [`FeeSplit::event_bytes`] read back; `None` if they are not five amounts.
    pub fn from_event(b: &[u8]) -> Option<Self> {
        let (worker, validators, verifiers, liquidity, burn) = ciborium::from_reader::<(u128, u128, u128, u128, u128), _>(b).ok()?;
        Some(FeeSplit { worker, validators, verifiers, liquidity, burn })
    }
}

/// A slash of `bps` of `stake`: what the offender loses, of it what the prover gets, and
/// what burns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slash {
    pub taken: u128,
    pub prover: u128,
    pub burn: u128,
}

impl Slash {
    pub fn of(stake: u128, bps: u128) -> Self {
        let taken = share(stake, bps);
        let prover = share(taken, PROVER_SHARE_BPS);
        Slash { taken, prover, burn: taken - prover }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_examples() {
        assert_eq!(FeeSplit::of(10_000), FeeSplit { worker: 8_000, validators: 800, verifiers: 500, liquidity: 400, burn: 300 });
        // 99: 79 + 7 + 4 + 3 = 93, the burn takes 6 (3 % rounds to 2, plus 4 of rounding).
        assert_eq!(FeeSplit::of(99), FeeSplit { worker: 79, validators: 7, verifiers: 4, liquidity: 3, burn: 6 });
        assert_eq!(FeeSplit::of(0).total(), 0);
        assert_eq!(Slash::of(10_000, 1_000), Slash { taken: 1_000, prover: 100, burn: 900 });
        assert_eq!(Slash::of(u128::MAX, 10_000).taken, u128::MAX);
    }

    proptest! {
        #[test]
        fn parts_sum_to_the_whole(fee in any::<u128>(), stake in any::<u128>(), bps in 0u128..=10_000) {
            let s = FeeSplit::of(fee);
            prop_assert_eq!(s.total(), fee);
            prop_assert_eq!(s.worker, fee / 10_000 * 8_000 + fee % 10_000 * 8_000 / 10_000);
            prop_assert!(s.burn >= share(fee, 300));
            prop_assert_eq!(FeeSplit::from_event(&s.event_bytes()), Some(s));
            let sl = Slash::of(stake, bps);
            prop_assert_eq!(sl.prover + sl.burn, sl.taken);
            prop_assert!(sl.taken <= stake);
        }
    }
}
