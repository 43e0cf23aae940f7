//! Diffs: what changed between two renders, encoded for the wire (see `assets/README.md`).
//!
//! - Keyed lists arrive with their row ops from the render (`render` module).
//! - Static fragments are text-diffed with `similar`, over tokens cut at tag boundaries and
//!   whitespace (maud writes no newlines, so a line diff would see one line), under a time
//!   budget; offsets are UTF-16 code units, the unit JavaScript strings index by.
//! - Every patch carries its version, the UTF-16 length of the resulting HTML and a hash of the
//!   static fragments, so the client can tell when its copy went wrong and ask for a resync.

#[cfg(any(test, feature = "testing"))]
pub(crate) mod client;
mod page;

pub(crate) use page::{Frames, PageTracker, diff_estimate};

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp};

use crate::render::{ListModel, ListOp, Rendered, RowEntry, utf16_len};

/// Time budget for one static fragment's text diff.
const TEXT_DIFF_BUDGET: Duration = Duration::from_millis(5);
/// Above this size a changed static fragment is replaced whole.
const TEXT_DIFF_MAX: usize = 512 * 1024;

/// An edit of a static fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextOp {
    /// Keep this many UTF-16 units.
    Retain(usize),
    /// Delete this many UTF-16 units.
    Delete(usize),
    /// Insert this text.
    Insert(String),
}

/// Cuts HTML into tokens: tags (split further at whitespace), whitespace runs, and text runs.
fn tokenize(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 6 + 1);
    let mut start = 0;
    let mut in_tag = false;
    let class = |c: u8| -> u8 {
        if c.is_ascii_whitespace() {
            0
        } else if c == b'"' || c == b'=' {
            2
        } else {
            1
        }
    };
    for i in 0..b.len() {
        let c = b[i];
        let cut_before = if c == b'<' {
            true
        } else if i > 0 {
            let p = b[i - 1];
            p == b'>' || class(p) != class(c) || (in_tag && class(c) == 2)
        } else {
            false
        };
        if cut_before && i > start {
            out.push(&s[start..i]);
            start = i;
        }
        if c == b'<' {
            in_tag = true;
        } else if c == b'>' {
            in_tag = false;
        }
    }
    if start < b.len() {
        out.push(&s[start..]);
    }
    out
}

/// The text ops that turn `old` into `new`.
pub(crate) fn text_ops(old: &str, new: &str) -> Vec<TextOp> {
    if old == new {
        return Vec::new();
    }
    // Common prefix/suffix first (cheap), then a token diff of the middle.
    let prefix = common_prefix(old, new);
    let suffix = common_suffix(&old[prefix..], &new[prefix..]);
    let old_mid = &old[prefix..old.len() - suffix];
    let new_mid = &new[prefix..new.len() - suffix];
    let mut ops = Vec::new();
    push_retain(&mut ops, utf16_len(&old[..prefix]));
    if old_mid.len() + new_mid.len() > TEXT_DIFF_MAX {
        push_delete(&mut ops, utf16_len(old_mid));
        push_insert(&mut ops, new_mid);
    } else {
        let a = tokenize(old_mid);
        let b = tokenize(new_mid);
        let deadline = Instant::now() + TEXT_DIFF_BUDGET;
        for op in similar::capture_diff_slices_deadline(Algorithm::Myers, &a, &b, Some(deadline)) {
            match op {
                DiffOp::Equal { old_index, len, .. } => {
                    push_retain(&mut ops, units(&a[old_index..old_index + len]));
                }
                DiffOp::Delete {
                    old_index, old_len, ..
                } => push_delete(&mut ops, units(&a[old_index..old_index + old_len])),
                DiffOp::Insert {
                    new_index, new_len, ..
                } => push_insert(&mut ops, &b[new_index..new_index + new_len].concat()),
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => {
                    push_delete(&mut ops, units(&a[old_index..old_index + old_len]));
                    push_insert(&mut ops, &b[new_index..new_index + new_len].concat());
                }
            }
        }
    }
    // A trailing retain is implied.
    if let Some(TextOp::Retain(_)) = ops.last() {
        ops.pop();
    }
    ops
}

fn units(tokens: &[&str]) -> usize {
    tokens.iter().map(|t| utf16_len(t)).sum()
}

fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = a
        .as_bytes()
        .iter()
        .zip(b.as_bytes())
        .take_while(|(x, y)| x == y)
        .count();
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    n
}

fn common_suffix(a: &str, b: &str) -> usize {
    let mut n = a
        .as_bytes()
        .iter()
        .rev()
        .zip(b.as_bytes().iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    while !a.is_char_boundary(a.len() - n) || !b.is_char_boundary(b.len() - n) {
        n -= 1;
    }
    n
}

fn push_retain(ops: &mut Vec<TextOp>, n: usize) {
    if n == 0 {
        return;
    }
    if let Some(TextOp::Retain(m)) = ops.last_mut() {
        *m += n;
    } else {
        ops.push(TextOp::Retain(n));
    }
}

fn push_delete(ops: &mut Vec<TextOp>, n: usize) {
    if n == 0 {
        return;
    }
    if let Some(TextOp::Delete(m)) = ops.last_mut() {
        *m += n;
    } else {
        ops.push(TextOp::Delete(n));
    }
}

fn push_insert(ops: &mut Vec<TextOp>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(TextOp::Insert(m)) = ops.last_mut() {
        m.push_str(s);
    } else {
        ops.push(TextOp::Insert(s.to_string()));
    }
}

/// FNV-1a (32-bit) over the UTF-16 code units of the static fragments, low byte first.
pub(crate) fn statics_hash(statics: &[String]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for s in statics {
        for u in s.encode_utf16() {
            h ^= u32::from(u & 0xff);
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(u >> 8);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Writes a JSON string.
fn json_str(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires; writing to a String cannot fail.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

/// Appends the rendered model `R` (`{"s": [...], "l": [[[key, html], ...], ...]}`, where a row
/// with lists inside has an `R` for its html) with only the first `counts[i]` rows of each
/// list (all rows when `counts` is `None`).
fn write_model_prefix(out: &mut String, r: &Rendered, counts: Option<&[usize]>) {
    out.push_str("{\"s\":[");
    for (i, s) in r.statics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, s);
    }
    out.push_str("],\"l\":[");
    for (i, l) in r.lists.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let count = counts.map_or(l.rows.len(), |c| c.get(i).copied().unwrap_or(0));
        write_rows(out, l, count);
    }
    out.push_str("]}");
}

/// A `full` diff payload from a first piece.
pub(crate) fn full_payload(version: u64, r: &Rendered, pieces: &Pieces) -> String {
    format!(
        "{{\"v\":{version},\"full\":{},\"len\":{},\"h\":{}}}",
        pieces.first,
        pieces.first_len,
        statics_hash(&r.statics)
    )
}

/// The whole model in pieces of about `budget` bytes: the first piece is the model with each
/// list cut short (for a join reply or a `full` diff), the others insert the remaining rows in
/// order. A big page then never makes one big frame (tungstenite keeps its write buffer at the
/// size of the largest frame it ever sent, per connection).
pub(crate) struct Pieces {
    /// The first piece: `R` with the lists cut short.
    pub first: String,
    /// The UTF-16 length of the HTML the first piece makes.
    pub first_len: usize,
    /// Diff payloads after the first, from version `version + 1` on.
    pub rest: Vec<String>,
}

/// Splits `r` for sending; the first piece is version `version`, the rest follow it.
pub(crate) fn model_in_pieces(r: &Rendered, version: u64, budget: usize) -> Pieces {
    let statics_len: usize = r.statics.iter().map(|s| utf16_len(s)).sum();
    let hash = statics_hash(&r.statics);
    let mut used: usize = r.statics.iter().map(String::len).sum();
    let mut counts = vec![0usize; r.lists.len()];
    // As many rows as fit in the first piece, list after list.
    'fill: for (i, l) in r.lists.iter().enumerate() {
        for row in &l.rows {
            let size = row.html_bytes() + row.html.key.as_str().len() + 8;
            if used + size > budget {
                break 'fill;
            }
            used += size;
            counts[i] += 1;
        }
    }
    let mut first = String::with_capacity(used + 64);
    write_model_prefix(&mut first, r, Some(&counts));
    let mut len16 = statics_len
        + r.lists
            .iter()
            .zip(&counts)
            .map(|(l, n)| l.rows[..*n].iter().map(RowEntry::len16).sum::<usize>())
            .sum::<usize>();
    let first_len = len16;
    let mut rest = Vec::new();
    let mut v = version;
    for (i, l) in r.lists.iter().enumerate() {
        let mut start = counts[i];
        while start < l.rows.len() {
            let mut end = start;
            let mut size = 0;
            while end < l.rows.len() && (end == start || size + l.rows[end].html_bytes() < budget) {
                size += l.rows[end].html_bytes() + 32;
                end += 1;
            }
            v += 1;
            let mut out = String::with_capacity(size + 64);
            out.push_str("{\"v\":");
            out.push_str(&v.to_string());
            out.push_str(",\"l\":[[");
            out.push_str(&i.to_string());
            out.push_str(",[");
            for j in start..end {
                if j > start {
                    out.push(',');
                }
                let after = (j > 0).then(|| l.rows[j - 1].html.key.clone());
                write_list_op(
                    &mut out,
                    &ListOp::Insert {
                        after,
                        row: l.rows[j].clone(),
                    },
                );
                len16 += l.rows[j].len16();
            }
            out.push_str("]]],\"len\":");
            out.push_str(&len16.to_string());
            out.push_str(",\"h\":");
            out.push_str(&hash.to_string());
            out.push('}');
            rest.push(out);
            start = end;
        }
    }
    Pieces {
        first,
        first_len,
        rest,
    }
}

fn write_rows(out: &mut String, l: &ListModel, count: usize) {
    out.push('[');
    for (j, row) in l.rows.iter().take(count).enumerate() {
        if j > 0 {
            out.push(',');
        }
        out.push('[');
        json_str(out, row.html.key.as_str());
        out.push(',');
        write_row_value(out, row);
        out.push(']');
    }
    out.push(']');
}

/// A row's html on the wire: a string, or an `R` for a row with lists inside.
fn write_row_value(out: &mut String, row: &RowEntry) {
    match &row.sub {
        Some(sub) => write_model_prefix(out, sub, None),
        None => json_str(out, &row.html.html),
    }
}

/// Appends `[index, [op, …]]` with `write` for each op.
fn write_indexed<T>(out: &mut String, i: usize, ops: &[T], write: impl Fn(&mut String, &T)) {
    out.push('[');
    out.push_str(&i.to_string());
    out.push_str(",[");
    for (k, op) in ops.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        write(out, op);
    }
    out.push_str("]]");
}

/// Appends `[index, [op, …]]` (after a comma if `out` is not empty), unless `ops` is empty.
fn write_text_ops(out: &mut String, i: usize, ops: &[TextOp]) {
    if ops.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(',');
    }
    write_indexed(out, i, ops, |out, op| match op {
        TextOp::Retain(n) => out.push_str(&n.to_string()),
        TextOp::Delete(n) => {
            out.push('-');
            out.push_str(&n.to_string());
        }
        TextOp::Insert(s) => json_str(out, s),
    });
}

/// Appends `[[index, [op, …]], …]` for the lists that have ops.
fn write_lists_ops<'a>(out: &mut String, lists: impl Iterator<Item = (usize, &'a [ListOp])>) {
    out.push('[');
    let mut first = true;
    for (i, ops) in lists {
        if ops.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_indexed(out, i, ops, write_list_op);
    }
    out.push(']');
}

/// What a render means for the client.
#[derive(Debug)]
pub(crate) enum Patch {
    /// Nothing changed.
    Unchanged,
    /// This diff payload.
    Diff(String),
    /// The whole page must be sent (see [`model_in_pieces`]).
    Whole,
}

/// Encodes a diff payload `D` from the previous static fragments to `next` (whose lists carry
/// `list_ops`); `Whole` when `full` is set or the lists changed shape.
pub(crate) fn encode_diff(
    prev_statics: &[String],
    next: &Rendered,
    list_ops: &[Vec<ListOp>],
    version: u64,
    full: bool,
) -> Patch {
    let mut out = String::with_capacity(256);
    out.push_str("{\"v\":");
    out.push_str(&version.to_string());
    if full || prev_statics.len() != next.statics.len() || list_ops.len() != next.lists.len() {
        return Patch::Whole;
    } else {
        let mut any = false;
        let mut statics = String::new();
        for (i, (a, b)) in prev_statics.iter().zip(&next.statics).enumerate() {
            write_text_ops(&mut statics, i, &text_ops(a, b));
        }
        if !statics.is_empty() {
            any = true;
            out.push_str(",\"s\":[");
            out.push_str(&statics);
            out.push(']');
        }
        if list_ops.iter().any(|ops| !ops.is_empty()) {
            any = true;
            out.push_str(",\"l\":");
            write_lists_ops(
                &mut out,
                list_ops.iter().enumerate().map(|(i, o)| (i, o.as_slice())),
            );
        }
        if !any {
            return Patch::Unchanged;
        }
    }
    out.push_str(",\"len\":");
    out.push_str(&next.len16().to_string());
    out.push_str(",\"h\":");
    out.push_str(&statics_hash(&next.statics).to_string());
    out.push('}');
    Patch::Diff(out)
}

fn write_opt_key(out: &mut String, k: &Option<crate::row::Key>) {
    match k {
        Some(k) => json_str(out, k.as_str()),
        None => out.push_str("null"),
    }
}

fn write_list_op(out: &mut String, op: &ListOp) {
    match op {
        ListOp::Replace(row) => {
            out.push_str("[\"r\",");
            json_str(out, row.key().as_str());
            out.push(',');
            write_row_value(out, row);
            out.push(']');
        }
        ListOp::Insert { after, row } => {
            out.push_str("[\"i\",");
            json_str(out, row.key().as_str());
            out.push(',');
            write_opt_key(out, after);
            out.push(',');
            write_row_value(out, row);
            out.push(']');
        }
        ListOp::Patch {
            row,
            old_statics,
            lists,
        } => {
            out.push_str("[\"p\",");
            json_str(out, row.key().as_str());
            out.push_str(",{");
            let mut statics = String::new();
            if let Some(sub) = &row.sub {
                for (i, old) in old_statics {
                    let new = sub.statics.get(*i).map_or("", String::as_str);
                    write_text_ops(&mut statics, *i, &text_ops(old, new));
                }
            }
            if !statics.is_empty() {
                out.push_str("\"s\":[");
                out.push_str(&statics);
                out.push(']');
                if !lists.is_empty() {
                    out.push(',');
                }
            }
            if !lists.is_empty() {
                out.push_str("\"l\":");
                write_lists_ops(out, lists.iter().map(|(i, o)| (*i, o.as_slice())));
            }
            out.push_str("}]");
        }
        ListOp::Delete(k) => {
            out.push_str("[\"d\",");
            json_str(out, k.as_str());
            out.push(']');
        }
        ListOp::Move { key, after } => {
            out.push_str("[\"m\",");
            json_str(out, key.as_str());
            out.push(',');
            write_opt_key(out, after);
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply16(old: &str, ops: &[TextOp]) -> String {
        let src: Vec<u16> = old.encode_utf16().collect();
        let mut out: Vec<u16> = Vec::new();
        let mut pos = 0;
        for op in ops {
            match op {
                TextOp::Retain(n) => {
                    out.extend_from_slice(&src[pos..pos + n]);
                    pos += n;
                }
                TextOp::Delete(n) => pos += n,
                TextOp::Insert(s) => out.extend(s.encode_utf16()),
            }
        }
        out.extend_from_slice(&src[pos..]);
        String::from_utf16(&out).unwrap()
    }

    #[test]
    fn tokens_cut_at_tags_and_spaces() {
        assert_eq!(
            tokenize("<p class=\"a b\">hi there</p>"),
            vec![
                "<p", " ", "class", "=", "\"", "a", " ", "b", "\"", ">", "hi", " ", "there", "</p>"
            ]
        );
        assert_eq!(tokenize("").len(), 0);
        assert_eq!(tokenize("é😀<b>").concat(), "é😀<b>");
    }

    #[test]
    fn text_ops_round_trip_with_non_ascii() {
        let cases = [
            ("<p>3 items left</p>", "<p>2 items left</p>"),
            ("<p>café 😀 a</p>", "<p>café 😀😀 b</p>"),
            ("", "<b>new</b>"),
            ("<b>old</b>", ""),
            (
                "<h1 class=\"x\">Ünïcødé</h1><p>tail</p>",
                "<h1 class=\"y z\">Ünïcødé!</h1><p>tail</p>",
            ),
            ("中文<i>x</i>", "<i>x</i>中文"),
        ];
        for (a, b) in cases {
            let ops = text_ops(a, b);
            assert_eq!(apply16(a, &ops), b, "{a:?} -> {b:?}: {ops:?}");
        }
        assert!(text_ops("same", "same").is_empty());
    }

    #[test]
    fn pieces_rebuild_the_model() {
        use crate::diff::client::ClientModel;
        use crate::render::render_tracked;
        let rows: Vec<std::sync::Arc<(i64, String)>> = (0..500)
            .map(|i| {
                std::sync::Arc::new((i, format!("row {i} é😀 {}", "x".repeat(i as usize % 50))))
            })
            .collect();
        let page = || {
            maud::html! {
                h1 { "big" }
                ul { (crate::keyed("rows", &rows, |r| r.0).render(|r| maud::html! { li { (r.1) } })) }
                p { "end" }
            }
        };
        let model = render_tracked(&mut Rendered::default(), page).model;
        let pieces = model_in_pieces(&model, 1, 4096);
        // The budget counts HTML bytes; JSON escaping adds a little.
        assert!(pieces.first.len() <= 4096 * 5 / 4, "{}", pieces.first.len());
        assert!(pieces.rest.len() > 5);
        let first: serde_json::Value = serde_json::from_str(&pieces.first).unwrap();
        let mut client = ClientModel::from_rendered(&first, 1).unwrap();
        assert_eq!(client.html().encode_utf16().count(), pieces.first_len);
        for p in &pieces.rest {
            assert!(p.len() < 2 * 4096, "{}", p.len());
            client.apply(&serde_json::from_str(p).unwrap()).unwrap();
        }
        assert_eq!(client.html(), model.to_html());
        assert_eq!(client.version(), 1 + pieces.rest.len() as u64);
    }

    /// A small deterministic generator.
    struct TinyRng(u64);

    impl TinyRng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    struct Col {
        id: i64,
        name: String,
    }

    struct Card {
        id: i64,
        col: i64,
        title: String,
    }

    /// A board: a keyed list of columns, each with a keyed list of its cards inside.
    fn board(
        cols: &[std::sync::Arc<Col>],
        cards: &[std::sync::Arc<Card>],
        editing: Option<i64>,
    ) -> maud::Markup {
        use crate::keyed;
        use maud::html;
        html! {
            h1 { "board" }
            main {
                (keyed("columns", cols, |c| c.id).render(|col| {
                    let mine: Vec<_> = cards.iter().filter(|c| c.col == col.id).cloned().collect();
                    html! {
                        section {
                            h2 { (col.name) " " (mine.len()) }
                            ul { (keyed(format!("cards-{}", col.id), &mine, |c| c.id)
                                .depends_on(|c| editing == Some(c.id))
                                .render(|c| html! { li { (c.title) @if editing == Some(c.id) { " ✎" } } })) }
                        }
                    }
                }))
            }
            p { (cards.len()) " cards" }
        }
    }

    /// Issue 8: keyed lists inside the rows of a keyed list are diffed as keyed lists: a
    /// change to one card is one `p` op on its column holding one row op, and every diff,
    /// applied by the client's rules, gives the server's render.
    #[test]
    fn nested_keyed_lists_diff_as_keyed_lists() {
        use crate::diff::client::ClientModel;
        use crate::render::{render_static, render_tracked};
        use std::sync::Arc;
        let mut cols: Vec<Arc<Col>> = (0..4)
            .map(|i| {
                Arc::new(Col {
                    id: i,
                    name: format!("col {i}"),
                })
            })
            .collect();
        let mut cards: Vec<Arc<Card>> = (0..40)
            .map(|i| {
                Arc::new(Card {
                    id: 100 + i,
                    col: i % 4,
                    title: format!("card {i} é😀"),
                })
            })
            .collect();
        let mut model =
            render_tracked(&mut Rendered::default(), || board(&cols, &cards, None)).model;
        assert_eq!(
            model.to_html(),
            render_static(|| board(&cols, &cards, None))
        );
        let pieces = model_in_pieces(&model, 1, 1 << 20);
        assert!(pieces.rest.is_empty());
        let mut client =
            ClientModel::from_rendered(&serde_json::from_str(&pieces.first).unwrap(), 1).unwrap();
        assert_eq!(client.html(), model.to_html());

        // One card renamed: one `p` op on its column, holding one replace.
        cards[5] = Arc::new(Card {
            id: 105,
            col: 1,
            title: "renamed".into(),
        });
        let t = render_tracked(&mut model, || board(&cols, &cards, None));
        assert!(t.same_shape);
        assert_eq!(t.ops.len(), 1);
        assert_eq!(t.ops[0].len(), 1, "{:?}", t.ops[0]);
        let ListOp::Patch {
            row,
            old_statics,
            lists,
        } = &t.ops[0][0]
        else {
            panic!("expected a patch of the column, got {:?}", t.ops[0][0]);
        };
        assert_eq!(row.key().as_str(), "1");
        assert!(old_statics.is_empty());
        assert_eq!(lists.len(), 1);
        assert!(matches!(&lists[0].1[..], [ListOp::Replace(r)] if r.key().as_str() == "105"));
        let Patch::Diff(d) = encode_diff(&model.statics, &t.model, &t.ops, 2, false) else {
            panic!("expected a diff");
        };
        // The diff is about the one card (and the static card count did not change).
        assert!(d.len() < 160, "{d}");
        assert!(!d.contains("card 9"), "{d}");
        client.apply(&serde_json::from_str(&d).unwrap()).unwrap();
        model = t.model;
        assert_eq!(client.html(), model.to_html());

        // One card moved to another column: a patch of each column (its count, a text op; its
        // cards, a row op), never a column sent whole.
        cards[6] = Arc::new(Card {
            id: 106,
            col: 3,
            title: cards[6].title.clone(),
        });
        let t = render_tracked(&mut model, || board(&cols, &cards, None));
        let Patch::Diff(d) = encode_diff(&model.statics, &t.model, &t.ops, 3, false) else {
            panic!("expected a diff");
        };
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        let ops = v["l"][0][1].as_array().unwrap();
        assert_eq!(ops.len(), 2, "{d}");
        for op in ops {
            assert_eq!(op[0], "p", "{d}");
            assert_eq!(op[2]["s"].as_array().map(Vec::len), Some(1), "{d}");
            assert_eq!(op[2]["l"][0][1].as_array().map(Vec::len), Some(1), "{d}");
        }
        assert!(d.len() < 260, "{} bytes: {d}", d.len());
        client.apply(&v).unwrap();
        model = t.model;
        assert_eq!(client.html(), model.to_html());

        // Random steps: card moves between columns, renames, adds, deletes, column renames,
        // column adds, deletes and reorders, an edited card.
        let mut rng = TinyRng(11);
        let mut next_id = 1000;
        for step in 0..400u64 {
            let editing = (rng.below(3) == 0).then(|| 100 + rng.below(40) as i64);
            match rng.below(8) {
                0 | 1 if !cards.is_empty() => {
                    let i = rng.below(cards.len() as u64) as usize;
                    let c = &cards[i];
                    let col = cols[rng.below(cols.len() as u64) as usize].id;
                    cards[i] = Arc::new(Card {
                        id: c.id,
                        col,
                        title: c.title.clone(),
                    });
                }
                2 if !cards.is_empty() => {
                    let i = rng.below(cards.len() as u64) as usize;
                    let c = &cards[i];
                    cards[i] = Arc::new(Card {
                        id: c.id,
                        col: c.col,
                        title: format!("t{step} 中"),
                    });
                }
                3 => {
                    next_id += 1;
                    let col = cols[rng.below(cols.len() as u64) as usize].id;
                    let at = rng.below(cards.len() as u64 + 1) as usize;
                    cards.insert(
                        at,
                        Arc::new(Card {
                            id: next_id,
                            col,
                            title: format!("new {step}"),
                        }),
                    );
                }
                4 if !cards.is_empty() => {
                    let i = rng.below(cards.len() as u64) as usize;
                    cards.remove(i);
                }
                5 => {
                    let i = rng.below(cols.len() as u64) as usize;
                    cols[i] = Arc::new(Col {
                        id: cols[i].id,
                        name: format!("col {step}"),
                    });
                }
                6 if cols.len() > 1 => {
                    let i = rng.below(cols.len() as u64) as usize;
                    let c = cols.remove(i);
                    let j = rng.below(cols.len() as u64 + 1) as usize;
                    if rng.below(4) == 0 {
                        // A column deleted, and another added.
                        next_id += 1;
                        cols.insert(
                            j,
                            Arc::new(Col {
                                id: next_id,
                                name: "added".into(),
                            }),
                        );
                    } else {
                        cols.insert(j, c);
                    }
                }
                _ => {}
            }
            let v = client.version() + 1;
            let t = render_tracked(&mut model, || board(&cols, &cards, editing));
            assert!(t.same_shape);
            let html = render_static(|| board(&cols, &cards, editing));
            assert_eq!(t.model.to_html(), html, "step {step}");
            assert_eq!(t.model.len16(), html.encode_utf16().count(), "step {step}");
            match encode_diff(&model.statics, &t.model, &t.ops, v, false) {
                Patch::Unchanged => {}
                Patch::Diff(d) => {
                    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
                    client
                        .apply(&d)
                        .unwrap_or_else(|e| panic!("step {step}: {e}: {d}"));
                }
                Patch::Whole => panic!("step {step}: whole page"),
            }
            model = t.model;
            assert_eq!(client.html(), html, "step {step}");
        }
    }

    #[test]
    fn hash_matches_the_client_spec() {
        // FNV-1a of no units is the offset basis.
        assert_eq!(statics_hash(&[]), 2_166_136_261);
        assert_eq!(statics_hash(&[String::new()]), 2_166_136_261);
        // The value the browser client computes for the same text (assets/test).
        assert_eq!(statics_hash(&["a<b>é😀".into()]), 1_716_749_962);
        // Splitting the text between fragments does not change the hash.
        assert_eq!(
            statics_hash(&["a<b>".into(), "é😀".into()]),
            statics_hash(&["a<b>é😀".into()])
        );
    }
}
