//! Mounting a view: the connected mount of a join (and the disconnected one of a GET), with
//! its one retry after a stale cached statement.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::{Queued, panic_message};
use crate::protocol::Reason;
use crate::runtime::Runtime;
use crate::token::Session;
use crate::view::{DbSlot, LiveView, Mount, Params, ViewError, is_stale_statement};

/// Runs `fut` unless the view's inbox closes first (the view was left, or its socket closed):
/// `None` then. Messages received meanwhile are kept in `early`.
pub(crate) async fn until_left<F: std::future::Future>(
    inbox: &mut mpsc::Receiver<Box<Queued>>,
    early: &mut Vec<Queued>,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Some(out),
            msg = inbox.recv() => match msg {
                Some(m) => early.push(*m),
                None => {
                    tracing::debug!("view left before its mount finished; cancelled");
                    return None;
                }
            },
        }
    }
}

/// Mounts `V` (connected or not) in `db`'s slot: a mount that failed on a stale cached
/// statement (the table changed under a cached `SELECT *`) runs once more with a clean cache,
/// and a panic is an error. With `fence`, the slot's `REPEATABLE READ` transaction is begun
/// first, so its snapshot is recorded even when the view loads nothing. The transaction is
/// committed before this returns.
pub(crate) async fn mount_retried<V: LiveView>(
    rt: &Runtime<V::State>,
    params: &Params,
    session: &Session,
    db: &mut DbSlot,
    connected: bool,
    fence: bool,
) -> Result<V, ViewError> {
    for attempt in 0..2 {
        if fence {
            db.begin().await?;
        }
        let result = {
            let mut m = Mount::<V> {
                state: &rt.state,
                params,
                session,
                connected,
                db,
            };
            AssertUnwindSafe(Box::pin(V::mount(&mut m)))
                .catch_unwind()
                .await
        };
        match result {
            Ok(Ok(view)) => {
                db.finish().await?;
                return Ok(view);
            }
            Ok(Err(e)) if attempt == 0 && is_stale_statement(&e) => {
                // The table changed under a cached statement: once more, with a clean cache.
                db.rollback().await;
                db.clear_statement_cache();
            }
            Ok(Err(e)) => return Err(e),
            Err(p) => {
                return Err(ViewError::other(format!(
                    "mount panicked: {}",
                    panic_message(p)
                )));
            }
        }
    }
    Err(ViewError::other("mount kept failing"))
}

/// Mounts (connected) for a join. Returns the client's error reason on failure.
pub(crate) async fn mount_view<V: LiveView>(
    rt: &Runtime<V::State>,
    params: &Params,
    session: &Session,
    db: &mut DbSlot,
    fence: bool,
) -> Result<V, Reason> {
    let mut view = match mount_retried::<V>(rt, params, session, db, true, fence).await {
        Ok(v) => v,
        Err(e) => {
            let reason = e.join_reason();
            if reason == Reason::MountFailed {
                tracing::error!(error = %e, "mount failed");
            }
            return Err(reason);
        }
    };
    if let Some(why) = view.over_cap() {
        tracing::error!(reason = %why, "mount refused: a watched assign is over its row cap");
        return Err(Reason::MountFailed);
    }
    // Views of the same rows share one copy of each row version.
    view.share_rows();
    Ok(view)
}
