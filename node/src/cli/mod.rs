//! Subcommands of the `aivm` binary.

pub mod account;
pub mod call;
pub mod client;
pub mod codec;
pub mod devices;
pub mod devnet;
pub mod devnet_market;
pub mod inspect;
pub mod job;
pub mod model;
pub mod node;
pub mod pool;
pub mod project;
pub mod stake;
pub mod sync;
pub mod validator;
pub mod verifier;
pub mod worker;

/// The exit code of a subcommand whose outcome is a verdict: 0 when it holds, 1 when it does
/// not (the output says why), 2 when the command itself failed (printed here).
pub fn verdict_exit(outcome: anyhow::Result<bool>) -> std::process::ExitCode {
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
