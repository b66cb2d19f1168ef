//! TENSOR_* opcodes over the per-call arena.

use super::memory::{check_len, read, write};
use super::{charge, enter, host_err, Ctx, HostState};
use crate::backend::Backend;
use crate::error::HostError;
use crate::gas::GasSchedule;
use crate::gas::LinearGasCost;
use crate::tensor::{matmul, ops, DType, Handle, Tensor, MAX_RANK};
use wasmtime::Linker;

/// Bytes written by `tensor_info`: dtype, rank, then four dimensions, each a u32 LE.
pub const TENSOR_INFO_BYTES: usize = 24;

fn handle(h: i32) -> Handle {
    h as u32
}

/// Charge a per-element price for output of `elems` elements and check the arena can take it.
fn prepare(c: &mut Ctx<'_>, op: &'static str, price: LinearGasCost, elems: usize, out_bytes: usize) -> wasmtime::Result<()> {
    let gas = c.data().schedule.tensor_op(price.cost(elems as u64), out_bytes as u64);
    charge(c, op, gas)?;
    c.data().arena.reserve_check(out_bytes).map_err(host_err)
}

fn store(c: &mut Ctx<'_>, t: Result<Tensor, crate::tensor::TensorError>) -> wasmtime::Result<i32> {
    let t = t.map_err(host_err)?;
    c.data_mut().arena.insert(t).map(|h| h as i32).map_err(host_err)
}

/// A unary op on tensor `h` whose output has the same element count.
fn unary(
    c: &mut Ctx<'_>,
    op: &'static str,
    h: i32,
    price: fn(&GasSchedule) -> LinearGasCost,
    out_dtype: DType,
    f: impl FnOnce(&dyn Backend, &Tensor) -> Result<Tensor, crate::tensor::TensorError>,
) -> wasmtime::Result<i32> {
    enter(c, op)?;
    let n = c.data().arena.get(handle(h)).map_err(host_err)?.len();
    let p = price(&c.data().schedule);
    prepare(c, op, p, n, n * out_dtype.size())?;
    let out = f(&*c.data().backend, c.data().arena.get(handle(h)).map_err(host_err)?);
    store(c, out)
}

pub(super) fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("aivm", "tensor_alloc", |mut c: Ctx<'_>, dtype: i32, shape_ptr: i32, ndim: i32, data_ptr: i32, data_len: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "tensor_alloc")?;
        let dtype = DType::from_code(dtype).map_err(host_err)?;
        let ndim = check_len(ndim, MAX_RANK as u32, "tensor rank").map_err(host_err)?;
        let raw = read(&mut c, "tensor_alloc", shape_ptr, ndim as i32 * 4, (MAX_RANK * 4) as u32, "shape")?;
        let shape: Vec<u64> = raw.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64).collect();
        let n = Tensor::element_count(&shape).map_err(host_err)?;
        let bytes = n.checked_mul(dtype.size()).ok_or_else(|| host_err(HostError::Argument("tensor too large".into())))?;
        let exact_len = u32::try_from(bytes).unwrap_or(u32::MAX);
        c.data().arena.reserve_check(bytes).map_err(host_err)?;
        let s = &c.data().schedule;
        let gas = s.tensor_op(s.tensor_alloc.cost(bytes as u64), bytes as u64);
        charge(&mut c, "tensor_alloc", gas)?;
        let data = read(&mut c, "tensor_alloc", data_ptr, data_len, exact_len, "tensor data")?;
        let t = Tensor::from_bytes(dtype, &shape, &data);
        store(&mut c, t)
    })?;
    l.func_wrap("aivm", "tensor_info", |mut c: Ctx<'_>, h: i32, dst: i32| -> wasmtime::Result<()> {
        enter(&mut c, "tensor_info")?;
        let t = c.data().arena.get(handle(h)).map_err(host_err)?;
        let mut info = [0u8; TENSOR_INFO_BYTES];
        info[0..4].copy_from_slice(&(t.dtype() as u32).to_le_bytes());
        info[4..8].copy_from_slice(&(t.shape().len() as u32).to_le_bytes());
        for (i, d) in t.shape().iter().enumerate() {
            info[8 + 4 * i..12 + 4 * i].copy_from_slice(&(*d as u32).to_le_bytes());
        }
        write(&mut c, "tensor_info", dst, &info)
    })?;
    l.func_wrap("aivm", "tensor_read", |mut c: Ctx<'_>, h: i32, dst: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "tensor_read")?;
        let bytes = c.data().arena.get(handle(h)).map_err(host_err)?.to_bytes();
        write(&mut c, "tensor_read", dst, &bytes)?;
        Ok(bytes.len() as i32)
    })?;
    l.func_wrap("aivm", "tensor_free", |mut c: Ctx<'_>, h: i32| -> wasmtime::Result<()> {
        enter(&mut c, "tensor_free")?;
        c.data_mut().arena.remove(handle(h)).map(|_| ()).map_err(host_err)
    })?;
    l.func_wrap("aivm", "tensor_matmul", |mut c: Ctx<'_>, a: i32, b: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "tensor_matmul")?;
        let (m, k, n) = {
            let arena = &c.data().arena;
            let (ta, tb) = (arena.get(handle(a)).map_err(host_err)?, arena.get(handle(b)).map_err(host_err)?);
            match (ta.shape(), tb.shape()) {
                (&[m, k], &[_, n]) => (m, k, n),
                _ => return Err(host_err(HostError::Argument("matmul needs 2-D tensors".into()))),
            }
        };
        let out_bytes = m.checked_mul(n).and_then(|x| x.checked_mul(4)).unwrap_or(usize::MAX);
        let s = &c.data().schedule;
        let gas = s.tensor_op(s.matmul_cost(m as u64, k as u64, n as u64), out_bytes as u64);
        charge(&mut c, "tensor_matmul", gas)?;
        c.data().arena.reserve_check(out_bytes).map_err(host_err)?;
        let (arena, be) = (&c.data().arena, &*c.data().backend);
        let out = matmul::matmul_on(be, arena.get(handle(a)).map_err(host_err)?, arena.get(handle(b)).map_err(host_err)?);
        store(&mut c, out)
    })?;
    l.func_wrap("aivm", "tensor_add", |mut c: Ctx<'_>, a: i32, b: i32| -> wasmtime::Result<i32> {
        enter(&mut c, "tensor_add")?;
        let (n, size) = {
            let t = c.data().arena.get(handle(a)).map_err(host_err)?;
            (t.len(), t.dtype().size())
        };
        let p = c.data().schedule.elementwise;
        prepare(&mut c, "tensor_add", p, n, n * size)?;
        let arena = &c.data().arena;
        let out = ops::add(arena.get(handle(a)).map_err(host_err)?, arena.get(handle(b)).map_err(host_err)?);
        store(&mut c, out)
    })?;
    l.func_wrap("aivm", "tensor_quantize", |mut c: Ctx<'_>, h: i32, scale: i32| -> wasmtime::Result<i32> {
        unary(&mut c, "tensor_quantize", h, |s| s.quantize, DType::I8, |b, t| ops::quantize_on(b, t, scale))
    })?;
    l.func_wrap("aivm", "tensor_dequantize", |mut c: Ctx<'_>, h: i32, scale: i32| -> wasmtime::Result<i32> {
        unary(&mut c, "tensor_dequantize", h, |s| s.elementwise, DType::Q16, |b, t| ops::dequantize_on(b, t, scale))
    })?;
    l.func_wrap("aivm", "tensor_norm", |mut c: Ctx<'_>, h: i32, kind: i32, eps: i32| -> wasmtime::Result<i32> {
        let kind = ops::NormKind::from_code(kind).map_err(host_err)?;
        unary(&mut c, "tensor_norm", h, |s| s.norm, DType::Q16, |b, t| ops::norm_on(b, t, kind, eps))
    })?;
    l.func_wrap("aivm", "tensor_softmax", |mut c: Ctx<'_>, h: i32| -> wasmtime::Result<i32> {
        unary(&mut c, "tensor_softmax", h, |s| s.softmax, DType::Q16, ops::softmax_on)
    })?;
    Ok(())
}
