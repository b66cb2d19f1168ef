//! The store's resource limiter: the memory and table caps, and the price of memory pages.
//!
//! A page of linear memory costs far more than wasmtime's fuel table can say (a u8 per page):
//! its first touch takes page faults and zeroing, and the pooling allocator resets or
//! decommits it after the call (`gas-bench --adversarial`, "one store per fresh 4 KiB page").
//! So every page a call's memory gains — the module's initial pages at instantiation and
//! every `memory.grow` — is priced here, at [`GasSchedule::memory_page`](crate::gas::GasSchedule).
//!
//! The limiter cannot reach the store's fuel, so it keeps a debt the VM pays before the
//! entry point runs (initial pages) and at every host call and the end of the call (grown
//! pages). A grow whose pages, with all pages before it, would cost more than the call's gas
//! limit fails (`memory.grow` returns −1), so work done on pages not yet paid for never
//! exceeds what the call can be charged: at worst a call does its gas limit's worth of
//! execution plus its gas limit's worth of page touches and pays its limit (2×).

use wasmtime::{ResourceLimiter, StoreLimits};

/// The limiter of one call.
pub struct CallLimits {
    caps: StoreLimits,
    page_price: u64,
    gas_limit: u64,
    /// Gas for every page granted so far, paid or not.
    committed: u64,
    /// Gas for granted pages not yet taken from the fuel.
    debt: u64,
    /// Set when the initial memory alone costs more than the gas limit (instantiation fails:
    /// reported as out of gas).
    pub(crate) initial_unaffordable: bool,
}

const PAGE: usize = 65536;

impl CallLimits {
    pub fn new(caps: StoreLimits, page_price: u64, gas_limit: u64) -> Self {
        Self { caps, page_price, gas_limit, committed: 0, debt: 0, initial_unaffordable: false }
    }

    /// The unpaid gas, now owed.
    pub fn take_debt(&mut self) -> u64 {
        std::mem::take(&mut self.debt)
    }
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if !self.caps.memory_growing(current, desired, maximum)? {
            return Ok(false);
        }
        let pages = desired.div_ceil(PAGE).saturating_sub(current.div_ceil(PAGE)) as u64;
        let cost = pages.saturating_mul(self.page_price);
        let committed = self.committed.saturating_add(cost);
        if committed > self.gas_limit {
            self.initial_unaffordable |= current == 0;
            return Ok(false);
        }
        self.committed = committed;
        self.debt = self.debt.saturating_add(cost);
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.caps.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.caps.instances()
    }

    fn tables(&self) -> usize {
        self.caps.tables()
    }

    fn memories(&self) -> usize {
        self.caps.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::StoreLimitsBuilder;

    #[test]
    fn pages_are_owed_and_growth_past_the_gas_limit_fails() {
        let caps = StoreLimitsBuilder::new().memory_size(16 * PAGE).build();
        let mut l = CallLimits::new(caps, 1_000, 10_500);
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert_eq!(l.take_debt(), 2_000);
        assert_eq!(l.take_debt(), 0);
        assert!(l.memory_growing(2 * PAGE, 10 * PAGE, None).unwrap());
        assert!(!l.memory_growing(10 * PAGE, 11 * PAGE, None).unwrap(), "11 pages cost 11 000 > 10 500");
        assert!(!l.initial_unaffordable);
        assert_eq!(l.take_debt(), 8_000);
        assert!(!l.memory_growing(10 * PAGE, 17 * PAGE, None).unwrap(), "over the cap");
        let mut poor = CallLimits::new(StoreLimitsBuilder::new().build(), 1_000, 999);
        assert!(!poor.memory_growing(0, PAGE, None).unwrap());
        assert!(poor.initial_unaffordable);
    }
}
