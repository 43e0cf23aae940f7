//! Committed transactions as the listener hands them to the fan-out: row changes folded per
//! row, with each row decoded at most once per Rust type and shared between every view.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::pg::pgoutput::{Cell, Relation, Tuple, tuple_size};
use crate::pg::value::Value;
use crate::row::{DecodeError, RowData, Watch};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
}

/// A decoded row, shared between views (`Arc<T>` behind `dyn Any`).
pub(crate) type SharedRow = Arc<dyn Any + Send + Sync>;

/// Why a row could not be decoded once for everybody.
#[derive(Debug, Clone)]
pub(crate) enum DecodeFailure {
    /// An unchanged TOAST column has no known value: each view decodes it on top of the row it
    /// already holds.
    NeedsBase,
    /// The row does not decode into the Rust type.
    Error(Arc<DecodeError>),
}

/// One row change in a committed transaction, after folding.
pub(crate) struct RowChange {
    /// The table, as the last Relation message described it.
    pub relation: Arc<Relation>,
    /// Insert, update or delete.
    pub kind: ChangeKind,
    /// The new row version (inserts and updates).
    pub new: Option<Tuple>,
    /// The old key columns or old row, when the server sent them.
    pub old: Option<Tuple>,
    /// Whether `old` is a whole row (`REPLICA IDENTITY FULL`).
    pub old_is_full: bool,
    decoded: Mutex<Vec<(TypeId, Result<SharedRow, DecodeFailure>)>>,
}

impl std::fmt::Debug for RowChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowChange")
            .field("table", &self.relation.name)
            .field("kind", &self.kind)
            .field("new", &self.new)
            .field("old", &self.old)
            .finish()
    }
}

impl RowChange {
    pub(crate) fn new(
        relation: Arc<Relation>,
        kind: ChangeKind,
        new: Option<Tuple>,
        old: Option<Tuple>,
        old_is_full: bool,
    ) -> Self {
        RowChange {
            relation,
            kind,
            new,
            old,
            old_is_full,
            decoded: Mutex::new(Vec::new()),
        }
    }

    /// The cell of column `idx` in the newest row version that has it as text or null.
    pub(crate) fn current_cell(&self, idx: usize) -> Option<&Cell> {
        let from_new = self.new.as_ref().and_then(|t| t.get(idx));
        match from_new {
            Some(Cell::Unchanged) | None => self.old.as_ref().and_then(|t| t.get(idx)),
            some => some,
        }
    }

    /// The text of column `idx` in the old tuple, if the server sent it.
    pub(crate) fn old_text(&self, idx: usize) -> Option<&str> {
        self.old
            .as_ref()
            .and_then(|t| t.get(idx))
            .and_then(Cell::text)
    }

    /// Decodes a value of column `col` from the newest version of the row.
    pub(crate) fn decode_column<V: serde::de::DeserializeOwned>(
        &self,
        col: &str,
    ) -> Result<V, DecodeError> {
        let idx = self
            .relation
            .column_index(col)
            .ok_or_else(|| DecodeError::missing_column(&self.relation.name, col))?;
        let text = self.current_cell(idx).and_then(Cell::text);
        Value {
            oid: self.relation.columns[idx].type_oid,
            text,
        }
        .decode()
        .map_err(|e| DecodeError::value(&self.relation.name, col, e))
    }

    /// The new row decoded into `T`, decoded once and shared by every caller.
    pub(crate) fn decoded<T: Watch>(&self) -> Result<Arc<T>, DecodeFailure> {
        let ty = TypeId::of::<T>();
        let mut cache = match self.decoded.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, r)) = cache.iter().find(|(t, _)| *t == ty) {
            return r.clone().map(|row| downcast(row));
        }
        let result = self.decode_with_base::<T>(None).map(|row| {
            // One Arc per row version on the node: an equal version a view loaded is reused.
            let shared: SharedRow = crate::row::shared::share::<T>(row);
            shared
        });
        cache.push((ty, result.clone()));
        result.map(downcast)
    }

    /// Decodes the new row into `T`, filling unchanged TOAST columns from `base`.
    pub(crate) fn decode_with_base<T: Watch>(
        &self,
        base: Option<&T>,
    ) -> Result<Arc<T>, DecodeFailure> {
        let Some(new) = &self.new else {
            return Err(DecodeFailure::Error(Arc::new(DecodeError::other(
                &self.relation.name,
                "a delete has no new row",
            ))));
        };
        let row = RowData {
            relation: &self.relation,
            cells: new,
            old: if self.old_is_full {
                self.old.as_ref()
            } else {
                None
            },
        };
        match T::decode(&row, base) {
            Ok(v) => Ok(Arc::new(v)),
            Err(e) if e.is_unchanged_toast() && base.is_none() => Err(DecodeFailure::NeedsBase),
            Err(e) => Err(DecodeFailure::Error(Arc::new(e))),
        }
    }

    /// The whole old row decoded into `T`, when the server sent it (`REPLICA IDENTITY FULL`).
    pub(crate) fn decode_old<T: Watch>(&self) -> Option<Result<T, DecodeError>> {
        let old = self.old.as_ref().filter(|_| self.old_is_full)?;
        let row = RowData {
            relation: &self.relation,
            cells: old,
            old: None,
        };
        Some(T::decode(&row, None))
    }

    /// Approximate memory the change holds: its tuples, and the row views decode from the
    /// new tuple (about the new tuple's size), so that the ring's byte cap is real memory.
    fn size(&self) -> usize {
        2 * self.new.as_ref().map_or(0, tuple_size) + self.old.as_ref().map_or(0, tuple_size) + 96
    }
}

fn downcast<T: Send + Sync + 'static>(row: SharedRow) -> Arc<T> {
    match row.downcast::<T>() {
        Ok(r) => r,
        // The cache is keyed by TypeId, so the type always matches.
        Err(_) => unreachable!("decoded row cache holds a row of another type"),
    }
}

/// A committed transaction, folded.
#[derive(Debug)]
pub(crate) struct Txn {
    /// The transaction id from the Begin message.
    pub xid: u32,
    /// The end LSN of the commit record.
    pub end_lsn: u64,
    /// Commit time, microseconds since 2000-01-01.
    pub commit_time_micros: i64,
    /// Row changes, one per row (folded), in first-touch order.
    pub changes: Vec<RowChange>,
    /// Tables (`schema.name`) whose views must reload: truncated, altered, or over the buffer cap.
    pub reload_tables: Vec<(String, String)>,
    /// Every view of every watched table must reload: a message of this transaction could not
    /// be decoded or routed.
    pub reload_all: bool,
    /// The fan-out's sequence number (set when dispatched).
    pub seq: u64,
    /// Approximate memory held by the changes.
    pub(crate) bytes: usize,
}

/// Builds one transaction between Begin and Commit, folding changes to the same row.
pub(crate) struct TxnBuilder {
    xid: u32,
    mark: Option<TxnMark>,
    changes: Vec<Option<RowChange>>,
    index: HashMap<(u32, Box<str>), usize>,
    reload_tables: Vec<(String, String)>,
    reload_all: bool,
    bytes: usize,
    cap: usize,
    over_cap: bool,
}

/// How the builder finds a row's id: the id column index for a relation, if watched.
pub(crate) type IdColumn = usize;

impl TxnBuilder {
    pub(crate) fn new(xid: u32, cap: usize) -> Self {
        TxnBuilder {
            xid,
            mark: None,
            changes: Vec::new(),
            index: HashMap::new(),
            reload_tables: Vec::new(),
            reload_all: false,
            bytes: 0,
            cap,
            over_cap: false,
        }
    }

    /// The transaction marked itself (`live_core::mark_transaction`).
    pub(crate) fn mark(&mut self, mark: TxnMark) {
        // Quiet wins over reload: the app said the changes are invisible.
        if self.mark != Some(TxnMark::Quiet) {
            self.mark = Some(mark);
        }
    }

    /// Whether the transaction asked to reach no view.
    pub(crate) fn is_quiet(&self) -> bool {
        self.mark == Some(TxnMark::Quiet)
    }

    /// Marks the transaction as one every view must reload for.
    pub(crate) fn reload_all(&mut self) {
        self.reload_all = true;
    }

    pub(crate) fn reload(&mut self, rel: &Relation) {
        let t = (rel.schema.clone(), rel.name.clone());
        if !self.reload_tables.contains(&t) {
            self.reload_tables.push(t);
        }
    }

    /// Adds a change. `id_col` is the id column of the relation's watched type.
    pub(crate) fn push(&mut self, id_col: IdColumn, change: RowChange) {
        if self.over_cap {
            self.reload(&change.relation);
            return;
        }
        self.bytes += change.size();
        if self.bytes > self.cap {
            // Too big to buffer: drop the rows and reload every view of the tables touched.
            tracing::warn!(
                xid = self.xid,
                cap = self.cap,
                "transaction over the buffer cap; affected views will reload"
            );
            self.over_cap = true;
            let rels: Vec<Arc<Relation>> = self
                .changes
                .iter()
                .flatten()
                .map(|c| c.relation.clone())
                .chain(std::iter::once(change.relation.clone()))
                .collect();
            for r in rels {
                self.reload(&r);
            }
            self.changes.clear();
            self.index.clear();
            return;
        }
        let rel_id = change.relation.id;
        let new_id: Option<Box<str>> = change
            .new
            .as_ref()
            .and_then(|t| t.get(id_col))
            .and_then(Cell::text)
            .map(Box::from);
        let old_id: Option<Box<str>> = change
            .old
            .as_ref()
            .and_then(|t| t.get(id_col))
            .and_then(Cell::text)
            .map(Box::from);
        // A primary key change is a delete of the old id and an insert of the new one.
        if change.kind == ChangeKind::Update
            && let (Some(o), Some(n)) = (&old_id, &new_id)
            && o != n
        {
            let (o, n) = (o.clone(), n.clone());
            let del = RowChange::new(
                change.relation.clone(),
                ChangeKind::Delete,
                None,
                change.old.clone(),
                change.old_is_full,
            );
            self.fold((rel_id, o), del);
            let ins = RowChange::new(
                change.relation.clone(),
                ChangeKind::Insert,
                change.new,
                None,
                false,
            );
            self.fold((rel_id, n), ins);
            return;
        }
        let Some(id) = new_id.or(old_id) else {
            // No id to fold by (should not happen for a watched table): keep it as is.
            self.changes.push(Some(change));
            return;
        };
        self.fold((rel_id, id), change);
    }

    fn fold(&mut self, key: (u32, Box<str>), change: RowChange) {
        let Some(&i) = self.index.get(&key) else {
            self.index.insert(key, self.changes.len());
            self.changes.push(Some(change));
            return;
        };
        let Some(prev) = self.changes[i].take() else {
            // The row was folded away (insert + delete); it starts again.
            self.changes[i] = Some(change);
            return;
        };
        use ChangeKind::*;
        let folded = match (prev.kind, change.kind) {
            // insert + update = insert with the final values
            (Insert, Update) => Some(RowChange::new(
                change.relation,
                Insert,
                Some(merge_unchanged(change.new, prev.new.as_ref())),
                None,
                false,
            )),
            // insert + delete = nothing
            (Insert, Delete) => None,
            // update + update = update from the first old to the last new
            (Update, Update) => Some(RowChange::new(
                change.relation,
                Update,
                Some(merge_unchanged(change.new, prev.new.as_ref())),
                prev.old.or(change.old),
                prev.old_is_full || change.old_is_full,
            )),
            // update + delete = delete of the first old row
            (Update, Delete) => Some(RowChange::new(
                change.relation,
                Delete,
                None,
                prev.old.or(change.old),
                prev.old_is_full || change.old_is_full,
            )),
            // delete + insert = update
            (Delete, Insert) => Some(RowChange::new(
                change.relation,
                Update,
                change.new,
                prev.old,
                prev.old_is_full,
            )),
            // Anything else (insert twice, update after delete) cannot happen within one
            // transaction for one id; keep the later change.
            _ => Some(change),
        };
        self.changes[i] = folded;
    }

    pub(crate) fn finish(mut self, end_lsn: u64, commit_time_micros: i64) -> Txn {
        if self.mark == Some(TxnMark::Reload) {
            // A bulk transaction: its rows reach views as one reload of the tables touched.
            let rels: Vec<Arc<Relation>> = self
                .changes
                .iter()
                .flatten()
                .map(|c| c.relation.clone())
                .collect();
            for r in rels {
                self.reload(&r);
            }
            self.changes.clear();
        }
        Txn {
            xid: self.xid,
            end_lsn,
            commit_time_micros,
            changes: self.changes.into_iter().flatten().collect(),
            reload_tables: self.reload_tables,
            reload_all: self.reload_all,
            seq: 0,
            bytes: self.bytes,
        }
    }
}

/// How a transaction asks to reach views: see [`mark_transaction`](crate::mark_transaction).
///
/// ```no_run
/// use live_core::{TxnMark, mark_transaction};
///
/// # async fn f(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// // A view counter no page shows: no view needs to hear of it.
/// let mut tx = pool.begin().await?;
/// mark_transaction(&mut tx, TxnMark::Quiet).await?;
/// sqlx::query("UPDATE todos SET views = views + 1 WHERE id = $1").bind(7_i64).execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnMark {
    /// Its changes reach views as one reload of the tables it touched, not row by row: for
    /// backfills and maintenance jobs that touch many rows.
    Reload,
    /// Its changes reach no view (nor change stream): for changes the app knows are invisible
    /// (a column no view shows, a denormalized counter). Views see them at their next reload.
    Quiet,
}

impl TxnMark {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TxnMark::Reload => "reload",
            TxnMark::Quiet => "quiet",
        }
    }
}

/// Marks the current transaction on `conn` (call it inside the transaction): writes
/// `pg_logical_emit_message(true, 'live', 'reload' | 'quiet')`, which the listener reads with
/// the transaction's changes.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use live_core::{TxnMark, mark_transaction};
/// let mut tx = pool.begin().await?;
/// mark_transaction(&mut tx, TxnMark::Reload).await?; // a backfill: one reload, not 100k patches
/// sqlx::query("UPDATE todos SET title = lower(title)").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn mark_transaction(
    conn: &mut sqlx::PgConnection,
    mark: TxnMark,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_logical_emit_message(true, 'live', $1)")
        .bind(mark.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Fills unchanged TOAST cells of `new` from an earlier version of the row in the same
/// transaction.
fn merge_unchanged(new: Option<Tuple>, earlier: Option<&Tuple>) -> Tuple {
    let mut new = new.unwrap_or_default();
    if let Some(earlier) = earlier {
        for (i, cell) in new.iter_mut().enumerate() {
            if *cell == Cell::Unchanged
                && let Some(e) = earlier.get(i)
                && *e != Cell::Unchanged
            {
                *cell = e.clone();
            }
        }
    }
    new
}

/// Fills unchanged TOAST cells of a new tuple from a full old tuple.
pub(crate) fn fill_unchanged_from_old(new: &mut Tuple, old: Option<&Tuple>, old_is_full: bool) {
    if !old_is_full {
        return;
    }
    if let Some(old) = old {
        for (i, cell) in new.iter_mut().enumerate() {
            if *cell == Cell::Unchanged
                && let Some(o @ Cell::Text(_)) = old.get(i)
            {
                *cell = o.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pgoutput::Column;
    use super::*;

    fn rel() -> Arc<Relation> {
        Arc::new(Relation {
            id: 1,
            schema: "public".into(),
            name: "t".into(),
            replica_identity: b'd',
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 20,
                    is_key: true,
                },
                Column {
                    name: "v".into(),
                    type_oid: 25,
                    is_key: false,
                },
            ],
        })
    }

    fn tup(id: &str, v: &str) -> Tuple {
        vec![Cell::Text(id.into()), Cell::Text(v.into())]
    }

    fn b() -> TxnBuilder {
        TxnBuilder::new(7, 1 << 20)
    }

    #[test]
    fn insert_then_update_is_insert_with_final_values() {
        let mut t = b();
        t.push(
            0,
            RowChange::new(rel(), ChangeKind::Insert, Some(tup("1", "a")), None, false),
        );
        t.push(
            0,
            RowChange::new(
                rel(),
                ChangeKind::Update,
                Some(vec![Cell::Text("1".into()), Cell::Unchanged]),
                None,
                false,
            ),
        );
        t.push(
            0,
            RowChange::new(rel(), ChangeKind::Update, Some(tup("1", "c")), None, false),
        );
        let txn = t.finish(10, 0);
        assert_eq!(txn.changes.len(), 1);
        assert_eq!(txn.changes[0].kind, ChangeKind::Insert);
        assert_eq!(txn.changes[0].new.as_ref().unwrap(), &tup("1", "c"));
    }

    #[test]
    fn insert_then_delete_is_nothing_and_unchanged_is_merged() {
        let mut t = b();
        t.push(
            0,
            RowChange::new(rel(), ChangeKind::Insert, Some(tup("1", "a")), None, false),
        );
        t.push(
            0,
            RowChange::new(
                rel(),
                ChangeKind::Delete,
                None,
                Some(vec![Cell::Text("1".into()), Cell::Null]),
                false,
            ),
        );
        t.push(
            0,
            RowChange::new(
                rel(),
                ChangeKind::Insert,
                Some(tup("2", "big")),
                None,
                false,
            ),
        );
        t.push(
            0,
            RowChange::new(
                rel(),
                ChangeKind::Update,
                Some(vec![Cell::Text("2".into()), Cell::Unchanged]),
                None,
                false,
            ),
        );
        let txn = t.finish(10, 0);
        assert_eq!(txn.changes.len(), 1);
        assert_eq!(txn.changes[0].new.as_ref().unwrap(), &tup("2", "big"));
    }

    #[test]
    fn key_change_splits_and_delete_insert_is_update() {
        let mut t = b();
        t.push(
            0,
            RowChange::new(
                rel(),
                ChangeKind::Update,
                Some(tup("2", "x")),
                Some(tup("1", "x")),
                true,
            ),
        );
        let txn = t.finish(10, 0);
        let kinds: Vec<_> = txn.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::Delete, ChangeKind::Insert]);

        let mut t = b();
        t.push(
            0,
            RowChange::new(rel(), ChangeKind::Delete, None, Some(tup("1", "x")), true),
        );
        t.push(
            0,
            RowChange::new(rel(), ChangeKind::Insert, Some(tup("1", "y")), None, false),
        );
        let txn = t.finish(10, 0);
        assert_eq!(txn.changes.len(), 1);
        assert_eq!(txn.changes[0].kind, ChangeKind::Update);
    }

    #[test]
    fn over_cap_reloads_instead() {
        let mut t = TxnBuilder::new(1, 300);
        for i in 0..10 {
            t.push(
                0,
                RowChange::new(
                    rel(),
                    ChangeKind::Insert,
                    Some(tup(&i.to_string(), "v")),
                    None,
                    false,
                ),
            );
        }
        let txn = t.finish(1, 0);
        assert!(txn.changes.is_empty());
        assert_eq!(
            txn.reload_tables,
            vec![("public".to_string(), "t".to_string())]
        );
    }
}
