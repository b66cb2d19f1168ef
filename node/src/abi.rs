//! A contract's entry-point schema (its ABI): what `#[entry_point]` and `#[derive(Schema)]`
//! record in the wasm custom section `aivm.abi`, one JSON line per entry or type. `aivm
//! inspect` prints it, `aivm_getAbi` serves it, and the client commands check `--args` against
//! it before anything is signed or sent, so a typo is a clear error here rather than a decode
//! failure on chain that still costs gas.
//!
//! The section is informational, never consensus: the chain runs whatever bytes a call carries.
//! Types are checked as the JSON the CLI encodes to CBOR (`cli/codec.rs`) must look for the
//! SDK's serde to decode them. A type the schema does not describe (no `Schema` derive, a
//! generic) is not checked.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One entry point as the source wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Entry {
    pub entry: String,
    pub args: String,
    pub returns: String,
}

/// Entries and the shapes of the types they name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Abi {
    pub entries: Vec<Entry>,
    /// By type name: the JSON line `#[derive(Schema)]` wrote (`fields`, `newtype`, `tuple`,
    /// `unit` or `variants`).
    pub types: BTreeMap<String, Value>,
}

/// Why `--args` do not fit the entry they are for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error("the contract has no entry point `{entry}`; it has: {known}")]
    NoEntry { entry: String, known: String },
    #[error("{path}: expected {expected}, got {got}")]
    Mismatch { path: String, expected: String, got: String },
    #[error("{path}: unknown field `{field}`; the fields of {ty} are: {known}")]
    UnknownField { path: String, field: String, ty: String, known: String },
    #[error("{path}: missing field `{field}` ({ty})")]
    MissingField { path: String, field: String, ty: String },
}

/// How deep a type may nest before the check stops descending (a hostile section could name
/// types in a cycle; anything deeper is accepted unchecked).
const MAX_DEPTH: usize = 32;

impl Abi {
    /// Parse the `aivm.abi` section. Lines that are not JSON of either shape are skipped (the
    /// section is written by the linker concatenating statics; a hostile module may write
    /// anything), so this never fails; an empty result means "no schema".
    pub fn parse(section: &[u8]) -> Abi {
        let mut abi = Abi::default();
        for line in String::from_utf8_lossy(section).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            if let Some(name) = v.get("type").and_then(Value::as_str) {
                abi.types.entry(name.to_string()).or_insert(v);
            } else if let Ok(e) = serde_json::from_value::<Entry>(v) {
                if !abi.entries.iter().any(|x| x.entry == e.entry) {
                    abi.entries.push(e);
                }
            }
        }
        abi.entries.sort_by(|a, b| a.entry.cmp(&b.entry));
        abi
    }

    /// The ABI of a wasm module (empty if it has no section or does not parse).
    pub fn of_wasm(wasm: &[u8]) -> Abi {
        Abi::parse(&aivm::validate::abi_section(wasm))
    }

    /// Back from [`Abi::to_json`] (what `aivm_getAbi` answers).
    pub fn from_json(v: &Value) -> Abi {
        let lines = ["entries", "types"].iter().flat_map(|k| v[*k].as_array().into_iter().flatten()).map(|x| x.to_string() + "\n").collect::<String>();
        Abi::parse(lines.as_bytes())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// As JSON: `{"entries": [...], "types": [...]}` (what `aivm inspect` and `aivm_getAbi` show).
    pub fn to_json(&self) -> Value {
        json!({"entries": self.entries, "types": self.types.values().collect::<Vec<_>>()})
    }

    /// Check `args` against `entry`'s argument type. A module without a schema passes.
    pub fn check(&self, entry: &str, args: &Value) -> Result<(), AbiError> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(e) = self.entries.iter().find(|e| e.entry == entry) else {
            let known = self.entries.iter().map(|e| e.entry.as_str()).filter(|e| *e != aivm::INSTANTIATE_ENTRY).collect::<Vec<_>>().join(", ");
            return Err(AbiError::NoEntry { entry: entry.to_string(), known });
        };
        self.value(&Ty::parse(&e.args), args, "args", 0)
    }

    fn value(&self, ty: &Ty, v: &Value, path: &str, depth: usize) -> Result<(), AbiError> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let bad = |expected: &str| Err(AbiError::Mismatch { path: path.to_string(), expected: expected.to_string(), got: describe(v) });
        // `Ok` when `ok`, else a mismatch naming what was expected.
        let want = |ok: bool, expected: &str| if ok { Ok(()) } else { bad(expected) };
        match ty {
            Ty::Unit => want(v.is_null(), "null (the entry takes `()`)"),
            Ty::Named(name, params) => match (name.as_str(), params.as_slice()) {
                ("bool", []) => want(v.is_boolean(), "bool (true or false)"),
                ("String" | "str", []) => want(v.is_string(), "a string"),
                ("char", []) => want(v.as_str().is_some_and(|s| s.chars().count() == 1), "a one-character string"),
                ("f32" | "f64", []) => want(v.is_number(), &format!("{name} (a number)")),
                ("Address" | "Bytes32", []) => {
                    want(v.as_str().and_then(crate::hexbytes::from_hex).is_some_and(|b| b.len() == 32), &format!("{name} (64 hex digits)"))
                }
                (int, []) if integer_range(int).is_some() => {
                    let (lo, hi) = integer_range(int).unwrap_or((0, 0));
                    let n = v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from));
                    want(n.is_some_and(|n| n >= lo && n <= hi), &format!("{int} (an integer from {lo} to {hi})"))
                }
                ("Option", [inner]) => {
                    if v.is_null() {
                        Ok(())
                    } else {
                        self.value(inner, v, path, depth + 1)
                    }
                }
                ("Box" | "Rc" | "Arc" | "Cow", [inner]) => self.value(inner, v, path, depth + 1),
                ("Vec" | "VecDeque" | "BTreeSet" | "HashSet", [inner]) => match v.as_array() {
                    Some(items) => items.iter().enumerate().try_for_each(|(i, x)| self.value(inner, x, &format!("{path}[{i}]"), depth + 1)),
                    None => bad(&format!("an array ({})", ty.text())),
                },
                ("BTreeMap" | "HashMap", [_, val]) => match v.as_object() {
                    Some(m) => m.iter().try_for_each(|(k, x)| self.value(val, x, &format!("{path}.{k}"), depth + 1)),
                    None => bad(&format!("an object ({})", ty.text())),
                },
                (_, []) => match self.types.get(name) {
                    Some(shape) => self.shape(name, shape, v, path, depth),
                    None => Ok(()), // not described: unchecked
                },
                _ => Ok(()),
            },
            Ty::Tuple(items) => match v.as_array() {
                Some(a) if a.len() == items.len() => {
                    items.iter().zip(a).enumerate().try_for_each(|(i, (t, x))| self.value(t, x, &format!("{path}[{i}]"), depth + 1))
                }
                _ => bad(&format!("an array of {} ({})", items.len(), ty.text())),
            },
            Ty::Array(inner, n) => match v.as_array() {
                Some(a) if n.is_none_or(|n| a.len() == n) => {
                    a.iter().enumerate().try_for_each(|(i, x)| self.value(inner, x, &format!("{path}[{i}]"), depth + 1))
                }
                _ => bad(&format!("an array ({})", ty.text())),
            },
        }
    }

    /// A value against a described type (`#[derive(Schema)]`).
    fn shape(&self, name: &str, shape: &Value, v: &Value, path: &str, depth: usize) -> Result<(), AbiError> {
        let bad = |expected: String| Err(AbiError::Mismatch { path: path.to_string(), expected, got: describe(v) });
        if let Some(variants) = shape.get("variants").and_then(Value::as_array) {
            let names: Vec<&str> = variants.iter().filter_map(|x| x.get("name").and_then(Value::as_str)).collect();
            let expected = || format!("{name}: one of {}", names.join(", "));
            // Externally tagged: a unit variant is its name, any other `{"Variant": payload}`.
            let (variant, payload) = match v {
                Value::String(s) => (s.as_str(), None),
                Value::Object(m) if m.len() == 1 => match m.iter().next() {
                    Some((k, p)) => (k.as_str(), Some(p)),
                    None => return bad(expected()),
                },
                _ => return bad(expected()),
            };
            let Some(def) = variants.iter().find(|x| x.get("name").and_then(Value::as_str) == Some(variant)) else { return bad(expected()) };
            let unit = def.get("unit").is_some();
            return match (unit, payload) {
                (true, None) => Ok(()),
                (false, Some(p)) => self.shape(variant, def, p, &format!("{path}.{variant}"), depth + 1),
                _ => bad(expected()),
            };
        }
        if let Some(fields) = shape.get("fields").and_then(Value::as_array) {
            let fields: Vec<(&str, &str)> = fields.iter().filter_map(|f| Some((f.get(0)?.as_str()?, f.get(1)?.as_str()?))).collect();
            let Some(obj) = v.as_object() else { return bad(format!("{name} (an object with fields {})", names(&fields))) };
            if let Some(extra) = obj.keys().find(|k| !fields.iter().any(|(f, _)| f == k)) {
                return Err(AbiError::UnknownField { path: path.to_string(), field: extra.clone(), ty: name.to_string(), known: names(&fields) });
            }
            for (field, ty) in fields {
                let ty = Ty::parse(ty);
                match obj.get(field) {
                    Some(x) => self.value(&ty, x, &format!("{path}.{field}"), depth + 1)?,
                    None if ty.is_option() => {}
                    None => return Err(AbiError::MissingField { path: path.to_string(), field: field.to_string(), ty: ty.text() }),
                }
            }
            return Ok(());
        }
        if let Some(inner) = shape.get("newtype").and_then(Value::as_str) {
            return self.value(&Ty::parse(inner), v, path, depth + 1);
        }
        if let Some(items) = shape.get("tuple").and_then(Value::as_array) {
            let items: Vec<Ty> = items.iter().filter_map(Value::as_str).map(Ty::parse).collect();
            return self.value(&Ty::Tuple(items), v, path, depth + 1);
        }
        if shape.get("unit").is_some() {
            return if v.is_null() { Ok(()) } else { bad(format!("{name} (null)")) };
        }
        Ok(())
    }
}

fn names(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(f, t)| format!("{f}: {t}")).collect::<Vec<_>>().join(", ")
}

/// A JSON value in a few words, for error messages.
fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn integer_range(name: &str) -> Option<(i128, i128)> {
    Some(match name {
        "u8" => (0, u8::MAX as i128),
        "u16" => (0, u16::MAX as i128),
        "u32" => (0, u32::MAX as i128),
        "u64" | "usize" | "u128" => (0, u64::MAX as i128),
        "i8" => (i8::MIN as i128, i8::MAX as i128),
        "i16" => (i16::MIN as i128, i16::MAX as i128),
        "i32" => (i32::MIN as i128, i32::MAX as i128),
        "i64" | "isize" | "i128" => (i64::MIN as i128, i64::MAX as i128),
        _ => return None,
    })
}

/// A Rust type as `#[entry_point]` writes it (no spaces): enough of the grammar to check JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ty {
    Unit,
    /// The last path segment and its generic arguments (`alloc::vec::Vec<u8>` is `Vec`, `[u8]`).
    Named(String, Vec<Ty>),
    Tuple(Vec<Ty>),
    /// `[T; N]` (`Some(N)`) or a slice `[T]`.
    Array(Box<Ty>, Option<usize>),
}

impl Ty {
    fn parse(s: &str) -> Ty {
        Ty::parse_at(s, 0)
    }

    /// Nesting past [`MAX_DEPTH`] is left undescribed (unchecked): the text comes from a
    /// contract, which may nest brackets a million deep.
    fn parse_at(s: &str, depth: usize) -> Ty {
        if depth > MAX_DEPTH {
            return Ty::Named("…".into(), Vec::new());
        }
        let parse = |t: &str| Ty::parse_at(t, depth + 1);
        let s = s.trim();
        // A reference is its target as data (entry arguments are owned; fields may borrow).
        let s = s.trim_start_matches('&');
        if s == "()" {
            return Ty::Unit;
        }
        if let Some(inner) = s.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            return Ty::Tuple(split_top(inner).into_iter().filter(|p| !p.is_empty()).map(parse).collect());
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            return match inner.rsplit_once(';') {
                Some((t, n)) if !n.contains(['<', '>', '(', ')', '[', ']']) => Ty::Array(Box::new(parse(t)), n.trim().replace('_', "").parse().ok()),
                _ => Ty::Array(Box::new(parse(inner)), None),
            };
        }
        let (path, args) = match s.find('<') {
            Some(i) if s.ends_with('>') => (&s[..i], split_top(&s[i + 1..s.len() - 1]).into_iter().map(parse).collect()),
            _ => (s, Vec::new()),
        };
        let name = path.rsplit("::").next().unwrap_or(path).to_string();
        Ty::Named(name, args)
    }

    fn is_option(&self) -> bool {
        matches!(self, Ty::Named(n, _) if n == "Option")
    }

    fn text(&self) -> String {
        match self {
            Ty::Unit => "()".into(),
            Ty::Named(n, a) if a.is_empty() => n.clone(),
            Ty::Named(n, a) => format!("{n}<{}>", a.iter().map(Ty::text).collect::<Vec<_>>().join(",")),
            Ty::Tuple(items) => format!("({})", items.iter().map(Ty::text).collect::<Vec<_>>().join(",")),
            Ty::Array(t, Some(n)) => format!("[{};{n}]", t.text()),
            Ty::Array(t, None) => format!("[{}]", t.text()),
        }
    }
}

/// Split at commas outside `<>`, `()` and `[]`.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token contract's section as the linker writes it (lines in any order).
    const TOKEN: &str = r#"{"type":"Init","fields":[["supply","u64"]]}
{"entry":"transfer","args":"Transfer","returns":"Result<(),ContractError>"}
{"type":"Transfer","fields":[["to","Address"],["amount","u64"]]}
{"entry":"balance_of","args":"Address","returns":"Result<u64,ContractError>"}
{"entry":"total_supply","args":"()","returns":"Result<u64,ContractError>"}
{"entry":"instantiate","args":"Init","returns":"Result<u64,ContractError>"}
not json at all
{"entry":"batch","args":"Vec<(aivm_sdk::Address,u64)>","returns":"()"}
{"entry":"pick","args":"Choice","returns":"()"}
{"type":"Choice","variants":[{"name":"None","unit":true},{"name":"One","newtype":"u8"},{"name":"Pair","fields":[["a","u8"],["b","Option<String>"]]}]}
{"entry":"fixed","args":"[u8;4]","returns":"()"}
{"entry":"opaque","args":"Unknown","returns":"()"}"#;

    fn abi() -> Abi {
        Abi::parse(TOKEN.as_bytes())
    }

    fn err(entry: &str, args: Value) -> String {
        abi().check(entry, &args).expect_err("should be refused").to_string()
    }

    #[test]
    fn well_formed_arguments_pass() {
        let a = abi();
        let addr = "ab".repeat(32);
        for (entry, args) in [
            ("transfer", json!({"to": addr, "amount": 5})),
            ("balance_of", json!(format!("0x{addr}"))),
            ("total_supply", Value::Null),
            ("instantiate", json!({"supply": u64::MAX})),
            ("batch", json!([[addr, 1], [addr, 2]])),
            ("pick", json!("None")),
            ("pick", json!({"One": 255})),
            ("pick", json!({"Pair": {"a": 1}})),
            ("pick", json!({"Pair": {"a": 1, "b": "x"}})),
            ("fixed", json!([1, 2, 3, 4])),
            ("opaque", json!({"anything": [1, "goes"]})),
        ] {
            assert_eq!(a.check(entry, &args), Ok(()), "{entry} {args}");
        }
        assert_eq!(a.entries.len(), 8, "the junk line is skipped");
        assert!(Abi::parse(b"").check("whatever", &json!(1)).is_ok(), "no schema, no check");
    }

    #[test]
    fn mistakes_are_named_precisely() {
        assert_eq!(
            err("transfr", json!({})),
            "the contract has no entry point `transfr`; it has: balance_of, batch, fixed, opaque, pick, total_supply, transfer"
        );
        assert_eq!(
            err("transfer", json!({"to": "ab".repeat(32), "amount": "5"})),
            r#"args.amount: expected u64 (an integer from 0 to 18446744073709551615), got "5""#
        );
        assert_eq!(
            err("transfer", json!({"to": "ab".repeat(32), "amout": 5})),
            "args: unknown field `amout`; the fields of Transfer are: to: Address, amount: u64"
        );
        assert_eq!(err("transfer", json!({"to": "ab".repeat(32)})), "args: missing field `amount` (u64)");
        assert_eq!(err("transfer", json!({"to": "abc", "amount": 1})), r#"args.to: expected Address (64 hex digits), got "abc""#);
        assert_eq!(err("transfer", json!([1, 2])), "args: expected Transfer (an object with fields to: Address, amount: u64), got [1,2]");
        assert_eq!(err("total_supply", json!(1)), "args: expected null (the entry takes `()`), got 1");
        assert_eq!(err("instantiate", json!({"supply": -1})), "args.supply: expected u64 (an integer from 0 to 18446744073709551615), got -1");
        assert!(err("batch", json!([["ab".repeat(32), 1], [1, 2]])).starts_with("args[1][0]: expected Address"));
        assert_eq!(err("pick", json!("Triple")), r#"args: expected Choice: one of None, One, Pair, got "Triple""#);
        assert_eq!(err("pick", json!({"One": 256})), "args.One: expected u8 (an integer from 0 to 255), got 256");
        assert_eq!(err("fixed", json!([1, 2, 3])), "args: expected an array ([u8;4]), got [1,2,3]");
    }

    #[test]
    fn json_round_trip() {
        assert_eq!(Abi::from_json(&abi().to_json()), abi());
    }

    #[test]
    fn type_text_parses() {
        assert_eq!(Ty::parse("&str"), Ty::Named("str".into(), vec![]));
        assert_eq!(Ty::parse("alloc::collections::BTreeMap<String,(u8,i64)>").text(), "BTreeMap<String,(u8,i64)>");
        assert_eq!(Ty::parse("[[u8;32];2]").text(), "[[u8;32];2]");
    }

    #[test]
    fn deeply_nested_type_text_is_bounded() {
        // A hostile section: a type a hundred thousand brackets deep parses without recursing
        // that deep, and what lies past the bound is unchecked.
        for (open, close) in [("(", ",u8)"), ("Vec<", ">"), ("[", ";2]")] {
            let text = format!("{}u8{}", open.repeat(100_000), close.repeat(100_000));
            let line = format!("{{\"entry\":\"e\",\"args\":\"{text}\",\"returns\":\"()\"}}");
            let a = Abi::parse(line.as_bytes());
            assert_eq!(a.entries.len(), 1);
            let _ = a.check("e", &json!([1, 2]));
        }
    }

    #[test]
    fn cyclic_types_do_not_recurse_forever() {
        let a = Abi::parse(b"{\"entry\":\"e\",\"args\":\"A\",\"returns\":\"()\"}\n{\"type\":\"A\",\"newtype\":\"A\"}\n");
        assert_eq!(a.check("e", &json!(1)), Ok(()));
    }
}
