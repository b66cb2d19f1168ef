//! `aivm validator bond|unbond|withdraw|status`: a validator's staking over a node's JSON-RPC,
//! signed with the keys in its home (`identity.key` signs and is the account; the consensus
//! key and its proof of possession go into a bond). `spec/consensus.md`, "Validator lifecycle".

use super::account::{rpc_addr, send_from, Account};
use aivm_node::hexbytes::to_hex;
use aivm_node::keys::NodeKeys;
use aivm_node::rpc::AivmApiClient;
use aivm_runtime::staking::StakingTx;
use aivm_runtime::Payload;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ValidatorCommand {
    /// Bond stake: creates the validator (consensus key, proof of possession and p2p address
    /// from the home) or adds to it. If its stake ranks, it is in the set recorded at the next
    /// epoch, which signs three epochs after that (the reshare gives it its key share first).
    Bond(AmountArgs),
    /// Start unbonding: the stake leaves the next epoch's set computation at once and can be
    /// withdrawn after the unbonding delay; it stays slashable until then.
    Unbond(AmountArgs),
    /// Move unbonded stake whose delay has passed back to the balance.
    Withdraw(HomeArgs),
    /// The validator's stake, unbonding stake, and whether it is in the current epoch's set.
    Status(HomeArgs),
}

#[derive(Args)]
pub struct HomeArgs {
    /// The validator's home (`aivm node init`): its keys.
    #[arg(long)]
    pub home: PathBuf,
    /// A node's JSON-RPC address (host:port).
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub rpc: String,
    /// Print the JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AmountArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// Native units.
    #[arg(long)]
    pub amount: u128,
}

pub fn run(cmd: ValidatorCommand) -> ExitCode {
    super::verdict_exit(match cmd {
        ValidatorCommand::Bond(a) => bond(a),
        ValidatorCommand::Unbond(a) => send(&a.home, StakingTx::Unbond { amount: a.amount }),
        ValidatorCommand::Withdraw(a) => send(&a, StakingTx::Withdraw),
        ValidatorCommand::Status(a) => status(&a),
    })
}

fn bond(a: AmountArgs) -> Result<bool> {
    if !a.home.home.join(aivm_node::keys::IDENTITY_FILE).exists() {
        bail!("{} has no validator keys: run `aivm node init` (or `aivm keys new`) first", a.home.home.display());
    }
    let keys = NodeKeys::load(&a.home.home)?;
    let p2p = aivm_node::config::NodeConfig::load(&a.home.home)?.p2p;
    send(&a.home, StakingTx::Bond { consensus_key: keys.consensus_public().to_vec(), pop: keys.proof_of_possession().to_vec(), amount: a.amount, p2p })
}

/// Sign `tx` with the home's identity, wait for its receipt, print the outcome.
fn send(h: &HomeArgs, tx: StakingTx) -> Result<bool> {
    let Some(r) = send_from(&h.home, &h.rpc, Payload::Staking(tx), h.json)? else { return Ok(false) };
    if !h.json {
        println!("committed: tx {}, gas {}", r["tx_hash"].as_str().unwrap_or("?"), r["gas_used"]);
    }
    Ok(true)
}

fn status(h: &HomeArgs) -> Result<bool> {
    let acct = Account::open(&h.home, rpc_addr(&h.rpc)?)?;
    let id = to_hex(&acct.address());
    let v = acct.rpc.call(|c| c.get_validator(id.clone()))?;
    let Some(v) = v else {
        println!("{id} is not a validator");
        return Ok(false);
    };
    if h.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let s = |k: &str| v[k].as_str().map(str::to_string).unwrap_or_else(|| v[k].to_string());
        println!("validator {id}");
        println!("  stake {}; unbonding {} (withdrawable from block {})", s("stake"), s("unbonding"), v["unlock_at"]);
        println!("  epoch {}: {}", v["epoch"], if v["active"].as_bool() == Some(true) { "in the active set" } else { "not in the active set" });
        println!(
            "  {}",
            if v["signing"].as_bool() == Some(true) { "signs this epoch (holds a share of the threshold key)" } else { "does not sign this epoch" }
        );
        if v["tombstoned"].as_bool() == Some(true) {
            println!("  tombstoned: slashed for double signing, cannot bond again");
        }
        if v["jailed_until"].as_u64().unwrap_or(0) > v["epoch"].as_u64().unwrap_or(0) {
            println!("  jailed for downtime: out of every set before epoch {}", v["jailed_until"]);
        }
        for l in v["liveness"].as_array().into_iter().flatten() {
            println!("  epoch {}: led {} leader slots, missed {}", l["epoch"], l["led"], l["missed"]);
        }
    }
    v.get("stake").ok_or_else(|| anyhow!("malformed answer"))?;
    Ok(true)
}
