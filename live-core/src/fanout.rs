//! The fan-out: routes each committed transaction to the views (and change streams) whose
//! subscription key matches, and keeps a short replay ring so a view that loads its rows while
//! changes are committed neither misses one nor applies one backwards.
//!
//! Two indexes route a change of a watched type `T`:
//! - `(T, subscription key) → views` for inserts and updates (the new row's key), and
//! - `(T, id) → key` for deletes and key moves, which under the default replica identity
//!   carry only the primary key: the old key is looked up by id, so a row that moves from
//!   list A to list B leaves A's views (as a delete, without its new values) and enters B's.
//!
//! Each view has a bounded mailbox. A full mailbox never blocks the listener: the delivery is
//! dropped and the view is flagged to reload from the database.

use std::any::TypeId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::pg::Snapshot;
use crate::pg::pgoutput::Cell;
use crate::replication::change::{ChangeKind, RowChange, Txn};
use crate::row::{ALL_ROWS, HeldRows, Key, Registry, WatchTypeInfo, WatchTypes};

/// A connected view's id in the fan-out.
pub(crate) type ViewId = u64;

/// What a view is asked to do with one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Insert or update the row (the change's new row).
    Upsert,
    /// Remove the row (delete, or a move to another key: only the id is read).
    Remove,
    /// Reload the assigns of this type from the database.
    Reload,
}

/// One routed change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    pub ty: TypeId,
    /// The view's watched assign the change is for.
    pub slot: u16,
    pub change: u32,
    pub op: Op,
}

/// The part of one transaction that concerns one view.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub seq: u64,
    pub txn: Arc<Txn>,
    pub items: Vec<Item>,
}

/// Which changes a change stream wants.
#[derive(Debug, Clone)]
pub(crate) enum StreamFilter {
    All,
    Key(Key),
    Id(Key),
}

/// How a change looks to a change stream (after applying its filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamOp {
    Inserted,
    Updated,
    Deleted,
    /// An update that brought the row into the stream's key: reported as an insert.
    MovedIn,
    /// An update that took the row out of the stream's key: reported as a delete, without
    /// the new values (they belong to another key).
    MovedOut,
    Reload,
}

/// One change for a change stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamDelivery {
    pub txn: Arc<Txn>,
    pub change: u32,
    pub op: StreamOp,
}

/// The loaded rows did not cover a gap: the ring no longer holds changes since the load began.
#[derive(Debug)]
pub(crate) struct Gap;

struct ViewEntry {
    tx: mpsc::Sender<Box<Delivery>>,
    overflow: Arc<AtomicBool>,
    /// Bytes of the transactions in the mailbox (a view that does not take its deliveries
    /// must not keep transactions alive past the ring).
    pending: Arc<AtomicUsize>,
    keys: Vec<ScopeKey>,
}

/// One key of one of a view's scopes: `(slot, type, column, key)`.
pub(crate) type ScopeKey = (u16, TypeId, &'static str, Key);

/// A row index entry: `(type, column, value)`.
type IndexKey = (TypeId, &'static str, Key);

/// A view's mailbox, as the view holds it.
pub(crate) struct Mailbox {
    pub id: ViewId,
    pub rx: mpsc::Receiver<Box<Delivery>>,
    pub overflow: Arc<AtomicBool>,
    pending: Arc<AtomicUsize>,
}

impl Mailbox {
    /// Takes a delivery out of the byte count of the mailbox.
    pub(crate) fn taken(&self, d: &Delivery) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(d.txn.bytes))
            });
    }
}

#[derive(Default)]
struct KeyEntry {
    /// The views (and their assign) subscribed to this (type, column, value).
    views: Vec<(ViewId, u16)>,
    ids: HashSet<Key>,
}

struct StreamEntry {
    ty: TypeId,
    filter: StreamFilter,
    tx: mpsc::Sender<StreamDelivery>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    ring: VecDeque<Arc<Txn>>,
    ring_bytes: usize,
    views: HashMap<ViewId, ViewEntry>,
    /// `(type, column, value) → views`: who receives a row whose column has that value.
    by_key: HashMap<IndexKey, KeyEntry>,
    /// `(type, column, id) → values`: the values under which views may hold a row in a
    /// scoped column, for deletes and moves that carry only the primary key. It may say too
    /// much (a `Remove` to a view that does not hold the row is a no-op), never too little:
    /// a view whose snapshot is ahead of or behind this node's dispatch holds a row under a
    /// value the latest change did not give it, and a single value per row lost such holders
    /// (ghost rows). Values leave it only when dispatch routed the row away from them, or
    /// when no view subscribes to them any more.
    ids: HashMap<IndexKey, Vec<Key>>,
    /// The scoped columns of each type, with how many index entries use them.
    columns: HashMap<TypeId, Vec<(&'static str, usize)>>,
    streams: HashMap<u64, StreamEntry>,
}

/// Sizes of the fan-out's buffers.
#[derive(Debug, Clone)]
pub(crate) struct FanoutLimits {
    pub mailbox: usize,
    /// Bytes of transactions one view's mailbox may hold; past it the view reloads.
    pub mailbox_bytes: usize,
    pub ring_txns: usize,
    pub ring_bytes: usize,
}

impl Default for FanoutLimits {
    fn default() -> Self {
        FanoutLimits {
            mailbox: 256,
            mailbox_bytes: 8 << 20,
            ring_txns: 4096,
            ring_bytes: 32 << 20,
        }
    }
}

/// The routing tables, shared by the listener (dispatch) and view sessions (subscribe).
pub(crate) struct Fanout {
    state: Mutex<State>,
    /// The watched row types (shared with the applier).
    registry: Arc<Registry>,
    limits: FanoutLimits,
    next_id: AtomicU64,
}

/// The result of routing a change of type `ty` for key matching.
struct Routed {
    id: Key,
    new_key: Option<Key>,
    /// The value the row had (from the old tuple), or the first it may be held under (from
    /// the index); `more_old` holds any others (rare: no allocation in the common case).
    old_key: Option<Key>,
    more_old: Vec<Key>,
}

impl Routed {
    /// Every value the row had or may be held under.
    fn old_keys(&self) -> impl Iterator<Item = &Key> {
        self.old_key.iter().chain(&self.more_old)
    }
}

/// Adds `key` to the values a row may be held under.
fn hold(ids: &mut HashMap<IndexKey, Vec<Key>>, at: IndexKey, key: &Key) {
    let keys = ids.entry(at).or_default();
    if !keys.contains(key) {
        keys.push(key.clone());
    }
}

/// Removes `key` from the values a row may be held under.
fn unhold(ids: &mut HashMap<IndexKey, Vec<Key>>, at: &IndexKey, key: &Key) {
    if let Some(keys) = ids.get_mut(at) {
        keys.retain(|k| k != key);
        if keys.is_empty() {
            ids.remove(at);
        }
    }
}

fn cell_key(c: Option<&Cell>) -> Option<Key> {
    c.and_then(Cell::text).map(Key::from)
}

fn route_keys(
    info: &WatchTypeInfo,
    column: &'static str,
    change: &RowChange,
    ids: &HashMap<IndexKey, Vec<Key>>,
) -> Option<Routed> {
    let rel = &change.relation;
    let id_idx = rel.column_index(info.id_column)?;
    let id = cell_key(change.current_cell(id_idx))?;
    if column == ALL_ROWS {
        // Every row of the table is in a whole-table scope.
        let all = Some(Key::from(ALL_ROWS));
        let new_key = (change.kind != ChangeKind::Delete).then(|| Key::from(ALL_ROWS));
        return Some(Routed {
            id,
            new_key,
            old_key: all,
            more_old: Vec::new(),
        });
    }
    let key_idx = rel.column_index(column)?;
    let new_key = match change.kind {
        ChangeKind::Delete => None,
        _ => cell_key(change.current_cell(key_idx)),
    };
    let (old_key, more_old) = match change.old_text(key_idx) {
        Some(old) => (Some(Key::from(old)), Vec::new()),
        None => match ids.get(&(info.type_id, column, id.clone())) {
            Some(held) => (
                held.first().cloned(),
                held.get(1..).map(<[Key]>::to_vec).unwrap_or_default(),
            ),
            None => (None, Vec::new()),
        },
    };
    Some(Routed {
        id,
        new_key,
        old_key,
        more_old,
    })
}

impl Fanout {
    pub(crate) fn new(limits: FanoutLimits, registry: Arc<Registry>) -> Self {
        Fanout {
            state: Mutex::new(State::default()),
            registry,
            limits,
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tables half-updated in a way that
        // matters more than stopping every view would: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers row types (idempotent).
    pub(crate) fn register_types(&self, types: &WatchTypes) {
        self.registry.add(types);
    }

    /// The registry of watched row types.
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The sequence number the next transaction will get: taken before a view loads rows.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Creates a view entry with a mailbox (no keys yet).
    pub(crate) fn add_view(&self) -> Mailbox {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.limits.mailbox);
        let overflow = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(AtomicUsize::new(0));
        self.lock().views.insert(
            id,
            ViewEntry {
                tx,
                overflow: overflow.clone(),
                pending: pending.clone(),
                keys: Vec::new(),
            },
        );
        Mailbox {
            id,
            rx,
            overflow,
            pending,
        }
    }

    /// Removes a view (its mailbox closes).
    pub(crate) fn remove_view(&self, view: ViewId) {
        let mut st = self.lock();
        if let Some(entry) = st.views.remove(&view) {
            unlink_keys(&mut st, view, &entry.keys);
        }
    }

    /// Sets a view's scope keys after it loaded its rows, and returns the changes it must
    /// still apply: every transaction in the ring that `snapshot` did not see (or, without a
    /// snapshot, every one since `since_seq`), routed for this view. Also returns the sequence
    /// number from which the mailbox holds changes routed under the new keys.
    pub(crate) fn subscribe(
        &self,
        view: ViewId,
        keys: Vec<ScopeKey>,
        held: &HeldRows,
        since_seq: u64,
        snapshot: Option<&Snapshot>,
    ) -> Result<(Vec<Delivery>, u64), Gap> {
        let mut st = self.lock();
        if let Some(front) = st.ring.front()
            && front.seq > since_seq
            && st.next_seq > since_seq
        {
            return Err(Gap);
        }
        if st.ring.is_empty() && st.next_seq > since_seq {
            // Transactions were dispatched since the load began but none is kept.
            return Err(Gap);
        }
        let old_keys = match st.views.get_mut(&view) {
            Some(entry) => std::mem::replace(&mut entry.keys, keys.clone()),
            None => return Ok((Vec::new(), st.next_seq)),
        };
        // Membership changes are incremental: only the keys that left are unlinked and only
        // those that entered are linked (a key set of 50 that gains one key touches one entry).
        let new_set: HashSet<&ScopeKey> = keys.iter().collect();
        let removed: Vec<ScopeKey> = old_keys
            .iter()
            .filter(|k| !new_set.contains(k))
            .cloned()
            .collect();
        let old_set: HashSet<ScopeKey> = old_keys.into_iter().collect();
        unlink_keys(&mut st, view, &removed);
        let held_set: HashSet<(u16, Key)> = held
            .rows
            .iter()
            .map(|(slot, _, id, _)| (*slot, id.clone()))
            .collect();
        let reg = self.registry.read();
        let (types, tables) = (&reg.by_type, &reg.by_table);
        let State {
            by_key,
            ids,
            ring,
            next_seq,
            columns,
            ..
        } = &mut *st;
        for k in keys.iter().filter(|k| !old_set.contains(*k)) {
            let (slot, ty, col, key) = k;
            let e = by_key.entry((*ty, *col, key.clone())).or_insert_with(|| {
                use_column(columns, *ty, col, 1);
                KeyEntry::default()
            });
            e.views.push((view, *slot));
        }
        for (slot, ty, id, key) in &held.rows {
            let Some(col) = slot_column(&keys, *slot) else {
                continue;
            };
            if let Some(e) = by_key.get_mut(&(*ty, col, key.clone())) {
                e.ids.insert(id.clone());
                hold(ids, (*ty, col, id.clone()), key);
            }
        }
        // Replay what the load did not see.
        let mut replay = Vec::new();
        for txn in ring.iter() {
            let seen = match snapshot {
                Some(s) => s.sees(txn.xid),
                None => txn.seq < since_seq,
            };
            if seen {
                continue;
            }
            let items = route_for_view(txn, &keys, &held_set, types, ids, tables);
            // Rows the replay brings in must be routable by id like the loaded ones, or a
            // later delete that carries only the primary key would never reach this view.
            index_replayed(txn, &items, &keys, types, by_key, ids);
            if !items.is_empty() {
                replay.push(Delivery {
                    seq: txn.seq,
                    txn: txn.clone(),
                    items,
                });
            }
        }
        Ok((replay, *next_seq))
    }

    /// Adds a change stream.
    pub(crate) fn add_stream(
        &self,
        ty: TypeId,
        filter: StreamFilter,
        capacity: usize,
    ) -> (u64, mpsc::Receiver<StreamDelivery>, Arc<AtomicBool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().streams.insert(
            id,
            StreamEntry {
                ty,
                filter,
                tx,
                lagged: lagged.clone(),
            },
        );
        (id, rx, lagged)
    }

    /// Removes a change stream.
    pub(crate) fn remove_stream(&self, id: u64) {
        self.lock().streams.remove(&id);
    }

    /// Routes one committed transaction. Never blocks.
    pub(crate) fn dispatch(&self, mut txn: Txn) {
        let mut st = self.lock();
        txn.seq = st.next_seq;
        st.next_seq += 1;
        let txn = Arc::new(txn);
        tracing::trace!(
            seq = txn.seq,
            xid = txn.xid,
            end_lsn = txn.end_lsn,
            commit_time_micros = txn.commit_time_micros,
            changes = txn.changes.len(),
            "dispatch"
        );
        st.ring_bytes += txn.bytes;
        st.ring.push_back(txn.clone());
        while st.ring.len() > self.limits.ring_txns
            || (st.ring_bytes > self.limits.ring_bytes && st.ring.len() > 1)
        {
            if let Some(old) = st.ring.pop_front() {
                st.ring_bytes = st.ring_bytes.saturating_sub(old.bytes);
            }
        }

        let mut out: HashMap<ViewId, Vec<Item>> = HashMap::new();
        let mut stream_out: Vec<(u64, StreamDelivery)> = Vec::new();
        let reg = self.registry.read();
        let (types, tables) = (&reg.by_type, &reg.by_table);
        let State {
            by_key,
            ids,
            streams,
            columns,
            ..
        } = &mut *st;

        for tys in reload_types(&txn, tables) {
            for ty in tys {
                for ((kty, _, _), entry) in by_key.iter() {
                    if kty == ty {
                        for (v, slot) in &entry.views {
                            let items = out.entry(*v).or_default();
                            if !items.iter().any(|i| i.op == Op::Reload && i.slot == *slot) {
                                items.push(Item {
                                    ty: *ty,
                                    slot: *slot,
                                    change: u32::MAX,
                                    op: Op::Reload,
                                });
                            }
                        }
                    }
                }
                for (sid, s) in streams.iter() {
                    if s.ty == *ty {
                        stream_out.push((
                            *sid,
                            StreamDelivery {
                                txn: txn.clone(),
                                change: u32::MAX,
                                op: StreamOp::Reload,
                            },
                        ));
                    }
                }
            }
        }

        for (ci, change) in txn.changes.iter().enumerate() {
            let rel = &change.relation;
            let Some(tys) = tables.get(&(rel.schema.clone(), rel.name.clone())) else {
                continue;
            };
            let ci = ci as u32;
            for ty in tys {
                let Some(info) = types.get(ty) else { continue };
                // Streams first: routing for views updates the id index (a delete leaves it).
                if streams.values().any(|s| s.ty == *ty) {
                    route_streams(&txn, ci, info, change, ids, streams, &mut stream_out);
                }
                let scoped: &[(&'static str, usize)] = columns.get(ty).map_or(&[], Vec::as_slice);
                for &(col, _) in scoped {
                    let Some(r) = route_keys(info, col, change, ids) else {
                        continue;
                    };
                    if let Some(k) = &r.new_key
                        && let Some(e) = by_key.get_mut(&(*ty, col, k.clone()))
                    {
                        for (v, slot) in &e.views {
                            out.entry(*v).or_default().push(Item {
                                ty: *ty,
                                slot: *slot,
                                change: ci,
                                op: Op::Upsert,
                            });
                        }
                        e.ids.insert(r.id.clone());
                        hold(ids, (*ty, col, r.id.clone()), k);
                    }
                    for ok in r.old_keys().filter(|ok| r.new_key.as_ref() != Some(*ok)) {
                        if let Some(e) = by_key.get_mut(&(*ty, col, ok.clone())) {
                            for (v, slot) in &e.views {
                                let items = out.entry(*v).or_default();
                                // A move between two keys of one assign's key set stays an
                                // update for it.
                                let upserted = items.iter().any(|i| {
                                    i.change == ci && i.slot == *slot && i.op == Op::Upsert
                                });
                                if !upserted {
                                    items.push(Item {
                                        ty: *ty,
                                        slot: *slot,
                                        change: ci,
                                        op: Op::Remove,
                                    });
                                }
                            }
                            e.ids.remove(&r.id);
                        }
                        // Every view of that value was told to drop the row.
                        unhold(ids, &(*ty, col, r.id.clone()), ok);
                    }
                    if change.kind == ChangeKind::Delete {
                        ids.remove(&(*ty, col, r.id.clone()));
                    }
                }
            }
        }

        let mut dead = Vec::new();
        for (view, items) in out {
            let Some(entry) = st.views.get(&view) else {
                continue;
            };
            let d = Delivery {
                seq: txn.seq,
                txn: txn.clone(),
                items,
            };
            if entry.pending.load(Ordering::Acquire) + txn.bytes > self.limits.mailbox_bytes {
                if !entry.overflow.swap(true, Ordering::AcqRel) {
                    tracing::warn!(view, "view mailbox over its byte cap; it will reload");
                }
                continue;
            }
            match entry.tx.try_send(Box::new(d)) {
                Ok(()) => {
                    entry.pending.fetch_add(txn.bytes, Ordering::AcqRel);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !entry.overflow.swap(true, Ordering::AcqRel) {
                        tracing::warn!(view, "view mailbox full; it will reload");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => dead.push(view),
            }
        }
        for view in dead {
            if let Some(entry) = st.views.remove(&view) {
                unlink_keys(&mut st, view, &entry.keys);
            }
        }
        let mut dead_streams = Vec::new();
        for (sid, d) in stream_out {
            let Some(s) = st.streams.get(&sid) else {
                continue;
            };
            match s.tx.try_send(d) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => s.lagged.store(true, Ordering::Release),
                Err(mpsc::error::TrySendError::Closed(_)) => dead_streams.push(sid),
            }
        }
        for sid in dead_streams {
            st.streams.remove(&sid);
        }
    }

    /// Number of connected views with a mailbox (for metrics and tests).
    pub(crate) fn view_count(&self) -> usize {
        self.lock().views.len()
    }
}

/// Streams see changes keyed by the type's own subscription key column.
fn route_streams(
    txn: &Arc<Txn>,
    ci: u32,
    info: &WatchTypeInfo,
    change: &RowChange,
    ids: &HashMap<IndexKey, Vec<Key>>,
    streams: &HashMap<u64, StreamEntry>,
    stream_out: &mut Vec<(u64, StreamDelivery)>,
) {
    let r = if info.key_column.is_empty() {
        None
    } else {
        route_keys(info, info.key_column, change, ids)
    };
    let id = match &r {
        Some(r) => Some(r.id.clone()),
        None => change
            .relation
            .column_index(info.id_column)
            .and_then(|i| cell_key(change.current_cell(i))),
    };
    let Some(id) = id else { return };
    for (sid, s) in streams.iter() {
        if s.ty != info.type_id {
            continue;
        }
        let plain = match change.kind {
            ChangeKind::Insert => StreamOp::Inserted,
            ChangeKind::Update => StreamOp::Updated,
            ChangeKind::Delete => StreamOp::Deleted,
        };
        let op = match &s.filter {
            StreamFilter::All => Some(plain),
            StreamFilter::Id(want) => (*want == id).then_some(plain),
            StreamFilter::Key(k) => {
                let Some(r) = &r else { continue };
                let in_new = r.new_key.as_ref() == Some(k);
                let in_old = r.old_keys().any(|o| o == k);
                match (in_old, in_new, change.kind) {
                    (_, true, ChangeKind::Insert) => Some(StreamOp::Inserted),
                    (true, true, _) => Some(StreamOp::Updated),
                    // Moved in from another key: new to this key's readers, with no old row
                    // (that belonged to another key).
                    (false, true, _) if r.old_key.is_some() => Some(StreamOp::MovedIn),
                    // An update whose old key is unknown (default replica identity, a row no
                    // view holds): an update with no old row.
                    (false, true, _) => Some(StreamOp::Updated),
                    // Moved out, or deleted.
                    (true, false, ChangeKind::Delete) => Some(StreamOp::Deleted),
                    (true, false, _) => Some(StreamOp::MovedOut),
                    (false, false, _) => None,
                }
            }
        };
        if let Some(op) = op {
            stream_out.push((
                *sid,
                StreamDelivery {
                    txn: txn.clone(),
                    change: ci,
                    op,
                },
            ));
        }
    }
}

/// Counts a scoped column of a type in or out of use (`delta` ±1).
fn use_column(
    columns: &mut HashMap<TypeId, Vec<(&'static str, usize)>>,
    ty: TypeId,
    column: &'static str,
    delta: isize,
) {
    let cols = columns.entry(ty).or_default();
    match cols.iter_mut().position(|(c, _)| *c == column) {
        Some(i) => {
            let n = (cols[i].1 as isize + delta).max(0) as usize;
            if n == 0 {
                cols.remove(i);
            } else {
                cols[i].1 = n;
            }
        }
        None if delta > 0 => cols.push((column, delta as usize)),
        None => {}
    }
    if cols.is_empty() {
        columns.remove(&ty);
    }
}

/// The column a view's assign `slot` is scoped by.
fn slot_column(keys: &[ScopeKey], slot: u16) -> Option<&'static str> {
    keys.iter().find(|k| k.0 == slot).map(|k| k.2)
}

fn unlink_keys(st: &mut State, view: ViewId, keys: &[ScopeKey]) {
    for (slot, ty, col, key) in keys {
        let k = (*ty, *col, key.clone());
        let Some(e) = st.by_key.get_mut(&k) else {
            continue;
        };
        e.views.retain(|(v, s)| !(*v == view && s == slot));
        if e.views.is_empty()
            && let Some(e) = st.by_key.remove(&k)
        {
            use_column(&mut st.columns, *ty, col, -1);
            for id in e.ids {
                unhold(&mut st.ids, &(*ty, *col, id), key);
            }
        }
    }
}

/// Enters the rows of replayed upserts in the id index (and drops deleted ones), under the
/// value each row now has, when this view subscribes to that value.
fn index_replayed(
    txn: &Txn,
    items: &[Item],
    keys: &[ScopeKey],
    types: &HashMap<TypeId, WatchTypeInfo>,
    by_key: &mut HashMap<IndexKey, KeyEntry>,
    ids: &mut HashMap<IndexKey, Vec<Key>>,
) {
    // Only adds: the replay brings this view to the ring's end, but other views hold rows as
    // dispatch left them, and those values must stay known.
    for item in items {
        if item.op == Op::Reload {
            continue;
        }
        let Some(change) = txn.changes.get(item.change as usize) else {
            continue;
        };
        let (Some(info), Some(col)) = (types.get(&item.ty), slot_column(keys, item.slot)) else {
            continue;
        };
        let Some(r) = route_keys(info, col, change, ids) else {
            continue;
        };
        match (item.op, &r.new_key) {
            (Op::Upsert, Some(k))
                if keys.iter().any(|(s, t, c, mk)| {
                    *s == item.slot && *t == item.ty && *c == col && mk == k
                }) =>
            {
                if let Some(e) = by_key.get_mut(&(item.ty, col, k.clone())) {
                    e.ids.insert(r.id.clone());
                }
                hold(ids, (item.ty, col, r.id.clone()), k);
            }
            _ => {}
        }
    }
}

/// The row types a transaction makes reload: those of its reload tables, or every type.
fn reload_types<'a>(
    txn: &'a Txn,
    tables: &'a HashMap<(String, String), Vec<TypeId>>,
) -> Vec<&'a Vec<TypeId>> {
    if txn.reload_all {
        return tables.values().collect();
    }
    txn.reload_tables
        .iter()
        .filter_map(|(schema, table)| tables.get(&(schema.clone(), table.clone())))
        .collect()
}

/// Routes one transaction for a single view (replay after a load).
fn route_for_view(
    txn: &Txn,
    keys: &[ScopeKey],
    held: &HashSet<(u16, Key)>,
    types: &HashMap<TypeId, WatchTypeInfo>,
    ids: &HashMap<IndexKey, Vec<Key>>,
    tables: &HashMap<(String, String), Vec<TypeId>>,
) -> Vec<Item> {
    let mut items = Vec::new();
    for tys in reload_types(txn, tables) {
        for ty in tys {
            for (slot, t, _, _) in keys {
                if t == ty && !items.iter().any(|i: &Item| i.slot == *slot) {
                    items.push(Item {
                        ty: *ty,
                        slot: *slot,
                        change: u32::MAX,
                        op: Op::Reload,
                    });
                }
            }
        }
    }
    // The view's assigns, each with its type, column and key set.
    let mut slots: Vec<(u16, TypeId, &'static str)> = Vec::new();
    for (slot, ty, col, _) in keys {
        if !slots.iter().any(|s| s.0 == *slot) {
            slots.push((*slot, *ty, col));
        }
    }
    for (ci, change) in txn.changes.iter().enumerate() {
        for (slot, ty, col) in &slots {
            let Some(info) = types.get(ty) else { continue };
            if info.schema != change.relation.schema || info.table != change.relation.name {
                continue;
            }
            let Some(r) = route_keys(info, col, change, ids) else {
                continue;
            };
            let mine = |k: &Option<Key>| {
                k.as_ref()
                    .is_some_and(|k| keys.iter().any(|(s, _, _, mk)| s == slot && mk == k))
            };
            let op = if mine(&r.new_key) {
                Some(Op::Upsert)
            } else if r.old_keys().any(|k| mine(&Some(k.clone())))
                || held.contains(&(*slot, r.id.clone()))
            {
                Some(Op::Remove)
            } else {
                None
            };
            if let Some(op) = op {
                items.push(Item {
                    ty: *ty,
                    slot: *slot,
                    change: ci as u32,
                    op,
                });
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_set_changes_touch_only_the_keys_that_changed() {
        let f = Fanout::new(FanoutLimits::default(), Arc::default());
        let mb = f.add_view();
        let ty = TypeId::of::<u8>();
        let k = |v: &str| (0u16, ty, "id", Key::from(v));
        let held = HeldRows::default();
        f.subscribe(mb.id, vec![k("1"), k("2")], &held, 0, None)
            .expect("no gap");
        f.subscribe(mb.id, vec![k("2"), k("3")], &held, 0, None)
            .expect("no gap");
        let st = f.lock();
        let entry = |v: &str| st.by_key.get(&(ty, "id", Key::from(v)));
        assert!(entry("1").is_none(), "a key that left is unlinked");
        assert_eq!(
            entry("2").map(|e| e.views.len()),
            Some(1),
            "a kept key is linked once"
        );
        assert_eq!(entry("3").map(|e| e.views.len()), Some(1));
        assert_eq!(st.columns.get(&ty), Some(&vec![("id", 2)]));
        drop(st);
        f.remove_view(mb.id);
        let st = f.lock();
        assert!(st.by_key.is_empty() && st.columns.is_empty());
    }

    use crate::__bench::BenchRow as Row;

    /// An update of row `id` to `k = key` under the default replica identity (no old row).
    fn moved(xid: u32, id: &str, key: &str) -> Txn {
        use crate::pg::pgoutput::{Cell, Column, Relation};
        use crate::replication::change::{RowChange, TxnBuilder};
        let col = |name: &str, is_key| Column {
            name: name.into(),
            type_oid: 20,
            is_key,
        };
        let rel = Arc::new(Relation {
            id: 1,
            schema: "public".into(),
            name: "bench".into(),
            replica_identity: b'd',
            columns: vec![col("id", true), col("k", false)],
        });
        let mut b = TxnBuilder::new(xid, 1 << 20);
        let row = vec![Cell::Text(id.into()), Cell::Text(key.into())];
        b.push(
            0,
            RowChange::new(rel, ChangeKind::Update, Some(row), None, false),
        );
        b.finish(u64::from(xid), 0)
    }

    fn ops(mb: &mut Mailbox) -> Vec<Op> {
        let mut out = Vec::new();
        while let Ok(d) = mb.rx.try_recv() {
            out.extend(d.items.iter().map(|i| i.op));
        }
        out
    }

    /// Regression (issue 9, found by the node failover test): a view whose mount snapshot is
    /// ahead of this node's dispatch (a node behind on the bus) holds a row under the value
    /// the snapshot saw; registering it used to overwrite the row's one indexed value, so a
    /// later move under the default identity no longer reached the view that held the row as
    /// dispatch left it, which kept it forever (a ghost row).
    #[test]
    fn a_view_ahead_of_dispatch_does_not_hide_other_holders_of_a_row() {
        let f = Fanout::new(FanoutLimits::default(), Arc::default());
        let mut types = crate::row::WatchTypes::default();
        types.add::<Row>();
        f.register_types(&types);
        let ty = TypeId::of::<Row>();
        let key = |v: &str| (0u16, ty, "k", Key::from(v));
        // C shows list 2 and holds row 12, as dispatch left it.
        let mut c = f.add_view();
        let mut held = HeldRows::default();
        held.rows.push((0, ty, Key::from("12"), Key::from("2")));
        f.subscribe(c.id, vec![key("2")], &held, 0, None)
            .expect("no gap");
        // A shows list 1; its snapshot already saw row 12 move from list 2 to list 1, a
        // transaction this node has not dispatched yet.
        let mut a = f.add_view();
        let mut held = HeldRows::default();
        held.rows.push((0, ty, Key::from("12"), Key::from("1")));
        f.subscribe(a.id, vec![key("1")], &held, 0, None)
            .expect("no gap");
        // The move arrives: C drops the row, A keeps it.
        f.dispatch(moved(10, "12", "1"));
        assert_eq!(ops(&mut c), vec![Op::Remove], "C must drop row 12");
        assert_eq!(ops(&mut a), vec![Op::Upsert]);
        // It moves on to list 3: A drops it; C is not bothered.
        f.dispatch(moved(11, "12", "3"));
        assert_eq!(ops(&mut a), vec![Op::Remove], "A must drop row 12");
        assert!(ops(&mut c).is_empty());
        // Back to list 2: C gets it again.
        f.dispatch(moved(12, "12", "2"));
        assert_eq!(ops(&mut c), vec![Op::Upsert]);
        assert!(ops(&mut a).is_empty());
    }
}
