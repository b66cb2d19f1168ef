//! The HMM pricing pool: a constant-product market per model SKU pairing the native token with
//! compute units (`spec/market.md`, "HMM pricing"). Exact integer math: every product is taken
//! in 256 bits, every division rounds in the pool's favour, and the first liquidity provider
//! leaves [`MINIMUM_LIQUIDITY`] shares locked forever, as in Uniswap v2, whose published swap
//! vectors the tests reproduce.
//!
//! Owned rather than taken from a DEX crate: the arithmetic is consensus, and each rounding
//! direction is a protocol rule written in the spec.

use ruint::aliases::U256;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shares locked at the first deposit, so the pool can never be emptied and a share's value
/// cannot be inflated from a dust deposit.
pub const MINIMUM_LIQUIDITY: u128 = 1_000;

/// Basis points in one whole.
pub const BPS: u128 = 10_000;

/// Uniswap v2's swap fee, 0.3 %: the default for every pool (a genesis parameter).
pub const DEFAULT_FEE_BPS: u128 = 30;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HmmError {
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("the pool has no liquidity")]
    NoLiquidity,
    #[error("the swap would return nothing")]
    ZeroOutput,
    #[error("the deposit is too small to mint a share")]
    InsufficientLiquidityMinted,
    #[error("more shares than exist")]
    InsufficientShares,
    #[error("the result does not fit in 128 bits")]
    Overflow,
    #[error("fee of {0} basis points is not below 10 000")]
    BadFee(u128),
}

/// Which side of the pool a swap pays in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Pay native tokens, receive compute units (a client buying inference).
    Native,
    /// Pay compute units, receive native tokens.
    Units,
}

/// One pool's reserves and shares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub native: u128,
    pub units: u128,
    /// Every share minted, the locked minimum included.
    pub shares: u128,
    pub fee_bps: u128,
}

fn narrow(v: U256) -> Result<u128, HmmError> {
    u128::try_from(v).map_err(|_| HmmError::Overflow)
}

fn wide(v: u128) -> U256 {
    U256::from(v)
}

/// ⌊√v⌋ by Newton's method (Uniswap v2's `Math.sqrt`).
fn isqrt(v: U256) -> U256 {
    if v < U256::from(4u8) {
        return if v.is_zero() { U256::ZERO } else { U256::from(1u8) };
    }
    let (mut z, mut x) = (v, v / U256::from(2u8) + U256::from(1u8));
    while x < z {
        z = x;
        x = (v / x + x) / U256::from(2u8);
    }
    z
}

/// What a swap of `amount_in` returns: ⌊in·(10⁴−fee)·R_out / (R_in·10⁴ + in·(10⁴−fee))⌋, rounded
/// down (in the pool's favour). With the 30 bps fee this is Uniswap v2's `getAmountOut`.
pub fn amount_out(amount_in: u128, reserve_in: u128, reserve_out: u128, fee_bps: u128) -> Result<u128, HmmError> {
    if fee_bps >= BPS {
        return Err(HmmError::BadFee(fee_bps));
    }
    if amount_in == 0 {
        return Err(HmmError::ZeroAmount);
    }
    if reserve_in == 0 || reserve_out == 0 {
        return Err(HmmError::NoLiquidity);
    }
    let in_with_fee = wide(amount_in) * wide(BPS - fee_bps);
    let numerator = in_with_fee * wide(reserve_out);
    let denominator = wide(reserve_in) * wide(BPS) + in_with_fee;
    narrow(numerator / denominator)
}

/// What a swap must pay in to receive `amount_out`: rounded up (in the pool's favour).
pub fn amount_in(amount_out: u128, reserve_in: u128, reserve_out: u128, fee_bps: u128) -> Result<u128, HmmError> {
    if fee_bps >= BPS {
        return Err(HmmError::BadFee(fee_bps));
    }
    if amount_out == 0 {
        return Err(HmmError::ZeroAmount);
    }
    if reserve_in == 0 || amount_out >= reserve_out {
        return Err(HmmError::NoLiquidity);
    }
    let numerator = wide(reserve_in) * wide(amount_out) * wide(BPS);
    let denominator = wide(reserve_out - amount_out) * wide(BPS - fee_bps);
    narrow(numerator / denominator + U256::from(1u8))
}

impl Pool {
    pub fn new(fee_bps: u128) -> Result<Self, HmmError> {
        if fee_bps >= BPS {
            return Err(HmmError::BadFee(fee_bps));
        }
        Ok(Pool { fee_bps, ..Pool::default() })
    }

    /// The product the pool keeps from falling.
    pub fn k(&self) -> U256 {
        wide(self.native) * wide(self.units)
    }

    /// Deposit both sides; returns the shares minted to the depositor. The first deposit
    /// mints ⌊√(native·units)⌋ − [`MINIMUM_LIQUIDITY`] (the minimum is locked); later ones
    /// the smaller of the two sides' proportional shares, rounded down — any excess on the
    /// other side stays in the pool.
    pub fn add_liquidity(&mut self, native: u128, units: u128) -> Result<u128, HmmError> {
        if native == 0 || units == 0 {
            return Err(HmmError::ZeroAmount);
        }
        let (new_native, new_units) = (self.native.checked_add(native).ok_or(HmmError::Overflow)?, self.units.checked_add(units).ok_or(HmmError::Overflow)?);
        let (minted, locked) = if self.shares == 0 {
            let root = narrow(isqrt(wide(native) * wide(units)))?;
            (root.checked_sub(MINIMUM_LIQUIDITY).filter(|m| *m > 0).ok_or(HmmError::InsufficientLiquidityMinted)?, MINIMUM_LIQUIDITY)
        } else {
            let by_native = wide(native) * wide(self.shares) / wide(self.native);
            let by_units = wide(units) * wide(self.shares) / wide(self.units);
            let m = narrow(by_native.min(by_units))?;
            if m == 0 {
                return Err(HmmError::InsufficientLiquidityMinted);
            }
            (m, 0)
        };
        self.shares = self.shares.checked_add(minted + locked).ok_or(HmmError::Overflow)?;
        (self.native, self.units) = (new_native, new_units);
        Ok(minted)
    }

    /// The compute units a deposit of `native` needs to go with it in the pool's ratio:
    /// ⌈native·units/native_reserve⌉, so the units side mints at least what the native side
    /// does ([`Pool::add_liquidity`] mints the smaller) and at most one unit is left over for
    /// every holder. For tools; the chain takes whatever a deposit brings.
    pub fn units_for(&self, native: u128) -> Result<u128, HmmError> {
        if self.native == 0 || self.units == 0 {
            return Err(HmmError::NoLiquidity);
        }
        let r = wide(self.native);
        narrow((wide(native) * wide(self.units) + r - U256::from(1u8)) / r)
    }

    /// Burn `shares`; returns (native, units) paid out, each rounded down.
    pub fn remove_liquidity(&mut self, shares: u128) -> Result<(u128, u128), HmmError> {
        if shares == 0 {
            return Err(HmmError::ZeroAmount);
        }
        // The locked minimum is never burned: no holder has it.
        if shares > self.shares.saturating_sub(MINIMUM_LIQUIDITY) {
            return Err(HmmError::InsufficientShares);
        }
        let native = narrow(wide(shares) * wide(self.native) / wide(self.shares))?;
        let units = narrow(wide(shares) * wide(self.units) / wide(self.shares))?;
        if native == 0 && units == 0 {
            return Err(HmmError::ZeroOutput);
        }
        self.native -= native;
        self.units -= units;
        self.shares -= shares;
        Ok((native, units))
    }

    /// Pay `amount_in` on `side`; returns what comes out of the other side.
    pub fn swap(&mut self, side: Side, amount_in: u128) -> Result<u128, HmmError> {
        let (r_in, r_out) = match side {
            Side::Native => (self.native, self.units),
            Side::Units => (self.units, self.native),
        };
        let out = amount_out(amount_in, r_in, r_out, self.fee_bps)?;
        if out == 0 {
            return Err(HmmError::ZeroOutput);
        }
        let new_in = r_in.checked_add(amount_in).ok_or(HmmError::Overflow)?;
        let new_out = r_out - out; // out < r_out: the formula's denominator exceeds R_in·10⁴
        match side {
            Side::Native => (self.native, self.units) = (new_in, new_out),
            Side::Units => (self.units, self.native) = (new_in, new_out),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const E18: u128 = 1_000_000_000_000_000_000;

    /// Uniswap v2's published `getAmountOut` vectors (its test suite, `swapTestCases`).
    #[test]
    fn reproduces_uniswap_v2_swap_vectors() {
        let cases: [(u128, u128, u128, u128); 7] = [
            (1, 5, 10, 1_662_497_915_624_478_906),
            (1, 10, 5, 453_305_446_940_074_565),
            (2, 5, 10, 2_851_015_155_847_869_602),
            (2, 10, 5, 831_248_957_812_239_453),
            (1, 10, 10, 906_610_893_880_149_131),
            (1, 100, 100, 987_158_034_397_061_298),
            (1, 1000, 1000, 996_006_981_039_903_216),
        ];
        for (i, r_in, r_out, want) in cases {
            assert_eq!(amount_out(i * E18, r_in * E18, r_out * E18, DEFAULT_FEE_BPS), Ok(want), "({i}, {r_in}, {r_out})");
            // Through a pool too.
            let mut p = Pool::new(DEFAULT_FEE_BPS).unwrap();
            p.add_liquidity(r_in * E18, r_out * E18).unwrap();
            assert_eq!(p.swap(Side::Native, i * E18), Ok(want));
        }
    }

    #[test]
    fn amount_in_pays_at_least_what_amount_out_gives() {
        let (r_in, r_out) = (5 * E18, 10 * E18);
        let want = 1_662_497_915_624_478_906;
        let pay = amount_in(want, r_in, r_out, DEFAULT_FEE_BPS).unwrap();
        assert!(amount_out(pay, r_in, r_out, DEFAULT_FEE_BPS).unwrap() >= want);
        assert!(amount_out(pay - 2, r_in, r_out, DEFAULT_FEE_BPS).unwrap() < want + 1);
    }

    #[test]
    fn the_first_provider_cannot_drain_the_pool() {
        let mut p = Pool::new(DEFAULT_FEE_BPS).unwrap();
        let minted = p.add_liquidity(1_000_000, 4_000_000).unwrap();
        assert_eq!(minted, 2_000_000 - MINIMUM_LIQUIDITY);
        assert_eq!(p.remove_liquidity(minted + 1), Err(HmmError::InsufficientShares));
        let (n, u) = p.remove_liquidity(minted).unwrap();
        assert!(n < 1_000_000 && u < 4_000_000);
        assert!(p.native > 0 && p.units > 0 && p.shares == MINIMUM_LIQUIDITY, "{p:?}");
        assert_eq!(p.remove_liquidity(1), Err(HmmError::InsufficientShares));
        // A dust first deposit mints nothing.
        let mut dust = Pool::new(DEFAULT_FEE_BPS).unwrap();
        assert_eq!(dust.add_liquidity(1_000, 1_000), Err(HmmError::InsufficientLiquidityMinted));
        assert_eq!(dust, Pool::new(DEFAULT_FEE_BPS).unwrap(), "a refused deposit changes nothing");
    }

    #[test]
    fn bad_inputs_are_errors_and_change_nothing() {
        let mut p = Pool::new(DEFAULT_FEE_BPS).unwrap();
        assert_eq!(p.swap(Side::Native, 10), Err(HmmError::NoLiquidity));
        p.add_liquidity(10 * E18, 10 * E18).unwrap();
        let before = p.clone();
        assert_eq!(p.swap(Side::Native, 0), Err(HmmError::ZeroAmount));
        assert_eq!(p.swap(Side::Units, u128::MAX), Err(HmmError::Overflow));
        assert_eq!(p.swap(Side::Native, 1), Err(HmmError::ZeroOutput));
        assert_eq!(p.add_liquidity(u128::MAX, 1), Err(HmmError::Overflow));
        assert_eq!(p, before);
        assert_eq!(Pool::new(BPS), Err(HmmError::BadFee(BPS)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Swap(bool, u128),
        Add(u128, u128),
        Remove(u128),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), 1u128..1u128 << 80).prop_map(|(s, a)| Op::Swap(s, a)),
            (1u128..1u128 << 80, 1u128..1u128 << 80).prop_map(|(a, b)| Op::Add(a, b)),
            (1u128..1u128 << 70).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Swaps never lower k; the value of a share (√k / shares) never falls; reserves
        /// never reach zero once funded.
        #[test]
        fn k_never_decreases(ops in proptest::collection::vec(op(), 1..64), fee in 0u128..100) {
            let mut p = Pool::new(fee).unwrap();
            p.add_liquidity(1u128 << 60, 1u128 << 62).unwrap();
            for o in ops {
                let (k, shares) = (p.k(), p.shares);
                let before = p.clone();
                let r = match o {
                    Op::Swap(native, a) => p.swap(if native { Side::Native } else { Side::Units }, a).map(drop),
                    Op::Add(a, b) => p.add_liquidity(a, b).map(drop),
                    Op::Remove(s) => p.remove_liquidity(s).map(drop),
                };
                if r.is_err() {
                    prop_assert_eq!(&p, &before, "a failed operation changed the pool");
                    continue;
                }
                if let Op::Swap(..) = o {
                    prop_assert!(p.k() >= k, "swap lowered k");
                }
                // √k per share never falls: k·S₀² ≥ k₀·S² (compared in 512 bits via halves).
                let lhs = ruint::Uint::<512, 8>::from(p.k()) * ruint::Uint::<512, 8>::from(shares) * ruint::Uint::<512, 8>::from(shares);
                let rhs = ruint::Uint::<512, 8>::from(k) * ruint::Uint::<512, 8>::from(p.shares) * ruint::Uint::<512, 8>::from(p.shares);
                prop_assert!(lhs >= rhs, "a share lost value");
                prop_assert!(p.native > 0 && p.units > 0);
            }
        }

        /// A deposit of `units_for(native)` mints what its native side alone would, and the
        /// units side brings at most one unit beyond that.
        #[test]
        fn units_for_matches_the_pools_ratio(native_reserve in 1u128..1 << 100, units_reserve in 1u128..1 << 100, native in 1u128..1 << 90) {
            let mut p = Pool::new(30).unwrap();
            p.add_liquidity(native_reserve.max(1 << 20), units_reserve.max(1 << 20)).unwrap();
            let units = p.units_for(native).unwrap();
            let by_native = wide(native) * wide(p.shares) / wide(p.native);
            let exact = wide(native) * wide(p.units);
            prop_assert!(wide(units) * wide(p.native) >= exact && wide(units - 1) * wide(p.native) < exact, "the ceiling of the ratio");
            if let Ok(minted) = p.clone().add_liquidity(native, units) {
                prop_assert_eq!(wide(minted), by_native);
            }
        }
    }
}
