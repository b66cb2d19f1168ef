#![no_main]
//! See `aivm_node::fuzzing::market_answer`.
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| aivm_node::fuzzing::market_answer(data));
