//! # aivm-sdk
//!
//! Write AIVM contracts in plain Rust, compiled to `wasm32-unknown-unknown`.
//!
//! ```ignore
//! use aivm_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize, Schema)]
//! pub struct Greet { name: String }
//!
//! #[entry_point]
//! pub fn greet(args: Greet) -> Result<String, ContractError> {
//!     storage::set(b"last", &args.name);
//!     Ok(format!("hello, {}", args.name))
//! }
//! ```
//!
//! Entry points take one argument and return `Result<T, E>`; both sides are CBOR-encoded
//! (`codec`). Returning `Err` reverts the call: its storage writes and events are dropped.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod codec;
pub mod crypto;
pub mod entry;
pub mod env;
pub mod events;
pub mod market;
pub mod model;
pub mod storage;
pub mod sys;
pub mod tensor;
pub mod types;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod runtime;

pub use aivm_sdk_macros::{entry_point, Schema};
pub use entry::ContractError;
pub use types::{Address, Bytes32};

/// Everything a contract usually needs.
pub mod prelude {
    pub use crate::entry::ContractError;
    pub use crate::model::Model;
    pub use crate::tensor::{DType, Tensor};
    pub use crate::types::{Address, Bytes32};
    pub use crate::{crypto, entry_point, env, events, market, model, storage, verify, Schema};
    pub use alloc::{format, string::String, string::ToString, vec, vec::Vec};
    pub use serde::{Deserialize, Serialize};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::entry::dispatch;
}
