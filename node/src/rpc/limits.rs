//! Per-peer limits of the JSON-RPC server: open connections and calls per second from one
//! address. The global limits (connections, concurrent queries, batch size) stop the node from
//! being overwhelmed; these stop one client from taking all of what the global limits allow.
//!
//! A peer is an IPv4 address or an IPv6 /64 (one subscriber's allocation: counting IPv6 by
//! whole address would give one attacker 2⁶⁴ peers).

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The operator's knobs (`rpc_limits` in the node's `config.json`; every field optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcLimits {
    /// Calls per second one peer may make, sustained. 2 000/s is far above what a wallet or an
    /// explorer needs and far below what the node can answer (queries have their own
    /// concurrency limit on top).
    pub calls_per_second: u32,
    /// Calls one peer may make at once after being idle: one full batch ([`super::MAX_BATCH`])
    /// several times over, so that a client submitting batches is not refused on its first burst.
    pub burst: u32,
    /// Connections one peer may hold open (HTTP keep-alive and WebSocket together): a small
    /// share of [`super::MAX_CONNECTIONS`], so that no single address can take them all.
    pub connections_per_peer: u32,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits { calls_per_second: 2_000, burst: 10_000, connections_per_peer: 32 }
    }
}

impl RpcLimits {
    /// Limits that never bind: for a local devnet whose load generator is one address.
    pub fn unlimited() -> Self {
        RpcLimits { calls_per_second: u32::MAX, burst: u32::MAX, connections_per_peer: super::MAX_CONNECTIONS }
    }
}

/// Who a limit applies to: an IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer(u128);

impl Peer {
    pub fn of(ip: IpAddr) -> Peer {
        match ip {
            IpAddr::V4(v4) => Peer(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Peer(u32::from(v4) as u128),
                // Tag IPv6 prefixes so that none equals an IPv4 peer.
                None => Peer((u128::from(v6) & !((1u128 << 64) - 1)) | 1),
            },
        }
    }
}

/// One token bucket per peer: `burst` tokens, refilled at `calls_per_second`; a call takes one
/// token and a batch one per call, all or nothing.
pub struct CallBuckets {
    rate: u32,
    burst: u32,
    buckets: Mutex<HashMap<Peer, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Most peers remembered; past it, buckets that have refilled (idle peers) are forgotten, and
/// if none has, the oldest are. Bounds the map against clients cycling addresses.
const MAX_PEERS: usize = 16_384;

impl CallBuckets {
    pub fn new(limits: &RpcLimits) -> Self {
        CallBuckets { rate: limits.calls_per_second, burst: limits.burst.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take `n` tokens from `peer`'s bucket at time `now`: true if it had them.
    pub fn take(&self, peer: Peer, n: u32, now: Instant) -> bool {
        if self.rate == u32::MAX {
            return true;
        }
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_PEERS && !buckets.contains_key(&peer) {
            self.forget_idle(&mut buckets, now);
        }
        let b = buckets.entry(peer).or_insert(Bucket { tokens: self.burst as f64, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate as f64).min(self.burst as f64);
        b.at = now;
        if b.tokens >= n as f64 {
            b.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    fn forget_idle(&self, buckets: &mut HashMap<Peer, Bucket>, now: Instant) {
        let full = |b: &Bucket| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate as f64 >= self.burst as f64;
        buckets.retain(|_, b| !full(b));
        if buckets.len() >= MAX_PEERS {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cutoff);
        }
    }

    #[cfg(test)]
    fn peers(&self) -> usize {
        self.buckets.lock().len()
    }
}

/// Open connections, in all and per peer.
pub struct Connections {
    max_total: u32,
    max_per_peer: u32,
    open: Mutex<(u32, HashMap<Peer, u32>)>,
}

/// One open connection's place; dropping it (the connection closed) frees the place.
pub struct ConnectionSlot {
    peer: Peer,
    of: Arc<Connections>,
}

impl Connections {
    pub fn new(max_total: u32, limits: &RpcLimits) -> Arc<Self> {
        Arc::new(Connections { max_total, max_per_peer: limits.connections_per_peer, open: Mutex::new((0, HashMap::new())) })
    }

    /// A place for a new connection from `peer`, or `None` at either limit.
    pub fn open(self: &Arc<Self>, peer: Peer) -> Option<ConnectionSlot> {
        let mut open = self.open.lock();
        let (total, per_peer) = &mut *open;
        let mine = per_peer.get(&peer).copied().unwrap_or(0);
        if *total >= self.max_total || mine >= self.max_per_peer {
            return None;
        }
        *total += 1;
        per_peer.insert(peer, mine + 1);
        Some(ConnectionSlot { peer, of: Arc::clone(self) })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock();
        let (total, per_peer) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> Peer {
        Peer::of(s.parse().expect("ip"))
    }

    #[test]
    fn ipv6_peers_are_slash_64s_and_never_equal_ipv4() {
        assert_eq!(ip("2001:db8::1"), ip("2001:db8::ffff:1"));
        assert_ne!(ip("2001:db8::1"), ip("2001:db8:0:1::1"));
        assert_eq!(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
        assert_ne!(ip("::"), ip("0.0.0.0"));
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let b = CallBuckets::new(&RpcLimits { calls_per_second: 10, burst: 20, connections_per_peer: 1 });
        let (p, q, t0) = (ip("10.0.0.1"), ip("10.0.0.2"), Instant::now());
        assert!(b.take(p, 20, t0));
        assert!(!b.take(p, 1, t0), "the burst is spent");
        assert!(b.take(q, 1, t0), "another peer has its own bucket");
        assert!(!b.take(p, 6, t0 + Duration::from_millis(500)), "5 tokens back after 0.5 s, not 6");
        assert!(b.take(p, 5, t0 + Duration::from_millis(500)));
        assert!(b.take(p, 20, t0 + Duration::from_secs(60)), "refills to the burst");
        assert!(!b.take(p, 1, t0 + Duration::from_secs(60)), "and no further");
        assert!(!b.take(p, 21, t0 + Duration::from_secs(600)), "a batch over the burst never fits");
    }

    #[test]
    fn remembered_peers_are_bounded() {
        let b = CallBuckets::new(&RpcLimits { calls_per_second: 1, burst: 10, connections_per_peer: 1 });
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 100) {
            assert!(b.take(Peer(i as u128), 5, t0));
        }
        assert!(b.peers() <= MAX_PEERS);
    }

    #[test]
    fn connections_are_limited_per_peer_and_in_all_and_freed_on_drop() {
        let c = Connections::new(3, &RpcLimits { connections_per_peer: 2, ..RpcLimits::default() });
        let (p, q, r) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let a = c.open(p).expect("first");
        let _b = c.open(p).expect("second");
        assert!(c.open(p).is_none(), "a third from one peer");
        let _d = c.open(q).expect("another peer");
        assert!(c.open(r).is_none(), "the total");
        drop(a);
        assert!(c.open(r).is_some(), "freed");
    }
}
