//! A Rust copy of what the browser client does with diffs (`assets/live.js`): it keeps the
//! model, applies text ops in UTF-16 units and keyed row ops, and checks version, length and
//! hash. Used by the test harness and by protocol tests to prove the patches reproduce the
//! server's render byte for byte.

use serde_json::Value;

/// Why a diff could not be applied (the real client would ask for a resync).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("diff does not apply: {0}")]
pub struct Mismatch(pub String);

fn bad(msg: impl Into<String>) -> Mismatch {
    Mismatch(msg.into())
}

/// The client's copy of a view's HTML.
#[derive(Debug, Clone, Default)]
pub struct ClientModel {
    statics: Vec<Vec<u16>>,
    lists: Vec<Vec<(String, Vec<u16>)>>,
    version: u64,
}

impl ClientModel {
    /// A model from a rendered `R` (the join reply) at `version`.
    pub fn from_rendered(rendered: &Value, version: u64) -> Result<Self, Mismatch> {
        let mut m = ClientModel::default();
        m.replace(rendered)?;
        m.version = version;
        Ok(m)
    }

    fn replace(&mut self, r: &Value) -> Result<(), Mismatch> {
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
        self.statics = s
            .iter()
            .map(|x| x.as_str().map(|t| t.encode_utf16().collect()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("static is not a string"))?;
        self.lists = l
            .iter()
            .map(|rows| {
                rows.as_array()?
                    .iter()
                    .map(|row| {
                        let k = row.get(0)?.as_str()?.to_string();
                        let h = row.get(1)?.as_str()?.encode_utf16().collect();
                        Some((k, h))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("bad rows"))?;
        Ok(())
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
        for (i, s) in self.statics.iter().enumerate() {
            out.extend_from_slice(s);
            if let Some(l) = self.lists.get(i) {
                for (_, h) in l {
                    out.extend_from_slice(h);
                }
            }
        }
        out
    }

    fn hash(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for s in &self.statics {
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
            next.replace(full)?;
        } else {
            if v != self.version + 1 {
                return Err(bad(format!("version {v} after {}", self.version)));
            }
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
                    let s = next
                        .statics
                        .get(i)
                        .ok_or_else(|| bad("static out of range"))?;
                    let patched = apply_text(s, ops)?;
                    next.statics[i] = patched;
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
                    let list = next
                        .lists
                        .get_mut(i)
                        .ok_or_else(|| bad("list out of range"))?;
                    apply_rows(list, ops)?;
                }
            }
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

fn position(list: &[(String, Vec<u16>)], key: &str) -> Result<usize, Mismatch> {
    list.iter()
        .position(|(k, _)| k == key)
        .ok_or_else(|| bad(format!("no row {key:?}")))
}

fn after_index(list: &[(String, Vec<u16>)], after: &Value) -> Result<usize, Mismatch> {
    match after.as_str() {
        None => Ok(0),
        Some(k) => Ok(position(list, k)? + 1),
    }
}

fn apply_rows(list: &mut Vec<(String, Vec<u16>)>, ops: &[Value]) -> Result<(), Mismatch> {
    for op in ops {
        let a = op.as_array().ok_or_else(|| bad("row op is not an array"))?;
        let kind = a.first().and_then(Value::as_str).unwrap_or("");
        let str_at = |i: usize| {
            a.get(i)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("row op {kind} field {i}")))
        };
        match kind {
            "r" => {
                let i = position(list, str_at(1)?)?;
                list[i].1 = str_at(2)?.encode_utf16().collect();
            }
            "i" => {
                let at = after_index(list, a.get(2).unwrap_or(&Value::Null))?;
                list.insert(
                    at,
                    (str_at(1)?.to_string(), str_at(3)?.encode_utf16().collect()),
                );
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
            "=" => {
                let rows = a
                    .get(1)
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("= without rows"))?;
                *list = rows
                    .iter()
                    .map(|r| {
                        Some((
                            r.get(0)?.as_str()?.to_string(),
                            r.get(1)?.as_str()?.encode_utf16().collect(),
                        ))
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("bad rows"))?;
            }
            other => return Err(bad(format!("unknown row op {other:?}"))),
        }
    }
    Ok(())
}
