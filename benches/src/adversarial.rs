//! Modules written to make the compiler slow (`gas-bench --adversarial`): compile time that is
//! not linear in the module is work a deploy does not pay for. Each generator returns wasm
//! text; sizes are chosen by the caller.

/// `functions` functions with `locals` i64 locals each, all live across a loop whose body reads
/// and writes every one of them `rounds` times (register allocation sees `locals` long live
/// ranges).
pub fn live_locals(functions: usize, locals: usize, rounds: usize) -> String {
    let mut body = String::new();
    for _ in 0..rounds {
        for j in 0..locals {
            let next = (j + 1) % locals;
            body.push_str(&format!("(local.set {} (i64.add (local.get {}) (local.get {})))\n", j + 1, j + 1, next + 1));
        }
    }
    let func = |f: usize| {
        format!(
            r#"(func (export "f{f}") (local i32) (local {})
    (loop $l
      {body}
      (br_if $l (i32.lt_u (local.tee 0 (i32.add (local.get 0) (i32.const 1))) (i32.const 2)))))"#,
            vec!["i64"; locals].join(" ")
        )
    };
    let funcs: Vec<String> = (0..functions).map(func).collect();
    format!(r#"(module (memory (export "memory") 1) {})"#, funcs.join("\n"))
}

/// `functions` functions of `depth` nested `if`s each, with a little work in both arms.
pub fn nested_ifs(functions: usize, depth: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for _ in 0..depth {
        open.push_str("(if (i32.lt_u (local.get 0) (i32.const 7)) (then (local.set 0 (i32.add (local.get 0) (i32.const 1)))\n");
        close.push_str(") (else (local.set 0 (i32.sub (local.get 0) (i32.const 1)))))\n");
    }
    let mut out = String::from(r#"(module (memory (export "memory") 1)"#);
    for f in 0..functions {
        out.push_str(&format!("(func (export \"f{f}\") (local i32) {open}{close})\n"));
    }
    out.push(')');
    out
}

/// `functions` functions of `count` `if`s one after another (not nested), each as in
/// `nested_ifs`: control flow without depth, to tell the cost of a branch from that of nesting.
pub fn flat_ifs(functions: usize, count: usize) -> String {
    let mut body = String::new();
    for _ in 0..count {
        body.push_str("(if (i32.lt_u (local.get 0) (i32.const 7)) (then (local.set 0 (i32.add (local.get 0) (i32.const 1)))) (else (local.set 0 (i32.sub (local.get 0) (i32.const 1)))))\n");
    }
    let mut out = String::from(r#"(module (memory (export "memory") 1)"#);
    for f in 0..functions {
        out.push_str(&format!("(func (export \"f{f}\") (local i32) {body})\n"));
    }
    out.push(')');
    out
}

/// One function of `count` `br_if`s out of one block (about 4 bytes a branch point: the
/// densest control flow a body can hold).
pub fn dense_br_ifs(functions: usize, count: usize) -> String {
    let body = "(br_if 0 (local.get 0))\n".repeat(count);
    let mut out = String::from(r#"(module (memory (export "memory") 1)"#);
    for f in 0..functions {
        out.push_str(&format!("(func (export \"f{f}\") (local i32) (block {body}))\n"));
    }
    out.push(')');
    out
}

/// One function with `locals` i64 locals set before and all read after `count` flat `if`s
/// (long live ranges across many blocks: the two costs of register allocation together).
pub fn live_across_ifs(locals: usize, count: usize) -> String {
    let mut body = String::new();
    for j in 1..=locals {
        body.push_str(&format!("(local.set {j} (i64.extend_i32_u (i32.add (local.get 0) (i32.const {j}))))\n"));
    }
    for _ in 0..count {
        body.push_str("(if (i32.lt_u (local.get 0) (i32.const 7)) (then (local.set 0 (i32.add (local.get 0) (i32.const 1)))) (else (local.set 0 (i32.sub (local.get 0) (i32.const 1)))))\n");
    }
    let mut sum = String::from("(i64.const 0)");
    for j in 1..=locals {
        sum = format!("(i64.add {sum} (local.get {j}))");
    }
    format!(
        r#"(module (memory (export "memory") 1) (func (export "f") (local i32) (local {}) {body} (i64.store (i32.const 0) {sum})))"#,
        vec!["i64"; locals].join(" ")
    )
}

/// The smallest contract: one empty entry point (the fixed cost of any deploy).
pub fn minimal() -> String {
    r#"(module (memory (export "memory") 1) (func (export "f")))"#.to_string()
}

/// One function of `blocks` nested `block`s, branched out of from the innermost with a
/// `br_table` naming every one (control flow with `blocks` edges per instruction).
pub fn br_table_fan(blocks: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..blocks {
        open.push_str(&format!("(block $b{i}\n"));
        close.push_str(&format!(") (local.set 0 (i32.add (local.get 0) (i32.const {i})))\n"));
    }
    let targets: Vec<String> = (0..blocks).map(|i| format!("$b{i}")).collect();
    let table = format!("(br_table {} (local.get 0))", targets.join(" "));
    format!(r#"(module (memory (export "memory") 1) (func (export "f") (local i32) {open}{table}{close}))"#)
}

/// `functions` functions of straight-line arithmetic, `ops` operations each: the typical
/// shape, the baseline the others are compared with.
pub fn straight_line(functions: usize, ops: usize) -> String {
    let mut out = String::from(r#"(module (memory (export "memory") 1)"#);
    for f in 0..functions {
        out.push_str(&format!("(func (export \"f{f}\") (local i32 i32)\n"));
        for k in 0..ops {
            out.push_str(&format!("(local.set {} (i32.add (local.get 0) (i32.mul (local.get 1) (i32.const {k}))))\n", k % 2));
        }
        out.push_str(")\n");
    }
    out.push(')');
    out
}
