//! A committed transaction as the slot delivered it: the raw pgoutput messages between Begin
//! and Commit, plus what a node that did not see the stream needs to decode them (the
//! Relation messages of the tables it touches). This is what the leader publishes on the bus
//! and what every node's [`Applier`](super::apply::Applier) turns into a [`Txn`](super::change::Txn)
//! for its own fan-out, so one node or many run the same decoding and folding.
//!
//! The encoding is a small versioned binary framing written here (length-prefixed byte
//! strings): the payload is pgoutput bytes already, and a general serializer would add a
//! dependency or, for JSON, a third to the size.

// The encoding is used by the bus only (feature `nats`); its tests run either way.
#![cfg_attr(not(feature = "nats"), allow(dead_code))]

use std::collections::{HashMap, HashSet};

use super::change::TxnMark;

/// One message of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawItem {
    /// A pgoutput message (Relation, Insert, Update, Delete, Truncate, Type, …).
    Pg(Vec<u8>),
    /// The transaction marked itself (`mark_transaction`).
    Mark(TxnMark),
}

/// A committed transaction, undecoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawTxn {
    pub xid: u32,
    pub end_lsn: u64,
    pub commit_time_micros: i64,
    /// A message outside any transaction did not decode before this one: every view reloads.
    pub reload_all: bool,
    /// The Relation messages (as known before this transaction) of the tables it touches.
    pub relations: Vec<Vec<u8>>,
    pub items: Vec<RawItem>,
    /// Relations whose rows were dropped because the transaction was over the size cap: their
    /// views reload.
    pub overflow: Vec<u32>,
}

/// Why bytes are not a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an encoded transaction: {0}")]
pub(crate) struct RawError(pub &'static str);

const MAGIC: &[u8; 4] = b"LVT1";

impl RawTxn {
    /// Bytes the transaction's messages hold.
    pub(crate) fn bytes(&self) -> usize {
        self.relations.iter().map(Vec::len).sum::<usize>()
            + self
                .items
                .iter()
                .map(|i| match i {
                    RawItem::Pg(b) => b.len(),
                    RawItem::Mark(_) => 1,
                })
                .sum::<usize>()
    }

    /// Encodes for the bus.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes() + 64 + 5 * self.items.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.end_lsn.to_be_bytes());
        out.extend_from_slice(&self.commit_time_micros.to_be_bytes());
        out.push(u8::from(self.reload_all));
        out.extend_from_slice(&(self.relations.len() as u32).to_be_bytes());
        for r in &self.relations {
            put_bytes(&mut out, r);
        }
        out.extend_from_slice(&(self.items.len() as u32).to_be_bytes());
        for item in &self.items {
            match item {
                RawItem::Pg(b) => {
                    out.push(0);
                    put_bytes(&mut out, b);
                }
                RawItem::Mark(TxnMark::Reload) => out.push(1),
                RawItem::Mark(TxnMark::Quiet) => out.push(2),
            }
        }
        out.extend_from_slice(&(self.overflow.len() as u32).to_be_bytes());
        for rel in &self.overflow {
            out.extend_from_slice(&rel.to_be_bytes());
        }
        out
    }

    /// Decodes what [`RawTxn::encode`] wrote.
    pub(crate) fn decode(bytes: &[u8]) -> Result<RawTxn, RawError> {
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(RawError("bad magic or version"));
        }
        let xid = r.u32()?;
        let end_lsn = r.u64()?;
        let commit_time_micros = r.u64()? as i64;
        let reload_all = r.u8()? != 0;
        let n = r.count()?;
        let mut relations = Vec::with_capacity(n);
        for _ in 0..n {
            relations.push(r.bytes()?.to_vec());
        }
        let n = r.count()?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(match r.u8()? {
                0 => RawItem::Pg(r.bytes()?.to_vec()),
                1 => RawItem::Mark(TxnMark::Reload),
                2 => RawItem::Mark(TxnMark::Quiet),
                _ => return Err(RawError("unknown item kind")),
            });
        }
        let n = r.count()?;
        let mut overflow = Vec::with_capacity(n);
        for _ in 0..n {
            overflow.push(r.u32()?);
        }
        if r.pos != bytes.len() {
            return Err(RawError("trailing bytes"));
        }
        Ok(RawTxn {
            xid,
            end_lsn,
            commit_time_micros,
            reload_all,
            relations,
            items,
            overflow,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RawError> {
        let end = self.pos.checked_add(n).ok_or(RawError("length overflow"))?;
        let s = self.b.get(self.pos..end).ok_or(RawError("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, RawError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RawError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self) -> Result<u64, RawError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    /// A count of entries, each at least one byte (so a bad count cannot allocate much).
    fn count(&mut self) -> Result<usize, RawError> {
        let n = self.u32()? as usize;
        if n > self.b.len() - self.pos {
            return Err(RawError("count past the end"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], RawError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The relation ids a pgoutput message names without decoding it: `(defines, touches)`. A
/// Relation message defines its id; a row message or a Truncate touches ids.
pub(crate) fn peek_relations(msg: &[u8]) -> (Option<u32>, Vec<u32>) {
    let id_at = |at: usize| {
        msg.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    match msg.first() {
        Some(b'R') => (id_at(1), Vec::new()),
        Some(b'I' | b'U' | b'D') => (None, id_at(1).into_iter().collect()),
        Some(b'T') => {
            let n = id_at(1).unwrap_or(0) as usize;
            let ids = (0..n.min(msg.len() / 4))
                .map_while(|i| id_at(6 + 4 * i))
                .collect();
            (None, ids)
        }
        _ => (None, Vec::new()),
    }
}

/// Builds a [`RawTxn`] on the slot's leader, between Begin and Commit.
pub(crate) struct RawBuilder {
    txn: RawTxn,
    /// The definitions, before this transaction, of relations it redefined.
    before: HashMap<u32, Vec<u8>>,
    touched: Vec<u32>,
    touched_set: HashSet<u32>,
    overflow: HashSet<u32>,
    bytes: usize,
    cap: usize,
}

impl RawBuilder {
    pub(crate) fn new(xid: u32, cap: usize) -> Self {
        RawBuilder {
            txn: RawTxn {
                xid,
                ..RawTxn::default()
            },
            before: HashMap::new(),
            touched: Vec::new(),
            touched_set: HashSet::new(),
            overflow: HashSet::new(),
            bytes: 0,
            cap,
        }
    }

    /// Every view reloads (a message before this transaction did not decode).
    pub(crate) fn reload_all(&mut self) {
        self.txn.reload_all = true;
    }

    pub(crate) fn mark(&mut self, mark: TxnMark) {
        self.txn.items.push(RawItem::Mark(mark));
    }

    /// Adds a pgoutput message; `known` holds the session's Relation messages by id.
    pub(crate) fn push(&mut self, msg: Vec<u8>, known: &mut HashMap<u32, Vec<u8>>) {
        let (defines, touches) = peek_relations(&msg);
        if let Some(id) = defines {
            if let Some(prev) = known.insert(id, msg.clone())
                && !self.before.contains_key(&id)
            {
                self.before.insert(id, prev);
            }
            self.txn.items.push(RawItem::Pg(msg));
            return;
        }
        let is_row = matches!(msg.first(), Some(b'I' | b'U' | b'D'));
        for id in touches {
            if self.touched_set.insert(id) {
                self.touched.push(id);
            }
            if is_row && (self.bytes + msg.len() > self.cap || !self.overflow.is_empty()) {
                // Over the cap: the rows are dropped and the views of the tables touched
                // reload (the same rule as the decoded buffer's).
                if self.overflow.is_empty() {
                    tracing::warn!(
                        xid = self.txn.xid,
                        cap = self.cap,
                        "transaction over the buffer cap; affected views will reload"
                    );
                    self.drop_rows();
                }
                self.overflow.insert(id);
                return;
            }
        }
        self.bytes += msg.len();
        self.txn.items.push(RawItem::Pg(msg));
    }

    /// Drops the row messages buffered so far; their relations are marked for a reload.
    fn drop_rows(&mut self) {
        let mut kept = Vec::new();
        for item in std::mem::take(&mut self.txn.items) {
            match &item {
                RawItem::Pg(m) if matches!(m.first(), Some(b'I' | b'U' | b'D')) => {
                    for id in peek_relations(m).1 {
                        self.overflow.insert(id);
                    }
                }
                _ => kept.push(item),
            }
        }
        self.txn.items = kept;
        self.bytes = 0;
    }

    /// The transaction, with the definitions of the relations it touches.
    pub(crate) fn finish(
        mut self,
        end_lsn: u64,
        commit_time_micros: i64,
        known: &HashMap<u32, Vec<u8>>,
    ) -> RawTxn {
        for id in &self.touched {
            if let Some(def) = self.before.remove(id).or_else(|| known.get(id).cloned()) {
                self.txn.relations.push(def);
            }
        }
        self.txn.end_lsn = end_lsn;
        self.txn.commit_time_micros = commit_time_micros;
        let mut overflow: Vec<u32> = self.overflow.into_iter().collect();
        overflow.sort_unstable();
        self.txn.overflow = overflow;
        self.txn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(id: u32, name: &str) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(b"public\0");
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&[0, b'd', 0, 0]);
        m
    }

    fn insert(rel: u32, text: &str) -> Vec<u8> {
        let mut m = vec![b'I'];
        m.extend_from_slice(&rel.to_be_bytes());
        m.extend_from_slice(&[b'N', 0, 1, b't']);
        m.extend_from_slice(&(text.len() as u32).to_be_bytes());
        m.extend_from_slice(text.as_bytes());
        m
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let t = RawTxn {
            xid: 77,
            end_lsn: 0x1_0000_0010,
            commit_time_micros: -5,
            reload_all: true,
            relations: vec![relation(1, "todos")],
            items: vec![
                RawItem::Pg(insert(1, "a")),
                RawItem::Mark(TxnMark::Quiet),
                RawItem::Mark(TxnMark::Reload),
            ],
            overflow: vec![3, 4],
        };
        let bytes = t.encode();
        assert_eq!(RawTxn::decode(&bytes).unwrap(), t);
        for cut in 0..bytes.len() {
            assert!(RawTxn::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(RawTxn::decode(&extra).is_err());
        let mut bad = bytes;
        bad[3] = b'9';
        assert!(RawTxn::decode(&bad).is_err());
        // A huge count is refused without allocating.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[0; 21]);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(RawTxn::decode(&huge).is_err());
    }

    #[test]
    fn peeks_relation_ids() {
        assert_eq!(peek_relations(&relation(9, "x")), (Some(9), vec![]));
        assert_eq!(peek_relations(&insert(7, "a")), (None, vec![7]));
        let mut t = vec![b'T'];
        t.extend_from_slice(&2u32.to_be_bytes());
        t.push(0);
        t.extend_from_slice(&5u32.to_be_bytes());
        t.extend_from_slice(&6u32.to_be_bytes());
        assert_eq!(peek_relations(&t), (None, vec![5, 6]));
        assert_eq!(peek_relations(&[b'T', 0, 0, 0, 200, 0]), (None, vec![]));
        assert_eq!(peek_relations(&[]), (None, vec![]));
        assert_eq!(peek_relations(&[b'I', 1]), (None, vec![]));
    }

    #[test]
    fn carries_the_definitions_before_the_transaction() {
        let mut known = HashMap::new();
        known.insert(1, relation(1, "old"));
        known.insert(2, relation(2, "other"));
        let mut b = RawBuilder::new(5, 1 << 20);
        b.push(insert(1, "a"), &mut known);
        // Redefined inside the transaction: the header keeps the definition from before.
        b.push(relation(1, "new"), &mut known);
        b.push(insert(1, "b"), &mut known);
        let t = b.finish(100, 0, &known);
        assert_eq!(t.relations, vec![relation(1, "old")]);
        assert_eq!(t.items.len(), 3);
        assert_eq!(known[&1], relation(1, "new"));
        // Next transaction: the new definition.
        let mut b = RawBuilder::new(6, 1 << 20);
        b.push(insert(1, "c"), &mut known);
        b.push(insert(2, "d"), &mut known);
        let t = b.finish(200, 0, &known);
        assert_eq!(t.relations, vec![relation(1, "new"), relation(2, "other")]);
    }

    #[test]
    fn over_the_cap_rows_become_reloads() {
        let mut known = HashMap::new();
        known.insert(1, relation(1, "a"));
        known.insert(2, relation(2, "b"));
        let mut b = RawBuilder::new(5, 100);
        b.push(insert(1, "x"), &mut known);
        b.mark(TxnMark::Reload);
        for i in 0..20 {
            b.push(insert(if i < 10 { 1 } else { 2 }, "0123456789"), &mut known);
        }
        let t = b.finish(100, 0, &known);
        assert_eq!(t.overflow, vec![1, 2]);
        assert_eq!(t.items, vec![RawItem::Mark(TxnMark::Reload)]);
        assert!(t.bytes() < 200);
    }
}
