//! The evidence pool: proven validator faults waiting for this node's proposals.
//!
//! Evidence is verified once, when it arrives (its signatures, against the active set), and
//! kept by the offence it proves — `(validator, view)`, the unit slashing punishes once — so
//! the same fault reported twice, in another vote order or as a notarize and a finalize pair of
//! one view, is one entry. Entries expire after [`EVIDENCE_TTL_BLOCKS`] committed blocks, leave
//! when a committed block punishes their offence, and the pool holds at most
//! [`MAX_POOLED_EVIDENCE`] (the newest views kept). Choosing evidence for a proposal reads only
//! state (the slashing markers), never a signature.

use crate::block::{MAX_BLOCK_EVIDENCE, MAX_EVIDENCE_BYTES};
use crate::staking::Offense;
use std::collections::{BTreeMap, HashSet};

/// Most pooled offences.
pub const MAX_POOLED_EVIDENCE: usize = 1024;
/// Committed blocks after which unincluded evidence is dropped.
pub const EVIDENCE_TTL_BLOCKS: u64 = 10_000;
/// Most bytes of evidence one proposal carries (counted like the block decoder counts them);
/// the rest of the block's byte budget is for transactions.
pub const MAX_BLOCK_EVIDENCE_BYTES: usize = MAX_BLOCK_EVIDENCE * MAX_EVIDENCE_BYTES;

/// Checks slashing evidence (the consensus module knows its format and signatures).
/// Who signs in an engine epoch, as a state records it (`execution::read_engine`).
pub type EngineLookup<'a> = &'a dyn Fn(u64) -> Option<aivm_runtime::staking::EngineEpoch>;

pub trait EvidenceCheck: Send + Sync {
    /// The offence `evidence` proves, if its signatures verify against the signers of the
    /// offence's epoch (`engine` looks them up).
    fn offense(&self, evidence: &[u8], engine: EngineLookup<'_>) -> Option<Offense>;
}

struct Entry {
    bytes: Vec<u8>,
    /// Committed height when it arrived.
    since: u64,
}

/// Why reported evidence was not pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("evidence over {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge,
    #[error("evidence does not verify")]
    Invalid,
    #[error("offence already pooled")]
    Known,
    #[error("pool full of newer offences")]
    Full,
}

#[derive(Default)]
pub struct EvidencePool {
    by_offense: BTreeMap<Offense, Entry>,
}

impl EvidencePool {
    pub fn len(&self) -> usize {
        self.by_offense.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_offense.is_empty()
    }

    /// Verify `bytes` with `check` and keep it under its offence.
    pub fn add(&mut self, bytes: Vec<u8>, check: &dyn EvidenceCheck, engine: EngineLookup<'_>, height: u64) -> Result<Offense, PoolError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(PoolError::TooLarge);
        }
        let offense = check.offense(&bytes, engine).ok_or(PoolError::Invalid)?;
        if self.by_offense.contains_key(&offense) {
            return Err(PoolError::Known);
        }
        if self.by_offense.len() >= MAX_POOLED_EVIDENCE {
            // Keep the newest views: the oldest are the likeliest to be punished already.
            let oldest = self.by_offense.keys().min_by_key(|o| o.view).copied();
            match oldest {
                Some(o) if o.view < offense.view => {
                    self.by_offense.remove(&o);
                }
                _ => return Err(PoolError::Full),
            }
        }
        self.by_offense.insert(offense, Entry { bytes, since: height });
        Ok(offense)
    }

    /// The offence `bytes` prove, if these exact bytes are pooled: they were verified when they
    /// arrived, so a block carrying them needs no second signature check.
    pub fn pooled(&self, bytes: &[u8]) -> Option<Offense> {
        self.by_offense.iter().find(|(_, e)| e.bytes == bytes).map(|(o, _)| *o)
    }

    /// Up to [`MAX_BLOCK_EVIDENCE`] items within [`MAX_BLOCK_EVIDENCE_BYTES`], skipping offences
    /// in `included` (uncommitted ancestors) and those `punished` says the state already marks.
    pub fn pick(&self, included: &HashSet<Offense>, punished: impl Fn(&Offense) -> bool) -> Vec<(Offense, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (o, e) in &self.by_offense {
            if out.len() >= MAX_BLOCK_EVIDENCE {
                break;
            }
            if included.contains(o) || bytes + e.bytes.len() > MAX_BLOCK_EVIDENCE_BYTES || punished(o) {
                continue;
            }
            bytes += e.bytes.len();
            out.push((*o, e.bytes.clone()));
        }
        out
    }

    /// After a commit at `height`: drop the offences it punished, those the state marks as
    /// punished, and those older than the TTL.
    pub fn on_committed(&mut self, height: u64, punished: impl Fn(&Offense) -> bool) {
        self.by_offense.retain(|o, e| height.saturating_sub(e.since) <= EVIDENCE_TTL_BLOCKS && !punished(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test evidence: `[id byte, view byte, signature-ok byte, padding...]`.
    struct Fake;
    impl EvidenceCheck for Fake {
        fn offense(&self, e: &[u8], _: crate::evidence::EngineLookup<'_>) -> Option<Offense> {
            match e {
                [id, view, 1, ..] => Some(Offense { identity: [*id; 32], view: *view as u64 }),
                _ => None,
            }
        }
    }

    #[test]
    fn keyed_by_offence_verified_on_entry() {
        let mut p = EvidencePool::default();
        assert_eq!(p.add(vec![1, 5, 0], &Fake, &|_| None, 0), Err(PoolError::Invalid), "bad signature never pooled");
        assert_eq!(p.add(vec![1, 5, 1, 0xaa], &Fake, &|_| None, 0), Ok(Offense { identity: [1; 32], view: 5 }));
        // The same offence in other bytes (votes swapped, or the finalize pair of the view).
        assert_eq!(p.add(vec![1, 5, 1, 0xbb], &Fake, &|_| None, 0), Err(PoolError::Known));
        assert_eq!(p.add(vec![1, 6, 1], &Fake, &|_| None, 0).map(|o| o.view), Ok(6));
        assert_eq!(p.add(vec![0; MAX_EVIDENCE_BYTES + 1], &Fake, &|_| None, 0), Err(PoolError::TooLarge));
        assert_eq!(p.len(), 2);
        assert_eq!(p.pooled(&[1, 5, 1, 0xaa]).map(|o| o.view), Some(5));
        assert_eq!(p.pooled(&[1, 5, 1, 0xbb]), None, "other bytes are checked again");
    }

    #[test]
    fn pick_skips_included_and_punished_and_respects_budgets() {
        let mut p = EvidencePool::default();
        for v in 0..200u8 {
            let mut e = vec![7, v, 1];
            e.resize(MAX_EVIDENCE_BYTES, 0);
            p.add(e, &Fake, &|_| None, 0).unwrap();
        }
        let picked = p.pick(&HashSet::new(), |_| false);
        assert_eq!(picked.len(), MAX_BLOCK_EVIDENCE);
        assert!(picked.iter().map(|(_, b)| b.len()).sum::<usize>() <= MAX_BLOCK_EVIDENCE_BYTES);
        let included: HashSet<Offense> = picked.iter().map(|(o, _)| *o).collect();
        let next = p.pick(&included, |o| o.view % 2 == 0);
        assert!(next.iter().all(|(o, _)| !included.contains(o) && o.view % 2 == 1));
    }

    #[test]
    fn cap_keeps_newest_and_entries_expire() {
        let mut p = EvidencePool::default();
        for v in 0..MAX_POOLED_EVIDENCE as u64 {
            p.by_offense.insert(Offense { identity: [1; 32], view: v + 10 }, Entry { bytes: vec![], since: 0 });
        }
        assert_eq!(p.add(vec![2, 3, 1], &Fake, &|_| None, 0), Err(PoolError::Full), "older than everything pooled");
        assert!(p.add(vec![2, 250, 1], &Fake, &|_| None, 0).is_ok(), "newer: the oldest is evicted");
        assert_eq!(p.len(), MAX_POOLED_EVIDENCE);
        p.on_committed(EVIDENCE_TTL_BLOCKS, |o| o.view == 11);
        assert_eq!(p.len(), MAX_POOLED_EVIDENCE - 1, "punished offence dropped");
        p.on_committed(EVIDENCE_TTL_BLOCKS + 1, |_| false);
        assert!(p.is_empty(), "all expired");
    }
}
