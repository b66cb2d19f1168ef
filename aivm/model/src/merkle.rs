//! Binary Merkle trees over BLAKE3 in the RFC 6962 shape, for MERKLE_VERIFY and GEMM commitments.
//!
//! `leaf = BLAKE3(0x00 ‖ data)`, `node = BLAKE3(0x01 ‖ left ‖ right)`. A tree of `n` leaves
//! splits at the largest power of two below `n`, so every size has exactly one shape and an
//! inclusion proof is the list of sibling hashes from the leaf up.

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(data);
    *h.finalize().as_bytes()
}

pub fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Root of the tree over already-hashed leaves. The empty tree's root is `BLAKE3("")`.
///
/// Computed level by level: pairing neighbours and carrying an odd last node up unchanged
/// gives exactly the split-at-a-power-of-two shape (the left part of every split is a
/// complete subtree, so its pairs never straddle the split), and a level's nodes are hashed
/// sixteen at a time ([`crate::row_leaves`]). `tests` pins it to the recursive definition.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => leaves[0],
        _ => {
            let mut level = parents(leaves);
            while level.len() > 1 {
                level = parents(&level);
            }
            level[0]
        }
    }
}

/// The next level up: `node_hash` of each pair, an odd last node carried.
fn parents(level: &[Hash]) -> Vec<Hash> {
    let pairs = level.len() / 2;
    let mut up = crate::row_leaves::tagged(1, bytemuck::cast_slice(&level[..2 * pairs]), 64, 0, |_, _| {});
    if level.len() % 2 == 1 {
        up.push(level[level.len() - 1]);
    }
    up
}

/// A tree grown one leaf at a time: the roots of its complete subtrees, largest (leftmost)
/// first, which is all the RFC 6962 shape needs for the root. Appending costs `O(1)` hashes
/// amortised and the root `O(log n)`, where [`root`] over all leaves costs `O(n)`: a KV cache
/// committed at every decode step grows by a row per step.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    /// `(root, leaf count)` of each complete subtree; counts are distinct, decreasing powers
    /// of two (the binary digits of `len`).
    peaks: Vec<(Hash, u64)>,
    len: u64,
}

impl Frontier {
    /// Number of leaves appended.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append an already-hashed leaf.
    pub fn push(&mut self, leaf: Hash) {
        let (mut h, mut size) = (leaf, 1u64);
        while let Some(&(left, s)) = self.peaks.last() {
            if s != size {
                break;
            }
            self.peaks.pop();
            h = node_hash(&left, &h);
            size *= 2;
        }
        self.peaks.push((h, size));
        self.len += 1;
    }

    /// The root of the tree over every leaf pushed: equal to [`root`] over them. A tree of `n`
    /// leaves splits at the largest power of two below `n`, which is the leftmost peak, so
    /// the root folds the peaks from the right.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => root(&[]),
            Some(&(last, _)) => it.fold(last, |acc, (left, _)| node_hash(left, &acc)),
        }
    }
}

/// Inclusion proof (siblings, leaf level first) for leaf `index`.
pub fn prove(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    fn walk(l: &[Hash], i: usize, out: &mut Vec<Hash>) {
        if l.len() <= 1 {
            return;
        }
        let k = split(l.len() as u64) as usize;
        if i < k {
            walk(&l[..k], i, out);
            out.push(root(&l[k..]));
        } else {
            walk(&l[k..], i - k, out);
            out.push(root(&l[..k]));
        }
    }
    walk(leaves, index, &mut out);
    Some(out)
}

/// One proof for several leaves at once (a multiproof): the sibling hashes that take the
/// leaves at `indices` (ascending, distinct) to the root together, each shared node sent
/// once. Order: level by level from the leaves up, within a level left to right, the
/// sibling of every node the walk knows whose sibling it does not know (a level's odd last
/// node is carried up and needs none) — the order [`root_of_many`] consumes them in. `None`
/// for indices out of range, unsorted or repeated, or none at all.
///
/// A market answer's row chain opens ~150 GEMMs of one step, neighbours in the tree: their
/// separate proofs (~14 hashes each) repeated the upper path every time; together they need
/// a few hashes per layer.
pub fn prove_many(leaves: &[Hash], indices: &[u64]) -> Option<Vec<Hash>> {
    let size = leaves.len() as u64;
    if indices.is_empty() || !indices.windows(2).all(|w| w[0] < w[1]) || indices.last().is_some_and(|&i| i >= size) {
        return None;
    }
    let mut level = leaves.to_vec();
    let mut known: Vec<u64> = indices.to_vec();
    let mut proof = Vec::new();
    while level.len() > 1 {
        let n = level.len() as u64;
        let mut up = Vec::with_capacity(known.len());
        let mut i = 0;
        while i < known.len() {
            let pos = known[i];
            let pair_known = pos.is_multiple_of(2) && known.get(i + 1) == Some(&(pos + 1));
            if pos.is_multiple_of(2) && pos + 1 == n {
                // The odd last node: carried up.
            } else if !pair_known {
                proof.push(level[(pos ^ 1) as usize]);
            }
            up.push(pos / 2);
            i += if pair_known { 2 } else { 1 };
        }
        level = parents(&level);
        known = up;
    }
    Some(proof)
}

/// The root that `leaves` (`(index, hash)`, ascending, distinct) of a tree of `size` leaves
/// give with `proof` ([`prove_many`]'s order), or `None` if the indices are out of range,
/// unsorted or repeated, or the proof is too short or too long. The caller compares it with
/// the root it trusts.
pub fn root_of_many(size: u64, leaves: &[(u64, Hash)], proof: &[Hash]) -> Option<Hash> {
    if leaves.is_empty() || !leaves.windows(2).all(|w| w[0].0 < w[1].0) || leaves.last().is_some_and(|&(i, _)| i >= size) {
        return None;
    }
    let mut cur: Vec<(u64, Hash)> = leaves.to_vec();
    let mut siblings = proof.iter();
    let mut n = size;
    while n > 1 {
        // The level's parents: carried nodes as they are, pairs (left ‖ right) hashed
        // together afterwards, sixteen side by side (`parents`' hasher).
        let mut up: Vec<(u64, Option<Hash>)> = Vec::with_capacity(cur.len());
        let mut pairs: Vec<u8> = Vec::with_capacity(cur.len() * 64);
        let mut i = 0;
        while i < cur.len() {
            let (pos, h) = cur[i];
            let (left, right) = if pos.is_multiple_of(2) && pos + 1 == n {
                up.push((pos / 2, Some(h)));
                i += 1;
                continue;
            } else if pos.is_multiple_of(2) {
                match cur.get(i + 1) {
                    Some(&(next, r)) if next == pos + 1 => {
                        i += 1;
                        (h, r)
                    }
                    _ => (h, *siblings.next()?),
                }
            } else {
                (*siblings.next()?, h)
            };
            pairs.extend_from_slice(&left);
            pairs.extend_from_slice(&right);
            up.push((pos / 2, None));
            i += 1;
        }
        let mut hashed = crate::row_leaves::tagged(1, &pairs, 64, 0, |_, _| {}).into_iter();
        cur = up.into_iter().map(|(pos, carried)| Some((pos, carried.or_else(|| hashed.next())?))).collect::<Option<Vec<_>>>()?;
        n = n.div_ceil(2);
    }
    if siblings.next().is_some() {
        return None;
    }
    Some(cur[0].1)
}

/// Verify that `leaf` (already hashed) sits at `index` in a tree of `size` leaves with `root`.
/// Follows RFC 9162 §2.1.3.2; any malformed combination simply returns false.
pub fn verify(root_hash: &Hash, leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root_hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multiproof gives the tree's root for every subset of leaves of small trees (and
    /// random subsets of larger ones), and any change — a leaf, an index, a sibling, one
    /// sibling fewer or more, unsorted or repeated indices — gives another root or none.
    #[test]
    fn multiproofs_give_the_root_for_any_set_of_leaves() {
        let check = |n: usize, set: &[u64]| {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_le_bytes())).collect();
            let r = root(&leaves);
            let proof = prove_many(&leaves, set).unwrap();
            let opened: Vec<(u64, Hash)> = set.iter().map(|&i| (i, leaves[i as usize])).collect();
            assert_eq!(root_of_many(n as u64, &opened, &proof), Some(r), "n={n} set {set:?}");
            // No more siblings than separate proofs would send.
            assert!(proof.len() <= set.iter().map(|&i| prove(&leaves, i as usize).unwrap().len()).sum::<usize>());
            let mut bad = opened.clone();
            bad[0].1[0] ^= 1;
            assert_ne!(root_of_many(n as u64, &bad, &proof), Some(r));
            if let Some(free) = (0..n as u64).find(|i| !set.contains(i)) {
                let mut moved: Vec<(u64, Hash)> = opened.clone();
                moved[0].0 = free;
                moved.sort_by_key(|l| l.0);
                assert_ne!(root_of_many(n as u64, &moved, &proof), Some(r), "n={n} {set:?} moved to {free}");
            }
            for k in 0..proof.len() {
                let mut p = proof.clone();
                p[k][31] ^= 0x80;
                assert_ne!(root_of_many(n as u64, &opened, &p), Some(r));
            }
            if !proof.is_empty() {
                assert_eq!(root_of_many(n as u64, &opened, &proof[..proof.len() - 1]), None);
            }
            let mut long = proof.clone();
            long.push(r);
            assert_eq!(root_of_many(n as u64, &[], &proof), None);
            assert_eq!(root_of_many(n as u64, &opened, &long), None);
            if opened.len() > 1 {
                let mut swapped = opened.clone();
                swapped.swap(0, 1);
                assert_eq!(root_of_many(n as u64, &swapped, &proof), None);
                let mut twice = opened.clone();
                twice[1] = twice[0];
                assert_eq!(root_of_many(n as u64, &twice, &proof), None);
            }
            assert_eq!(root_of_many(n as u64, &[(n as u64, leaves[0])], &proof), None);
        };
        for n in 1..=12usize {
            for mask in 1u32..1 << n {
                let set: Vec<u64> = (0..n as u64).filter(|&i| mask >> i & 1 == 1).collect();
                check(n, &set);
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [13usize, 100, 257, 1000, 3128] {
            for _ in 0..12 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let set: Vec<u64> = (0..n as u64).filter(|i| (i.wrapping_mul(x) >> 59) == 0).collect();
                if !set.is_empty() {
                    check(n, &set);
                }
            }
        }
        assert_eq!(prove_many(&[leaf_hash(b"a")], &[]), None);
        assert_eq!(prove_many(&[leaf_hash(b"a")], &[1]), None);
    }

    #[test]
    fn proofs_verify_for_every_size_and_index() {
        for n in 1..=17usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let r = root(&leaves);
            for i in 0..n {
                let p = prove(&leaves, i).unwrap();
                assert!(verify(&r, &leaves[i], i as u64, n as u64, &p), "n={n} i={i}");
                // Wrong index, wrong size, wrong leaf, truncated proof: all rejected.
                assert!(!verify(&r, &leaves[i], (i as u64 + 1) % n as u64, n as u64, &p) || n == 1);
                assert!(!verify(&r, &leaf_hash(b"x"), i as u64, n as u64, &p));
                if !p.is_empty() {
                    assert!(!verify(&r, &leaves[i], i as u64, n as u64, &p[..p.len() - 1]));
                }
            }
        }
        assert!(!verify(&[0; 32], &[0; 32], 5, 3, &[]));
        fn recursive(l: &[Hash]) -> Hash {
            match l.len() {
                0 => *blake3::hash(b"").as_bytes(),
                1 => l[0],
                n => {
                    let k = split(n as u64) as usize;
                    node_hash(&recursive(&l[..k]), &recursive(&l[k..]))
                }
            }
        }
        for n in 0..=300usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_le_bytes())).collect();
            assert_eq!(root(&leaves), recursive(&leaves), "n={n}");
        }
        let mut f = Frontier::default();
        assert_eq!(f.root(), root(&[]));
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        for (n, l) in leaves.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.len(), n as u64 + 1);
            assert_eq!(f.root(), root(&leaves[..=n]), "n={}", n + 1);
        }
    }
}
