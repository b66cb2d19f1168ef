//! Argument and result encoding: CBOR (RFC 8949) through serde. Compact, and self-describing,
//! so tools such as `aivm call --args JSON` can translate without the contract's types.

use alloc::vec::Vec;
use serde::{de::DeserializeOwned, Serialize};

/// Encode a value. Encoding into a `Vec` cannot fail for the types serde derives.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// Decode a value; empty input decodes as CBOR `null` (so `()` arguments need no bytes).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, alloc::string::String> {
    let bytes = if bytes.is_empty() { &[0xf6][..] } else { bytes };
    ciborium::from_reader(bytes).map_err(|e| alloc::format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_empty_unit() {
        let v: (u64, alloc::string::String) = (7, "x".into());
        assert_eq!(decode::<(u64, alloc::string::String)>(&encode(&v)).unwrap(), v);
        decode::<()>(&[]).unwrap();
        assert!(decode::<u64>(&[0xff, 0x00]).is_err());
    }
}
