//! `Bytes32`: addresses and hashes, written as 64 hex digits in arguments and results.

use alloc::string::String;
use core::fmt;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 32 bytes: an address or a hash. Serialises as a lowercase hex string; also accepts a
/// 32-byte CBOR byte string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes32(pub [u8; 32]);

/// Accounts and contracts are identified by 32 bytes.
pub type Address = Bytes32;

impl Bytes32 {
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.iter().flat_map(|b| [HEX[(b >> 4) as usize] as char, HEX[(b & 15) as usize] as char]).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            let nib = |c: u8| (c as char).to_digit(16);
            out[i] = (nib(pair[0])? * 16 + nib(pair[1])?) as u8;
        }
        Some(Bytes32(out))
    }
}

impl Serialize for Bytes32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Bytes32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 hex digits or 32 bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes32, E> {
                Bytes32::from_hex(v).ok_or_else(|| E::custom("expected 64 hex digits"))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes32, E> {
                v.try_into().map(Bytes32).map_err(|_| E::custom("expected 32 bytes"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let b = Bytes32([0xab; 32]);
        assert_eq!(Bytes32::from_hex(&b.to_hex()), Some(b));
        assert_eq!(crate::codec::decode::<Bytes32>(&crate::codec::encode(&b)).unwrap(), b);
        assert!(Bytes32::from_hex("zz").is_none());
        assert!(Bytes32::from_hex(&"g".repeat(64)).is_none());
    }
}
