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
pub mod dkg;
pub mod epochs;
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
use commonware_consensus::Epochable as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::Reveal;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion};
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::{ed25519, sha256::Sha256, ChaCha20Poly1305, Signer};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::Address;
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Quota, Supervisor as _};
use commonware_storage::archive::immutable;
use commonware_stream::{cups, sake};
use commonware_utils::ordered::Set;
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
const CH_RESHARE: u64 = 7;

/// Messages per second one peer may send on each channel.
struct Quotas {
    backfill: std::num::NonZeroU32,
    broadcast: std::num::NonZeroU32,
    votes: std::num::NonZeroU32,
    certs: std::num::NonZeroU32,
    resolver: std::num::NonZeroU32,
    gossip: std::num::NonZeroU32,
    reshare: std::num::NonZeroU32,
}

/// A view sends each peer about three votes (notarize, finalize or nullify) and three
/// certificates, and the leader one block; views run at most ~20/s on a LAN (an empty-block
/// leader waits 200 ms; a loaded one executes first). Votes and certificates get ~4× that
/// rate; blocks one per view with headroom; backfill and certificate fetches serve a peer
/// catching up, a batch of requests at a time. Gossip sends one message per
/// `gossip::INTERVAL` (50/s) and more when the backlog spills over a message: 128/s of at most
/// `gossip::MAX_TXS` each bounds what one peer can make this node verify. A reshare sends each
/// player one dealing and each dealer one acknowledgement per epoch, retried: 16/s is ample.
const QUOTAS: Quotas = Quotas {
    backfill: NZU32!(256),
    broadcast: NZU32!(64),
    votes: NZU32!(256),
    certs: NZU32!(256),
    resolver: NZU32!(256),
    gossip: NZU32!(128),
    reshare: NZU32!(16),
};

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("key: {0}")]
    Key(String),
    #[error(transparent)]
    Threshold(#[from] threshold::ThresholdError),
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("state sync anchor: {0}")]
    Anchor(String),
    #[error("genesis DKG: {0}")]
    Dkg(String),
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
    /// The finalization this node's state was synced to, with its epoch's info (`aivm node
    /// sync`; see [`sync`]): marshal and the epoch actors start from it instead of genesis.
    pub floor: Option<sync::Floor>,
    /// Where the reshare protocol keeps this validator's secrets (`<home>/reshare`).
    pub secrets: std::path::PathBuf,
    /// The seeds of the rounds this node saw certified: proposals carry their parent's, and
    /// JSON-RPC shows a job's challenge as soon as the seed that fixes it is known.
    pub seeds: Arc<threshold::Seeds>,
}

/// The evidence checker of a chain: evidence verifies against the signers of its epoch as
/// the state records them (give it to the executor).
pub fn evidence_check(genesis: &GenesisFile) -> Arc<dyn crate::execution::EvidenceCheck> {
    Arc::new(faults::Checker { namespace: namespace(genesis.chain_id) })
}

/// The engine's leader of each view: round-robin over the epoch's signers (in the engine's
/// participant order), as identities. What the executor counts leader slots by
/// (`staking::liveness`); the same elector as the engine's, so it names the same leaders.
pub fn leaders() -> crate::execution::Leaders {
    use commonware_consensus::simplex::elector::{Config as _, Elector as _};
    use commonware_consensus::types::{Round, View};
    type Elector = <RoundRobin<Sha256> as commonware_consensus::simplex::elector::Config<Scheme>>::Elector;
    /// The elector of the last signer list asked for (a block asks for one epoch's, many views).
    type Cached = Option<(Vec<[u8; 32]>, Set<PublicKey>, Elector)>;
    let cache: Arc<parking_lot::Mutex<Cached>> = Default::default();
    Arc::new(move |signers: &[[u8; 32]], epoch: u64, view: u64| {
        let mut c = cache.lock();
        if c.as_ref().is_none_or(|(s, _, _)| s.as_slice() != signers) {
            let set = Set::from_iter_dedup(signers.iter().filter_map(|s| PublicKey::decode(s.to_vec()).ok()));
            if set.is_empty() {
                return [0; 32];
            }
            let elector = RoundRobin::<Sha256>::default().build(&set);
            *c = Some((signers.to_vec(), set, elector));
        }
        let Some((_, set, elector)) = c.as_ref() else { return [0; 32] };
        let p = elector.elect(Round::new(Epoch::new(epoch), View::new(view)), ());
        set.get(p.get() as usize).and_then(|k| <[u8; 32]>::try_from(k.as_ref()).ok()).unwrap_or([0; 32])
    })
}

/// Epoch 0's info from genesis, and its signers' addresses.
fn genesis_epoch(genesis: &GenesisFile) -> Result<epochs::Info, ConsensusError> {
    match epochs::decode_payload(&genesis.epoch_info).map_err(|e| ConsensusError::Genesis(format!("epoch_info: {e}")))? {
        commonware_glue::dkg::types::Payload::EpochInfo(info) if info.epoch.get() == 0 => Ok(info),
        _ => Err(ConsensusError::Genesis("epoch_info is not epoch 0's info".into())),
    }
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
    let mut rpc_ctx = crate::rpc::RpcContext::new(Arc::clone(&v.executor), v.finalized.clone(), v.genesis.chain_id);
    rpc_ctx.seeds = Some(Arc::clone(&v.seeds));
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

/// The authenticated p2p network's handshake: the validator's identity key, ChaCha20-Poly1305.
type Handshake = cups::Cups<sake::Sake<ed25519::PrivateKey>, ChaCha20Poly1305>;

/// A validator's authenticated p2p configuration (consensus and the genesis DKG use the same
/// identity, address and handshake): peers named by their identity keys, dialed at the
/// addresses the chain records, quick redials for a LAN or loopback.
fn p2p_config(
    identity: &ed25519::PrivateKey,
    ns: &[u8],
    listen: SocketAddr,
    peers_per_set: std::num::NonZeroUsize,
    max_message: u32,
) -> lookup::Config<Handshake> {
    let handshake = cups::Cups::<_, ChaCha20Poly1305>::new(
        sake::Sake {
            signer: identity.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut cfg = lookup::Config::local(handshake, ns, listen, peers_per_set, max_message, NZUsize!(4096));
    cfg.dial_frequency = Duration::from_millis(200);
    cfg.peer_connection_cooldown = Duration::from_millis(200);
    cfg
}

/// Run a validator until the process stops.
pub async fn run(context: commonware_runtime::tokio::Context, v: Validator) -> Result<(), ConsensusError> {
    use commonware_glue::dkg::{fence::Fence, network::AddressableManager, orchestrator, reshare, state_sync};
    let identity = ed25519::PrivateKey::decode(v.keys.identity.to_bytes().to_vec()).map_err(|e| ConsensusError::Key(e.to_string()))?;
    let me = identity.public_key();
    let info0 = genesis_epoch(&v.genesis)?;
    // Genesis validation refuses 0.
    let epoch_length = std::num::NonZeroU64::new(v.genesis.epoch_length).unwrap_or(NZU64!(1));
    let ns = namespace(v.genesis.chain_id);
    // The reshare actor wants its namespace for the life of the process.
    let ns_static: &'static [u8] = Box::leak(ns.clone().into_boxed_slice());
    // Epoch 0's scheme, with the share genesis dealt this validator (if it has one); later
    // epochs' schemes are registered by the reshare actor.
    let share0 = match v.share.as_deref() {
        Some(b) => Some(threshold::share(b, info0.output.public())?),
        None => None,
    };
    let schemes = epochs::Schemes::new(ns.clone(), Arc::clone(&v.executor));
    schemes.install(
        Epoch::zero(),
        commonware_glue::dkg::types::SchemeInfo::new(&me, info0.output.players().clone(), info0.output.public().clone(), share0.clone()),
    );
    let secrets = epochs::FileSecrets::open(v.secrets.clone(), share0).map_err(|e| ConsensusError::Storage(format!("reshare secrets: {e}")))?;
    // The group key is the same in every epoch: certificates verify under it alone.
    let certificates = Scheme::certificate_verifier(&ns, *info0.output.public().public());
    let verifier = Arc::new(Scheme::verifier(&ns, info0.output.players().clone(), info0.output.public().clone()));
    let seeds = Arc::clone(&v.seeds);
    let genesis_addresses: Vec<(PublicKey, Address)> = info0.directory.clone().into_inner().into_iter().collect();

    // Network. Each epoch's peers (its signers, its reshare's players and the next epoch's)
    // are activated from its info by the orchestrator.
    // An epoch's peers are at most its signers, its reshare's players and the next epoch's
    // players; commonware sizes per-peer queues by it, so it is not the codec's bound.
    let peers_per_set = std::num::NonZeroUsize::new(3 * v.genesis.active_set_size as usize).unwrap_or(NZUsize!(1));
    let p2p_cfg = p2p_config(&identity, &ns, v.p2p, peers_per_set, MAX_MESSAGE);
    let (mut network, oracle) = lookup::Network::new(context.child("network"), p2p_cfg);
    let manager = AddressableManager::new(oracle.clone());
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
    let reshare_net = network.register(CH_RESHARE, Quota::per_second(QUOTAS.reshare));
    network.start();
    gossip::start(Arc::clone(&v.executor), gossip_out, gossip_in);

    // Marshal: finalized block archives, dissemination, backfill.
    let page_cache = CacheRef::new(NZU16!(16_384), NZUsize!(256));
    // A state-synced node starts marshal from its floor (it holds no block below it, not even
    // genesis), and the epoch actors from the floor's epoch info; any other from genesis.
    let (start, synced) = match v.floor.clone() {
        Some(floor) => {
            use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seedable;
            seeds.record(&floor.cert.seed());
            tracing::info!(epoch = floor.cert.epoch().get(), view = floor.cert.round().view().get(), "starting from the state-sync floor");
            (marshal::Start::Floor(floor.cert.clone()), Some(state_sync::StateSync { info: floor.info, floor: floor.cert }))
        }
        None => {
            let genesis_block = v.executor.genesis_block().map_err(|e| ConsensusError::Storage(e.to_string()))?;
            let genesis = ChainBlock(Arc::new(genesis_block));
            let digest = genesis.digest_of();
            (marshal::Start::Genesis(commonware_cryptography::Digested::precomputed(genesis, digest)), None)
        }
    };
    let epocher = FixedEpocher::new(epoch_length);
    let cfg = marshal::Config {
        provider: ConstantProvider::<_, Epoch>::new(certificates),
        epocher: epocher.clone(),
        start,
        mailbox_size: NZUsize!(1024),
        view_retention: ViewDelta::new(64),
        max_repair: NZUsize!(64),
        max_pending_acks: NZUsize!(16),
        block_codec_config: (),
        partition_prefix: "marshal".to_string(),
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
            peer_provider: manager.clone(),
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
            peer_provider: manager.clone(),
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
    if let Some(snapshots) = v.executor.snapshots().cloned() {
        anchor_snapshots(snapshots, mailbox.clone(), v.finalized.subscribe(), v.genesis.epoch_info.clone(), epoch_length.get());
    }

    // The threshold key's reshare, every epoch, among the sets the chain records.
    let max_participants = std::num::NonZeroU32::new(epochs::MAX_PARTICIPANTS).unwrap_or(std::num::NonZeroU32::MIN);
    let plan = state_sync::Plan::init(
        context.child("dkg_state_sync"),
        state_sync::Config { partition_prefix: "dkg".into(), max_participants, max_supported_mode: ModeVersion::v0() },
        synced,
    )
    .await;
    let (fence, gate) = Fence::new();
    let (reshare_actor, reshare_mailbox) = reshare::Actor::new(
        context.child("reshare"),
        reshare::Config {
            signer: identity.clone(),
            manager: manager.clone(),
            blocker: oracle.clone(),
            participants_provider: epochs::StakingParticipants {
                executor: Arc::clone(&v.executor),
                epoch_length: epoch_length.get(),
                genesis: genesis_addresses,
            },
            secret_store: secrets,
            strategy: Sequential,
            registrar: schemes.clone(),
            marshal: mailbox.clone(),
            state_sync: plan.clone(),
            fence,
            namespace: ns_static,
            sharing_mode: Mode::NonZeroCounter,
            reveal: Reveal::V1,
            mailbox_size: NZUsize!(1024),
            partition_prefix: "reshare".into(),
            page_cache: page_cache.clone(),
            write_buffer: NZUsize!(1 << 16),
            replay_buffer: NZUsize!(1 << 20),
            max_participants,
            blocks_per_epoch: epoch_length,
        },
    );
    let reshare_handle = reshare_actor.start(reshare_net);

    // Consensus: one simplex engine per epoch.
    let byzantine = v.byzantine.map(|mode| {
        tracing::warn!(?mode, "TEST MODE: this validator proposes invalid blocks");
        byzantine::Byzantine::new(mode, v.keys.identity.clone(), v.genesis.chain_id, *v.executor.limits())
    });
    let application = app::App { executor: Arc::clone(&v.executor), byzantine, seeds: Arc::clone(&seeds), verifier };
    let application = reshare::Application::new(application, reshare_mailbox.clone(), epoch_length);
    let wrapper = Inline::new(context.child("application"), application, mailbox.clone(), epocher);
    let engine_app = app::EngineApp { inner: wrapper.clone(), reporter: faults::FaultReporter { inner: wrapper, executor: Arc::clone(&v.executor), seeds } };
    let (orchestrator_actor, orchestrator_mailbox) = orchestrator::Actor::new(
        context.child("orchestrator"),
        orchestrator::Config {
            oracle: oracle.clone(),
            manager,
            provider: schemes.clone(),
            marshal: mailbox.clone(),
            application: engine_app,
            strategy: Sequential,
            simplex: orchestrator::SimplexConfig {
                elector: RoundRobin::<Sha256>::default(),
                mailbox_size: NZUsize!(1024),
                replay_buffer: NZUsize!(1 << 20),
                write_buffer: NZUsize!(1 << 16),
                page_cache,
                leader_timeout: v.timing.leader,
                certification_timeout: v.timing.certification,
                timeout_retry: v.timing.retry,
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                view_retention: ViewDelta::new(64),
                skip: simplex::config::SkipPolicy::Enabled { timeout: v.timing.certification * 3, budget: simplex::config::SkipBudget::Participants },
                // Keep every vote of a tracked view, so a double vote is caught even after the view certified.
                track_historical_votes: true,
                forward: simplex::config::ForwardPolicy::SilentVoters,
            },
            gate,
            state_sync: plan,
            blocks_per_epoch: epoch_length,
            mailbox_size: NZUsize!(1024),
            partition_prefix: "simplex".into(),
        },
    );
    let handle = if v.equivocate {
        tracing::warn!("TEST MODE: this validator equivocates (double notarize votes)");
        let pass = |(s, r)| (faults::Equivocator { inner: s, schemes: None }, r);
        orchestrator_actor.start((faults::Equivocator { inner: votes.0, schemes: Some(schemes.clone()) }, votes.1), pass(certs), pass(resolver_net))
    } else {
        orchestrator_actor.start(votes, certs, resolver_net)
    };
    actor.start(
        commonware_consensus::Reporters::from((finalizer, commonware_consensus::Reporters::from((orchestrator_mailbox, reshare_mailbox)))),
        buffer,
        resolver,
    );
    tracing::info!(me = %me, epoch_length = epoch_length.get(), "consensus started");
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
    // stops; its returning (or the reshare actor's) means it failed.
    tokio::select! {
        _ = handle => crate::exit::stop(crate::exit::ENGINE_STOPPED, "the consensus engine stopped"),
        _ = reshare_handle => crate::exit::stop(crate::exit::ENGINE_STOPPED, "the reshare actor stopped"),
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
    genesis_info: Vec<u8>,
    epoch_length: u64,
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
            // The epoch's info: genesis' for epoch 0, else the previous epoch's final block's.
            let epoch = f.height / epoch_length;
            let info = if epoch == 0 {
                Some(genesis_info.clone())
            } else {
                marshal.get_block(commonware_consensus::types::Height::new(epoch * epoch_length - 1)).await.and_then(|b| b.inner().0.reshare.clone())
            };
            let Some(info) = info else {
                tracing::warn!(height = f.height, "no epoch info for the snapshot's epoch: not served");
                continue;
            };
            match snapshots.write_anchor(f.height, &sync::encode(&cert), &block.inner().0.encode(), &info) {
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
    let info = genesis_epoch(&genesis).expect("epoch 0");
    let (keys, sharing) = (info.output.players().clone(), info.output.public().clone());
    let schemes = keys
        .iter()
        .map(|key| {
            let home = homes
                .iter()
                .find(|h| crate::keys::NodeKeys::load(h).map(|k| k.identity_public().to_vec() == key.as_ref().to_vec()).unwrap_or(false))
                .expect("home");
            let share = crate::keys::load_share(home).expect("share file").expect("a share");
            let share = threshold::share(&share, &sharing).expect("share");
            Scheme::signer(&namespace(chain_id), keys.clone(), sharing.clone(), share).expect("signer")
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
