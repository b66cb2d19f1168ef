//! The engine's epochs (`spec/consensus.md`, "Epochs of the engine"): one simplex engine per
//! epoch of `epoch_length` blocks, each signing with the threshold key's shares that the
//! previous epoch's reshare gave the epoch's set. commonware-glue's `dkg` runs the protocol
//! (its orchestrator starts each epoch's engine; its reshare actor runs the Feldman–Desmedt
//! reshare over p2p, with dealer logs in blocks and each epoch's final block carrying the
//! next epoch's info). Resharing keeps the group key, so certificates, seeds and state-sync
//! anchors verify under genesis' key in every epoch.
//!
//! What this chain supplies, here:
//! - [`Schemes`]: the signing scheme of each epoch (the glue's `Registrar` installs them, the
//!   orchestrator reads them as a certificate `Provider`).
//! - [`FileSecrets`]: shares, dealer seeds and received dealings, durable under the home.
//! - [`StakingParticipants`]: who takes part in future epochs, from the sets the runtime
//!   records in state (`aivm_runtime::staking::epoch`, [`SET_LAG`] epochs ahead) and their
//!   recorded p2p addresses.
//! - [`engine_epoch`]: the signers and public polynomial an epoch info names, which the
//!   executor records in state (liveness and evidence of that epoch use them).

use super::{PublicKey, Scheme};
use crate::execution::Executor;
use aivm_runtime::staking::{EngineEpoch, SET_LAG};
use commonware_codec::{Decode, DecodeExt, Encode};
use commonware_consensus::types::Epoch;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::{DealerPrivMsg, Output};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::ModeVersion;
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_cryptography::certificate::{Provider, Scoped};
use commonware_cryptography::transcript::Summary;
use commonware_glue::dkg::network::Addresses;
use commonware_glue::dkg::types::{EpochInfo, EpochOutcome, Payload, SchemeInfo};
use commonware_p2p::Address;
use commonware_utils::ordered::{Map, Set};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

/// Where each epoch's participants listen: part of every epoch info.
pub type Directory = Addresses<PublicKey>;
/// The public description of an epoch (its threshold output, players, next players, directory).
pub type Info = EpochInfo<MinPk, PublicKey, Directory>;
/// What a block's `reshare` field carries, decoded.
pub type ResharePayload = Payload<MinPk, PublicKey, Directory>;

/// Most participants of any epoch set the codec accepts (bounds decoding; a chain's
/// `active_set_size` must not exceed it). At this size a payload stays under
/// [`crate::block::MAX_RESHARE_BYTES`] (pinned by a test).
pub const MAX_PARTICIPANTS: u32 = 128;

/// Epoch schemes kept in memory (older ones are dropped; the engine never returns to them).
const KEPT_SCHEMES: usize = 8;

fn max_participants() -> NonZeroU32 {
    NonZeroU32::new(MAX_PARTICIPANTS).unwrap_or(NonZeroU32::MIN)
}

/// The codec configuration of payloads and infos.
pub fn codec() -> (NonZeroU32, ModeVersion) {
    (max_participants(), ModeVersion::v0())
}

/// Decode a block's reshare payload (bounded by [`MAX_PARTICIPANTS`]).
pub fn decode_payload(bytes: &[u8]) -> Result<ResharePayload, String> {
    ResharePayload::decode_cfg(bytes.to_vec(), &codec()).map_err(|e| e.to_string())
}

/// Epoch 0's info: the genesis dealing's output, its players signing epoch 0 and taking part
/// in epoch 0's reshare, and (announced one epoch early) the same set for epoch 1.
pub fn epoch_zero(output: Output<MinPk, PublicKey>, addresses: &Map<PublicKey, Address>) -> Result<Info, String> {
    let players = output.players().clone();
    let directory = directory_of(&players, addresses)?;
    Ok(EpochInfo { outcome: EpochOutcome::Success, epoch: Epoch::zero(), output, players: players.clone(), next_players: players, directory })
}

/// Genesis' `epoch_info`: epoch 0's info for the genesis dealing (or DKG), as the genesis
/// block's reshare payload, with the validators' p2p addresses from genesis.
pub fn genesis_payload(output: Output<MinPk, PublicKey>, validators: &[crate::genesis::GenesisValidator]) -> Result<Vec<u8>, String> {
    let info = epoch_zero(output, &genesis_addresses(validators)?)?;
    Ok(ResharePayload::EpochInfo(info).encode().to_vec())
}

/// The genesis validators' p2p addresses, by identity.
pub fn genesis_addresses(validators: &[crate::genesis::GenesisValidator]) -> Result<Map<PublicKey, Address>, String> {
    let mut addrs = Vec::new();
    for v in validators {
        let key = PublicKey::decode(v.identity.to_vec()).map_err(|e| format!("identity key: {e}"))?;
        let at: std::net::SocketAddr = v.p2p.parse().map_err(|e| format!("p2p address {}: {e}", v.p2p))?;
        addrs.push((key, Address::Symmetric(at)));
    }
    Ok(Map::from_iter_dedup(addrs))
}

/// Where each of `players` listens, from `addresses`.
pub fn directory_of(players: &Set<PublicKey>, addresses: &Map<PublicKey, Address>) -> Result<Directory, String> {
    Ok(players
        .iter()
        .map(|p| addresses.get_value(p).cloned().map(|a| (p.clone(), a)).ok_or_else(|| format!("no p2p address for {p}")))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .collect())
}

/// The signers and public polynomial of the epoch an epoch-info payload describes (what the
/// executor records as [`EngineEpoch`]); `None` for any other payload or bytes.
pub fn engine_epoch(reshare: &[u8]) -> Option<(u64, EngineEpoch)> {
    match decode_payload(reshare).ok()? {
        Payload::EpochInfo(info) => {
            let signers =
                info.output.players().iter().map(|p| <[u8; 32]>::try_from(p.as_ref()).ok().map(serde_bytes::ByteArray::new)).collect::<Option<Vec<_>>>()?;
            let info_hash = blake3::hash(reshare).as_bytes().to_vec();
            Some((info.epoch.get(), EngineEpoch { signers, sharing: info.output.public().encode().to_vec(), info_hash }))
        }
        Payload::DealerLog(_) => None,
    }
}

/// The scheme of each epoch this node has entered or will enter: signer, member or verifier.
#[derive(Clone)]
pub struct Schemes {
    namespace: Arc<Vec<u8>>,
    by_epoch: Arc<Mutex<BTreeMap<u64, Arc<Scheme>>>>,
    /// Where the node reports which epochs it signs (`aivm_status`).
    executor: Arc<Executor>,
}

impl Schemes {
    pub fn new(namespace: Vec<u8>, executor: Arc<Executor>) -> Self {
        Schemes { namespace: Arc::new(namespace), by_epoch: Default::default(), executor }
    }

    /// Install the scheme `info` describes for `epoch` (its share, if any, is checked by
    /// commonware against the polynomial).
    pub fn install(&self, epoch: Epoch, info: SchemeInfo<MinPk, PublicKey>) {
        let ns = &self.namespace[..];
        let signer = matches!(info, SchemeInfo::Signer { .. });
        let scheme = match info {
            SchemeInfo::Verifier { participants, sharing } => Some(Scheme::verifier(ns, participants, sharing)),
            SchemeInfo::Member { participants, sharing, public_key } => Scheme::member(ns, participants, sharing, &public_key),
            SchemeInfo::Signer { participants, sharing, share } => Scheme::signer(ns, participants, sharing, share),
        };
        let Some(scheme) = scheme else {
            tracing::error!(epoch = epoch.get(), "the epoch's scheme does not fit its participants: not installed");
            return;
        };
        let mut m = self.by_epoch.lock();
        m.insert(epoch.get(), Arc::new(scheme));
        while m.len() > KEPT_SCHEMES {
            m.pop_first();
        }
        let mut s = self.executor.signer_epochs.lock();
        s.insert(epoch.get(), signer);
        while s.len() > KEPT_SCHEMES {
            s.pop_first();
        }
    }

    pub fn get(&self, epoch: u64) -> Option<Arc<Scheme>> {
        self.by_epoch.lock().get(&epoch).cloned()
    }
}

impl Provider for Schemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, scope: Epoch) -> Option<Scoped<Scheme>> {
        self.get(scope.get()).map(Scoped::scheme)
    }

    fn scheme(&self, scope: Epoch) -> Option<Arc<Scheme>> {
        self.get(scope.get())
    }
}

impl commonware_glue::dkg::Registrar for Schemes {
    type Variant = MinPk;
    type PublicKey = PublicKey;

    async fn register(&self, epoch: Epoch, info: SchemeInfo<MinPk, PublicKey>) {
        tracing::info!(epoch = epoch.get(), signer = matches!(info, SchemeInfo::Signer { .. }), "epoch scheme registered");
        self.install(epoch, info)
    }
}

/// The reshare protocol's secrets under `<home>/reshare/` (mode 0600): each epoch's share,
/// this node's dealer seed, and the private dealings it received. Every write is durable
/// before it returns (written aside, synced, renamed, directory synced): a dealer that lost
/// its seed would deal differently after a restart. Epoch 0's share is the one genesis dealt
/// (`consensus.share`) unless the protocol stored another.
#[derive(Clone)]
pub struct FileSecrets {
    dir: PathBuf,
    genesis_share: Option<Share>,
}

impl FileSecrets {
    pub fn open(dir: PathBuf, genesis_share: Option<Share>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(FileSecrets { dir, genesis_share })
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        if let Err(e) = self.try_write(name, bytes) {
            // A secret that cannot be kept would make this node deal or sign inconsistently
            // after a restart: stop rather than continue without it.
            crate::exit::stop(crate::exit::DIVERGED, &format!("cannot store the reshare secret {name}: {e}"));
        }
    }

    fn try_write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }

    fn dealing_name(epoch: Epoch, dealer: &impl AsRef<[u8]>) -> String {
        format!("dealing-{}-{}", epoch.get(), crate::hexbytes::to_hex(dealer.as_ref()))
    }
}

impl commonware_glue::dkg::SecretStore for FileSecrets {
    async fn put_share(&mut self, epoch: Epoch, share: Share) {
        self.write(&format!("share-{}", epoch.get()), &share.encode())
    }

    async fn get_share(&mut self, epoch: Epoch) -> Option<Share> {
        match self.read(&format!("share-{}", epoch.get())) {
            Some(b) => Share::decode(b).ok(),
            None if epoch.get() == 0 => self.genesis_share.clone(),
            None => None,
        }
    }

    async fn put_seed(&mut self, epoch: Epoch, seed: Summary) {
        self.write(&format!("seed-{}", epoch.get()), &seed.encode())
    }

    async fn get_seed(&mut self, epoch: Epoch) -> Option<Summary> {
        self.read(&format!("seed-{}", epoch.get())).and_then(|b| Summary::decode(b).ok())
    }

    async fn put_dealing<P: commonware_cryptography::PublicKey>(&mut self, epoch: Epoch, dealer: P, private: DealerPrivMsg) {
        self.write(&Self::dealing_name(epoch, &dealer), &private.encode())
    }

    async fn get_dealing<P: commonware_cryptography::PublicKey>(&mut self, epoch: Epoch, dealer: &P) -> Option<DealerPrivMsg> {
        self.read(&Self::dealing_name(epoch, dealer)).and_then(|b| DealerPrivMsg::decode(b).ok())
    }

    async fn prune(&mut self, min: Epoch) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let epoch = name.split('-').nth(1).and_then(|s| s.split('.').next()).and_then(|s| s.parse::<u64>().ok());
            if epoch.is_some_and(|ep| ep < min.get()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Future epochs' participants and directories, from the sets the runtime records in
/// committed state. The set of epoch `E + 1` (the players of epoch `E`'s reshare) is recorded
/// at the first block of epoch `E − 2`, finalized before anyone derives the final block of
/// `E − 2` that announces it; a node whose committer is behind waits for it. Every node reads
/// the same record, so every node derives the same epoch info.
pub struct StakingParticipants {
    pub executor: Arc<Executor>,
    pub epoch_length: u64,
    /// Genesis' active set and addresses: epochs without a record (a chain without staking,
    /// or a set left empty) keep it.
    pub genesis: Vec<(PublicKey, Address)>,
}

impl StakingParticipants {
    fn read(&self, key: &aivm_runtime::StateKey) -> Option<aivm_runtime::StateValue> {
        self.executor.chain().store().get(key).ok().flatten()
    }

    /// Wait until the committed state holds height `h`.
    async fn committed(&self, h: u64) {
        let mut warned = false;
        while self.executor.head().0 < h {
            if !warned {
                tracing::info!(height = h, "waiting for the committer to reach a recorded epoch set");
                warned = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn recorded(&self, epoch: u64) -> Option<aivm_runtime::staking::EpochSet> {
        aivm_runtime::staking::epoch::epoch_set(epoch, |k| self.read(k)).filter(|s| !s.validators.is_empty())
    }

    fn address_of(&self, peer: &PublicKey, newest: u64) -> Address {
        let fallback = || Address::Symmetric(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        for e in (0..=newest).rev() {
            let Some(set) = self.recorded(e) else { continue };
            if let Some(i) = set.validators.iter().position(|v| v.as_ref() == peer.as_ref()) {
                return set.p2p.get(i).and_then(|a| a.parse().ok()).map(Address::Symmetric).unwrap_or_else(fallback);
            }
        }
        self.genesis.iter().find(|(p, _)| p == peer).map(|(_, a)| a.clone()).unwrap_or_else(fallback)
    }
}

impl commonware_glue::dkg::ParticipantsProvider for StakingParticipants {
    type PublicKey = PublicKey;
    type Directory = Directory;

    async fn participants(&mut self, epoch: Epoch) -> Set<PublicKey> {
        // The players of epoch E's reshare sign in E + 1.
        let signs_in = epoch.get().saturating_add(1);
        self.committed(signs_in.saturating_sub(SET_LAG).saturating_mul(self.epoch_length)).await;
        let keys: Vec<PublicKey> = match self.recorded(signs_in) {
            Some(set) => set.validators.iter().filter_map(|v| PublicKey::decode(v.to_vec()).ok()).collect(),
            None => Vec::new(),
        };
        let keys = if keys.is_empty() { self.genesis.iter().map(|(p, _)| p.clone()).collect() } else { keys };
        let keys: Vec<PublicKey> = keys.into_iter().take(MAX_PARTICIPANTS as usize).collect();
        Set::from_iter_dedup(keys)
    }

    async fn directory(&mut self, epoch: Epoch, peers: Set<PublicKey>) -> Directory {
        // Announced in epoch E − 1's final block: the newest set recorded by then is E + 2's.
        let newest = epoch.get().saturating_add(2);
        self.committed(epoch.get().saturating_sub(1).saturating_mul(self.epoch_length)).await;
        peers.iter().map(|p| (p.clone(), self.address_of(p, newest))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use commonware_glue::dkg::SecretStore as _;

    /// The largest payload of a set at the codec's bound fits a block's reshare field.
    #[test]
    fn payloads_fit_the_block_field() {
        let size = ResharePayload::max_encode_size(max_participants());
        assert!(size <= crate::block::MAX_RESHARE_BYTES, "{size} > {}", crate::block::MAX_RESHARE_BYTES);
    }

    /// Secrets survive a reopen (they are files), epoch 0 falls back to the genesis share,
    /// pruning drops older epochs only, and nothing is readable by others.
    #[test]
    fn secrets_are_durable_private_and_pruned() {
        let ids: Vec<[u8; 32]> = (1..=4u8).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes()).collect();
        let dealt = super::super::threshold::deal(&ids).expect("deal");
        let shares: Vec<Share> = dealt.shares.iter().map(|s| Share::decode(s.clone()).expect("share")).collect();
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("reshare");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let mut s = FileSecrets::open(path.clone(), Some(shares[0].clone())).expect("open");
            assert_eq!(s.get_share(Epoch::zero()).await, Some(shares[0].clone()), "genesis share for epoch 0");
            assert_eq!(s.get_share(Epoch::new(1)).await, None);
            s.put_share(Epoch::new(1), shares[1].clone()).await;
            s.put_share(Epoch::new(3), shares[2].clone()).await;
            let seed = Summary::decode(vec![7u8; 32]).expect("summary");
            s.put_seed(Epoch::new(3), seed).await;

            let mut again = FileSecrets::open(path.clone(), None).expect("reopen");
            assert_eq!(again.get_share(Epoch::new(1)).await, Some(shares[1].clone()));
            assert_eq!(again.get_seed(Epoch::new(3)).await, Some(seed));
            assert_eq!(again.get_share(Epoch::zero()).await, None, "no genesis share given");
            again.prune(Epoch::new(2)).await;
            assert_eq!(again.get_share(Epoch::new(1)).await, None, "pruned");
            assert_eq!(again.get_share(Epoch::new(3)).await, Some(shares[2].clone()), "kept");
        });
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("dir").permissions().mode() & 0o777, 0o700);
            for e in std::fs::read_dir(&path).expect("dir").flatten() {
                assert_eq!(e.metadata().expect("file").permissions().mode() & 0o777, 0o600, "{:?}", e.path());
            }
        }
    }

    /// The engine's leader schedule as the executor sees it: round-robin over the signers in
    /// the engine's order, the same for the same (epoch, view), every signer leading in turn.
    #[test]
    fn leaders_rotate_over_the_epochs_signers() {
        let leaders = super::super::leaders();
        let mut ids: Vec<[u8; 32]> = (1..=4u8).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes()).collect();
        ids.sort();
        let turn: Vec<[u8; 32]> = (1..=8).map(|v| leaders(&ids, 3, v)).collect();
        assert_eq!(turn[..4].iter().collect::<std::collections::BTreeSet<_>>().len(), 4, "four views, four leaders");
        assert_eq!(turn[..4], turn[4..], "round robin");
        assert_eq!(leaders(&ids, 3, 5), turn[4], "cached or not, the same");
        assert!(ids.contains(&leaders(&ids[..3], 3, 1)), "another set: its own leaders");
        assert_eq!(leaders(&[], 0, 1), [0; 32], "no signers, no leader");
    }
}
