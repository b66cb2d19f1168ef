//! The per-call tensor arena: handles in, tensors out, bounded by a byte budget.

use super::{Tensor, TensorError};

/// A tensor handle as seen by the guest: `index + 1`, so 0 is never valid.
pub type Handle = u32;

/// Most live tensors in one call.
pub const MAX_LIVE_TENSORS: usize = 4096;

/// Holds the tensors of one contract call. Dropped (with all tensors) when the call ends.
#[derive(Debug)]
pub struct Arena {
    slots: Vec<Option<Tensor>>,
    free: Vec<usize>,
    used_bytes: usize,
    budget_bytes: usize,
}

impl Arena {
    pub fn new(budget_bytes: usize) -> Self {
        Self { slots: Vec::new(), free: Vec::new(), used_bytes: 0, budget_bytes }
    }

    /// Bytes held by live tensors.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Fails if one more tensor of `bytes` would not fit. Called before any work is done.
    pub fn reserve_check(&self, bytes: usize) -> Result<(), TensorError> {
        if self.slots.len() - self.free.len() >= MAX_LIVE_TENSORS {
            return Err(TensorError::TooManyTensors(MAX_LIVE_TENSORS));
        }
        match self.used_bytes.checked_add(bytes) {
            Some(total) if total <= self.budget_bytes => Ok(()),
            _ => Err(TensorError::Budget { used: self.used_bytes, want: bytes, budget: self.budget_bytes }),
        }
    }

    /// Store a tensor and return its handle.
    pub fn insert(&mut self, t: Tensor) -> Result<Handle, TensorError> {
        self.reserve_check(t.byte_len())?;
        self.used_bytes += t.byte_len();
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(t);
                i
            }
            None => {
                self.slots.push(Some(t));
                self.slots.len() - 1
            }
        };
        Ok(idx as Handle + 1)
    }

    /// Borrow a live tensor.
    pub fn get(&self, h: Handle) -> Result<&Tensor, TensorError> {
        (h as usize).checked_sub(1).and_then(|i| self.slots.get(i)).and_then(Option::as_ref).ok_or(TensorError::BadHandle(h))
    }

    /// Free a tensor; a second free of the same handle is an error.
    pub fn remove(&mut self, h: Handle) -> Result<Tensor, TensorError> {
        let i = (h as usize).checked_sub(1).ok_or(TensorError::BadHandle(h))?;
        let t = self.slots.get_mut(i).and_then(Option::take).ok_or(TensorError::BadHandle(h))?;
        self.used_bytes -= t.byte_len();
        self.free.push(i);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;

    #[test]
    fn handles_budget_and_double_free() {
        let mut a = Arena::new(10);
        let t = Tensor::from_i8(&[8], vec![1; 8]).unwrap();
        let h = a.insert(t.clone()).unwrap();
        assert_eq!(a.get(h).unwrap(), &t);
        assert!(matches!(a.insert(t.clone()), Err(TensorError::Budget { .. })));
        assert_eq!(a.get(0), Err(TensorError::BadHandle(0)));
        assert_eq!(a.get(99), Err(TensorError::BadHandle(99)));
        a.remove(h).unwrap();
        assert_eq!(a.used_bytes(), 0);
        assert_eq!(a.remove(h), Err(TensorError::BadHandle(h)));
        assert_eq!(a.get(h), Err(TensorError::BadHandle(h)));
        let q = Tensor::from_i32(DType::Q16, &[2], vec![1, 2]).unwrap();
        assert!(a.insert(q).is_ok());
    }
}
