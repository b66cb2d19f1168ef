//! A network's genesis: chain id, validators with their stakes and keys, initial balances.
//!
//! Consensus votes with equal weight, so stake does not weigh votes: it selects the active set,
//! the `active_set_size` validators with the most stake (ties by identity key), fixed for an
//! epoch of `epoch_length` blocks. Every consensus key carries a proof of possession, checked
//! here. The active set signs votes with a threshold key whose public polynomial is in
//! genesis (`threshold`; `crate::consensus::threshold`).

use crate::hexbytes::serde_hex;
use crate::keys::{verify_pop, NodeKeys};
use aivm_runtime::{Address, Genesis};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// ed25519 public key: p2p identity and account address.
    #[serde(with = "serde_hex")]
    pub identity: [u8; 32],
    /// BLS12-381 min-pk public key for votes.
    #[serde(with = "serde_hex")]
    pub consensus: [u8; 48],
    /// Proof of possession of `consensus`.
    #[serde(with = "serde_hex")]
    pub pop: [u8; 96],
    pub stake: u128,
    /// Where its p2p endpoint listens (`host:port`).
    pub p2p: String,
}

impl GenesisValidator {
    /// The entry for a validator holding `keys`.
    pub fn new(keys: &NodeKeys, stake: u128, p2p: String) -> Self {
        Self { identity: keys.identity_public(), consensus: keys.consensus_public(), pop: keys.proof_of_possession(), stake, p2p }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    #[serde(with = "serde_hex")]
    pub address: Address,
    pub balance: u128,
}

/// An active validator's identity and its share of the threshold key (the `Share` encoding).
pub type DealtShare = ([u8; 32], Vec<u8>);

/// Where fees go: an address nobody holds a key for, so fees are burned.
pub const FEE_COLLECTOR: [u8; 32] = [0; 32];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisFile {
    pub chain_id: u64,
    pub time_ms: u64,
    pub epoch_length: u64,
    pub active_set_size: u32,
    pub validators: Vec<GenesisValidator>,
    pub accounts: Vec<GenesisAccount>,
    /// The public polynomial of the active set's threshold key (commonware's `Sharing`
    /// encoding, BLS12-381 min-pk, threshold `2f+1`): it checks votes, certificates and the
    /// rounds' seeds. Dealt with the genesis ([`GenesisFile::deal_threshold`]).
    #[serde(default, with = "crate::hexbytes::serde_hex_vec")]
    pub threshold: Vec<u8>,
    /// Epoch 0's info (commonware-glue's reshare payload: the dealing's output, epoch 0's
    /// players and next players, their p2p addresses), carried by the genesis block; each
    /// epoch's final block carries the next one's (`crate::consensus::epochs`). Dealt with
    /// `threshold`.
    #[serde(default, with = "crate::hexbytes::serde_hex_vec")]
    pub epoch_info: Vec<u8>,
    /// Most gas the transactions of one block may reserve (Σ gas_limit); also the most one
    /// transaction may reserve. It must fit the consensus timeouts (`spec/consensus.md`,
    /// [`crate::consensus::max_block_gas_for`]); a validator whose timeouts it does not fit
    /// refuses to start.
    #[serde(default = "default_max_block_gas")]
    pub max_block_gas: u64,
    /// Least gas price a transaction may offer.
    #[serde(default = "default_min_gas_price")]
    pub min_gas_price: u64,
    /// The compute market: its parameters, the models this chain serves and seeded pools
    /// (`spec/market.md`). Absent: no market (market transactions fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<GenesisMarket>,
    /// Validator staking (`spec/consensus.md`, "Validator lifecycle"): least bonded stake,
    /// the unbonding delay in blocks, and the registry's size.
    #[serde(default)]
    pub staking: GenesisStaking,
}

/// Genesis parameters of validator staking besides `epoch_length` and `active_set_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisStaking {
    pub min_stake: u128,
    pub unbonding_blocks: u64,
    pub max_validators: u32,
    /// Jailing for downtime (`spec/consensus.md`): `{downtime_min_slots, downtime_max_missed_bps, jail_epochs}`.
    #[serde(default)]
    pub jail: aivm_runtime::staking::JailParams,
}

impl Default for GenesisStaking {
    /// Any positive stake, ten minutes of one-second blocks to unbond, 100 validators; a
    /// validator that misses more than half of at least two leader slots in an epoch sits the
    /// next one out.
    fn default() -> Self {
        GenesisStaking { min_stake: 1, unbonding_blocks: 600, max_validators: 100, jail: Default::default() }
    }
}

/// A model the chain serves: every validator must hold its artifact (checked at start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisModel {
    /// MODEL_HASH of the SKU.
    #[serde(with = "serde_hex")]
    pub hash: [u8; 32],
    pub size: u64,
    pub vocab: u32,
    pub max_ctx: u32,
}

/// A pool seeded at genesis (its native and units enter the supply here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisPool {
    #[serde(with = "serde_hex")]
    pub sku: [u8; 32],
    pub native: u128,
    pub units: u128,
    #[serde(with = "serde_hex")]
    pub provider: Address,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisMarket {
    #[serde(default)]
    pub params: aivm_runtime::market::MarketParams,
    pub models: Vec<GenesisModel>,
    #[serde(default)]
    pub pools: Vec<GenesisPool>,
}

impl GenesisMarket {
    /// The runtime's form.
    pub fn runtime(&self) -> aivm_runtime::market::MarketGenesis {
        use aivm_runtime::market::{genesis::SeedPool, ModelEntry};
        aivm_runtime::market::MarketGenesis {
            params: self.params.clone(),
            models: self.models.iter().map(|m| (m.hash, ModelEntry { size: m.size, vocab: m.vocab, max_ctx: m.max_ctx })).collect(),
            pools: self.pools.iter().map(|p| SeedPool { sku: p.sku, native: p.native, units: p.units, provider: p.provider }).collect(),
        }
    }
}

fn default_max_block_gas() -> u64 {
    DEFAULT_MAX_BLOCK_GAS
}

fn default_min_gas_price() -> u64 {
    DEFAULT_MIN_GAS_PRICE
}

/// The block gas limit the default timeouts allow (see [`crate::consensus::max_block_gas_for`]).
pub const DEFAULT_MAX_BLOCK_GAS: u64 = 2_500_000_000;
/// One unit of the native token per gas: a 10⁹-gas loop costs 10⁹ units.
pub const DEFAULT_MIN_GAS_PRICE: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis is not valid JSON: {0}")]
    Json(String),
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl GenesisFile {
    /// Parse and [`validate`](Self::validate).
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let g: Self = serde_json::from_slice(bytes).map_err(|e| GenesisError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// BLAKE3 of the canonical (compact JSON) form: every node of a network must agree on it.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&serde_json::to_vec(self).unwrap_or_default()).as_bytes()
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.validators.is_empty() {
            return bad("no validators".into());
        }
        // Larger than the genesis validators is allowed: later epochs' sets have room for
        // validators that bond (`spec/consensus.md`, "Validator lifecycle").
        if self.active_set_size == 0 {
            return bad("active_set_size must be at least 1".into());
        }
        if self.epoch_length == 0 {
            return bad("epoch_length must be at least 1".into());
        }
        // Each epoch's reshare needs a quorum of its dealers to lead a block in the epoch's
        // second half, the last block excepted (`spec/consensus.md`, "Epochs of the engine"):
        // at least as many such blocks as validators. Five validators in 10-block epochs
        // failed every reshare (four turns for five dealers).
        let least = 2 * u64::from(self.active_set_size) + 2;
        if self.epoch_length < least {
            return bad(format!(
                "epoch_length {} is too short for {} validators to reshare the key each epoch: at least {least}",
                self.epoch_length, self.active_set_size
            ));
        }
        if self.max_block_gas == 0 {
            return bad("max_block_gas must be at least 1".into());
        }
        let (mut ids, mut cks) = (HashSet::new(), HashSet::new());
        let mut total: u128 = 0;
        for (i, v) in self.validators.iter().enumerate() {
            if !ids.insert(v.identity) || !cks.insert(v.consensus) {
                return bad(format!("validator {i} repeats a key"));
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&v.identity).is_err() {
                return bad(format!("validator {i}: identity is not an ed25519 public key"));
            }
            if !verify_pop(&v.consensus, &v.pop) {
                return bad(format!("validator {i}: proof of possession does not verify"));
            }
            if v.stake == 0 || v.stake < self.staking.min_stake {
                return bad(format!("validator {i}'s stake {} is below the minimum {} (and must be positive)", v.stake, self.staking.min_stake));
            }
            total = total.checked_add(v.stake).ok_or_else(|| GenesisError::Invalid("total stake overflows".into()))?;
        }
        if self.validators.len() > self.staking.max_validators as usize {
            return bad(format!("{} validators, more than staking.max_validators {}", self.validators.len(), self.staking.max_validators));
        }
        let mut addrs = HashSet::new();
        let mut supply: u128 = 0;
        for a in &self.accounts {
            if !addrs.insert(a.address) {
                return bad("an account appears twice".into());
            }
            supply = supply.checked_add(a.balance).ok_or_else(|| GenesisError::Invalid("total balance overflows".into()))?;
        }
        if let Some(m) = &self.market {
            m.runtime().entries().map_err(|e| GenesisError::Invalid(format!("market: {e}")))?;
        }
        if self.threshold.is_empty() {
            return bad("no threshold key (the validators make one with `aivm node dkg`, or `aivm node deal` deals one)".into());
        }
        crate::consensus::threshold::sharing(&self.threshold, &self.active_identities()).map_err(|e| GenesisError::Invalid(e.to_string()))?;
        if self.active_set_size > crate::consensus::epochs::MAX_PARTICIPANTS {
            return bad(format!("active_set_size {} is over the engine's {}", self.active_set_size, crate::consensus::epochs::MAX_PARTICIPANTS));
        }
        // Epoch 0's info names the dealt key and the active set.
        let Some((0, engine)) = crate::consensus::epochs::engine_epoch(&self.epoch_info) else {
            return bad("no epoch 0 info (`epoch_info`; `aivm node dkg` or `aivm node deal` writes it)".into());
        };
        let ids: Vec<[u8; 32]> = engine.signers.iter().map(|s| **s).collect();
        let mut active = self.active_identities();
        active.sort();
        if engine.sharing != self.threshold || ids != active {
            return bad("epoch_info does not describe the threshold key and the active set".into());
        }
        Ok(())
    }

    /// The active set's identity keys.
    pub fn active_identities(&self) -> Vec<[u8; 32]> {
        self.active_set().into_iter().map(|i| self.validators[i].identity).collect()
    }

    /// Deal a fresh threshold key to the active set (a trusted dealer: whoever runs this
    /// knows every share; `spec/consensus.md`). Sets `threshold`; returns each active
    /// validator's share by identity, for its `consensus.share`.
    pub fn deal_threshold(&mut self) -> Result<Vec<DealtShare>, GenesisError> {
        let ids = self.active_identities();
        let dealt = crate::consensus::threshold::deal(&ids).map_err(|e| GenesisError::Invalid(e.to_string()))?;
        self.set_threshold(dealt.output)?;
        Ok(ids.into_iter().zip(dealt.shares).collect())
    }

    /// Take the threshold key from a dealing's or a DKG's output: its public polynomial as
    /// `threshold`, epoch 0's info (with the validators' p2p addresses) as `epoch_info`.
    pub fn set_threshold(
        &mut self,
        output: commonware_cryptography::bls12381::dkg::feldman_desmedt::Output<
            commonware_cryptography::bls12381::primitives::variant::MinPk,
            crate::consensus::PublicKey,
        >,
    ) -> Result<(), GenesisError> {
        use commonware_codec::Encode as _;
        self.threshold = output.public().encode().to_vec();
        self.epoch_info = crate::consensus::epochs::genesis_payload(output, &self.validators).map_err(GenesisError::Invalid)?;
        Ok(())
    }

    /// Indices of the active validators, most stake first (ties: lower identity key first).
    pub fn active_set(&self) -> Vec<usize> {
        active_set(&self.validators.iter().map(|v| (v.identity, v.stake)).collect::<Vec<_>>(), self.active_set_size as usize)
    }

    /// The chain parameters every validator of this network runs with.
    pub fn chain_config(&self) -> aivm_runtime::ChainConfig {
        aivm_runtime::ChainConfig { chain_id: self.chain_id, fee_collector: FEE_COLLECTOR }
    }

    /// Who the market treasury's validator pot is paid to at each epoch's end, and when
    /// (`spec/market.md` §4): the active set, by the stake recorded in the state.
    pub fn epoch_rewards(&self) -> aivm_runtime::market::treasury::EpochRewards {
        let validators = self.active_identities().into_iter().map(|id| (id, crate::staking::stake_key(&id))).collect();
        aivm_runtime::market::treasury::EpochRewards { epoch_length: self.epoch_length, validators }
    }

    /// What a block may hold, checked before execution by the mempool and every validator.
    pub fn block_limits(&self) -> aivm_runtime::BlockLimits {
        aivm_runtime::BlockLimits { max_block_gas: self.max_block_gas, max_tx_gas: self.max_block_gas, min_gas_price: self.min_gas_price }
    }

    /// Validator staking's parameters in the state.
    pub fn staking_params(&self) -> aivm_runtime::staking::StakingParams {
        aivm_runtime::staking::StakingParams {
            min_stake: self.staking.min_stake,
            unbonding_blocks: self.staking.unbonding_blocks,
            max_validators: self.staking.max_validators,
            active_set_size: self.active_set_size,
            epoch_length: self.epoch_length,
            jail: self.staking.jail,
        }
    }

    /// The runtime's genesis state: the balances, the validators' stakes and staking records
    /// (epoch 0's set among them), the market.
    pub fn state(&self) -> Genesis {
        let validators: Vec<_> = self.validators.iter().map(|v| (v.identity, v.consensus.to_vec(), v.stake, v.p2p.clone())).collect();
        let mut entries = aivm_runtime::staking::epoch::genesis_entries(&self.staking_params(), &validators);
        // Who signs epoch 0 (`crate::consensus::epochs::engine_epoch`; validated with the file).
        if let Some((0, engine)) = crate::consensus::epochs::engine_epoch(&self.epoch_info) {
            let key = aivm_runtime::staking::StakingKey::Engine(0).state_key();
            entries.push((key, aivm_runtime::StateValue::Bytes(aivm_runtime::encoding::cbor(&engine).into())));
        }
        // Validated with the file (`validate`), so the entries build.
        entries.extend(self.market.as_ref().and_then(|m| m.runtime().entries().ok()).unwrap_or_default());
        Genesis { accounts: self.accounts.iter().map(|a| (a.address, a.balance)).collect(), time_ms: self.time_ms, entries }
    }
}

pub use aivm_runtime::staking::active_set;

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis(n: usize) -> (GenesisFile, Vec<NodeKeys>) {
        let (mut g, keys) = undealt(n);
        g.deal_threshold().unwrap();
        (g, keys)
    }

    fn undealt(n: usize) -> (GenesisFile, Vec<NodeKeys>) {
        let keys: Vec<NodeKeys> = (0..n).map(|_| NodeKeys::generate().unwrap()).collect();
        let validators = keys.iter().enumerate().map(|(i, k)| GenesisValidator::new(k, 100 + i as u128, format!("127.0.0.1:{}", 9000 + i))).collect();
        let accounts = keys.iter().map(|k| GenesisAccount { address: k.identity_public(), balance: 1_000_000 }).collect();
        (
            GenesisFile {
                chain_id: 1,
                time_ms: 0,
                epoch_length: 100,
                active_set_size: n as u32 - 1,
                validators,
                accounts,
                threshold: Vec::new(),
                epoch_info: Vec::new(),
                max_block_gas: DEFAULT_MAX_BLOCK_GAS,
                min_gas_price: 1,
                market: None,
                staking: Default::default(),
            },
            keys,
        )
    }

    #[test]
    fn roundtrip_hash_and_active_set() {
        let (g, _) = genesis(4);
        let back = GenesisFile::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        // Stakes 100..103: the three largest, largest first.
        assert_eq!(g.active_set(), vec![3, 2, 1]);
        assert_eq!(active_set(&[([2; 32], 5), ([1; 32], 5), ([3; 32], 9)], 2), vec![2, 1]);
        assert_eq!(g.state().accounts.len(), 4);
    }

    #[test]
    fn invalid_genesis_is_refused() {
        let (g, _) = genesis(3);
        let check = |f: &dyn Fn(&mut GenesisFile)| {
            let mut h = g.clone();
            f(&mut h);
            assert!(matches!(GenesisFile::from_json(&h.to_json()), Err(GenesisError::Invalid(_))), "accepted");
        };
        check(&|h| h.validators[1].pop = h.validators[0].pop);
        check(&|h| h.validators[1].consensus = h.validators[0].consensus);
        check(&|h| h.validators[0].stake = 0);
        check(&|h| h.validators[1].stake = u128::MAX);
        check(&|h| h.active_set_size = 4);
        check(&|h| h.active_set_size = 0);
        check(&|h| h.epoch_length = 0);
        check(&|h| h.epoch_length = 2 * 2 + 1);
        // Epoch 0's info: missing, truncated, or another dealing's.
        check(&|h| h.epoch_info.clear());
        check(&|h| h.epoch_info.truncate(h.epoch_info.len() - 1));
        let (other, _) = genesis(3);
        check(&|h| h.epoch_info = other.epoch_info.clone());
        check(&|h| h.max_block_gas = 0);
        check(&|h| h.validators.clear());
        check(&|h| h.accounts.push(h.accounts[0].clone()));
        // The threshold key: missing, truncated, or dealt for an active set of another size.
        check(&|h| h.threshold.clear());
        check(&|h| h.threshold.truncate(h.threshold.len() - 1));
        check(&|h| h.active_set_size = 1);
        assert!(matches!(GenesisFile::from_json(b"{\"chain_id\": 1"), Err(GenesisError::Json(_))));
        let mut j: serde_json::Value = serde_json::from_slice(&g.to_json()).unwrap();
        j["validators"][0]["consensus"] = "abcd".into();
        assert!(matches!(GenesisFile::from_json(&serde_json::to_vec(&j).unwrap()), Err(GenesisError::Json(_))));
    }
}
