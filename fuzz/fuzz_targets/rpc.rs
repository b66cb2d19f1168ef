#![no_main]
//! See `aivm_node::fuzzing::RpcTarget`.
use libfuzzer_sys::fuzz_target;
static TARGET: std::sync::OnceLock<aivm_node::fuzzing::RpcTarget> = std::sync::OnceLock::new();
fuzz_target!(|data: &[u8]| TARGET.get_or_init(aivm_node::fuzzing::RpcTarget::new).request(data));
