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

/// Serde for variable-length byte strings as hex (at most `MAX_HEX_BYTES`, checked before
/// decoding: genesis is a file from outside).
pub mod serde_hex_vec {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub const MAX_HEX_BYTES: usize = 1 << 20;

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > 2 * MAX_HEX_BYTES + 2 {
            return Err(D::Error::custom(format!("over {MAX_HEX_BYTES} bytes")));
        }
        super::from_hex(&s).ok_or_else(|| D::Error::custom("expected hex digits"))
    }
}
