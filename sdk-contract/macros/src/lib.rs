//! `#[entry_point]`: export a plain function as a contract entry point.
//!
//! The macro is deliberately thin. It keeps the function as written and adds a wasm
//! export of the same name that calls `aivm_sdk::__private::dispatch(function)`, where the
//! whole ABI (input decoding, result encoding, revert on `Err`) lives.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, ItemFn};

#[proc_macro_attribute]
pub fn entry_point(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[entry_point] takes no arguments").to_compile_error().into();
    }
    let func = parse_macro_input!(item as ItemFn);
    if func.sig.inputs.len() != 1 {
        return syn::Error::new_spanned(&func.sig, "an entry point takes exactly one argument (use `()` for none)").to_compile_error().into();
    }
    let name = &func.sig.ident;
    let export = name.to_string();
    let shim = format_ident!("__aivm_entry_{}", name);
    quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[export_name = #export]
        pub extern "C" fn #shim() {
            ::aivm_sdk::__private::dispatch(#name)
        }
    }
    .into()
}
