//! CBOR (RFC 8949) through serde: the encoding of transactions, receipts and block records.

use serde::Serialize;

/// Encode `v`. Writing plain serde data into a `Vec` cannot fail.
pub fn cbor<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap_or_else(|e| unreachable!("CBOR into a Vec: {e}"));
    out
}

/// Whether `v` encodes to exactly `bytes`: the encoding is compared as it is written, with
/// no copy of it made (a canonical-encoding check on a 1 MB transaction allocated and
/// compared a second megabyte), and stops at the first difference.
pub fn encodes_to<T: Serialize + ?Sized>(v: &T, bytes: &[u8]) -> bool {
    let mut w = Compare { want: bytes, at: 0 };
    ciborium::into_writer(v, &mut w).is_ok() && w.at == bytes.len()
}

/// A writer that compares what is written with `want` and fails on the first difference.
struct Compare<'a> {
    want: &'a [u8],
    at: usize,
}

impl std::io::Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.at.checked_add(buf.len()).filter(|&e| e <= self.want.len());
        match end {
            Some(end) if self.want[self.at..end] == *buf => {
                self.at = end;
                Ok(buf.len())
            }
            _ => Err(std::io::Error::other("differs")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_to_is_exact_equality_of_the_encoding() {
        let v = (7u64, serde_bytes::ByteBuf::from(vec![1u8; 3000]), "text".to_string());
        let bytes = cbor(&v);
        assert!(encodes_to(&v, &bytes));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!encodes_to(&v, &longer), "trailing bytes");
        assert!(!encodes_to(&v, &bytes[..bytes.len() - 1]), "short");
        for i in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert!(!encodes_to(&v, &changed), "byte {i}");
        }
        assert!(!encodes_to(&v, &[]));
    }
}
