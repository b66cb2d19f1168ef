//! The deterministic engine configuration and the limits every contract runs under.

use crate::gas::GasSchedule;
use wasmtime::{Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// Static and runtime limits. Deploy-time limits are checked by [`crate::validate`];
/// runtime limits by the store and the pooling allocator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest accepted module, in bytes.
    pub max_module_bytes: usize,
    /// Most functions (imported + defined).
    pub max_functions: u32,
    /// Most locals in one function, most bytes in one function body, and the deepest
    /// nesting of blocks in one: Cranelift's register allocation and control-flow passes grow
    /// faster than linearly in these (`gas-bench --adversarial`), so they are bounded before
    /// anything is compiled, and the deploy price covers the worst module within them.
    pub max_locals: u32,
    pub max_function_bytes: u32,
    pub max_nesting: u32,
    /// Most globals.
    pub max_globals: u32,
    /// Most elements in the (single) table.
    pub max_table_elements: u32,
    /// Most linear-memory pages (64 KiB each), initial or grown.
    pub max_memory_pages: u32,
    /// Bytes of call stack a contract may use, counted by a bound on every frame that depends
    /// only on the wasm (`stack.rs`): where a deep recursion traps is the same on every
    /// machine, compiler version and optimisation level.
    pub max_stack_bytes: u64,
    /// Native stack for wasm frames, a backstop above `max_stack_bytes` that only a wrong
    /// frame bound could reach. VM calls run on threads with at least 2 MiB of stack.
    pub max_wasm_stack: usize,
    /// Bytes of live tensors one call may hold in the host arena.
    pub tensor_arena_bytes: usize,
    /// Instances the pooling allocator keeps ready: the most calls that run at once (more
    /// wait for a slot, see `slots.rs`). Size it for the executor's threads plus queries.
    pub pool_instances: u32,
    /// Bytes of compiled contracts kept in memory (least recently used evicted first): code
    /// from proposals that never finalize must not stay forever.
    pub compiled_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_module_bytes: 2 << 20,
            max_functions: 20_000,
            max_locals: 1_024,
            max_function_bytes: 128 << 10,
            max_nesting: 256,
            max_globals: 1_024,
            max_table_elements: 16_384,
            // 1 MiB, this machine's L2 per core: a chain of dependent loads over more waited
            // 13-16 ns a load at 2-4 MiB on a quiet machine but ~150-235 ns from 4 MiB up
            // whenever the shared L3 was contended (DRAM and TLB misses under nested paging),
            // beyond what any load price covers without overcharging every contract; at
            // 1 MiB the worst seen is ~14 ns (spec/gas.md, "Worst-case operators").
            max_memory_pages: 16,
            max_stack_bytes: 768 << 10,
            max_wasm_stack: 1 << 20,
            tensor_arena_bytes: 256 << 20,
            pool_instances: 64,
            compiled_cache_bytes: 256 << 20,
        }
    }
}

/// Build the wasmtime `Config` every AIVM node must use. Each setting exists for
/// determinism, bounded resource use, or speed; changing any of them changes the
/// compatibility hash and so invalidates the compiled-module cache.
pub fn engine_config(limits: &Limits, schedule: &GasSchedule) -> Config {
    let mut c = Config::new();
    // Gas: fuel is consumed per operator (the schedule's table), and bulk memory
    // operations pay per byte through `OperatorCost::variable`.
    c.consume_fuel(true);
    c.operator_cost(schedule.operator_costs());
    // Epoch checks let a query (never a consensus call) stop at a wall-clock deadline
    // (`deadline.rs`); consensus calls get a deadline no clock reaches.
    c.epoch_interruption(true);
    // Floats are allowed but every NaN is canonicalised, so NaN bit patterns cannot
    // differ between CPUs.
    c.cranelift_nan_canonicalization(true);
    // Threads (shared memory, atomics), GC, function references and exceptions are not
    // even compiled into our wasmtime build (its `threads` and `gc` features are off), so
    // modules using them fail validation.
    // SIMD is off until it is priced; relaxed SIMD is non-deterministic by design.
    c.wasm_simd(false);
    c.wasm_relaxed_simd(false);
    // Bulk memory is on (Rust emits memory.copy/fill) and priced per byte.
    c.wasm_bulk_memory(true);
    // Proposals whose cost model we have not measured stay off.
    c.wasm_multi_memory(false);
    c.wasm_memory64(false);
    c.wasm_gc(false);
    c.wasm_tail_call(false);
    c.wasm_custom_page_sizes(false);
    c.wasm_wide_arithmetic(false);
    c.wasm_stack_switching(false);
    // A trap on deep recursion, not a crashed host.
    c.max_wasm_stack(limits.max_wasm_stack);
    // Optimised code is cached, so compile time is paid once per module.
    c.cranelift_opt_level(OptLevel::Speed);
    // Backtraces cost time on every trap and carry no consensus value.
    c.wasm_backtrace_max_frames(None);
    // The pooling allocator reuses pre-mapped slots: instantiation is a few µs.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(limits.pool_instances)
        .total_memories(limits.pool_instances)
        .total_tables(limits.pool_instances)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(limits.max_table_elements as usize)
        .max_memory_size(limits.max_memory_pages as usize * 65536)
        // Reset only the pages a call dirtied (found with Linux's PAGEMAP_SCAN where the
        // kernel has it) by memset, keeping them mapped: the next call takes no page faults.
        .pagemap_scan(wasmtime::Enabled::Auto)
        // The whole memory stays mapped, so a page's first touch in a call is never a page
        // fault: one price per page (`GasSchedule::memory_page`) covers it.
        .linear_memory_keep_resident(limits.max_memory_pages as usize * 65536)
        .table_keep_resident(64 << 10);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}
