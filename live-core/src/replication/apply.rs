//! Turning a committed [`RawTxn`] into a folded [`Txn`] for this node's fan-out: decode the
//! pgoutput messages, keep the relations' descriptions, fold changes per row. One node runs it
//! on what its listener streamed; with a bus, every node runs it on what it consumes, so each
//! node decodes into its own `Watch` types. The caller dispatches the result.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ListenerStatus;
use super::change::{ChangeKind, RowChange, Txn, TxnBuilder, fill_unchanged_from_old};
use super::raw::{RawItem, RawTxn};
use crate::pg::pgoutput::{self, Message, Relation};
use crate::row::Registry;

/// What a node knows between transactions.
pub(crate) struct Applier {
    /// The slot (fault injection in tests names it).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    slot: String,
    relations: HashMap<u32, Arc<Relation>>,
    /// The raw Relation messages behind `relations` (a header equal to it is not decoded).
    raw_relations: HashMap<u32, Vec<u8>>,
    /// End LSN of the last transaction applied: one at or below it is a duplicate.
    last_applied: u64,
    max_transaction_bytes: usize,
    /// The watched types (which tables, which id columns).
    registry: Arc<Registry>,
}

impl Applier {
    pub(crate) fn new(slot: &str, max_transaction_bytes: usize, registry: Arc<Registry>) -> Self {
        Applier {
            registry,
            slot: slot.to_string(),
            relations: HashMap::new(),
            raw_relations: HashMap::new(),
            last_applied: 0,
            max_transaction_bytes,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Message, pgoutput::ProtocolError> {
        let decoded = pgoutput::decode(bytes);
        #[cfg(feature = "testing")]
        let decoded = decoded.and_then(|m| super::faults::inject(&self.slot, m));
        decoded
    }

    /// Decodes and folds `raw`: `None` for a duplicate (already applied), a quiet transaction
    /// or one that touches no watched row; else the transaction to dispatch.
    pub(crate) fn apply(&mut self, raw: &RawTxn, status: &ListenerStatus) -> Option<Txn> {
        if raw.end_lsn <= self.last_applied {
            return None;
        }
        let mut b = TxnBuilder::new(raw.xid, self.max_transaction_bytes);
        if raw.reload_all {
            b.reload_all();
        }
        for def in &raw.relations {
            let (Some(id), _) = super::raw::peek_relations(def) else {
                continue;
            };
            if self.raw_relations.get(&id) == Some(def) {
                continue;
            }
            self.pg_message(def, status, &mut b);
        }
        for item in &raw.items {
            match item {
                RawItem::Pg(bytes) => self.pg_message(bytes, status, &mut b),
                RawItem::Mark(m) => b.mark(*m),
            }
        }
        for rel in &raw.overflow {
            match self.relations.get(rel) {
                Some(r) => b.reload(r),
                None => reload_unknown(&mut b, *rel),
            }
        }
        let quiet = b.is_quiet();
        let txn = b.finish(raw.end_lsn, raw.commit_time_micros);
        self.last_applied = raw.end_lsn;
        status.last_lsn.store(raw.end_lsn, Ordering::Release);
        if quiet {
            tracing::debug!(
                xid = txn.xid,
                changes = txn.changes.len(),
                "a quiet transaction"
            );
            return None;
        }
        let touches = !txn.changes.is_empty() || !txn.reload_tables.is_empty() || txn.reload_all;
        touches.then_some(txn)
    }

    fn pg_message(&mut self, bytes: &[u8], status: &ListenerStatus, b: &mut TxnBuilder) {
        match self.decode(bytes) {
            Ok(msg) => {
                if let Message::Relation(rel) = &msg {
                    self.raw_relations.insert(rel.id, bytes.to_vec());
                }
                handle_message(msg, &mut self.relations, &self.registry, status, b);
            }
            Err(e) => {
                // Its rows cannot be routed: every view of every watched table reloads once
                // this transaction commits. Never a silent skip.
                tracing::error!(error = %e, "a pgoutput message did not decode; every view reloads");
                b.reload_all();
            }
        }
    }
}

/// A row change as it arrives, before the applier knows whether its table is watched.
struct Incoming {
    rel: u32,
    kind: ChangeKind,
    new: Option<pgoutput::Tuple>,
    old: Option<pgoutput::Tuple>,
    old_is_full: bool,
}

fn handle_message(
    msg: Message,
    relations: &mut HashMap<u32, Arc<Relation>>,
    registry: &Registry,
    status: &ListenerStatus,
    b: &mut TxnBuilder,
) {
    let change = match msg {
        Message::Relation(rel) => {
            let changed = relations
                .get(&rel.id)
                .is_some_and(|old| old.columns != rel.columns || old.name != rel.name);
            if changed {
                tracing::info!(table = %rel.name, "table definition changed; its views reload");
                b.reload(&rel);
            }
            relations.insert(rel.id, rel);
            return;
        }
        Message::Truncate { rels } => {
            for rel in rels {
                match relations.get(&rel) {
                    Some(r) => b.reload(r),
                    None => reload_unknown(b, rel),
                }
            }
            return;
        }
        Message::Type { .. } | Message::Other(_) => return,
        Message::Insert { rel, new } => Incoming {
            rel,
            kind: ChangeKind::Insert,
            new: Some(new),
            old: None,
            old_is_full: false,
        },
        Message::Update {
            rel,
            old,
            old_is_full,
            mut new,
        } => {
            fill_unchanged_from_old(&mut new, old.as_ref(), old_is_full);
            Incoming {
                rel,
                kind: ChangeKind::Update,
                new: Some(new),
                old,
                old_is_full,
            }
        }
        Message::Delete {
            rel,
            old,
            old_is_full,
        } => Incoming {
            rel,
            kind: ChangeKind::Delete,
            new: None,
            old: Some(old),
            old_is_full,
        },
    };
    status.rows.fetch_add(1, Ordering::Relaxed);
    let Some(r) = relations.get(&change.rel) else {
        return reload_unknown(b, change.rel);
    };
    // The id column of a watched table (no type watches it: skip the row).
    let Some(id_column) = registry.read().id_column(&r.schema, &r.name) else {
        return;
    };
    match r.column_index(id_column) {
        Some(id) => b.push(
            id,
            RowChange::new(
                r.clone(),
                change.kind,
                change.new,
                change.old,
                change.old_is_full,
            ),
        ),
        None => {
            tracing::error!(table = %r.name, "a watched table has no id column; its views reload");
            b.reload(r);
        }
    }
}

/// A change on a relation this node has no description of cannot be routed (its Relation
/// message was lost or did not decode): every view reloads.
fn reload_unknown(b: &mut TxnBuilder, rel: u32) {
    tracing::error!(
        relation = rel,
        "a change on a relation the listener does not know; every view reloads"
    );
    b.reload_all();
}
