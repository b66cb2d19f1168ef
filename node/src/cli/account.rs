//! An account the command line signs with (a home's `identity.key`, as a validator's), and
//! sending its transactions through a node's JSON-RPC.

use aivm_node::hexbytes::to_hex;
use aivm_node::keys::{NodeKeys, IDENTITY_FILE};
use aivm_node::rpc::{AivmApiClient, MarketApiClient};
use aivm_node::rpc_client::NodeClient;
use aivm_runtime::{Address, Payload, Transaction};
use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::SigningKey;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Several nodes, comma-separated: the first answers queries and takes transactions (the
/// validator that admits one gossips it to the others, so it reaches the next block whoever
/// leads); the rest are tried in turn when it cannot be reached.
pub fn rpc_addrs(s: &str) -> Result<Vec<SocketAddr>> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(|p| rpc_addr(p.trim())).collect()
}

/// `host:port`, with or without `http://`.
pub fn rpc_addr(s: &str) -> Result<SocketAddr> {
    let bare = s.trim_start_matches("http://").trim_end_matches('/');
    bare.parse().with_context(|| format!("--rpc {s}: expected host:port (an IP address and port)"))
}

pub struct Account {
    pub key: SigningKey,
    pub rpc: NodeClient,
    pub chain_id: u64,
    /// Gas limit of each transaction sent.
    pub gas_limit: u64,
    /// The next nonce to use for transactions sent without waiting (`None`: ask the node).
    next_nonce: Option<u64>,
    /// Nodes that transactions sent without waiting go to when `rpc` cannot be reached.
    pub also: Vec<NodeClient>,
}

impl Account {
    /// The identity key under `home` (created with fresh keys if the home has none).
    pub fn open(home: &Path, rpc: SocketAddr) -> Result<Self> {
        let keys = if home.join(IDENTITY_FILE).exists() {
            NodeKeys::load(home)?
        } else {
            let k = NodeKeys::generate()?;
            k.save(home)?;
            k
        };
        let rpc = NodeClient::connect(rpc)?;
        let status = rpc.call(|c| c.status()).with_context(|| format!("asking {} for its status", rpc.addr()))?;
        let chain_id = status["chain_id"].as_u64().ok_or_else(|| anyhow!("the node's status has no chain id"))?;
        Ok(Account { key: keys.identity, rpc, chain_id, gas_limit: 200_000_000, next_nonce: None, also: Vec::new() })
    }

    pub fn address(&self) -> Address {
        self.key.verifying_key().to_bytes()
    }

    pub fn nonce(&mut self) -> Result<u64> {
        let a = self.rpc.call(|c| c.get_account(to_hex(&self.address())))?;
        Ok(a.and_then(|a| a["nonce"].as_u64()).unwrap_or(0))
    }

    /// Sign and send `payload` with `gas_limit`; wait up to `timeout` for its receipt.
    pub fn send_with(&mut self, payload: Payload, gas_limit: u64, timeout: Duration) -> Result<Value> {
        let tx = Transaction { chain_id: self.chain_id, sender: self.address(), nonce: self.nonce()?, gas_limit, gas_price: 1, payload };
        let hash = self.rpc.call(|c| c.send_transaction(to_hex(&tx.sign(&self.key).encode())))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.rpc.call(|c| c.get_receipt(hash.clone()))? {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("transaction {hash} was not committed within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sign and send `payload` without waiting for it to be committed; returns its hash.
    /// Nonces are counted here, so several can be in flight; a refused send makes the next
    /// one ask the node again.
    pub fn send_nowait(&mut self, payload: Payload, gas_limit: u64) -> Result<String> {
        let nonce = self.next_nonce_or_ask()?;
        let raw = self.signed(nonce, payload, gas_limit);
        // The node that admits it gossips it to the other validators; the others are only
        // tried when that node cannot be reached.
        let mut sent = self.rpc.call(|c| c.send_transaction(raw.clone()));
        for other in &self.also {
            match &sent {
                Err(aivm_node::rpc_client::NodeError::Client(_)) => sent = other.call(|c| c.send_transaction(raw.clone())),
                _ => break,
            }
        }
        match sent {
            Ok(h) => {
                self.next_nonce = Some(nonce + 1);
                Ok(h)
            }
            Err(e) => {
                self.next_nonce = None;
                Err(e.into())
            }
        }
    }

    /// Sign several payloads with consecutive nonces and send them without waiting, side by
    /// side: the i-th to the i-th node (`rpc`, then `also`, round robin; each node's share in
    /// order). A node gossips what it admits and the pool keeps a later nonce until the earlier
    /// one comes, so they reach the same block where one after another each took a send's
    /// time (a ~1 MB answer: 12–46 ms). One result per payload, in order; after any refusal
    /// the next send asks the node for the nonce again (what it sent past the refused one
    /// waits for the resent).
    pub fn send_many_nowait(&mut self, txs: Vec<(Payload, u64)>) -> Result<Vec<Result<String>>> {
        let first = self.next_nonce_or_ask()?;
        let count = txs.len();
        let nodes: Vec<&NodeClient> = std::iter::once(&self.rpc).chain(&self.also).collect();
        // Each node's share, signed: (index, raw transaction).
        let mut shares: Vec<Vec<(usize, String)>> = vec![Vec::new(); nodes.len()];
        for (i, (payload, gas_limit)) in txs.into_iter().enumerate() {
            shares[i % nodes.len()].push((i, self.signed(first + i as u64, payload, gas_limit)));
        }
        let mut results: Vec<Result<String>> = (0..count).map(|_| Err(anyhow!("not sent"))).collect();
        std::thread::scope(|s| {
            let sends: Vec<_> = nodes
                .iter()
                .zip(shares)
                .filter(|(_, share)| !share.is_empty())
                .map(|(&node, share)| s.spawn(move || share.into_iter().map(|(i, raw)| (i, node.call(|c| c.send_transaction(raw)))).collect::<Vec<_>>()))
                .collect();
            for send in sends {
                for (i, r) in send.join().unwrap_or_default() {
                    results[i] = r.map_err(anyhow::Error::from);
                }
            }
        });
        self.next_nonce = results.iter().all(|r| r.is_ok()).then_some(first + count as u64);
        Ok(results)
    }

    /// The nonce counted here since the last refusal, else the node's.
    fn next_nonce_or_ask(&mut self) -> Result<u64> {
        match self.next_nonce {
            Some(n) => Ok(n),
            None => self.nonce(),
        }
    }

    /// `payload` signed by this account with `nonce`, hex-encoded for `send_transaction`.
    fn signed(&self, nonce: u64, payload: Payload, gas_limit: u64) -> String {
        let tx = Transaction { chain_id: self.chain_id, sender: self.address(), nonce, gas_limit, gas_price: 1, payload };
        to_hex(&tx.sign(&self.key).encode())
    }

    /// Bond `amount` in `role` (with `capacity` for a worker) unless this account already has
    /// stake bonded there.
    pub fn bond_once(&mut self, role: aivm_runtime::market::Role, amount: u128, capacity: u64) -> Result<()> {
        let which = match role {
            aivm_runtime::market::Role::Worker { sku } => to_hex(&sku),
            aivm_runtime::market::Role::Verifier => "verifier".into(),
        };
        let bond = self.rpc.call(|c| c.get_bond(to_hex(&self.address()), which))?;
        if bond.is_some_and(|b| b["bonded"] != "0") {
            return Ok(());
        }
        let r = self.send(Payload::Market(aivm_runtime::market::MarketTx::Bond { role, amount, capacity }))?;
        match failure(&r) {
            Some(why) => bail!("bonding {amount} failed: {why}"),
            None => Ok(()),
        }
    }

    pub fn send(&mut self, payload: Payload) -> Result<Value> {
        self.send_with(payload, self.gas_limit, Duration::from_secs(60))
    }
}

/// Sign `payload` with the identity under `home`, send it to `rpc` and wait for its receipt
/// (printed as JSON with `json`): the receipt if it succeeded; if not, why goes to stderr
/// ("refused: …") and the answer is `None`.
pub fn send_from(home: &Path, rpc: &str, payload: Payload, json: bool) -> Result<Option<Value>> {
    let mut acct = Account::open(home, rpc_addr(rpc)?)?;
    let r = acct.send(payload)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(match failure(&r) {
        Some(why) => {
            eprintln!("refused: {why}");
            None
        }
        None => Some(r),
    })
}

/// A receipt's failure, if it is not a success.
pub fn failure(r: &Value) -> Option<String> {
    (r["status"] != "success").then(|| r["status"].to_string())
}
