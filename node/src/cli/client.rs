//! Talking to a running node as a contract developer: `aivm keys`, `aivm deploy`, `aivm send`,
//! `aivm query`, `aivm receipt`, `aivm block` (issue 21). Each takes the node's JSON-RPC
//! address with `--rpc`; signing commands take a home whose identity key pays.

use super::account::{failure, rpc_addr, Account};
use super::codec::{json_to_cbor, output_to_json};
use aivm_node::abi::Abi;
use aivm_node::hexbytes::{from_hex, to_hex};
use aivm_node::keys::{NodeKeys, IDENTITY_FILE};
use aivm_node::rpc::AivmApiClient;
use aivm_node::rpc_client::NodeClient;
use aivm_runtime::Payload;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key under --home (refuses to overwrite one) and print its address.
    New(HomeArgs),
    /// Print the address of the key under --home (and, with --rpc, its balance and nonce).
    Show(ShowArgs),
    /// The keys in the homes directly under --dir (a testnet's or devnet's directory).
    List(ListArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct HomeArgs {
    #[arg(long)]
    pub home: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub rpc: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DeployArgs {
    /// The contract's wasm file.
    pub wasm: PathBuf,
    /// Arguments of its `instantiate` entry, as JSON (run in the same transaction).
    #[arg(long)]
    pub init_args: Option<String>,
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub rpc: String,
    /// Gas for the deploy and `instantiate`: by default the most one transaction may use
    /// (a deploy's price grows with the module's size and shape; only what is used is paid).
    #[arg(long, default_value_t = 2_500_000_000)]
    pub gas_limit: u64,
    /// Skip checking the arguments against the contract's entry-point schema.
    #[arg(long)]
    pub no_check: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SendArgs {
    /// The contract's address (64 hex digits).
    pub contract: String,
    pub entry: String,
    /// Arguments as JSON.
    #[arg(long, default_value = "null")]
    pub args: String,
    /// Native units sent with the call (the contract reads them with `env::value()`; they
    /// move only if the call succeeds).
    #[arg(long, default_value_t = 0)]
    pub value: u128,
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub rpc: String,
    #[arg(long, default_value_t = 100_000_000)]
    pub gas_limit: u64,
    /// Skip checking --args against the contract's entry-point schema.
    #[arg(long)]
    pub no_check: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct TransferArgs {
    /// The receiving account (64 hex digits).
    pub to: String,
    /// Native units.
    pub amount: u128,
    /// The sender's home (its `identity.key` signs and pays).
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub rpc: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct QueryArgs {
    pub contract: String,
    pub entry: String,
    #[arg(long, default_value = "null")]
    pub args: String,
    #[arg(long)]
    pub rpc: String,
    /// Skip checking --args against the contract's entry-point schema.
    #[arg(long)]
    pub no_check: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReceiptArgs {
    /// The transaction's hash.
    pub hash: String,
    #[arg(long)]
    pub rpc: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BlockArgs {
    pub height: u64,
    #[arg(long)]
    pub rpc: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `v` as pretty JSON with `--json`, else as `text` renders it for people.
fn emit(v: &Value, json: bool, text: impl Fn(&Value) -> String) {
    if json {
        print(v);
    } else {
        println!("{}", text(v));
    }
}

fn str_or<'a>(v: &'a Value, or: &'a str) -> &'a str {
    v.as_str().unwrap_or(or)
}

/// A receipt in a few lines: hash and outcome, gas and fee, the new contract, output, events.
fn receipt_text(r: &Value) -> String {
    let status = match &r["status"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut s = format!("tx {}  {status}", str_or(&r["tx_hash"], "?"));
    if let Some(h) = r["block_height"].as_u64() {
        s += &format!("  (block {h})");
    }
    s += &format!("\ngas {}  fee {}", r["gas_used"], str_or(&r["fee"], "?"));
    if let Some(c) = r["contract_address"].as_str() {
        s += &format!("\ncontract {c}");
    }
    if !r["output"].is_null() {
        s += &format!("\noutput {}", r["output"]);
    }
    for e in r["events"].as_array().into_iter().flatten() {
        s += &format!("\nevent {} {}", str_or(&e["topic"], "?"), e["data"]);
    }
    s
}

fn block_text(b: &Value) -> String {
    let txs: Vec<&str> = b["txs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut s = format!(
        "block {}  {}\nparent {}\ntime_ms {}  gas {}  {} txs\nstate_root {}",
        b["height"],
        str_or(&b["hash"], "?"),
        str_or(&b["parent_hash"], "?"),
        b["time_ms"],
        b["gas_used"],
        txs.len(),
        str_or(&b["state_root"], "?")
    );
    for t in txs {
        s += &format!("\n  tx {t}");
    }
    s
}

fn address(s: &str, what: &str) -> Result<[u8; 32]> {
    from_hex(s).and_then(|v| v.try_into().ok()).ok_or_else(|| anyhow!("{what} must be 64 hex digits"))
}

fn args_json(s: &str) -> Result<Value> {
    serde_json::from_str::<Value>(s).context("--args is not valid JSON")
}

/// Check `args` against `entry` in the schema of the contract at `contract` (fetched from the
/// node: `aivm_getAbi`), before anything is signed. A contract without a schema passes.
fn check_remote(rpc: &NodeClient, contract: &str, entry: &str, args: &Value) -> Result<()> {
    let abi = rpc.call(|c| c.get_abi(contract.to_string())).context("asking the node for the contract's entry points")?;
    let Some(abi) = abi else { bail!("no contract at {contract}") };
    let abi = Abi::from_json(&abi);
    abi.check(entry, args).context("--args do not fit the entry point (--no-check skips this)")
}

/// A receipt with its output decoded (CBOR to JSON) for people; `Ok(false)` if it failed.
fn show_receipt(mut r: Value, json: bool) -> Result<bool> {
    if let Some(out) = r["output"].as_str().and_then(from_hex) {
        r["output"] = output_to_json(&out);
    }
    // Events as the contract emitted them: the topic as text, the data decoded like output.
    for e in r["events"].as_array_mut().into_iter().flatten() {
        if let Some(topic) = e["topic"].as_str().and_then(from_hex).and_then(|t| String::from_utf8(t).ok()) {
            e["topic"] = json!(topic);
        }
        if let Some(data) = e["data"].as_str().and_then(from_hex) {
            e["data"] = output_to_json(&data);
        }
    }
    let ok = failure(&r).is_none();
    emit(&r, json, receipt_text);
    Ok(ok)
}

pub fn keys(cmd: KeysCommand) -> Result<bool> {
    match cmd {
        KeysCommand::New(a) => {
            if a.home.join(IDENTITY_FILE).exists() {
                bail!("{} already holds a key; refusing to overwrite it", a.home.display());
            }
            let k = NodeKeys::generate()?;
            k.save(&a.home)?;
            emit(&json!({"address": to_hex(&k.identity_public()), "home": a.home}), a.json, |v| {
                format!("address {}  (home {})", str_or(&v["address"], "?"), str_or(&v["home"], "?"))
            });
            Ok(true)
        }
        KeysCommand::List(a) => {
            let mut homes: Vec<PathBuf> = std::fs::read_dir(&a.dir)
                .with_context(|| format!("reading {}", a.dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(IDENTITY_FILE).is_file())
                .collect();
            homes.sort();
            let keys: Vec<Value> =
                homes.iter().map(|h| Ok(json!({"home": h, "address": to_hex(&NodeKeys::load(h)?.identity_public())}))).collect::<Result<_>>()?;
            emit(&json!(keys), a.json, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| format!("{}  {}", str_or(&k["address"], "?"), str_or(&k["home"], "?")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(true)
        }
        KeysCommand::Show(a) => {
            let k = NodeKeys::load(&a.home).with_context(|| format!("no key under {} (create one with `aivm keys new`)", a.home.display()))?;
            let addr = to_hex(&k.identity_public());
            let account = match &a.rpc {
                Some(r) => NodeClient::connect(rpc_addr(r)?)?.call(|c| c.get_account(addr.clone()))?.unwrap_or(Value::Null),
                None => Value::Null,
            };
            emit(&json!({"address": addr, "account": account}), a.json, |v| match &v["account"] {
                Value::Null if a.rpc.is_some() => format!("address {}\nno account on chain yet (send it funds first)", str_or(&v["address"], "?")),
                Value::Null => format!("address {}", str_or(&v["address"], "?")),
                acc => format!("address {}\nbalance {}  nonce {}", str_or(&v["address"], "?"), str_or(&acc["balance"], "?"), acc["nonce"]),
            });
            Ok(true)
        }
    }
}

pub fn deploy(a: DeployArgs) -> Result<bool> {
    let code = std::fs::read(&a.wasm).with_context(|| format!("reading {}", a.wasm.display()))?;
    let args = match &a.init_args {
        Some(s) => {
            let v = args_json(s).context("--init-args")?;
            if !a.no_check {
                Abi::of_wasm(&code).check(aivm::INSTANTIATE_ENTRY, &v).context("--init-args do not fit `instantiate` (--no-check skips this)")?;
            }
            json_to_cbor(&v)
        }
        None => Vec::new(),
    };
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    show_receipt(acct.send_with(Payload::Deploy { code, args }, a.gas_limit, Duration::from_secs(60))?, a.json)
}

pub fn send(a: SendArgs) -> Result<bool> {
    let contract = address(&a.contract, "the contract")?;
    let args = args_json(&a.args)?;
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    if !a.no_check {
        check_remote(&acct.rpc, &a.contract, &a.entry, &args)?;
    }
    show_receipt(
        acct.send_with(Payload::Call { contract, entry: a.entry, args: json_to_cbor(&args), value: a.value }, a.gas_limit, Duration::from_secs(60))?,
        a.json,
    )
}

/// Native units from the home's account to another (funding a new validator, a worker).
pub fn transfer(a: TransferArgs) -> Result<bool> {
    let to = address(&a.to, "the receiving account")?;
    let mut acct = Account::open(&a.home, rpc_addr(&a.rpc)?)?;
    show_receipt(acct.send(Payload::Transfer { to, amount: a.amount })?, a.json)
}

pub fn query(a: QueryArgs) -> Result<bool> {
    address(&a.contract, "the contract")?;
    let args = args_json(&a.args)?;
    let rpc = NodeClient::connect(rpc_addr(&a.rpc)?)?;
    if !a.no_check {
        check_remote(&rpc, &a.contract, &a.entry, &args)?;
    }
    let mut r = rpc.call(|c| c.query(a.contract.clone(), a.entry.clone(), to_hex(&json_to_cbor(&args)), None))?;
    if let Some(out) = r["output"].as_str().and_then(from_hex) {
        r["output"] = output_to_json(&out);
    }
    let ok = r["status"] == "success";
    emit(&r, a.json, |r| match r["error"].as_str() {
        Some(e) => format!("error {e}\ngas {}", r["gas_used"]),
        None => format!("output {}\ngas {}", r["output"], r["gas_used"]),
    });
    Ok(ok)
}

pub fn receipt(a: ReceiptArgs) -> Result<bool> {
    let r = NodeClient::connect(rpc_addr(&a.rpc)?)?.call(|c| c.get_receipt(a.hash.clone()))?;
    let Some(r) = r else { bail!("no receipt for {} (not committed, or unknown)", a.hash) };
    show_receipt(r, a.json)
}

pub fn block(a: BlockArgs) -> Result<bool> {
    let b = NodeClient::connect(rpc_addr(&a.rpc)?)?.call(|c| c.get_block(a.height))?;
    let Some(b) = b else { bail!("no block {} yet", a.height) };
    emit(&b, a.json, block_text);
    Ok(true)
}

#[derive(Args)]
pub struct WatchArgs {
    /// A node's JSON-RPC address (host:port); the WebSocket is on the same port.
    #[arg(long)]
    pub rpc: String,
    /// Stop after this many blocks (default: until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// One JSON object per block instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// Follow finalized blocks over the node's WebSocket subscription (`aivm_subscribeFinalized`).
pub fn watch(a: WatchArgs) -> Result<bool> {
    let node = NodeClient::connect(rpc_addr(&a.rpc)?)?;
    let (client, rt) = node.parts();
    rt.block_on(async {
        let mut sub = client.subscribe_finalized().await.context("subscribing to finalized blocks")?;
        let mut seen = 0u64;
        while a.count.is_none_or(|c| seen < c) {
            let Some(block) = sub.next().await else { bail!("the node closed the subscription") };
            let b = block.context("a notification that is not a block")?;
            if a.json {
                println!("{b}");
            } else {
                println!(
                    "block {:>8}  {:>5} txs  {:>12} gas  root {}",
                    b["height"],
                    b["txs"],
                    b["gas_used"],
                    b["state_root"].as_str().map_or("?", |r| &r[..16.min(r.len())])
                );
            }
            seen += 1;
        }
        Ok(true)
    })
}
