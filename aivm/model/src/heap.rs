//! The process heap for inference: keep freed memory instead of returning it to the system.
//!
//! A forward step allocates buffers of hundreds of KiB to megabytes (activations, GEMM
//! outputs, attention rows) and frees them at its end. glibc serves such sizes with fresh
//! `mmap`s (its threshold starts at 128 KiB and only creeps up) and trims the heap's top as
//! soon as 128 KiB are free, so every step paid page faults and zeroing for memory it had a
//! moment before: ~15 % of a 512-token prompt's profile. [`keep_freed_memory`] raises the
//! thresholds so those buffers come from the heap and stay there.
//!
//! Measured (BENCHMARKS.md, "Side by side with llama.cpp"): a prompt +25–50 % on one thread,
//! the worker's committed run unchanged. mimalloc removed the same churn but made the
//! committed run with one engine thread up to 2× slower (memory passed between the engine
//! and the committing thread), so the allocator stays glibc's, tuned. Nothing computed
//! depends on this: it changes where buffers live, not what is in them.

/// Allocations up to this size come from the heap, not `mmap` (glibc's ceiling is 32 MiB
/// on 64-bit; a prompt step's largest buffers — the logits of 512 rows excepted — are
/// a few MiB).
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// The heap's top is returned to the system only when this much of it is free.
pub const TRIM_THRESHOLD: usize = 256 << 20;
/// Extra bytes asked of the system whenever the heap grows, so a step's growth is one call.
pub const TOP_PAD: usize = 16 << 20;

/// Apply the thresholds above to glibc's allocator; call once at the start of a binary that
/// runs the model (`aivm`, the benches). Returns whether the allocator took all three (always
/// false where the allocator is not glibc's: nothing to tune there).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |param, value: usize| {
            let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt only records the parameter; it is safe to call at any time.
            unsafe { libc::mallopt(param, value) == 1 }
        };
        // All three: raising the mmap threshold alone moves the buffers onto a heap that is
        // still trimmed after every step, which measured slower than not tuning at all.
        let a = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        let b = set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        let c = set(libc::M_TOP_PAD, TOP_PAD);
        a && b && c
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        // A threshold above glibc's ceiling would be refused (mallopt returns 0) and the
        // tuning silently lost; this pins that all three are accepted.
        assert!(keep_freed_memory());
        // Memory still works, large blocks included.
        let v = vec![7u8; MMAP_THRESHOLD / 2];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 7 * (MMAP_THRESHOLD / 2));
    }
}
