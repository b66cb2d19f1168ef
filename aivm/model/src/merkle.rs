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

/// The root and every leaf's inclusion proof at once, in `O(n log n)` hashes (calling
/// [`prove`] for each leaf would cost `O(n²)`).
pub fn prove_all(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    match leaves.len() {
        0 | 1 => (root(leaves), leaves.iter().map(|_| Vec::new()).collect()),
        n => {
            let k = split(n as u64) as usize;
            let (lr, mut lp) = prove_all(&leaves[..k]);
            let (rr, mut rp) = prove_all(&leaves[k..]);
            lp.iter_mut().for_each(|p| p.push(rr));
            rp.iter_mut().for_each(|p| p.push(lr));
            lp.append(&mut rp);
            (node_hash(&lr, &rr), lp)
        }
    }
}

/// Verify that `leaf` (already hashed) sits at `index` in a tree of `size` leaves with `root`.
/// Follows RFC 9162 §2.1.3.2; any malformed combination simply returns false.
pub fn verify(root_hash: &Hash, leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> bool {
    matches!(walk(leaf, index, size, proof, |_, _, _| false), Walk::Root(r) if r == *root_hash)
}

/// Where [`walk`] ended.
enum Walk {
    /// Every sibling consumed: the root this proof gives.
    Root(Hash),
    /// `known` said a node on the way already leads to the root.
    Known,
    /// Out of range, or a proof of the wrong length.
    Malformed,
}

/// RFC 9162 §2.1.3.2's walk from `leaf` at `index` up through `proof`, shared by [`verify`]
/// and [`ProofCache`]. Before sibling `i` it asks `known(i, (levels walked, position),
/// node)` whether the node computed so far is known to lead to the root; yes ends the walk.
fn walk(leaf: &Hash, index: u64, size: u64, proof: &[Hash], mut known: impl FnMut(usize, (u32, u64), &Hash) -> bool) -> Walk {
    if index >= size {
        return Walk::Malformed;
    }
    let (mut fn_, mut sn, mut lvl) = (index, size - 1, 0u32);
    let mut r = *leaf;
    for (i, p) in proof.iter().enumerate() {
        if known(i, (lvl, fn_), &r) {
            return Walk::Known;
        }
        if sn == 0 {
            return Walk::Malformed;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                    lvl += 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
        lvl += 1;
    }
    if sn == 0 {
        Walk::Root(r)
    } else {
        Walk::Malformed
    }
}

/// Inclusion proofs checked against one tree, remembering the nodes each accepted proof
/// computed. An answer's openings sit close together in one tree (a row chain opens a GEMM's
/// `x` and `y` under one leaf, and its step's GEMMs are neighbours), so most of a later
/// proof's path was computed already: it stops at the first remembered node whose hash and
/// remaining proof are both the same, where [`verify`] would repeat the rest of the walk.
/// Every verdict equals [`verify`]'s on the same arguments.
pub struct ProofCache {
    root: Hash,
    size: u64,
    /// Accepted proofs, whose suffixes the remembered nodes point into.
    proofs: Vec<Vec<Hash>>,
    /// Node at (levels walked, position at that level) → its hash, and (proof, offset) of
    /// the siblings that took it to the root.
    known: std::collections::HashMap<(u32, u64), (Hash, usize, usize)>,
}

impl ProofCache {
    pub fn new(root: Hash, size: u64) -> Self {
        ProofCache { root, size, proofs: Vec::new(), known: Default::default() }
    }

    /// [`verify`] of `leaf` at `index` against this cache's tree.
    ///
    /// The walk's state after `i` siblings, (`fn_`, `sn`) with `lvl` shifts, depends only on
    /// `index`, the tree size and `i`; a node equal to a remembered one at the same
    /// (`lvl`, `fn_`) with the same remaining siblings would therefore walk exactly as the
    /// remembered proof did, to the root: the answer is `true` without the hashing. Any
    /// difference continues the plain walk.
    pub fn verify(&mut self, leaf: &Hash, index: u64, proof: &[Hash]) -> bool {
        let mut path: Vec<((u32, u64), Hash, usize)> = Vec::with_capacity(proof.len());
        let end = walk(leaf, index, self.size, proof, |i, at, node| {
            let hit = self.known_at(at, node, &proof[i..]);
            if !hit {
                path.push((at, *node, i));
            }
            hit
        });
        let ok = match end {
            Walk::Known => true,
            Walk::Root(r) => r == self.root,
            Walk::Malformed => false,
        };
        if ok {
            self.remember(&path, proof);
        }
        ok
    }

    fn known_at(&self, at: (u32, u64), node: &Hash, rest: &[Hash]) -> bool {
        match self.known.get(&at) {
            Some((h, p, off)) => h == node && self.proofs[*p].get(*off..) == Some(rest),
            None => false,
        }
    }

    fn remember(&mut self, path: &[((u32, u64), Hash, usize)], proof: &[Hash]) {
        if path.is_empty() {
            return;
        }
        let p = self.proofs.len();
        self.proofs.push(proof.to_vec());
        for &(at, h, off) in path {
            self.known.entry(at).or_insert((h, p, off));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache's verdicts equal `verify`'s, over every leaf of several tree sizes in a
    /// shuffled order, with the same leaf twice, and with wrong leaves, indices and proofs
    /// between the right ones (a wrong proof must not be remembered).
    #[test]
    fn proof_cache_agrees_with_verify() {
        for n in [1usize, 2, 3, 5, 8, 13, 31, 64, 100] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u32).to_le_bytes())).collect();
            let (r, proofs) = prove_all(&leaves);
            let mut cache = ProofCache::new(r, n as u64);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| (i * 7919) % n);
            for &i in order.iter().chain(order.iter().take(3)) {
                let (leaf, idx, p) = (leaves[i], i as u64, &proofs[i]);
                let wrong_leaf = leaf_hash(b"wrong");
                let other = (idx + 1) % n as u64;
                let mut bad = p.clone();
                if let Some(h) = bad.last_mut() {
                    h[0] ^= 1;
                }
                let cases: [(Hash, u64, &[Hash]); 5] =
                    [(wrong_leaf, idx, p), (leaf, other, p), (leaf, idx, &bad), (leaf, idx, &p[..p.len().saturating_sub(1)]), (leaf, idx, p)];
                for (l, at, pr) in cases {
                    assert_eq!(cache.verify(&l, at, pr), verify(&r, &l, at, n as u64, pr), "n={n} leaf {i} at {at}");
                }
                // A longer proof than the tree needs is refused by both.
                let mut long = p.clone();
                long.push(r);
                assert_eq!(cache.verify(&leaf, idx, &long), verify(&r, &leaf, idx, n as u64, &long));
            }
            assert!(!cache.verify(&leaves[0], n as u64, &[]));
        }
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
        for n in 0..=17usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let (r, proofs) = prove_all(&leaves);
            assert_eq!(r, root(&leaves));
            for (i, p) in proofs.iter().enumerate() {
                assert_eq!(Some(p.clone()), prove(&leaves, i), "n={n} i={i}");
            }
        }
    }
}
