//! Hex for keys and hashes in the node's files.

pub fn to_hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// `None` unless `s` is an even number of hex digits (an `0x` prefix is allowed).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

/// Serde for fixed-size byte arrays as hex strings.
pub mod serde_hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        super::from_hex(&s).and_then(|v| v.try_into().ok()).ok_or_else(|| D::Error::custom(format!("expected {} hex digits", 2 * N)))
    }
}
