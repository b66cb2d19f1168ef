#![no_main]
//! See `aivm_node::fuzzing::deploy_from`.
use libfuzzer_sys::fuzz_target;
static VM: std::sync::OnceLock<aivm_node::fuzzing::DeployVms> = std::sync::OnceLock::new();
fuzz_target!(|data: &[u8]| aivm_node::fuzzing::deploy_from(VM.get_or_init(aivm_node::fuzzing::deploy_vm), data));
