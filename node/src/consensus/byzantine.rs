//! TEST ONLY (`aivm node run --byzantine MODE`): a leader that proposes blocks honest
//! validators must refuse, one kind per mode (or every kind in turn with `all`). The network
//! tests run one such validator among honest ones and check that the chain keeps finalizing
//! and never diverges. Each corrupted proposal is logged as `byzantine proposal: <mode>`.

use crate::block::{Block, MAX_BLOCK_TX_BYTES};
use aivm_runtime::{BlockLimits, Payload, SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use parking_lot::Mutex;
use std::sync::Arc;

/// What a byzantine leader does to its proposals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Transactions reserving more than the block gas limit together.
    OverGas,
    /// A looping call with gas price 0 and a gas limit near u64::MAX.
    HugeGas,
    /// The honest block with a wrong state root.
    BadHeader,
    /// The honest block with every transaction twice.
    Duplicates,
    /// A transaction from a committed block again (valid: it gets a `Rejected` receipt).
    Replay,
    /// A time a minute ahead.
    FutureTime,
    /// Evidence that does not verify, twice.
    BadEvidence,
    /// More bytes than a block may hold (refused by every decoder).
    Oversized,
    /// The honest block with a seed that does not verify (a leader choosing its own beacon).
    BadSeed,
    /// Each of the above in turn.
    All,
}

const CYCLE: [Mode; 9] =
    [Mode::OverGas, Mode::HugeGas, Mode::BadHeader, Mode::Duplicates, Mode::Replay, Mode::FutureTime, Mode::BadEvidence, Mode::Oversized, Mode::BadSeed];

/// Corrupts this validator's proposals.
pub struct Byzantine {
    mode: Mode,
    key: SigningKey,
    chain_id: u64,
    limits: BlockLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    proposals: usize,
    /// Nonce for this validator's own (never valid) transactions: they are never executed.
    nonce: u64,
    /// A transaction seen in an earlier proposal, for replays.
    seen: Option<Vec<u8>>,
}

impl Byzantine {
    pub fn new(mode: Mode, key: SigningKey, chain_id: u64, limits: BlockLimits) -> Arc<Self> {
        Arc::new(Byzantine { mode, key, chain_id, limits, state: Mutex::new(State::default()) })
    }

    fn tx(&self, nonce: u64, gas_limit: u64, gas_price: u64) -> Vec<u8> {
        let sender = self.key.verifying_key().to_bytes();
        let payload = Payload::Call { contract: [0x11; 32], entry: "spin".into(), args: Vec::new(), value: 0 };
        let tx = Transaction { chain_id: self.chain_id, sender, nonce, gas_limit, gas_price, payload };
        SignedTransaction::encode(&tx.sign(&self.key))
    }

    /// The mode for the next proposal.
    pub fn next_mode(&self) -> Mode {
        let mut st = self.state.lock();
        st.proposals += 1;
        match self.mode {
            Mode::All => CYCLE[(st.proposals - 1) % CYCLE.len()],
            m => m,
        }
    }

    /// A transaction of an earlier proposal, to include again (`Replay`: the proposal is then
    /// built honestly around it, and is valid).
    pub fn replayed(&self) -> Option<SignedTransaction> {
        self.state.lock().seen.as_deref().and_then(|b| SignedTransaction::decode(b).ok())
    }

    /// `honest` corrupted as `mode` says (`Replay` leaves it as it is); remembers a
    /// transaction of it for later replays.
    pub fn corrupt(&self, honest: &Block, mode: Mode) -> Block {
        let mut st = self.state.lock();
        if st.seen.is_none() {
            st.seen = honest.txs.first().cloned();
        }
        let mut b = honest.clone();
        let nonce = st.nonce;
        match mode {
            Mode::OverGas => {
                let each = self.limits.max_tx_gas;
                let n = self.limits.max_block_gas / each.max(1) + 1;
                b.txs = (0..n).map(|i| self.tx(nonce + i, each, self.limits.min_gas_price)).collect();
                st.nonce += n;
            }
            Mode::HugeGas => {
                b.txs.push(self.tx(nonce, u64::MAX - 1, 0));
                st.nonce += 1;
            }
            Mode::BadHeader => b.header.state_root[0] ^= 1,
            Mode::Duplicates => {
                if b.txs.is_empty() {
                    b.txs.push(self.tx(nonce, 1_000_000, self.limits.min_gas_price));
                }
                let again = b.txs.clone();
                b.txs.extend(again);
            }
            Mode::FutureTime => b.header.time_ms = b.header.time_ms.saturating_add(60_000),
            Mode::BadEvidence => b.evidence = vec![vec![1; 200], vec![1; 200]],
            Mode::Oversized => b.txs.push(vec![0xab; MAX_BLOCK_TX_BYTES + 1]),
            Mode::BadSeed => {
                let mut seed = [0x5a; crate::block::SEED_BYTES];
                seed[..32].copy_from_slice(&b.header.state_root);
                b.seed = Some(seed);
            }
            Mode::Replay | Mode::All => {}
        }
        b
    }
}
