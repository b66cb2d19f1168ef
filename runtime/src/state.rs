//! The chain's state model: what is stored under which key, and the canonical bytes of both.
//! The bytes are what RocksDB holds and what the Merkle state root commits to
//! (`spec/state.md`).

use std::sync::Arc;

/// An account or contract address: an ed25519 public key for accounts, a derived hash for
/// contracts (`spec/state.md`).
pub type Address = [u8; 32];
/// BLAKE3 of a contract's wasm bytes.
pub type CodeHash = [u8; 32];

/// Chain-level entries that are not owned by an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SystemKey {
    /// The height of the last committed block (u64 little-endian).
    Height = 0,
}

/// Every key of the state. The derived order is the order of the encoded bytes' tags.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKey {
    System(SystemKey),
    Account(Address),
    Code(CodeHash),
    /// One key of one contract's storage.
    Storage(Address, Box<[u8]>),
}

const TAG_SYSTEM: u8 = 0;
const TAG_ACCOUNT: u8 = 1;
const TAG_CODE: u8 = 2;
const TAG_STORAGE: u8 = 3;

/// Bytes from disk or the network that are not a valid key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed state {what}: {why}")]
pub struct DecodeError {
    pub what: &'static str,
    pub why: &'static str,
}

fn bad(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError { what, why }
}

impl StateKey {
    /// Canonical bytes: a tag, then the fields (`spec/state.md`).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StateKey::System(k) => vec![TAG_SYSTEM, *k as u8],
            StateKey::Account(a) => [&[TAG_ACCOUNT][..], a].concat(),
            StateKey::Code(h) => [&[TAG_CODE][..], h].concat(),
            StateKey::Storage(a, k) => [&[TAG_STORAGE][..], a, k].concat(),
        }
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let (&tag, rest) = b.split_first().ok_or(bad("key", "empty"))?;
        let addr = |r: &[u8]| -> Result<[u8; 32], DecodeError> { r.get(..32).and_then(|a| a.try_into().ok()).ok_or(bad("key", "short address")) };
        match tag {
            TAG_SYSTEM => match rest {
                [0] => Ok(StateKey::System(SystemKey::Height)),
                _ => Err(bad("key", "unknown system key")),
            },
            TAG_ACCOUNT if rest.len() == 32 => Ok(StateKey::Account(addr(rest)?)),
            TAG_CODE if rest.len() == 32 => Ok(StateKey::Code(addr(rest)?)),
            TAG_STORAGE if rest.len() >= 32 => Ok(StateKey::Storage(addr(rest)?, rest[32..].into())),
            _ => Err(bad("key", "unknown tag or wrong length")),
        }
    }
}

/// A native account. Contracts are accounts with a code hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: u128,
    pub nonce: u64,
    pub code_hash: Option<CodeHash>,
}

impl Account {
    /// 16 bytes balance LE, 8 bytes nonce LE, then the code hash if there is one.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(56);
        v.extend_from_slice(&self.balance.to_le_bytes());
        v.extend_from_slice(&self.nonce.to_le_bytes());
        if let Some(h) = &self.code_hash {
            v.extend_from_slice(h);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 24 && b.len() != 56 {
            return Err(bad("account", "length is neither 24 nor 56"));
        }
        let balance = u128::from_le_bytes(b[..16].try_into().map_err(|_| bad("account", "balance"))?);
        let nonce = u64::from_le_bytes(b[16..24].try_into().map_err(|_| bad("account", "nonce"))?);
        let code_hash = if b.len() == 56 { Some(b[24..56].try_into().map_err(|_| bad("account", "code hash"))?) } else { None };
        Ok(Account { balance, nonce, code_hash })
    }
}

/// A value as the executor handles it: accounts stay decoded between transactions of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateValue {
    Account(Account),
    Bytes(Arc<[u8]>),
    /// A removed contract-storage entry (only storage entries are ever removed).
    Deleted,
}

impl StateValue {
    /// Canonical bytes; `None` for a deletion.
    pub fn encode(&self) -> Option<Vec<u8>> {
        match self {
            StateValue::Account(a) => Some(a.encode()),
            StateValue::Bytes(b) => Some(b.to_vec()),
            StateValue::Deleted => None,
        }
    }

    /// Decode the stored bytes of `key`.
    pub fn decode(key: &StateKey, b: &[u8]) -> Result<Self, DecodeError> {
        match key {
            StateKey::Account(_) => Account::decode(b).map(StateValue::Account),
            _ => Ok(StateValue::Bytes(b.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_garbage() {
        let keys = [
            StateKey::System(SystemKey::Height),
            StateKey::Account([7; 32]),
            StateKey::Code([9; 32]),
            StateKey::Storage([1; 32], b"balance".to_vec().into()),
            StateKey::Storage([1; 32], Box::new([])),
        ];
        for k in keys {
            assert_eq!(StateKey::decode(&k.encode()), Ok(k));
        }
        for bad in [&[][..], &[1, 2, 3], &[0, 9], &[9; 33], &[3; 20]] {
            assert!(StateKey::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accounts_round_trip_and_reject_garbage() {
        for a in [Account::default(), Account { balance: u128::MAX, nonce: 3, code_hash: Some([5; 32]) }] {
            assert_eq!(Account::decode(&a.encode()), Ok(a));
        }
        assert!(Account::decode(&[0; 23]).is_err());
        assert!(Account::decode(&[0; 57]).is_err());
    }
}
