//! Patching watched assigns: the scopes the assigns state (which rows of which type each
//! receives), and applying a view's delivered changes to them (filters, move-in and move-out).
//! The items here are derive plumbing, reached only through `live_core::__private`.

use std::any::TypeId;
use std::sync::Arc;

use super::assign::WatchedAssign;
use crate::fanout::{Delivery, Op};
use crate::replication::change::DecodeFailure;
use crate::row::{ALL_ROWS, DecodeError, Key, Watch};

/// One watched assign's scope: the rows of `ty` whose `column` holds one of `keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    /// Which watched assign of the view (its index).
    pub slot: u16,
    pub ty: TypeId,
    pub column: &'static str,
    /// Sorted, without duplicates; empty: no rows right now.
    pub keys: Vec<Key>,
}

/// The scopes of a view's watched assigns, as `#[derive(Assigns)]` states them (from the
/// assigns: server-side values only).
#[derive(Default, Debug)]
pub struct Scopes {
    pub(crate) list: Vec<Scope>,
}

impl Scopes {
    /// Assign `slot` holds the rows of `T` whose `column` equals `key` (`None`: no rows).
    pub fn key<T: Watch>(&mut self, slot: u16, column: &'static str, key: Option<Key>) {
        self.keys::<T>(slot, column, [key]);
    }

    /// Assign `slot` holds the rows of `T` whose `column` is one of `keys`.
    pub fn keys<T: Watch>(
        &mut self,
        slot: u16,
        column: &'static str,
        keys: impl IntoIterator<Item = Option<Key>>,
    ) {
        let mut keys: Vec<Key> = keys.into_iter().flatten().collect();
        keys.sort();
        keys.dedup();
        self.list.push(Scope {
            slot,
            ty: TypeId::of::<T>(),
            column,
            keys,
        });
    }

    /// Assign `slot` holds every row of `T`'s table.
    pub fn all<T: Watch>(&mut self, slot: u16) {
        self.list.push(Scope {
            slot,
            ty: TypeId::of::<T>(),
            column: ALL_ROWS,
            keys: vec![Key::from(ALL_ROWS)],
        });
    }
}

/// Changes delivered to one view since it last rendered.
#[derive(Default)]
pub struct ChangeBatch {
    pub(crate) deliveries: Vec<Delivery>,
}

impl std::fmt::Debug for ChangeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBatch")
            .field("transactions", &self.deliveries.len())
            .finish()
    }
}

impl ChangeBatch {
    /// Whether the batch has no changes.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

/// Why changes could not be applied to the assigns; the view reloads.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A row did not decode.
    #[error(transparent)]
    Decode(Arc<DecodeError>),
    /// The table was truncated or altered, or the view fell behind.
    #[error("the view must reload")]
    Reload,
    /// A `sync` hook failed.
    #[error("sync hook: {0}")]
    Hook(#[from] crate::ViewError),
}

/// Applies the changes in `batch` for the row type of `assign`; true if it changed. Called by
/// the code `#[derive(Assigns)]` writes.
pub fn apply_changes<A: WatchedAssign>(
    assign: &mut A,
    batch: &ChangeBatch,
    slot: u16,
    filter: Option<fn(&A::Row) -> bool>,
) -> Result<bool, ApplyError> {
    let ty = TypeId::of::<A::Row>();
    let mut changed = false;
    for d in &batch.deliveries {
        for item in d.items.iter().filter(|i| i.ty == ty && i.slot == slot) {
            if item.op == Op::Reload {
                return Err(ApplyError::Reload);
            }
            let Some(change) = d.txn.changes.get(item.change as usize) else {
                continue;
            };
            match item.op {
                Op::Reload => return Err(ApplyError::Reload),
                Op::Upsert => {
                    let row = match change.decoded::<A::Row>() {
                        Ok(row) => row,
                        Err(DecodeFailure::NeedsBase) => {
                            let id: <A::Row as Watch>::Id = change
                                .decode_column(<A::Row as Watch>::ID_COLUMN)
                                .map_err(|e| ApplyError::Decode(Arc::new(e)))?;
                            let base = assign.get(&id);
                            match change.decode_with_base(base) {
                                Ok(row) => row,
                                Err(DecodeFailure::Error(e)) => return Err(ApplyError::Decode(e)),
                                Err(DecodeFailure::NeedsBase) => {
                                    // Not held and not fully sent: only a reload can get it.
                                    return Err(ApplyError::Reload);
                                }
                            }
                        }
                        Err(DecodeFailure::Error(e)) => return Err(ApplyError::Decode(e)),
                    };
                    match filter {
                        // A row that stops matching the filter leaves (move out); one that
                        // starts matching enters (move in). The old row is the one held.
                        Some(keep) if !keep(&row) => changed |= assign.remove(row.id()),
                        _ => changed |= assign.upsert(row),
                    }
                }
                Op::Remove => {
                    let id: <A::Row as Watch>::Id = change
                        .decode_column(<A::Row as Watch>::ID_COLUMN)
                        .map_err(|e| ApplyError::Decode(Arc::new(e)))?;
                    changed |= assign.remove(&id);
                }
            }
        }
    }
    Ok(changed)
}
