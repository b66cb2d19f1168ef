//! Wall-clock timing with warm-up and medians (medians resist the other core's noise).

use std::time::{Duration, Instant};

/// Median nanoseconds of `f` over at least `min_runs` runs and `min_time` in total.
pub fn median_ns(mut f: impl FnMut(), min_runs: usize, min_time: Duration) -> f64 {
    f(); // warm-up: page faults, caches, lazy initialisation
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < min_runs || start.elapsed() < min_time {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_nanos() as f64);
        if samples.len() >= 100_000 {
            break;
        }
    }
    median(&mut samples)
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
