//! A Rust copy of what the browser client does with diffs (`assets/live.js`): it keeps the
//! model, applies text ops in UTF-16 units and keyed row ops, and checks version, length and
//! hash. Used by the test harness and by protocol tests to prove the patches reproduce the
//! server's render byte for byte.

use serde_json::Value;

/// Why a diff could not be applied (the real client would ask for a resync).
///
/// ```
/// use live_core::testing::{ClientModel, Mismatch};
/// use serde_json::json;
///
/// let mut model = ClientModel::from_rendered(&json!({ "s": ["<p>hi</p>"], "l": [] }), 1).unwrap();
/// let skipped: Mismatch = model.apply(&json!({ "v": 3 })).unwrap_err(); // version 2 is missing
/// assert_eq!(skipped.to_string(), "diff does not apply: version 3 after 1");
/// assert_eq!(model.version(), 1); // unchanged
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("diff does not apply: {0}")]
pub struct Mismatch(pub String);

fn bad(msg: impl Into<String>) -> Mismatch {
    Mismatch(msg.into())
}

/// A row's html: text, or the fragments and lists of a row with lists inside.
#[derive(Debug, Clone)]
enum RowValue {
    Html(Vec<u16>),
    Nested(Box<Parts>),
}

type Rows = Vec<(String, RowValue)>;

/// Static fragments around keyed lists (a page, or a row with lists inside).
#[derive(Debug, Clone, Default)]
struct Parts {
    statics: Vec<Vec<u16>>,
    lists: Vec<Rows>,
}

/// How deep rows with lists inside may nest (a bad model must not overflow the stack).
const MAX_DEPTH: usize = 32;

impl Parts {
    fn parse(r: &Value, depth: usize) -> Result<Self, Mismatch> {
        if depth > MAX_DEPTH {
            return Err(bad("lists nested too deep"));
        }
        let s = r
            .get("s")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("model without s"))?;
        let l = r
            .get("l")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("model without l"))?;
        if s.len() != l.len() + 1 {
            return Err(bad("s.len != l.len + 1"));
        }
        let statics = s
            .iter()
            .map(|x| x.as_str().map(|t| t.encode_utf16().collect()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("static is not a string"))?;
        let lists = l
            .iter()
            .map(|rows| parse_rows(rows, depth))
            .collect::<Result<_, _>>()?;
        Ok(Parts { statics, lists })
    }

    fn write16(&self, out: &mut Vec<u16>) {
        for (i, s) in self.statics.iter().enumerate() {
            out.extend_from_slice(s);
            if let Some(l) = self.lists.get(i) {
                for (_, row) in l {
                    match row {
                        RowValue::Html(h) => out.extend_from_slice(h),
                        RowValue::Nested(p) => p.write16(out),
                    }
                }
            }
        }
    }

    /// Applies the `s` and `l` parts of a diff (a page's, or a `p` op's).
    fn patch(&mut self, d: &Value, depth: usize) -> Result<(), Mismatch> {
        if let Some(ss) = d.get("s").and_then(Value::as_array) {
            for entry in ss {
                let i = entry
                    .get(0)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("static index"))? as usize;
                let ops = entry
                    .get(1)
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("static ops"))?;
                let s = self
                    .statics
                    .get(i)
                    .ok_or_else(|| bad("static out of range"))?;
                let patched = apply_text(s, ops)?;
                self.statics[i] = patched;
            }
        }
        if let Some(ls) = d.get("l").and_then(Value::as_array) {
            for entry in ls {
                let i = entry
                    .get(0)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("list index"))? as usize;
                let ops = entry
                    .get(1)
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("list ops"))?;
                let list = self
                    .lists
                    .get_mut(i)
                    .ok_or_else(|| bad("list out of range"))?;
                apply_rows(list, ops, depth)?;
            }
        }
        Ok(())
    }
}

fn parse_rows(rows: &Value, depth: usize) -> Result<Rows, Mismatch> {
    rows.as_array()
        .ok_or_else(|| bad("a list is not an array"))?
        .iter()
        .map(|row| {
            let k = row
                .get(0)
                .and_then(Value::as_str)
                .ok_or_else(|| bad("row without a key"))?
                .to_string();
            let v = parse_value(row.get(1).unwrap_or(&Value::Null), depth)?;
            Ok((k, v))
        })
        .collect()
}

fn parse_value(v: &Value, depth: usize) -> Result<RowValue, Mismatch> {
    match v {
        Value::String(h) => Ok(RowValue::Html(h.encode_utf16().collect())),
        Value::Object(_) => Ok(RowValue::Nested(Box::new(Parts::parse(v, depth + 1)?))),
        _ => Err(bad("row html is neither a string nor a model")),
    }
}

/// The client's copy of a view's HTML.
///
/// ```
/// use live_core::testing::ClientModel;
/// use serde_json::json;
///
/// // A page with one keyed list: the static parts around it, and its rows as [key, html].
/// let rendered = json!({ "s": ["<ul>", "</ul>"], "l": [[["1", "<li>milk</li>"]]] });
/// let mut model = ClientModel::from_rendered(&rendered, 1).unwrap();
/// assert_eq!(model.html(), "<ul><li>milk</li></ul>");
/// // Diff 2: list 0 gets row "2" inserted after row "1".
/// model.apply(&json!({ "v": 2, "l": [[0, [["i", "2", "1", "<li>eggs</li>"]]]] })).unwrap();
/// assert_eq!(model.html(), "<ul><li>milk</li><li>eggs</li></ul>");
/// assert_eq!(model.version(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientModel {
    parts: Parts,
    version: u64,
}

impl ClientModel {
    /// A model from a rendered `R` (the join reply) at `version`.
    pub fn from_rendered(rendered: &Value, version: u64) -> Result<Self, Mismatch> {
        Ok(ClientModel {
            parts: Parts::parse(rendered, 0)?,
            version,
        })
    }

    /// The version the model is at.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The whole HTML.
    pub fn html(&self) -> String {
        String::from_utf16_lossy(&self.html16())
    }

    fn html16(&self) -> Vec<u16> {
        let mut out = Vec::new();
        self.parts.write16(&mut out);
        out
    }

    fn hash(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for s in &self.parts.statics {
            for u in s {
                h ^= u32::from(u & 0xff);
                h = h.wrapping_mul(0x0100_0193);
                h ^= u32::from(u >> 8);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
        h
    }

    /// Applies a diff payload `D`. On error the model is unchanged.
    pub fn apply(&mut self, d: &Value) -> Result<(), Mismatch> {
        let v = d
            .get("v")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("diff without v"))?;
        let mut next = self.clone();
        if let Some(full) = d.get("full") {
            next.parts = Parts::parse(full, 0)?;
        } else {
            if v != self.version + 1 {
                return Err(bad(format!("version {v} after {}", self.version)));
            }
            next.parts.patch(d, 0)?;
        }
        next.version = v;
        if let Some(len) = d.get("len").and_then(Value::as_u64)
            && next.html16().len() as u64 != len
        {
            return Err(bad(format!("length {} != {len}", next.html16().len())));
        }
        if let Some(h) = d.get("h").and_then(Value::as_u64)
            && u64::from(next.hash()) != h
        {
            return Err(bad("hash mismatch"));
        }
        *self = next;
        Ok(())
    }
}

fn apply_text(s: &[u16], ops: &[Value]) -> Result<Vec<u16>, Mismatch> {
    let mut out = Vec::with_capacity(s.len());
    let mut pos = 0usize;
    for op in ops {
        if let Some(n) = op.as_i64() {
            let n_abs = n.unsigned_abs() as usize;
            if pos + n_abs > s.len() {
                return Err(bad("text op past the end"));
            }
            if n > 0 {
                out.extend_from_slice(&s[pos..pos + n_abs]);
            }
            pos += n_abs;
        } else if let Some(t) = op.as_str() {
            out.extend(t.encode_utf16());
        } else {
            return Err(bad("bad text op"));
        }
    }
    out.extend_from_slice(&s[pos..]);
    Ok(out)
}

fn position(list: &Rows, key: &str) -> Result<usize, Mismatch> {
    list.iter()
        .position(|(k, _)| k == key)
        .ok_or_else(|| bad(format!("no row {key:?}")))
}

fn after_index(list: &Rows, after: &Value) -> Result<usize, Mismatch> {
    match after.as_str() {
        None => Ok(0),
        Some(k) => Ok(position(list, k)? + 1),
    }
}

fn apply_rows(list: &mut Rows, ops: &[Value], depth: usize) -> Result<(), Mismatch> {
    for op in ops {
        let a = op.as_array().ok_or_else(|| bad("row op is not an array"))?;
        let kind = a.first().and_then(Value::as_str).unwrap_or("");
        let str_at = |i: usize| {
            a.get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("row op {kind} field {i}")))
        };
        let value_at = |i: usize| parse_value(a.get(i).unwrap_or(&Value::Null), depth);
        match kind {
            "r" => {
                let i = position(list, str_at(1)?)?;
                list[i].1 = value_at(2)?;
            }
            "i" => {
                let key = str_at(1)?.to_string();
                if list.iter().any(|(k, _)| *k == key) {
                    return Err(bad(format!("insert of an existing key {key:?}")));
                }
                let at = after_index(list, a.get(2).unwrap_or(&Value::Null))?;
                list.insert(at, (key, value_at(3)?));
            }
            "d" => {
                let i = position(list, str_at(1)?)?;
                list.remove(i);
            }
            "m" => {
                let i = position(list, str_at(1)?)?;
                let row = list.remove(i);
                let at = after_index(list, a.get(2).unwrap_or(&Value::Null))?;
                list.insert(at, row);
            }
            "p" => {
                let i = position(list, str_at(1)?)?;
                let RowValue::Nested(parts) = &mut list[i].1 else {
                    return Err(bad("p op on a row without lists inside"));
                };
                parts.patch(a.get(2).unwrap_or(&Value::Null), depth + 1)?;
            }
            "=" => {
                *list = parse_rows(a.get(1).unwrap_or(&Value::Null), depth)?;
            }
            other => return Err(bad(format!("unknown row op {other:?}"))),
        }
    }
    Ok(())
}
