//! The node's shared state behind [`Live`](crate::Live): app state, keys, pool, the
//! replication runtime (fan-out, listener status), mount permits, topics and the closing
//! signal. The view tasks, the sockets and the HTTP layer read it; it knows none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LiveConfig;
use crate::fanout::Fanout;
use crate::protocol::Reason;
use crate::replication::apply::Applier;
use crate::replication::raw::RawTxn;
use crate::replication::{ListenerStatus, Sink, SinkError, SyncConfig};
use crate::token::{SESSION_COOKIE, Signer};

pub(crate) struct SyncRuntime {
    pub fanout: Arc<Fanout>,
    pub status: Arc<ListenerStatus>,
    pub config: SyncConfig,
    pub stop: Arc<AtomicBool>,
    pub started: AtomicBool,
    pub task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The bus consumer (several nodes).
    pub consumer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The shared runtime behind [`Live`].
pub(crate) struct Runtime<S> {
    pub state: S,
    pub config: LiveConfig,
    /// Signs page (view) tokens.
    pub signer: Signer,
    /// Signs session cookies (a key of its own: a page token never verifies as a session).
    pub cookies: Signer,
    /// Signs the blobs of views' kept assigns (`#[keep]`).
    pub keeper: Signer,
    pub pool: Option<PgPool>,
    pub sync: Option<SyncRuntime>,
    /// Mounts and reloads in flight on this node.
    pub mounts: Arc<Semaphore>,
    /// Set when the server stops: every websocket tells its client to reconnect.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Open websockets (shutdown waits for them to drain).
    pub sockets: tokio::sync::watch::Sender<usize>,
    /// App message topics (`Live::broadcast`).
    pub topics: Arc<crate::pubsub::Topics>,
}

/// The permits a mount holds while it uses a database connection.
pub(crate) struct MountPermits {
    _socket: Option<OwnedSemaphorePermit>,
    _node: OwnedSemaphorePermit,
}

impl<S> Runtime<S> {
    /// Whether cookies are for https only (the public URL is https).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The session cookie's name: `__Host-live_session` over https.
    pub(crate) fn cookie_name(&self) -> String {
        if self.secure_cookies() {
            format!("__Host-{SESSION_COOKIE}")
        } else {
            SESSION_COOKIE.to_string()
        }
    }

    /// Waits (in arrival order, until the mount queue timeout) for a turn to mount: first
    /// the connection's, then the node's. `Err` is the client's reason.
    pub(crate) async fn mount_permits(
        &self,
        socket: Option<&Arc<Semaphore>>,
    ) -> Result<MountPermits, Reason> {
        let wait = async {
            let socket = match socket {
                Some(s) => Some(
                    s.clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| Reason::Overloaded)?,
                ),
                None => None,
            };
            let node = self
                .mounts
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Reason::Overloaded)?;
            Ok(MountPermits {
                _socket: socket,
                _node: node,
            })
        };
        match tokio::time::timeout(self.config.mount_queue_timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("mount refused: the mount queue is full");
                Err(Reason::Overloaded)
            }
        }
    }
}

impl<S> Drop for Runtime<S> {
    fn drop(&mut self) {
        if let Some(s) = &self.sync {
            s.stop.store(true, Ordering::Release);
        }
    }
}

/// One node: transactions go straight to this node's fan-out.
pub(crate) struct LocalSink {
    pub applier: Applier,
    pub fanout: Arc<Fanout>,
    pub status: Arc<ListenerStatus>,
}

impl Sink for LocalSink {
    fn commit<'a>(&'a mut self, raw: RawTxn) -> BoxFuture<'a, Result<(), SinkError>> {
        if let Some(txn) = self.applier.apply(&raw, &self.status) {
            self.fanout.dispatch(txn);
            self.status.count_transaction();
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
