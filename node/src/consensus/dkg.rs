//! A genesis threshold key that no one knows whole: commonware-glue's one-shot DKG
//! (`dkg::bootstrap`), run by every validator of a genesis' active set from its own home
//! (`aivm node dkg`), over the same authenticated p2p, identity keys and addresses that
//! consensus uses (`spec/consensus.md`, "Dealing").
//!
//! The ceremony is its own short chain: an ed25519 simplex among the participants for one
//! epoch, in whose first half each dealer sends every player its private dealing and collects
//! acknowledgements, and in whose second half each dealer posts its log in a block it leads;
//! the final block carries the output (the group's public polynomial, the dealers whose logs
//! counted, the players whose shares a dealer had to reveal). Every participant reads the same
//! final block, so every home's genesis gets the same `threshold` and `epoch_info`; each keeps
//! only its own share.

use super::{epochs, threshold, ConsensusError, PublicKey, QUOTAS};
use crate::genesis::GenesisFile;
use crate::keys::NodeKeys;
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::types::Epoch;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::Reveal;
use commonware_cryptography::bls12381::primitives::sharing::{Mode, ModeVersion};
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_cryptography::{ed25519, Signer};
use commonware_glue::dkg::bootstrap;
use commonware_glue::dkg::network::AddressableManager;
use commonware_glue::dkg::SecretStore as _;
use commonware_p2p::authenticated::lookup;
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock as _, Quota, Supervisor as _};
use commonware_utils::ordered::Quorum as _;
use commonware_utils::{NZDuration, NZUsize, NZU16, NZU64};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// The ceremony's p2p channels (a network of its own: it ends before the validator starts).
const CH_VOTES: u64 = 0;
const CH_CERTS: u64 = 1;
const CH_RESOLVER: u64 = 2;
const CH_BACKFILL: u64 = 3;
const CH_BROADCAST: u64 = 4;
const CH_DEALINGS: u64 = 5;

/// Blocks of the ceremony's one epoch per participant, and at least: the second half is the
/// inclusion window, in which a quorum of dealers must each lead a finalized block to post
/// its log; round-robin gives each participant `MIN_BLOCKS / 2 / n` turns there, so 4 each
/// (turns that time out included). The first half is the time dealers have to collect their
/// players' acknowledgements: a player that has not acknowledged by then has its share
/// revealed in the dealer's log.
const BLOCKS_PER_PARTICIPANT: u64 = 8;
const MIN_BLOCKS: u64 = 32;

/// Where and how long one validator runs the ceremony.
pub struct CeremonyConfig {
    /// The ceremony's storage and secrets (`<home>/dkg`): a restarted ceremony resumes from
    /// them and, once this validator has its share, reports the same result again.
    pub dir: PathBuf,
    /// This validator's p2p listen address (its config's `p2p`).
    pub p2p: SocketAddr,
    /// Longest to wait, before the ceremony starts, for every other participant's p2p port to
    /// be listening (its `aivm node dkg` started); then it starts with whoever is up.
    pub wait: Duration,
    /// Give up when no result came in this long (from the start, waiting included).
    pub timeout: Duration,
    /// After this validator has its result, keep serving the ceremony's chain this long, so
    /// that participants still finishing can fetch its final block.
    pub linger: Duration,
}

/// One validator's result of the ceremony.
pub struct Ceremony {
    /// The genesis with the group key (`threshold`) and epoch 0's info (`epoch_info`): the
    /// same bytes in every participant's home.
    pub genesis: GenesisFile,
    /// This validator's share (`consensus.share`), checked against the group key.
    pub share: Vec<u8>,
    /// Dealers whose logs made the key.
    pub dealers: usize,
    /// Identities whose shares a dealer revealed (they did not acknowledge its dealing in
    /// time): valid, but those shares are public, so the key tolerates that many fewer
    /// faults. Empty in a ceremony where every validator was up from the start.
    pub revealed: Vec<[u8; 32]>,
}

/// Run the genesis DKG as the validator `keys` among `genesis`' active set, and return the
/// genesis completed with its result. Every participant must run it at about the same time
/// (the ceremony needs a quorum online to make blocks, and every player online in its first
/// half to keep its share secret).
pub fn ceremony(genesis: &GenesisFile, keys: &NodeKeys, cfg: CeremonyConfig) -> Result<Ceremony, ConsensusError> {
    use commonware_runtime::Runner as _;
    if !genesis.threshold.is_empty() || !genesis.epoch_info.is_empty() {
        return Err(ConsensusError::Genesis("it already has a threshold key".into()));
    }
    let identity = ed25519::PrivateKey::decode(keys.identity.to_bytes().to_vec()).map_err(|e| ConsensusError::Key(e.to_string()))?;
    let me = identity.public_key();
    let participants = threshold::participant_set(&genesis.active_identities())?;
    if participants.index(&me).is_none() {
        return Err(ConsensusError::Key("this validator is not in the genesis' active set".into()));
    }
    let addresses = epochs::genesis_addresses(&genesis.validators).map_err(ConsensusError::Genesis)?;
    let directory = epochs::directory_of(&participants, &addresses).map_err(ConsensusError::Genesis)?;
    let others: Vec<SocketAddr> = directory
        .clone()
        .into_inner()
        .into_iter()
        .filter(|(k, _)| *k != me)
        .filter_map(|(_, a)| match a {
            commonware_p2p::Address::Symmetric(at) => Some(at),
            _ => None,
        })
        .collect();
    // The bound the genesis is validated against afterwards, checked before any work.
    if participants.len() > epochs::MAX_PARTICIPANTS as usize {
        return Err(ConsensusError::Genesis(format!("{} active validators; the engine takes at most {}", participants.len(), epochs::MAX_PARTICIPANTS)));
    }
    let n = participants.len() as u64;
    let count = std::num::NonZeroU32::new(n as u32).ok_or_else(|| ConsensusError::Genesis("no active validators".into()))?;
    let blocks = NZU64!(MIN_BLOCKS).max(std::num::NonZeroU64::new(n.saturating_mul(BLOCKS_PER_PARTICIPANT)).unwrap_or(NZU64!(MIN_BLOCKS)));
    let max_message = commonware_p2p::max_message_size(&[bootstrap::max_payload_size::<MinPk, epochs::Directory>(count, ModeVersion::v0())]);
    // A namespace of its own: the ceremony's transcripts and votes never verify as the chain's.
    let ns = [super::namespace(genesis.chain_id), b"_GENESIS_DKG".to_vec()].concat();
    let ns_static: &'static [u8] = Box::leak(ns.clone().into_boxed_slice());
    let secrets = epochs::FileSecrets::open(cfg.dir.join("secrets"), None).map_err(|e| ConsensusError::Storage(format!("ceremony secrets: {e}")))?;
    let runtime = commonware_runtime::tokio::Config::new().with_storage_directory(cfg.dir.join("storage")).with_worker_threads(2).with_tcp_nodelay(Some(true));
    let (info, share) = commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
        let peers = std::num::NonZeroUsize::new(n as usize).unwrap_or(NZUsize!(1));
        let (mut network, oracle) = lookup::Network::new(context.child("network"), super::p2p_config(&identity, &ns, cfg.p2p, peers, max_message));
        let votes = network.register(CH_VOTES, Quota::per_second(QUOTAS.votes));
        let certs = network.register(CH_CERTS, Quota::per_second(QUOTAS.certs));
        let resolver = network.register(CH_RESOLVER, Quota::per_second(QUOTAS.resolver));
        let backfill = network.register(CH_BACKFILL, Quota::per_second(QUOTAS.backfill));
        let broadcast = network.register(CH_BROADCAST, Quota::per_second(QUOTAS.broadcast));
        let dealings = network.register(CH_DEALINGS, Quota::per_second(QUOTAS.reshare));
        network.start();
        let started = std::time::Instant::now();
        wait_for_listeners(&others, cfg.wait).await;
        let engine = bootstrap::Engine::<_, MinPk, _, _, _, _, _>::new(
            context.child("dkg"),
            bootstrap::Config {
                signer: identity,
                manager: AddressableManager::new(oracle.clone()),
                blocker: oracle,
                secret_store: secrets.clone(),
                strategy: Sequential,
                namespace: ns_static,
                sharing_mode: Mode::NonZeroCounter,
                reveal: Reveal::V1,
                max_supported_mode: ModeVersion::v0(),
                partition_prefix: "genesis-dkg".into(),
                page_cache: CacheRef::new(NZU16!(16_384), NZUsize!(64)),
                write_buffer: NZUsize!(1 << 16),
                replay_buffer: NZUsize!(1 << 20),
                mailbox_size: NZUsize!(1024),
                fetch_timeout: NZDuration!(Duration::from_secs(2)),
                fetch_retry_delay: Duration::from_millis(100),
                items_per_section: NZU64!(64),
                participants,
                directory,
                blocks_per_epoch: blocks,
            },
        );
        let (handle, completion) = engine.start(votes, certs, resolver, backfill, broadcast, dealings);
        let info = match tokio::time::timeout(cfg.timeout.saturating_sub(started.elapsed()), completion).await {
            Err(_) => return Err(ConsensusError::Dkg(format!("no result within {} s (are all validators running it?)", cfg.timeout.as_secs()))),
            Ok(Err(_)) => return Err(ConsensusError::Dkg("the ceremony's engine stopped".into())),
            Ok(Ok(bootstrap::Completion { info: None })) => {
                return Err(ConsensusError::Dkg(
                    "the ceremony failed: too few dealers' logs were included (clear the ceremony's directory and run it again, all validators together)"
                        .into(),
                ))
            }
            Ok(Ok(bootstrap::Completion { info: Some(info) })) => info,
        };
        // Stay to serve the ceremony's final block to participants still catching up.
        context.sleep(cfg.linger).await;
        handle.abort();
        let mut secrets = secrets;
        let share = secrets.get_share(Epoch::zero()).await.ok_or_else(|| ConsensusError::Dkg("the ceremony ended without this validator's share".into()))?;
        Ok((info, share))
    })?;
    let output = info.output;
    let mut out = genesis.clone();
    out.set_threshold(output.clone()).map_err(|e| ConsensusError::Genesis(e.to_string()))?;
    out.validate().map_err(|e| ConsensusError::Genesis(format!("the ceremony's result: {e}")))?;
    let share = share.encode().to_vec();
    threshold::share(&share, output.public())?;
    let key_bytes = |k: &PublicKey| <[u8; 32]>::try_from(k.as_ref()).unwrap_or([0; 32]);
    Ok(Ceremony { genesis: out, share, dealers: output.dealers().len(), revealed: output.revealed().iter().map(key_bytes).collect() })
}

/// Wait until every address in `peers` accepts a TCP connection (its participant's p2p
/// network is listening), or `wait` passed. A participant that starts its ceremony while
/// others are still down would otherwise deal and make blocks with whoever is up (a quorum
/// is enough), and the latecomers' shares would be revealed (`spec/consensus.md`). The probe
/// is a bare connection, closed at once: the listener drops it as a failed handshake. Once
/// per 250 ms per peer, well under p2p's per-address handshake rate (16/s).
async fn wait_for_listeners(peers: &[SocketAddr], wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pending: Vec<SocketAddr> = peers.to_vec();
    while !pending.is_empty() {
        // All at once: a pass takes at most one probe's timeout, whatever the set's size.
        let probes = pending.iter().map(|at| tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(*at)));
        let up = futures::future::join_all(probes).await;
        pending = pending.into_iter().zip(up).filter(|(_, r)| !matches!(r, Ok(Ok(_)))).map(|(at, _)| at).collect();
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(missing = ?pending, "starting the ceremony without every participant listening");
            eprintln!("aivm node dkg: starting without {} participant(s) that are not up: their shares will be revealed", pending.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A genesis whose active set is over the engine's bound is refused before the ceremony
    /// opens a port or a file.
    #[test]
    fn an_active_set_over_the_bound_is_refused_first() {
        let n = epochs::MAX_PARTICIPANTS as usize + 1;
        let keys: Vec<NodeKeys> = (0..n).map(|_| NodeKeys::generate().expect("keys")).collect();
        let validators = keys.iter().enumerate().map(|(i, k)| crate::genesis::GenesisValidator::new(k, 1000, format!("127.0.0.1:{}", 30000 + i))).collect();
        let genesis = GenesisFile {
            chain_id: 1,
            time_ms: 0,
            epoch_length: 100,
            active_set_size: n as u32,
            validators,
            accounts: Vec::new(),
            threshold: Vec::new(),
            epoch_info: Vec::new(),
            max_block_gas: crate::genesis::DEFAULT_MAX_BLOCK_GAS,
            min_gas_price: crate::genesis::DEFAULT_MIN_GAS_PRICE,
            market: None,
            staking: Default::default(),
        };
        let dir = tempfile::tempdir().expect("dir");
        let cfg = CeremonyConfig {
            dir: dir.path().join("dkg"),
            p2p: "127.0.0.1:0".parse().expect("addr"),
            wait: Duration::ZERO,
            timeout: Duration::from_secs(1),
            linger: Duration::ZERO,
        };
        let err = ceremony(&genesis, &keys[0], cfg).err().expect("refused");
        assert!(err.to_string().contains("at most 128"), "{err}");
        assert!(!dir.path().join("dkg").exists(), "nothing written");
    }

    /// A participant listening ends the wait at once; one that is not ends it at the limit.
    #[tokio::test]
    async fn the_wait_ends_when_every_listener_is_up_or_at_its_limit() {
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let up_at = up.local_addr().expect("addr");
        let t = std::time::Instant::now();
        wait_for_listeners(&[up_at], Duration::from_secs(30)).await;
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // A port nobody listens on (bound, then closed).
        let down_at = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let t = std::time::Instant::now();
        wait_for_listeners(&[up_at, down_at], Duration::from_millis(600)).await;
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(600) && waited < Duration::from_secs(5), "{waited:?}");
    }
}
