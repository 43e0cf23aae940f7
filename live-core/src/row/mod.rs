//! Row types: the [`Watch`] trait (`#[derive(Watch)]`), decoding a replicated row into one,
//! the keys rows are routed by, and the node's registry of watched types.
//!
//! A row type names its table, its id column and (optionally) its default **subscription
//! key** column:
//!
//! ```
//! use live_core::Watch;
//!
//! #[derive(Watch, Clone, Debug)]
//! #[watch(table = "todos", subscription_key = "list_id")] // id = "id" by default
//! struct Todo {
//!     id: i64,
//!     list_id: i64,
//!     title: String,
//!     completed: bool,
//! }
//! assert_eq!(<Todo as Watch>::TABLE, "todos");
//! assert_eq!(<Todo as Watch>::KEY_COLUMN, "list_id");
//! ```

mod key;
mod registry;
pub(crate) mod shared;

use std::any::TypeId;
use std::fmt;

pub use key::{Key, KeyValue};
pub(crate) use registry::Registry;

use crate::pg::pgoutput::{Cell, Relation, Tuple};
use crate::pg::value::{Value, ValueError};

/// A row type kept in sync with a Postgres table. Derive it with `#[derive(Watch)]`:
///
/// - `#[watch(table = "todos")]` the table (`"schema.table"` for another schema than `public`);
/// - `#[watch(subscription_key = "list_id")]` the column that scopes rows to a list, tenant or
///   user; a view only receives rows whose key equals its own;
/// - `#[watch(id = "id")]` the primary key column (default `id`);
/// - on a field, `#[watch(rename = "column")]` reads another column, and `#[watch(skip)]`
///   leaves a field out of decoding (it keeps the value the view holds, or `Default`).
///
/// Every other field is read from the column of the same name, in Postgres' text format, through
/// serde (`i64`, `String`, `bool`, `f64`, `Option<_>` for nullable columns, `Vec<_>` for arrays,
/// `serde_json::Value` or any `Deserialize` type for json, chrono/time types, `uuid::Uuid`,
/// `rust_decimal::Decimal`, and enums with `#[serde(rename_all = "lowercase")]` for Postgres
/// enums).
///
/// ```
/// use live_core::{Key, Watch};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String }
///
/// let todo = Todo { id: 7, list_id: 2, title: "milk".into() };
/// assert_eq!(*todo.id(), 7);
/// assert_eq!(todo.subscription_key(), Some(Key::from("2")));
///
/// // Code that works with any row type:
/// fn describe<T: Watch>(row: &T) -> String {
///     format!("{} #{:?}", T::TABLE, row.id())
/// }
/// assert_eq!(describe(&todo), "todos #7");
/// ```
pub trait Watch: Sized + Send + Sync + 'static {
    /// The table: `"todos"` or `"schema.todos"`.
    const TABLE: &'static str;
    /// The primary key column.
    const ID_COLUMN: &'static str;
    /// The subscription key column.
    const KEY_COLUMN: &'static str;
    /// Every column decoding reads (checked against the table when the listener starts).
    const COLUMNS: &'static [&'static str];

    /// The type of the id field.
    type Id: KeyValue + PartialEq + serde::de::DeserializeOwned + Clone + Send + Sync + fmt::Debug;

    /// The row's id.
    fn id(&self) -> &Self::Id;

    /// The row's subscription key (`None` for `NULL`).
    fn subscription_key(&self) -> Option<Key>;

    /// Decodes a replicated row. `base` is the version the view holds, used for columns the
    /// server did not resend (unchanged TOAST values) and for `#[watch(skip)]` fields.
    fn decode(row: &RowData<'_>, base: Option<&Self>) -> Result<Self, DecodeError>;

    /// Whether two versions of the row hold the same values. Views of the same rows on one
    /// node then share one `Arc` per row version (`#[derive(Watch)]` compares every field
    /// whose type is `PartialEq`; the default never shares).
    fn same_row(&self, _other: &Self) -> bool {
        false
    }

    /// The key text of column `column` (`None`: NULL, no such column, or a column whose type
    /// cannot scope rows). `#[derive(Watch)]` writes it.
    fn column_key(&self, _column: &str) -> Option<Key> {
        None
    }
}

/// Compares one field of two row versions (derive plumbing: [`SameByEq`] when the field is
/// `PartialEq`, else [`SameNever`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct SameField<'a, F>(pub &'a F, pub &'a F);

/// Field comparison through `PartialEq` (derive plumbing).
#[doc(hidden)]
pub trait SameByEq {
    /// Whether the two values are equal.
    fn same(&self) -> bool;
}

impl<F: PartialEq> SameByEq for SameField<'_, F> {
    fn same(&self) -> bool {
        self.0 == self.1
    }
}

/// Field comparison for types without `PartialEq`: never the same (derive plumbing).
#[doc(hidden)]
pub trait SameNever {
    /// Always false.
    fn same(&self) -> bool;
}

impl<F> SameNever for &SameField<'_, F> {
    fn same(&self) -> bool {
        false
    }
}

/// Splits `"schema.table"` (or `"table"`, schema `public`).
pub(crate) fn split_table(table: &str) -> (&str, &str) {
    match table.split_once('.') {
        Some((s, t)) => (s, t),
        None => ("public", table),
    }
}

/// A replicated row being decoded: its table description and column values.
///
/// A hand-written [`Watch::decode`] reads it (`#[derive(Watch)]` writes one for you):
///
/// ```
/// use live_core::{Key, KeyValue, Watch};
/// use live_core::watch::{DecodeError, RowData};
///
/// /// A user whose name is put together from two columns.
/// struct User { id: i64, team_id: i64, name: String }
///
/// impl Watch for User {
///     const TABLE: &'static str = "users";
///     const ID_COLUMN: &'static str = "id";
///     const KEY_COLUMN: &'static str = "team_id";
///     const COLUMNS: &'static [&'static str] = &["id", "team_id", "first_name", "last_name"];
///     type Id = i64;
///
///     fn id(&self) -> &i64 { &self.id }
///
///     fn subscription_key(&self) -> Option<Key> { self.team_id.to_key() }
///
///     fn decode(row: &RowData<'_>, base: Option<&Self>) -> Result<Self, DecodeError> {
///         let first: String = row.field("first_name", None)?;
///         let last: String = row.field("last_name", None)?;
///         Ok(User {
///             id: row.field("id", base.map(|b| &b.id))?,
///             team_id: row.field("team_id", base.map(|b| &b.team_id))?,
///             name: format!("{first} {last}"),
///         })
///     }
/// }
/// let ada = User { id: 1, team_id: 3, name: "Ada Lovelace".into() };
/// assert_eq!(ada.subscription_key(), Some(Key::from("3")));
/// ```
pub struct RowData<'a> {
    pub(crate) relation: &'a Relation,
    pub(crate) cells: &'a Tuple,
    pub(crate) old: Option<&'a Tuple>,
}

impl std::fmt::Debug for RowData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowData")
            .field("table", &self.relation.name)
            .field("columns", &self.cells.len())
            .finish_non_exhaustive()
    }
}

impl RowData<'_> {
    /// The table name.
    pub fn table(&self) -> &str {
        &self.relation.name
    }

    /// Decodes column `column` into `T`. An unchanged TOAST value is taken from the old row
    /// (if the server sent it) or from `base`.
    pub fn field<T: serde::de::DeserializeOwned + Clone>(
        &self,
        column: &str,
        base: Option<&T>,
    ) -> Result<T, DecodeError> {
        let idx = self
            .relation
            .column_index(column)
            .ok_or_else(|| DecodeError::missing_column(&self.relation.name, column))?;
        let type_oid = self.relation.columns[idx].type_oid;
        let text = match self.cells.get(idx) {
            Some(Cell::Text(t)) => Some(&**t),
            Some(Cell::Null) => None,
            Some(Cell::Unchanged) => match self.old.and_then(|o| o.get(idx)) {
                Some(Cell::Text(t)) => Some(&**t),
                _ => {
                    return base.cloned().ok_or_else(|| DecodeError {
                        table: self.relation.name.clone(),
                        column: Some(column.to_string()),
                        kind: DecodeErrorKind::UnchangedToast,
                    });
                }
            },
            None => return Err(DecodeError::missing_column(&self.relation.name, column)),
        };
        Value {
            oid: type_oid,
            text,
        }
        .decode()
        .map_err(|e| DecodeError::value(&self.relation.name, column, e))
    }
}

/// A replicated row that does not decode into its Rust type.
///
/// ```
/// use live_core::watch::{DecodeError, StreamError};
///
/// fn log(e: &StreamError) {
///     if let StreamError::Decode(e) = e {
///         let DecodeError { table, column, kind, .. } = &**e;
///         eprintln!("a row of {table} (column {column:?}) does not decode: {kind}");
///     }
/// }
/// # log(&StreamError::Lagged);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("row of table {table:?}{}: {kind}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
#[non_exhaustive]
pub struct DecodeError {
    /// The table.
    pub table: String,
    /// The column, if one is to blame.
    pub column: Option<String>,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// What went wrong decoding a row.
///
/// ```
/// use live_core::watch::{DecodeError, DecodeErrorKind};
///
/// fn advice(e: &DecodeError) -> &'static str {
///     match e.kind {
///         DecodeErrorKind::MissingColumn => "the table has no such column: migrate, or fix the row type",
///         DecodeErrorKind::Value(_) => "a value does not fit its field's type",
///         _ => "see the message",
///     }
/// }
/// # let _ = advice;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The table has no such column.
    #[error("no such column in the table")]
    MissingColumn,
    /// The value does not fit the field's type.
    #[error("{0}")]
    Value(ValueError),
    /// An unchanged TOAST value was not sent and no earlier version is known.
    #[error("unchanged TOAST value with no known earlier version")]
    UnchangedToast,
    /// Something else.
    #[error("{0}")]
    Other(String),
}

impl DecodeError {
    pub(crate) fn missing_column(table: &str, column: &str) -> Self {
        DecodeError {
            table: table.to_string(),
            column: Some(column.to_string()),
            kind: DecodeErrorKind::MissingColumn,
        }
    }

    pub(crate) fn value(table: &str, column: &str, e: ValueError) -> Self {
        DecodeError {
            table: table.to_string(),
            column: Some(column.to_string()),
            kind: DecodeErrorKind::Value(e),
        }
    }

    pub(crate) fn other(table: &str, msg: &str) -> Self {
        DecodeError {
            table: table.to_string(),
            column: None,
            kind: DecodeErrorKind::Other(msg.to_string()),
        }
    }

    pub(crate) fn is_unchanged_toast(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::UnchangedToast)
    }
}

/// What the framework knows about a `Watch` type.
#[derive(Debug, Clone)]
pub(crate) struct WatchTypeInfo {
    pub type_id: TypeId,
    pub type_name: &'static str,
    pub schema: &'static str,
    pub table: &'static str,
    pub id_column: &'static str,
    pub key_column: &'static str,
    pub columns: &'static [&'static str],
}

/// The `Watch` types a view's assigns hold, collected by `#[derive(Assigns)]`.
#[derive(Default, Debug)]
pub struct WatchTypes {
    pub(crate) types: Vec<WatchTypeInfo>,
}

impl WatchTypes {
    /// Adds the row type `T`.
    pub fn add<T: Watch>(&mut self) {
        let (schema, table) = split_table(T::TABLE);
        let type_id = TypeId::of::<T>();
        if self.types.iter().any(|t| t.type_id == type_id) {
            return;
        }
        self.types.push(WatchTypeInfo {
            type_id,
            type_name: std::any::type_name::<T>(),
            schema,
            table,
            id_column: T::ID_COLUMN,
            key_column: T::KEY_COLUMN,
            columns: T::COLUMNS,
        });
    }
}

/// The column a whole-table scope uses: every row of the table is in it.
pub(crate) const ALL_ROWS: &str = "*";

/// The key text of each value of a key set (derive plumbing for `keys = …`).
#[doc(hidden)]
pub fn keys_of<K: KeyValue>(values: impl IntoIterator<Item = K>) -> Vec<Option<Key>> {
    values.into_iter().map(|v| v.to_key()).collect()
}

/// Whether `columns` holds `column` (derive plumbing: a compile-time check of `by = "…"`).
#[doc(hidden)]
pub const fn has_column(columns: &[&str], column: &str) -> bool {
    let mut i = 0;
    while i < columns.len() {
        if str_eq(columns[i], column) {
            return true;
        }
        i += 1;
    }
    false
}

/// `a == b` in a const context (derive plumbing).
#[doc(hidden)]
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A field's key text, when its type is a [`KeyValue`] (derive plumbing: [`KeyByValue`],
/// else [`KeyNever`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct KeyOf<'a, F>(pub &'a F);

/// Key text through [`KeyValue`] (derive plumbing).
#[doc(hidden)]
pub trait KeyByValue {
    /// The key text.
    fn key(&self) -> Option<Key>;
}

impl<F: KeyValue> KeyByValue for KeyOf<'_, F> {
    fn key(&self) -> Option<Key> {
        self.0.to_key()
    }
}

/// No key text: the field's type cannot scope rows (derive plumbing).
#[doc(hidden)]
pub trait KeyNever {
    /// Always `None`.
    fn key(&self) -> Option<Key>;
}

impl<F> KeyNever for &KeyOf<'_, F> {
    fn key(&self) -> Option<Key> {
        None
    }
}

/// The rows a view holds, registered with the fan-out so deletes and key moves that carry only a
/// primary key still reach it.
#[derive(Default, Debug)]
pub struct HeldRows {
    /// `(slot, type, id, key in the slot's scope column)`.
    pub(crate) rows: Vec<(u16, TypeId, Key, Key)>,
    slot: u16,
    column: &'static str,
}

impl HeldRows {
    /// The rows pushed next belong to assign `slot`, scoped by `column`.
    pub fn begin(&mut self, slot: u16, column: &'static str) {
        self.slot = slot;
        self.column = column;
    }

    /// Records one row.
    pub fn push<T: Watch>(&mut self, row: &T) {
        let key = if self.column == ALL_ROWS {
            Some(Key::from(ALL_ROWS))
        } else if self.column.is_empty() {
            row.subscription_key()
        } else {
            row.column_key(self.column)
        };
        if let (Some(id), Some(key)) = (row.id().to_key(), key) {
            self.rows.push((self.slot, TypeId::of::<T>(), id, key));
        }
    }
}
