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

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp};

use crate::render::{ListModel, ListOp, Rendered, utf16_len};

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

/// Appends the rendered model `R` (`{"s": [...], "l": [[[key, html], ...], ...]}`).
pub(crate) fn write_model(out: &mut String, r: &Rendered) {
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
        write_rows(out, l);
    }
    out.push_str("]}");
}

fn write_rows(out: &mut String, l: &ListModel) {
    out.push('[');
    for (j, row) in l.rows.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        out.push('[');
        json_str(out, row.html.key.as_str());
        out.push(',');
        json_str(out, &row.html.html);
        out.push(']');
    }
    out.push(']');
}

/// Encodes a diff payload `D` from the previous static fragments to `next` (whose lists carry
/// `list_ops`), or a full replacement when `full` is set. Returns `None` when nothing changed.
pub(crate) fn encode_diff(
    prev_statics: &[String],
    next: &Rendered,
    list_ops: &[Vec<ListOp>],
    version: u64,
    full: bool,
) -> Option<String> {
    let mut out = String::with_capacity(256);
    out.push_str("{\"v\":");
    out.push_str(&version.to_string());
    if full || prev_statics.len() != next.statics.len() || list_ops.len() != next.lists.len() {
        out.push_str(",\"full\":");
        write_model(&mut out, next);
    } else {
        let mut any = false;
        let mut statics = String::new();
        for (i, (a, b)) in prev_statics.iter().zip(&next.statics).enumerate() {
            let ops = text_ops(a, b);
            if ops.is_empty() {
                continue;
            }
            if !statics.is_empty() {
                statics.push(',');
            }
            statics.push('[');
            statics.push_str(&i.to_string());
            statics.push_str(",[");
            for (k, op) in ops.iter().enumerate() {
                if k > 0 {
                    statics.push(',');
                }
                match op {
                    TextOp::Retain(n) => statics.push_str(&n.to_string()),
                    TextOp::Delete(n) => {
                        statics.push('-');
                        statics.push_str(&n.to_string());
                    }
                    TextOp::Insert(s) => json_str(&mut statics, s),
                }
            }
            statics.push_str("]]");
        }
        if !statics.is_empty() {
            any = true;
            out.push_str(",\"s\":[");
            out.push_str(&statics);
            out.push(']');
        }
        let mut lists = String::new();
        for (i, ops) in list_ops.iter().enumerate() {
            if ops.is_empty() {
                continue;
            }
            if !lists.is_empty() {
                lists.push(',');
            }
            lists.push('[');
            lists.push_str(&i.to_string());
            lists.push_str(",[");
            for (k, op) in ops.iter().enumerate() {
                if k > 0 {
                    lists.push(',');
                }
                write_list_op(&mut lists, op);
            }
            lists.push_str("]]");
        }
        if !lists.is_empty() {
            any = true;
            out.push_str(",\"l\":[");
            out.push_str(&lists);
            out.push(']');
        }
        if !any {
            return None;
        }
    }
    out.push_str(",\"len\":");
    out.push_str(&next.len16().to_string());
    out.push_str(",\"h\":");
    out.push_str(&statics_hash(&next.statics).to_string());
    out.push('}');
    Some(out)
}

fn write_opt_key(out: &mut String, k: &Option<crate::watch::Key>) {
    match k {
        Some(k) => json_str(out, k.as_str()),
        None => out.push_str("null"),
    }
}

fn write_list_op(out: &mut String, op: &ListOp) {
    match op {
        ListOp::Replace(h) => {
            out.push_str("[\"r\",");
            json_str(out, h.key.as_str());
            out.push(',');
            json_str(out, &h.html);
            out.push(']');
        }
        ListOp::Insert { after, html } => {
            out.push_str("[\"i\",");
            json_str(out, html.key.as_str());
            out.push(',');
            write_opt_key(out, after);
            out.push(',');
            json_str(out, &html.html);
            out.push(']');
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
