//! The database slot of a mount: its transaction and snapshot (the fence).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};

use super::ViewError;
use crate::pg::Snapshot;

/// The database slot of a mount: a `REPEATABLE READ` transaction begun on first use, whose
/// snapshot fences the loaded rows. The transaction is run by hand on a pooled connection, so
/// that a load that failed can be rolled back and retried on a connection whose statement cache
/// was cleared (after `ALTER TABLE`, a cached `SELECT *` fails with "cached plan must not change
/// result type" on every use).
pub(crate) struct DbSlot {
    pool: Option<PgPool>,
    conn: Option<PoolConnection<Postgres>>,
    in_tx: bool,
    clear_cache: bool,
    pub(crate) snapshot: Option<Snapshot>,
}

impl DbSlot {
    pub(crate) fn new(pool: Option<PgPool>) -> Self {
        DbSlot {
            pool,
            conn: None,
            in_tx: false,
            clear_cache: false,
            snapshot: None,
        }
    }

    /// The next `begin` clears the connection's cached statements first.
    pub(crate) fn clear_statement_cache(&mut self) {
        self.clear_cache = true;
    }

    pub(crate) async fn begin(&mut self) -> Result<&mut PgConnection, ViewError> {
        if self.conn.is_none() {
            let pool = self.pool.as_ref().ok_or(ViewError::NoDatabase)?;
            self.conn = Some(pool.acquire().await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(ViewError::NoDatabase);
        };
        if self.clear_cache {
            conn.clear_cached_statements().await?;
            self.clear_cache = false;
        }
        if !self.in_tx {
            sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut **conn)
                .await?;
            self.in_tx = true;
            let snap: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
                .fetch_one(&mut **conn)
                .await?;
            self.snapshot = Snapshot::parse(&snap);
        }
        Ok(&mut **conn)
    }

    /// Begins a transaction whose snapshot sees every transaction in `xids` (a commit can reach
    /// the replication stream a moment before other sessions' snapshots see it: wait for it,
    /// up to 5 s).
    pub(crate) async fn begin_seeing(&mut self, xids: &[u32]) -> Result<(), ViewError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            self.begin().await?;
            let seen = self
                .snapshot
                .as_ref()
                .is_some_and(|s| xids.iter().all(|x| s.sees(*x)));
            if seen || xids.is_empty() || std::time::Instant::now() > deadline {
                return Ok(());
            }
            // Look again a moment later, in a new transaction.
            self.rollback().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Commits the transaction and gives the connection back.
    pub(crate) async fn finish(&mut self) -> Result<(), ViewError> {
        if self.in_tx
            && let Some(conn) = self.conn.as_mut()
        {
            self.in_tx = false;
            sqlx::query("COMMIT").execute(&mut **conn).await?;
        }
        self.conn = None;
        Ok(())
    }

    /// Rolls the transaction back (keeping the connection for a retry).
    pub(crate) async fn rollback(&mut self) {
        if self.in_tx
            && let Some(conn) = self.conn.as_mut()
        {
            self.in_tx = false;
            if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_err()
                && let Some(mut c) = self.conn.take()
            {
                c.close_on_drop();
            }
        }
        self.snapshot = None;
    }
}

impl Drop for DbSlot {
    fn drop(&mut self) {
        // A connection still inside a transaction must not go back to the pool.
        if self.in_tx
            && let Some(conn) = self.conn.as_mut()
        {
            conn.close_on_drop();
        }
    }
}

/// Whether a database error means the connection's cached statements are stale (the table
/// changed under a cached `SELECT *`).
pub(crate) fn is_stale_statement(e: &ViewError) -> bool {
    match e {
        ViewError::Db(sqlx::Error::Database(db)) => {
            db.code().as_deref() == Some("0A000") && db.message().contains("cached plan")
        }
        _ => false,
    }
}
