//! `aivm`: the command-line entry point.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "aivm", version, about = "AIVM: a deterministic, gas-metered wasm VM for AI workloads")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one contract call and print a JSON report (status, gas by opcode, output).
    Call(cli::call::CallArgs),
    /// What the chain makes of a contract before it is deployed: validity, entries, imports,
    /// deploy and memory gas, stack depth.
    Inspect(cli::inspect::InspectArgs),
    /// The real model: fetch, convert to a SKU, run, verify receipts.
    #[command(subcommand)]
    Model(cli::model::ModelCommand),
    /// List the tensor backends: the CPU and every OpenCL platform and device.
    Devices(cli::devices::DevicesArgs),
    /// Validators: set up (keys, configuration, genesis) and run.
    #[command(subcommand)]
    Node(cli::node::NodeCommand),
    /// Buy inference on the compute market and follow a job to its answer.
    #[command(subcommand)]
    Job(cli::job::JobCommand),
    /// Serve the compute market as a staked worker.
    #[command(subcommand)]
    Worker(cli::worker::WorkerCommand),
    /// Check the compute market as a staked verifier: re-run a sample of settled jobs, dispute wrong ones.
    #[command(subcommand)]
    Verifier(cli::verifier::VerifierCommand),
    /// Start N validators on loopback, drive a token-transfer load, report TPS, finality and root agreement.
    Devnet(cli::devnet::DevnetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Call(args) => cli::call::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Model(cmd) => cli::model::run(cmd),
        Command::Devices(args) => cli::devices::run(args),
        Command::Node(cmd) => cli::node::run(cmd),
        Command::Devnet(args) => cli::devnet::run(args),
        Command::Job(cmd) => cli::job::run(cmd),
        Command::Worker(cmd) => cli::worker::run(cmd),
        Command::Verifier(cmd) => cli::verifier::run(cmd),
    }
}
