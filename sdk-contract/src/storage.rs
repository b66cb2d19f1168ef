//! Contract storage: raw bytes, typed values (CBOR), and prefixed maps.

use crate::{codec, env, sys};
use alloc::vec::Vec;
use core::marker::PhantomData;
use serde::{de::DeserializeOwned, Serialize};

pub fn get_raw(key: &[u8]) -> Option<Vec<u8>> {
    let n = unsafe { sys::storage_get(key.as_ptr(), key.len() as i32) };
    (n >= 0).then(|| env::take_result(n))
}

pub fn set_raw(key: &[u8], value: &[u8]) {
    unsafe { sys::storage_set(key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32) }
}

pub fn remove(key: &[u8]) {
    unsafe { sys::storage_remove(key.as_ptr(), key.len() as i32) }
}

/// A typed value; a stored value that does not decode as `T` reverts the call.
pub fn get<T: DeserializeOwned>(key: &[u8]) -> Option<T> {
    get_raw(key).map(|b| codec::decode(&b).unwrap_or_else(|e| env::revert(&alloc::format!("corrupt storage value: {e}"))))
}

pub fn set<T: Serialize + ?Sized>(key: &[u8], value: &T) {
    set_raw(key, &codec::encode(value))
}

/// Values of type `V` under `prefix ‖ key`.
pub struct Map<V> {
    prefix: &'static [u8],
    _v: PhantomData<V>,
}

impl<V: Serialize + DeserializeOwned> Map<V> {
    pub const fn new(prefix: &'static [u8]) -> Self {
        Self { prefix, _v: PhantomData }
    }

    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + k.len());
        key.extend_from_slice(self.prefix);
        key.extend_from_slice(k);
        key
    }

    pub fn get(&self, k: &[u8]) -> Option<V> {
        get(&self.key(k))
    }

    pub fn set(&self, k: &[u8], v: &V) {
        set(&self.key(k), v)
    }

    pub fn remove(&self, k: &[u8]) {
        remove(&self.key(k))
    }
}
