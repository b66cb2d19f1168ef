//! `cargo run --release -p aivm-benches --bin tee-sim [-- --runs 10000] [--json]`
//!
//! The optimistic track's economics (issue 18, seeds 002 Theorems 2–3 and 004): a worker whose
//! TEE is compromised returns wrong results on a fraction δ of its N jobs per epoch; each
//! provisional job is spot-checked at rate ρ by the chain's own rule
//! (`aivm_runtime::market::tee::spot_checked` over the challenge seed of a beacon and a job
//! id). Over ≥ 10 000 seeded runs per setting this measures
//!
//! 1. the probability that the cheat is caught within T epochs, against the seed's
//!    1 − (1 − ρ)^{δNT} (the simulation cheats on exactly ⌊δN⌉ jobs an epoch, as the formula
//!    assumes), with its 4σ binomial band;
//! 2. the collusion bound of Theorem 3: a worker staking 4.2 × its revenue per epoch who
//!    cheats (saving its whole cost on each wrong job, an upper bound) until caught and then
//!    loses its stake (a wrong result is slashed 100 %): its mean profit over T epochs, and the
//!    stake at which cheating breaks even, in epochs of revenue.
//!
//! Randomness is BLAKE3 of (setting, run, epoch, job): every number is reproducible.

use aivm_runtime::market::jobs::challenge_seed;
use aivm_runtime::market::tee::spot_checked;
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seeded runs per setting.
    #[arg(long, default_value_t = 10_000)]
    runs: u64,
    /// Print JSON lines instead of the table.
    #[arg(long)]
    json: bool,
}

/// One setting: spot-check rate (ppm), cheating fraction, jobs per epoch, epochs.
#[derive(Clone, Copy)]
struct Setting {
    rho_ppm: u32,
    delta: f64,
    n: u64,
    t: u64,
}

fn h(parts: &[u64]) -> [u8; 32] {
    let mut x = blake3::Hasher::new_derive_key("aivm 2026-12 tee-sim v1");
    for p in parts {
        x.update(&p.to_le_bytes());
    }
    *x.finalize().as_bytes()
}

/// The epoch in which run `run`'s cheat is first caught (`None`: not within T), cheating on
/// ⌊δN⌉ jobs an epoch. Each wrong job gets a fresh beacon and job id, as on the chain.
fn first_caught(s: Setting, tag: u64, run: u64) -> Option<u64> {
    let wrong = (s.delta * s.n as f64).round() as u64;
    for epoch in 0..s.t {
        for j in 0..wrong {
            let beacon = h(&[tag, run, epoch, j, 0]);
            let job = h(&[tag, run, epoch, j, 1]);
            if spot_checked(&challenge_seed(&beacon, &job), s.rho_ppm) {
                return Some(epoch);
            }
        }
    }
    None
}

fn main() {
    // The node's heap settings, so measured speeds are what `aivm` runs (model::heap).
    aivm::model::heap::keep_freed_memory();
    let a = Args::parse();
    let settings = [
        // The seed's Theorem 2 example (α = ρ = 0.003, δ = 0.01, N = 10 000, T = 10: 0.9504).
        Setting { rho_ppm: 3_000, delta: 0.01, n: 10_000, t: 10 },
        Setting { rho_ppm: 1_000, delta: 0.01, n: 10_000, t: 10 },
        Setting { rho_ppm: 100_000, delta: 0.01, n: 1_000, t: 1 },
        Setting { rho_ppm: 100_000, delta: 0.1, n: 100, t: 3 },
        Setting { rho_ppm: 10_000, delta: 0.05, n: 200, t: 5 },
        Setting { rho_ppm: 1_000, delta: 0.001, n: 10_000, t: 10 },
    ];
    if !a.json {
        println!("| ρ | δ | N | T | δNT | formula 1−(1−ρ)^δNT | measured ({} runs) | 4σ | agrees | break-even stake (epochs of revenue) | mean profit at 4.2× stake (epochs of revenue) |", a.runs);
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    }
    let mut all_agree = true;
    for (tag, s) in settings.iter().enumerate() {
        let rho = s.rho_ppm as f64 / 1e6;
        let wrong = (s.delta * s.n as f64).round();
        let formula = 1.0 - (1.0 - rho).powf(wrong * s.t as f64);
        let caught: Vec<Option<u64>> = (0..a.runs).map(|r| first_caught(*s, tag as u64, r)).collect();
        let measured = caught.iter().filter(|c| c.is_some()).count() as f64 / a.runs as f64;
        let sigma = (formula * (1.0 - formula) / a.runs as f64).sqrt();
        let agrees = (measured - formula).abs() <= 4.0 * sigma.max(1.0 / a.runs as f64);
        all_agree &= agrees;
        // Theorem 3 in units of one epoch's revenue R = N·pay: a wrong job saves at most its
        // pay (δN·pay = δ·R an epoch); caught, the worker loses its whole stake (100 %).
        // Expected savings over T epochs until caught vs stake × P(caught within T).
        let saved: f64 = caught.iter().map(|c| s.delta * c.map_or(s.t, |e| e + 1) as f64).sum::<f64>() / a.runs as f64;
        let break_even = if measured > 0.0 { saved / measured } else { f64::INFINITY };
        let stake = 4.2;
        let profit = saved - stake * measured;
        if a.json {
            println!(
                "{}",
                json!({"rho": rho, "delta": s.delta, "n": s.n, "t": s.t, "formula": formula, "measured": measured, "sigma4": 4.0 * sigma,
                       "agrees": agrees, "break_even_stake_epochs": break_even, "profit_at_4_2": profit})
            );
        } else {
            println!(
                "| {rho} | {} | {} | {} | {} | {formula:.4} | {measured:.4} | {:.4} | {} | {break_even:.3} | {profit:+.3} |",
                s.delta,
                s.n,
                s.t,
                wrong * s.t as f64,
                4.0 * sigma,
                if agrees { "yes" } else { "NO" }
            );
        }
    }
    if !all_agree {
        eprintln!("a measured detection rate is outside the formula's 4σ band");
        std::process::exit(1);
    }
}
