//! Derive macros of `live-core`: `#[derive(Watch)]` for row types and `#[derive(Assigns)]`
//! for views. Use them through `live_core` (`use live_core::{Watch, Assigns};`).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Expr, ExprLit, Fields, Ident, Lit, LitStr, Meta, Path, Type,
    parse_macro_input,
};

/// Derives `live_core::Watch` for a row type.
///
/// ```ignore
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")] // id = "id" by default
/// struct Todo { id: i64, list_id: i64, title: String, completed: bool }
/// ```
///
/// Field attributes: `#[watch(rename = "column")]`, `#[watch(skip)]` (not read from the
/// table: keeps the value the view holds, else `Default`).
#[proc_macro_derive(Watch, attributes(watch))]
pub fn derive_watch(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match watch_impl(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derives `live_core::Assigns` for a view struct.
///
/// ```ignore
/// #[derive(Assigns)]
/// struct TodoPage {
///     #[subscription_key]
///     list_id: i64,
///     #[watch(sync = Self::sort_todos)]
///     todos: Vec<Arc<Todo>>,
/// }
/// ```
#[proc_macro_derive(Assigns, attributes(watch, subscription_key))]
pub fn derive_assigns(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match assigns_impl(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn named_fields(input: &DeriveInput, what: &str) -> syn::Result<Vec<syn::Field>> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            format!("#[derive({what})] does not support generic structs"),
        ));
    }
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => Ok(f.named.iter().cloned().collect()),
            Fields::Unit => Ok(Vec::new()),
            Fields::Unnamed(f) => Err(syn::Error::new(
                f.span(),
                format!("#[derive({what})] needs a struct with named fields"),
            )),
        },
        _ => Err(syn::Error::new(
            input.ident.span(),
            format!("#[derive({what})] needs a struct"),
        )),
    }
}

fn lit_str(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new(other.span(), "expected a string literal")),
    }
}

struct WatchField {
    ident: Ident,
    ty: Type,
    column: String,
    skip: bool,
}

fn watch_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let mut table: Option<LitStr> = None;
    let mut key: Option<LitStr> = None;
    let mut id: Option<LitStr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("watch")) {
        attr.parse_nested_meta(|meta| {
            let value = || -> syn::Result<LitStr> { lit_str(&meta.value()?.parse::<Expr>()?) };
            if meta.path.is_ident("table") {
                table = Some(value()?);
            } else if meta.path.is_ident("subscription_key") {
                key = Some(value()?);
            } else if meta.path.is_ident("id") {
                id = Some(value()?);
            } else {
                return Err(meta.error(
                    "unknown #[watch] option; expected `table`, `subscription_key` or `id`",
                ));
            }
            Ok(())
        })?;
    }
    let table = table.ok_or_else(|| {
        syn::Error::new(
            name.span(),
            "#[derive(Watch)] needs #[watch(table = \"...\", subscription_key = \"...\")]",
        )
    })?;
    let key = key.ok_or_else(|| {
        syn::Error::new(
            name.span(),
            "#[derive(Watch)] needs #[watch(subscription_key = \"column\")]: the column that \
             scopes rows to a view",
        )
    })?;
    let id = id.unwrap_or_else(|| LitStr::new("id", Span::call_site()));

    let mut fields = Vec::new();
    for f in named_fields(input, "Watch")? {
        let ident = f
            .ident
            .clone()
            .ok_or_else(|| syn::Error::new(f.span(), "unnamed field"))?;
        let mut column = ident.to_string().trim_start_matches("r#").to_string();
        let mut skip = false;
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("watch")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    column = lit_str(&meta.value()?.parse::<Expr>()?)?.value();
                } else if meta.path.is_ident("skip") {
                    skip = true;
                } else {
                    return Err(
                        meta.error("unknown #[watch] field option; expected `rename` or `skip`")
                    );
                }
                Ok(())
            })?;
        }
        fields.push(WatchField {
            ident,
            ty: f.ty.clone(),
            column,
            skip,
        });
    }
    let find = |col: &LitStr, what: &str| -> syn::Result<&WatchField> {
        fields
            .iter()
            .find(|f| !f.skip && f.column == col.value())
            .ok_or_else(|| {
                syn::Error::new(
                    col.span(),
                    format!(
                        "no field of {name} reads the column {:?} named as the {what}",
                        col.value()
                    ),
                )
            })
    };
    let id_field = find(&id, "id")?;
    let key_field = find(&key, "subscription key")?;
    let id_ident = &id_field.ident;
    let id_ty = &id_field.ty;
    let key_ident = &key_field.ident;
    let key_ty = &key_field.ty;
    let columns: Vec<&String> = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| &f.column)
        .collect();
    let decoders = fields.iter().map(|f| {
        let ident = &f.ident;
        let ty = &f.ty;
        if f.skip {
            quote_spanned! {ty.span()=>
                #ident: match base {
                    ::core::option::Option::Some(b) => ::core::clone::Clone::clone(&b.#ident),
                    ::core::option::Option::None => <#ty as ::core::default::Default>::default(),
                }
            }
        } else {
            let col = &f.column;
            quote_spanned! {ty.span()=>
                #ident: row.field::<#ty>(#col, base.map(|b| &b.#ident))?
            }
        }
    });
    let id_assert = quote_spanned! {id_ty.span()=>
        const _: fn() = || {
            fn id_is_usable<T: ::live_core::KeyValue + ::core::cmp::PartialEq + ::core::clone::Clone>() {}
            id_is_usable::<#id_ty>();
        };
    };
    let key_assert = quote_spanned! {key_ty.span()=>
        const _: fn() = || {
            fn key_is_usable<T: ::live_core::KeyValue>() {}
            key_is_usable::<#key_ty>();
        };
    };
    // Two versions of a row are the same when every field is equal (fields whose type has
    // no `PartialEq` make rows never equal): views of the same rows then share one `Arc`.
    let same = fields.iter().map(|f| {
        let ident = &f.ident;
        quote! {
            (&::live_core::__private::SameField(&self.#ident, &other.#ident)).same()
        }
    });
    Ok(quote! {
        #id_assert
        #key_assert
        impl ::live_core::Watch for #name {
            fn same_row(&self, other: &Self) -> bool {
                #[allow(unused_imports)]
                use ::live_core::__private::{SameByEq as _, SameNever as _};
                true #(&& #same)*
            }

            const TABLE: &'static str = #table;
            const ID_COLUMN: &'static str = #id;
            const KEY_COLUMN: &'static str = #key;
            const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            type Id = #id_ty;

            fn id(&self) -> &Self::Id {
                &self.#id_ident
            }

            fn subscription_key(&self) -> ::core::option::Option<::live_core::Key> {
                ::live_core::KeyValue::to_key(&self.#key_ident)
            }

            fn decode(
                row: &::live_core::__private::RowData<'_>,
                base: ::core::option::Option<&Self>,
            ) -> ::core::result::Result<Self, ::live_core::__private::DecodeError> {
                ::core::result::Result::Ok(Self {
                    #(#decoders),*
                })
            }
        }
    })
}

struct Watched {
    ident: Ident,
    ty: Type,
    sync: Option<Path>,
    attr_span: Span,
}

fn assigns_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let mut key: Option<(Ident, Type)> = None;
    let mut watched: Vec<Watched> = Vec::new();
    for f in named_fields(input, "Assigns")? {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        for attr in &f.attrs {
            if attr.path().is_ident("subscription_key") {
                if !matches!(attr.meta, Meta::Path(_)) {
                    return Err(syn::Error::new(
                        attr.span(),
                        "#[subscription_key] takes no arguments",
                    ));
                }
                if key.is_some() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "only one field can be the #[subscription_key]",
                    ));
                }
                key = Some((ident.clone(), f.ty.clone()));
            } else if attr.path().is_ident("watch") {
                let mut sync = None;
                if !matches!(attr.meta, Meta::Path(_)) {
                    attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("sync") {
                            sync = Some(meta.value()?.parse::<Path>()?);
                            Ok(())
                        } else {
                            Err(meta.error("unknown #[watch] option; expected `sync = path`"))
                        }
                    })?;
                }
                watched.push(Watched {
                    ident: ident.clone(),
                    ty: f.ty.clone(),
                    sync,
                    attr_span: attr.span(),
                });
            }
        }
    }
    if let (Some(first), None) = (watched.first(), &key) {
        return Err(syn::Error::new(
            first.attr_span,
            format!(
                "#[watch] field `{}` needs a #[subscription_key] field in the same struct: the \
                 key (from the server side) that scopes which rows this view receives",
                first.ident
            ),
        ));
    }
    let types = watched.iter().map(|w| {
        let ty = &w.ty;
        quote_spanned! {ty.span()=>
            types.add::<<#ty as ::live_core::__private::WatchedAssign>::Row>();
        }
    });
    let key_fn = match &key {
        Some((ident, ty)) => {
            let call = quote_spanned! {ty.span()=> ::live_core::KeyValue::to_key(&self.#ident) };
            quote! {
                fn subscription_key(&self) -> ::core::option::Option<::live_core::Key> {
                    #call
                }
            }
        }
        None => quote! {},
    };
    let held = watched.iter().map(|w| {
        let ident = &w.ident;
        let ty = &w.ty;
        quote_spanned! {ty.span()=> ::live_core::__private::WatchedAssign::held(&self.#ident, out); }
    });
    let shares = watched.iter().map(|w| {
        let ident = &w.ident;
        let ty = &w.ty;
        quote_spanned! {ty.span()=> ::live_core::__private::WatchedAssign::share(&mut self.#ident); }
    });
    let applies = watched.iter().map(|w| {
        let ident = &w.ident;
        let hook = match &w.sync {
            Some(path) => quote! {
                let taken = ::core::mem::take(&mut self.#ident);
                self.#ident = #path(self, taken, ctx)
                    .await
                    .map_err(::live_core::__private::ApplyError::Hook)?;
            },
            None => quote! {},
        };
        let ty = &w.ty;
        let apply = quote_spanned! {ty.span()=>
            ::live_core::__private::apply_changes(&mut self.#ident, batch)
        };
        quote! {
            if #apply? {
                changed = true;
                #hook
            }
        }
    });
    let hooks = watched.iter().filter_map(|w| {
        let ident = &w.ident;
        w.sync.as_ref().map(|path| {
            quote! {
                let taken = ::core::mem::take(&mut self.#ident);
                self.#ident = #path(self, taken, ctx).await?;
            }
        })
    });
    let watched_methods = if watched.is_empty() {
        quote! {}
    } else {
        quote! {
            fn watch_types(types: &mut ::live_core::__private::WatchTypes) {
                #(#types)*
            }

            #key_fn

            fn held_rows(&self, out: &mut ::live_core::__private::HeldRows) {
                #(#held)*
            }

            fn share_rows(&mut self) {
                #(#shares)*
            }

            fn apply_changes(
                &mut self,
                batch: &::live_core::__private::ChangeBatch,
                ctx: &mut ::live_core::SyncCtx<'_, Self>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<bool, ::live_core::__private::ApplyError>,
            > + ::core::marker::Send
            where
                Self: ::live_core::LiveView,
            {
                async move {
                    let mut changed = false;
                    #(#applies)*
                    ::core::result::Result::Ok(changed)
                }
            }

            fn run_sync_hooks(
                &mut self,
                ctx: &mut ::live_core::SyncCtx<'_, Self>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::live_core::ViewError>,
            > + ::core::marker::Send
            where
                Self: ::live_core::LiveView,
            {
                async move {
                    let _ = &ctx;
                    #(#hooks)*
                    ::core::result::Result::Ok(())
                }
            }
        }
    };
    let key_only = if watched.is_empty() {
        key_fn_only(&key)
    } else {
        quote! {}
    };
    Ok(quote! {
        impl ::live_core::Assigns for #name {
            #watched_methods
            #key_only
        }
    })
}

fn key_fn_only(key: &Option<(Ident, Type)>) -> TokenStream2 {
    match key {
        Some((ident, ty)) => {
            let call = quote_spanned! {ty.span()=> ::live_core::KeyValue::to_key(&self.#ident) };
            quote! {
                fn subscription_key(&self) -> ::core::option::Option<::live_core::Key> {
                    #call
                }
            }
        }
        None => quote! {},
    }
}
