//! The node's registry of watched row types: which tables are watched, by which Rust types,
//! with which id column. Views register their types when their route is mounted; the applier
//! reads it for every replicated row and the fan-out for every transaction (a read lock, never
//! the fan-out's own mutex).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard};

use super::{WatchTypeInfo, WatchTypes};

/// Row types by type and by table.
#[derive(Default, Debug)]
pub(crate) struct Types {
    pub(crate) by_type: HashMap<TypeId, WatchTypeInfo>,
    pub(crate) by_table: HashMap<(String, String), Vec<TypeId>>,
}

impl Types {
    /// The id column of a watched table (`None`: no type watches it).
    pub(crate) fn id_column(&self, schema: &str, table: &str) -> Option<&'static str> {
        let tys = self
            .by_table
            .get(&(schema.to_string(), table.to_string()))?;
        tys.first()
            .and_then(|t| self.by_type.get(t))
            .map(|i| i.id_column)
    }
}

/// The registry, shared by the node's applier, fan-out and views.
#[derive(Default, Debug)]
pub(crate) struct Registry {
    types: RwLock<Types>,
}

impl Registry {
    /// Registers row types (idempotent).
    pub(crate) fn add(&self, types: &WatchTypes) {
        let mut t = self.types.write().unwrap_or_else(|p| p.into_inner());
        for info in &types.types {
            if t.by_type.contains_key(&info.type_id) {
                continue;
            }
            t.by_type.insert(info.type_id, info.clone());
            t.by_table
                .entry((info.schema.to_string(), info.table.to_string()))
                .or_default()
                .push(info.type_id);
        }
    }

    /// Reads the registry.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Types> {
        self.types.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Every registered row type.
    pub(crate) fn all(&self) -> Vec<WatchTypeInfo> {
        self.read().by_type.values().cloned().collect()
    }
}
