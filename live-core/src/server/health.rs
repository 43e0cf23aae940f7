//! What a node reports about itself, for load balancers and dashboards.

use std::time::Duration;

use axum::Router;
use axum::routing::get;

use super::Live;
use crate::replication::{Role, setup};

/// What a node reports about itself ([`Live::health`]).
///
/// ```
/// use live_core::{Live, LiveConfig, sync::Role};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// let health = live.health().await;
/// assert_eq!(health.role, Role::Starting); // no replication listener
/// assert!(!health.streaming);
/// let json = serde_json::to_string(&health).unwrap(); // what `Live::health_route` answers
/// assert!(json.contains(r#""role":"starting""#));
/// # }
/// ```
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Leader (streams the slot), standby, or starting.
    pub role: Role,
    /// Whether this node's replication stream is up.
    pub streaming: bool,
    /// WAL bytes the slot has not confirmed (`None`: unknown).
    pub slot_lag_bytes: Option<i64>,
    /// Bus messages this node has not received yet.
    pub bus_pending: u64,
    /// End LSN of the last transaction this node applied.
    pub last_lsn: u64,
    /// Transactions dispatched to this node's views.
    pub transactions: u64,
    /// Reconnects of the replication stream.
    pub reconnects: u64,
    /// Connected views subscribed to changes.
    pub connected_views: usize,
    /// Views whose socket dropped, waiting (for their grace period) for their client.
    pub detached_views: usize,
}

impl<S: Clone + Send + Sync + 'static> Live<S> {
    /// What this node reports about itself: its role in streaming the slot, how far behind
    /// the slot and the bus are, its connected views. See [`Live::health_route`].
    ///
    /// ```
    /// # async fn f() {
    /// use live_core::{Live, LiveConfig};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// let health = live.health().await;
    /// assert_eq!(health.connected_views, 0);
    /// # }
    /// ```
    #[tracing::instrument(skip(self))]
    pub async fn health(&self) -> Health {
        let Some(sync) = &self.rt.sync else {
            return Health {
                role: Role::Starting,
                streaming: false,
                slot_lag_bytes: None,
                bus_pending: 0,
                last_lsn: 0,
                transactions: 0,
                reconnects: 0,
                connected_views: 0,
                detached_views: self.views.resumable().detached(),
            };
        };
        let slot_lag_bytes = match &self.rt.pool {
            Some(pool) => tokio::time::timeout(
                Duration::from_secs(2),
                setup::slot_lag_bytes(pool, &sync.config.slot),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
            None => None,
        };
        let st = &sync.status;
        Health {
            role: st.role(),
            streaming: st.connected(),
            slot_lag_bytes,
            bus_pending: st.bus_pending(),
            last_lsn: st.last_lsn(),
            transactions: st.transactions(),
            reconnects: st.reconnects(),
            connected_views: sync.fanout.view_count(),
            detached_views: self.views.resumable().detached(),
        }
    }

    /// A route that answers `GET path` with [`Live::health`] as JSON (for load balancers and
    /// dashboards; it says nothing secret, but mount it where only operators reach it if the
    /// figures matter to you).
    ///
    /// ```
    /// use live_core::{Live, LiveConfig};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.health_route("/live/health"));
    /// ```
    pub fn health_route<RS: Clone + Send + Sync + 'static>(&self, path: &str) -> Router<RS> {
        let live = self.clone();
        Router::new().route(
            path,
            get(move || {
                let live = live.clone();
                async move { axum::Json(live.health().await) }
            }),
        )
    }
}
