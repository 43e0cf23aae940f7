//! The shapes a watched assign can take, and how a change patches each.

use std::sync::Arc;

use crate::row::{HeldRows, Watch, shared};

/// An assign that holds watched rows: a list (`Vec<Arc<T>>`, `Vec<T>`) or a single row
/// (`Option<Arc<T>>`, `Option<T>`, `Arc<T>`), where `T: Watch`.
///
/// Lists take updates by id, inserts (appended; order them in a `sync` hook) and deletes.
/// Single rows take updates of their own id; a deleted row empties an `Option` and is kept
/// (with a log line) by `Arc<T>`. Prefer `Vec<Arc<T>>`: rows are then shared with every
/// other view that holds them, and the keyed list helper re-renders only the rows that changed.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Watch, __private::WatchedAssign};
/// #[derive(Watch, Clone)]
/// #[watch(table = "items", subscription_key = "owner")]
/// struct Item { id: i32, owner: i32, name: String }
///
/// let mut items: Vec<Arc<Item>> = vec![];
/// assert!(items.upsert(Arc::new(Item { id: 1, owner: 7, name: "a".into() })));
/// assert!(items.upsert(Arc::new(Item { id: 1, owner: 7, name: "b".into() })));
/// assert_eq!(items.len(), 1);
/// assert_eq!(items[0].name, "b");
/// assert!(WatchedAssign::remove(&mut items, &1)); // (`Vec::remove` would take an index)
/// assert!(items.is_empty());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a watched assign",
    label = "not a list or single row of a `#[derive(Watch)]` type",
    note = "a #[watch] field is a `Vec<Arc<T>>`, `Vec<T>`, `Option<Arc<T>>`, `Option<T>` or `Arc<T>` where `T: Watch`"
)]
pub trait WatchedAssign: Clone + Send + Sync + 'static {
    /// The row type.
    type Row: Watch;

    /// Inserts or updates a row; true if the assign changed.
    fn upsert(&mut self, row: Arc<Self::Row>) -> bool;

    /// Removes the row with this id; true if the assign changed.
    fn remove(&mut self, id: &<Self::Row as Watch>::Id) -> bool;

    /// The row with this id, if held.
    fn get(&self, id: &<Self::Row as Watch>::Id) -> Option<&Self::Row>;

    /// Records every held row (for routing deletes by primary key).
    fn held(&self, out: &mut HeldRows);

    /// How many rows the assign holds.
    fn count(&self) -> usize;

    /// Replaces each held `Arc` by the node's shared one for an equal row version, so that
    /// views of the same rows hold one copy (shapes that hold rows without an `Arc` keep
    /// their own).
    fn share(&mut self) {}
}

impl<T: Watch> WatchedAssign for Vec<Arc<T>> {
    type Row = T;

    fn upsert(&mut self, row: Arc<T>) -> bool {
        match self.iter_mut().find(|r| r.id() == row.id()) {
            Some(slot) => {
                if Arc::ptr_eq(slot, &row) {
                    return false;
                }
                *slot = row;
            }
            None => self.push(row),
        }
        true
    }

    fn remove(&mut self, id: &T::Id) -> bool {
        let before = self.len();
        self.retain(|r| r.id() != id);
        self.len() != before
    }

    fn get(&self, id: &T::Id) -> Option<&T> {
        self.iter().find(|r| r.id() == id).map(|r| &**r)
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn held(&self, out: &mut HeldRows) {
        for r in self {
            out.push(&**r);
        }
    }

    fn share(&mut self) {
        for r in self.iter_mut() {
            *r = shared::share(r.clone());
        }
    }
}

impl<T: Watch + Clone> WatchedAssign for Vec<T> {
    type Row = T;

    fn upsert(&mut self, row: Arc<T>) -> bool {
        let row = Arc::unwrap_or_clone(row);
        match self.iter_mut().find(|r| r.id() == row.id()) {
            Some(slot) => *slot = row,
            None => self.push(row),
        }
        true
    }

    fn remove(&mut self, id: &T::Id) -> bool {
        let before = self.len();
        self.retain(|r| r.id() != id);
        self.len() != before
    }

    fn get(&self, id: &T::Id) -> Option<&T> {
        self.iter().find(|r| r.id() == id)
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn held(&self, out: &mut HeldRows) {
        for r in self {
            out.push(r);
        }
    }
}

impl<T: Watch> WatchedAssign for Option<Arc<T>> {
    type Row = T;

    fn upsert(&mut self, row: Arc<T>) -> bool {
        match self {
            Some(cur) if cur.id() == row.id() && !Arc::ptr_eq(cur, &row) => {
                *cur = row;
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, id: &T::Id) -> bool {
        if self.as_ref().is_some_and(|r| r.id() == id) {
            *self = None;
            true
        } else {
            false
        }
    }

    fn get(&self, id: &T::Id) -> Option<&T> {
        self.as_deref().filter(|r| r.id() == id)
    }

    fn count(&self) -> usize {
        usize::from(self.is_some())
    }

    fn held(&self, out: &mut HeldRows) {
        if let Some(r) = self {
            out.push(&**r);
        }
    }

    fn share(&mut self) {
        if let Some(r) = self {
            *r = shared::share(r.clone());
        }
    }
}

impl<T: Watch + Clone> WatchedAssign for Option<T> {
    type Row = T;

    fn upsert(&mut self, row: Arc<T>) -> bool {
        match self {
            Some(cur) if cur.id() == row.id() => {
                *cur = Arc::unwrap_or_clone(row);
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, id: &T::Id) -> bool {
        if self.as_ref().is_some_and(|r| r.id() == id) {
            *self = None;
            true
        } else {
            false
        }
    }

    fn get(&self, id: &T::Id) -> Option<&T> {
        self.as_ref().filter(|r| r.id() == id)
    }

    fn count(&self) -> usize {
        usize::from(self.is_some())
    }

    fn held(&self, out: &mut HeldRows) {
        if let Some(r) = self {
            out.push(r);
        }
    }
}

impl<T: Watch> WatchedAssign for Arc<T> {
    type Row = T;

    fn upsert(&mut self, row: Arc<T>) -> bool {
        if self.id() == row.id() && !Arc::ptr_eq(self, &row) {
            *self = row;
            true
        } else {
            false
        }
    }

    fn remove(&mut self, id: &T::Id) -> bool {
        if self.id() == id {
            tracing::info!(
                table = T::TABLE,
                "a row held as a plain assign was deleted; it stays (use Option<_> to see deletes)"
            );
        }
        false
    }

    fn get(&self, id: &T::Id) -> Option<&T> {
        (self.id() == id).then_some(&**self)
    }

    fn count(&self) -> usize {
        1
    }

    fn held(&self, out: &mut HeldRows) {
        out.push(&**self);
    }

    fn share(&mut self) {
        *self = shared::share(self.clone());
    }
}
