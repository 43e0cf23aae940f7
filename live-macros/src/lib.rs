//! Derive macros of `live-core`: `#[derive(Watch)]` for row types and `#[derive(Assigns)]`
//! for views. Use them through `live_core` (`use live_core::{Watch, Assigns};`).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Expr, ExprLit, Fields, Ident, Lit, LitStr, Meta, Path, Type,
    parse_macro_input,
};

/// Derives `live_core::Watch` for a row type. Documented, with examples that run, at its
/// re-export: `live_core::Watch`.
#[proc_macro_derive(Watch, attributes(watch))]
pub fn derive_watch(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match watch_impl(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derives `live_core::Assigns` for a view struct. Documented, with examples that run, at
/// its re-export: `live_core::Assigns`.
#[proc_macro_derive(Assigns, attributes(watch, subscription_key, keep))]
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
            "#[derive(Watch)] needs #[watch(table = \"...\")] (and, optionally, \
             subscription_key = \"column\": the default scope of assigns of this type)",
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
    let key_field = match &key {
        Some(k) => Some(find(k, "subscription key")?),
        None => None,
    };
    let id_ident = &id_field.ident;
    let id_ty = &id_field.ty;
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
    let (key_assert, key_column, key_fn) = match key_field {
        Some(f) => {
            let key_ty = &f.ty;
            let key_ident = &f.ident;
            let col = &f.column;
            (
                quote_spanned! {key_ty.span()=>
                    const _: fn() = || {
                        fn key_is_usable<T: ::live_core::KeyValue>() {}
                        key_is_usable::<#key_ty>();
                    };
                },
                quote! { #col },
                quote! { ::live_core::KeyValue::to_key(&self.#key_ident) },
            )
        }
        // No default scope: every watched assign of this type states its own.
        None => (
            quote! {},
            quote! { "" },
            quote! { ::core::option::Option::None },
        ),
    };
    let column_keys = fields.iter().filter(|f| !f.skip).map(|f| {
        let ident = &f.ident;
        let col = &f.column;
        quote! {
            #col => (&::live_core::__private::KeyOf(&self.#ident)).key(),
        }
    });
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
            const KEY_COLUMN: &'static str = #key_column;
            const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            type Id = #id_ty;

            fn id(&self) -> &Self::Id {
                &self.#id_ident
            }

            fn subscription_key(&self) -> ::core::option::Option<::live_core::Key> {
                #key_fn
            }

            fn column_key(&self, column: &str) -> ::core::option::Option<::live_core::Key> {
                #[allow(unused_imports)]
                use ::live_core::__private::{KeyByValue as _, KeyNever as _};
                match column {
                    #(#column_keys)*
                    _ => ::core::option::Option::None,
                }
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
    /// `by = "column"`.
    by: Option<LitStr>,
    /// `key = expr` (one value) or `keys = expr` (a set).
    key: Option<Expr>,
    keys: Option<Expr>,
    /// `all`: every row of the table, with `max_rows = n`.
    all: bool,
    max_rows: Option<Expr>,
    /// `filter = path`: a `fn(&Row) -> bool` evaluated on each new row.
    filter: Option<Path>,
}

fn assigns_impl(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let mut key: Option<(Ident, Type)> = None;
    let mut watched: Vec<Watched> = Vec::new();
    let mut kept: Vec<(Ident, Type)> = Vec::new();
    for f in named_fields(input, "Assigns")? {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        for attr in &f.attrs {
            if attr.path().is_ident("keep") {
                if !matches!(attr.meta, Meta::Path(_)) {
                    return Err(syn::Error::new(attr.span(), "#[keep] takes no arguments"));
                }
                kept.push((ident.clone(), f.ty.clone()));
            } else if attr.path().is_ident("subscription_key") {
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
                let mut w = Watched {
                    ident: ident.clone(),
                    ty: f.ty.clone(),
                    sync: None,
                    attr_span: attr.span(),
                    by: None,
                    key: None,
                    keys: None,
                    all: false,
                    max_rows: None,
                    filter: None,
                };
                if !matches!(attr.meta, Meta::Path(_)) {
                    attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("sync") {
                            w.sync = Some(meta.value()?.parse::<Path>()?);
                        } else if meta.path.is_ident("by") {
                            w.by = Some(lit_str(&meta.value()?.parse::<Expr>()?)?);
                        } else if meta.path.is_ident("key") {
                            w.key = Some(meta.value()?.parse::<Expr>()?);
                        } else if meta.path.is_ident("keys") {
                            w.keys = Some(meta.value()?.parse::<Expr>()?);
                        } else if meta.path.is_ident("all") {
                            w.all = true;
                        } else if meta.path.is_ident("max_rows") {
                            w.max_rows = Some(meta.value()?.parse::<Expr>()?);
                        } else if meta.path.is_ident("filter") {
                            w.filter = Some(meta.value()?.parse::<Path>()?);
                        } else {
                            return Err(meta.error(
                                "unknown #[watch] option; expected `sync = path`, `by = \"column\"`, \
                                 `key = expr`, `keys = expr`, `all`, `max_rows = n` or `filter = path`",
                            ));
                        }
                        Ok(())
                    })?;
                }
                if w.key.is_some() && w.keys.is_some() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "#[watch] takes `key = …` (one value) or `keys = …` (a set), not both",
                    ));
                }
                if w.all && (w.by.is_some() || w.key.is_some() || w.keys.is_some()) {
                    return Err(syn::Error::new(
                        attr.span(),
                        "#[watch(all)] watches every row of the table: no `by`, `key` or `keys`",
                    ));
                }
                if w.all && w.max_rows.is_none() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "#[watch(all)] needs `max_rows = n`: the most rows the table may have \
                         before it is an error",
                    ));
                }
                if (w.key.is_some() || w.keys.is_some()) && w.by.is_none() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "`key`/`keys` need `by = \"column\"`: the column whose value they match",
                    ));
                }
                watched.push(w);
            }
        }
    }
    let states_scope = |w: &Watched| w.all || w.key.is_some() || w.keys.is_some();
    if let (Some(first), None) = (watched.iter().find(|w| !states_scope(w)), &key) {
        return Err(syn::Error::new(
            first.attr_span,
            format!(
                "#[watch] field `{}` needs a scope: a #[subscription_key] field in the same \
                 struct (the key, from the server side, that scopes which rows this view \
                 receives), or one stated on the assign: #[watch(by = \"column\", key = \
                 self.field)], #[watch(by = \"id\", keys = self.ids())] or \
                 #[watch(all, max_rows = 500)]",
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
    let row_of = |w: &Watched| {
        let ty = &w.ty;
        quote_spanned! {ty.span()=> <#ty as ::live_core::__private::WatchedAssign>::Row }
    };
    let column_of = |w: &Watched| {
        let row = row_of(w);
        if w.all {
            quote! { "*" }
        } else if let Some(by) = &w.by {
            quote! { #by }
        } else {
            quote! { <#row as ::live_core::Watch>::KEY_COLUMN }
        }
    };
    let mut checks = Vec::new();
    let mut scopes = Vec::new();
    for (i, w) in watched.iter().enumerate() {
        let slot = i as u16;
        let row = row_of(w);
        let column = column_of(w);
        if let Some(by) = &w.by {
            let msg = format!(
                "#[watch(by = {:?})] on `{}`: the row type has no such column (see its \
                 #[derive(Watch)] fields)",
                by.value(),
                w.ident
            );
            checks.push(quote_spanned! {by.span()=>
                const _: () = ::core::assert!(
                    ::live_core::__private::has_column(<#row as ::live_core::Watch>::COLUMNS, #by),
                    #msg
                );
            });
        }
        if w.all {
            let max = &w.max_rows;
            let _ = max;
            scopes.push(quote! {
                out.all::<#row>(#slot);
            });
        } else if let Some(keys) = &w.keys {
            scopes.push(quote! {
                out.keys::<#row>(#slot, #column, ::live_core::__private::keys_of(#keys));
            });
        } else if let Some(k) = &w.key {
            scopes.push(quote! {
                out.key::<#row>(#slot, #column, ::live_core::KeyValue::to_key(&(#k)));
            });
        } else if let Some((kident, _)) = &key {
            // The default scope: the row type's subscription key column, with this view's
            // #[subscription_key]. Checked: the column must be named like the view's key,
            // or the rows would be matched against a value of another kind.
            let kname = kident.to_string();
            let msg = format!(
                "#[watch] field `{}`: its row type is not scoped by a column named `{kname}` \
                 (this view's #[subscription_key]); state the scope on the assign: \
                 #[watch(by = \"column\", key = self.{kname})], #[watch(by = \"id\", keys = \
                 self.ids())] or #[watch(all, max_rows = 500)]",
                w.ident
            );
            let ty = &w.ty;
            checks.push(quote_spanned! {ty.span()=>
                const _: () = ::core::assert!(
                    ::live_core::__private::str_eq(<#row as ::live_core::Watch>::KEY_COLUMN, #kname),
                    #msg
                );
            });
            scopes.push(quote! {
                out.key::<#row>(#slot, #column, ::live_core::KeyValue::to_key(&self.#kident));
            });
        }
    }
    let caps = watched.iter().filter(|w| w.all).map(|w| {
        let ident = &w.ident;
        let max = &w.max_rows;
        let name = ident.to_string();
        quote! {
            let n = ::live_core::__private::WatchedAssign::count(&self.#ident);
            let max: usize = #max;
            if n > max {
                return ::core::option::Option::Some(::std::format!(
                    "`{}` watches a whole table of {} rows, over its max_rows = {}: scope it by a \
                     key (#[watch(by = ..., key = ...)]) or raise the cap",
                    #name, n, max
                ));
            }
        }
    });
    let held = watched.iter().enumerate().map(|(i, w)| {
        let ident = &w.ident;
        let ty = &w.ty;
        let slot = i as u16;
        let column = column_of(w);
        quote_spanned! {ty.span()=>
            out.begin(#slot, #column);
            ::live_core::__private::WatchedAssign::held(&self.#ident, out);
        }
    });
    let shares = watched.iter().map(|w| {
        let ident = &w.ident;
        let ty = &w.ty;
        quote_spanned! {ty.span()=> ::live_core::__private::WatchedAssign::share(&mut self.#ident); }
    });
    let applies = watched.iter().enumerate().map(|(i, w)| {
        let slot = i as u16;
        let row = row_of(w);
        let filter = match &w.filter {
            Some(f) => quote! { ::core::option::Option::Some(#f as fn(&#row) -> bool) },
            None => quote! { ::core::option::Option::None },
        };
        let ident = &w.ident;
        let hook = w
            .sync
            .as_ref()
            .map_or_else(|| quote! {}, |path| hook_call(ident, path));
        let ty = &w.ty;
        let apply = quote_spanned! {ty.span()=>
            ::live_core::__private::apply_changes(&mut self.#ident, batch, #slot, #filter)
        };
        quote! {
            if #apply? {
                changed = true;
                #hook
            }
        }
    });
    let hooks = watched
        .iter()
        .filter_map(|w| w.sync.as_ref().map(|path| hook_call(&w.ident, path)));
    let watched_methods = if watched.is_empty() {
        quote! {}
    } else {
        quote! {
            fn watch_types(types: &mut ::live_core::__private::WatchTypes) {
                #(#types)*
            }

            #key_fn

            fn watch_scopes(&self, out: &mut ::live_core::__private::Scopes) {
                #(#scopes)*
            }

            fn held_rows(&self, out: &mut ::live_core::__private::HeldRows) {
                #(#held)*
            }

            fn over_cap(&self) -> ::core::option::Option<::std::string::String> {
                #(#caps)*
                ::core::option::Option::None
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
                    let mut hook_error: ::core::option::Option<::live_core::ViewError> =
                        ::core::option::Option::None;
                    #(#applies)*
                    match hook_error {
                        ::core::option::Option::Some(e) => ::core::result::Result::Err(
                            ::live_core::__private::ApplyError::Hook(e),
                        ),
                        ::core::option::Option::None => ::core::result::Result::Ok(changed),
                    }
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
                    let mut hook_error: ::core::option::Option<::live_core::ViewError> =
                        ::core::option::Option::None;
                    #(#hooks)*
                    match hook_error {
                        ::core::option::Option::Some(e) => ::core::result::Result::Err(e),
                        ::core::option::Option::None => ::core::result::Result::Ok(()),
                    }
                }
            }
        }
    };
    let key_only = if watched.is_empty() {
        key_fn_only(&key)
    } else {
        quote! {}
    };
    let kept_methods = kept_methods(&kept);
    Ok(quote! {
        #(#checks)*
        impl ::live_core::Assigns for #name {
            #watched_methods
            #key_only
            #kept_methods
        }
    })
}

/// Runs the `sync` hook `path` of field `ident`: called through `call_sync_hook`, spanned at
/// the hook, so a hook of another shape is an error there that names the expected signature.
/// The hook gets a copy of the assign (`Arc` clones for a list of rows); a hook that fails
/// leaves the assign as patched and records the first error in `hook_error` (the other
/// assigns still take their changes).
fn hook_call(ident: &Ident, path: &Path) -> TokenStream2 {
    let call = quote_spanned! {path.span()=>
        ::live_core::__private::call_sync_hook(#path, self, taken, &mut ctx.reborrow())
    };
    quote! {
        let taken = ::core::clone::Clone::clone(&self.#ident);
        match #call.await {
            ::core::result::Result::Ok(v) => self.#ident = v,
            ::core::result::Result::Err(e) => {
                hook_error.get_or_insert(e);
            }
        }
    }
}

/// `kept` and `restore_kept` for the `#[keep]` fields (each must be `Serialize` and
/// `DeserializeOwned`; the error points at the field's type). Restoring is all or none.
fn kept_methods(kept: &[(Ident, Type)]) -> TokenStream2 {
    if kept.is_empty() {
        return quote! {};
    }
    let writes = kept.iter().map(|(ident, ty)| {
        let name = ident.to_string();
        quote_spanned! {ty.span()=>
            ::live_core::__private::keep_field::<#ty>(&mut out, #name, &self.#ident);
        }
    });
    let tmps: Vec<Ident> = kept
        .iter()
        .map(|(ident, _)| format_ident!("__kept_{}", ident))
        .collect();
    let reads = kept.iter().zip(&tmps).map(|((ident, ty), tmp)| {
        let name = ident.to_string();
        quote_spanned! {ty.span()=>
            let #tmp = ::live_core::__private::restored_field::<#ty>(kept, #name)?;
        }
    });
    let assigns = kept.iter().zip(&tmps).map(|((ident, _), tmp)| {
        quote! {
            if let ::core::option::Option::Some(v) = #tmp {
                self.#ident = v;
            }
        }
    });
    quote! {
        fn kept(&self) -> ::core::option::Option<::live_core::__private::KeptValue> {
            let mut out = ::live_core::__private::KeptMap::new();
            #(#writes)*
            ::core::option::Option::Some(::live_core::__private::kept_object(out))
        }

        fn restore_kept(
            &mut self,
            kept: &::live_core::__private::KeptValue,
        ) -> ::core::result::Result<(), ::std::string::String> {
            #(#reads)*
            #(#assigns)*
            ::core::result::Result::Ok(())
        }
    }
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
