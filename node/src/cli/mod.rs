//! Subcommands of the `aivm` binary.

pub mod call;
pub mod codec;
