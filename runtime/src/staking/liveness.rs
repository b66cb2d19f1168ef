//! Liveness and jailing for downtime (`spec/consensus.md`, "Jailing for downtime"). Every
//! block carries the consensus view it was proposed in (its engine epoch is its height's);
//! the views of that epoch between its parent's and its own produced no block on the chain,
//! so their leaders missed their turn. With threshold
//! certificates the chain cannot see who voted, but it can see who led: each block records,
//! for the epoch it is in, one slot led by its own view's leader and one slot missed by the
//! leader of every view skipped since the last block. At an epoch's end a validator that held
//! at least `downtime_min_slots` slots and missed more than `downtime_max_missed_bps` of them
//! is jailed for `jail_epochs` epochs: it is left out of the sets of those epochs.
//!
//! The leader of a view is the consensus engine's (the node passes its round-robin schedule);
//! the runtime only counts.

use super::state::{JailParams, Liveness, StakingKey, StakingParams};
use crate::encoding::cbor;
use crate::state::{Address, StateKey, StateValue};
use std::collections::BTreeMap;

/// Most skipped views one block charges (a longer gap charges its first views only: every
/// leader of a round-robin set is charged long before this).
pub const MAX_SKIPPED_VIEWS: u64 = 4_096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LivenessError {
    #[error("block view {view} does not follow the last block's view {last} in epoch {epoch}")]
    ViewNotIncreasing { epoch: u64, view: u64, last: u64 },
}

/// The last block's (engine epoch, view); (0, 0) at genesis.
fn read_round(v: Option<StateValue>) -> (u64, u64) {
    match v {
        Some(StateValue::Bytes(b)) if b.len() == 16 => {
            let word = |i: usize| b[i..i + 8].try_into().map(u64::from_le_bytes).unwrap_or(0);
            (word(0), word(8))
        }
        _ => (0, 0),
    }
}

fn liveness(read: &mut impl FnMut(&StateKey) -> Option<StateValue>, epoch: u64, id: &Address) -> Liveness {
    match read(&StakingKey::Liveness(epoch, id).state_key()) {
        Some(StateValue::Bytes(b)) => ciborium::from_reader(&b[..]).unwrap_or_default(),
        _ => Liveness::default(),
    }
}

/// The writes of the block at `height` proposed in `view`: slots led and missed in the
/// block's epoch (`height / epoch_length`), and the new last round. Empty on a chain without
/// staking. Within an epoch the view must increase from block to block; the engine starts
/// each epoch's views again, so the first block of an epoch charges only the views before it
/// in that epoch. `leader(epoch, view)` is the engine's leader.
pub fn view_writes(
    height: u64,
    view: u64,
    leader: impl Fn(u64, u64) -> Address,
    mut read: impl FnMut(&StateKey) -> Option<StateValue>,
) -> Result<Vec<(StateKey, StateValue)>, LivenessError> {
    let Some(p) = super::epoch::params(&mut read) else { return Ok(Vec::new()) };
    let epoch = height.checked_div(p.epoch_length).unwrap_or(0);
    let (last_epoch, last_view) = read_round(read(&StakingKey::LastView.state_key()));
    let last = if last_epoch == epoch { last_view } else { 0 };
    if view <= last || epoch < last_epoch {
        return Err(LivenessError::ViewNotIncreasing { epoch, view, last });
    }
    let mut counts: BTreeMap<Address, Liveness> = BTreeMap::new();
    let skipped_to = view.min(last.saturating_add(1).saturating_add(MAX_SKIPPED_VIEWS));
    for v in last.saturating_add(1)..skipped_to {
        let id = leader(epoch, v);
        let c = counts.entry(id).or_insert_with(|| liveness(&mut read, epoch, &id));
        c.missed = c.missed.saturating_add(1);
    }
    let id = leader(epoch, view);
    let c = counts.entry(id).or_insert_with(|| liveness(&mut read, epoch, &id));
    c.led = c.led.saturating_add(1);
    let mut out: Vec<(StateKey, StateValue)> =
        counts.into_iter().map(|(id, c)| (StakingKey::Liveness(epoch, &id).state_key(), StateValue::Bytes(cbor(&c).into()))).collect();
    out.push((StakingKey::LastView.state_key(), StateValue::Bytes([epoch.to_le_bytes(), view.to_le_bytes()].concat().into())));
    Ok(out)
}

/// Whether `c` is downtime under `j`.
pub fn is_down(c: &Liveness, j: &JailParams) -> bool {
    let slots = c.led.saturating_add(c.missed);
    slots >= j.downtime_min_slots && u128::from(c.missed) * 10_000 > u128::from(slots) * u128::from(j.downtime_max_missed_bps)
}

/// The validators of `ending`'s set that were down in it, with the epoch they are jailed until:
/// out of the set recorded now (epoch `ending + 1 + SET_LAG`) and the `jail_epochs` − 1 after it.
pub fn jailed(p: &StakingParams, ending: u64, mut read: impl FnMut(&StateKey) -> Option<StateValue>) -> Vec<(Address, u64)> {
    let Some(set) = super::epoch::epoch_set(ending, &mut read) else { return Vec::new() };
    set.validators
        .iter()
        .map(|id| **id)
        .filter(|id| is_down(&liveness(&mut read, ending, id), &p.jail))
        .map(|id| (id, ending.saturating_add(1 + super::epoch::SET_LAG).saturating_add(p.jail.jail_epochs)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn skipped_views_charge_their_leaders_and_the_view_must_increase() {
        let p = StakingParams { min_stake: 1, unbonding_blocks: 5, max_validators: 10, active_set_size: 4, epoch_length: 10, jail: JailParams::default() };
        let vals: Vec<super::super::epoch::GenesisValidator> = (1..=4u8).map(|i| ([i; 32], vec![i; 48], 10, String::new())).collect();
        let mut state: HashMap<StateKey, StateValue> = super::super::epoch::genesis_entries(&p, &vals).into_iter().collect();
        let leader = |_: u64, v: u64| [(v % 4) as u8 + 1; 32];
        // Block 1 in view 1 (led by [2]); block 2 in view 4: views 2 and 3 skipped ([3], [4]).
        for (h, v) in [(1, 1), (2, 4)] {
            let w = view_writes(h, v, leader, |k| state.get(k).cloned()).expect("writes");
            state.extend(w);
        }
        let l = |s: &HashMap<StateKey, StateValue>, id: u8| liveness(&mut |k: &StateKey| s.get(k).cloned(), 0, &[id; 32]);
        assert_eq!((l(&state, 2).led, l(&state, 3).missed, l(&state, 4).missed, l(&state, 1).led), (1, 1, 1, 1));
        assert_eq!(view_writes(3, 4, leader, |k| state.get(k).cloned()), Err(LivenessError::ViewNotIncreasing { epoch: 0, view: 4, last: 4 }));
        // [4] misses again: 2 slots, both missed: down; [2] led its one slot: not down.
        state.extend(view_writes(3, 8, leader, |k| state.get(k).cloned()).expect("writes"));
        assert!(is_down(&l(&state, 4), &p.jail) && !is_down(&l(&state, 2), &p.jail));
        let j = jailed(&p, 0, |k| state.get(k).cloned());
        let until = 2 + super::super::epoch::SET_LAG;
        assert_eq!(
            j.iter().map(|(id, until)| (id[0], *until)).collect::<Vec<_>>(),
            vec![(3, until), (4, until)],
            "[3] missed views 2 and 6, [4] views 3 and 7"
        );
        // A gap beyond the cap charges its first views only.
        let w = view_writes(4, 9 + 10 * MAX_SKIPPED_VIEWS, leader, |k| state.get(k).cloned()).expect("writes");
        assert!(w.len() <= 5);
        state.extend(w);
        // The next epoch starts its views again: view 1 of epoch 1 is valid, and charges
        // nothing before it; going back to epoch 0 is not.
        let w = view_writes(10, 1, leader, |k| state.get(k).cloned()).expect("a new epoch");
        state.extend(w);
        assert_eq!(liveness(&mut |k: &StateKey| state.get(k).cloned(), 1, &[2; 32]).led, 1);
        assert!(view_writes(9, 100 + 10 * MAX_SKIPPED_VIEWS, leader, |k| state.get(k).cloned()).is_err(), "an earlier epoch");
    }
}
