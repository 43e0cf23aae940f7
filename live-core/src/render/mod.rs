//! Rendering: a view's `render` output, split into static fragments and keyed lists.
//!
//! A view renders lists through [`keyed`]. During a connected render the helper does not write
//! the rows into the page: it compares the rows with the ones it rendered last time (by
//! `Arc` pointer, plus optional dependencies), re-renders only those that changed, records row
//! operations (replace / insert / delete / move) for the diff, and leaves a marker that the
//! page is split at. So a one-row change costs one row render and a pointer comparison per
//! row, whatever the list's length, and only the small static rest of the page is text-diffed.
//!
//! Lists nest: a row that renders keyed lists of its own (the cards inside a board column) is
//! split the same way, into its own fragments and lists, and a change inside it is sent as
//! row operations on the inner list, addressed through the row's key (`Patch`). Such a row is
//! rendered again on every render (its inner lists must be tracked); its inner rows are not.
//!
//! Row HTML is shared: views that render the same row (`Arc` pointer) at the same call site
//! with the same dependencies share one string (rows without lists inside).

mod cache;

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::Location;
use std::sync::{Arc, OnceLock, Weak};

use maud::{Markup, PreEscaped};

use crate::row::{Key, KeyValue};

/// The HTML of one row, shared between views.
#[derive(Debug)]
pub(crate) struct RowHtml {
    pub key: Key,
    /// The row's HTML; for a row with lists inside, with the lists' markers in it (so two
    /// versions compare equal exactly when the row's own fragments are equal).
    pub html: Box<str>,
    pub len16: usize,
    /// Keeps the row's allocation (not its value) alive, so its address is not reused while
    /// this HTML may be matched by pointer.
    _ident: Option<Weak<dyn Any + Send + Sync>>,
}

/// One row of a list model.
#[derive(Debug, Clone)]
pub(crate) struct RowEntry {
    pub ptr: usize,
    pub deps: u64,
    pub html: Arc<RowHtml>,
    /// A row with keyed lists inside: its fragments and lists (this view's own, not shared).
    pub sub: Option<Arc<Rendered>>,
}

impl RowEntry {
    /// The row's key.
    pub(crate) fn key(&self) -> &Key {
        &self.html.key
    }

    /// Length of the row's whole HTML in UTF-16 units.
    pub(crate) fn len16(&self) -> usize {
        match &self.sub {
            Some(sub) => sub.len16(),
            None => self.html.len16,
        }
    }

    /// Bytes of the row's whole HTML.
    pub(crate) fn html_bytes(&self) -> usize {
        match &self.sub {
            Some(sub) => sub.html_bytes(),
            None => self.html.html.len(),
        }
    }

    fn write_html(&self, out: &mut String) {
        match &self.sub {
            Some(sub) => sub.write_html(out),
            None => out.push_str(&self.html.html),
        }
    }
}

/// A list's name: a literal, or built at run time (one list per column, say).
pub(crate) type ListName = Cow<'static, str>;

/// A keyed list as the client holds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListModel {
    pub name: ListName,
    pub rows: Vec<RowEntry>,
    pub keys: HashSet<Key>,
    pub len16: usize,
}

/// A row operation, in the order the client applies them.
#[derive(Debug, Clone)]
pub(crate) enum ListOp {
    Replace(RowEntry),
    Insert {
        after: Option<Key>,
        row: RowEntry,
    },
    Delete(Key),
    Move {
        key: Key,
        after: Option<Key>,
    },
    /// A patch of a row with lists inside (whose lists kept their shape): its own fragments
    /// that changed, as `(index, previous text)` (the new text is in `row`), and row ops on
    /// its lists, as `(index of the inner list, its ops)`.
    Patch {
        row: RowEntry,
        old_statics: Vec<(usize, String)>,
        lists: Vec<(usize, Vec<ListOp>)>,
    },
}

/// A rendered page: static fragments around keyed lists (`statics.len() == lists.len() + 1`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rendered {
    pub statics: Vec<String>,
    pub lists: Vec<ListModel>,
}

impl Rendered {
    /// The whole HTML.
    #[allow(dead_code)] // used by tests and the benchmark hooks
    pub(crate) fn to_html(&self) -> String {
        let mut out = String::with_capacity(self.html_bytes());
        self.write_html(&mut out);
        out
    }

    fn write_html(&self, out: &mut String) {
        for (i, s) in self.statics.iter().enumerate() {
            out.push_str(s);
            if let Some(list) = self.lists.get(i) {
                for r in &list.rows {
                    r.write_html(out);
                }
            }
        }
    }

    /// Bytes of the whole HTML.
    pub(crate) fn html_bytes(&self) -> usize {
        self.statics.iter().map(String::len).sum::<usize>()
            + self
                .lists
                .iter()
                .flat_map(|l| l.rows.iter())
                .map(RowEntry::html_bytes)
                .sum::<usize>()
    }

    /// Length of the whole HTML in UTF-16 units.
    pub(crate) fn len16(&self) -> usize {
        self.statics.iter().map(|s| utf16_len(s)).sum::<usize>()
            + self.lists.iter().map(|l| l.len16).sum::<usize>()
    }
}

/// Length of `s` in UTF-16 code units (what JavaScript's `length` counts).
pub(crate) fn utf16_len(s: &str) -> usize {
    // Every char is one unit, except those of 4 UTF-8 bytes, which are two.
    let mut n = 0;
    for &b in s.as_bytes() {
        if b & 0xC0 != 0x80 {
            n += if b >= 0xF0 { 2 } else { 1 };
        }
    }
    n
}

struct ListOut {
    model: ListModel,
    ops: Vec<ListOp>,
}

struct RenderCx {
    /// The previous render's lists (of this level: the page, or one row), taken as they are
    /// matched.
    prev: Vec<Option<ListModel>>,
    out: Vec<ListOut>,
}

thread_local! {
    static CX: RefCell<Option<RenderCx>> = const { RefCell::new(None) };
}

/// The marker a keyed list leaves in a connected render: a private-use character, a
/// per-process random nonce (so user text cannot forge one), the list index, and an end mark.
fn nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| {
        let bytes = crate::token::random_bytes(8);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

const MARK_START: char = '\u{E000}';
const MARK_END: char = '\u{E001}';

fn marker(index: usize) -> String {
    format!("{MARK_START}{}{index}{MARK_END}", nonce())
}

/// The result of a tracked render.
pub(crate) struct Tracked {
    /// The new model.
    pub model: Rendered,
    /// Each list's row ops against the previous render (list order).
    pub ops: Vec<Vec<ListOp>>,
    /// Whether the lists kept their names and order (else the ops are meaningless and the
    /// whole page must be sent).
    pub same_shape: bool,
}

/// Renders with row tracking against `prev` (whose lists are consumed).
pub(crate) fn render_tracked(prev: &mut Rendered, render: impl FnOnce() -> Markup) -> Tracked {
    let prev_lists = std::mem::take(&mut prev.lists);
    track_level(prev.statics.len(), prev_lists, || render().into_string()).0
}

/// Renders one level (the page, or a row with lists inside) with its keyed lists tracked
/// against `prev_lists`; returns the result and the HTML with the lists' markers in it.
fn track_level(
    prev_statics: usize,
    prev_lists: Vec<ListModel>,
    render: impl FnOnce() -> String,
) -> (Tracked, String) {
    let prev_names: Vec<ListName> = prev_lists.iter().map(|l| l.name.clone()).collect();
    // An outer level's context (a row is rendered while its list's level is set aside).
    let outer = CX.with(|c| {
        c.borrow_mut().replace(RenderCx {
            prev: prev_lists.into_iter().map(Some).collect(),
            out: Vec::new(),
        })
    });
    let html = render();
    let cx = CX.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    let outs = cx.map(|c| c.out).unwrap_or_default();
    if outs.is_empty() {
        let tracked = Tracked {
            model: Rendered {
                statics: vec![html.clone()],
                lists: Vec::new(),
            },
            ops: Vec::new(),
            same_shape: prev_statics == 1 && prev_names.is_empty(),
        };
        return (tracked, html);
    }
    match split(&html, outs.len()) {
        Some(statics) => {
            let mut lists = Vec::with_capacity(outs.len());
            let mut ops = Vec::with_capacity(outs.len());
            for o in outs {
                lists.push(o.model);
                ops.push(o.ops);
            }
            let same_shape = prev_statics == statics.len()
                && prev_names.len() == lists.len()
                && prev_names.iter().zip(&lists).all(|(n, l)| *n == l.name);
            // Two lists of one name in one render: matched by name and position, so the
            // diff stays right, but it is a mistake the developer must see.
            let mut seen = HashSet::new();
            for l in &lists {
                if !seen.insert(&l.name) {
                    tracing::error!(list = %l.name, "two keyed lists with the same name in one render; give each its own (e.g. format!(\"cards-{{column_id}}\"))");
                }
            }
            let tracked = Tracked {
                model: Rendered { statics, lists },
                ops,
                same_shape,
            };
            (tracked, html)
        }
        None => {
            tracing::error!(
                "a keyed list was rendered twice or lost (its Markup cloned or dropped); \
                 sending the page without keyed lists"
            );
            let mut flat = html;
            for (i, o) in outs.iter().enumerate() {
                let mut rows = String::new();
                for r in &o.model.rows {
                    r.write_html(&mut rows);
                }
                flat = flat.replace(&marker(i), &rows);
            }
            let tracked = Tracked {
                model: Rendered {
                    statics: vec![flat.clone()],
                    lists: Vec::new(),
                },
                ops: Vec::new(),
                same_shape: false,
            };
            (tracked, flat)
        }
    }
}

/// Renders without tracking (the first, static render of a GET).
pub(crate) fn render_static(render: impl FnOnce() -> Markup) -> String {
    let outer = CX.with(|c| c.borrow_mut().take());
    let html = render().into_string();
    CX.with(|c| *c.borrow_mut() = outer);
    html
}

/// Splits at the markers; `None` unless markers 0..n appear once each, in order.
fn split(html: &str, n: usize) -> Option<Vec<String>> {
    let mut statics = Vec::with_capacity(n + 1);
    let mut rest = html;
    let prefix = format!("{MARK_START}{}", nonce());
    for i in 0..n {
        let at = rest.find(&prefix)?;
        statics.push(rest[..at].to_string());
        let after = &rest[at + prefix.len()..];
        let end = after.find(MARK_END)?;
        if after[..end].parse::<usize>().ok()? != i {
            return None;
        }
        rest = &after[end + MARK_END.len_utf8()..];
    }
    if rest.contains(&prefix) {
        return None;
    }
    statics.push(rest.to_string());
    Some(statics)
}

/// A keyed list being set up; see [`keyed`].
///
/// ```
/// use std::sync::Arc;
/// use live_core::{html, keyed};
///
/// struct Todo { id: i64, title: String }
/// let todos = vec![
///     Arc::new(Todo { id: 1, title: "milk".into() }),
///     Arc::new(Todo { id: 2, title: "eggs".into() }),
/// ];
/// let editing = Some(2);
/// let list = keyed("todos", &todos, |t| t.id) // the rows and their keys
///     .depends_on(|t| editing == Some(t.id)); // what else a row's HTML reads
/// let page = html! {
///     ul { (list.render(|t| html! {
///         li { (t.title) @if editing == Some(t.id) { " (editing)" } }
///     })) }
/// };
/// assert_eq!(
///     page.into_string(),
///     r#"<ul><li data-live-key="1">milk</li><li data-live-key="2">eggs (editing)</li></ul>"#
/// );
/// ```
pub struct Keyed<'a, T, KF, DF> {
    name: ListName,
    rows: &'a [Arc<T>],
    key: KF,
    deps: DF,
    site: &'static Location<'static>,
}

impl<T, KF, DF> std::fmt::Debug for Keyed<'_, T, KF, DF> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("rows", &self.rows.len())
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// Renders a list whose rows have stable keys (row ids): on an update only the rows that
/// changed are rendered again and sent, as keyed row operations.
///
/// Each row must render as **one element**; the helper adds `data-live-key="<key>"` to it.
/// A row is re-rendered when its `Arc` is a different pointer from last time, or when the value
/// from [`Keyed::depends_on`] changed: declare there anything else from the view that the row
/// HTML reads (the id being edited, a filter). Rows are kept as `Arc<T>` in the assigns
/// (`Vec<Arc<T>>`), which watched lists are.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{html, keyed, Markup};
///
/// struct Todo { id: i64, title: String }
/// let todos = vec![Arc::new(Todo { id: 1, title: "milk".into() })];
/// let editing: Option<i64> = None;
/// let page: Markup = html! {
///     ul {
///         (keyed("todos", &todos, |t| t.id)
///             .depends_on(|t| editing == Some(t.id))
///             .render(|t| html! { li { (t.title) } }))
///     }
/// };
/// assert_eq!(page.into_string(), r#"<ul><li data-live-key="1">milk</li></ul>"#);
/// ```
///
/// The name identifies the list between renders: a literal, or a `String` built at run time
/// for lists that repeat (`format!("cards-{}", column.id)`). Each list of one render needs its
/// own name; a repeated name is logged as an error, and the lists are still matched with the
/// previous render by name and position (so the diff stays right).
///
/// Lists nest: a row may render keyed lists of its own, and a change inside them is sent as
/// row operations on the inner list only. A row with lists inside is rendered again on every
/// render of its view (so its `depends_on` does not matter); keep such outer lists short
/// (columns, groups), the inner rows are tracked as usual.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{html, keyed, Markup};
///
/// struct Column { id: i64, name: String }
/// struct Card { id: i64, column_id: i64, title: String }
/// let columns = vec![Arc::new(Column { id: 1, name: "To do".into() })];
/// let cards = vec![Arc::new(Card { id: 7, column_id: 1, title: "milk".into() })];
/// let page: Markup = html! {
///     (keyed("columns", &columns, |c| c.id).render(|col| {
///         let mine: Vec<Arc<Card>> =
///             cards.iter().filter(|c| c.column_id == col.id).cloned().collect();
///         html! {
///             section {
///                 h2 { (col.name) }
///                 ul { (keyed(format!("cards-{}", col.id), &mine, |c| c.id)
///                     .render(|c| html! { li { (c.title) } })) }
///             }
///         }
///     }))
/// };
/// assert_eq!(
///     page.into_string(),
///     r#"<section data-live-key="1"><h2>To do</h2><ul><li data-live-key="7">milk</li></ul></section>"#
/// );
/// ```
#[track_caller]
pub fn keyed<'a, T, K, KF>(
    name: impl Into<Cow<'static, str>>,
    rows: &'a [Arc<T>],
    key: KF,
) -> Keyed<'a, T, KF, fn(&T) -> ()>
where
    T: Send + Sync + 'static,
    K: KeyValue,
    KF: Fn(&T) -> K,
{
    Keyed {
        name: name.into(),
        rows,
        key,
        deps: |_| (),
        site: Location::caller(),
    }
}

/// How the lists inside one re-rendered row changed.
enum Inner {
    /// The row has no lists inside, or nothing to compare with.
    None,
    /// The inner lists kept their shape: the row's previous fragments, and the lists' ops.
    Ops(Vec<String>, Vec<Vec<ListOp>>),
    /// The inner lists changed shape: the row must be sent whole.
    Reshaped,
}

impl<'a, T, K, KF, D, DF> Keyed<'a, T, KF, DF>
where
    T: Send + Sync + 'static,
    K: KeyValue,
    KF: Fn(&T) -> K,
    D: Hash,
    DF: Fn(&T) -> D,
{
    /// Declares what else a row's HTML depends on; rows whose value changes are re-rendered.
    pub fn depends_on<D2: Hash, DF2: Fn(&T) -> D2>(self, deps: DF2) -> Keyed<'a, T, KF, DF2> {
        Keyed {
            name: self.name,
            rows: self.rows,
            key: self.key,
            deps,
            site: self.site,
        }
    }

    /// Renders the rows with `row`.
    pub fn render(self, row: impl Fn(&T) -> Markup) -> Markup {
        let cx = CX.with(|c| c.borrow_mut().take());
        let Some(mut cx) = cx else {
            // Static render: write the rows in place (lists inside rows too).
            let mut out = String::new();
            for r in self.rows {
                let key = key_of(&self.key, r);
                out.push_str(&render_row(&row, r, &key));
            }
            return PreEscaped(out);
        };
        // The previous list of this name that is not matched yet (so lists that repeat a
        // name still meet their own previous version, in order).
        let prev = cx
            .prev
            .iter_mut()
            .find(|l| l.as_ref().is_some_and(|l| l.name == self.name))
            .and_then(Option::take)
            .unwrap_or_else(|| ListModel {
                name: self.name.clone(),
                ..ListModel::default()
            });
        // Rows are rendered with this level set aside (rows with lists inside set up their
        // own level).
        let (model, ops) = self.track(prev, &row);
        let index = cx.out.len();
        cx.out.push(ListOut { model, ops });
        CX.with(|c| *c.borrow_mut() = Some(cx));
        PreEscaped(marker(index))
    }

    fn deps_of(&self, r: &T) -> u64 {
        let mut h = cache::FxHasher::default();
        (self.deps)(r).hash(&mut h);
        h.finish()
    }

    /// Renders one row of a connected render. A row that had lists inside is tracked against
    /// `prev_sub`; any other row is looked up in the shared cache first.
    fn entry(
        &self,
        r: &Arc<T>,
        row: &impl Fn(&T) -> Markup,
        prev_sub: Option<Rendered>,
    ) -> (RowEntry, Inner) {
        let ptr = Arc::as_ptr(r) as *const () as usize;
        let deps = self.deps_of(r);
        if prev_sub.is_none()
            && let Some(html) = cache::get(ptr, self.site, deps)
        {
            let entry = RowEntry {
                ptr,
                deps,
                html,
                sub: None,
            };
            return (entry, Inner::None);
        }
        let key = key_of(&self.key, r);
        let had_sub = prev_sub.is_some();
        let (prev_statics, prev_lists) = match prev_sub {
            Some(p) => (p.statics, p.lists),
            None => (vec![String::new()], Vec::new()),
        };
        let (tracked, html) =
            track_level(prev_statics.len(), prev_lists, || render_row(row, r, &key));
        if tracked.model.lists.is_empty() {
            let weak: Weak<dyn Any + Send + Sync> = {
                let strong: Arc<dyn Any + Send + Sync> = r.clone();
                Arc::downgrade(&strong)
            };
            let html = cache::insert(
                ptr,
                self.site,
                deps,
                RowHtml {
                    len16: utf16_len(&html),
                    key,
                    html: html.into_boxed_str(),
                    _ident: Some(weak),
                },
            );
            let inner = if had_sub {
                Inner::Reshaped
            } else {
                Inner::None
            };
            let entry = RowEntry {
                ptr,
                deps,
                html,
                sub: None,
            };
            return (entry, inner);
        }
        let inner = match (had_sub, tracked.same_shape) {
            (false, _) => Inner::None,
            (true, true) => Inner::Ops(prev_statics, tracked.ops),
            (true, false) => Inner::Reshaped,
        };
        let sub = tracked.model;
        let entry = RowEntry {
            ptr,
            deps,
            html: Arc::new(RowHtml {
                key,
                len16: sub.len16(),
                html: html.into_boxed_str(),
                _ident: None,
            }),
            sub: Some(Arc::new(sub)),
        };
        (entry, inner)
    }

    /// Compares the rows with `prev` and returns the new model and row ops.
    fn track(&self, mut prev: ListModel, row: &impl Fn(&T) -> Markup) -> (ListModel, Vec<ListOp>) {
        let rows = self.rows;
        let n_old = prev.rows.len();
        let n_new = rows.len();
        // Rows with lists inside are never the same: their lists are tracked every render.
        let same = |e: &RowEntry, r: &Arc<T>| {
            e.sub.is_none()
                && e.ptr == Arc::as_ptr(r) as *const () as usize
                && e.deps == self.deps_of(r)
        };
        // Unchanged prefix and suffix, by pointer.
        let mut start = 0;
        while start < n_old.min(n_new) && same(&prev.rows[start], &rows[start]) {
            start += 1;
        }
        let mut end = 0;
        while end < (n_old - start).min(n_new - start)
            && same(&prev.rows[n_old - 1 - end], &rows[n_new - 1 - end])
        {
            end += 1;
        }
        if start == n_old && start == n_new {
            return (prev, Vec::new());
        }
        let old_len16: usize = prev.rows[start..n_old - end]
            .iter()
            .map(RowEntry::len16)
            .sum();
        // The inner lists of the window's rows are the previous render of those lists.
        let mut prev_subs: HashMap<Key, Rendered> = HashMap::new();
        for e in &mut prev.rows[start..n_old - end] {
            if let Some(sub) = e.sub.take() {
                let sub = Arc::try_unwrap(sub).unwrap_or_else(|shared| (*shared).clone());
                prev_subs.insert(e.html.key.clone(), sub);
            }
        }
        let old_mid: &[RowEntry] = &prev.rows[start..n_old - end];
        let old_by_key: HashMap<&Key, usize> = old_mid
            .iter()
            .enumerate()
            .map(|(i, e)| (&e.html.key, i))
            .rev()
            .collect();
        let mut new_mid: Vec<RowEntry> = Vec::with_capacity(n_new - start - end);
        let mut inner: Vec<Inner> = Vec::with_capacity(n_new - start - end);
        for r in &rows[start..n_new - end] {
            let key = key_of(&self.key, r);
            let ptr = Arc::as_ptr(r) as *const () as usize;
            let reuse = old_by_key.get(&key).map(|&i| &old_mid[i]).filter(|e| {
                !prev_subs.contains_key(&key) && e.ptr == ptr && e.deps == self.deps_of(r)
            });
            match reuse {
                Some(e) => {
                    new_mid.push(e.clone());
                    inner.push(Inner::None);
                }
                None => {
                    let (e, i) = self.entry(r, row, prev_subs.remove(&key));
                    new_mid.push(e);
                    inner.push(i);
                }
            }
        }
        // Keys must be unique within the list: a duplicate gets a suffix (and a warning).
        let old_mid_keys: HashSet<&Key> = old_mid.iter().map(|e| &e.html.key).collect();
        let mut seen: HashSet<Key> = HashSet::new();
        for (e, inner) in new_mid.iter_mut().zip(inner.iter_mut()) {
            let k = e.html.key.clone();
            let clash =
                !seen.insert(k.clone()) || (prev.keys.contains(&k) && !old_mid_keys.contains(&k));
            if clash {
                let mut n = 2;
                let unique = loop {
                    let candidate = Key::from(format!("{k}~{n}"));
                    if !prev.keys.contains(&candidate) && !seen.contains(&candidate) {
                        break candidate;
                    }
                    n += 1;
                };
                tracing::warn!(list = %self.name, key = %k, "duplicate key in a keyed list");
                seen.insert(unique.clone());
                e.html = Arc::new(RowHtml {
                    key: unique,
                    html: e.html.html.clone(),
                    len16: e.html.len16,
                    _ident: None,
                });
                *inner = Inner::None;
            }
        }
        let before = (start > 0).then(|| prev.rows[start - 1].html.key.clone());
        let ops = mid_ops(old_mid, &new_mid, inner, before);
        for e in old_mid {
            prev.keys.remove(&e.html.key);
        }
        prev.len16 -= old_len16;
        for e in &new_mid {
            prev.keys.insert(e.html.key.clone());
            prev.len16 += e.len16();
        }
        // In place: only the rows after the window move, and only if its length changed.
        prev.rows.splice(start..n_old - end, new_mid);
        (prev, ops)
    }
}

/// The op for a row kept under its key: nothing, a patch of a row with lists inside, or a
/// replace.
fn changed_row(old: &RowEntry, new: &RowEntry, inner: Inner, ops: &mut Vec<ListOp>) {
    let own_changed = !Arc::ptr_eq(&old.html, &new.html) && old.html.html != new.html.html;
    match inner {
        Inner::Ops(prev_statics, lists) => {
            let old_statics: Vec<(usize, String)> = match &new.sub {
                Some(sub) if own_changed => prev_statics
                    .into_iter()
                    .zip(&sub.statics)
                    .enumerate()
                    .filter(|(_, (a, b))| a != *b)
                    .map(|(i, (a, _))| (i, a))
                    .collect(),
                _ => Vec::new(),
            };
            let lists: Vec<(usize, Vec<ListOp>)> = lists
                .into_iter()
                .enumerate()
                .filter(|(_, ops)| !ops.is_empty())
                .collect();
            if !lists.is_empty() || !old_statics.is_empty() {
                ops.push(ListOp::Patch {
                    row: new.clone(),
                    old_statics,
                    lists,
                });
            }
        }
        _ if own_changed => ops.push(ListOp::Replace(new.clone())),
        Inner::Reshaped => ops.push(ListOp::Replace(new.clone())),
        Inner::None => {}
    }
}

/// Row ops that turn `old` into `new` (a window of the list after the row `before`).
fn mid_ops(
    old: &[RowEntry],
    new: &[RowEntry],
    inner: Vec<Inner>,
    before: Option<Key>,
) -> Vec<ListOp> {
    use similar::{Algorithm, DiffOp, capture_diff_slices};
    let old_keys: Vec<&Key> = old.iter().map(|e| &e.html.key).collect();
    let new_keys: Vec<&Key> = new.iter().map(|e| &e.html.key).collect();
    let mut removed: HashSet<&Key> = HashSet::new();
    let mut added: HashSet<&Key> = HashSet::new();
    let mut kept_old_index: Vec<Option<usize>> = vec![None; new.len()];
    for op in capture_diff_slices(Algorithm::Myers, &old_keys, &new_keys) {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for k in 0..len {
                    kept_old_index[new_index + k] = Some(old_index + k);
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => removed.extend(&old_keys[old_index..old_index + old_len]),
            DiffOp::Insert {
                new_index, new_len, ..
            } => added.extend(&new_keys[new_index..new_index + new_len]),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                removed.extend(&old_keys[old_index..old_index + old_len]);
                added.extend(&new_keys[new_index..new_index + new_len]);
            }
        }
    }
    let mut ops = Vec::new();
    for k in &removed {
        if !added.contains(k) {
            ops.push(ListOp::Delete((*k).clone()));
        }
    }
    let mut after = before;
    for ((i, e), inner) in new.iter().enumerate().zip(inner) {
        let key = &e.html.key;
        if let Some(oi) = kept_old_index[i] {
            changed_row(&old[oi], e, inner, &mut ops);
        } else if removed.contains(key) {
            ops.push(ListOp::Move {
                key: key.clone(),
                after: after.clone(),
            });
            if let Some(o) = old.iter().find(|o| &o.html.key == key) {
                changed_row(o, e, inner, &mut ops);
            }
        } else {
            ops.push(ListOp::Insert {
                after: after.clone(),
                row: e.clone(),
            });
        }
        after = Some(key.clone());
    }
    ops
}

fn key_of<T, K: KeyValue>(key: &impl Fn(&T) -> K, r: &T) -> Key {
    key(r).to_key().unwrap_or_else(|| Key::from("null"))
}

/// Renders one row and adds `data-live-key` to its root element.
fn render_row<T>(row: &impl Fn(&T) -> Markup, r: &T, key: &Key) -> String {
    let html = row(r).into_string();
    inject_key(html, key)
}

fn inject_key(html: String, key: &Key) -> String {
    let bytes = html.as_bytes();
    if bytes.first() != Some(&b'<') || !bytes.get(1).is_some_and(u8::is_ascii_alphabetic) {
        static WARNED: OnceLock<()> = OnceLock::new();
        if WARNED.set(()).is_ok() {
            tracing::warn!("a keyed row does not start with an element; it cannot be keyed");
        }
        return html;
    }
    let name_end = bytes[1..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        .map_or(bytes.len(), |p| p + 1);
    let mut escaped = String::new();
    {
        use std::fmt::Write;
        // Writing into a String cannot fail.
        let _ = maud::Escaper::new(&mut escaped).write_str(key.as_str());
    }
    let mut out = String::with_capacity(html.len() + escaped.len() + 17);
    out.push_str(&html[..name_end]);
    out.push_str(" data-live-key=\"");
    out.push_str(&escaped);
    out.push('"');
    out.push_str(&html[name_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use maud::html;

    #[test]
    fn utf16_lengths() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a<b>é😀"), "a<b>é😀".encode_utf16().count());
        assert_eq!(utf16_len("中文"), 2);
    }

    #[test]
    fn injects_the_key() {
        assert_eq!(
            inject_key("<li class=\"x\">a</li>".into(), &Key::from("7")),
            "<li data-live-key=\"7\" class=\"x\">a</li>"
        );
        assert_eq!(
            inject_key("<br>".into(), &Key::from("a\"b")),
            "<br data-live-key=\"a&quot;b\">"
        );
        assert_eq!(inject_key("text".into(), &Key::from("1")), "text");
    }

    struct Row {
        id: i64,
        t: String,
    }

    fn page(rows: &[Arc<Row>], sel: i64) -> Markup {
        html! {
            h1 { "list" }
            ul { (keyed("rows", rows, |r| r.id).depends_on(|r| r.id == sel).render(|r| html! { li { (r.t) @if r.id == sel { "*" } } })) }
            p { (rows.len()) }
        }
    }

    fn apply(model: &mut Vec<(Key, String)>, ops: &[ListOp]) {
        for op in ops {
            match op {
                ListOp::Replace(row) => {
                    let h = &row.html;
                    let i = model.iter().position(|(k, _)| *k == h.key).unwrap();
                    model[i].1 = h.html.to_string();
                }
                ListOp::Insert { after, row } => {
                    let html = &row.html;
                    let at = after
                        .as_ref()
                        .map_or(0, |a| model.iter().position(|(k, _)| k == a).unwrap() + 1);
                    model.insert(at, (html.key.clone(), html.html.to_string()));
                }
                ListOp::Delete(k) => model.retain(|(x, _)| x != k),
                ListOp::Patch { .. } => panic!("no lists inside rows here"),
                ListOp::Move { key, after } => {
                    let i = model.iter().position(|(k, _)| k == key).unwrap();
                    let item = model.remove(i);
                    let at = after
                        .as_ref()
                        .map_or(0, |a| model.iter().position(|(k, _)| k == a).unwrap() + 1);
                    model.insert(at, item);
                }
            }
        }
    }

    /// Columns of cards: one keyed list per column.
    fn board(cols: &[Vec<Arc<Row>>], same_name: bool) -> Markup {
        html! {
            @for (c, rows) in cols.iter().enumerate() {
                section {
                    h2 { "column " (c) }
                    @let name = if same_name { "cards".to_string() } else { format!("cards-{c}") };
                    ul { (keyed(name, rows, |r| r.id).render(|r| html! { li { (r.t) } })) }
                }
            }
        }
    }

    /// Regression (issue 8): with three lists of one name, a change in one column was diffed
    /// against another list (the previous lists were looked up by name and `swap_remove`d).
    /// Lists are matched by name and position, and names can be built at run time.
    #[test]
    fn repeated_and_runtime_named_lists_diff_against_their_own_previous_list() {
        for same_name in [true, false] {
            let mut cols: Vec<Vec<Arc<Row>>> = (0..4)
                .map(|c| {
                    (0..3)
                        .map(|i| {
                            Arc::new(Row {
                                id: c * 10 + i,
                                t: format!("card {c}.{i}"),
                            })
                        })
                        .collect()
                })
                .collect();
            let mut prev =
                render_tracked(&mut Rendered::default(), || board(&cols, same_name)).model;
            for step in 0..12_usize {
                let c = step % 4;
                let i = step % 3;
                cols[c][i] = Arc::new(Row {
                    id: cols[c][i].id,
                    t: format!("changed {step}"),
                });
                let t = render_tracked(&mut prev, || board(&cols, same_name));
                assert!(t.same_shape);
                assert_eq!(t.model.to_html(), render_static(|| board(&cols, same_name)));
                for (l, ops) in t.ops.iter().enumerate() {
                    if l == c {
                        assert_eq!(ops.len(), 1, "list {l}: {ops:?}");
                        assert!(
                            matches!(&ops[0], ListOp::Replace(h) if h.html.html.contains(&format!("changed {step}")))
                        );
                    } else {
                        assert!(ops.is_empty(), "list {l} got ops for column {c}: {ops:?}");
                    }
                }
                prev = t.model;
            }
        }
    }

    #[test]
    fn tracked_render_matches_static_render_and_ops_replay() {
        let mut rows: Vec<Arc<Row>> = (0..20)
            .map(|i| {
                Arc::new(Row {
                    id: i,
                    t: format!("r{i} é😀"),
                })
            })
            .collect();
        let mut prev = Rendered::default();
        let model = render_tracked(&mut prev, || page(&rows, 3)).model;
        assert_eq!(model.to_html(), render_static(|| page(&rows, 3)));
        let mut client: Vec<(Key, String)> = model.lists[0]
            .rows
            .iter()
            .map(|r| (r.html.key.clone(), r.html.html.to_string()))
            .collect();
        let mut prev = model;
        let mut seed = 7u64;
        for step in 0..300 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = rows.len().max(1);
            let i = (seed >> 33) as usize % n;
            match seed % 5 {
                0 if !rows.is_empty() => {
                    rows.remove(i);
                }
                1 => rows.insert(
                    i.min(rows.len()),
                    Arc::new(Row {
                        id: 1000 + step,
                        t: format!("new {step} ü"),
                    }),
                ),
                2 if !rows.is_empty() => {
                    let r = rows.remove(i);
                    let j = (seed >> 40) as usize % (rows.len() + 1);
                    rows.insert(j, r);
                }
                3 if !rows.is_empty() => {
                    rows[i] = Arc::new(Row {
                        id: rows[i].id,
                        t: format!("upd {step} 中"),
                    });
                }
                _ => {}
            }
            let sel = (seed >> 20) as i64 % 25;
            let Tracked {
                model,
                ops,
                same_shape,
            } = render_tracked(&mut prev, || page(&rows, sel));
            assert!(same_shape);
            assert_eq!(
                model.to_html(),
                render_static(|| page(&rows, sel)),
                "step {step}"
            );
            apply(&mut client, &ops[0]);
            let expect: Vec<(Key, String)> = model.lists[0]
                .rows
                .iter()
                .map(|r| (r.html.key.clone(), r.html.html.to_string()))
                .collect();
            assert_eq!(client, expect, "step {step}");
            assert_eq!(
                model.lists[0].len16,
                expect.iter().map(|(_, h)| utf16_len(h)).sum::<usize>()
            );
            prev = model;
        }
    }

    #[test]
    fn unchanged_rows_are_not_rendered_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let rows: Vec<Arc<Row>> = (0..100)
            .map(|i| {
                Arc::new(Row {
                    id: i,
                    t: "x".into(),
                })
            })
            .collect();
        let view = |rows: &[Arc<Row>]| {
            html! { ul { (keyed("r", rows, |r| r.id).render(|r| {
                CALLS.fetch_add(1, Ordering::Relaxed);
                html! { li { (r.t) } }
            })) } }
        };
        let mut prev = Rendered::default();
        let mut prev = render_tracked(&mut prev, || view(&rows)).model;
        let before = CALLS.load(Ordering::Relaxed);
        let mut rows2 = rows.clone();
        rows2[50] = Arc::new(Row {
            id: 50,
            t: "y".into(),
        });
        let ops = render_tracked(&mut prev, || view(&rows2)).ops;
        assert_eq!(CALLS.load(Ordering::Relaxed) - before, 1);
        assert_eq!(ops[0].len(), 1);
        assert!(matches!(&ops[0][0], ListOp::Replace(h) if h.key().as_str() == "50"));
    }
}
