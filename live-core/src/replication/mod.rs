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
//! pgoutput decoder ([`pgoutput`]), the value decoder ([`value`]) and the reconnect loop.

pub(crate) mod change;
pub mod pgoutput;
pub(crate) mod setup;
pub mod value;

#[cfg(feature = "testing")]
pub(crate) mod faults;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use tracing::Instrument;

use crate::fanout::Fanout;
use change::{ChangeKind, RowChange, TxnBuilder, fill_unchanged_from_old};
pub use change::{TxnMark, mark_transaction};
use pgoutput::{Message, Relation};

pub use setup::slot_lag_bytes;

/// Settings of the replication listener.
///
/// ```
/// use live_core::SyncConfig;
/// let cfg = SyncConfig::new("postgres://postgres@127.0.0.1:5432/app").slot("my_slot");
/// assert_eq!(cfg.slot, "my_slot");
/// assert_eq!(cfg.publication, "live_publication");
/// ```
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The database URL (`postgres://user:password@host:port/db`; `?host=/socket/dir` for a
    /// unix socket). The user needs the `REPLICATION` attribute (or superuser).
    pub database_url: String,
    /// The permanent logical replication slot (default `live_slot`).
    pub slot: String,
    /// The publication of the watched tables (default `live_publication`).
    pub publication: String,
    /// Create the slot at start when it is missing (default true).
    pub create_slot: bool,
    /// Largest transaction buffered in memory; a bigger one reloads the affected views instead
    /// (default 64 MiB).
    pub max_transaction_bytes: usize,
    /// How often the listener reports its position to the server (default 1 s).
    pub status_interval: Duration,
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
        }
    }

    /// Sets the slot name.
    pub fn slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = slot.into();
        self
    }

    /// Sets the publication name.
    pub fn publication(mut self, publication: impl Into<String>) -> Self {
        self.publication = publication.into();
        self
    }
}

/// Why the replication listener cannot start.
#[derive(Debug, thiserror::Error)]
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
}

/// Live figures of the listener.
#[derive(Debug, Default)]
pub struct ListenerStatus {
    connected: AtomicBool,
    reconnects: AtomicU64,
    transactions: AtomicU64,
    rows: AtomicU64,
    last_lsn: AtomicU64,
}

impl ListenerStatus {
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

/// Runs the listener until `stop` is set, reconnecting on every error.
pub(crate) async fn run_listener(
    config: SyncConfig,
    fanout: Arc<Fanout>,
    status: Arc<ListenerStatus>,
    stop: Arc<AtomicBool>,
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
    while !stop.load(Ordering::Acquire) {
        let span = tracing::info_span!("replication", slot = %config.slot);
        let mut connected = false;
        let result = stream_once(
            &config,
            &target,
            &fanout,
            &status,
            &mut state,
            &stop,
            &mut connected,
        )
        .instrument(span)
        .await;
        status.connected.store(false, Ordering::Release);
        if stop.load(Ordering::Acquire) {
            break;
        }
        if connected {
            backoff = Duration::from_millis(100);
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, ?backoff, "replication stream ended; reconnecting");
        }
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// What survives reconnects.
#[derive(Default)]
struct StreamState {
    relations: HashMap<u32, Arc<Relation>>,
    last_dispatched: u64,
    /// A message outside a transaction did not decode: the next transaction reloads all.
    reload_all_next: bool,
}

/// One replication session, until an error or `stop`. Sets `connected` once the stream is up.
async fn stream_once(
    config: &SyncConfig,
    target: &Target,
    fanout: &Fanout,
    status: &ListenerStatus,
    state: &mut StreamState,
    stop: &AtomicBool,
    connected: &mut bool,
) -> Result<(), pgwire_replication::PgWireError> {
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
    status.connected.store(true, Ordering::Release);
    *connected = true;
    tracing::info!("replication stream connected");
    let mut builder: Option<TxnBuilder> = None;
    let mut last_acked = state.last_dispatched;
    loop {
        if stop.load(Ordering::Acquire) {
            client.stop();
            return Ok(());
        }
        let ev = tokio::select! {
            ev = client.recv() => ev?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        let Some(ev) = ev else {
            return Err(pgwire_replication::PgWireError::Protocol(
                "replication stream closed".into(),
            ));
        };
        match ev {
            ReplicationEvent::Begin { xid, .. } => {
                let mut b = TxnBuilder::new(xid, config.max_transaction_bytes);
                if std::mem::take(&mut state.reload_all_next) {
                    b.reload_all();
                }
                builder = Some(b);
            }
            ReplicationEvent::XLogData { data, .. } => {
                let decoded = pgoutput::decode(&data);
                #[cfg(feature = "testing")]
                let decoded = decoded.and_then(|m| faults::inject(&config.slot, m));
                let msg = match decoded {
                    Ok(m) => m,
                    Err(e) => {
                        // Its rows cannot be routed: every view of every watched table
                        // reloads once this transaction commits. Never a silent skip.
                        tracing::error!(error = %e, "a pgoutput message did not decode; every view reloads");
                        match builder.as_mut() {
                            Some(b) => b.reload_all(),
                            None => state.reload_all_next = true,
                        }
                        continue;
                    }
                };
                handle_message(msg, state, fanout, status, builder.as_mut());
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let Some(b) = builder.take() else { continue };
                let end = end_lsn.as_u64();
                if end <= state.last_dispatched {
                    // Already dispatched before a reconnect.
                    continue;
                }
                let quiet = b.is_quiet();
                let txn = b.finish(end, commit_time_micros);
                if quiet {
                    tracing::debug!(
                        xid = txn.xid,
                        changes = txn.changes.len(),
                        "a quiet transaction"
                    );
                } else if !txn.changes.is_empty() || !txn.reload_tables.is_empty() || txn.reload_all
                {
                    fanout.dispatch(txn);
                    status.transactions.fetch_add(1, Ordering::Relaxed);
                }
                state.last_dispatched = end;
                status.last_lsn.store(end, Ordering::Release);
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

/// A row change as it arrives, before the listener knows whether its table is watched.
struct Incoming {
    rel: u32,
    kind: ChangeKind,
    new: Option<pgoutput::Tuple>,
    old: Option<pgoutput::Tuple>,
    old_is_full: bool,
}

fn handle_message(
    msg: Message,
    state: &mut StreamState,
    fanout: &Fanout,
    status: &ListenerStatus,
    builder: Option<&mut TxnBuilder>,
) {
    let change = match msg {
        Message::Relation(rel) => {
            let changed = state
                .relations
                .get(&rel.id)
                .is_some_and(|old| old.columns != rel.columns || old.name != rel.name);
            if changed {
                tracing::info!(table = %rel.name, "table definition changed; its views reload");
                if let Some(b) = builder {
                    b.reload(&rel);
                }
            }
            state.relations.insert(rel.id, rel);
            return;
        }
        Message::Truncate { rels } => {
            if let Some(b) = builder {
                for rel in rels {
                    match state.relations.get(&rel) {
                        Some(r) => b.reload(r),
                        None => reload_unknown(b, rel),
                    }
                }
            }
            return;
        }
        Message::Type { .. } | Message::Other(_) => return,
        Message::Insert { rel, new } => Incoming {
            rel,
            kind: ChangeKind::Insert,
            new: Some(new),
            old: None,
            old_is_full: false,
        },
        Message::Update {
            rel,
            old,
            old_is_full,
            mut new,
        } => {
            fill_unchanged_from_old(&mut new, old.as_ref(), old_is_full);
            Incoming {
                rel,
                kind: ChangeKind::Update,
                new: Some(new),
                old,
                old_is_full,
            }
        }
        Message::Delete {
            rel,
            old,
            old_is_full,
        } => Incoming {
            rel,
            kind: ChangeKind::Delete,
            new: None,
            old: Some(old),
            old_is_full,
        },
    };
    status.rows.fetch_add(1, Ordering::Relaxed);
    let Some(b) = builder else { return };
    let Some(r) = state.relations.get(&change.rel) else {
        return reload_unknown(b, change.rel);
    };
    // The id column of a watched table (no type watches it: skip the row).
    let Some(id_column) = fanout.id_column(&r.schema, &r.name) else {
        return;
    };
    match r.column_index(id_column) {
        Some(id) => b.push(
            id,
            RowChange::new(
                r.clone(),
                change.kind,
                change.new,
                change.old,
                change.old_is_full,
            ),
        ),
        None => {
            tracing::error!(table = %r.name, "a watched table has no id column; its views reload");
            b.reload(r);
        }
    }
}

/// A change on a relation the listener has no description of cannot be routed (its Relation
/// message was lost or did not decode): every view reloads.
fn reload_unknown(b: &mut TxnBuilder, rel: u32) {
    tracing::error!(
        relation = rel,
        "a change on a relation the listener does not know; every view reloads"
    );
    b.reload_all();
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
