//! Tap batches as Merkle trees that OpenZeppelin's `MerkleProof` verifies:
//! leaves are double-hashed (so a leaf can never pass as an inner node) and
//! pairs are hashed in sorted order, so a proof is just the list of siblings.

use alloy_primitives::{keccak256, B256, U256};

/// Leaf of one tap, as `Clearing.tapLeaf` computes it:
/// `keccak256(bytes.concat(keccak256(abi.encode(scanId, ticketId, operatorId, at))))`
/// with `scanId = keccak256(bytes(scan id text))`.
pub fn tap_leaf(scan_id: &str, ticket_id: u64, operator_id: u32, at: u64) -> B256 {
    let mut enc = Vec::with_capacity(128);
    enc.extend_from_slice(keccak256(scan_id.as_bytes()).as_slice());
    enc.extend_from_slice(&U256::from(ticket_id).to_be_bytes::<32>());
    enc.extend_from_slice(&U256::from(operator_id).to_be_bytes::<32>());
    enc.extend_from_slice(&U256::from(at).to_be_bytes::<32>());
    keccak256(keccak256(enc))
}

fn hash_pair(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

/// A Merkle tree over leaves in the given order; an odd node moves up unpaired.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<B256>>,
}

impl MerkleTree {
    /// Builds the tree; `None` for no leaves.
    pub fn new(leaves: Vec<B256>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().expect("non-empty");
            let next = prev.chunks(2).map(|c| if c.len() == 2 { hash_pair(c[0], c[1]) } else { c[0] }).collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    /// The root.
    pub fn root(&self) -> B256 {
        self.levels.last().expect("non-empty")[0]
    }

    /// Siblings from leaf `index` up to the root.
    pub fn proof(&self, mut index: usize) -> Option<Vec<B256>> {
        if index >= self.levels[0].len() {
            return None;
        }
        let mut proof = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            if sibling < level.len() {
                proof.push(level[sibling]);
            }
            index /= 2;
        }
        Some(proof)
    }
}

/// Checks a proof the way `MerkleProof.verify` does.
pub fn verify(proof: &[B256], root: B256, leaf: B256) -> bool {
    proof.iter().fold(leaf, |acc, p| hash_pair(acc, *p)) == root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_and_tampering_fails() {
        for n in 1..40u64 {
            let leaves: Vec<B256> = (0..n).map(|i| tap_leaf(&format!("s{i}"), i, 1, 1_000 + i)).collect();
            let tree = MerkleTree::new(leaves.clone()).unwrap();
            for (i, leaf) in leaves.iter().enumerate() {
                let proof = tree.proof(i).unwrap();
                assert!(verify(&proof, tree.root(), *leaf), "n={n} i={i}");
                assert!(!verify(&proof, tree.root(), tap_leaf("forged", i as u64, 1, 1)));
            }
            assert!(tree.proof(n as usize).is_none());
        }
        assert!(MerkleTree::new(vec![]).is_none());
    }

    #[test]
    fn every_field_changes_the_leaf() {
        // Equality with Solidity's abi.encode is checked against Clearing.tapLeaf in the e2e test.
        let base = tap_leaf("a", 1, 2, 3);
        assert_ne!(base, tap_leaf("b", 1, 2, 3));
        assert_ne!(base, tap_leaf("a", 9, 2, 3));
        assert_ne!(base, tap_leaf("a", 1, 9, 3));
        assert_ne!(base, tap_leaf("a", 1, 2, 9));
    }
}
