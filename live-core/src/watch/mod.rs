//! Watched assigns: the shapes of assigns that hold rows (`Vec<Arc<T>>`, `Option<Arc<T>>`,
//! …), their scopes (which rows of a type each receives), and how a committed change patches
//! them. Views mark them with `#[watch]` (see [`Assigns`](crate::Assigns)); change streams
//! ([`Live::changes`](crate::Live::changes)) are the same rows without a view.

pub(crate) mod apply;
pub(crate) mod assign;
pub(crate) mod stream;

pub use crate::row::{DecodeError, DecodeErrorKind, RowData};
pub use crate::server::ChangesBuilder;
pub use stream::{Change, ChangeStream, StreamError};

pub(crate) use apply::{ApplyError, ChangeBatch, Scopes};
