//! A new local network: one home per validator (keys, config, the shared genesis).

use crate::config::{NodeConfig, GENESIS_FILE};
use crate::genesis::{GenesisAccount, GenesisFile, GenesisValidator};
use crate::keys::NodeKeys;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct TestnetParams {
    pub chain_id: u64,
    pub host: String,
    /// First validator's p2p port; validator `i` uses `port + i` (RPC +1000, metrics +2000).
    pub port: u16,
    pub validators: usize,
    pub stake: u128,
    /// Balance of each validator's identity account.
    pub balance: u128,
    pub active: Option<u32>,
    pub epoch_length: u64,
    /// More funded accounts (a load generator's).
    pub accounts: Vec<([u8; 32], u128)>,
    pub max_block_gas: u64,
    pub min_gas_price: u64,
    /// The compute market, if the network runs one.
    pub market: Option<crate::genesis::GenesisMarket>,
}

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Genesis(#[from] crate::genesis::GenesisError),
}

/// Keys and config for one node; returns its genesis entry.
pub fn init_home(home: &Path, cfg: &NodeConfig, stake: u128) -> Result<GenesisValidator, TestnetError> {
    let keys = NodeKeys::generate()?;
    keys.save(home)?;
    cfg.save(home).map_err(|e| TestnetError::Io(home.display().to_string(), e))?;
    Ok(GenesisValidator::new(&keys, stake, cfg.p2p.clone()))
}

/// Create `dir/v0 .. dir/v{n-1}` and their shared genesis, its threshold key dealt by this
/// process (a trusted dealer: `spec/consensus.md`); returns the homes and genesis.
pub fn create(dir: &Path, p: &TestnetParams) -> Result<(Vec<PathBuf>, GenesisFile), TestnetError> {
    let (homes, mut genesis) = assemble(dir, p)?;
    // This process deals the threshold key and writes each active validator its share.
    let shares = genesis.deal_threshold()?;
    genesis.validate()?;
    for (identity, share) in &shares {
        let i = genesis.validators.iter().position(|v| v.identity == *identity).ok_or_else(|| TestnetError::Invalid("a share for no validator".into()))?;
        crate::keys::save_share(&homes[i], share)?;
    }
    write_genesis(&homes, &genesis)?;
    Ok((homes, genesis))
}

/// Like [`create`], but nobody deals: the genesis has no threshold key until the validators
/// make one together (`aivm node dkg` in every home, [`crate::consensus::dkg`]).
pub fn create_for_dkg(dir: &Path, p: &TestnetParams) -> Result<(Vec<PathBuf>, GenesisFile), TestnetError> {
    let (homes, genesis) = assemble(dir, p)?;
    write_genesis(&homes, &genesis)?;
    Ok((homes, genesis))
}

fn write_genesis(homes: &[PathBuf], genesis: &GenesisFile) -> Result<(), TestnetError> {
    for home in homes {
        let path = home.join(GENESIS_FILE);
        std::fs::write(&path, genesis.to_json()).map_err(|e| TestnetError::Io(path.display().to_string(), e))?;
    }
    Ok(())
}

/// The homes and the genesis, without a threshold key.
fn assemble(dir: &Path, p: &TestnetParams) -> Result<(Vec<PathBuf>, GenesisFile), TestnetError> {
    let n = p.validators;
    if n == 0 || n > 1000 {
        return Err(TestnetError::Invalid("a testnet has 1..=1000 validators".into()));
    }
    let homes: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("v{i}"))).collect();
    let mut validators = Vec::with_capacity(n);
    // The validators share this machine's cores: each runs blocks on its share (measured in
    // BENCHMARKS.md: two Block-STM threads per validator on an oversubscribed machine spend
    // their time waiting and spinning).
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    for (i, home) in homes.iter().enumerate() {
        let port = u16::try_from(p.port as usize + i)
            .ok()
            .filter(|port| port.checked_add(2000).is_some())
            .ok_or_else(|| TestnetError::Invalid("ports run past 65535".into()))?;
        let cfg = NodeConfig { exec_threads: Some((cores / n).max(1)), ..NodeConfig::local(p.chain_id, &p.host, port) };
        validators.push(init_home(home, &cfg, p.stake)?);
    }
    let mut accounts: Vec<GenesisAccount> = validators.iter().map(|v| GenesisAccount { address: v.identity, balance: p.balance }).collect();
    accounts.extend(p.accounts.iter().map(|(address, balance)| GenesisAccount { address: *address, balance: *balance }));
    let genesis = GenesisFile {
        chain_id: p.chain_id,
        time_ms: 0,
        epoch_length: p.epoch_length,
        active_set_size: p.active.unwrap_or(n as u32),
        validators,
        accounts,
        threshold: Vec::new(),
        epoch_info: Vec::new(),
        max_block_gas: p.max_block_gas,
        min_gas_price: p.min_gas_price,
        market: p.market.clone(),
        staking: Default::default(),
    };
    Ok((homes, genesis))
}
