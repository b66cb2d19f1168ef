//! Consensus, block dissemination and sync, and the authenticated network: every use of the
//! commonware crates (pinned at 2026.10.0; their API changes between releases) is in this
//! module.
//!
//! - `simplex` orders blocks: BLS12-381 threshold certificates (`bls12381_threshold::vrf`:
//!   one recovered signature per certificate, plus the round's seed, see [`threshold`]),
//!   round-robin leaders over the active set, its journal (the write-ahead log) under
//!   `<data>/consensus`.
//! - `marshal` (standard, inline verification) disseminates proposed blocks, keeps finalized
//!   blocks and certificates in archives, backfills what a lagging or restarted validator
//!   missed from its peers, and delivers finalized blocks in height order.
//! - `p2p::authenticated::lookup` connects the validators listed in genesis, each identified
//!   by its ed25519 key, over encrypted channels.
//! - [`gossip`] sends the transactions clients submit to one validator to all the others.
//!
//! The application ([`app`]) builds, verifies and commits blocks with the runtime.

mod app;
pub mod byzantine;
mod chain_block;
mod faults;
pub mod gossip;
pub mod sync;
pub mod threshold;

pub use app::now_ms;
pub use chain_block::ChainBlock;

use crate::execution::{Executor, Finalized};
use crate::genesis::GenesisFile;
use crate::keys::NodeKeys;
use commonware_broadcast::buffered;
use commonware_codec::DecodeExt;
use commonware_consensus::marshal::{self, resolver::p2p as marshal_resolver, standard::Inline};
use commonware_consensus::simplex::{self, elector::RoundRobin, types::Context};
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::{ed25519, sha256::Sha256, ChaCha20Poly1305, Signer};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Quota, Supervisor as _};
use commonware_storage::archive::immutable;
use commonware_stream::{cups, sake};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU32, NZU64};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub use commonware_cryptography::sha256::Digest;
pub type PublicKey = ed25519::PublicKey;
pub type Scheme = simplex::scheme::bls12381_threshold::vrf::Scheme<PublicKey, MinPk>;
pub type Ctx = Context<Digest, PublicKey>;

/// Signing namespace: votes of one chain never verify on another.
fn namespace(chain_id: u64) -> Vec<u8> {
    format!("aivm-consensus-{chain_id}").into_bytes()
}

/// Largest p2p message: a block at its size limit, plus certificates and framing.
const MAX_MESSAGE: u32 = (crate::block::MAX_ENCODED + (1 << 20)) as u32;

// p2p channels.
const CH_BACKFILL: u64 = 1;
const CH_BROADCAST: u64 = 2;
const CH_VOTES: u64 = 3;
const CH_CERTS: u64 = 4;
const CH_RESOLVER: u64 = 5;
const CH_GOSSIP: u64 = 6;

/// Messages per second one peer may send on each channel.
struct Quotas {
    backfill: std::num::NonZeroU32,
    broadcast: std::num::NonZeroU32,
    votes: std::num::NonZeroU32,
    certs: std::num::NonZeroU32,
    resolver: std::num::NonZeroU32,
    gossip: std::num::NonZeroU32,
}

/// A view sends each peer about three votes (notarize, finalize or nullify) and three
/// certificates, and the leader one block; views run at most ~20/s on a LAN (an empty-block
/// leader waits 200 ms; a loaded one executes first). Votes and certificates get ~4× that
/// rate; blocks one per view with headroom; backfill and certificate fetches serve a peer
/// catching up, a batch of requests at a time. Gossip sends one message per
/// `gossip::INTERVAL` (50/s) and more when the backlog spills over a message: 128/s of at most
/// `gossip::MAX_TXS` each bounds what one peer can make this node verify.
const QUOTAS: Quotas =
    Quotas { backfill: NZU32!(256), broadcast: NZU32!(64), votes: NZU32!(256), certs: NZU32!(256), resolver: NZU32!(256), gossip: NZU32!(128) };

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("key: {0}")]
    Key(String),
    #[error("this node's keys are not in the genesis active set")]
    NotValidator,
    #[error(transparent)]
    Threshold(#[from] threshold::ThresholdError),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("state sync anchor: {0}")]
    Anchor(String),
}

/// Timeouts of the engine (defaults suit a LAN or loopback).
#[derive(Clone, Debug)]
pub struct Timing {
    pub leader: Duration,
    pub certification: Duration,
    pub retry: Duration,
}

/// Gas per second of execution: the gas unit is priced at 0.1 ns (`spec/gas.md`).
pub const GAS_PER_SECOND: u64 = 10_000_000_000;
/// Headroom between a full block's nominal execution time and the time it may take: metering
/// may be off by up to 3× on adversarial code (the bound `gas-bench --adversarial` targets), and
/// a validator shares its cores with RPC and p2p work (~1.33×).
pub const BLOCK_GAS_HEADROOM: u64 = 4;

/// The largest block gas limit that keeps a full block's execution inside `timing`. The leader
/// executes its proposal before the leader timeout; the proposal is then executed again by the
/// verifiers, so both executions must fit the certification timeout (half of it each). A block
/// that cannot be executed in time would fail every view its holder leads, never charged.
pub fn max_block_gas_for(timing: &Timing) -> u64 {
    let budget = timing.leader.min(timing.certification / 2);
    let gas = budget.as_nanos().saturating_mul(GAS_PER_SECOND as u128) / 1_000_000_000 / BLOCK_GAS_HEADROOM as u128;
    u64::try_from(gas).unwrap_or(u64::MAX)
}

impl Default for Timing {
    fn default() -> Self {
        Timing { leader: Duration::from_millis(1000), certification: Duration::from_millis(2000), retry: Duration::from_millis(5000) }
    }
}

/// Everything a validator runs with.
pub struct Validator {
    pub keys: NodeKeys,
    /// This validator's share of the threshold key (`consensus.share`; `crate::keys::load_share`).
    pub share: Option<Vec<u8>>,
    pub genesis: GenesisFile,
    pub p2p: SocketAddr,
    pub executor: Arc<Executor>,
    pub finalized: broadcast::Sender<Finalized>,
    pub timing: Timing,
    /// TEST ONLY: double-vote in every view (see `faults::Equivocator`).
    pub equivocate: bool,
    /// TEST ONLY: propose invalid blocks (see `byzantine.rs`).
    pub byzantine: Option<byzantine::Mode>,
    /// TEST ONLY: the committer panics at this height (see `app::Finalizer::start`).
    pub panic_commit_at: Option<u64>,
    /// TEST ONLY: abort the consensus engine once this height is finalized (see `run`).
    pub abort_engine_at: Option<u64>,
    /// The finalization this node's state was synced to (`aivm node sync`; see [`sync`]):
    /// marshal and simplex start from it instead of genesis.
    pub floor: Option<sync::FinalizationCert>,
}

/// The evidence checker for a chain's genesis active set (give it to the executor).
pub fn evidence_check(genesis: &GenesisFile) -> Result<Arc<dyn crate::execution::EvidenceCheck>, ConsensusError> {
    let committee = participants(genesis)?;
    let identities = committee
        .keys
        .iter()
        .map(|k| k.as_ref().try_into().map_err(|_| ConsensusError::Genesis("identity key length".into())))
        .collect::<Result<Vec<[u8; 32]>, _>>()?;
    Ok(Arc::new(faults::Checker { verifier: committee.verifier(genesis.chain_id), identities }))
}

/// The engine's leader of each view (round-robin over the genesis active set, epoch 0), as
/// identities: what the executor counts leader slots by (`staking::liveness`). Built from the
/// same elector and participant set as the engine's, so it names the same leaders.
pub fn leaders(genesis: &GenesisFile) -> Result<crate::execution::Leaders, ConsensusError> {
    use commonware_consensus::simplex::elector::Elector as _;
    use commonware_consensus::types::{Round, View};
    let committee = participants(genesis)?;
    let ids = committee
        .keys
        .iter()
        .map(|k| <[u8; 32]>::try_from(k.as_ref()).map_err(|_| ConsensusError::Genesis("identity key length".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let elector = <RoundRobin<Sha256> as commonware_consensus::simplex::elector::Config<Scheme>>::build(RoundRobin::default(), &committee.keys);
    Ok(Arc::new(move |view: u64| {
        let p = elector.elect(Round::new(Epoch::zero(), View::new(view)), ());
        ids.get(p.get() as usize).copied().unwrap_or([0; 32])
    }))
}

/// The active set: identities (the engine's participant order), the threshold key's public
/// polynomial, and p2p addresses.
struct Committee {
    keys: Set<PublicKey>,
    sharing: commonware_cryptography::bls12381::primitives::sharing::Sharing<MinPk>,
    addresses: Map<PublicKey, Address>,
}

impl Committee {
    /// Verifies votes, certificates and seeds without signing.
    fn verifier(&self, chain_id: u64) -> Scheme {
        Scheme::verifier(&namespace(chain_id), self.keys.clone(), self.sharing.clone())
    }
}

fn participants(genesis: &GenesisFile) -> Result<Committee, ConsensusError> {
    let mut ids = Vec::new();
    let mut addrs = Vec::new();
    for i in genesis.active_set() {
        let v = &genesis.validators[i];
        let id = PublicKey::decode(v.identity.to_vec()).map_err(|e| ConsensusError::Genesis(format!("identity key: {e}")))?;
        let addr: SocketAddr = v.p2p.parse().map_err(|e| ConsensusError::Genesis(format!("p2p address {}: {e}", v.p2p)))?;
        ids.push(v.identity);
        addrs.push((id, Address::from(addr)));
    }
    let (keys, sharing) = threshold::sharing(&genesis.threshold, &ids)?;
    let addresses = Map::try_from(addrs).map_err(|e| ConsensusError::Genesis(format!("duplicate validator: {e:?}")))?;
    Ok(Committee { keys, sharing, addresses })
}

/// Where a validator listens and keeps its consensus data.
pub struct Endpoints {
    /// The consensus journal, marshal archives (the write-ahead log).
    pub storage: std::path::PathBuf,
    pub rpc: SocketAddr,
    pub rpc_limits: crate::rpc::RpcLimits,
    pub metrics: SocketAddr,
    /// Log level for `tracing` (`error`..`trace`).
    pub log_level: tracing::Level,
    /// Logs as JSON lines (`--log-format json`) instead of text.
    pub log_json: bool,
}

/// Run a validator on commonware's tokio runtime until the process is stopped: logs and the
/// Prometheus endpoint (`/metrics`), JSON-RPC, and consensus.
pub fn start(endpoints: Endpoints, v: Validator) -> Result<(), ConsensusError> {
    use commonware_runtime::Runner as _;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    // JSON-RPC runs on a runtime of its own (see `rpc::serve`), started before consensus.
    let rpc_ctx = crate::rpc::RpcContext::new(Arc::clone(&v.executor), v.finalized.clone(), v.genesis.chain_id);
    let _rpc = crate::rpc::serve(endpoints.rpc, rpc_ctx, endpoints.rpc_limits).map_err(ConsensusError::Storage)?;
    let cfg =
        commonware_runtime::tokio::Config::new().with_storage_directory(endpoints.storage.clone()).with_worker_threads(threads).with_tcp_nodelay(Some(true));
    commonware_runtime::tokio::Runner::new(cfg).start(|context| async move {
        commonware_runtime::tokio::telemetry::init(
            context.child("telemetry"),
            commonware_runtime::tokio::telemetry::Logs { level: endpoints.log_level, json: endpoints.log_json },
            Some(endpoints.metrics),
            None,
        );
        register_metrics(&context, v.finalized.subscribe(), Arc::clone(&v.executor));
        tracing::info!(rpc = %endpoints.rpc, metrics = %endpoints.metrics, "serving");
        run(context, v).await
    })
}

/// The node's own Prometheus metrics, updated as blocks finalize.
fn register_metrics(context: &commonware_runtime::tokio::Context, mut finalized: broadcast::Receiver<Finalized>, executor: Arc<Executor>) {
    use commonware_runtime::telemetry::metrics::raw::{Counter, Gauge};
    use commonware_runtime::Metrics as _;
    let m = context.child("aivm");
    let height = m.register("finalized_height", "height of the last committed block", Gauge::<i64>::default());
    let txs = m.register("finalized_txs", "transactions in committed blocks", Counter::<u64>::default());
    let gas = m.register("finalized_gas", "gas used by committed blocks", Counter::<u64>::default());
    let pool = m.register("mempool_txs", "transactions waiting in the mempool", Gauge::<i64>::default());
    tokio::spawn(async move {
        loop {
            match finalized.recv().await {
                Ok(f) => {
                    height.set(f.height as i64);
                    txs.inc_by(f.txs as u64);
                    gas.inc_by(f.gas_used);
                    pool.set(executor.mempool.lock().len() as i64);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Run a validator until the process stops.
pub async fn run(context: commonware_runtime::tokio::Context, v: Validator) -> Result<(), ConsensusError> {
    let identity = ed25519::PrivateKey::decode(v.keys.identity.to_bytes().to_vec()).map_err(|e| ConsensusError::Key(e.to_string()))?;
    let me = identity.public_key();
    let parts = participants(&v.genesis)?;
    if parts.keys.position(&me).is_none() {
        return Err(ConsensusError::NotValidator);
    }
    let share =
        v.share.as_deref().ok_or_else(|| ConsensusError::Key(format!("no {} in the home: not dealt a share of the threshold key", crate::keys::SHARE_FILE)))?;
    let share = threshold::share(share, &parts.sharing)?;
    let ns = namespace(v.genesis.chain_id);
    let verifier = parts.verifier(v.genesis.chain_id);
    let Committee { keys: committee, sharing, addresses } = parts;
    let scheme = Scheme::signer(&ns, committee.clone(), sharing, share).ok_or(ConsensusError::NotValidator)?;
    let equivocator = v.equivocate.then(|| scheme.clone());
    let seeds = Arc::new(threshold::Seeds::default());

    // Network.
    let handshake = cups::Cups::<_, ChaCha20Poly1305>::new(
        sake::Sake {
            signer: identity.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut p2p_cfg = lookup::Config::local(handshake, &ns, v.p2p, NZUsize!(committee.len().max(1)), MAX_MESSAGE, NZUsize!(4096));
    p2p_cfg.dial_frequency = Duration::from_millis(200);
    p2p_cfg.peer_connection_cooldown = Duration::from_millis(200);
    let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_cfg);
    oracle.track(0, addresses);
    // Per-peer quotas from the protocol's real rates. commonware allocates each channel's
    // inbound queue up front as (retained peers × burst), and the burst of a per-second quota
    // is the quota itself: 100 000/s cost ~4.4 GB per validator at start and grew with the
    // validator count. See `QUOTAS`.
    let backfill = network.register(CH_BACKFILL, Quota::per_second(QUOTAS.backfill));
    let broadcast_net = network.register(CH_BROADCAST, Quota::per_second(QUOTAS.broadcast));
    let votes = network.register(CH_VOTES, Quota::per_second(QUOTAS.votes));
    let certs = network.register(CH_CERTS, Quota::per_second(QUOTAS.certs));
    let resolver_net = network.register(CH_RESOLVER, Quota::per_second(QUOTAS.resolver));
    let (gossip_out, gossip_in) = network.register(CH_GOSSIP, Quota::per_second(QUOTAS.gossip));
    network.start();
    gossip::start(Arc::clone(&v.executor), gossip_out, gossip_in);

    // Marshal: finalized block archives, dissemination, backfill.
    let page_cache = CacheRef::new(NZU16!(16_384), NZUsize!(256));
    // A state-synced node starts both marshal and simplex from its floor (it holds no block
    // below it, not even genesis); any other from genesis.
    let (start, simplex_floor) = match v.floor.clone() {
        Some(cert) => {
            use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seedable;
            seeds.record(&cert.seed());
            tracing::info!(view = cert.round().view().get(), "starting from the state-sync floor");
            (marshal::Start::Floor(cert.clone()), simplex::config::Floor::Finalized(cert))
        }
        None => {
            let genesis_block = v.executor.genesis_block().map_err(|e| ConsensusError::Storage(e.to_string()))?;
            let genesis = ChainBlock(Arc::new(genesis_block));
            let digest = genesis.digest_of();
            (marshal::Start::Genesis(commonware_cryptography::Digested::precomputed(genesis, digest)), simplex::config::Floor::Genesis(digest))
        }
    };
    let epocher = FixedEpocher::new(NZU64!(1 << 48));
    let prefix = "marshal".to_string();
    let cfg = marshal::Config {
        provider: ConstantProvider::new(scheme.clone()),
        epocher: epocher.clone(),
        start,
        mailbox_size: NZUsize!(1024),
        view_retention: ViewDelta::new(64),
        max_repair: NZUsize!(64),
        max_pending_acks: NZUsize!(16),
        block_codec_config: (),
        partition_prefix: prefix.clone(),
        prunable_items_per_section: NZU64!(64),
        replay_buffer: NZUsize!(1 << 20),
        key_write_buffer: NZUsize!(1 << 16),
        value_write_buffer: NZUsize!(1 << 20),
        page_cache: page_cache.clone(),
        strategy: Sequential,
    };
    let resolver = marshal_resolver::init(
        context.child("resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: oracle.clone(),
            blocker: oracle.clone(),
            mailbox_size: cfg.mailbox_size,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        backfill,
    );
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: cfg.mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: oracle.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(broadcast_net);
    // The threshold certificate is fixed-size: its codec takes no configuration.
    let finalizations = archive(&context, "finalizations", &page_cache, ()).await?;
    let blocks = archive(&context, "blocks", &page_cache, ()).await?;
    let (actor, mailbox, _floor) = marshal::core::Actor::init(context.child("marshal"), finalizations, blocks, cfg).await;
    let finalizer = app::Finalizer::start(Arc::clone(&v.executor), v.finalized.clone(), v.panic_commit_at)
        .map_err(|e| ConsensusError::Storage(format!("starting the committer: {e}")))?;
    actor.start(finalizer, buffer, resolver);
    if let Some(snapshots) = v.executor.snapshots().cloned() {
        anchor_snapshots(snapshots, mailbox.clone(), v.finalized.subscribe());
    }

    // Consensus.
    let byzantine = v.byzantine.map(|mode| {
        tracing::warn!(?mode, "TEST MODE: this validator proposes invalid blocks");
        byzantine::Byzantine::new(mode, v.keys.identity.clone(), v.genesis.chain_id, *v.executor.limits())
    });
    let application = app::App { executor: Arc::clone(&v.executor), byzantine, seeds: Arc::clone(&seeds), verifier: Arc::new(verifier) };
    let wrapper = Inline::new(context.child("application"), application, mailbox, epocher);
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::config::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker: oracle.clone(),
            automaton: wrapper.clone(),
            relay: wrapper.clone(),
            reporter: faults::FaultReporter { inner: wrapper, executor: Arc::clone(&v.executor), seeds },
            strategy: Sequential,
            partition: "simplex".into(),
            mailbox_size: NZUsize!(1024),
            epoch: Epoch::zero(),
            floor: simplex_floor,
            replay_buffer: NZUsize!(1 << 20),
            write_buffer: NZUsize!(1 << 16),
            page_cache,
            leader_timeout: v.timing.leader,
            certification_timeout: v.timing.certification,
            timeout_retry: v.timing.retry,
            view_retention: ViewDelta::new(64),
            skip: simplex::config::SkipPolicy::Enabled { timeout: v.timing.certification * 3, budget: simplex::config::SkipBudget::Participants },
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: simplex::config::ForwardPolicy::SilentVoters,
            // Keep every vote of a tracked view, so a double vote is caught even after the view certified.
            track_historical_votes: true,
        },
    );
    let handle = match equivocator {
        None => engine.start(votes, certs, resolver_net),
        Some(scheme) => {
            tracing::warn!("TEST MODE: this validator equivocates (double notarize votes)");
            engine.start((faults::Equivocator { inner: votes.0, scheme }, votes.1), certs, resolver_net)
        }
    };
    tracing::info!(me = %me, validators = committee.len(), "consensus started");
    if let Some(at) = v.abort_engine_at {
        let mut finalized = v.finalized.subscribe();
        loop {
            match finalized.recv().await {
                Ok(f) if f.height >= at => break,
                Err(broadcast::error::RecvError::Closed) => break,
                _ => {}
            }
        }
        tracing::warn!("TEST MODE: aborting the consensus engine");
        handle.abort();
    }
    // SIGTERM or SIGINT: a clean stop (exit 0). Otherwise the engine runs until the process
    // stops; its returning means it failed.
    tokio::select! {
        _ = handle => crate::exit::stop(crate::exit::ENGINE_STOPPED, "the consensus engine stopped"),
        _ = termination() => {
            tracing::info!("shutting down: waiting for the block in hand, flushing the store");
            let ex = Arc::clone(&v.executor);
            let flushed = tokio::task::spawn_blocking(move || ex.shut_down().map(std::mem::forget)).await;
            match flushed {
                Ok(Ok(())) => {
                    tracing::info!("shut down cleanly");
                    eprintln!("aivm node: shut down cleanly");
                    std::process::exit(0)
                }
                Ok(Err(e)) => crate::exit::stop(crate::exit::ENGINE_STOPPED, &format!("shutdown could not flush the store: {e}")),
                Err(e) => crate::exit::stop(crate::exit::ENGINE_STOPPED, &format!("shutdown: {e}")),
            }
        }
    }
}

/// Writes each snapshot's anchor (its block's finalization certificate and the block, from
/// marshal's archives) once its block is committed; the snapshot is served from then on.
fn anchor_snapshots(
    snapshots: Arc<crate::snapshots::Snapshots>,
    marshal: marshal::core::Mailbox<Scheme, marshal::standard::Standard<ChainBlock>>,
    mut finalized: broadcast::Receiver<Finalized>,
) {
    tokio::spawn(async move {
        loop {
            let f = match finalized.recv().await {
                Ok(f) => f,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !snapshots.due(f.height) {
                continue;
            }
            let h = commonware_consensus::types::Height::new(f.height);
            let (Some(cert), Some(block)) = (marshal.get_finalization(h).await, marshal.get_block(h).await) else {
                tracing::warn!(height = f.height, "no finalization for the snapshot's block: not served");
                continue;
            };
            match snapshots.write_anchor(f.height, &sync::encode(&cert), &block.inner().0.encode()) {
                Ok(()) => tracing::info!(height = f.height, "state snapshot served"),
                Err(e) => tracing::warn!(height = f.height, error = %e, "state snapshot anchor not written"),
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). Never resolves if the handlers cannot be installed.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn archive<C: Clone + Send + Sync + 'static, T: commonware_codec::Read<Cfg = C> + commonware_codec::Encode + Send + Sync + 'static>(
    context: &commonware_runtime::tokio::Context,
    name: &'static str,
    page_cache: &CacheRef,
    codec_config: C,
) -> Result<immutable::Archive<commonware_runtime::tokio::Context, Digest, T>, ConsensusError> {
    immutable::Archive::init(
        context.child(name),
        immutable::Config {
            metadata_partition: format!("{name}-metadata"),
            freezer_table_partition: format!("{name}-freezer-table"),
            freezer_table_initial_size: 1024,
            freezer_table_resize_frequency: 10,
            freezer_table_resize_chunk_size: 256,
            freezer_key_partition: format!("{name}-freezer-key"),
            freezer_key_page_cache: page_cache.clone(),
            freezer_value_partition: format!("{name}-freezer-value"),
            freezer_value_target_size: 64 << 20,
            freezer_value_compression: None,
            ordinal_partition: format!("{name}-ordinal"),
            items_per_section: NZU64!(1024),
            codec_config,
            replay_buffer: NZUsize!(1 << 20),
            freezer_key_write_buffer: NZUsize!(1 << 16),
            freezer_value_write_buffer: NZUsize!(1 << 20),
            ordinal_write_buffer: NZUsize!(1 << 16),
        },
    )
    .await
    .map_err(|e| ConsensusError::Storage(format!("{name}: {e}")))
}

/// A four-validator test network: its genesis and every validator's signing scheme, in the
/// engine's participant order.
#[cfg(test)]
pub(crate) fn test_network(chain_id: u64, port: u16) -> (GenesisFile, Vec<Scheme>) {
    let dir = std::env::temp_dir().join(format!("aivm-consensus-{chain_id}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let params = crate::testnet::TestnetParams {
        chain_id,
        host: "127.0.0.1".into(),
        port,
        validators: 4,
        stake: 1000,
        balance: 1,
        active: None,
        epoch_length: 10,
        accounts: Vec::new(),
        max_block_gas: crate::genesis::DEFAULT_MAX_BLOCK_GAS,
        min_gas_price: 1,
        market: None,
    };
    let (homes, genesis) = crate::testnet::create(&dir, &params).expect("testnet");
    let committee = participants(&genesis).expect("committee");
    let schemes = committee
        .keys
        .iter()
        .map(|key| {
            let home = homes
                .iter()
                .find(|h| crate::keys::NodeKeys::load(h).map(|k| k.identity_public().to_vec() == key.as_ref().to_vec()).unwrap_or(false))
                .expect("home");
            let share = crate::keys::load_share(home).expect("share file").expect("a share");
            let share = threshold::share(&share, &committee.sharing).expect("share");
            Scheme::signer(&namespace(chain_id), committee.keys.clone(), committee.sharing.clone(), share).expect("signer")
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (genesis, schemes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_block_gas_fits_the_default_timeouts() {
        let t = Timing::default();
        assert_eq!(max_block_gas_for(&t), crate::genesis::DEFAULT_MAX_BLOCK_GAS);
        let slow = Timing { leader: Duration::from_secs(4), certification: Duration::from_secs(2), ..t };
        assert_eq!(max_block_gas_for(&slow), crate::genesis::DEFAULT_MAX_BLOCK_GAS, "the certification half bounds it");
    }
}
