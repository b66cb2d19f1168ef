//! `aivm pool show|swap|add|remove`: a model's HMM pool over a node's JSON-RPC, for clients
//! buying compute units and for liquidity providers (`spec/market.md` §2). Amounts a
//! transaction needs are worked out here with the pool's own integer math
//! (`market::hmm`) from the reserves a node reports; the chain applies the same math to
//! the reserves at execution, and `--min-out` guards a swap against their moving between.

use super::account::{rpc_addr, send_from, Account};
use super::job::model_hash;
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::rpc::MarketApiClient;
use aivm_node::rpc_client::NodeClient;
use aivm_runtime::market::hmm::{amount_out, Pool, Side, BPS};
use aivm_runtime::market::MarketTx;
use aivm_runtime::Payload;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PoolCommand {
    /// The pool's reserves, fee and price; with --home, that account's shares and units.
    Show(ShowArgs),
    /// Trade native tokens for compute units or back, at the pool's price less its fee.
    Swap(SwapArgs),
    /// Provide liquidity: deposit native and compute units in the pool's ratio for shares,
    /// which earn the LPs' 4 % of every settled job's fee and the swap fee.
    Add(AddArgs),
    /// Burn shares for their part of both reserves.
    Remove(RemoveArgs),
}

#[derive(Args)]
pub struct PoolArgs {
    /// A node's JSON-RPC address (host:port).
    #[arg(long)]
    pub rpc: String,
    /// The model's hash (default: the model `make model` converted).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Also show what this home's account holds.
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SwapArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The home whose identity key trades.
    #[arg(long)]
    pub home: PathBuf,
    /// What to pay in.
    #[arg(long)]
    pub sell: Sell,
    #[arg(long)]
    pub amount: u128,
    /// Refuse to receive less than this (default: what the pool gives now, less
    /// --slippage-bps).
    #[arg(long)]
    pub min_out: Option<u128>,
    /// With no --min-out: how far below today's price the trade may fill, in basis points.
    #[arg(long, default_value_t = 100)]
    pub slippage_bps: u128,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Sell {
    /// Pay native tokens, receive compute units.
    Native,
    /// Pay compute units, receive native tokens.
    Units,
}

#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The home whose identity key deposits (and holds the shares).
    #[arg(long)]
    pub home: PathBuf,
    /// Native tokens to deposit.
    #[arg(long)]
    pub native: u128,
    /// Compute units to deposit (default: the pool's ratio to --native, rounded up; units
    /// beyond the ratio stay in the pool for every holder).
    #[arg(long)]
    pub units: Option<u128>,
}

#[derive(Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The home whose identity key holds the shares.
    #[arg(long)]
    pub home: PathBuf,
    /// Shares to burn.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub shares: Option<u128>,
    /// Burn every share the account holds.
    #[arg(long)]
    pub all: bool,
}

pub fn run(cmd: PoolCommand) -> ExitCode {
    super::verdict_exit(match cmd {
        PoolCommand::Show(a) => show(a),
        PoolCommand::Swap(a) => swap(a),
        PoolCommand::Add(a) => add(a),
        PoolCommand::Remove(a) => remove(a),
    })
}

/// The model's pool as the node reports it.
fn pool(rpc: &NodeClient, model: &[u8; 32]) -> Result<Pool> {
    let v = rpc.call(|c| c.get_pool(to_hex(model)))?.ok_or_else(|| anyhow!("the chain has no pool for model {}", to_hex(model)))?;
    let n = |k: &str| v[k].as_str().and_then(|s| s.parse::<u128>().ok()).ok_or_else(|| anyhow!("the node's pool has no {k}"));
    Ok(Pool {
        native: n("native")?,
        units: n("units")?,
        shares: n("shares")?,
        fee_bps: v["fee_bps"].as_u64().map(u128::from).ok_or_else(|| anyhow!("no fee"))?,
    })
}

/// An account's holdings in the model's market: (shares, units, what the shares redeem for).
fn holdings(rpc: &NodeClient, who: &[u8; 32], model: &[u8; 32]) -> Result<Value> {
    Ok(rpc.call(|c| c.get_holdings(to_hex(who), to_hex(model)))?)
}

fn amount(v: &Value) -> u128 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn show(a: ShowArgs) -> Result<bool> {
    let model = model_hash(a.pool.model.as_deref())?;
    let rpc = NodeClient::connect(rpc_addr(&a.pool.rpc)?)?;
    let p = pool(&rpc, &model)?;
    let mine = match &a.home {
        Some(home) => {
            let acct = Account::open(home, rpc_addr(&a.pool.rpc)?)?;
            Some((acct.address(), holdings(&rpc, &acct.address(), &model)?))
        }
        None => None,
    };
    if a.json {
        let mut v = serde_json::json!({"model": to_hex(&model), "native": p.native.to_string(), "units": p.units.to_string(),
                                       "shares": p.shares.to_string(), "fee_bps": p.fee_bps as u64});
        if let Some((who, h)) = &mine {
            v["account"] = serde_json::json!(to_hex(who));
            v["holdings"] = h.clone();
        }
        println!("{v}");
        return Ok(true);
    }
    println!("pool of model {}: {} native, {} compute units, {} shares, fee {} bps", to_hex(&model), p.native, p.units, p.shares, p.fee_bps);
    if p.units > 0 {
        // The marginal price, and what one unit costs bought alone (fee and rounding included).
        let one = aivm_runtime::market::hmm::amount_in(1, p.native, p.units, p.fee_bps).ok();
        println!(
            "  price: {:.4} native a unit at the margin; one unit bought alone costs {}",
            p.native as f64 / p.units as f64,
            one.map_or("?".into(), |c| c.to_string())
        );
    }
    if let Some((who, h)) = mine {
        println!("account {}: {} shares, {} compute units held", to_hex(&who), amount(&h["shares"]), amount(&h["units"]));
        if let Some(r) = h["redeemable"].as_object() {
            println!("  its shares redeem now for {} native and {} units", amount(&r["native"]), amount(&r["units"]));
        }
    }
    Ok(true)
}

/// Send `tx` from the home's account ([`send_from`]): its receipt's output (CBOR) if it
/// succeeded.
fn send(home: &std::path::Path, rpc: &str, tx: MarketTx) -> Result<Option<Vec<u8>>> {
    Ok(send_from(home, rpc, Payload::Market(tx), false)?.map(|r| r["output"].as_str().and_then(from_hex).unwrap_or_default()))
}

fn decode<T: serde::de::DeserializeOwned>(out: &[u8]) -> Result<T> {
    ciborium::from_reader(out).context("the receipt's output is not what this transaction returns")
}

fn swap(a: SwapArgs) -> Result<bool> {
    let model = model_hash(a.pool.model.as_deref())?;
    let rpc = NodeClient::connect(rpc_addr(&a.pool.rpc)?)?;
    let p = pool(&rpc, &model)?;
    let (side, (r_in, r_out), (paid, got)) = match a.sell {
        Sell::Native => (Side::Native, (p.native, p.units), ("native", "compute units")),
        Sell::Units => (Side::Units, (p.units, p.native), ("compute units", "native")),
    };
    let now = amount_out(a.amount, r_in, r_out, p.fee_bps).map_err(|e| anyhow!("{e}"))?;
    if a.slippage_bps > BPS {
        bail!("--slippage-bps is at most {BPS}");
    }
    let min_out = a.min_out.unwrap_or(now - now / BPS * a.slippage_bps - now % BPS * a.slippage_bps / BPS);
    eprintln!("{} {paid} would buy {now} {got} now; refusing less than {min_out}", a.amount);
    let Some(out) = send(&a.home, &a.pool.rpc, MarketTx::Swap { sku: model, side, amount_in: a.amount, min_out })? else { return Ok(false) };
    println!("sold {} {paid} for {} {got}", a.amount, decode::<u128>(&out)?);
    Ok(true)
}

fn add(a: AddArgs) -> Result<bool> {
    let model = model_hash(a.pool.model.as_deref())?;
    let rpc = NodeClient::connect(rpc_addr(&a.pool.rpc)?)?;
    let units = match a.units {
        Some(u) => u,
        None => {
            let p = pool(&rpc, &model)?;
            if p.native == 0 {
                bail!("the pool is empty: give --units to set its price");
            }
            p.units_for(a.native).map_err(|e| anyhow!("{e}"))?
        }
    };
    let acct_units = {
        let acct = Account::open(&a.home, rpc_addr(&a.pool.rpc)?)?;
        amount(&holdings(&rpc, &acct.address(), &model)?["units"])
    };
    if acct_units < units {
        bail!("the deposit needs {units} compute units and the account holds {acct_units}: buy them first (`aivm pool swap --sell native`)");
    }
    let Some(out) = send(&a.home, &a.pool.rpc, MarketTx::AddLiquidity { sku: model, native: a.native, units })? else { return Ok(false) };
    println!("deposited {} native and {units} compute units for {} shares", a.native, decode::<u128>(&out)?);
    Ok(true)
}

fn remove(a: RemoveArgs) -> Result<bool> {
    let model = model_hash(a.pool.model.as_deref())?;
    let shares = match a.shares {
        Some(s) => s,
        None => {
            let rpc = NodeClient::connect(rpc_addr(&a.pool.rpc)?)?;
            let acct = Account::open(&a.home, rpc_addr(&a.pool.rpc)?)?;
            let s = amount(&holdings(&rpc, &acct.address(), &model)?["shares"]);
            if s == 0 {
                bail!("account {} holds no shares of this pool", to_hex(&acct.address()));
            }
            s
        }
    };
    let Some(out) = send(&a.home, &a.pool.rpc, MarketTx::RemoveLiquidity { sku: model, shares })? else { return Ok(false) };
    let (native, units): (u128, u128) = decode(&out)?;
    println!("burned {shares} shares for {native} native and {units} compute units");
    Ok(true)
}
