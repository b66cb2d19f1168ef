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
    /// Start a contract project outside this workspace: the SDK, a testkit test, a README.
    New(cli::project::NewArgs),
    /// Build a contract project's wasm, reproducibly (same source, same code hash anywhere).
    Build(cli::project::BuildArgs),
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
    /// A model's HMM pool: its price, swaps between native tokens and compute units, and liquidity.
    #[command(subcommand)]
    Pool(cli::pool::PoolCommand),
    /// Serve the compute market as a staked worker; its bond: status, unbond, withdraw.
    #[command(subcommand)]
    Worker(cli::worker::WorkerCommand),
    /// Check the compute market as a staked verifier: re-run a sample of settled jobs, dispute wrong ones; its bond.
    #[command(subcommand)]
    Verifier(cli::verifier::VerifierCommand),
    /// A validator's stake: bond (join), unbond (leave), withdraw, status.
    #[command(subcommand)]
    Validator(cli::validator::ValidatorCommand),
    /// Keys that sign transactions: `new` and `show` under a home.
    #[command(subcommand)]
    Keys(cli::client::KeysCommand),
    /// Deploy a contract to a running node (its `instantiate` runs in the same transaction).
    Deploy(cli::client::DeployArgs),
    /// Call a contract's entry point in a signed transaction and print the receipt.
    Send(cli::client::SendArgs),
    /// Send native units to another account and print the receipt.
    Transfer(cli::client::TransferArgs),
    /// Call a contract's entry point read-only on a node's committed state (no fee).
    Query(cli::client::QueryArgs),
    /// A committed transaction's receipt.
    Receipt(cli::client::ReceiptArgs),
    /// A committed block's header and transaction hashes.
    Block(cli::client::BlockArgs),
    /// Follow finalized blocks as they come (the node's WebSocket subscription).
    Watch(cli::client::WatchArgs),
    /// Start N validators on loopback, drive a token-transfer load, report TPS, finality and root agreement.
    Devnet(cli::devnet::DevnetArgs),
}

fn main() -> ExitCode {
    // Freed inference buffers stay in the heap (no mmap and page faults per forward step).
    aivm::model::heap::keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::New(a) => cli::verdict_exit(cli::project::new(a)),
        Command::Build(a) => cli::verdict_exit(cli::project::build(a)),
        Command::Call(args) => cli::call::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Model(cmd) => cli::model::run(cmd),
        Command::Devices(args) => cli::devices::run(args),
        Command::Node(cmd) => cli::node::run(cmd),
        Command::Devnet(args) => cli::devnet::run(args),
        Command::Job(cmd) => cli::job::run(cmd),
        Command::Keys(cmd) => cli::verdict_exit(cli::client::keys(cmd)),
        Command::Deploy(a) => cli::verdict_exit(cli::client::deploy(a)),
        Command::Send(a) => cli::verdict_exit(cli::client::send(a)),
        Command::Transfer(a) => cli::verdict_exit(cli::client::transfer(a)),
        Command::Query(a) => cli::verdict_exit(cli::client::query(a)),
        Command::Receipt(a) => cli::verdict_exit(cli::client::receipt(a)),
        Command::Block(a) => cli::verdict_exit(cli::client::block(a)),
        Command::Watch(a) => cli::verdict_exit(cli::client::watch(a)),
        Command::Pool(cmd) => cli::pool::run(cmd),
        Command::Worker(cmd) => cli::worker::run(cmd),
        Command::Verifier(cmd) => cli::verifier::run(cmd),
        Command::Validator(cmd) => cli::validator::run(cmd),
    }
}
