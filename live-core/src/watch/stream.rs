//! A plain subscription to committed changes of one row type, beside the auto-synced assigns
//! (in the spirit of EctoWatch): for background jobs, caches and webhooks. See
//! [`Live::changes`](crate::Live::changes).

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::fanout::{Fanout, StreamDelivery, StreamFilter, StreamOp};
use crate::replication::change::DecodeFailure;
use crate::row::{DecodeError, Watch};

/// A committed change of a row of `T`.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use live_core::{Watch, watch::Change};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String }
///
/// /// Keeps a cache of todos up to date.
/// fn apply(cache: &mut HashMap<i64, Arc<Todo>>, change: Change<Todo>) {
///     match change {
///         Change::Inserted(row) | Change::Updated { new: row, .. } => {
///             cache.insert(row.id, row);
///         }
///         Change::Deleted { id, .. } => {
///             cache.remove(&id);
///         }
///     }
/// }
///
/// let mut cache = HashMap::new();
/// let milk = |title: &str| Arc::new(Todo { id: 1, list_id: 1, title: title.into() });
/// apply(&mut cache, Change::Inserted(milk("milk")));
/// apply(&mut cache, Change::Updated { old: None, new: milk("oat milk") });
/// assert_eq!(cache[&1].title, "oat milk");
/// apply(&mut cache, Change::Deleted { id: 1, old: None });
/// assert!(cache.is_empty());
/// ```
pub enum Change<T: Watch> {
    /// A new row (or, for a key filter, a row that moved into the key).
    Inserted(Arc<T>),
    /// A changed row; `old` is known when the table has `REPLICA IDENTITY FULL`.
    Updated {
        /// The row before, when the server sent it.
        old: Option<Arc<T>>,
        /// The row after.
        new: Arc<T>,
    },
    /// A removed row (or, for a key filter, a row that moved out of the key).
    Deleted {
        /// Its id.
        id: T::Id,
        /// The row before, when the server sent it.
        old: Option<Arc<T>>,
    },
}

impl<T: Watch> std::fmt::Debug for Change<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Inserted(r) => write!(f, "Inserted({:?})", r.id()),
            Change::Updated { new, .. } => write!(f, "Updated({:?})", new.id()),
            Change::Deleted { id, .. } => write!(f, "Deleted({id:?})"),
        }
    }
}

/// Why a change stream could not deliver a change.
///
/// ```
/// use live_core::{Watch, watch::{ChangeStream, StreamError}};
/// # #[derive(Watch, Clone)] #[watch(table = "todos", subscription_key = "list_id")]
/// # struct Todo { id: i64, list_id: i64 }
///
/// async fn follow(mut changes: ChangeStream<Todo>) {
///     while let Some(next) = changes.recv().await {
///         match next {
///             Ok(change) => println!("{change:?}"),
///             Err(StreamError::Lagged | StreamError::Reload) => println!("reload everything"),
///             Err(e) => eprintln!("{e}"), // a row that does not decode
///         }
///     }
/// }
/// # let _ = follow;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The reader fell behind and changes were dropped: reload your state.
    #[error("the change stream fell behind; changes were dropped")]
    Lagged,
    /// The table was truncated or altered: reload your state.
    #[error("the table was truncated or altered")]
    Reload,
    /// A row did not decode.
    #[error(transparent)]
    Decode(Arc<DecodeError>),
}

/// Committed changes of rows of `T`.
///
/// ```
/// use live_core::{Live, LiveConfig, Watch, watch::ChangeStream};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String }
///
/// /// A background job: counts the changes it sees, until the runtime goes.
/// async fn follow(mut changes: ChangeStream<Todo>) -> usize {
///     let mut seen = 0;
///     while let Some(change) = changes.recv().await {
///         match change {
///             Ok(change) => { seen += 1; println!("{change:?}"); }
///             Err(e) => eprintln!("reload: {e}"),
///         }
///     }
///     seen
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// let changes = live.changes::<Todo>().key(1_i64).subscribe(256);
/// // Without replication (`LiveBuilder::sync`) the stream ends at once.
/// assert_eq!(follow(changes).await, 0);
/// # }
/// ```
pub struct ChangeStream<T: Watch> {
    inner: Option<StreamInner>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Watch> std::fmt::Debug for ChangeStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field("row", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

struct StreamInner {
    fanout: Arc<Fanout>,
    id: u64,
    rx: mpsc::Receiver<StreamDelivery>,
    lagged: Arc<AtomicBool>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.fanout.remove_stream(self.id);
    }
}

impl<T: Watch> ChangeStream<T> {
    pub(crate) fn new(fanout: Arc<Fanout>, filter: StreamFilter, capacity: usize) -> Self {
        let (id, rx, lagged) = fanout.add_stream(std::any::TypeId::of::<T>(), filter, capacity);
        ChangeStream {
            inner: Some(StreamInner {
                fanout,
                id,
                rx,
                lagged,
            }),
            _t: PhantomData,
        }
    }

    pub(crate) fn closed() -> Self {
        ChangeStream {
            inner: None,
            _t: PhantomData,
        }
    }

    /// The next change; `None` when the runtime is gone (or has no replication).
    pub async fn recv(&mut self) -> Option<Result<Change<T>, StreamError>> {
        let inner = self.inner.as_mut()?;
        if inner.lagged.swap(false, Ordering::AcqRel) {
            // Drop what is queued: the reader reloads anyway.
            while inner.rx.try_recv().is_ok() {}
            return Some(Err(StreamError::Lagged));
        }
        let d = inner.rx.recv().await?;
        Some(decode::<T>(&d))
    }
}

fn decode<T: Watch>(d: &StreamDelivery) -> Result<Change<T>, StreamError> {
    if d.op == StreamOp::Reload {
        return Err(StreamError::Reload);
    }
    let change = d
        .txn
        .changes
        .get(d.change as usize)
        .ok_or(StreamError::Reload)?;
    let new = || match change.decoded::<T>() {
        Ok(r) => Ok(r),
        Err(DecodeFailure::Error(e)) => Err(StreamError::Decode(e)),
        Err(DecodeFailure::NeedsBase) => Err(StreamError::Reload),
    };
    let old = || change.decode_old::<T>().and_then(Result::ok).map(Arc::new);
    let id = || {
        change
            .decode_column(T::ID_COLUMN)
            .map_err(|e| StreamError::Decode(Arc::new(e)))
    };
    Ok(match d.op {
        StreamOp::Inserted | StreamOp::MovedIn => Change::Inserted(new()?),
        StreamOp::Updated => Change::Updated {
            old: old(),
            new: new()?,
        },
        StreamOp::Deleted => Change::Deleted {
            id: id()?,
            old: old(),
        },
        // The old row was in this key; the new values are not.
        StreamOp::MovedOut => Change::Deleted {
            id: id()?,
            old: old(),
        },
        StreamOp::Reload => return Err(StreamError::Reload),
    })
}
