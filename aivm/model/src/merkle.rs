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
