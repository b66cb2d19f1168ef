//! MODEL_HASH and HASH_COMPARE.

/// BLAKE3 key-derivation context that domain-separates model hashes from every other hash.
pub const MODEL_HASH_CONTEXT: &str = "aivm 2026-11 model hash v1";

/// MODEL_HASH: `BLAKE3-derive_key(MODEL_HASH_CONTEXT, bytes)`, 32 bytes.
pub fn model_hash(bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key(MODEL_HASH_CONTEXT, bytes)
}

/// HASH_COMPARE: does `BLAKE3(data)` equal `expected`? Compared in constant time.
pub fn hash_compare(data: &[u8], expected: &[u8; 32]) -> bool {
    blake3::hash(data) == blake3::Hash::from_bytes(*expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_hash_is_domain_separated() {
        assert_ne!(model_hash(b"abc"), *blake3::hash(b"abc").as_bytes());
        assert_eq!(model_hash(b"abc"), model_hash(b"abc"));
        assert!(hash_compare(b"abc", blake3::hash(b"abc").as_bytes()));
        assert!(!hash_compare(b"abd", blake3::hash(b"abc").as_bytes()));
    }
}
