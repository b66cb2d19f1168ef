//! glibc malloc settings for a process that executes blocks on several threads.
//!
//! glibc gives each thread an arena whose heap it grows page by page with `mprotect` and
//! trims back when its top is free. In a multi-threaded process every `mprotect` takes the
//! process-wide mmap lock for writing and shoots down the TLBs of the other cores, so two
//! Block-STM workers calling contracts slowed each other down: ~6 600 `mprotect`s per 20 000
//! calls, and the same block split over two threads ran only 1.33–1.45× faster than on one
//! (BENCHMARKS.md, issue 19). Growing arenas 64 MiB at a time and never trimming them removes
//! those calls; the memory stays with the process, bounded by the arenas' own 64 MiB heaps.

/// Apply the settings. Call once at the start of `main`, before other threads exist.
pub fn tune_for_threads() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
