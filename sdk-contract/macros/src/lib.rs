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
    // The entry's schema, as written in the source: one JSON line per entry in the wasm custom
    // section `aivm.abi` (the linker concatenates them), which `aivm inspect` prints.
    let arg = match func.sig.inputs.first() {
        Some(syn::FnArg::Typed(t)) => type_name(&t.ty),
        _ => "()".to_string(),
    };
    let ret = match &func.sig.output {
        syn::ReturnType::Default => "()".to_string(),
        syn::ReturnType::Type(_, t) => type_name(t),
    };
    let line = format!("{}\n", abi_line(&export, &arg, &ret));
    let bytes = syn::LitByteStr::new(line.as_bytes(), proc_macro2::Span::call_site());
    let len = line.len();
    let abi = format_ident!("__AIVM_ABI_{}", name.to_string().to_uppercase());
    quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[export_name = #export]
        pub extern "C" fn #shim() {
            ::aivm_sdk::__private::dispatch(#name)
        }

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[used]
        #[link_section = "aivm.abi"]
        static #abi: [u8; #len] = *#bytes;
    }
    .into()
}

/// A type as written, without the spaces `quote` puts between tokens.
fn type_name(t: &syn::Type) -> String {
    quote!(#t).to_string().replace(' ', "")
}

/// `{"entry":..,"args":..,"returns":..}` (names are Rust paths: no quotes or backslashes).
fn abi_line(entry: &str, args: &str, returns: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{{\"entry\":\"{}\",\"args\":\"{}\",\"returns\":\"{}\"}}", esc(entry), esc(args), esc(returns))
}
