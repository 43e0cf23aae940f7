//! Column values from pgoutput's text format, decoded into Rust types through serde.
//!
//! Decoding is driven by the target type (an `i64` field parses the text as an integer, a
//! `Vec<String>` field parses an array literal) and, where the target accepts anything
//! (`serde_json::Value`, `deserialize_any`), by the column's type OID from the Relation message.
//! Date and time values are normalized to RFC 3339 (`2024-01-02T03:04:05+00:00`), the form
//! chrono and time read; everything else is Postgres' own text output, pinned by the session
//! settings the listener sets (`DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=3`,
//! `bytea_output=hex`).
//!
//! Written here rather than taken from a crate: the text output of pgoutput is not what any
//! serde format crate reads, and sqlx's decoders read the binary wire format of a query, not
//! replicated tuples.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Well-known type OIDs (`pg_type.oid`) the decoder treats specially.
pub(crate) mod oid {
    /// `bool`
    pub(crate) const BOOL: u32 = 16;
    /// `bytea`
    pub(crate) const BYTEA: u32 = 17;
    /// `"char"`
    pub(crate) const CHAR: u32 = 18;
    /// `int8`
    pub(crate) const INT8: u32 = 20;
    /// `int2`
    pub(crate) const INT2: u32 = 21;
    /// `int4`
    pub(crate) const INT4: u32 = 23;
    /// `text`
    pub(crate) const TEXT: u32 = 25;
    /// `oid`
    pub(crate) const OID: u32 = 26;
    /// `json`
    pub(crate) const JSON: u32 = 114;
    /// `float4`
    pub(crate) const FLOAT4: u32 = 700;
    /// `float8`
    pub(crate) const FLOAT8: u32 = 701;
    /// `date`
    pub(crate) const DATE: u32 = 1082;
    /// `time`
    pub(crate) const TIME: u32 = 1083;
    /// `timestamp`
    pub(crate) const TIMESTAMP: u32 = 1114;
    /// `timestamptz`
    pub(crate) const TIMESTAMPTZ: u32 = 1184;
    /// `timetz`
    pub(crate) const TIMETZ: u32 = 1266;
    /// `numeric`
    pub(crate) const NUMERIC: u32 = 1700;
    /// `uuid`
    pub(crate) const UUID: u32 = 2950;
    /// `jsonb`
    pub(crate) const JSONB: u32 = 3802;

    /// The element type of a built-in array type, if `oid` is one.
    pub(crate) fn array_element(oid: u32) -> Option<u32> {
        Some(match oid {
            1000 => BOOL,
            1001 => BYTEA,
            1002 => CHAR,
            1005 => INT2,
            1007 => INT4,
            1009 => TEXT,
            1014 => 1042,
            1015 => 1043,
            1016 => INT8,
            1021 => FLOAT4,
            1022 => FLOAT8,
            1028 => OID,
            1115 => TIMESTAMP,
            1182 => DATE,
            1183 => TIME,
            1185 => TIMESTAMPTZ,
            1231 => NUMERIC,
            1270 => TIMETZ,
            2951 => UUID,
            199 => JSON,
            3807 => JSONB,
            _ => return None,
        })
    }
}

/// Why a value did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

/// One column value: its type OID and its text, `None` for SQL `NULL`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Value<'a> {
    /// The column's type OID from the Relation message (0 when unknown, e.g. an array element
    /// of a user-defined type).
    pub oid: u32,
    /// The text output, `None` for `NULL`.
    pub text: Option<&'a str>,
}

impl<'a> Value<'a> {
    /// Decodes the value into `T` (an int array: `{1,NULL,3}` → `vec![Some(1), None,
    /// Some(3)]`; a timestamptz in ISO form for a `String`; see the unit tests).
    pub(crate) fn decode<T: de::DeserializeOwned>(self) -> Result<T, ValueError> {
        T::deserialize(ValueDeserializer {
            oid: self.oid,
            text: self.text.map(Cow::Borrowed),
        })
    }
}

struct ValueDeserializer<'a> {
    oid: u32,
    text: Option<Cow<'a, str>>,
}

impl<'a> ValueDeserializer<'a> {
    fn text(&self) -> Result<&str, ValueError> {
        self.text
            .as_deref()
            .ok_or_else(|| ValueError("NULL where a value is required".into()))
    }

    fn is_json(&self) -> bool {
        self.oid == oid::JSON || self.oid == oid::JSONB
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, ValueError> {
        let t = self.text()?;
        t.trim()
            .parse()
            .map_err(|_| ValueError(format!("{t:?} is not a valid {what}")))
    }

    fn float(&self) -> Result<f64, ValueError> {
        let t = self.text()?;
        match t {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => self.parse("number"),
        }
    }

    /// The text with date/time values normalized to RFC 3339.
    fn normalized(&self) -> Result<Cow<'_, str>, ValueError> {
        let t = self.text()?;
        Ok(match self.oid {
            oid::TIMESTAMP | oid::TIMESTAMPTZ => Cow::Owned(normalize_timestamp(t)),
            oid::TIMETZ => Cow::Owned(normalize_offset(t)),
            _ => Cow::Borrowed(t),
        })
    }
}

/// `2024-01-02 03:04:05.5+00` → `2024-01-02T03:04:05.5+00:00`.
fn normalize_timestamp(t: &str) -> String {
    if t.ends_with(" BC") || t.contains("infinity") {
        return t.to_string();
    }
    let with_t = t.replacen(' ', "T", 1);
    normalize_offset(&with_t)
}

/// Completes an offset written as `+HH` to `+HH:MM`.
fn normalize_offset(t: &str) -> String {
    let bytes = t.as_bytes();
    // An offset sign after the time part: the last '+' or a '-' after the 'T' or ':' part.
    let search_from = t.find(':').unwrap_or(0);
    let sign = t[search_from..].rfind(['+', '-']).map(|i| i + search_from);
    match sign {
        Some(i) if bytes.len() - i == 3 => format!("{t}:00"),
        _ => t.to_string(),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `bytea` hex output (`\x0aff`).
fn decode_bytea(t: &str) -> Result<Vec<u8>, ValueError> {
    let hex = t
        .strip_prefix("\\x")
        .ok_or_else(|| ValueError("bytea is not in hex format (set bytea_output=hex)".into()))?;
    let b = hex.as_bytes();
    if b.len() % 2 != 0 {
        return Err(ValueError("bytea hex has an odd length".into()));
    }
    b.chunks(2)
        .map(|c| match (hex_val(c[0]), hex_val(c[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(ValueError("bytea hex has a bad digit".into())),
        })
        .collect()
}

macro_rules! de_int {
    ($($m:ident $t:ty => $v:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            if self.is_json() {
                return json(self.text()?)?.$m(visitor).map_err(json_err);
            }
            visitor.$v(self.parse::<$t>("integer")?)
        }
    )*};
}

fn json(t: &str) -> Result<serde_json::Value, ValueError> {
    serde_json::from_str(t).map_err(json_err)
}

fn json_err(e: serde_json::Error) -> ValueError {
    ValueError(format!("json: {e}"))
}

impl<'de, 'a> de::Deserializer<'de> for ValueDeserializer<'a> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let Some(text) = self.text.as_deref() else {
            return visitor.visit_none();
        };
        if let Some(elem) = oid::array_element(self.oid) {
            return visit_array(text, elem, visitor);
        }
        match self.oid {
            oid::BOOL => self.deserialize_bool(visitor),
            oid::INT2 | oid::INT4 | oid::INT8 => visitor.visit_i64(self.parse("integer")?),
            oid::OID => visitor.visit_u64(self.parse("integer")?),
            oid::FLOAT4 | oid::FLOAT8 => visitor.visit_f64(self.float()?),
            oid::JSON | oid::JSONB => json(text)?.deserialize_any(visitor).map_err(json_err),
            oid::BYTEA => visitor.visit_byte_buf(decode_bytea(text)?),
            _ => {
                let n = self.normalized()?;
                visitor.visit_str(&n)
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.text()? {
            "t" | "true" => visitor.visit_bool(true),
            "f" | "false" => visitor.visit_bool(false),
            other => Err(ValueError(format!("{other:?} is not a boolean"))),
        }
    }

    de_int!(
        deserialize_i8 i8 => visit_i8,
        deserialize_i16 i16 => visit_i16,
        deserialize_i32 i32 => visit_i32,
        deserialize_i64 i64 => visit_i64,
        deserialize_i128 i128 => visit_i128,
        deserialize_u8 u8 => visit_u8,
        deserialize_u16 u16 => visit_u16,
        deserialize_u32 u32 => visit_u32,
        deserialize_u64 u64 => visit_u64,
        deserialize_u128 u128 => visit_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if self.is_json() {
            return json(self.text()?)?
                .deserialize_f64(visitor)
                .map_err(json_err);
        }
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let t = self.text()?;
        let mut chars = t.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(ValueError(format!("{t:?} is not one character"))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let n = self.normalized()?;
        visitor.visit_str(&n)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let n = self.normalized()?;
        visitor.visit_string(n.into_owned())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let t = self.text()?;
        if self.oid == oid::BYTEA {
            visitor.visit_byte_buf(decode_bytea(t)?)
        } else {
            visitor.visit_bytes(t.as_bytes())
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if self.text.is_none() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let t = self.text()?;
        if self.is_json() {
            return json(t)?.deserialize_seq(visitor).map_err(json_err);
        }
        if self.oid == oid::BYTEA {
            let bytes = decode_bytea(t)?;
            return visitor.visit_seq(de::value::SeqDeserializer::new(bytes.into_iter()));
        }
        let elem = oid::array_element(self.oid).unwrap_or(0);
        visit_array(t, elem, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        json(self.text()?)?
            .deserialize_map(visitor)
            .map_err(json_err)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        json(self.text()?)?
            .deserialize_struct(name, fields, visitor)
            .map_err(json_err)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let t = self.text()?;
        if self.is_json() {
            return json(t)?
                .deserialize_enum(name, variants, visitor)
                .map_err(json_err);
        }
        let d: de::value::StrDeserializer<'_, ValueError> = t.into_deserializer();
        d.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }
}

/// One element of a parsed array literal.
#[derive(Debug, PartialEq)]
enum Element<'a> {
    Null,
    Text(Cow<'a, str>),
    Array(Vec<Element<'a>>),
}

/// Parses an array literal: `{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`, `{}`, and the
/// `[1:2]={…}` form with explicit bounds.
fn parse_array(text: &str) -> Result<Vec<Element<'_>>, ValueError> {
    let body = match text.strip_prefix('[') {
        Some(_) => text
            .find('=')
            .map(|i| &text[i + 1..])
            .ok_or_else(|| ValueError(format!("bad array literal {text:?}")))?,
        None => text,
    };
    let mut p = ArrayParser { s: body, pos: 0 };
    let out = p.array()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(ValueError(format!(
            "trailing text in array literal {text:?}"
        )));
    }
    Ok(out)
}

struct ArrayParser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> ArrayParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ValueError> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ValueError(format!(
                "array literal: expected {:?} at {} in {:?}",
                b as char, self.pos, self.s
            )))
        }
    }

    fn array(&mut self) -> Result<Vec<Element<'a>>, ValueError> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_ws();
            let item = match self.peek() {
                Some(b'{') => Element::Array(self.array()?),
                Some(b'"') => Element::Text(self.quoted()?),
                Some(_) => self.unquoted()?,
                None => return Err(ValueError("array literal ends early".into())),
            };
            items.push(item);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => {
                    return Err(ValueError(format!(
                        "array literal: expected ',' or '}}' at {} in {:?}",
                        self.pos, self.s
                    )));
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<Cow<'a, str>, ValueError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut seg_start = start;
        loop {
            match self.peek() {
                None => return Err(ValueError("unterminated quoted array element".into())),
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(&self.s[start..end]),
                        Some(mut o) => {
                            o.push_str(&self.s[seg_start..end]);
                            Cow::Owned(o)
                        }
                    });
                }
                Some(b'\\') => {
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.s[seg_start..self.pos]);
                    self.pos += 1;
                    // The escaped character may be multi-byte: copy one whole char.
                    let rest = &self.s[self.pos..];
                    let c = rest
                        .chars()
                        .next()
                        .ok_or_else(|| ValueError("array literal ends after '\\'".into()))?;
                    o.push(c);
                    self.pos += c.len_utf8();
                    seg_start = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn unquoted(&mut self) -> Result<Element<'a>, ValueError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b',' || b == b'}' {
                break;
            }
            self.pos += 1;
        }
        let raw = self.s[start..self.pos].trim();
        if raw.eq_ignore_ascii_case("NULL") {
            Ok(Element::Null)
        } else {
            Ok(Element::Text(Cow::Borrowed(raw)))
        }
    }
}

fn visit_array<'de, V: Visitor<'de>>(
    text: &str,
    elem_oid: u32,
    visitor: V,
) -> Result<V::Value, ValueError> {
    let items = parse_array(text)?;
    visitor.visit_seq(ElementSeq {
        items: items.into_iter(),
        elem_oid,
    })
}

struct ElementSeq<'a> {
    items: std::vec::IntoIter<Element<'a>>,
    elem_oid: u32,
}

impl<'de, 'a> de::SeqAccess<'de> for ElementSeq<'a> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.items.next() {
            None => Ok(None),
            Some(Element::Null) => seed
                .deserialize(ValueDeserializer {
                    oid: self.elem_oid,
                    text: None,
                })
                .map(Some),
            Some(Element::Text(t)) => seed
                .deserialize(ValueDeserializer {
                    oid: self.elem_oid,
                    text: Some(t),
                })
                .map(Some),
            Some(Element::Array(inner)) => seed
                .deserialize(NestedArray {
                    items: inner,
                    elem_oid: self.elem_oid,
                })
                .map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// A nested dimension of a multi-dimensional array: deserializes as a sequence.
struct NestedArray<'a> {
    items: Vec<Element<'a>>,
    elem_oid: u32,
}

impl<'de, 'a> de::Deserializer<'de> for NestedArray<'a> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_seq(ElementSeq {
            items: self.items.into_iter(),
            elem_oid: self.elem_oid,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_array_and_a_timestamp() {
        let v: Vec<Option<i32>> = Value {
            oid: 1007,
            text: Some("{1,NULL,3}"),
        }
        .decode()
        .unwrap();
        assert_eq!(v, vec![Some(1), None, Some(3)]);
        let t: String = Value {
            oid: oid::TIMESTAMPTZ,
            text: Some("2024-01-02 03:04:05.5+00"),
        }
        .decode()
        .unwrap();
        assert_eq!(t, "2024-01-02T03:04:05.5+00:00");
    }

    fn v(oid: u32, text: &str) -> Value<'_> {
        Value {
            oid,
            text: Some(text),
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(v(oid::INT8, "-42").decode::<i64>().unwrap(), -42);
        assert!(v(oid::BOOL, "t").decode::<bool>().unwrap());
        assert!(!v(oid::BOOL, "f").decode::<bool>().unwrap());
        assert_eq!(v(oid::FLOAT8, "1.5").decode::<f64>().unwrap(), 1.5);
        assert!(v(oid::FLOAT8, "NaN").decode::<f64>().unwrap().is_nan());
        assert_eq!(
            v(oid::FLOAT8, "-Infinity").decode::<f64>().unwrap(),
            f64::NEG_INFINITY
        );
        assert_eq!(
            v(oid::TEXT, "héllo 😀").decode::<String>().unwrap(),
            "héllo 😀"
        );
        assert_eq!(
            Value {
                oid: oid::TEXT,
                text: None
            }
            .decode::<Option<String>>()
            .unwrap(),
            None
        );
        assert!(
            Value {
                oid: oid::TEXT,
                text: None
            }
            .decode::<String>()
            .is_err()
        );
        assert!(v(oid::INT4, "x1").decode::<i32>().is_err());
    }

    #[test]
    fn bytea_both_ways() {
        assert_eq!(
            v(oid::BYTEA, "\\x00ff10").decode::<Vec<u8>>().unwrap(),
            vec![0, 255, 16]
        );
        assert!(v(oid::BYTEA, "\\x0").decode::<Vec<u8>>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            v(oid::TIMESTAMPTZ, "2024-01-02 03:04:05+00")
                .decode::<String>()
                .unwrap(),
            "2024-01-02T03:04:05+00:00"
        );
        assert_eq!(
            v(oid::TIMESTAMPTZ, "2024-01-02 03:04:05.123+05:30")
                .decode::<String>()
                .unwrap(),
            "2024-01-02T03:04:05.123+05:30"
        );
        assert_eq!(
            v(oid::TIMESTAMP, "2024-01-02 03:04:05")
                .decode::<String>()
                .unwrap(),
            "2024-01-02T03:04:05"
        );
        assert_eq!(
            v(oid::DATE, "2024-01-02").decode::<String>().unwrap(),
            "2024-01-02"
        );
        assert_eq!(
            v(oid::TIMETZ, "03:04:05-07").decode::<String>().unwrap(),
            "03:04:05-07:00"
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(
            v(1009, r#"{"a b","c\"d",NULL,"NULL",plain,"é😀"}"#)
                .decode::<Vec<Option<String>>>()
                .unwrap(),
            vec![
                Some("a b".into()),
                Some("c\"d".into()),
                None,
                Some("NULL".into()),
                Some("plain".into()),
                Some("é😀".into())
            ]
        );
        assert_eq!(
            v(1007, "{}").decode::<Vec<i32>>().unwrap(),
            Vec::<i32>::new()
        );
        assert_eq!(
            v(1007, "{{1,2},{3,4}}").decode::<Vec<Vec<i32>>>().unwrap(),
            vec![vec![1, 2], vec![3, 4]]
        );
        assert_eq!(
            v(1007, "[0:1]={7,8}").decode::<Vec<i32>>().unwrap(),
            vec![7, 8]
        );
        assert_eq!(
            v(1009, r#"{"back\\slash"}"#)
                .decode::<Vec<String>>()
                .unwrap(),
            vec!["back\\slash".to_string()]
        );
        assert!(v(1007, "{1,2").decode::<Vec<i32>>().is_err());
        // An array of a user-defined type (OID unknown to us) still decodes by target type.
        assert_eq!(
            v(99999, "{red,green}").decode::<Vec<String>>().unwrap(),
            vec!["red".to_string(), "green".to_string()]
        );
    }

    #[test]
    fn json_and_any() {
        let j: serde_json::Value = v(oid::JSONB, r#"{"a": [1, "x"]}"#).decode().unwrap();
        assert_eq!(j, serde_json::json!({"a": [1, "x"]}));
        let any: serde_json::Value = v(1007, "{1,NULL}").decode().unwrap();
        assert_eq!(any, serde_json::json!([1, null]));
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct P {
            a: i32,
        }
        assert_eq!(
            v(oid::JSON, r#"{"a":3}"#).decode::<P>().unwrap(),
            P { a: 3 }
        );
        // The raw text of a json column when a String is asked for.
        assert_eq!(
            v(oid::JSON, r#"{"a":3}"#).decode::<String>().unwrap(),
            r#"{"a":3}"#
        );
    }

    #[test]
    fn enums_from_text() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Mood {
            Happy,
            Sad,
        }
        assert_eq!(v(55555, "sad").decode::<Mood>().unwrap(), Mood::Sad);
        assert!(v(55555, "meh").decode::<Mood>().is_err());
        assert_eq!(
            v(55556, "{happy,sad}").decode::<Vec<Mood>>().unwrap(),
            vec![Mood::Happy, Mood::Sad]
        );
    }
}
