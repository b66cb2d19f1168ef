//! Transaction gossip: every transaction a client submits to one validator reaches the others'
//! mempools, so whichever validator leads a view proposes a full block.
//!
//! The validators are a full mesh, so a node sends the transactions *its clients* submitted to
//! every peer, and never forwards what it received by gossip (no loops, no duplicate floods).
//! Messages go out every [`INTERVAL`], each at most [`MAX_TXS`] transactions and [`MAX_BYTES`];
//! a receiver decodes with those bounds before allocating, answers duplicates from the pool
//! before any signature check, checks the rest in batches, and admits them under the mempool's
//! ordinary rules. The channel's per-peer quota (`QUOTAS.gossip`) bounds what one peer can
//! make this node verify.

use crate::execution::{Executor, Origin};
use bytes::{Buf, BufMut};
use commonware_p2p::Recipients;
use std::sync::Arc;
use std::time::Duration;

/// How often admitted client transactions are sent on.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Most transactions in one gossip message.
pub const MAX_TXS: usize = 2048;
/// Most bytes of transactions in one gossip message (a larger transaction goes alone).
pub const MAX_BYTES: usize = 1 << 20;

/// Why a gossip message was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("gossip message truncated")]
    Truncated,
    #[error("gossip message holds {0} transactions (most {MAX_TXS})")]
    TooMany(usize),
    #[error("gossip message has trailing bytes")]
    Trailing,
}

/// `u32` count, then each transaction as `u32` length and bytes (big-endian).
pub fn encode(txs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + txs.iter().map(|t| 4 + t.len()).sum::<usize>());
    out.put_u32(txs.len() as u32);
    for t in txs {
        out.put_u32(t.len() as u32);
        out.put_slice(t);
    }
    out
}

/// Read a gossip message, checking every count and length against what is left before
/// allocating.
pub fn decode(mut b: &[u8]) -> Result<Vec<Vec<u8>>, GossipError> {
    if b.remaining() < 4 {
        return Err(GossipError::Truncated);
    }
    let n = b.get_u32() as usize;
    if n > MAX_TXS {
        return Err(GossipError::TooMany(n));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if b.remaining() < 4 {
            return Err(GossipError::Truncated);
        }
        let len = b.get_u32() as usize;
        if b.remaining() < len {
            return Err(GossipError::Truncated);
        }
        out.push(b[..len].to_vec());
        b.advance(len);
    }
    if b.has_remaining() {
        return Err(GossipError::Trailing);
    }
    Ok(out)
}

/// Split `txs` into messages within [`MAX_TXS`] and [`MAX_BYTES`].
pub fn messages(txs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for tx in txs {
        if !current.is_empty() && (current.len() >= MAX_TXS || bytes + tx.len() > MAX_BYTES) {
            out.push(encode(&current));
            current.clear();
            bytes = 0;
        }
        bytes += tx.len();
        current.push(tx);
    }
    if !current.is_empty() {
        out.push(encode(&current));
    }
    out
}

/// Send this node's admitted client transactions to every peer, and admit what peers send.
pub fn start<S, R>(executor: Arc<Executor>, mut sender: S, mut receiver: R)
where
    S: commonware_p2p::Sender + 'static,
    R: commonware_p2p::Receiver + 'static,
{
    let out = Arc::clone(&executor);
    // Start keeping client transactions from now on.
    drop(out.take_gossip());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            for m in messages(out.take_gossip()) {
                sender.send(Recipients::All, commonware_runtime::IoBuf::from(m), false);
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((peer, message)) = receiver.recv().await {
            let txs = match decode(message.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "gossip message dropped");
                    continue;
                }
            };
            let ex = Arc::clone(&executor);
            let admitted = tokio::task::spawn_blocking(move || ex.submit_many(&txs, Origin::Peer).into_iter().filter(Result::is_ok).count()).await;
            tracing::trace!(%peer, ?admitted, "gossip admitted");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let txs: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_be_bytes().repeat(i as usize % 50)).collect();
        let msgs = messages(txs.clone());
        assert!(msgs.len() >= 3);
        let back: Vec<Vec<u8>> = msgs.iter().flat_map(|m| decode(m).expect("decodes")).collect();
        assert_eq!(back, txs);
        for m in &msgs {
            let n = decode(m).unwrap().len();
            assert!(n <= MAX_TXS && m.len() <= MAX_BYTES + 4 + 4 * n);
        }
        let big = vec![vec![7u8; MAX_BYTES + 10], vec![1]];
        assert_eq!(messages(big.clone()).len(), 2, "a large transaction goes alone");
    }

    /// A client's transactions admitted by one validator reach another's pool by gossip (and
    /// are not gossiped on); the other's block is then verified by the first without checking
    /// any signature again.
    #[test]
    fn gossip_fills_every_pool_and_saves_the_second_check() {
        use crate::execution::testing::executor;
        use aivm_runtime::workload::{Asset, P2p};
        let (a, b) = (executor("gossip-a"), executor("gossip-b"));
        drop(a.take_gossip());
        let txs: Vec<Vec<u8>> = P2p::new(5, 2, 1).block(20, Asset::Native).iter().map(|t| t.encode()).collect();
        assert!(a.submit_many(&txs, Origin::Client).iter().all(Result::is_ok));
        let msgs = messages(a.take_gossip());
        assert_eq!(msgs.len(), 1);
        drop(b.take_gossip());
        for m in &msgs {
            let got = decode(m).expect("decodes");
            assert!(b.submit_many(&got, Origin::Peer).iter().all(Result::is_ok));
            assert!(b.submit_many(&got, Origin::Peer).iter().all(|r| r.is_err()), "duplicates refused before any check");
        }
        assert!(b.take_gossip().is_empty(), "a peer's transactions are not gossiped on");
        let e = b.propose(b.head().1, 1).expect("proposal");
        assert_eq!(e.block.txs.len(), 20);
        a.verify(&e.block, e.digest, crate::consensus::now_ms()).expect("valid");
        assert_eq!(a.reused_verified(), 20);
    }

    #[test]
    fn hostile_messages_are_errors() {
        assert_eq!(decode(&[]), Err(GossipError::Truncated));
        assert_eq!(decode(&u32::MAX.to_be_bytes()), Err(GossipError::TooMany(u32::MAX as usize)));
        let mut m = encode(&[vec![1, 2, 3]]);
        m.push(0);
        assert_eq!(decode(&m), Err(GossipError::Trailing));
        let mut lying = 1u32.to_be_bytes().to_vec();
        lying.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&lying), Err(GossipError::Truncated), "a length past the end allocates nothing");
    }
}
