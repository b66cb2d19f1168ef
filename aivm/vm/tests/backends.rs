//! The OpenCL backend against the CPU backend: every operation, random shapes (ragged edges
//! included) and values (the extremes of each type included), bit for bit.
//!
//! On a machine without any OpenCL platform these tests say so and pass; `make test` sets
//! `AIVM_REQUIRE_OPENCL=1` after installing pocl, so in CI they always run.

use aivm::backend::{Backend, CpuBackend, Elems, GemmKernel, OpenClBackend, OpenClConfig};
use aivm::tensor::lcg_bytes;
use aivm::tensor::matmul::MAX_K;
use aivm::tensor::ops::NormKind;
use aivm::verify::kl::kl_divergence_q16_on;
use proptest::prelude::*;
use std::sync::OnceLock;

/// The default device twice: with each GEMM kernel (the other kernels are the same in both).
fn ocl() -> &'static [OpenClBackend] {
    static B: OnceLock<Vec<OpenClBackend>> = OnceLock::new();
    B.get_or_init(|| {
        [GemmKernel::Rows, GemmKernel::Tiled]
            .into_iter()
            .filter_map(|gemm| OpenClBackend::open_or_skip("cross-backend tests", &OpenClConfig { gemm, ..OpenClConfig::default() }).expect("OpenCL backend"))
            .collect()
    })
}

fn cpu() -> CpuBackend {
    CpuBackend::with_threads(2)
}

/// i32 values mixing the full range, the extremes, and small Q16 magnitudes.
fn q16s(len: impl Into<prop::collection::SizeRange>) -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(prop_oneof![3 => -(8 << 16)..(8 << 16), 1 => any::<i32>(), 1 => Just(i32::MIN), 1 => Just(i32::MAX), 1 => Just(0)], len)
}

fn gemm_both(b: &OpenClBackend, x: &[i8], m: usize, w: &[i8], n: usize, k: usize) -> (Vec<i32>, Vec<i32>) {
    let c = cpu();
    let (wc, wo) = (c.prepare(w, n, k).unwrap(), b.prepare(w, n, k).unwrap());
    let (mut yc, mut yo) = (vec![0; m * n], vec![0; m * n]);
    c.gemm(x, m, &wc, &mut yc).unwrap();
    b.gemm(x, m, &wo, &mut yo).unwrap();
    (yc, yo)
}

#[test]
fn gemm_matches_on_llm_shapes_and_extremes() {
    for b in ocl() {
        gemm_shapes(b);
    }
}

fn gemm_shapes(b: &OpenClBackend) {
    // SmolLM2's projections (prompt and decode), a ragged attention-like shape, and the
    // largest exact k with the most negative values.
    for (m, k, n) in [(1, 576, 1536), (23, 576, 192), (7, 1536, 576), (37, 64, 33), (1, 49, 1)] {
        let (x, w) = (lcg_bytes(m as u64, m * k), lcg_bytes(n as u64 + 7, n * k));
        let (yc, yo) = gemm_both(b, &x, m, &w, n, k);
        assert_eq!(yc, yo, "{m}x{k}x{n}");
    }
    let (x, w) = (vec![-128i8; 2 * MAX_K], vec![-128i8; 3 * MAX_K]);
    let (yc, yo) = gemm_both(b, &x, 2, &w, 3, MAX_K);
    assert_eq!(yo, vec![MAX_K as i32 * 16384; 6]);
    assert_eq!(yc, yo);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gemm_is_bit_identical(m in 1usize..70, k in 1usize..150, n in 1usize..80, seed: u64) {
        for b in ocl() {
        let (x, w) = (lcg_bytes(seed, m * k), lcg_bytes(seed ^ 0x5eed, n * k));
        let (yc, yo) = gemm_both(b, &x, m, &w, n, k);
        prop_assert_eq!(yc, yo);
        }
    }

    #[test]
    fn matmul_is_bit_identical(m in 1usize..50, k in 1usize..100, n in 1usize..50, seed: u64) {
        for b in ocl() {
        let (a, bb) = (lcg_bytes(seed, m * k), lcg_bytes(!seed, k * n));
        prop_assert_eq!(cpu().matmul(&a, &bb, m, k, n).unwrap(), b.matmul(&a, &bb, m, k, n).unwrap());
        }
    }

    #[test]
    fn quantize_and_dequantize_are_bit_identical(x in q16s(1..300), scale in prop_oneof![1..=i32::MAX, Just(1), Just(1 << 16), Just(i32::MAX)], seed: u64) {
        let Some(b) = ocl().first() else { return Ok(()) };
        prop_assert_eq!(cpu().quantize(&x, scale).unwrap(), b.quantize(&x, scale).unwrap());
        prop_assert_eq!(cpu().dequantize(Elems::I32(&x), scale).unwrap(), b.dequantize(Elems::I32(&x), scale).unwrap());
        let q = lcg_bytes(seed, x.len());
        prop_assert_eq!(cpu().dequantize(Elems::I8(&q), scale).unwrap(), b.dequantize(Elems::I8(&q), scale).unwrap());
    }

    #[test]
    fn norms_are_bit_identical((n, mut x) in (1usize..300, 1usize..5).prop_flat_map(|(n, rows)| (Just(n), q16s(n * rows))), eps in prop_oneof![Just(0), 0..=i32::MAX, Just(i32::MAX)], layer: bool, zero_row: bool) {
        let Some(b) = ocl().first() else { return Ok(()) };
        if zero_row {
            x[..n].iter_mut().for_each(|v| *v = 0);
        }
        let kind = if layer { NormKind::Layer } else { NormKind::Rms };
        prop_assert_eq!(cpu().norm(&x, n, kind, eps).unwrap(), b.norm(&x, n, kind, eps).unwrap());
    }

    #[test]
    fn softmax_is_bit_identical(rows in 1usize..5, n in 1usize..400, wide: bool, seed: u64) {
        let Some(b) = ocl().first() else { return Ok(()) };
        let x: Vec<i32> = if wide {
            lcg_bytes(seed, rows * n * 4).chunks_exact(4).map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])).collect()
        } else {
            lcg_bytes(seed, rows * n).iter().map(|&v| v as i32 * 20_000).collect()
        };
        prop_assert_eq!(cpu().softmax(&x, n).unwrap(), b.softmax(&x, n).unwrap());
    }

    #[test]
    fn kl_is_bit_identical(p in prop::collection::vec(prop_oneof![0..=65536i32, Just(0), Just(i32::MAX)], 1..200), seed: u64) {
        let Some(b) = ocl().first() else { return Ok(()) };
        // q is positive wherever p is (else both return KL_INFINITE before any kernel runs).
        let q: Vec<i32> = p.iter().zip(lcg_bytes(seed, p.len())).map(|(&pi, r)| if pi == 0 && r < 0 { 0 } else { (r as i32).unsigned_abs() as i32 * 300 + 1 }).collect();
        prop_assert_eq!(cpu().kl_log_ratios(&p, &q).unwrap(), b.kl_log_ratios(&p, &q).unwrap());
        prop_assert_eq!(kl_divergence_q16_on(&cpu(), &p, &q).unwrap(), kl_divergence_q16_on(b, &p, &q).unwrap());
    }
}
