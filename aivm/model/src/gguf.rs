//! A GGUF v3 reader: metadata, tensor directory, and dequantization of the tensor types the
//! converter accepts (F32, F16, Q4_0, Q4_1, Q8_0).
//!
//! Every offset and size comes from the file, so every one is checked: a truncated or hostile
//! file is a [`GgufError`], never a panic or an unbounded allocation.

use std::collections::BTreeMap;
use thiserror::Error;

const MAGIC: &[u8; 4] = b"GGUF";
/// Longest string (metadata key or value) accepted.
const MAX_STRING: u64 = 1 << 24;
/// Most array elements / tensors / metadata entries accepted.
const MAX_COUNT: u64 = 1 << 24;
const MAX_DIMS: u32 = 4;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GgufError {
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    #[error("GGUF version {0} is not supported (only 3)")]
    Version(u32),
    #[error("file truncated at byte {0}")]
    Truncated(usize),
    #[error("malformed GGUF: {0}")]
    Malformed(String),
    #[error("tensor {0} not found")]
    MissingTensor(String),
    #[error("metadata key {0} missing or of the wrong type")]
    MissingKey(String),
    #[error("tensor type {0} is not supported")]
    UnsupportedType(u32),
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Any unsigned or non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Tensor element encodings (GGML type ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q8_0 = 8,
}

impl GgmlType {
    fn from_id(id: u32) -> Result<Self, GgufError> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            other => return Err(GgufError::UnsupportedType(other)),
        })
    }
    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
        }
    }
}

/// One entry of the tensor directory. `dims[0]` is the fastest-varying (row length).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
    /// Row length and row count (all dimensions past the first are rows).
    pub fn rows(&self) -> (usize, usize) {
        let cols = self.dims.first().copied().unwrap_or(1) as usize;
        (cols, self.elements() / cols.max(1))
    }
}

/// A parsed GGUF file holding its bytes.
pub struct Gguf {
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
    bytes: Vec<u8>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(GgufError::Truncated(self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn count(&mut self, what: &str) -> Result<u64, GgufError> {
        let n = self.u64()?;
        if n > MAX_COUNT {
            return Err(GgufError::Malformed(format!("{what} count {n} too large")));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.u64()?;
        if n > MAX_STRING {
            return Err(GgufError::Malformed(format!("string of {n} bytes")));
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec()).map_err(|_| GgufError::Malformed("string is not UTF-8".into()))
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>()?[0]),
            1 => Value::I8(self.arr::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr()?)),
            3 => Value::I16(i16::from_le_bytes(self.arr()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.arr()?)),
            6 => Value::F32(f32::from_le_bytes(self.arr()?)),
            7 => Value::Bool(self.arr::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let ety = self.u32()?;
                let n = self.count("array")?;
                let mut v = Vec::with_capacity((n as usize).min(1 << 16));
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.arr()?)),
            12 => Value::F64(f64::from_le_bytes(self.arr()?)),
            other => return Err(GgufError::Malformed(format!("metadata type {other}"))),
        })
    }
}

impl Gguf {
    /// Parse a whole file held in memory.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, GgufError> {
        let mut c = Cursor { b: &bytes, at: 0 };
        if c.take(4)? != MAGIC {
            return Err(GgufError::BadMagic);
        }
        let version = c.u32()?;
        if version != 3 {
            return Err(GgufError::Version(version));
        }
        let n_tensors = c.count("tensor")?;
        let n_kv = c.count("metadata")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let v = c.value(ty, 0)?;
            metadata.insert(key, v);
        }
        let align = match metadata.get("general.alignment") {
            Some(v) => {
                v.as_u64().filter(|a| a.is_power_of_two() && *a <= 1 << 20).ok_or_else(|| GgufError::Malformed("bad general.alignment".into()))? as usize
            }
            None => 32,
        };
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let nd = c.u32()?;
            if nd == 0 || nd > MAX_DIMS {
                return Err(GgufError::Malformed(format!("tensor {name} has {nd} dimensions")));
            }
            let dims = (0..nd).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
            let ty = GgmlType::from_id(c.u32()?)?;
            let offset = c.u64()?;
            infos.push((name, dims, ty, offset));
        }
        let data_start = c.at.div_ceil(align) * align;
        let mut tensors = BTreeMap::new();
        for (name, dims, ty, offset) in infos {
            let elems = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d).filter(|&p| p <= 1 << 40))
                .ok_or_else(|| GgufError::Malformed(format!("tensor {name} is too large")))?;
            let (per, size) = ty.block();
            if dims[0] % per as u64 != 0 {
                return Err(GgufError::Malformed(format!("tensor {name}: row length not a multiple of {per}")));
            }
            let len = (elems / per as u64) as usize * size;
            let start = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data_start))
                .ok_or_else(|| GgufError::Malformed(format!("tensor {name}: bad offset")))?;
            if start.checked_add(len).is_none_or(|e| e > bytes.len()) {
                return Err(GgufError::Truncated(start));
            }
            tensors.insert(name.clone(), TensorInfo { name, dims, ty, start, len });
        }
        Ok(Self { metadata, tensors, bytes })
    }

    pub fn read(path: &std::path::Path) -> Result<Self, GgufError> {
        let bytes = std::fs::read(path).map_err(|e| GgufError::Malformed(format!("{}: {e}", path.display())))?;
        Self::parse(bytes)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
    pub fn u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key).and_then(Value::as_u64).ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    pub fn f32(&self, key: &str) -> Result<f32, GgufError> {
        self.get(key).and_then(Value::as_f32).ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key).and_then(Value::as_str).ok_or_else(|| GgufError::MissingKey(key.into()))
    }
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        match self.get(key) {
            Some(Value::Array(v)) => v.iter().map(|x| x.as_str().ok_or_else(|| GgufError::MissingKey(key.into()))).collect(),
            _ => Err(GgufError::MissingKey(key.into())),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors.get(name).ok_or_else(|| GgufError::MissingTensor(name.into()))
    }

    /// The tensor's values as f64 (every supported encoding is exact in f64), row-major.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f64>, GgufError> {
        let t = self.tensor(name)?;
        let raw = &self.bytes[t.start..t.start + t.len];
        let mut out = Vec::with_capacity(t.elements());
        let (per, size) = t.ty.block();
        for b in raw.chunks_exact(size) {
            match t.ty {
                GgmlType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
                GgmlType::F16 => out.push(f16_to_f64(u16::from_le_bytes([b[0], b[1]]))),
                GgmlType::Q8_0 => {
                    let d = f16_to_f64(u16::from_le_bytes([b[0], b[1]]));
                    out.extend(b[2..].iter().map(|&q| d * (q as i8) as f64));
                }
                GgmlType::Q4_0 | GgmlType::Q4_1 => {
                    let d = f16_to_f64(u16::from_le_bytes([b[0], b[1]]));
                    let (m, qs, off) = if t.ty == GgmlType::Q4_1 { (f16_to_f64(u16::from_le_bytes([b[2], b[3]])), &b[4..], 0.0) } else { (0.0, &b[2..], -8.0) };
                    // Low nibbles are elements 0..16, high nibbles 16..32.
                    out.extend(qs.iter().map(|&q| d * ((q & 15) as f64 + off) + m));
                    out.extend(qs.iter().map(|&q| d * ((q >> 4) as f64 + off) + m));
                }
            }
            debug_assert!(out.len() % per == 0);
        }
        Ok(out)
    }
}

/// IEEE binary16 → f64, exactly (subnormals, infinities and NaN included).
pub fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    }

    /// A tiny file: one u32 key, one string-array key, one Q4_1 tensor [32] and one F32 [2].
    fn sample() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        put_str(&mut b, "a.n");
        b.extend(4u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        put_str(&mut b, "a.s");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        put_str(&mut b, "x");
        put_str(&mut b, "yz");
        put_str(&mut b, "q");
        b.extend(1u32.to_le_bytes());
        b.extend(32u64.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        put_str(&mut b, "f");
        b.extend(1u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(32u64.to_le_bytes());
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        // Q4_1 block: d = 0.5 (0x3800), m = -1.0 (0xbc00), nibbles 0..16 low, 15..0 high.
        b.extend(0x3800u16.to_le_bytes());
        b.extend(0xbc00u16.to_le_bytes());
        b.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        b.extend([0u8; 12]);
        b.extend(1.5f32.to_le_bytes());
        b.extend((-2.0f32).to_le_bytes());
        b
    }

    #[test]
    fn reads_metadata_and_dequantizes() {
        let g = Gguf::parse(sample()).unwrap();
        assert_eq!(g.u64("a.n").unwrap(), 7);
        assert_eq!(g.strings("a.s").unwrap(), vec!["x", "yz"]);
        let q = g.dequantize("q").unwrap();
        assert_eq!(q.len(), 32);
        assert_eq!(q[0], -1.0);
        assert_eq!(q[15], 0.5 * 15.0 - 1.0);
        assert_eq!(q[16], 0.5 * 15.0 - 1.0);
        assert_eq!(q[31], -1.0);
        assert_eq!(g.dequantize("f").unwrap(), vec![1.5, -2.0]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = sample();
        for cut in 0..b.len() {
            assert!(Gguf::parse(b[..cut].to_vec()).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_counts_are_refused() {
        let mut b = sample();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Gguf::parse(b), Err(GgufError::Malformed(_))));
        let mut b = sample();
        b[4] = 2;
        assert_eq!(Gguf::parse(b).err(), Some(GgufError::Version(2)));
    }

    #[test]
    fn f16_values() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
    }
}
