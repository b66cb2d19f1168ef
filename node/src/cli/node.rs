//! `aivm node init`: a validator's keys and configuration, and for a new network its genesis.
//! `aivm node deal`: deal the threshold key of a genesis assembled by hand.
//! `aivm node dkg`: make it instead with the other validators, with no dealer.
//! `aivm node run`: run a validator from its home.

use aivm_node::config::NodeConfig;
use aivm_node::genesis::GenesisFile;
use aivm_node::hexbytes::to_hex;
use aivm_node::keys::NodeKeys;
use aivm_node::testnet::{self, init_home, TestnetParams};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Create keys and a config under --home; with --testnet N, N validator homes and their genesis.
    Init(InitArgs),
    /// Deal a genesis' threshold key (trusted dealer: this process sees every share; spec/consensus.md): writes `threshold` into the genesis and one share file per active validator.
    Deal(DealArgs),
    /// Make a genesis' threshold key together with the other validators of its active set,
    /// with no dealer (every one of them runs this from its home at about the same time):
    /// writes `threshold` and `epoch_info` into the home's genesis and this validator's share.
    Dkg(DkgArgs),
    /// Run a validator: consensus, p2p, JSON-RPC and metrics, until stopped.
    Run(RunArgs),
    /// Fill a fresh home's state from a peer's snapshot (checked against a finalization
    /// certificate and the block's state root) instead of replaying from genesis; then `node run`.
    Sync(SyncArgs),
}

#[derive(Args)]
pub struct SyncArgs {
    /// The node's home (created by `aivm node init`; it must hold no chain yet).
    #[arg(long)]
    pub home: PathBuf,
    /// A node serving snapshots (JSON-RPC `host:port`). It is not trusted: what it sends is checked.
    #[arg(long)]
    pub from: std::net::SocketAddr,
    /// The snapshot height (default: the newest the peer serves).
    #[arg(long)]
    pub height: Option<u64>,
}

#[derive(Args)]
pub struct DealArgs {
    /// The genesis assembled from the validators' `aivm node init` entries (rewritten in place).
    #[arg(long)]
    pub genesis: PathBuf,
    /// Where to write each active validator's share, as `<identity hex>/consensus.share`: copy
    /// each into its validator's home, then delete the directory.
    #[arg(long)]
    pub shares: PathBuf,
}

#[derive(Args)]
pub struct DkgArgs {
    /// The validator's home: keys, config, and a genesis without a threshold key (from
    /// `aivm node init --testnet N --dkg`, or assembled by hand).
    #[arg(long)]
    pub home: PathBuf,
    /// Seconds to wait for every other validator of the active set to start its `node dkg`
    /// before the ceremony starts without the missing ones (whose shares it then reveals).
    #[arg(long, default_value_t = 60)]
    pub wait_s: u64,
    /// Give up when the ceremony has not ended after this many seconds (waiting included).
    #[arg(long, default_value_t = 180)]
    pub timeout_s: u64,
    /// Seconds to keep serving the ceremony after this validator has its share, so that
    /// validators still finishing can catch up.
    #[arg(long, default_value_t = 3)]
    pub linger_s: u64,
}

#[derive(Args)]
pub struct RunArgs {
    /// The node's config file (its directory is the node's home: keys, genesis, data).
    #[arg(long, conflicts_with = "home")]
    pub config: Option<PathBuf>,
    /// The node's home (same as --config HOME/config.json).
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,
    /// Log format: `text`, or `json` (one object per line, for log collectors).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// TEST ONLY: make this validator double-vote so the network slashes it.
    #[arg(long, hide = true)]
    pub equivocate: bool,
    /// TEST ONLY: propose invalid blocks of this kind (or `all`, in turn) when leading.
    #[arg(long, hide = true, value_enum)]
    pub byzantine: Option<aivm_node::consensus::byzantine::Mode>,
    /// TEST ONLY: make the committer thread panic at this height (the node must then exit 4).
    #[arg(long, hide = true)]
    pub panic_commit_at: Option<u64>,
    /// TEST ONLY: abort the consensus engine once this height is finalized (the node must then exit 5).
    #[arg(long, hide = true)]
    pub abort_engine_at: Option<u64>,
    /// Blocks between state snapshots served to joining nodes (overrides `snapshot_interval`
    /// in the config; 0: none).
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
}

#[derive(Args)]
pub struct InitArgs {
    /// The node's home (keys, config.json, genesis.json, data/); with --testnet, the parent of v0..vN-1.
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub chain_id: u64,
    /// Listen host and first port (p2p; RPC at +1000, metrics at +2000; testnet validators at +i).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// A new network of this many validators (each staking --stake, each account funded with --balance).
    #[arg(long)]
    pub testnet: Option<usize>,
    #[arg(long, default_value_t = 1_000_000)]
    pub stake: u128,
    #[arg(long, default_value_t = 1_000_000_000_000)]
    pub balance: u128,
    /// Active validators per epoch (default: all).
    #[arg(long)]
    pub active: Option<u32>,
    #[arg(long, default_value_t = 1000)]
    pub epoch_length: u64,
    /// Most gas one block's transactions may reserve (must fit the consensus timeouts).
    #[arg(long, default_value_t = aivm_node::genesis::DEFAULT_MAX_BLOCK_GAS)]
    pub max_block_gas: u64,
    /// Least gas price a transaction may offer.
    #[arg(long, default_value_t = aivm_node::genesis::DEFAULT_MIN_GAS_PRICE)]
    pub min_gas_price: u64,
    /// With --testnet: run the compute market on the model `make model` converted, its pool
    /// seeded with protocol-owned liquidity (`spec/market.md`).
    #[arg(long, requires = "testnet")]
    pub market: bool,
    /// With --testnet: deal no threshold key; the validators make it with `aivm node dkg`,
    /// each from its home, before their first `node run`.
    #[arg(long, requires = "testnet")]
    pub dkg: bool,
}

pub fn run(cmd: NodeCommand) -> ExitCode {
    let r = match cmd {
        NodeCommand::Init(a) => init(a),
        NodeCommand::Deal(a) => deal(a),
        NodeCommand::Dkg(a) => dkg(a),
        NodeCommand::Run(a) => run_validator(a),
        NodeCommand::Sync(a) => super::sync::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init(a: InitArgs) -> Result<()> {
    let Some(n) = a.testnet else {
        let entry = init_home(&a.home, &NodeConfig::local(a.chain_id, &a.host, a.port), a.stake)?;
        // What a network's coordinator needs to put this validator in a genesis.
        println!("{}", serde_json::to_string_pretty(&entry)?);
        eprintln!("add this entry to the network's genesis; then the active validators make its threshold key together with `aivm node dkg` (or a coordinator deals it with `aivm node deal`)");
        return Ok(());
    };
    let params = TestnetParams {
        chain_id: a.chain_id,
        host: a.host,
        port: a.port,
        validators: n,
        stake: a.stake,
        balance: a.balance,
        active: a.active,
        epoch_length: a.epoch_length,
        accounts: Vec::new(),
        max_block_gas: a.max_block_gas,
        min_gas_price: a.min_gas_price,
        market: if a.market { Some(aivm_node::market::default_market(&aivm::model::store::default_home(), 1 << 30, 100)?) } else { None },
    };
    if a.dkg {
        let (homes, genesis) = testnet::create_for_dkg(&a.home, &params)?;
        // Only the active set takes part; the others copy the genesis it makes.
        let mut active = genesis.active_set();
        active.sort_unstable();
        let active: Vec<&PathBuf> = active.into_iter().filter_map(|i| homes.get(i)).collect();
        if active.len() == homes.len() {
            eprintln!("no threshold key yet: run `aivm node dkg --home HOME` in every home, all at about the same time");
        } else {
            eprintln!(
                "no threshold key yet: run `aivm node dkg --home HOME` in every active home (\"dkg_homes\"), all at about the same time, then copy the genesis.json it writes to the other homes"
            );
        }
        println!("{}", serde_json::json!({"chain_id": a.chain_id, "validators": n, "homes": homes, "dkg_homes": active}));
        return Ok(());
    }
    let (homes, genesis) = testnet::create(&a.home, &params)?;
    println!("{}", serde_json::json!({"chain_id": a.chain_id, "validators": n, "homes": homes, "genesis_hash": to_hex(&genesis.hash())}));
    Ok(())
}

fn dkg(a: DkgArgs) -> Result<()> {
    use aivm_node::consensus::dkg::{ceremony, CeremonyConfig};
    let cfg = NodeConfig::load(&a.home).map_err(anyhow::Error::msg)?;
    let keys = NodeKeys::load(&a.home).with_context(|| format!("loading keys from {}", a.home.display()))?;
    let path = a.home.join(&cfg.genesis);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    // Parsed, not yet validated: its `threshold` is what the ceremony makes.
    let genesis: GenesisFile = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let p2p = cfg.p2p.parse().with_context(|| format!("the config's p2p address {}", cfg.p2p))?;
    let dir = a.home.join("dkg");
    let started = std::time::Instant::now();
    let done = ceremony(
        &genesis,
        &keys,
        CeremonyConfig {
            dir,
            p2p,
            wait: std::time::Duration::from_secs(a.wait_s),
            timeout: std::time::Duration::from_secs(a.timeout_s),
            linger: std::time::Duration::from_secs(a.linger_s),
        },
    )?;
    // The share first: a genesis with a key but no share would make a validator that cannot sign.
    aivm_node::keys::save_share(&a.home, &done.share)?;
    std::fs::write(&path, done.genesis.to_json()).with_context(|| format!("writing {}", path.display()))?;
    if !done.revealed.is_empty() {
        eprintln!(
            "warning: {} validator(s) did not take part in time and their shares are public in the ceremony's log; the key tolerates that many fewer faults. For a better key, clear every home's dkg/ and genesis threshold and run the ceremony again with every validator up.",
            done.revealed.len()
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "genesis_hash": to_hex(&done.genesis.hash()),
            "dealers": done.dealers,
            "revealed": done.revealed.iter().map(|r| to_hex(r)).collect::<Vec<_>>(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

fn deal(a: DealArgs) -> Result<()> {
    let text = std::fs::read(&a.genesis).with_context(|| format!("reading {}", a.genesis.display()))?;
    // Parsed, not yet validated: its `threshold` is what this command writes.
    let mut genesis: GenesisFile = serde_json::from_slice(&text).with_context(|| format!("parsing {}", a.genesis.display()))?;
    let shares = genesis.deal_threshold()?;
    genesis.validate()?;
    std::fs::create_dir_all(&a.shares).with_context(|| format!("creating {}", a.shares.display()))?;
    let mut files = Vec::new();
    for (identity, share) in &shares {
        let dir = a.shares.join(to_hex(identity));
        aivm_node::keys::save_share(&dir, share)?;
        files.push(serde_json::json!({"identity": to_hex(identity), "share": dir.join(aivm_node::keys::SHARE_FILE)}));
    }
    std::fs::write(&a.genesis, genesis.to_json()).with_context(|| format!("writing {}", a.genesis.display()))?;
    eprintln!("dealt by this process: it has seen every share. Give each validator only its own, then delete {}.", a.shares.display());
    println!("{}", serde_json::json!({"genesis_hash": to_hex(&genesis.hash()), "shares": files}));
    Ok(())
}

fn run_validator(a: RunArgs) -> Result<()> {
    use aivm::{GasSchedule, Limits, Vm};
    use aivm_node::consensus::{self, Endpoints, Timing, Validator};
    use aivm_node::execution::Executor;
    use aivm_node::mempool::{Mempool, MempoolConfig};
    use aivm_runtime::{Chain, ChainVm};
    use std::sync::Arc;

    // --config FILE is read as given (any name); its directory is the home (keys, data, genesis).
    let (home, cfg) = match (a.config, a.home) {
        (Some(c), _) => (c.parent().map(std::path::Path::to_path_buf).unwrap_or_default(), NodeConfig::load_file(&c)?),
        (None, Some(h)) => {
            let cfg = NodeConfig::load(&h)?;
            (h, cfg)
        }
        (None, None) => bail!("give --config FILE or --home DIR"),
    };
    let keys = NodeKeys::load(&home).with_context(|| format!("loading keys from {}", home.display()))?;
    let genesis_path = home.join(&cfg.genesis);
    let genesis = GenesisFile::from_json(&std::fs::read(&genesis_path).with_context(|| format!("reading {}", genesis_path.display()))?)
        .with_context(|| format!("{}", genesis_path.display()))?;
    if genesis.chain_id != cfg.chain_id {
        bail!("config chain id {} differs from genesis chain id {}", cfg.chain_id, genesis.chain_id);
    }
    let data = home.join(&cfg.data);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let backend = aivm::backend::BackendKind::parse(&cfg.backend)?;
    if backend != aivm::backend::BackendKind::Cpu {
        bail!("backend {}: validators run the tensor opcodes on the CPU backend in this release", cfg.backend);
    }
    // Every executor thread and every RPC query slot has a pooled instance (calls wait for a
    // slot rather than fail; see aivm's slots.rs).
    let exec_threads = cfg.exec_threads.unwrap_or(aivm_runtime::ExecConfig::default().threads).max(1);
    let pool = (exec_threads + aivm_node::rpc::MAX_CONCURRENT_QUERIES + 2).max(Limits::default().pool_instances as usize);
    // Compiled contracts also go to disk: a restart, or a contract evicted from the in-memory
    // cache, reloads its machine code instead of compiling it again inside a block.
    // The models MODEL_* and the market's answers run against; every model the genesis
    // registers must load before the node joins (`spec/market.md` §7).
    let models = Arc::new(aivm_node::market::registry());
    aivm_node::market::check_models(&genesis, &models)?;
    let vm = Vm::new(Limits { pool_instances: pool as u32, ..Limits::default() }, GasSchedule::default())?
        .with_disk_cache(data.join("modules"))
        .with_context(|| format!("opening the module cache under {}", data.display()))?
        .with_models(models)
        // TEE_VERIFY accepts what the chain's genesis accepts (`spec/tee.md` §2).
        .with_tee_policy(Arc::new(genesis.market.as_ref().map(|m| m.params.tee.policy.clone()).unwrap_or_default()));
    let mut chain =
        Chain::open(data.join("state"), ChainVm::new(vm), genesis.chain_config()).with_context(|| format!("opening the state under {}", data.display()))?;
    chain.exec.threads = exec_threads;
    chain.rewards = Some(genesis.epoch_rewards());
    if chain.head().is_none() {
        chain.init_genesis(&genesis.state())?;
    }
    let limits = genesis.block_limits();
    let timing = Timing::default();
    let fits = consensus::max_block_gas_for(&timing);
    if limits.max_block_gas > fits {
        bail!("genesis max_block_gas {} does not fit this node's consensus timeouts (at most {fits}); see spec/consensus.md", limits.max_block_gas);
    }
    let mempool = Mempool::new(MempoolConfig::new(genesis.chain_id, limits), GasSchedule::default());
    let snapshots = aivm_node::snapshots::Snapshots::new(
        data.join("snapshots"),
        a.snapshot_interval.or(cfg.snapshot_interval).unwrap_or(aivm_node::snapshots::DEFAULT_INTERVAL),
        cfg.snapshots_kept.unwrap_or(aivm_node::snapshots::DEFAULT_KEEP),
    );
    let floor = consensus::sync::load_floor(&genesis, &data)?;
    let executor = Arc::new(
        Executor::new(Arc::new(chain), mempool, limits)?
            .with_genesis_reshare(genesis.epoch_info.clone())
            .with_evidence_check(consensus::evidence_check(&genesis))
            .with_snapshots(Arc::new(snapshots))
            .with_leaders(consensus::leaders()),
    );
    let (finalized, _) = tokio::sync::broadcast::channel(1024);
    let parse = |s: &str, what: &str| s.parse::<std::net::SocketAddr>().with_context(|| format!("{what} address {s}"));
    let endpoints = Endpoints {
        storage: data.join("consensus"),
        rpc: parse(&cfg.rpc, "rpc")?,
        rpc_limits: cfg.rpc_limits,
        metrics: parse(&cfg.metrics, "metrics")?,
        log_level: a.log,
        log_json: a.log_format == "json",
    };
    let share = aivm_node::keys::load_share(&home)?;
    let v = Validator {
        share,
        keys,
        p2p: parse(&cfg.p2p, "p2p")?,
        genesis,
        executor,
        finalized,
        timing,
        equivocate: a.equivocate,
        byzantine: a.byzantine,
        panic_commit_at: a.panic_commit_at,
        seeds: Default::default(),
        abort_engine_at: a.abort_engine_at,
        floor,
        secrets: home.join("reshare"),
    };
    consensus::start(endpoints, v)?;
    Ok(())
}
