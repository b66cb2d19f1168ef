//! The audit end to end on tiny models: honest receipts pass, every kind of cheat is caught.

use super::freivalds::{digits, weight};
use super::*;
use crate::commit::{run_committed, tokens_root, GemmCommit, GemmData, InferenceReceipt, Trace};
use crate::engine::{Engine, GemmKind, Options};
use crate::merkle;
use crate::quant::Scale;
use crate::sku::{tests::tiny, Arch};
use aivm_tensor::matmul::SimdPath;
use std::sync::Arc;

fn setup(arch: Arch) -> (Engine, InferenceReceipt, Trace) {
    let e = Engine::new(Arc::new(tiny(arch, 21)), Options::default()).unwrap();
    let (r, t) = run_committed(&e, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
    (e, r, t)
}

const ALL: Challenge = Challenge { seed: [7; 32], gemms: 0, rows: 3 };

fn check(e: &Engine, r: &InferenceReceipt, t: &Trace, ch: &Challenge) -> Result<(), AuditError> {
    let resp = respond(&e.sku, r, t, ch)?;
    check_response(&e.sku, &e.sku_hash, r, ch, &resp)
}

/// Rebuild the receipt's root after tampering with the trace (a cheating worker commits
/// to what it claims).
fn recommit(r: &mut InferenceReceipt, t: &mut Trace) {
    t.recommit();
    r.gemm_root = merkle::root(&t.leaves());
    r.gemm_count = t.gemms().len() as u64;
}

#[test]
fn honest_receipts_verify() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let (e, r, t) = setup(arch);
        assert_eq!(schedule(&e.sku, &r).unwrap().len(), t.gemms().len());
        check(&e, &r, &t, &ALL).unwrap();
        for seed in 0..5u8 {
            check(&e, &r, &t, &Challenge { seed: [seed; 32], gemms: 7, rows: 2 }).unwrap();
        }
    }
}

/// The committed run hashes a KV cache's rows once and keeps the tree (`commit::Committer`);
/// every root must still be the written definition's, recomputed from the data.
#[test]
fn incremental_cache_roots_are_the_definition() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let (_, r, t) = setup(arch);
        let decode_attention = (0..t.gemms().len()).filter(|&i| t.gemms()[i].commit.step > 1 && t.data(i).unwrap().rhs.is_some()).count();
        assert!(decode_attention > 0);
        for i in 0..t.gemms().len() {
            let g = t.data(i).unwrap();
            assert_eq!(g.commit, g.recommit(), "{:?}", g.commit.id());
        }
        // The trace file carries every operand: read back, each GEMM is whole.
        let back = Trace::from_bytes(&t.to_bytes()).unwrap();
        assert!((0..t.gemms().len()).all(|i| back.gemms()[i] == *t.data(i).unwrap()));
        assert_eq!(r.gemm_root, merkle::root(&t.leaves()));
    }
}

/// Recomputing a GEMM (the check for `m < 8`) accepts every honest GEMM of a run, of every
/// kind and orientation, and refuses each with one element changed.
#[test]
fn recomputation_accepts_honest_gemms_and_refuses_changed_ones() {
    use super::freivalds::{recompute, weight};
    let (e, _, t) = setup(Arch::Qwen2);
    let mut checked = 0;
    for i in 0..t.gemms().len() {
        let g = t.data(i).unwrap().into_owned();
        let id = g.commit.id().unwrap();
        let (b, transposed) = match (weight(&e.sku, &id), &g.rhs) {
            (Some(w), None) => (w.q.clone(), true),
            (None, Some(rhs)) => (rhs.clone(), id.kind == GemmKind::Scores),
            _ => unreachable!(),
        };
        assert!(recompute(&g, &b, transposed), "gemm {i}");
        let mut bad = g.clone();
        let last = bad.y.len() - 1;
        bad.y[last] = bad.y[last].wrapping_add(1);
        assert!(!recompute(&bad, &b, transposed), "gemm {i} changed");
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn one_flipped_element_is_caught() {
    let (e, mut r, mut t) = setup(Arch::Llama);
    for idx in [0usize, 5, t.gemms().len() / 2, t.gemms().len() - 1] {
        let (mut r2, mut t2) = (r.clone(), t.clone());
        t2.gemms_mut()[idx].y[0] ^= 1;
        recommit(&mut r2, &mut t2);
        assert!(matches!(check(&e, &r2, &t2, &ALL), Err(AuditError::Freivalds { .. })), "gemm {idx}");
    }
    // Without recommitting, the opening no longer matches the receipt.
    t.gemms_mut()[3].y[1] += 1;
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::Commitment { .. })));
    r.gemm_count += 1;
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::Receipt(_) | AuditError::Response(_))));
}

/// An honest answer to one challenge, checked against another, is told apart from a wrong
/// answer: its openings are not the selected ones (the chain refuses it instead of slashing).
/// Against its own challenge it passes.
#[test]
fn an_answer_to_another_challenge_is_told_apart() {
    let (e, r, t) = setup(Arch::Llama);
    let asked = |seed: u8| Challenge { seed: [seed; 32], gemms: 4, rows: 1 };
    let resp = respond(&e.sku, &r, &t, &asked(1)).unwrap();
    assert_eq!(check_response(&e.sku, &e.sku_hash, &r, &asked(1), &resp), Ok(()));
    let mut told_apart = 0;
    for seed in 2..12 {
        match check_response(&e.sku, &e.sku_hash, &r, &asked(seed), &resp) {
            Err(AuditError::OtherChallenge(_)) => told_apart += 1,
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    assert_eq!(told_apart, 10);
    // Only the row chain differs (every GEMM opened): told apart by its first opening.
    let every = |seed: u8| Challenge { seed: [seed; 32], gemms: 0, rows: 1 };
    let resp = respond(&e.sku, &r, &t, &every(1)).unwrap();
    let other = (2..40).find(|&s| respond(&e.sku, &r, &t, &every(s)).unwrap().rows[0].index != resp.rows[0].index).expect("another row");
    assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &every(other), &resp), Err(AuditError::OtherChallenge(_))));
}

#[test]
fn permuted_rows_are_caught() {
    let (e, mut r, mut t) = setup(Arch::Qwen2);
    let g = t.gemms_mut().iter_mut().find(|g| g.commit.kind == GemmKind::Gate as u8 && g.commit.m > 1).unwrap();
    let n = g.commit.n as usize;
    let (a, b) = g.y.split_at_mut(n);
    a.swap_with_slice(&mut b[..n]);
    recommit(&mut r, &mut t);
    assert!(check(&e, &r, &t, &ALL).is_err());
}

#[test]
fn skipped_layer_is_caught() {
    // The worker runs a model with one layer fewer (skips the last layer) and claims the
    // full model: its trace lacks that layer's GEMMs.
    let (e, _, _) = setup(Arch::Llama);
    let mut cut = (*e.sku).clone();
    cut.layers.pop();
    cut.config.layers -= 1;
    let lazy = Engine::new(Arc::new(cut), Options::default()).unwrap();
    let (mut r, t) = run_committed(&lazy, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
    r.sku = e.sku_hash;
    assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &ALL, &Response::default()), Err(AuditError::Receipt(_))));
    // Padding the trace with the previous layer's GEMMs relabelled keeps the count but
    // fails Freivalds (other weights) or the row chain.
    let mut t2 = Trace::default();
    let last = lazy.sku.config.layers; // the missing layer index
    for i in 0..t.gemms().len() {
        let g = t.data(i).unwrap().into_owned();
        let is_last_layer = g.commit.layer == last - 1;
        let logits = g.commit.kind == GemmKind::Logits as u8;
        if logits {
            let mut l = g.clone();
            l.commit.layer = last + 1;
            t2.push(l);
        } else {
            t2.push(g.clone());
        }
        // After the real last layer's down GEMM, append copies as "layer `last`".
        if is_last_layer && g.commit.kind == GemmKind::Down as u8 {
            let step = g.commit.step;
            let copies: Vec<GemmData> = (0..t.gemms().len())
                .map(|j| t.data(j).unwrap().into_owned())
                .filter(|h| h.commit.step == step && h.commit.layer == last - 1)
                .map(|mut h| {
                    h.commit.layer = last;
                    h
                })
                .collect();
            copies.into_iter().for_each(|h| t2.push(h));
        }
    }
    let mut r2 = r.clone();
    recommit(&mut r2, &mut t2);
    assert!(check(&e, &r2, &t2, &ALL).is_err());
}

#[test]
fn different_model_is_caught() {
    let (e, _, _) = setup(Arch::Llama);
    let other = Engine::new(Arc::new(tiny(Arch::Llama, 22)), Options::default()).unwrap();
    let (mut r, t) = run_committed(&other, &[vec![3, 9, 27, 4], vec![50, 8]], 5).unwrap();
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::WrongModel(_))));
    r.sku = e.sku_hash; // lie about the model
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::Freivalds { .. })));
}

#[test]
fn fast_check_agrees_with_the_reference() {
    let (e, r, t) = setup(Arch::Qwen2);
    let ch = Challenge { seed: [5; 32], gemms: 0, rows: 0 };
    let rh = r.hash();
    for (i, g) in t.gemms().iter().enumerate().filter(|(_, g)| GemmKind::from_code(g.commit.kind).is_some_and(GemmKind::is_weight)).step_by(3) {
        let id = g.commit.id().unwrap();
        let w = weight(&e.sku, &id).unwrap();
        let fc = FastCheck::new(w);
        let rs = vectors(&ch, &rh, i as u64, w.rows);
        let m = g.commit.m as usize;
        for &path in SimdPath::available() {
            assert!(fc.check(&g.x, &g.y, m, &rs, path, 2));
            let mut y = g.y.clone();
            let mid = y.len() / 2;
            y[mid] = y[mid].wrapping_add(1 << 20);
            assert!(!fc.check(&g.x, &y, m, &rs, path, 2));
            assert!(!freivalds(&GemmData { y: y.clone(), ..g.clone() }, &w.q, true, &rs));
            // Extreme accumulators are handled exactly too.
            y[0] = i32::MIN;
            assert_eq!(fc.check(&g.x, &y, m, &rs, path, 1), freivalds(&GemmData { y, ..g.clone() }, &w.q, true, &rs));
        }
    }
    for v in [0i64, 1, -1, 127, 128, -129, i32::MIN as i64, i32::MAX as i64, 1 << 38] {
        let d = digits(v);
        assert_eq!(d.iter().enumerate().map(|(b, &x)| (x as i64) << (8 * b)).sum::<i64>(), v);
    }
    // Four digits hold exactly the range the check's four-plane form takes.
    for v in [-128 * 16_843_009i64, 127 * 16_843_009, i32::MIN as i64, i32::MIN as i64 + 1] {
        assert_eq!(digits(v)[4], 0, "{v}");
    }
    assert_ne!(digits(127 * 16_843_009 + 1)[4], 0);
    assert_ne!(digits(-128 * 16_843_009 - 1)[4], 0);
}

#[test]
fn single_gemm_check_and_encoding() {
    let (e, r, t) = setup(Arch::Llama);
    let ch = Challenge { seed: [3; 32], gemms: 0, rows: 0 };
    let resp = respond(&e.sku, &r, &t, &ch).unwrap();
    let rh = r.hash();
    for (index, data) in resp.gemms.iter().step_by(7) {
        let og = &OpenGemm { index: *index, data: data.clone(), proof: merkle::prove(&t.leaves(), *index as usize).unwrap() };
        let back = OpenGemm::decode(&og.encode()).unwrap();
        assert_eq!(&back, og);
        assert!(check_opening(&e.sku, &rh, &r.gemm_root, r.gemm_count, &ch.seed, og));
        let mut bad = og.clone();
        bad.data.y[0] = bad.data.y[0].wrapping_add(1);
        bad.data.commit = bad.data.recommit();
        assert!(!check_opening(&e.sku, &rh, &r.gemm_root, r.gemm_count, &ch.seed, &bad));
        let enc = og.encode();
        for cut in [0, 10, enc.len() / 2, enc.len() - 1] {
            assert!(OpenGemm::decode(&enc[..cut]).is_none());
        }
    }
    // A hostile opening whose commitment is self-consistent (the caller supplies the root)
    // but has empty or huge dimensions: rejected without panicking or allocating.
    for (m, k, n) in [(1u32, 0u32, 1u32), (0, 1, 1), (1, 1, 0), (0, 0, u32::MAX)] {
        let mut data = GemmData {
            commit: GemmCommit {
                step: 0,
                layer: 0,
                kind: GemmKind::Scores as u8,
                seq: 0,
                head: 0,
                m,
                k,
                n,
                y_bytes: 1,
                x_root: [0; 32],
                y_root: [0; 32],
                rhs_root: [0; 32],
            },
            x: vec![0; (m * k) as usize],
            x_scales: vec![Scale::ZERO; m as usize],
            y: vec![0; (m as u64 * n as u64).min(1 << 20) as usize],
            rhs: Some(vec![0; (k as u64 * n as u64).min(1 << 20) as usize]),
        };
        data.commit = data.recommit();
        let og = OpenGemm { index: 0, proof: vec![], data };
        let root = og.data.commit.leaf();
        assert!(!check_opening(&e.sku, &rh, &root, 1, &ch.seed, &og), "{m}x{k}x{n}");
    }
}

#[test]
fn wrong_output_token_is_caught() {
    let (e, mut r, t) = setup(Arch::Llama);
    let s = r.outputs.iter().position(|o| !o.is_empty()).unwrap();
    r.outputs[s][0] = (r.outputs[s][0] + 1) % e.sku.config.vocab;
    r.output_root = tokens_root(&r.outputs);
    // Every row chain over step 0's last rows must notice; use a challenge with many rows.
    let ch = Challenge { seed: [1; 32], gemms: 1, rows: 40 };
    assert!(check(&e, &r, &t, &ch).is_err());
}

#[test]
fn responses_round_trip_and_reject_garbage() {
    let (e, r, t) = setup(Arch::Llama);
    let resp = respond(&e.sku, &r, &t, &Challenge { seed: [3; 32], gemms: 4, rows: 2 }).unwrap();
    assert!(!resp.gemms.is_empty() && !resp.rows.is_empty());
    let b = resp.encode();
    assert_eq!(Response::decode(&b).as_ref(), Some(&resp));
    for cut in (0..b.len()).step_by(61) {
        assert_eq!(Response::decode(&b[..cut]), None, "cut {cut}");
    }
    let mut extra = b.clone();
    extra.push(0);
    assert_eq!(Response::decode(&extra), None);
    // A count of 2³² − 1 GEMMs in five bytes is refused without allocating them.
    assert_eq!(Response::decode(&[0xff, 0xff, 0xff, 0xff, 0]), None);
    // A multiproof may be longer than one proof (a real model's run opens ~150 GEMMs, ~150
    // siblings): it decodes (and fails the check, here, as siblings that lead nowhere).
    let mut long = resp.clone();
    long.proof.extend(std::iter::repeat_n([7; 32], 80));
    assert_eq!(Response::decode(&long.encode()).as_ref(), Some(&long));
    assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &Challenge { seed: [3; 32], gemms: 4, rows: 2 }, &long), Err(AuditError::Commitment { .. })));
    // One encoding per answer: a commitment nobody uses, commitments out of order or twice,
    // a row of a GEMM not in the table, padding that is not zero — all refused.
    let mut unused = resp.clone();
    let spare = (0..r.gemm_count).find(|i| unused.commit(*i).is_none()).unwrap();
    unused.commits.push((spare, t.gemms()[spare as usize].commit));
    unused.commits.sort_by_key(|c| c.0);
    assert_eq!(Response::decode(&unused.encode()), None, "unused commitment");
    let mut swapped = resp.clone();
    swapped.commits.swap(0, 1);
    assert_eq!(Response::decode(&swapped.encode()), None, "out of order");
    let mut twice = resp.clone();
    twice.commits[1] = twice.commits[0];
    assert_eq!(Response::decode(&twice.encode()), None, "twice");
    let mut stray = resp.clone();
    stray.rows[0].index = spare;
    assert_eq!(Response::decode(&stray.encode()), None, "row outside the table");
    let pads: Vec<usize> = {
        // Where each row's padding is: between its length field and its bytes.
        let mut at = Vec::new();
        let mut p = 4 + resp.commits.len() * (8 + 132) + 4 + 32 * resp.proof.len() + 4;
        p += resp
            .gemms
            .iter()
            .map(|(_, g)| {
                8 + {
                    let mut b = Vec::new();
                    g.encode_operands_to(&mut b);
                    b.len()
                }
            })
            .sum::<usize>()
            + 4;
        for o in &resp.rows {
            p += 8 + 1 + 4 + 4;
            if !p.is_multiple_of(4) {
                at.push(p);
            }
            p = p.next_multiple_of(4) + o.bytes.len() + 4 + 32 * o.row_proof.len();
        }
        assert_eq!(p, b.len());
        at
    };
    assert!(!pads.is_empty());
    let mut dirty = b.clone();
    dirty[pads[0]] = 1;
    assert_eq!(Response::decode(&dirty), None, "padding");
}

/// The multiproof binds every opened GEMM: a changed sibling, a commitment moved to another
/// index, or a GEMM's data whose commitment is not the table's all fail as commitment errors
/// (never another verdict), and the honest answer passes.
#[test]
fn the_multiproof_binds_every_opening() {
    let (e, r, t) = setup(Arch::Llama);
    let ch = Challenge { seed: [9; 32], gemms: 3, rows: 1 };
    let resp = respond(&e.sku, &r, &t, &ch).unwrap();
    assert!(check_response(&e.sku, &e.sku_hash, &r, &ch, &resp).is_ok());
    for k in 0..resp.proof.len() {
        let mut bad = resp.clone();
        bad.proof[k][0] ^= 1;
        assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &ch, &bad), Err(AuditError::Commitment { .. })), "sibling {k}");
    }
    let mut short = resp.clone();
    short.proof.pop();
    assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &ch, &short), Err(AuditError::Commitment { .. })));
    let mut other = resp.clone();
    let data = &mut other.gemms[0].1;
    let next = t.gemms().iter().position(|g| g.commit.id().map(|id| id.kind) == data.commit.id().map(|id| id.kind) && g.commit != data.commit).unwrap();
    *data = t.data(next).unwrap().into_owned();
    assert!(matches!(check_response(&e.sku, &e.sku_hash, &r, &ch, &other), Err(AuditError::Commitment { .. })));
}

/// Fault injection (issue 16's detection target, `spec/verification.md` "Soundness"): 10 000
/// single faults, each a different seed, GEMM and position — one output element changed by a
/// random nonzero amount, one input element changed, or two output rows swapped — committed to
/// consistently (a cheater commits to what it claims) and opened for FREIVALDS_VERIFY. Every
/// one must be caught; the bound says each escapes with probability ≤ 2⁻⁶⁴.
#[test]
fn ten_thousand_injected_faults_are_all_caught() {
    let (e, r, t) = setup(Arch::Qwen2);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let (mut caught, mut honest_passed) = (0, 0);
    for fault in 0..10_000u32 {
        let idx = rnd(t.gemms().len());
        let mut g = t.data(idx).unwrap().into_owned();
        let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
        match fault % 3 {
            0 => {
                let at = rnd(m * n);
                g.y[at] = g.y[at].wrapping_add(1 + rnd(1 << 20) as i32);
            }
            1 => {
                let at = rnd(m * k);
                g.x[at] = g.x[at].wrapping_add(1 + rnd(255) as i8);
            }
            _ => {
                let a = rnd(m);
                let b = (a + 1 + rnd(m.max(2) - 1)) % m.max(1);
                if a == b || g.y[a * n..(a + 1) * n] == g.y[b * n..(b + 1) * n] {
                    // A one-row GEMM (or equal rows) cannot be permuted: change a value instead.
                    g.y[a * n] = g.y[a * n].wrapping_add(1);
                } else {
                    for j in 0..n {
                        g.y.swap(a * n + j, b * n + j);
                    }
                }
            }
        }
        g.commit = g.recommit();
        let mut leaves = t.leaves();
        leaves[idx] = g.commit.leaf();
        let root = merkle::root(&leaves);
        let proof = merkle::prove(&leaves, idx).unwrap();
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&fault.to_le_bytes());
        let rh = InferenceReceipt { gemm_root: root, ..r.clone() }.hash();
        let og = OpenGemm { index: idx as u64, data: g, proof };
        if !check_opening(&e.sku, &rh, &root, t.gemms().len() as u64, &seed, &og) {
            caught += 1;
        }
        // The honest opening of the same GEMM under the same seed passes.
        if fault % 100 == 0 {
            let honest = OpenGemm { index: idx as u64, data: t.data(idx).unwrap().into_owned(), proof: merkle::prove(&t.leaves(), idx).unwrap() };
            honest_passed += check_opening(&e.sku, &r.hash(), &r.gemm_root, r.gemm_count, &seed, &honest) as u32;
        }
    }
    assert_eq!(caught, 10_000, "missed {} of 10 000 injected faults", 10_000 - caught);
    assert_eq!(honest_passed, 100);
}

/// A dispute opens the chain of one step's last row with its weight products: an honest run
/// passes at every step; a corrupted element of the last row of any weight GEMM of the
/// disputed step is always caught (its product, or the chain after it), and so is a claimed
/// output token that the step's logits do not give.
#[test]
fn disputed_steps_are_decided() {
    let e = Engine::new(Arc::new(tiny(Arch::Llama, 21)), Options::default()).unwrap();
    let (r, t) = run_committed(&e, &[vec![3, 9, 27, 4]], 5).unwrap();
    let steps = r.outputs[0].len() as u32;
    let seed = [4; 32];
    let sched = schedule(&e.sku, &r).unwrap();
    for s in 0..steps {
        let resp = respond_step(&e.sku, &r, &t, s).unwrap();
        let bound = step_answer_bytes(&e.sku, &r, &sched, s).unwrap();
        assert!(resp.encode().len() as u64 <= bound, "step {s}: {} bytes over the bound {bound}", resp.encode().len());
        check_step(&e.sku, &e.sku_hash, &r, &seed, s, &resp).unwrap_or_else(|err| panic!("honest step {s}: {err}"));
        assert!(check_step(&e.sku, &e.sku_hash, &r, &seed, s, &Response::default()).is_err(), "an empty answer fails");
        // Every weight GEMM of the step corrupted in turn, in the disputed row: caught.
        for (i, g) in t.gemms().iter().enumerate().filter(|(_, g)| g.commit.step == s && g.commit.id().is_some_and(|id| id.kind.is_weight())) {
            let (m, n) = (g.commit.m as usize, g.commit.n as usize);
            let (mut r2, mut t2) = (r.clone(), t.clone());
            t2.gemms_mut()[i].y[(m - 1) * n + (i % n)] ^= 1;
            recommit(&mut r2, &mut t2);
            let resp = respond_step(&e.sku, &r2, &t2, s).unwrap();
            assert!(check_step(&e.sku, &e.sku_hash, &r2, &seed, s, &resp).is_err(), "step {s} gemm {i}");
        }
    }
    // A different last token, committed to consistently: its step's chain refuses it.
    let mut r2 = r.clone();
    let last = r2.outputs[0].len() - 1;
    r2.outputs[0][last] = (r2.outputs[0][last] + 1) % e.sku.config.vocab;
    r2.output_root = tokens_root(&r2.outputs);
    let resp = respond_step(&e.sku, &r2, &t, last as u32).unwrap();
    assert!(check_step(&e.sku, &e.sku_hash, &r2, &seed, last as u32, &resp).is_err());
}

/// One preparation (`R·W` for a weight and a set of vectors) serves every GEMM with that
/// weight: each honest one passes with it, each with a changed output fails, exactly as when
/// prepared alone.
#[test]
fn a_prepared_check_is_shared_by_the_gemms_of_one_weight() {
    let (e, r, t) = setup(Arch::Qwen2);
    let ch = Challenge { seed: [9; 32], gemms: 0, rows: 0 };
    let rh = r.hash();
    let gemms = t.gemms();
    // The same weight (layer 0's gate) at every step of the run.
    let same: Vec<_> = gemms.iter().filter(|g| g.commit.layer == 0 && GemmKind::from_code(g.commit.kind) == Some(GemmKind::Gate)).collect();
    assert!(same.len() >= 2, "the run has several steps");
    let w = weight(&e.sku, &same[0].commit.id().unwrap()).unwrap();
    let fc = FastCheck::new(w);
    let rs = vectors(&ch, &rh, 0, w.rows);
    for &path in SimdPath::available() {
        let p = fc.prepare(&rs, path, 2).unwrap();
        for g in &same {
            let m = g.commit.m as usize;
            assert!(fc.check_prepared(&p, &g.x, &g.y, m, 2));
            let mut y = g.y.clone();
            let last = y.len() - 1;
            y[last] = y[last].wrapping_sub(3);
            assert!(!fc.check_prepared(&p, &g.x, &y, m, 2));
            assert!(!fc.check(&g.x, &y, m, &rs, path, 1));
        }
    }
    assert!(fc.prepare(&[vec![0; w.rows + 1]], SimdPath::Scalar, 1).is_none(), "a vector of the wrong length");
}

/// `Y·Rᵀ` on 16-bit halves equals the plain i64 sums: ragged widths (the scalar tail), rows
/// long enough to widen the accumulators mid-row, and values at both ends of i32 (the rows
/// the split cannot hold fall back to the plain form).
#[test]
fn y_times_r_on_16_bit_halves_is_exact() {
    use super::freivalds::YTimesR;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 32) as u32
    };
    for (m, n) in [(3, 1), (2, 31), (2, 32), (3, 33), (2, 63), (2, 64), (3, 65), (2, 8160), (1, 8192 + 17), (2, 20_000), (1, 131_071)] {
        let mut rs: Vec<Vec<i8>> = (0..8).map(|_| (0..n).map(|_| next() as i8).collect()).collect();
        // One vector at the extreme: every lane's byte products as large as they get.
        rs[7].iter_mut().for_each(|r| *r = i8::MIN);
        let mut y: Vec<i32> = (0..m * n).map(|_| next() as i32 >> (next() % 24)).collect();
        for (i, e) in [i32::MIN, i32::MAX, i32::MAX - (1 << 15), i32::MAX - (1 << 15) + 1, -1, 0x7fff_8000, i32::MIN + 1].into_iter().enumerate() {
            let len = y.len();
            if i < len && (i % 2 == 0 || n > 1000) {
                y[(i * 7919) % len] = e;
            }
        }
        let plain = YTimesR::new(&rs, n, SimdPath::Scalar).apply(&y, m);
        for &path in SimdPath::available() {
            for byte_planes in [true, false] {
                assert_eq!(YTimesR::preferring(&rs, n, path, byte_planes).apply(&y, m), plain, "m {m} n {n} {path:?} {byte_planes}");
            }
        }
        // Honest-sized values only: no row falls back. Rows within 24 bits, at both ends of
        // that range, take the byte-plane kernel's three-plane loop.
        let small: Vec<i32> = (0..m * n).map(|_| next() as i32 >> 5).collect();
        let plain = YTimesR::new(&rs, n, SimdPath::Scalar).apply(&small, m);
        assert_eq!(YTimesR::new(&rs, n, SimdPath::detect()).apply(&small, m), plain, "m {m} n {n}");
        let mut narrow: Vec<i32> = (0..m * n).map(|_| next() as i32 >> 9).collect();
        for (i, e) in [(1 << 23) - 1, -(1 << 23), -1, 0].into_iter().enumerate() {
            let len = narrow.len();
            narrow[(i * 104_729) % len] = e;
        }
        let plain = YTimesR::new(&rs, n, SimdPath::Scalar).apply(&narrow, m);
        assert_eq!(YTimesR::new(&rs, n, SimdPath::detect()).apply(&narrow, m), plain, "m {m} n {n} narrow");
    }
}

/// Prompt-step weight GEMMs of 8 rows or more are checked on the packed kernel
/// (`FastCheck::of`, built once per weight and kept with it): an honest run passes and a
/// flipped element in any of them is caught, as by the reference sums.
#[test]
fn long_prompts_are_checked_on_the_packed_kernel() {
    let e = Engine::new(Arc::new(tiny(Arch::Llama, 21)), Options::default()).unwrap();
    let prompt: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 64).collect();
    let (r, t) = run_committed(&e, &[prompt], 2).unwrap();
    assert!(check(&e, &r, &t, &ALL).is_ok());
    let w = &e.sku.layers[0].wq;
    assert!(std::ptr::eq(FastCheck::of(w).unwrap(), FastCheck::of(w).unwrap()), "packed once and kept");
    assert!(format!("{:?}", w.clone().derived).contains("empty"), "a clone does not carry it");
    let heavy: Vec<usize> =
        t.gemms().iter().enumerate().filter(|(_, g)| g.commit.m >= 8 && g.commit.id().is_some_and(|id| id.kind.is_weight())).map(|(i, _)| i).collect();
    assert!(heavy.len() >= 7, "{} packed-path GEMMs", heavy.len());
    for idx in heavy {
        let (mut r2, mut t2) = (r.clone(), t.clone());
        let last = t2.gemms()[idx].y.len() - 1;
        t2.gemms_mut()[idx].y[last] ^= 4;
        recommit(&mut r2, &mut t2);
        assert!(matches!(check(&e, &r2, &t2, &ALL), Err(AuditError::Freivalds { .. })), "gemm {idx}");
    }
}

/// An honest worker is never slashed: 1 000 challenges under random seeds (a sample of GEMMs
/// and a row chain each) of an honest run all pass, on the CPU and on OpenCL (whose trace is
/// the CPU's, bit for bit). Without an OpenCL platform the device half is skipped, unless
/// `AIVM_REQUIRE_OPENCL=1` (as `make test` sets) makes that an error.
#[test]
fn a_thousand_honest_challenges_pass_on_every_backend() {
    let mut backends: Vec<Options> = vec![Options::default()];
    if let Some(ocl) = aivm_backend::OpenClBackend::open_or_skip("honest challenges on OpenCL", &Default::default()).unwrap() {
        backends.push(Options::on(Arc::new(ocl)));
    }
    let sku = Arc::new(tiny(Arch::Llama, 21));
    let mut receipts = Vec::new();
    for opts in backends {
        let e = Engine::new(Arc::clone(&sku), opts).unwrap();
        let (r, t) = run_committed(&e, &[vec![3, 9, 27, 4, 1, 2, 5, 8, 13, 21], vec![50, 8]], 6).unwrap();
        for i in 0..1_000u32 {
            let ch = Challenge { seed: *blake3::hash(&i.to_le_bytes()).as_bytes(), gemms: 4, rows: 1 };
            check(&e, &r, &t, &ch).unwrap_or_else(|err| panic!("{:?}: honest challenge {i} failed: {err}", e.opts));
        }
        receipts.push(r);
    }
    assert!(receipts.windows(2).all(|w| w[0] == w[1]), "the backends commit to the same run");
}

/// Timing, not a check (`cargo test --release -p aivm-model --lib -- y_times_r_speed
/// --ignored --nocapture`): `Y·Rᵀ` on gate's Y at Llama-3-8B, T = 512, on every form this
/// CPU has, one thread, best of three (BENCHMARKS.md).
#[test]
#[ignore]
fn y_times_r_speed() {
    use super::freivalds::YTimesR;
    let (m, n) = (512, 14336);
    let rs: Vec<Vec<i8>> = (0..8).map(|v| (0..n).map(|j| ((j * 31 + v * 7) % 251) as i8).collect()).collect();
    // Elements past 24 bits (four byte planes), then within them (three), as honest GEMMs are.
    for span in [60_000_000i64, 16_000_000] {
        let y: Vec<i32> = (0..m * n).map(|i| ((i as i64 * 2_654_435_761) % span - span / 2) as i32).collect();
        let plain = YTimesR::new(&rs, n, SimdPath::Scalar).apply(&y, m);
        for &path in SimdPath::available() {
            for byte_planes in [true, false] {
                let f = YTimesR::preferring(&rs, n, path, byte_planes);
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    assert_eq!(f.apply(&y, m), plain, "{path:?}");
                    best = best.min(t.elapsed().as_secs_f64());
                }
                println!("|y| < {}: {path:?} (byte planes allowed: {byte_planes}): {:.1} ms", span / 2, best * 1e3);
            }
        }
    }
}

/// A worker that feeds a layer a wrong activation row but computes every product from it
/// honestly passes Freivalds on every GEMM; the row chain's recomputed inputs catch it, at
/// each place an activation enters a weight GEMM (a mutation that accepts any opened
/// activation row fails this).
#[test]
fn wrong_activations_are_caught_by_the_row_chain() {
    for (kind, what) in
        [(GemmKind::Q, "attention input"), (GemmKind::Gate, "feed-forward input"), (GemmKind::Down, "down input"), (GemmKind::Logits, "final norm")]
    {
        let (e, mut r, mut t) = setup(Arch::Llama);
        for g in t.gemms_mut().iter_mut().filter(|g| g.commit.kind == kind as u8) {
            let (m, k, n) = (g.commit.m as usize, g.commit.k as usize, g.commit.n as usize);
            let w = weight(&e.sku, &g.commit.id().unwrap()).unwrap();
            for i in 0..m {
                g.x[i * k] = g.x[i * k].wrapping_add(1);
                for j in 0..n {
                    g.y[i * n + j] = (0..k).map(|p| g.x[i * k + p] as i32 * w.q[j * k + p] as i32).sum();
                }
            }
        }
        recommit(&mut r, &mut t);
        match check(&e, &r, &t, &ALL) {
            Err(AuditError::Chain { what: w, .. }) => assert!(w.contains(what), "{kind:?}: {w}"),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

/// The X rows a chain derives (q, gate, down and logits inputs) travel as proofs alone: the
/// verifier hashes what it derived. The same row with its bytes is another encoding of the
/// answer, and refused; every other row still carries its bytes.
#[test]
fn derived_rows_travel_without_their_bytes() {
    let (e, r, t) = setup(Arch::Llama);
    let ch = Challenge { seed: [5; 32], gemms: 2, rows: 1 };
    let resp = respond(&e.sku, &r, &t, &ch).unwrap();
    let kind = |o: &OpenRow<'_>| GemmKind::from_code(t.gemms()[o.index as usize].commit.kind).unwrap();
    for o in &resp.rows {
        assert_eq!(o.bytes.is_empty(), super::schedule::derived(kind(o), o.is_y), "{:?} y={}", kind(o), o.is_y);
    }
    check_response(&e.sku, &e.sku_hash, &r, &ch, &resp).unwrap();
    let at = resp.rows.iter().position(|o| kind(o) == GemmKind::Gate && !o.is_y).unwrap();
    let mut sent = resp.clone();
    let (g, row) = (&t.gemms()[sent.rows[at].index as usize], sent.rows[at].row as usize);
    let k = g.commit.k as usize;
    sent.rows[at].bytes = crate::commit::x_row_bytes(g.x_scales[row], &g.x[row * k..(row + 1) * k]).into();
    match check_response(&e.sku, &e.sku_hash, &r, &ch, &sent) {
        Err(AuditError::Chain { what, .. }) => assert!(what.contains("not derived"), "{what}"),
        other => panic!("{other:?}"),
    }
}

/// Y is committed at its fewest bytes an element, so a GEMM has one commitment: the same Y
/// committed four bytes wide (roots and leaf consistent, as a worker would build them) is
/// refused as a commitment when opened, and an element cut to fit a narrower width is a
/// wrong product.
#[test]
fn y_is_committed_at_its_fewest_bytes() {
    let (e, mut r, mut t) = setup(Arch::Llama);
    let i = t.gemms().iter().position(|g| g.commit.kind == GemmKind::Gate as u8 && g.commit.y_bytes < 4).unwrap();
    let g = &mut t.gemms_mut()[i];
    let n = g.commit.n as usize;
    g.commit.y_bytes = 4;
    g.commit.y_root = crate::commit::y_root(&g.y, n, 4);
    r.gemm_root = merkle::root(&t.leaves());
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::Commitment { .. })));

    let (e, mut r, mut t) = setup(Arch::Llama);
    let g = &mut t.gemms_mut()[i];
    g.y[0] = 1 << 23;
    let (n, w) = (g.commit.n as usize, g.commit.y_bytes);
    // Committed at the old width: the element reads back as −2²³.
    g.commit.y_root = crate::commit::y_root(&g.y, n, w);
    r.gemm_root = merkle::root(&t.leaves());
    assert!(matches!(check(&e, &r, &t, &ALL), Err(AuditError::Freivalds { .. } | AuditError::Commitment { .. })));
}

/// `G = R·W` takes four digit planes unless an entry is at the top of the i32 range, which
/// only a weight of ~2^17 rows of extreme entries reaches: both forms accept the honest
/// product and refuse a changed one (a five-plane `G` cut to four planes would not).
#[test]
fn digit_planes_cover_the_extremes_of_g() {
    use crate::sku::{Derived, QMatrix};
    let (n, k, m) = (131_071usize, 2usize, 8usize);
    for (w_entry, r_entry) in [(-128i8, -128i8), (1, 3)] {
        let w = QMatrix { rows: n, cols: k, group: k, q: vec![w_entry; n * k], scales: vec![Scale::ZERO; n], derived: Derived::default() };
        let fc = FastCheck::new(&w);
        let rs: Vec<Vec<i8>> = (0..8).map(|v| (0..n).map(|j| if v == 0 || j % 3 == 0 { r_entry } else { (j % 7) as i8 - 3 }).collect()).collect();
        let x: Vec<i8> = (0..m * k).map(|i| (i % 5) as i8 - 2).collect();
        let row_sums: Vec<i32> = (0..m).map(|i| (0..k).map(|p| x[i * k + p] as i32 * w_entry as i32).sum()).collect();
        let y: Vec<i32> = row_sums.iter().flat_map(|&s| std::iter::repeat_n(s, n)).collect();
        for &path in SimdPath::available() {
            let p = fc.prepare(&rs, path, 2).unwrap();
            assert!(fc.check_prepared(&p, &x, &y, m, 2), "{w_entry} {path:?}");
            let mut bad = y.clone();
            bad[n + 5] += 1;
            assert!(!fc.check_prepared(&p, &x, &bad, m, 2), "{w_entry} {path:?}");
        }
    }
}

/// A weight GEMM's check is priced by the packed kernel's terms (`spec/gas.md`, fitted by
/// gas-bench); fewer rows than vectors keep the recomputation's price; an attention GEMM keeps
/// the reference form's; overflow is out of gas (`None`).
#[test]
fn weight_checks_are_priced_by_the_packed_kernel() {
    use super::freivalds::UNITS_PER_WEIGHT_CHECK;
    assert_eq!(weight_check_work(256, 576, 1536), Some(576 * 1536 / 8 + 256 * 576 / 2 + 256 * 1536 + UNITS_PER_WEIGHT_CHECK));
    assert_eq!(weight_check_work(8, 1536, 576), Some(1536 * 576 / 8 + 8 * 1536 / 2 + 8 * 576 + UNITS_PER_WEIGHT_CHECK));
    assert_eq!(weight_check_work(1, 576, 49_152), check_work(1, 576, 49_152));
    assert_eq!(weight_check_work(u64::MAX, 2, 2), None);
    let (_, _, t) = setup(Arch::Llama);
    for g in t.gemms() {
        let (m, k, n) = (g.commit.m as u64, g.commit.k as u64, g.commit.n as u64);
        let rows = 2 * m * UNITS_PER_HASHED_ROW;
        let weight = GemmKind::from_code(g.commit.kind).is_some_and(GemmKind::is_weight);
        let want = if weight { weight_check_work(m, k, n) } else { check_work(m, k, n) };
        assert_eq!(opening_work(&g.commit, false), want.map(|w| w + rows), "{:?}", g.commit.id());
    }
}
