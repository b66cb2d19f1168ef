//! A call-stack limit that is a function of the wasm alone.
//!
//! wasmtime stops deep recursion when the *native* stack passes `max_wasm_stack`, but how many
//! native bytes a frame takes depends on the compiler version, its optimisation level and the
//! CPU features it used. Whether a recursion traps, and so a transaction's result, would then
//! differ between validators. So before compiling, every defined function gets a prologue
//! that adds the function's *frame bound* to a depth counter and traps once the counter passes
//! [`Limits::max_stack_bytes`](crate::config::Limits); after each call the caller puts its own
//! depth back (covering every way a callee can return, without following branches).
//!
//! The frame bound is an upper bound on the native frame whatever the compiler does:
//! [`FRAME_BASE`] bytes (return address, frame pointer, callee-saved registers, the counter's
//! own local) plus 16 bytes for every parameter, local and value an operator produces (control
//! flow, stores and `drop` produce none; a call its results). Every value the compiler can
//! keep in a frame is one of those, and none needs more than a 16-byte slot (no SIMD; a
//! float register spills at its full 16-byte width on x86-64), so spill slots never outgrow
//! them. `max_wasm_stack` is set above the deterministic limit, so the native
//! check can only fire if this bound is wrong; `tests/stack_depth.rs` tries to make it so at
//! every optimisation level.
//!
//! Owned rather than done with a re-encoding crate: the transformation is consensus, and
//! splicing a few instructions into the original bytes keeps every other byte as deployed.

use crate::config::Limits;
use crate::error::ValidationError;
use wasmtime::wasmparser::{CompositeInnerType, Operator, Parser, Payload};

/// Bytes of every frame on top of its values.
pub const FRAME_BASE: u64 = 256;

/// Bytes of frame every parameter, local and operator may take.
pub const VALUE_BYTES: u64 = 16;

/// The export through which the VM reads the counter after a trap, to tell a stack
/// exhaustion from the contract's own `unreachable`. Contracts may not export this name.
pub const DEPTH_EXPORT: &str = "__aivm_stack_depth";

/// Bumps whenever the injected code changes: it is part of the compiled-module cache key.
pub const VERSION: u32 = 1;

const SECTION_GLOBAL: u8 = 6;
const SECTION_EXPORT: u8 = 7;
const SECTION_CODE: u8 = 10;

fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A section with id `id` and `contents`.
fn section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    uleb(out, contents.len() as u64);
    out.extend_from_slice(contents);
}

/// The frame bound of one function, in bytes, from its parameters, locals and the values its
/// operators produce.
pub fn frame_bound(params: u64, locals: u64, values: u64) -> u64 {
    FRAME_BASE.saturating_add(params.saturating_add(locals).saturating_add(values).saturating_mul(VALUE_BYTES))
}

/// `wasm` (already checked by [`crate::validate`]) with the depth counter injected. Refuses a
/// function whose frame bound alone is over the limit: it could never be called.
pub fn instrument(wasm: &[u8], limits: &Limits) -> Result<Vec<u8>, ValidationError> {
    Ok(instrument_with_frames(wasm, limits)?.0)
}

/// [`instrument`], also returning every defined function's frame bound in bytes (for tools
/// that show a developer how deep their code can call).
pub fn instrument_with_frames(wasm: &[u8], limits: &Limits) -> Result<(Vec<u8>, Vec<u64>), ValidationError> {
    let malformed = |e: wasmtime::wasmparser::BinaryReaderError| ValidationError::Malformed(e.to_string());
    let limit = limits.max_stack_bytes;
    // Pass 1: what the splice needs to know (types, function types, globals).
    let (mut types, mut functions, mut imported_functions, mut globals) = (Vec::<(u64, u64)>::new(), Vec::<u32>::new(), 0u32, 0u32);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(r) => {
                for group in r {
                    for ty in group.map_err(malformed)?.into_types() {
                        types.push(match &ty.composite_type.inner {
                            CompositeInnerType::Func(f) => (f.params().len() as u64, f.results().len() as u64),
                            _ => (0, 0),
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    // `validate` admits function imports only.
                    if let wasmtime::wasmparser::TypeRef::Func(t) = imp.map_err(malformed)?.ty {
                        functions.push(t);
                        imported_functions += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for f in r {
                    functions.push(f.map_err(malformed)?);
                }
            }
            Payload::GlobalSection(r) => globals = r.count(),
            _ => {}
        }
    }
    let depth = globals; // the counter: the last global
    let new_global = [0x7f, 0x01, 0x41, 0x00, 0x0b]; // i32, mutable, (i32.const 0) end

    // Pass 2: copy every section, extending the global, export and code sections.
    let mut out = Vec::with_capacity(wasm.len() + wasm.len() / 8 + 64);
    let mut have_globals = false;
    let mut function = 0usize;
    let mut code: Option<(u32, Vec<u8>)> = None;
    let mut frames = Vec::with_capacity(functions.len());
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(malformed)?;
        if let Payload::Version { range, .. } = &payload {
            out.extend_from_slice(&wasm[range.clone()]);
            continue;
        }
        if let Payload::CodeSectionEntry(body) = &payload {
            let Some((count, bodies)) = code.as_mut() else { return Err(ValidationError::Malformed("code entry outside a code section".into())) };
            let index = imported_functions as usize + function;
            let (params, _) =
                functions.get(index).and_then(|t| types.get(*t as usize)).ok_or_else(|| ValidationError::Malformed("function without a type".into()))?;
            function += 1;
            let results = |op: &Operator<'_>| -> u64 {
                let ty = match op {
                    Operator::Call { function_index } => functions.get(*function_index as usize).copied(),
                    Operator::CallIndirect { type_index, .. } => Some(*type_index),
                    _ => None,
                };
                ty.and_then(|t| types.get(t as usize)).map_or(1, |t| t.1)
            };
            frames.push(instrument_body(body, *params, &results, depth, imported_functions, limit, bodies)?);
            if function == *count as usize {
                write_code(&mut out, code.take());
            }
            continue;
        }
        if let Payload::End(_) = payload {
            break;
        }
        let Some((id, range)) = payload.as_section() else { continue };
        // The global section comes before exports; a module without one gets one there.
        if !have_globals && id != 0 && id != SECTION_GLOBAL && is_after_globals(id) {
            let mut s = Vec::new();
            uleb(&mut s, 1);
            s.extend_from_slice(&new_global);
            section(&mut out, SECTION_GLOBAL, &s);
            have_globals = true;
        }
        match payload {
            Payload::GlobalSection(r) => {
                let mut s = Vec::new();
                uleb(&mut s, r.count() as u64 + 1);
                s.extend_from_slice(&wasm[r.original_position()..r.range().end]);
                s.extend_from_slice(&new_global);
                section(&mut out, SECTION_GLOBAL, &s);
                have_globals = true;
            }
            Payload::ExportSection(r) => {
                let mut s = Vec::new();
                uleb(&mut s, r.count() as u64 + 1);
                s.extend_from_slice(&wasm[r.original_position()..r.range().end]);
                uleb(&mut s, DEPTH_EXPORT.len() as u64);
                s.extend_from_slice(DEPTH_EXPORT.as_bytes());
                s.push(0x03); // global
                uleb(&mut s, depth as u64);
                section(&mut out, SECTION_EXPORT, &s);
            }
            Payload::CodeSectionStart { count: 0, .. } => write_code(&mut out, Some((0, Vec::new()))),
            Payload::CodeSectionStart { count, .. } => code = Some((count, Vec::new())),
            _ => section(&mut out, id, &wasm[range]),
        }
    }
    Ok((out, frames))
}

/// The code section of `count` instrumented `bodies`.
fn write_code(out: &mut Vec<u8>, code: Option<(u32, Vec<u8>)>) {
    if let Some((count, bodies)) = code {
        let mut s = Vec::with_capacity(bodies.len() + 5);
        uleb(&mut s, count as u64);
        s.extend_from_slice(&bodies);
        section(out, SECTION_CODE, &s);
    }
}

/// Whether a section with `id` must come after the global section.
fn is_after_globals(id: u8) -> bool {
    // Order: type 1, import 2, function 3, table 4, memory 5, tag 13, global 6, export 7,
    // start 8, element 9, data count 12, code 10, data 11.
    matches!(id, 7..=12)
}

/// How many values `op` can add to a frame: none for control flow, stores and the like; a
/// call its callee's results (at least one, to be safe); any other operator one.
fn values_produced(op: &Operator<'_>, results: &dyn Fn(&Operator<'_>) -> u64) -> u64 {
    use Operator::*;
    match op {
        Nop | Drop | Block { .. } | Loop { .. } | If { .. } | Else | End | Br { .. } | BrIf { .. } | BrTable { .. } | Return | Unreachable => 0,
        LocalSet { .. } | GlobalSet { .. } => 0,
        I32Store { .. }
        | I64Store { .. }
        | F32Store { .. }
        | F64Store { .. }
        | I32Store8 { .. }
        | I32Store16 { .. }
        | I64Store8 { .. }
        | I64Store16 { .. }
        | I64Store32 { .. } => 0,
        MemoryCopy { .. }
        | MemoryFill { .. }
        | MemoryInit { .. }
        | DataDrop { .. }
        | TableCopy { .. }
        | TableInit { .. }
        | ElemDrop { .. }
        | TableSet { .. } => 0,
        Call { .. } | CallIndirect { .. } => results(op).max(1),
        _ => 1,
    }
}

/// Append `body` with the prologue and after-call restores to `out` (size-prefixed); returns
/// its frame bound.
fn instrument_body(
    body: &wasmtime::wasmparser::FunctionBody<'_>,
    params: u64,
    results: &dyn Fn(&Operator<'_>) -> u64,
    depth: u32,
    imported_functions: u32,
    limit: u64,
    out: &mut Vec<u8>,
) -> Result<u64, ValidationError> {
    let malformed = |e: wasmtime::wasmparser::BinaryReaderError| ValidationError::Malformed(e.to_string());
    let mut locals_reader = body.get_locals_reader().map_err(malformed)?;
    let (groups, groups_start, mut locals) = (locals_reader.get_count(), locals_reader.original_position(), 0u64);
    for _ in 0..groups {
        locals += locals_reader.read().map_err(malformed)?.0 as u64;
    }
    let locals_end = locals_reader.original_position();
    let start = body.range().start;
    let whole = body.as_bytes();
    // The declarations, then the counter's own local (`saved`: this frame's depth).
    let saved = params + locals;
    let mut b = Vec::with_capacity(whole.len() + 64);
    uleb(&mut b, groups as u64 + 1);
    b.extend_from_slice(&whole[groups_start - start..locals_end - start]);
    b.extend_from_slice(&[0x01, 0x7f]); // one i32

    // Count the values operators produce first: the frame bound goes into the prologue.
    let mut operators = 0u64;
    let mut reader = body.get_operators_reader().map_err(malformed)?;
    while !reader.eof() {
        operators += values_produced(&reader.read().map_err(malformed)?, results);
    }
    let frame = frame_bound(params, locals, operators);
    if frame > limit {
        return Err(ValidationError::Limit { what: "stack bytes of one function's frame", count: frame, limit });
    }
    // depth += frame; saved = depth; if depth > limit { unreachable }
    b.push(0x23);
    uleb(&mut b, depth as u64);
    b.push(0x41);
    sleb(&mut b, frame as i64);
    b.push(0x6a);
    b.push(0x22);
    uleb(&mut b, saved);
    b.push(0x24);
    uleb(&mut b, depth as u64);
    b.push(0x20);
    uleb(&mut b, saved);
    b.push(0x41);
    sleb(&mut b, limit as i64);
    b.extend_from_slice(&[0x4b, 0x04, 0x40, 0x00, 0x0b]); // i32.gt_u if unreachable end

    let mut reader = body.get_operators_reader().map_err(malformed)?;
    let mut copied = locals_end;
    while !reader.eof() {
        let op = reader.read().map_err(malformed)?;
        let restore = match op {
            Operator::Call { function_index } => function_index >= imported_functions,
            Operator::CallIndirect { .. } => true,
            _ => false,
        };
        if restore {
            let end = reader.original_position();
            b.extend_from_slice(&whole[copied - start..end - start]);
            copied = end;
            // depth = saved
            b.push(0x20);
            uleb(&mut b, saved);
            b.push(0x24);
            uleb(&mut b, depth as u64);
        }
    }
    b.extend_from_slice(&whole[copied - start..]);
    uleb(out, b.len() as u64);
    out.extend_from_slice(&b);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb_round_trip(v: i64) -> Vec<u8> {
        let mut o = Vec::new();
        sleb(&mut o, v);
        o
    }

    #[test]
    fn leb_encodings() {
        assert_eq!(leb_round_trip(0), [0]);
        assert_eq!(leb_round_trip(63), [63]);
        assert_eq!(leb_round_trip(64), [0xc0, 0x00]);
        assert_eq!(leb_round_trip(-1), [0x7f]);
        let mut o = Vec::new();
        uleb(&mut o, 624_485);
        assert_eq!(o, [0xe5, 0x8e, 0x26]);
    }
}
