//! The Block-STM paper's peer-to-peer workload, shared by the `blockstm` benchmark, the
//! equivalence tests and the crash test: `accounts` funded keys, and blocks of transfers
//! between random pairs (native, or calls to the token contract's `transfer`).

use crate::chain::{Chain, Genesis};
use crate::encoding::cbor;
use crate::state::Address;
use crate::tx::{Payload, SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use serde::Serialize;

/// Deterministic keys for account `i`.
pub fn account_key(i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8..16].copy_from_slice(b"workload");
    SigningKey::from_bytes(&seed)
}

pub fn address(key: &SigningKey) -> Address {
    key.verifying_key().to_bytes()
}

/// A small deterministic generator (SplitMix64), so runs are reproducible without a
/// dependency.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What each transfer moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    Native,
    /// Calls `transfer` on the token contract at this address.
    Token(Address),
}

/// The token contract's `transfer` arguments (its `Address` is a hex string in CBOR).
#[derive(Serialize)]
struct TokenTransfer {
    to: String,
    amount: u64,
}

/// CBOR arguments of the token contract's `transfer`.
pub fn token_transfer_args(to: &Address, amount: u64) -> Vec<u8> {
    cbor(&TokenTransfer { to: hex::encode(to), amount })
}

/// The token contract's `instantiate` arguments.
#[derive(Serialize)]
struct TokenInit {
    supply: u64,
}

/// Deploy the token contract (`wasm`) from account 0, minting `supply` to it in the deploy
/// (its `instantiate` entry), then give every other account `each` tokens: two committed
/// blocks. Returns the token's address.
pub fn deploy_token(chain: &Chain, load: &mut P2p, wasm: Vec<u8>, supply: u64, each: u64) -> Result<Address, String> {
    let gas_limit = load.gas_limit;
    load.gas_limit = 2_000_000_000; // deploying is priced per byte of wasm
    let deploy = load.sign(0, Payload::Deploy { code: wasm, args: cbor(&TokenInit { supply }) });
    load.gas_limit = gas_limit;
    let b = chain.execute(vec![deploy], 1).map_err(|e| e.to_string())?;
    let r = &b.record.receipts[0];
    let token = r.contract_address.ok_or_else(|| format!("deploying the token failed: {:?}", r.status))?.into_array();
    chain.commit(b).map_err(|e| e.to_string())?;

    let mut txs = Vec::new();
    for to in load.addresses().into_iter().skip(1) {
        txs.push(load.sign(0, Payload::Call { contract: token, entry: "transfer".into(), args: token_transfer_args(&to, each), value: 0 }));
    }
    let b = chain.execute(txs, 2).map_err(|e| e.to_string())?;
    if let Some(r) = b.record.receipts.iter().find(|r| !r.is_success()) {
        return Err(format!("funding token accounts failed: {:?}", r.status));
    }
    chain.commit(b).map_err(|e| e.to_string())?;
    Ok(token)
}

/// Signs transfers for a fixed set of accounts, tracking each sender's next nonce.
pub struct P2p {
    pub chain_id: u64,
    pub keys: Vec<SigningKey>,
    pub nonces: Vec<u64>,
    pub rng: Rng,
    pub gas_limit: u64,
    pub gas_price: u64,
}

impl P2p {
    pub fn new(chain_id: u64, accounts: u64, seed: u64) -> Self {
        let keys: Vec<_> = (0..accounts).map(account_key).collect();
        let nonces = vec![0; keys.len()];
        P2p { chain_id, keys, nonces, rng: Rng(seed), gas_limit: 2_000_000, gas_price: 1 }
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.keys.iter().map(address).collect()
    }

    /// A genesis giving every account `balance`.
    pub fn genesis(&self, balance: u128) -> Genesis {
        Genesis { accounts: self.addresses().into_iter().map(|a| (a, balance)).collect(), time_ms: 0, entries: Vec::new() }
    }

    /// One signed transaction from account `from`.
    pub fn sign(&mut self, from: usize, payload: Payload) -> SignedTransaction {
        let key = &self.keys[from];
        let tx = Transaction {
            chain_id: self.chain_id,
            sender: address(key),
            nonce: self.nonces[from],
            gas_limit: self.gas_limit,
            gas_price: self.gas_price,
            payload,
        };
        self.nonces[from] += 1;
        tx.sign(key)
    }

    /// `n` transfers of 1 unit between random distinct pairs (a random pair may repeat).
    pub fn block(&mut self, n: usize, asset: Asset) -> Vec<SignedTransaction> {
        let k = self.keys.len() as u64;
        (0..n)
            .map(|_| {
                let from = self.rng.below(k) as usize;
                let mut to = self.rng.below(k) as usize;
                if to == from && k > 1 {
                    to = (to + 1) % k as usize;
                }
                let to_addr = address(&self.keys[to]);
                let payload = match asset {
                    Asset::Native => Payload::Transfer { to: to_addr, amount: 1 },
                    Asset::Token(contract) => Payload::Call { contract, entry: "transfer".into(), args: token_transfer_args(&to_addr, 1), value: 0 },
                };
                self.sign(from, payload)
            })
            .collect()
    }
}
