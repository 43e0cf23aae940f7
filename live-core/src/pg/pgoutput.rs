//! Decoding of `pgoutput` logical replication messages (protocol version 1, text values).
//!
//! `pgwire-replication` delivers Begin and Commit as events of their own and every other
//! message as raw bytes; this module reads those bytes: Relation, Type, Insert, Update,
//! Delete, Truncate and Origin. Written here because the format is small (see
//! "Logical Replication Message Formats" in the Postgres manual) and no maintained crate
//! decodes it on top of `pgwire-replication`.

use std::sync::Arc;

/// Why a message did not decode.
#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub(crate) struct ProtocolError(pub String);

/// One column of a relation, as the Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Whether the column is part of the replica identity.
    pub is_key: bool,
}

/// A table as described by a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relation {
    /// The relation OID.
    pub id: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Replica identity setting: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// The columns in table order.
    pub columns: Vec<Column>,
}

impl Relation {
    /// The index of the column called `name`.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL `NULL`.
    Null,
    /// An unchanged TOASTed value that the server did not send.
    Unchanged,
    /// The value's text output.
    Text(Box<str>),
}

impl Cell {
    /// The text, if this cell has one.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    fn size(&self) -> usize {
        match self {
            Cell::Text(t) => t.len() + 16,
            _ => 16,
        }
    }
}

/// The column values of one row version.
pub(crate) type Tuple = Vec<Cell>;

/// The approximate heap size of a tuple, for the transaction buffer cap.
pub(crate) fn tuple_size(t: &Tuple) -> usize {
    t.iter().map(Cell::size).sum::<usize>() + 24
}

/// A decoded message.
#[derive(Debug)]
pub(crate) enum Message {
    /// A table's description; sent before its first change in a session and after it changes.
    Relation(Arc<Relation>),
    /// A user-defined type's name (sent before a relation that uses it). Values are decoded
    /// by type OID from the Relation message, so its fields serve logs and tests only.
    #[allow(dead_code)]
    Type {
        /// Type OID.
        oid: u32,
        /// Schema name.
        schema: String,
        /// Type name.
        name: String,
    },
    /// A new row.
    Insert {
        /// Relation OID.
        rel: u32,
        /// The row.
        new: Tuple,
    },
    /// A changed row. `old` is the replica identity (key columns only, `K`) or the whole old
    /// row (`O`, with `REPLICA IDENTITY FULL`), or absent when the key did not change.
    Update {
        /// Relation OID.
        rel: u32,
        /// The old key or row, if sent.
        old: Option<Tuple>,
        /// Whether `old` is a whole row (`O`) rather than key columns (`K`).
        old_is_full: bool,
        /// The new row.
        new: Tuple,
    },
    /// A deleted row: its replica identity, or its whole old row under `FULL`.
    Delete {
        /// Relation OID.
        rel: u32,
        /// The old key or row.
        old: Tuple,
        /// Whether `old` is a whole row.
        old_is_full: bool,
    },
    /// Tables emptied by `TRUNCATE`.
    Truncate {
        /// Relation OIDs.
        rels: Vec<u32>,
    },
    /// A message this decoder skips (Origin, or a type it does not know): its tag byte.
    Other(#[allow(dead_code)] u8),
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| ProtocolError(format!("truncated at byte {}", self.pos)))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtocolError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn cstr(&mut self) -> Result<String, ProtocolError> {
        let rest = &self.b[self.pos..];
        let nul = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| ProtocolError("unterminated string".into()))?;
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, ProtocolError> {
        let n = self.u16()? as usize;
        let mut cells = Vec::with_capacity(n);
        for _ in 0..n {
            let cell = match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        ProtocolError("a text value is not UTF-8 (is server_encoding UTF8?)".into())
                    })?;
                    Cell::Text(text.into())
                }
                b'b' => {
                    return Err(ProtocolError(
                        "binary tuple data; the listener asks for text".into(),
                    ));
                }
                other => return Err(ProtocolError(format!("unknown tuple kind {other}"))),
            };
            cells.push(cell);
        }
        Ok(cells)
    }
}

/// Decodes one pgoutput message (the payload of an `XLogData`).
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, ProtocolError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let schema = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.u16()? as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(Column {
                    name,
                    type_oid,
                    is_key: flags & 1 == 1,
                });
            }
            Message::Relation(Arc::new(Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            }))
        }
        b'Y' => {
            let oid = r.u32()?;
            let schema = r.cstr()?;
            let name = r.cstr()?;
            Message::Type { oid, schema, name }
        }
        b'I' => {
            let rel = r.u32()?;
            match r.u8()? {
                b'N' => {}
                other => return Err(ProtocolError(format!("insert: expected N, got {other}"))),
            }
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut old = None;
            let mut old_is_full = false;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old_is_full = kind == b'O';
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(ProtocolError(format!("update: expected N, got {kind}")));
            }
            Message::Update {
                rel,
                old,
                old_is_full,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(ProtocolError(format!(
                    "delete: expected K or O, got {kind}"
                )));
            }
            Message::Delete {
                rel,
                old: r.tuple()?,
                old_is_full: kind == b'O',
            }
        }
        b'T' => {
            let n = r.u32()? as usize;
            let _options = r.u8()?;
            let mut rels = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            Message::Truncate { rels }
        }
        other => Message::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_insert() {
        // Insert into relation 16384 of one text column "hi".
        let mut m = vec![b'I', 0, 0, 0x40, 0, b'N', 0, 1, b't', 0, 0, 0, 2];
        m.extend_from_slice(b"hi");
        match decode(&m).unwrap() {
            Message::Insert { rel, new } => {
                assert_eq!(rel, 16384);
                assert_eq!(new, vec![Cell::Text("hi".into())]);
            }
            other => panic!("{other:?}"),
        }
    }

    fn relation_bytes() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16400u32.to_be_bytes());
        m.extend_from_slice(b"public\0todos\0");
        m.push(b'f');
        m.extend_from_slice(&2u16.to_be_bytes());
        m.push(1);
        m.extend_from_slice(b"id\0");
        m.extend_from_slice(&20u32.to_be_bytes());
        m.extend_from_slice(&u32::MAX.to_be_bytes());
        m.push(0);
        m.extend_from_slice(b"title\0");
        m.extend_from_slice(&25u32.to_be_bytes());
        m.extend_from_slice(&u32::MAX.to_be_bytes());
        m
    }

    #[test]
    fn relation() {
        let Message::Relation(r) = decode(&relation_bytes()).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(r.name, "todos");
        assert_eq!(r.schema, "public");
        assert_eq!(r.replica_identity, b'f');
        assert_eq!(r.columns.len(), 2);
        assert!(r.columns[0].is_key);
        assert_eq!(r.columns[1].type_oid, 25);
        assert_eq!(r.column_index("title"), Some(1));
    }

    #[test]
    fn update_with_old_and_toast() {
        let mut m = vec![b'U'];
        m.extend_from_slice(&16400u32.to_be_bytes());
        m.push(b'O');
        m.extend_from_slice(&2u16.to_be_bytes());
        m.extend_from_slice(&[b't', 0, 0, 0, 1, b'1', b'n']);
        m.push(b'N');
        m.extend_from_slice(&2u16.to_be_bytes());
        m.extend_from_slice(&[b't', 0, 0, 0, 1, b'1', b'u']);
        match decode(&m).unwrap() {
            Message::Update {
                old,
                old_is_full,
                new,
                ..
            } => {
                assert!(old_is_full);
                assert_eq!(old.unwrap(), vec![Cell::Text("1".into()), Cell::Null]);
                assert_eq!(new, vec![Cell::Text("1".into()), Cell::Unchanged]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let full = relation_bytes();
        for cut in 1..full.len() {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[b'I', 0, 0, 0, 1, b'N', 0, 1, b't', 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
