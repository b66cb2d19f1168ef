//! The one place where the ABI of an entry point is implemented; `#[entry_point]` only
//! emits an export that calls [`dispatch`].

use crate::{codec, env};
use alloc::string::String;
use core::fmt::Display;
use serde::{de::DeserializeOwned, Serialize};

/// A ready-made error type for contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError(pub String);

impl ContractError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl Display for ContractError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ContractError {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

/// Decode the call input as `A`, run `f`, and return its CBOR-encoded result or revert with its error.
pub fn dispatch<A, R, E, F>(f: F)
where
    A: DeserializeOwned,
    R: Serialize,
    E: Display,
    F: FnOnce(A) -> Result<R, E>,
{
    let input = env::input();
    let args: A = match codec::decode(&input) {
        Ok(a) => a,
        Err(e) => env::revert(&alloc::format!("invalid arguments: {e}")),
    };
    match f(args) {
        Ok(r) => env::set_return(&codec::encode(&r)),
        Err(e) => env::revert(&alloc::format!("{e}")),
    }
}
