//! int8 × int8 → i32 matrix multiplication, the hot kernel of TENSOR_MATMUL and inference.
//!
//! `C[i][j] = Σ_k A[i][k]·B[k][j]`, summed in i32. With `k ≤ MAX_K` no partial or final
//! sum can overflow (|A·B| ≤ 2^14 per product), so the result is the exact integer
//! product and every path below agrees bit for bit. Paths are chosen at runtime:
//! AVX-512 VNNI, then AVX2, then the scalar oracle.

pub(crate) mod avx2;
pub(crate) mod avx512;
mod scalar;

use crate::cpu::features;
use crate::KernelError;
use std::sync::OnceLock;

/// Largest inner dimension: `MAX_K · 2^14 < 2^31`, so the i32 sums are exact.
pub const MAX_K: usize = (1 << 17) - 1;

/// A kernel implementation. All give identical results; they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    Scalar,
    Avx2,
    Avx512Vnni,
}

impl SimdPath {
    /// The fastest path this CPU supports.
    pub fn detect() -> SimdPath {
        *SimdPath::available().last().unwrap_or(&SimdPath::Scalar)
    }

    /// Every path this CPU can run, slowest first (detected once per process).
    pub fn available() -> &'static [SimdPath] {
        static PATHS: OnceLock<Vec<SimdPath>> = OnceLock::new();
        PATHS.get_or_init(|| {
            let f = features();
            let mut v = vec![SimdPath::Scalar];
            if f.avx2 {
                v.push(SimdPath::Avx2);
            }
            if f.avx512_vnni {
                v.push(SimdPath::Avx512Vnni);
            }
            v
        })
    }
}

/// Check the dimensions of an `m×k · k×n` product against the slices and limits.
pub fn check_dims(a_len: usize, b_len: usize, m: usize, k: usize, n: usize) -> Result<(), KernelError> {
    if m == 0 || k == 0 || n == 0 {
        return Err(KernelError::Shape(format!("empty matmul {m}x{k}x{n}")));
    }
    if k > MAX_K {
        return Err(KernelError::Argument(format!("inner dimension {k} exceeds {MAX_K}")));
    }
    if m.checked_mul(k) != Some(a_len) || k.checked_mul(n) != Some(b_len) {
        return Err(KernelError::Shape(format!("slices do not match {m}x{k}x{n}")));
    }
    Ok(())
}

/// `A (m×k, row-major) · B (k×n, row-major)` on the best available path.
pub fn matmul_i8(a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, KernelError> {
    matmul_i8_on(SimdPath::detect(), a, b, m, k, n)
}

/// The same product on a chosen path. Falls back to the best available path if the CPU lacks it.
pub fn matmul_i8_on(path: SimdPath, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, KernelError> {
    check_dims(a.len(), b.len(), m, k, n)?;
    let mut c = vec![0i32; m * n];
    let path = if SimdPath::available().contains(&path) { path } else { SimdPath::detect() };
    match path {
        SimdPath::Scalar => scalar::matmul(a, b, &mut c, m, k, n),
        // SAFETY: `available()` confirmed the CPU features these kernels are compiled for.
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx2 => unsafe { avx2::matmul(a, b, &mut c, m, k, n) },
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx512Vnni => unsafe { avx512::matmul(a, b, &mut c, m, k, n) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar::matmul(a, b, &mut c, m, k, n),
    }
    Ok(c)
}

/// Rows per register tile of the VNNI kernels (here and in [`crate::gemm`]).
pub const ROWS: usize = 8;

/// A blocks for the VNNI kernels (8-row register tiles): `[block][kg][row 0..8][4 bytes]` as unsigned (`a + 128`); padding is 128 (= 0).
pub fn pack_a(a: &[i8], m: usize, k: usize, k4: usize, blocks: usize) -> Vec<u8> {
    let mut pa = vec![0x80u8; blocks * k4 * ROWS * 4];
    pack_a_into(a, m, k, k4, &mut pa);
    pa
}

/// [`pack_a`] into `pa`, which holds the blocks of rows `0..m` of `a` and is filled with
/// `0x80` (the padding). Blocks are independent, so a caller may pack ranges of whole
/// blocks on different threads.
pub fn pack_a_into(a: &[i8], m: usize, k: usize, k4: usize, pa: &mut [u8]) {
    for (i, row) in a.chunks_exact(k).enumerate().take(m) {
        let base = (i / ROWS) * k4 * ROWS * 4 + (i % ROWS) * 4;
        let mut chunks = row.chunks_exact(4);
        for (kg, c) in chunks.by_ref().enumerate() {
            let v = u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]) ^ 0x8080_8080;
            let at = base + kg * ROWS * 4;
            pa[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        let kg = k / 4;
        for (r, &v) in chunks.remainder().iter().enumerate() {
            pa[base + kg * ROWS * 4 + r] = (v as u8) ^ 0x80;
        }
    }
}

/// Column sums of B (needed by the VNNI path's unsigned-offset trick).
fn column_sums(b: &[i8], k: usize, n: usize) -> Vec<i32> {
    let mut s = vec![0i32; n];
    for row in b.chunks_exact(n).take(k) {
        for (acc, &v) in s.iter_mut().zip(row) {
            *acc += v as i32;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::lcg_bytes;

    #[test]
    fn known_product() {
        let a = [1i8, 2, 3, 4, 5, 6]; // 2x3
        let b = [7i8, 8, 9, 10, 11, 12]; // 3x2
        for &p in SimdPath::available() {
            assert_eq!(matmul_i8_on(p, &a, &b, 2, 3, 2).unwrap(), vec![58, 64, 139, 154], "{p:?}");
        }
    }

    #[test]
    fn extreme_values_are_exact_at_max_k() {
        // -128 · -128 summed MAX_K times is the largest possible sum; it must not wrap.
        let k = MAX_K;
        let a = vec![-128i8; k];
        let b = vec![-128i8; k];
        for &p in SimdPath::available() {
            assert_eq!(matmul_i8_on(p, &a, &b, 1, k, 1).unwrap(), vec![(k as i32) * 16384], "{p:?}");
        }
        assert!(matmul_i8(&[0; MAX_K + 1], &[0; MAX_K + 1], 1, MAX_K + 1, 1).is_err());
    }

    #[test]
    fn all_paths_agree_on_llm_like_shape() {
        let (m, k, n) = (37, 576, 129);
        let a = lcg_bytes(1, m * k);
        let b = lcg_bytes(2, k * n);
        let want = matmul_i8_on(SimdPath::Scalar, &a, &b, m, k, n).unwrap();
        for &p in SimdPath::available() {
            assert_eq!(matmul_i8_on(p, &a, &b, m, k, n).unwrap(), want, "{p:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Ragged shapes (not multiples of any tile size) and random values: every path equals scalar.
        #[test]
        fn paths_are_bit_identical(m in 1usize..40, k in 1usize..70, n in 1usize..70, seed: u64) {
            let a = lcg_bytes(seed, m * k);
            let b = lcg_bytes(seed ^ 0xdead_beef, k * n);
            let want = matmul_i8_on(SimdPath::Scalar, &a, &b, m, k, n).unwrap();
            for &p in SimdPath::available() {
                prop_assert_eq!(&matmul_i8_on(p, &a, &b, m, k, n).unwrap(), &want, "{:?}", p);
            }
        }
    }
}
