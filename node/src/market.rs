//! The node's side of the compute market (`spec/market.md`): the models a chain serves must
//! be in this node's artifact store before it runs, and a testnet's market is set up from the
//! converted default model.

use crate::genesis::{GenesisFile, GenesisMarket, GenesisModel, GenesisPool};
use aivm::model::store::default_home;
use aivm::model::{ArtifactStore, ModelRegistry};
use aivm_runtime::Address;
use std::path::Path;

/// Holds genesis pools' shares: BLAKE3 of `aivm/protocol-liquidity`, a key nobody has, so
/// liquidity seeded at genesis stays in its pool for good.
pub fn protocol_liquidity() -> Address {
    *blake3::hash(b"aivm/protocol-liquidity").as_bytes()
}

#[derive(Debug, thiserror::Error)]
pub enum MarketSetupError {
    #[error("no converted default model under {0}: run `make model` (or `aivm model fetch` and `aivm model convert`) first")]
    NoDefaultModel(String),
    #[error("genesis registers model {hash}, which this node cannot load from {store}: {why}. Put the artifact there (`make model` converts the default one) before starting; a validator without a registered model cannot check answers")]
    MissingModel { hash: String, store: String, why: String },
}

/// A market that serves the model `make model` converted, with a pool seeded so that one
/// compute unit (token) costs about `price` native: `units` units against `units·price` native.
pub fn default_market(home: &Path, units: u128, price: u128) -> Result<GenesisMarket, MarketSetupError> {
    let marker = std::fs::read_to_string(home.join("default-model")).map_err(|_| MarketSetupError::NoDefaultModel(home.display().to_string()))?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(marker.trim(), &mut hash).map_err(|_| MarketSetupError::NoDefaultModel(home.display().to_string()))?;
    let store = ArtifactStore::open(home.join("artifacts"));
    let missing = |why: String| MarketSetupError::MissingModel { hash: hex::encode(hash), store: home.join("artifacts").display().to_string(), why };
    let sku = store.get(&hash).map_err(|e| missing(e.to_string()))?;
    let size = std::fs::metadata(store.path_of(&hash)).map_err(|e| missing(e.to_string()))?.len();
    Ok(GenesisMarket {
        params: Default::default(),
        models: vec![GenesisModel { hash, size, vocab: sku.config.vocab, max_ctx: sku.config.max_ctx }],
        pools: vec![GenesisPool { sku: hash, native: units.saturating_mul(price), units, provider: protocol_liquidity() }],
    })
}

/// The registry a node's VM checks answers and runs MODEL_* with: the artifact store under
/// `$AIVM_HOME` (default `~/.cache/aivm`).
pub fn registry() -> ModelRegistry {
    ModelRegistry::new(ArtifactStore::open(default_home().join("artifacts")), aivm::model::Options::default())
}

/// Load every model `genesis` registers, so a validator that lacks one stops here instead of
/// failing inside a block later, and pack its weights for the answer checks now
/// (`audit::prepare_checks`: a second copy of the int8 weights in memory), so no block pays
/// for packing.
pub fn check_models(genesis: &GenesisFile, registry: &ModelRegistry) -> Result<(), MarketSetupError> {
    for m in genesis.market.iter().flat_map(|m| &m.models) {
        let engine = registry.engine(&m.hash).map_err(|e| MarketSetupError::MissingModel {
            hash: hex::encode(m.hash),
            store: default_home().join("artifacts").display().to_string(),
            why: e.to_string(),
        })?;
        aivm::model::audit::prepare_checks(&engine.sku);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_a_registered_model_refuses_to_run() {
        let dir = std::env::temp_dir().join(format!("aivm-node-market-{}", std::process::id()));
        let registry = ModelRegistry::new(ArtifactStore::open(&dir), aivm::model::Options::default());
        let keys = crate::keys::NodeKeys::generate().unwrap();
        let mut g = GenesisFile {
            chain_id: 1,
            time_ms: 0,
            epoch_length: 10,
            active_set_size: 1,
            validators: vec![crate::genesis::GenesisValidator::new(&keys, 1, "127.0.0.1:1".into())],
            accounts: vec![],
            threshold: Vec::new(),
            epoch_info: Vec::new(),
            max_block_gas: 1,
            min_gas_price: 1,
            market: None,
            staking: Default::default(),
        };
        g.deal_threshold().unwrap();
        check_models(&g, &registry).unwrap();
        g.market = Some(GenesisMarket { models: vec![GenesisModel { hash: [7; 32], size: 1, vocab: 10, max_ctx: 10 }], ..GenesisMarket::default() });
        let e = check_models(&g, &registry).unwrap_err().to_string();
        assert!(e.contains(&hex::encode([7; 32])) && e.contains("cannot check answers"), "{e}");
        // A pool for a model the genesis does not register is an invalid genesis.
        g.market.as_mut().unwrap().pools.push(GenesisPool { sku: [8; 32], native: 1 << 20, units: 1 << 20, provider: protocol_liquidity() });
        assert!(GenesisFile::from_json(&g.to_json()).is_err());
    }
}
