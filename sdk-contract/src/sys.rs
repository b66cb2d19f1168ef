//! Raw imports from the `aivm` host module (`spec/abi.md`). Prefer the safe wrappers.

#[link(wasm_import_module = "aivm")]
extern "C" {
    pub fn input_len() -> i32;
    pub fn input_read(dst: *mut u8);
    pub fn return_data(ptr: *const u8, len: i32);
    pub fn revert(ptr: *const u8, len: i32) -> !;
    pub fn abort(ptr: *const u8, len: i32) -> !;
    pub fn result_read(dst: *mut u8);
    pub fn storage_get(key: *const u8, key_len: i32) -> i32;
    pub fn storage_set(key: *const u8, key_len: i32, value: *const u8, value_len: i32);
    pub fn storage_remove(key: *const u8, key_len: i32);
    pub fn caller(dst: *mut u8);
    pub fn contract_address(dst: *mut u8);
    pub fn block_height() -> i64;
    pub fn block_time() -> i64;
    pub fn call_value(dst: *mut u8);
    pub fn balance(dst: *mut u8);
    pub fn transfer(to: *const u8, amount: *const u8) -> i32;
    pub fn hmm_quote(sku: *const u8, units: i64, dst: *mut u8) -> i32;
    pub fn hmm_swap(sku: *const u8, sell_units: i32, amount: *const u8, min_out: *const u8) -> i32;
    #[allow(clippy::too_many_arguments)]
    pub fn job_submit(sku: *const u8, prompt: *const u8, prompt_len: i32, max_new: i32, sla_blocks: i64, budget: *const u8, flags: i32, id_dst: *mut u8)
        -> i32;
    pub fn emit_event(topic: *const u8, topic_len: i32, data: *const u8, data_len: i32);
    pub fn sha256(ptr: *const u8, len: i32, dst: *mut u8);
    pub fn blake3(ptr: *const u8, len: i32, dst: *mut u8);
    pub fn ed25519_verify(pk: *const u8, msg: *const u8, msg_len: i32, sig: *const u8) -> i32;
    pub fn bls_verify(pk: *const u8, msg: *const u8, msg_len: i32, sig: *const u8) -> i32;
    pub fn tensor_alloc(dtype: i32, shape: *const u32, ndim: i32, data: *const u8, data_len: i32) -> i32;
    pub fn tensor_info(h: i32, dst: *mut u8);
    pub fn tensor_read(h: i32, dst: *mut u8) -> i32;
    pub fn tensor_free(h: i32);
    pub fn tensor_matmul(a: i32, b: i32) -> i32;
    pub fn tensor_add(a: i32, b: i32) -> i32;
    pub fn tensor_quantize(h: i32, scale_q16: i32) -> i32;
    pub fn tensor_dequantize(h: i32, scale_q16: i32) -> i32;
    pub fn tensor_norm(h: i32, kind: i32, eps_q16: i32) -> i32;
    pub fn tensor_softmax(h: i32) -> i32;
    pub fn kl_divergence(p: i32, q: i32) -> i64;
    pub fn hash_compare(ptr: *const u8, len: i32, hash: *const u8) -> i32;
    pub fn model_hash(ptr: *const u8, len: i32, dst: *mut u8);
    pub fn model_load(hash: *const u8) -> i32;
    pub fn model_infer(h: i32, kind: i32, ptr: *const u8, len: i32, max_new: i32) -> i32;
    pub fn freivalds_verify(h: i32, ptr: *const u8, len: i32, ctx: *const u8) -> i32;
    pub fn tee_verify(format: i32, quote: *const u8, quote_len: i32, collateral: *const u8, collateral_len: i32, report_data: *const u8) -> i32;
    pub fn job_result(id: *const u8, accept_provisional: i32) -> i32;
    pub fn merkle_verify(root: *const u8, leaf: *const u8, leaf_len: i32, index: i64, size: i64, proof: *const u8, proof_len: i32) -> i32;
}
