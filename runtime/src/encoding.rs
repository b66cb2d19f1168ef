//! CBOR (RFC 8949) through serde: the encoding of transactions, receipts and block records.

use serde::Serialize;

/// Encode `v`. Writing plain serde data into a `Vec` cannot fail.
pub fn cbor<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap_or_else(|e| unreachable!("CBOR into a Vec: {e}"));
    out
}
