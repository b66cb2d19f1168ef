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
                        TypeRef::Func(_) if IMPORTS.contains(&imp.name) => functions += 1,
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
                }
            }
            Payload::GlobalSection(r) => limit("globals", r.count() as u64, limits.max_globals as u64)?,
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(malformed)?;
                    match e.kind {
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
                let mut locals: u64 = 0;
                for l in body.get_locals_reader().map_err(malformed)? {
                    locals += l.map_err(malformed)?.0 as u64;
                    limit("locals in one function", locals, limits.max_locals as u64)?;
                }
            }
            _ => {}
        }
    }
    limit("functions", functions, limits.max_functions as u64)?;
    if !has_memory {
        return Err(ValidationError::MissingMemory);
    }
    if info.exports.is_empty() {
        return Err(ValidationError::NoEntryPoints);
    }
    Ok(info)
}
