//! Hands out one `Arc` per row version on this node: the rows views load and the rows
//! replication decodes are looked up by (type, id) and replaced by an equal version already
//! held elsewhere. Memory then grows with distinct data, not with viewers.
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{Key, KeyValue, Watch};

type Entry = Weak<dyn Any + Send + Sync>;

struct Rows {
    map: HashMap<(TypeId, Key), Entry>,
    sweep_at: usize,
}

static ROWS: Mutex<Option<Rows>> = Mutex::new(None);

/// The node's `Arc` of this row version: an equal one already held, or `row` itself.
pub(crate) fn share<T: Watch>(row: Arc<T>) -> Arc<T> {
    let Some(id) = row.id().to_key() else {
        return row;
    };
    let key = (TypeId::of::<T>(), id);
    let mut guard = ROWS.lock().unwrap_or_else(|p| p.into_inner());
    let rows = guard.get_or_insert_with(|| Rows {
        map: HashMap::new(),
        sweep_at: 1024,
    });
    if let Some(held) = rows.map.get(&key).and_then(Weak::upgrade)
        && let Ok(held) = held.downcast::<T>()
        && (Arc::ptr_eq(&held, &row) || held.same_row(&row))
    {
        return held;
    }
    let erased: Arc<dyn Any + Send + Sync> = row.clone();
    rows.map.insert(key, Arc::downgrade(&erased));
    if rows.map.len() >= rows.sweep_at {
        rows.map.retain(|_, w| w.strong_count() > 0);
        rows.sweep_at = (rows.map.len() * 2).max(1024);
    }
    row
}

/// How many holders the node's `Arc` of row `id` of `T` has (0: none held).
#[cfg(feature = "testing")]
pub(crate) fn holders<T: Watch>(id: &Key) -> usize {
    let guard = ROWS.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .and_then(|r| r.map.get(&(TypeId::of::<T>(), id.clone())))
        .map_or(0, Weak::strong_count)
}
