//! Contracts written to be slow per gas (`gas-bench --adversarial`): for every priced wasm
//! operator, the shape an attacker would pick — dependent chains (latency, not throughput),
//! loads chasing pointers over growing working sets, first touches of fresh pages, bulk
//! operations at every length. Each module's `run` reads an iteration count `K` (u32, little
//! endian) from its input, runs `setup` once and the `step` `K` times; the bench times two
//! counts and takes the difference, so instantiation and setup cancel out.

/// One adversarial case: what it attacks and its module.
pub struct OpCase {
    /// The priced operation (or class) it attacks, as the schedule names it.
    pub operation: &'static str,
    /// What this shape does.
    pub shape: String,
    pub wat: String,
    /// Whether the access is bound by memory latency (the issue's 10x allowance) rather than
    /// computation (3x).
    pub memory_bound: bool,
    /// The two iteration counts to time, when the step must not repeat past the first (a
    /// first touch of fresh memory happens once); `None` lets the bench pick.
    pub counts: Option<(u32, u32)>,
    /// Gas the VM charges outside the fuel per iteration (the memory pages a touch needs).
    pub pages_per_iteration: u64,
    /// Pages of memory the module declares: over the VM's cap it is measured on a VM without
    /// the cap, to show what the cap excludes.
    pub pages: u32,
}

/// A module: `pages` of memory, locals `$x` (i64), `$f` (f64), `$p`/`$i`/`$k` (i32), one
/// passive data segment and a table of 64 (for bulk operations), `setup` then `K` × `step`.
pub fn module(pages: u32, setup: &str, step: &str) -> String {
    format!(
        r#"(module
  (import "aivm" "input_read" (func $input (param i32)))
  (memory (export "memory") {pages})
  (table 64 funcref)
  (elem $e func $noop $noop $noop $noop $noop $noop $noop $noop)
  (data $d "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
  (func $noop)
  (func $id (param i64) (result i64) (local.get 0))
  (type $t (func (param i64) (result i64)))
  (elem (i32.const 0) $id)
  (func (export "run") (local $x i64) (local $f f64) (local $p i32) (local $i i32) (local $k i32) (local $j i32) (local $t i32)
    (call $input (i32.const 0))
    (local.set $k (i32.load (i32.const 0)))
    (local.set $f (f64.const 1.5))
    (local.set $x (i64.const 3))
    {setup}
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
      {step}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (drop (local.get $x)) (drop (local.get $f)) (drop (local.get $p))))"#
    )
}

fn repeat(n: usize, s: &str) -> String {
    vec![s; n].join("\n")
}

/// Unrolled steps per loop iteration: loop overhead is then a small part of the gas.
const UNROLL: usize = 16;

/// Sattolo's shuffle of `slots` 64-byte slots (one cache line each) into one cycle, each slot
/// holding the address of the next; `$p` starts at slot 0. A random cycle defeats prefetchers.
fn pointer_cycle(slots: u32) -> String {
    format!(
        r#"(local.set $i (i32.const 0))
    (block $b (loop $fill
      (br_if $b (i32.ge_u (local.get $i) (i32.const {slots})))
      (i32.store (i32.shl (local.get $i) (i32.const 6)) (i32.shl (local.get $i) (i32.const 6)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fill)))
    (local.set $i (i32.const {last}))
    (block $b2 (loop $shuffle
      (br_if $b2 (i32.eqz (local.get $i)))
      ;; j = lcg() mod i, then swap slot i and slot j
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))
      (local.set $j (i32.shl (i32.rem_u (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 33))) (local.get $i)) (i32.const 6)))
      (local.set $p (i32.shl (local.get $i) (i32.const 6)))
      (local.set $t (i32.load (local.get $p)))
      (i32.store (local.get $p) (i32.load (local.get $j)))
      (i32.store (local.get $j) (local.get $t))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $shuffle)))
    (local.set $i (i32.const 0))
    (local.set $p (i32.const 0))"#,
        last = slots - 1
    )
}

/// Every case, smallest working sets first; `cap_pages` is the VM's memory cap (cases past it
/// show what the cap excludes).
pub fn cases(cap_pages: u32) -> Vec<OpCase> {
    let mut v = Vec::new();
    let case = |operation: &'static str, shape: String, pages: u32, setup: &str, step: &str, memory_bound: bool| OpCase {
        operation,
        shape,
        wat: module(pages, setup, step),
        memory_bound,
        counts: None,
        pages_per_iteration: 0,
        pages,
    };

    // Loads: a dependent chain over working sets from 4 KiB (L1) to 16 MiB (past the cap).
    for log in [12u32, 14, 16, 18, 19, 20, 21, 22, 23, 24] {
        let bytes = 1u32 << log;
        let pages = (bytes / 65536).max(1);
        let slots = bytes / 64;
        let step = format!("(local.set $p {})", "(i32.load ".repeat(UNROLL) + "(local.get $p)" + &")".repeat(UNROLL));
        let mut chase = case("wasm_load", format!("pointer chase over {} KiB", bytes >> 10), pages, &pointer_cycle(slots), &step, true);
        // 2^20 dependent loads between the two counts.
        chase.counts = Some((1 << 16, 1 << 17));
        v.push(chase);
    }
    // Independent loads and stores at random addresses (memory-level parallelism helps these).
    for log in [16u32, 20, 22, 24] {
        let mask = (1u32 << log) - 4;
        let lcg = "(local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1442695040888963407)))";
        let addr = format!("(i32.and (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 29))) (i32.const {mask}))");
        let pages = (1u32 << log) / 65536;
        let store = format!("{lcg} (i32.store {addr} (local.get $i))");
        let load = format!("{lcg} (local.set $p (i32.add (local.get $p) (i32.load {addr})))");
        // Every page touched once in both runs (setup), so first touches cancel out.
        let touch_all = format!("(local.set $p (i32.const 0)) (block $t (loop $u (br_if $t (i32.ge_u (local.get $p) (i32.const {}))) (i32.store (local.get $p) (i32.const 1)) (local.set $p (i32.add (local.get $p) (i32.const 4096))) (br $u)))", 1u32 << log);
        for (operation, shape, step) in [("wasm_store", "stores", store), ("wasm_load", "loads", load)] {
            let mut c = case(operation, format!("random {shape} over {} KiB", 1u32 << (log - 10)), pages, &touch_all, &repeat(UNROLL, &step), true);
            c.counts = Some((1 << 14, 1 << 15));
            v.push(c);
        }
    }
    // First touches: one store per 4 KiB page, every page of the cap once (each
    // iteration is 16 stores, one 64 KiB page), initial and grown; the pages are charged
    // by the VM (`memory_page`), not by fuel.
    let step = "(i32.store8 (local.get $p) (i32.const 1)) (local.set $p (i32.add (local.get $p) (i32.const 4096)))";
    let mut c = case("memory_page", "one store per 4 KiB page of initial memory".into(), cap_pages, "", &repeat(UNROLL, step), true);
    (c.counts, c.pages_per_iteration) = (Some((0, cap_pages)), 1);
    v.push(c);
    let grow = format!("(drop (memory.grow (i32.const {})))", cap_pages - 1);
    let mut c = case("memory_page", "one store per 4 KiB page of grown memory".into(), 1, &grow, &repeat(UNROLL, step), true);
    (c.counts, c.pages_per_iteration) = (Some((0, cap_pages)), 1);
    v.push(c);

    // Computation: dependent chains of each expensive class.
    let float = |name: &str, expr: &str| (name.to_string(), format!("(local.set $f {expr})"));
    let chains: Vec<(&'static str, (String, String))> = vec![
        ("wasm_simple", ("i64.mul".into(), "(local.set $x (i64.mul (local.get $x) (i64.const 3)))".into())),
        ("wasm_simple", ("i64.popcnt+clz".into(), "(local.set $x (i64.add (i64.clz (local.get $x)) (i64.popcnt (local.get $x))))".into())),
        ("wasm_simple", ("select".into(), "(local.set $x (select (local.get $x) (i64.const 7) (i64.eqz (local.get $x))))".into())),
        ("wasm_simple", ("global-free local churn".into(), "(local.set $p (local.get $i)) (local.set $i (local.get $p))".into())),
        ("wasm_div", ("i64.div_u".into(), "(local.set $x (i64.div_u (i64.const -1) (i64.or (local.get $x) (i64.const 1))))".into())),
        ("wasm_div", ("i64.rem_s".into(), "(local.set $x (i64.rem_s (i64.const 9223372036854775807) (i64.or (local.get $x) (i64.const 3))))".into())),
        ("wasm_div", float("f64.div", "(f64.div (local.get $f) (f64.const 1.0000001))")),
        ("wasm_div", float("f64.sqrt", "(f64.sqrt (local.get $f))")),
        ("wasm_float", float("f64.add", "(f64.add (local.get $f) (f64.const 0.5))")),
        ("wasm_float", float("f64.mul", "(f64.mul (local.get $f) (f64.const 1.0000001))")),
        ("wasm_simple", float("f64.min", "(f64.min (local.get $f) (f64.const 2.5))")),
        ("wasm_simple", float("f64.max", "(f64.max (local.get $f) (f64.const 0.5))")),
        ("wasm_simple", float("f64.nearest", "(f64.nearest (local.get $f))")),
        ("wasm_simple", float("f64.floor", "(f64.floor (local.get $f))")),
        ("wasm_simple", float("f64.trunc", "(f64.trunc (local.get $f))")),
        ("wasm_simple", float("f64.copysign", "(f64.copysign (local.get $f) (f64.const -1))")),
        ("wasm_simple", float("f32 demote/promote", "(f64.promote_f32 (f32.demote_f64 (local.get $f)))")),
        ("wasm_simple", float("i64.trunc_sat/f64.convert", "(f64.convert_i64_s (i64.trunc_sat_f64_s (local.get $f)))")),
        ("wasm_simple", float("i32.trunc/f64.convert", "(f64.convert_i32_u (i32.trunc_f64_u (local.get $f)))")),
        ("wasm_simple", float("f64.reinterpret", "(f64.reinterpret_i64 (i64.reinterpret_f64 (local.get $f)))")),
        ("wasm_call", ("call".into(), "(local.set $x (call $id (local.get $x)))".into())),
        ("wasm_call", ("call_indirect".into(), "(local.set $x (call_indirect (type $t) (local.get $x) (i32.const 0)))".into())),
        ("wasm_simple", ("global-free br_table".into(), "(block $a (block $b (block $c (br_table $a $b $c (i32.and (local.get $i) (i32.const 3))))))".into())),
        ("wasm_memory_grow", ("memory.grow 0".into(), "(local.set $p (memory.grow (i32.const 0)))".into())),
        ("wasm_memory_grow", ("memory.size".into(), "(local.set $p (i32.add (local.get $p) (memory.size)))".into())),
    ];
    for (operation, (shape, step)) in chains {
        v.push(case(operation, format!("{shape} chain"), 1, "", &repeat(UNROLL, &step), false));
    }
    // Subnormal operands, which some CPUs handle in microcode.
    let subnormal = "(local.set $f (f64.const 1e-310))";
    for (operation, op) in [
        ("wasm_float", "(f64.mul (local.get $f) (f64.const 1.0))"),
        ("wasm_float", "(f64.add (local.get $f) (f64.const 1e-320))"),
        ("wasm_div", "(f64.div (local.get $f) (f64.const 1.0))"),
        ("wasm_div", "(f64.sqrt (local.get $f))"),
    ] {
        let name = op.split_whitespace().next().unwrap_or("").trim_start_matches('(');
        v.push(case(operation, format!("{name} subnormal chain"), 1, subnormal, &repeat(UNROLL, &format!("(local.set $f {op})")), false));
    }
    // Bulk operations at small and large lengths.
    for len in [0u32, 1, 8, 64, 4096, 65536] {
        let fill = format!("(memory.fill (local.get $p) (i32.const 7) (i32.const {len}))");
        v.push(case("bulk_per_byte", format!("memory.fill of {len} B"), 2, "", &repeat(UNROLL, &fill), false));
        let copy = format!("(memory.copy (i32.const 65536) (local.get $p) (i32.const {len}))");
        v.push(case("bulk_per_byte", format!("memory.copy of {len} B"), 2, "", &repeat(UNROLL, &copy), false));
    }
    for len in [0u32, 1, 8, 64] {
        let init = format!("(memory.init $d (local.get $p) (i32.const 0) (i32.const {len}))");
        v.push(case("bulk_per_byte", format!("memory.init of {len} B"), 1, "", &repeat(UNROLL, &init), false));
    }
    for len in [0u32, 1, 8, 32] {
        let copy = format!("(table.copy (i32.const 32) (i32.const 0) (i32.const {len}))");
        v.push(case("wasm_simple", format!("table.copy of {len}"), 1, "", &repeat(UNROLL, &copy), false));
        let init = format!("(table.init $e (i32.const 8) (i32.const 0) (i32.const {}))", len.min(8));
        v.push(case("wasm_simple", format!("table.init of {}", len.min(8)), 1, "", &repeat(UNROLL, &init), false));
    }
    v.push(case("wasm_simple", "table.size/get/set".into(), 1, "", &repeat(UNROLL, "(table.set (i32.const 1) (table.get (i32.const 2)))"), false));
    v
}
