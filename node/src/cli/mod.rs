//! Subcommands of the `aivm` binary.

pub mod call;
pub mod codec;
pub mod devices;
pub mod devnet;
pub mod inspect;
pub mod model;
pub mod node;
