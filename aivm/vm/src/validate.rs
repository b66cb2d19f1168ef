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

/// The deepest nesting of `block`/`loop`/`if` in a function body. Stops counting (and says
/// so with `limit + 1`) once past `limit`, so a hostile body costs no more than a linear scan.
fn nesting(body: &wasmtime::wasmparser::FunctionBody<'_>, limit: u64) -> Result<u64, wasmtime::wasmparser::BinaryReaderError> {
    use wasmtime::wasmparser::Operator;
    let (mut depth, mut max) = (0u64, 0u64);
    for op in body.get_operators_reader()? {
        match op? {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                depth += 1;
                max = max.max(depth);
                if max > limit {
                    return Ok(max);
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(max)
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
            Payload::FunctionSection(r) => functions += r.count() as u64,
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
                let depth = nesting(&body, limits.max_nesting as u64).map_err(malformed)?;
                limit("nested blocks in one function", depth, limits.max_nesting as u64)?;
                info.max_locals = info.max_locals.max(locals);
                info.max_function_bytes = info.max_function_bytes.max(bytes);
                info.max_nesting = info.max_nesting.max(depth);
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
