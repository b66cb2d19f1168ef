//! JSON ⇄ CBOR for contract arguments and results.

use ciborium::Value as Cbor;
use serde_json::Value as Json;

/// Encode JSON arguments as the CBOR the SDK decodes.
pub fn json_to_cbor(v: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(v, &mut out);
    out
}

/// Render contract output as JSON: CBOR if it decodes, otherwise `{"hex": ...}`.
pub fn output_to_json(bytes: &[u8]) -> Json {
    if bytes.is_empty() {
        return Json::Null;
    }
    match ciborium::from_reader::<Cbor, _>(bytes) {
        Ok(v) => cbor_to_json(v),
        Err(_) => serde_json::json!({ "hex": hex(bytes) }),
    }
}

pub use aivm_node::hexbytes::{from_hex as unhex, to_hex as hex};

fn cbor_to_json(v: Cbor) -> Json {
    match v {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => {
            let i: i128 = i.into();
            if let Ok(u) = u64::try_from(i) {
                Json::from(u)
            } else if let Ok(s) = i64::try_from(i) {
                Json::from(s)
            } else {
                Json::String(i.to_string())
            }
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null),
        Cbor::Text(s) => Json::String(s),
        Cbor::Bytes(b) => Json::String(hex(&b)),
        Cbor::Array(a) => Json::Array(a.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (map_key(k), cbor_to_json(v))).collect()),
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        _ => Json::Null,
    }
}

/// A JSON object key for a CBOR map key. Compound keys are shown as the hex of their CBOR, not
/// as stringified JSON: stringifying nests escapes, doubling the text at every level, so a few
/// hundred bytes of nested maps printed as gigabytes.
fn map_key(k: Cbor) -> String {
    match k {
        Cbor::Text(s) => s,
        Cbor::Array(_) | Cbor::Map(_) | Cbor::Tag(..) => {
            let mut bytes = Vec::new();
            let _ = ciborium::into_writer(&k, &mut bytes);
            format!("cbor:{}", hex(&bytes))
        }
        scalar => cbor_to_json(scalar).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_through_cbor() {
        let v = serde_json::json!({"a": [1, -2, "x"], "b": null, "c": true});
        assert_eq!(output_to_json(&json_to_cbor(&v)), v);
        assert_eq!(output_to_json(&[0xff]), serde_json::json!({"hex": "ff"}));
        assert_eq!(unhex("0a0B"), Some(vec![10, 11]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn nested_map_keys_print_linearly() {
        // {{{...{1: 1}...}: 1}: 1}, 200 levels deep: a map whose key is the previous map.
        let mut v = Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Integer(1.into()))]);
        for _ in 0..200 {
            v = Cbor::Map(vec![(v, Cbor::Integer(1.into()))]);
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&v, &mut bytes).unwrap();
        let printed = output_to_json(&bytes).to_string();
        assert!(printed.len() < 4 * bytes.len() + 100, "{} bytes printed for {} bytes of CBOR", printed.len(), bytes.len());
    }
}
