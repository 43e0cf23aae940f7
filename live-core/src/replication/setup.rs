//! Start-up checks: the server can do logical replication, the publication covers every watched
//! table, replica identities route deletes, and the slot exists. Each failure says what to run.

use sqlx::{PgPool, Row};

use super::{SyncConfig, SyncError};
use crate::row::WatchTypeInfo;

fn setup(msg: String) -> SyncError {
    SyncError::Setup(msg)
}

/// Checks the server and creates the slot if allowed. `types` are the watched row types.
pub(crate) async fn check(
    pool: &PgPool,
    config: &SyncConfig,
    types: &[WatchTypeInfo],
) -> Result<(), SyncError> {
    let wal_level: String = sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(pool)
        .await?;
    if wal_level != "logical" {
        return Err(setup(format!(
            "Postgres has wal_level = {wal_level}; live views need logical replication. \
             Run `ALTER SYSTEM SET wal_level = logical;` as a superuser (or set it in \
             postgresql.conf) and restart Postgres."
        )));
    }
    let row = sqlx::query(
        "SELECT current_user::text AS name, (rolreplication OR rolsuper) AS ok \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let user: String = row.try_get("name")?;
    let can_replicate: bool = row.try_get("ok")?;
    if !can_replicate {
        return Err(setup(format!(
            "the database user {user:?} may not start replication. Run \
             `ALTER ROLE \"{user}\" WITH REPLICATION;` as a superuser."
        )));
    }
    let encoding: String = sqlx::query_scalar("SELECT current_setting('server_encoding')")
        .fetch_one(pool)
        .await?;
    if encoding != "UTF8" {
        return Err(setup(format!(
            "the database encoding is {encoding}; replicated text is read as UTF-8. Create the \
             database with ENCODING 'UTF8'."
        )));
    }
    let publication_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
            .bind(&config.publication)
            .fetch_one(pool)
            .await?;
    let table_list = types
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.table))
        .collect::<Vec<_>>()
        .join(", ");
    if !publication_exists {
        return Err(setup(format!(
            "the publication {:?} does not exist. Run the migrations, or \
             `CREATE PUBLICATION {} FOR TABLE {table_list};`",
            config.publication, config.publication
        )));
    }
    for t in types {
        check_table(pool, config, t).await?;
    }
    ensure_slot(pool, config).await
}

async fn check_table(
    pool: &PgPool,
    config: &SyncConfig,
    t: &WatchTypeInfo,
) -> Result<(), SyncError> {
    let qualified = format!("{}.{}", t.schema, t.table);
    let ident: Option<String> = sqlx::query_scalar(
        "SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(t.schema)
    .bind(t.table)
    .fetch_optional(pool)
    .await?;
    let Some(ident) = ident else {
        return Err(setup(format!(
            "the table {qualified} (watched by {}) does not exist. Run the migrations.",
            t.type_name
        )));
    };
    let in_publication: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_publication_tables \
         WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
    )
    .bind(&config.publication)
    .bind(t.schema)
    .bind(t.table)
    .fetch_one(pool)
    .await?;
    if !in_publication {
        return Err(setup(format!(
            "the table {qualified} is not in the publication {:?}. Run \
             `ALTER PUBLICATION {} ADD TABLE {qualified};`",
            config.publication, config.publication
        )));
    }
    match ident.as_str() {
        "f" | "i" => {}
        "d" => {
            let has_pk: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary)",
            )
            .bind(t.schema)
            .bind(t.table)
            .fetch_one(pool)
            .await?;
            if !has_pk {
                return Err(setup(format!(
                    "the table {qualified} has no primary key, so its updates and deletes carry \
                     no identity. Run `ALTER TABLE {qualified} REPLICA IDENTITY FULL;`"
                )));
            }
        }
        _ => {
            return Err(setup(format!(
                "the table {qualified} has REPLICA IDENTITY NOTHING. Run \
                 `ALTER TABLE {qualified} REPLICA IDENTITY FULL;`"
            )));
        }
    }
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(t.schema)
    .bind(t.table)
    .fetch_all(pool)
    .await?;
    // A type without a default scope has no key column to check.
    let key = (!t.key_column.is_empty()).then_some(&t.key_column);
    for c in t.columns.iter().chain([&t.id_column]).chain(key) {
        if !columns.iter().any(|have| have == c) {
            return Err(setup(format!(
                "{} reads the column {c:?}, but the table {qualified} has no such column \
                 (it has: {}).",
                t.type_name,
                columns.join(", ")
            )));
        }
    }
    Ok(())
}

async fn ensure_slot(pool: &PgPool, config: &SyncConfig) -> Result<(), SyncError> {
    let row = sqlx::query(
        "SELECT plugin::text AS plugin, temporary FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&config.slot)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => {
            let plugin: Option<String> = row.try_get("plugin")?;
            if plugin.as_deref() != Some("pgoutput") {
                return Err(setup(format!(
                    "the replication slot {:?} uses the plugin {plugin:?}, not pgoutput. Drop it \
                     (`SELECT pg_drop_replication_slot('{}');`) or configure another slot name.",
                    config.slot, config.slot
                )));
            }
            Ok(())
        }
        None if config.create_slot => {
            let created = sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
                .bind(&config.slot)
                .execute(pool)
                .await;
            match created {
                Ok(_) => tracing::info!(slot = %config.slot, "created the replication slot"),
                // Another node created it at the same moment.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42710") => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        None => Err(setup(format!(
            "the replication slot {:?} does not exist. Run \
             `SELECT pg_create_logical_replication_slot('{}', 'pgoutput');`",
            config.slot, config.slot
        ))),
    }
}

/// How many bytes of WAL the slot holds back (`pg_current_wal_lsn()` minus the slot's
/// confirmed position): the lag to watch while the app is down or slow.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// let lag = live_core::sync::slot_lag_bytes(&pool, "live_slot").await?;
/// println!("slot lag: {lag:?} bytes");
/// # Ok(()) }
/// ```
pub async fn slot_lag_bytes(pool: &PgPool, slot: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots \
         WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}
