//! Static checks at deploy time, before anything is compiled.
//!
//! wasmtime validates the wasm itself (with the features `config` enables); this pass
//! enforces the AIVM's own rules: size caps, only `aivm` imports that exist, a `memory`
//! export, at least one entry point, and no start function (a contract runs only when called).

use crate::config::Limits;
use crate::error::ValidationError;
use crate::host::IMPORTS;
use wasmtime::wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// The namespace every import must come from.
pub const IMPORT_MODULE: &str = "aivm";

fn limit(what: &'static str, count: u64, limit: u64) -> Result<(), ValidationError> {
    if count > limit {
        return Err(ValidationError::Limit { what, count, limit });
    }
    Ok(())
}

/// What validation learned about the module.
#[derive(Debug, Clone, Default)]
pub struct ModuleInfo {
    /// Names of exported functions (candidate entry points; the VM checks their type).
    pub exports: Vec<String>,
    /// The largest function: declared locals, body bytes, and control-flow nesting depth
    /// (the shapes that make compilation slower than linear; see `Limits`).
    pub max_locals: u64,
    pub max_function_bytes: u64,
    pub max_nesting: u64,
    /// The most branch points in one function (see `control_flow`), and in all of them.
    pub max_branches: u64,
    pub branches: u64,
    /// Σ over defined functions of `(branch points + values)² + body bytes × values / 2 +
    /// 40 × branch points`, where values = locals + params: Cranelift's register allocation
    /// takes time that grows with the square of a function's basic blocks and the values live
    /// across them, and with its code times the values competing for registers; each basic
    /// block costs more than its bytes (`gas-bench --adversarial`). The deploy price is
    /// linear in this (`GasSchedule::deploy_cost`).
    pub compile_work: u64,
    /// Host functions imported (names in the `aivm` namespace).
    pub imports: Vec<String>,
    /// Functions, imported and defined.
    pub functions: u64,
    /// Pages (64 KiB) of linear memory the module starts with: every call pays for them.
    pub initial_pages: u64,
    /// The `aivm.abi` custom section (what `#[entry_point]` records: one JSON line per entry
    /// with its argument and result types as written). Informational: never consensus.
    pub abi: Vec<u8>,
}

/// A function body's control flow: its deepest nesting of `block`/`loop`/`if`, and its
/// branch points (every operator that starts or ends a basic block: `block`, `loop`, `if`,
/// `else`, `br`, `br_if`, `br_table`). Nesting stops counting (and says so with `limit + 1`)
/// once past `limit`, so a hostile body costs no more than a linear scan.
fn control_flow(body: &wasmtime::wasmparser::FunctionBody<'_>, limit: u64) -> Result<(u64, u64), wasmtime::wasmparser::BinaryReaderError> {
    use wasmtime::wasmparser::Operator;
    let (mut depth, mut max, mut branches) = (0u64, 0u64, 0u64);
    for op in body.get_operators_reader()? {
        match op? {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                depth += 1;
                branches += 1;
                max = max.max(depth);
                if max > limit {
                    return Ok((max, branches));
                }
            }
            Operator::Else | Operator::Br { .. } | Operator::BrIf { .. } | Operator::BrTable { .. } => branches += 1,
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok((max, branches))
}

/// The `aivm.abi` custom section of a module (empty if it has none), without validating the
/// rest: a linear scan that stops at the first malformed section. Tools only; never consensus.
pub fn abi_section(wasm: &[u8]) -> Vec<u8> {
    let mut abi = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::CustomSection(c)) if c.name() == "aivm.abi" => abi.extend_from_slice(c.data()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    abi
}

/// Check `wasm` against the AIVM rules.
pub fn validate(wasm: &[u8], limits: &Limits) -> Result<ModuleInfo, ValidationError> {
    if wasm.len() > limits.max_module_bytes {
        return Err(ValidationError::TooLarge { size: wasm.len(), limit: limits.max_module_bytes });
    }
    let malformed = |e: wasmtime::wasmparser::BinaryReaderError| ValidationError::Malformed(e.to_string());
    let mut info = ModuleInfo::default();
    let mut functions: u64 = 0;
    let mut has_memory = false;
    // Parameters per type, the type of each defined function, and how many bodies were seen:
    // a function's parameters are locals to the compiler.
    let (mut type_params, mut defined, mut code_entries) = (Vec::<u64>::new(), Vec::<u32>::new(), 0usize);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.map_err(malformed)?;
                    if imp.module != IMPORT_MODULE {
                        return Err(ValidationError::ForbiddenImport { module: imp.module.into(), name: imp.name.into() });
                    }
                    match imp.ty {
                        TypeRef::Func(_) if IMPORTS.contains(&imp.name) => {
                            functions += 1;
                            info.imports.push(imp.name.to_string());
                        }
                        TypeRef::Func(_) => return Err(ValidationError::UnknownImport(imp.name.into())),
                        _ => return Err(ValidationError::ForbiddenImport { module: imp.module.into(), name: imp.name.into() }),
                    }
                }
            }
            Payload::TypeSection(r) => {
                for ty in r.into_iter_err_on_gc_types() {
                    type_params.push(ty.map_err(malformed)?.params().len() as u64);
                }
            }
            Payload::FunctionSection(r) => {
                functions += r.count() as u64;
                limit("functions", functions, limits.max_functions as u64)?;
                for t in r {
                    defined.push(t.map_err(malformed)?);
                }
            }
            Payload::TableSection(r) => {
                limit("tables", r.count() as u64, 1)?;
                for t in r {
                    let t = t.map_err(malformed)?;
                    let max = t.ty.maximum.unwrap_or(t.ty.initial).max(t.ty.initial);
                    limit("table elements", max, limits.max_table_elements as u64)?;
                }
            }
            Payload::MemorySection(r) => {
                limit("memories", r.count() as u64, 1)?;
                for m in r {
                    let m = m.map_err(malformed)?;
                    limit("initial memory pages", m.initial, limits.max_memory_pages as u64)?;
                    info.initial_pages = m.initial;
                }
            }
            Payload::GlobalSection(r) => limit("globals", r.count() as u64, limits.max_globals as u64)?,
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(malformed)?;
                    match e.kind {
                        _ if e.name == crate::stack::DEPTH_EXPORT => return Err(ValidationError::Feature(format!("the export name {:?} is reserved", e.name))),
                        ExternalKind::Memory if e.name == "memory" => has_memory = true,
                        ExternalKind::Func => info.exports.push(e.name.to_string()),
                        _ => {}
                    }
                }
            }
            Payload::StartSection { .. } => {
                return Err(ValidationError::Feature("start function".into()));
            }
            Payload::CodeSectionEntry(body) => {
                let bytes = body.range().len() as u64;
                limit("bytes in one function body", bytes, limits.max_function_bytes as u64)?;
                let mut locals: u64 = 0;
                for l in body.get_locals_reader().map_err(malformed)? {
                    locals += l.map_err(malformed)?.0 as u64;
                    limit("locals in one function", locals, limits.max_locals as u64)?;
                }
                let (depth, branches) = control_flow(&body, limits.max_nesting as u64).map_err(malformed)?;
                limit("nested blocks in one function", depth, limits.max_nesting as u64)?;
                info.max_locals = info.max_locals.max(locals);
                info.max_function_bytes = info.max_function_bytes.max(bytes);
                info.max_nesting = info.max_nesting.max(depth);
                info.max_branches = info.max_branches.max(branches);
                info.branches = info.branches.saturating_add(branches);
                let params = defined.get(code_entries).and_then(|t| type_params.get(*t as usize)).copied().unwrap_or(0);
                code_entries += 1;
                let values = locals.saturating_add(params);
                let width = branches.saturating_add(values);
                let pressure = bytes.saturating_mul(values) / 2;
                let work = width.saturating_mul(width).saturating_add(pressure).saturating_add(branches.saturating_mul(40));
                info.compile_work = info.compile_work.saturating_add(work);
            }
            Payload::CustomSection(c) if c.name() == "aivm.abi" => info.abi.extend_from_slice(c.data()),
            _ => {}
        }
    }
    limit("functions", functions, limits.max_functions as u64)?;
    info.functions = functions;
    if !has_memory {
        return Err(ValidationError::MissingMemory);
    }
    if info.exports.is_empty() {
        return Err(ValidationError::NoEntryPoints);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(wat: &str) -> ModuleInfo {
        validate(&wat::parse_str(wat).expect("wat"), &Limits::default()).expect("valid")
    }

    /// The deploy price's compile work: per function (branch points + values)² + bytes × values / 2 + 40 × branch points,
    /// summed; imported functions have no body and add nothing.
    #[test]
    fn compile_work_counts_branch_points_locals_and_params() {
        let ifs = "(if (local.get 0) (then (nop)) (else (nop)))".repeat(10);
        let m = info(&format!(
            r#"(module (import "aivm" "abort" (func (param i32 i32)))
                (memory (export "memory") 1)
                (func (export "a") (local i32 i64 i64) {ifs})
                (func (param i32 i32) (block (loop (br_if 1 (local.get 0)) (br 0))))
                (func (export "b")))"#
        ));
        // a: 10 × (if, else) + 3 locals; the second: block, loop, br_if, br + 2 params.
        assert_eq!((m.max_branches, m.max_nesting), (20, 2));
        let bodies: Vec<u64> = Parser::new(0)
            .parse_all(
                &wat::parse_str(format!(r#"(module (func (local i32 i64 i64) {ifs}) (func (param i32 i32) (block (loop (br_if 1 (local.get 0)) (br 0)))))"#))
                    .unwrap(),
            )
            .filter_map(|p| match p.unwrap() {
                Payload::CodeSectionEntry(b) => Some(b.range().len() as u64),
                _ => None,
            })
            .collect();
        assert_eq!(m.compile_work, 23 * 23 + bodies[0] * 3 / 2 + 20 * 40 + 6 * 6 + bodies[1] * 2 / 2 + 4 * 40);
        // The price grows with it: the same bytes in one function cost more than spread out.
        let s = crate::GasSchedule::default();
        let one = format!(r#"(module (memory (export "memory") 1) (func (export "f") (local i32) {}))"#, ifs.repeat(20));
        let spread =
            format!(r#"(module (memory (export "memory") 1) {})"#, (0..20).map(|i| format!(r#"(func (export "f{i}") (local i32) {ifs})"#)).collect::<String>());
        let (one, spread) = (wat::parse_str(&one).unwrap(), wat::parse_str(&spread).unwrap());
        let price = |w: &[u8]| crate::deploy_price(w, &Limits::default(), &s).unwrap();
        assert!(price(&one) > price(&spread) + 100 * s.deploy_per_work * 20 * 20, "{} vs {}", price(&one), price(&spread));
    }
}
