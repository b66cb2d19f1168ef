//! Events: a topic and CBOR-encoded data, kept only if the call succeeds.

use crate::{codec, sys};
use serde::Serialize;

pub fn emit<T: Serialize + ?Sized>(topic: &str, data: &T) {
    let d = codec::encode(data);
    unsafe { sys::emit_event(topic.as_ptr(), topic.len() as i32, d.as_ptr(), d.len() as i32) }
}
