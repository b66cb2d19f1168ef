//! One market transaction's view of the state: typed reads and writes of market records and
//! accounts, each charged at the VM's storage prices before it counts, with the writes kept
//! aside until the transaction succeeds (a failed one moves nothing).

use super::state::MarketKey;
use super::MarketError;
use crate::blockstm::{ReadError, StateRead};
use crate::encoding::cbor;
use crate::state::{Account, Address, StateKey, StateValue};
use aivm::GasSchedule;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a market transaction stopped.
#[derive(Debug)]
pub enum Abort {
    /// A read hit an unfinished transaction: Block-STM re-runs this one.
    Read(ReadError),
    /// The transaction failed: fee kept, nothing else written.
    Fail(MarketError),
    /// This machine cannot execute it (a registered model is missing): the block is abandoned,
    /// never decided.
    Fault(String),
}

impl From<ReadError> for Abort {
    fn from(e: ReadError) -> Self {
        Abort::Read(e)
    }
}

impl From<MarketError> for Abort {
    fn from(e: MarketError) -> Self {
        Abort::Fail(e)
    }
}

impl From<super::hmm::HmmError> for Abort {
    fn from(e: super::hmm::HmmError) -> Self {
        Abort::Fail(MarketError::Pool(e))
    }
}

pub type Step<T> = Result<T, Abort>;

pub struct Ledger<'a> {
    view: &'a mut dyn StateRead<StateKey, StateValue>,
    schedule: &'a GasSchedule,
    pub writes: BTreeMap<StateKey, StateValue>,
    /// Keys already read from the state by this transaction (later reads are warm).
    warm: std::collections::BTreeSet<StateKey>,
    pub gas: u64,
    budget: u64,
    /// The sender's native the transaction may not spend: its reserved fee.
    sender: Address,
    reserved: u128,
}

impl<'a> Ledger<'a> {
    /// `sender` is the account as the executor read it (read once: speculative re-reads may
    /// disagree); `reserved` of its balance is the fee and cannot be spent here.
    pub fn new(view: &'a mut dyn StateRead<StateKey, StateValue>, schedule: &'a GasSchedule, budget: u64, sender: (Address, Account), reserved: u128) -> Self {
        let mut writes = BTreeMap::new();
        writes.insert(StateKey::Account(sender.0), StateValue::Account(sender.1));
        Ledger { view, schedule, writes, warm: Default::default(), gas: 0, budget, sender: sender.0, reserved }
    }

    /// Charge `gas` before the work it pays for.
    pub fn charge(&mut self, gas: Option<u64>) -> Step<()> {
        match gas.and_then(|g| self.gas.checked_add(g)).filter(|g| *g <= self.budget) {
            Some(g) => {
                self.gas = g;
                Ok(())
            }
            None => {
                self.gas = self.budget;
                Err(Abort::Fail(MarketError::OutOfGas))
            }
        }
    }

    /// Any state entry, charged as a contract's storage read (staking uses its own keys).
    pub fn read(&mut self, key: &StateKey) -> Step<Option<StateValue>> {
        // The first read of a key from the state pays the cold surcharge first (as in a call).
        if !self.writes.contains_key(key) && !self.warm.contains(key) {
            self.charge(Some(self.schedule.storage_read_cold))?;
            self.warm.insert(key.clone());
        }
        let v = match self.writes.get(key) {
            Some(v) => Some(v.clone()),
            None => self.view.read(key)?,
        };
        let len = key.encode().len() + v.as_ref().and_then(StateValue::encode).map_or(0, |b| b.len());
        self.charge(self.schedule.storage_read.cost(len as u64))?;
        Ok(v.filter(|v| *v != StateValue::Deleted))
    }

    /// Any state entry, charged as a contract's storage write; kept until the transaction
    /// succeeds.
    pub fn write(&mut self, key: StateKey, value: StateValue) -> Step<()> {
        let len = key.encode().len() + value.encode().map_or(0, |b| b.len());
        self.charge(self.schedule.storage_write.cost(len as u64))?;
        self.writes.insert(key, value);
        Ok(())
    }

    /// A market record, if present.
    pub fn get<T: DeserializeOwned>(&mut self, key: MarketKey<'_>) -> Step<Option<T>> {
        match self.read(&key.state_key())? {
            Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).map(Some).map_err(|_| Abort::Fail(MarketError::Corrupt(format!("{key:?}")))),
            _ => Ok(None),
        }
    }

    pub fn put<T: Serialize>(&mut self, key: MarketKey<'_>, value: &T) -> Step<()> {
        self.write(key.state_key(), StateValue::Bytes(cbor(value).into()))
    }

    /// A u128 amount record (shares, units); absent is 0.
    pub fn amount(&mut self, key: MarketKey<'_>) -> Step<u128> {
        Ok(self.get::<u128>(key)?.unwrap_or(0))
    }

    pub fn account(&mut self, a: &Address) -> Step<Account> {
        Ok(match self.read(&StateKey::Account(*a))? {
            Some(StateValue::Account(acc)) => acc,
            _ => Account::default(),
        })
    }

    pub fn put_account(&mut self, a: &Address, acc: Account) -> Step<()> {
        self.write(StateKey::Account(*a), StateValue::Account(acc))
    }

    /// Add native to `a`'s balance.
    pub fn credit(&mut self, a: &Address, amount: u128) -> Step<()> {
        if amount == 0 {
            return Ok(());
        }
        let mut acc = self.account(a)?;
        acc.balance = acc.balance.checked_add(amount).ok_or(MarketError::Overflow)?;
        self.put_account(a, acc)
    }

    /// Take native from the sender's spendable balance (its balance less the reserved fee).
    pub fn debit_sender(&mut self, amount: u128) -> Step<()> {
        let sender = self.sender;
        let mut acc = self.account(&sender)?;
        let spendable = acc.balance.saturating_sub(self.reserved);
        if amount > spendable {
            return Err(Abort::Fail(MarketError::InsufficientBalance { need: amount, have: spendable }));
        }
        acc.balance -= amount;
        self.put_account(&sender, acc)
    }

    /// Add to (or, with `add = false`, take from) a u128 amount record.
    pub fn adjust(&mut self, key: MarketKey<'_>, by: u128, add: bool) -> Step<()> {
        let have = self.amount(key)?;
        let new = if add {
            have.checked_add(by).ok_or(MarketError::Overflow)?
        } else {
            have.checked_sub(by).ok_or(MarketError::InsufficientBalance { need: by, have })?
        };
        self.put(key, &new)
    }

    pub fn schedule(&self) -> &GasSchedule {
        self.schedule
    }
}
