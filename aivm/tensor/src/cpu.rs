//! What this CPU can run, detected once per process. Every kernel that picks a SIMD path asks
//! here; results never depend on the answer (all paths are bit-identical), only speed does.

use std::sync::OnceLock;

/// The instruction-set extensions the kernels use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub avx2: bool,
    /// AVX-512 F with VNNI (the int8 dot-product instructions).
    pub avx512_vnni: bool,
    /// AVX-512 F with DQ (64-bit integer multiplies: the Freivalds `Y·R` products).
    pub avx512_dq: bool,
    /// AVX-512 F with BW (16-bit multiply-adds: the Freivalds `Y·R` products on 16-bit halves).
    pub avx512_bw: bool,
    /// AVX-512 F with BW and VBMI (byte permutes across the register: Y's elements packed to
    /// and from three bytes).
    pub avx512_vbmi: bool,
}

/// This CPU's features.
pub fn features() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    use std::arch::is_x86_feature_detected as has;
    let f = has!("avx512f");
    Features {
        avx2: has!("avx2"),
        avx512_vnni: f && has!("avx512vnni"),
        avx512_dq: f && has!("avx512dq"),
        avx512_bw: f && has!("avx512bw"),
        avx512_vbmi: f && has!("avx512bw") && has!("avx512vbmi"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Features {
    Features::default()
}
