//! `aivm worker|verifier status|unbond|withdraw`: a market bond seen and moved over a node's
//! JSON-RPC, signed with the home's identity key (`spec/market.md` §3). `run` bonds (a worker
//! declares its capacity there); these leave: unbonded stake stops counting for selection at
//! once, stays slashable through the unbonding delay, then is withdrawn.

use super::account::{rpc_addr, send_from, Account};
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::MarketApiClient;
use aivm_runtime::market::{MarketTx, Role};
use aivm_runtime::Payload;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct HomeArgs {
    /// The home whose identity key holds the bond (the one given to `run`).
    #[arg(long)]
    pub home: PathBuf,
    /// A node's JSON-RPC address (host:port).
    #[arg(long)]
    pub rpc: String,
    /// Print the JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AmountArgs {
    #[command(flatten)]
    pub home: HomeArgs,
    /// Native units to unbond.
    #[arg(long)]
    pub amount: u128,
}

fn role_name(role: &Role) -> String {
    match role {
        Role::Worker { sku } => format!("worker on model {}", to_hex(sku)),
        Role::Verifier => "verifier".into(),
    }
}

/// The bond in `role` of the home's account.
pub fn status(h: &HomeArgs, role: Role) -> Result<bool> {
    let acct = Account::open(&h.home, rpc_addr(&h.rpc)?)?;
    let id = to_hex(&acct.address());
    let which = match role {
        Role::Worker { sku } => to_hex(&sku),
        Role::Verifier => "verifier".into(),
    };
    let Some(b) = acct.rpc.call(|c| c.get_bond(id.clone(), which))? else {
        println!("{id} has no bond as a {}", role_name(&role));
        return Ok(false);
    };
    if h.json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(true);
    }
    let s = |k: &str| b[k].as_str().map(str::to_string).unwrap_or_else(|| b[k].to_string());
    println!("{id}, {}", role_name(&role));
    match s("unbonding").as_str() {
        "0" => println!("  bonded {}; nothing unbonding", s("bonded")),
        u => println!("  bonded {}; unbonding {u}, slashable until it is withdrawn from block {}", s("bonded"), b["unlock_at"]),
    }
    if let Role::Worker { .. } = role {
        println!("  capacity {} compute units, {} in flight; {} verified tokens credited", b["capacity"], b["in_flight"], b["credits"]);
        println!("  late or failed in epoch {}: {} bps of its jobs (spec/market.md §5a)", b["quality_epoch"], b["quality_miss_bps"]);
    }
    Ok(true)
}

pub fn unbond(a: &AmountArgs, role: Role) -> Result<bool> {
    let Some(r) = send_from(&a.home.home, &a.home.rpc, Payload::Market(MarketTx::Unbond { role, amount: a.amount }), a.home.json)? else { return Ok(false) };
    if !a.home.json {
        println!("unbonding {}: tx {}; `status` says from which block it can be withdrawn", a.amount, r["tx_hash"].as_str().unwrap_or("?"));
    }
    Ok(true)
}

pub fn withdraw(h: &HomeArgs, role: Role) -> Result<bool> {
    let Some(r) = send_from(&h.home, &h.rpc, Payload::Market(MarketTx::Withdraw { role }), h.json)? else { return Ok(false) };
    let paid: Option<u128> = r["output"].as_str().and_then(from_hex).and_then(|b| ciborium::from_reader(&b[..]).ok());
    if !h.json {
        println!("withdrew {}: tx {}", paid.map_or("?".into(), |p| p.to_string()), r["tx_hash"].as_str().unwrap_or("?"));
    }
    Ok(true)
}
