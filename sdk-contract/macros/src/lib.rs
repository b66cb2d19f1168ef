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
    let line = format!("{{\"entry\":{},\"args\":{},\"returns\":{}}}", json_str(&export), json_str(&arg), json_str(&ret));
    let abi = abi_static(format_ident!("__AIVM_ABI_ENTRY_{}", name.to_string().to_uppercase()), &line);
    quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[export_name = #export]
        pub extern "C" fn #shim() {
            ::aivm_sdk::__private::dispatch(#name)
        }

        #abi
    }
    .into()
}

/// One line of the wasm custom section `aivm.abi`: a static the linker keeps (`#[used]`) and
/// concatenates with the others.
fn abi_static(ident: proc_macro2::Ident, line: &str) -> proc_macro2::TokenStream {
    let line = format!("{line}\n");
    let bytes = syn::LitByteStr::new(line.as_bytes(), proc_macro2::Span::call_site());
    let len = line.len();
    quote! {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[used]
        #[link_section = "aivm.abi"]
        static #ident: [u8; #len] = *#bytes;
    }
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A type as written, without the spaces `quote` puts between tokens.
fn type_name(t: &syn::Type) -> String {
    quote!(#t).to_string().replace(' ', "")
}

/// `#[derive(Schema)]`: record a type's shape in the contract's `aivm.abi` section, so that
/// `aivm inspect` can print it and `aivm send`/`query`/`call`/`deploy` can check `--args`
/// against it before anything is signed. One JSON line per type:
/// `{"type":"Transfer","fields":[["to","Address"],["amount","u64"]]}`, or `"newtype"`,
/// `"tuple"`, `"unit"` for the other struct shapes and `"variants"` for enums (serde's
/// externally tagged form). Field types are written as in the source; serde attributes such
/// as `rename` are not reflected (a check then reports the Rust name).
#[proc_macro_derive(Schema)]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    let name = input.ident.to_string();
    let shape = match &input.data {
        syn::Data::Struct(s) => fields_json(&s.fields),
        syn::Data::Enum(e) => {
            let variants: Vec<String> = e
                .variants
                .iter()
                .map(|v| {
                    let inner = fields_json(&v.fields);
                    format!("{{\"name\":\"{}\",{}}}", v.ident, inner)
                })
                .collect();
            format!("\"variants\":[{}]", variants.join(","))
        }
        syn::Data::Union(_) => return syn::Error::new_spanned(&input.ident, "#[derive(Schema)] does not take unions").to_compile_error().into(),
    };
    abi_static(format_ident!("__AIVM_ABI_TYPE_{}", name.to_uppercase()), &format!("{{\"type\":\"{name}\",{shape}}}")).into()
}

/// `"fields":[[name,type],..]`, `"newtype":type`, `"tuple":[type,..]` or `"unit":true`.
fn fields_json(fields: &syn::Fields) -> String {
    match fields {
        syn::Fields::Named(n) => {
            let list: Vec<String> = n
                .named
                .iter()
                .map(|f| format!("[{},{}]", json_str(&f.ident.as_ref().map(ToString::to_string).unwrap_or_default()), json_str(&type_name(&f.ty))))
                .collect();
            format!("\"fields\":[{}]", list.join(","))
        }
        syn::Fields::Unnamed(u) if u.unnamed.len() == 1 => format!("\"newtype\":{}", json_str(&type_name(&u.unnamed[0].ty))),
        syn::Fields::Unnamed(u) => format!("\"tuple\":[{}]", u.unnamed.iter().map(|f| json_str(&type_name(&f.ty))).collect::<Vec<_>>().join(",")),
        syn::Fields::Unit => "\"unit\":true".to_string(),
    }
}
