//! The replication listener: streams `pgoutput` from a permanent logical replication slot,
//! decodes each committed transaction, and hands it to the fan-out.
//!
//! - The slot is permanent, so a dropped connection or a Postgres restart loses nothing: the
//!   listener reconnects with backoff and resumes from the last LSN it acknowledged.
//! - An LSN is acknowledged only after its transaction was dispatched, and a transaction that
//!   arrives again after a reconnect (its commit is at or before the last one dispatched) is
//!   skipped, so no view applies a change twice.
//! - Between transactions the keepalive's WAL position is acknowledged too, so the slot does
//!   not pin WAL while the watched tables are quiet. While the app is down the slot does retain
//!   WAL: set `max_slot_wal_keep_size` on the server to bound it, and watch
//!   [`slot_lag_bytes`].
//! - The connection pins `DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=3`,
//!   `bytea_output=hex` and `IntervalStyle=postgres`, so values decode the same way every time.
//!
//! `pgwire-replication` speaks the replication protocol (sqlx cannot); this module adds the
//! reconnect loop, the standby wait, and hands committed transactions to a [`Sink`]. Decoding
//! the messages is `pg::pgoutput` (pure); folding them per row is [`apply`].

pub(crate) mod apply;
pub(crate) mod change;
pub(crate) mod raw;
pub(crate) mod setup;

#[cfg(feature = "testing")]
pub(crate) mod faults;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use tracing::Instrument;

use crate::pg::pgoutput;
pub use change::{TxnMark, mark_transaction};
use raw::{RawBuilder, RawTxn};

pub use setup::slot_lag_bytes;

/// Settings of the replication listener, set with its builder methods.
///
/// ```
/// use std::time::Duration;
/// use live_core::SyncConfig;
/// let cfg = SyncConfig::new("postgres://postgres@127.0.0.1:5432/app")
///     .slot("my_slot")
///     .max_transaction_bytes(16 << 20)
///     .status_interval(Duration::from_millis(500));
/// assert_eq!(cfg.slot_name(), "my_slot");
/// ```
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The database URL (`postgres://user:password@host:port/db`; `?host=/socket/dir` for a
    /// unix socket). The user needs the `REPLICATION` attribute (or superuser).
    pub(crate) database_url: String,
    /// The permanent logical replication slot (default `live_slot`).
    pub(crate) slot: String,
    /// The publication of the watched tables (default `live_publication`).
    pub(crate) publication: String,
    /// Create the slot at start when it is missing (default true).
    pub(crate) create_slot: bool,
    /// Largest transaction buffered in memory; a bigger one reloads the affected views instead
    /// (default 64 MiB).
    pub(crate) max_transaction_bytes: usize,
    /// How often the listener reports its position to the server (default 1 s).
    pub(crate) status_interval: Duration,
    /// Several app nodes: the bus the slot's leader publishes transactions to (default none:
    /// one node). Needs the crate feature `nats`.
    pub(crate) bus: Option<BusConfig>,
}

/// The bus of several app nodes: a NATS server with JetStream (`nats-server -js`).
///
/// ```
/// use live_core::sync::BusConfig;
/// let bus = BusConfig::new("nats://127.0.0.1:4222");
/// assert_eq!(bus.max_age, std::time::Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusConfig {
    /// The NATS server (`nats://host:port`).
    pub nats_url: String,
    /// The JetStream stream (default `LIVE_<SLOT>`).
    pub stream: Option<String>,
    /// How long the stream keeps transactions (default 1 h). A node that is behind by more
    /// reloads its views.
    pub max_age: Duration,
    /// Bytes the stream keeps at most (default 1 GiB; the oldest go first).
    pub max_bytes: i64,
}

impl BusConfig {
    /// Defaults for the NATS server at `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        BusConfig {
            nats_url: nats_url.into(),
            stream: None,
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
        }
    }
}

impl SyncConfig {
    /// Defaults for the database at `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        SyncConfig {
            database_url: database_url.into(),
            slot: "live_slot".into(),
            publication: "live_publication".into(),
            create_slot: true,
            max_transaction_bytes: 64 << 20,
            status_interval: Duration::from_secs(1),
            bus: None,
        }
    }

    /// Runs several app nodes on this database through the NATS server at `nats_url` (see
    /// [`BusConfig`] and the nodes guide, `live_core::docs::nodes`).
    ///
    /// ```
    /// use live_core::SyncConfig;
    /// let cfg = SyncConfig::new("postgres://postgres@127.0.0.1/app").nats("nats://127.0.0.1:4222");
    /// assert_eq!(cfg.bus_config().map(|b| b.nats_url.as_str()), Some("nats://127.0.0.1:4222"));
    /// ```
    pub fn nats(self, nats_url: impl Into<String>) -> Self {
        self.bus(BusConfig::new(nats_url))
    }

    /// Runs several app nodes on this database through a bus with these settings.
    ///
    /// ```
    /// use live_core::SyncConfig;
    /// use live_core::sync::BusConfig;
    /// let mut bus = BusConfig::new("nats://127.0.0.1:4222");
    /// bus.max_age = std::time::Duration::from_secs(600);
    /// let cfg = SyncConfig::new("postgres://postgres@127.0.0.1/app").bus(bus);
    /// assert!(cfg.bus_config().is_some());
    /// ```
    pub fn bus(mut self, bus: BusConfig) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Sets the slot name (default `live_slot`). Slot names are per server: two apps on one
    /// server need two names.
    ///
    /// ```
    /// let cfg = live_core::SyncConfig::new("postgres://postgres@127.0.0.1/app").slot("todo_slot");
    /// assert_eq!(cfg.slot_name(), "todo_slot");
    /// ```
    pub fn slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = slot.into();
        self
    }

    /// Sets the publication name (default `live_publication`).
    ///
    /// ```
    /// let cfg = live_core::SyncConfig::new("postgres://postgres@127.0.0.1/app").publication("app_pub");
    /// # let _ = cfg;
    /// ```
    pub fn publication(mut self, publication: impl Into<String>) -> Self {
        self.publication = publication.into();
        self
    }

    /// Whether the listener creates the slot when it is missing (default true; set false when
    /// a migration or an operator creates it).
    ///
    /// ```
    /// let cfg = live_core::SyncConfig::new("postgres://postgres@127.0.0.1/app").create_slot(false);
    /// # let _ = cfg;
    /// ```
    pub fn create_slot(mut self, create: bool) -> Self {
        self.create_slot = create;
        self
    }

    /// The largest transaction buffered in memory (default 64 MiB); a bigger one reloads the
    /// views of the tables it touched instead of reaching them row by row.
    ///
    /// ```
    /// let cfg = live_core::SyncConfig::new("postgres://postgres@127.0.0.1/app")
    ///     .max_transaction_bytes(16 << 20);
    /// # let _ = cfg;
    /// ```
    pub fn max_transaction_bytes(mut self, bytes: usize) -> Self {
        self.max_transaction_bytes = bytes;
        self
    }

    /// How often the listener reports its position to the server (default 1 s).
    ///
    /// ```
    /// let cfg = live_core::SyncConfig::new("postgres://postgres@127.0.0.1/app")
    ///     .status_interval(std::time::Duration::from_millis(500));
    /// # let _ = cfg;
    /// ```
    pub fn status_interval(mut self, every: Duration) -> Self {
        self.status_interval = every;
        self
    }

    /// The slot name.
    ///
    /// ```
    /// assert_eq!(live_core::SyncConfig::new("postgres://localhost/app").slot_name(), "live_slot");
    /// ```
    pub fn slot_name(&self) -> &str {
        &self.slot
    }

    /// The bus settings, if several nodes share this database.
    ///
    /// ```
    /// assert!(live_core::SyncConfig::new("postgres://localhost/app").bus_config().is_none());
    /// ```
    pub fn bus_config(&self) -> Option<&BusConfig> {
        self.bus.as_ref()
    }
}

/// Why the replication listener cannot start.
///
/// ```no_run
/// use live_core::{Live, LiveError, SyncError};
///
/// # async fn start(live: Live<sqlx::PgPool>) {
/// match live.listen().await {
///     Ok(()) => {}
///     Err(LiveError::Sync(SyncError::Setup(what_to_run))) => eprintln!("set up Postgres: {what_to_run}"),
///     Err(e) => eprintln!("replication cannot start: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The server is not set up for logical replication; the message says what to run.
    #[error("{0}")]
    Setup(String),
    /// The database URL does not parse.
    #[error("bad database URL: {0}")]
    Url(String),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The bus (several nodes) cannot start.
    #[error("bus: {0}")]
    Bus(String),
}

/// A node's part in streaming the slot.
///
/// ```
/// use live_core::sync::{ListenerStatus, Role};
///
/// fn describe(role: Role) -> &'static str {
///     match role {
///         Role::Leader => "streams the slot",
///         Role::Standby => "waits to take over",
///         _ => "not streaming yet",
///     }
/// }
/// let status = ListenerStatus::default(); // as `Live::listener_status` gives it
/// assert_eq!(describe(status.role()), "not streaming yet");
/// assert_eq!(serde_json::to_string(&Role::Leader).unwrap(), r#""leader""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Not streaming yet.
    Starting,
    /// This node streams the slot (with a bus: and publishes every transaction).
    Leader,
    /// Another session streams the slot; this node waits to take over (with a bus: and
    /// receives every transaction from it).
    Standby,
}

/// Live figures of the listener.
///
/// ```
/// use live_core::sync::{ListenerStatus, Role};
/// let status = ListenerStatus::default();
/// assert_eq!(status.role(), Role::Starting);
/// assert!(!status.connected());
/// ```
#[derive(Debug, Default)]
pub struct ListenerStatus {
    connected: AtomicBool,
    role: AtomicU8,
    reconnects: AtomicU64,
    transactions: AtomicU64,
    rows: AtomicU64,
    last_lsn: AtomicU64,
    bus_pending: AtomicU64,
}

impl ListenerStatus {
    /// Whether this node streams the slot, waits for it, or neither yet.
    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Acquire) {
            1 => Role::Leader,
            2 => Role::Standby,
            _ => Role::Starting,
        }
    }

    /// Sets the role; returns whether it changed.
    fn set_role(&self, role: Role) -> bool {
        let v = match role {
            Role::Starting => 0,
            Role::Leader => 1,
            Role::Standby => 2,
        };
        self.role.swap(v, Ordering::AcqRel) != v
    }

    /// Transactions published on the bus that this node has not received yet (0 without a
    /// bus).
    pub fn bus_pending(&self) -> u64 {
        self.bus_pending.load(Ordering::Relaxed)
    }

    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn set_bus_pending(&self, n: u64) {
        self.bus_pending.store(n, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn count_transaction(&self) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the replication stream is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// How many times the listener reconnected.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Transactions dispatched.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Row changes decoded (before folding).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// End LSN of the last dispatched transaction.
    pub fn last_lsn(&self) -> u64 {
        self.last_lsn.load(Ordering::Acquire)
    }
}

/// Where to connect, parsed from the URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
}

pub(crate) fn parse_target(database_url: &str) -> Result<Target, SyncError> {
    let url = url::Url::parse(database_url).map_err(|e| SyncError::Url(e.to_string()))?;
    if url.scheme() != "postgres" && url.scheme() != "postgresql" {
        return Err(SyncError::Url(format!(
            "scheme {:?} is not postgres",
            url.scheme()
        )));
    }
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let host = query
        .get("host")
        .cloned()
        .or_else(|| url.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let port = query
        .get("port")
        .and_then(|p| p.parse().ok())
        .or(url.port())
        .unwrap_or(5432);
    let user = query
        .get("user")
        .cloned()
        .unwrap_or_else(|| decode(url.username()));
    let user = if user.is_empty() {
        "postgres".into()
    } else {
        user
    };
    let password = query
        .get("password")
        .cloned()
        .or_else(|| url.password().map(decode))
        .unwrap_or_default();
    let database = query
        .get("dbname")
        .cloned()
        .unwrap_or_else(|| url.path().trim_start_matches('/').to_string());
    let database = if database.is_empty() {
        user.clone()
    } else {
        database
    };
    Ok(Target {
        host,
        port,
        user,
        password,
        database,
    })
}

/// Session settings pinned on the replication connection.
const PINNED_SETTINGS: &str = "-c DateStyle=ISO,MDY -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex -c IntervalStyle=postgres";

/// Why a committed transaction could not be handed on (the bus refused it): the listener
/// acknowledges nothing, gives the slot up and streams again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SinkError(pub String);

/// Where the slot's committed transactions go: this node's fan-out, or the bus.
pub(crate) trait Sink: Send {
    /// Hands on `raw`; the listener acknowledges its LSN once this returns `Ok`.
    fn commit<'a>(&'a mut self, raw: RawTxn) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Backoff of a standby between looks at the slot: 100 ms doubling to 500 ms, each with
/// jitter (50–100 %), so standbys do not try in step and one takes over within a second of
/// the slot being freed.
fn standby_delay(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(4)).min(500);
    let jitter = u64::from(crate::token::random_bytes(1)[0]);
    Duration::from_millis(base / 2 + base * jitter / 512)
}

/// Whether another session streams the slot (`None`: cannot tell).
async fn slot_active(pool: &sqlx::PgPool, slot: &str) -> Option<bool> {
    sqlx::query_scalar::<_, bool>("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
        .bind(slot)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

fn is_slot_taken(e: &pgwire_replication::PgWireError) -> bool {
    let m = e.to_string();
    m.contains("is active for PID") || m.contains("55006")
}

/// Runs the listener until `stop` is set, reconnecting on every error.
///
/// While another session streams the slot (another node), this node is a standby: it looks
/// at `pg_replication_slots` with backoff and jitter, logs once, and takes the slot when it is
/// free.
pub(crate) async fn run_listener(
    config: SyncConfig,
    mut sink: Box<dyn Sink>,
    status: Arc<ListenerStatus>,
    stop: Arc<AtomicBool>,
    pool: Option<sqlx::PgPool>,
) {
    let target = match parse_target(&config.database_url) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "replication listener cannot start");
            return;
        }
    };
    let mut state = StreamState::default();
    let mut backoff = Duration::from_millis(100);
    let mut standby_attempt = 0u32;
    while !stop.load(Ordering::Acquire) {
        if let Some(pool) = &pool
            && slot_active(pool, &config.slot).await == Some(true)
        {
            enter_standby(&status, &config);
            tokio::time::sleep(standby_delay(standby_attempt)).await;
            standby_attempt += 1;
            continue;
        }
        let span = tracing::info_span!("replication", slot = %config.slot);
        let mut streamed = false;
        let result = stream_once(
            &config,
            &target,
            sink.as_mut(),
            &status,
            &mut state,
            &stop,
            &mut streamed,
        )
        .instrument(span)
        .await;
        status.connected.store(false, Ordering::Release);
        if streamed {
            // No longer streaming: not the leader until the slot is taken again.
            status.set_role(Role::Starting);
        }
        if stop.load(Ordering::Acquire) {
            break;
        }
        match &result {
            Err(StreamError::Pg(e)) if !streamed && is_slot_taken(e) => {
                // Another node took the slot first.
                enter_standby(&status, &config);
                tokio::time::sleep(standby_delay(standby_attempt)).await;
                standby_attempt += 1;
                continue;
            }
            _ => {}
        }
        standby_attempt = 0;
        // The backoff starts again only after a stream that really delivered.
        if streamed {
            backoff = Duration::from_millis(100);
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, ?backoff, "replication stream ended; reconnecting");
        }
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    status.set_role(Role::Starting);
}

fn enter_standby(status: &ListenerStatus, config: &SyncConfig) {
    if status.set_role(Role::Standby) {
        if config.bus.is_some() {
            tracing::info!(slot = %config.slot, "standby: another node streams the slot; this node receives its transactions on the bus and takes over when it is free");
        } else {
            tracing::error!(slot = %config.slot, "another session streams the slot and no bus is configured: this node's views will not update until it takes the slot (run several nodes with a bus: SyncConfig::nats)");
        }
    }
}

/// Why one replication session ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Pg(#[from] pgwire_replication::PgWireError),
    #[error("the bus refused a transaction: {0}")]
    Sink(#[from] SinkError),
}

/// What survives reconnects.
#[derive(Default)]
struct StreamState {
    /// The session's Relation messages by id (a node reading the bus needs them).
    relations: HashMap<u32, Vec<u8>>,
    last_dispatched: u64,
    /// A message outside a transaction did not decode: the next transaction reloads all.
    reload_all_next: bool,
}

/// One replication session, until an error or `stop`. Sets `streamed` once the server
/// accepted the stream (this node holds the slot).
async fn stream_once(
    config: &SyncConfig,
    target: &Target,
    sink: &mut dyn Sink,
    status: &ListenerStatus,
    state: &mut StreamState,
    stop: &AtomicBool,
    streamed: &mut bool,
) -> Result<(), StreamError> {
    let mut cfg = ReplicationConfig::new(
        target.host.clone(),
        target.user.clone(),
        target.password.clone(),
        target.database.clone(),
        config.slot.clone(),
        config.publication.clone(),
    )
    .with_port(target.port)
    .with_tls(TlsConfig::disabled())
    .with_options(PINNED_SETTINGS)
    .with_status_interval(config.status_interval)
    .with_wakeup_interval(config.status_interval)
    .with_application_name("live-core listener");
    if state.last_dispatched > 0 {
        cfg = cfg.with_start_lsn(Lsn::from_u64(state.last_dispatched));
    }
    let mut client = ReplicationClient::connect(cfg).await?;
    client.wait_started().await?;
    status.connected.store(true, Ordering::Release);
    *streamed = true;
    if status.set_role(Role::Leader) {
        tracing::info!("leader: this node streams the slot");
    } else {
        tracing::info!("replication stream connected");
    }
    let mut builder: Option<RawBuilder> = None;
    let mut last_acked = state.last_dispatched;
    loop {
        if stop.load(Ordering::Acquire) {
            client.stop();
            return Ok(());
        }
        let ev = tokio::select! {
            ev = client.recv() => ev?,
            // `stop` is looked at every 100 ms: a graceful stop frees the slot at once.
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let Some(ev) = ev else {
            return Err(pgwire_replication::PgWireError::Protocol(
                "replication stream closed".into(),
            )
            .into());
        };
        match ev {
            ReplicationEvent::Begin { xid, .. } => {
                let mut b = RawBuilder::new(xid, config.max_transaction_bytes);
                if std::mem::take(&mut state.reload_all_next) {
                    b.reload_all();
                }
                builder = Some(b);
            }
            ReplicationEvent::XLogData { data, .. } => match builder.as_mut() {
                Some(b) => b.push(data.to_vec(), &mut state.relations),
                None => outside_transaction(&data, state),
            },
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let Some(b) = builder.take() else { continue };
                let end = end_lsn.as_u64();
                if end <= state.last_dispatched {
                    // Already handed on before a reconnect.
                    continue;
                }
                let raw = b.finish(end, commit_time_micros, &state.relations);
                sink.commit(raw).await?;
                state.last_dispatched = end;
                client.update_applied_lsn(end_lsn);
                last_acked = end;
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                let w = wal_end.as_u64();
                if builder.is_none() && w > last_acked {
                    client.update_applied_lsn(wal_end);
                    last_acked = w;
                }
            }
            ReplicationEvent::Message {
                transactional,
                prefix,
                content,
                ..
            } if prefix == "live" => {
                let mark = match &content[..] {
                    b"reload" => Some(TxnMark::Reload),
                    b"quiet" => Some(TxnMark::Quiet),
                    _ => None,
                };
                match (mark, builder.as_mut(), transactional) {
                    (Some(m), Some(b), true) => b.mark(m),
                    _ => tracing::warn!(
                        content = %String::from_utf8_lossy(&content),
                        transactional,
                        "ignored a 'live' logical message (expected 'reload' or 'quiet', inside a transaction)"
                    ),
                }
            }
            ReplicationEvent::Message { .. } => {}
            ReplicationEvent::StoppedAt { .. } => return Ok(()),
        }
    }
}

/// A pgoutput message outside any transaction: a Relation is kept for the next ones; one
/// that does not decode makes the next transaction reload every view.
fn outside_transaction(data: &[u8], state: &mut StreamState) {
    match pgoutput::decode(data) {
        Ok(pgoutput::Message::Relation(rel)) => {
            state.relations.insert(rel.id, data.to_vec());
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "a pgoutput message did not decode; every view reloads");
            state.reload_all_next = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_target("postgres://bob:s%40cret@db.local:6543/app").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.password.as_str(),
                t.database.as_str()
            ),
            ("db.local", 6543, "bob", "s@cret", "app")
        );
        let t = parse_target("postgres:///app?host=/tmp/sock&port=5555&user=me").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("/tmp/sock", 5555, "me")
        );
        assert!(parse_target("mysql://x").is_err());
    }
}
