//! `o += a·x` over f64 slices, the one loop the conversion spends its time in, compiled for
//! AVX-512 where the CPU has it. Each element gets one IEEE-754 multiply and one add whatever
//! the width (Rust never fuses them into a multiply-add), so every path gives the same bits.

/// `o[i] += a · x[i]` for `i < min(len)`.
#[inline]
pub fn add_scaled(o: &mut [f64], a: f64, x: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { add_scaled_avx512(o, a, x) };
    }
    portable(o, a, x)
}

#[inline(always)]
fn portable(o: &mut [f64], a: f64, x: &[f64]) {
    o.iter_mut().zip(x).for_each(|(o, &x)| *o += a * x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_scaled_avx512(o: &mut [f64], a: f64, x: &[f64]) {
    portable(o, a, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_gives_the_portable_bits() {
        let x: Vec<f64> = (0..77).map(|i| (i as f64 * 0.731).sin() * 1e3).collect();
        let mut want: Vec<f64> = (0..77).map(|i| (i as f64 * 0.17).cos()).collect();
        let mut got = want.clone();
        portable(&mut want, -0.3141592653589793, &x);
        add_scaled(&mut got, -0.3141592653589793, &x);
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}
