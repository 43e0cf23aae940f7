//! `cargo run -p kanban`: a kanban board, live across browsers and `psql`.
//!
//! - Without `DATABASE_URL` it starts a private Postgres (`wal_level=logical`) from the
//!   installed server binaries, keeping its data in `KANBAN_DATA_DIR` (default `.kanban-data`),
//!   and stops it when the app stops.
//! - With `DATABASE_URL` it uses that database; if the server cannot do logical replication it
//!   stops with a message that says what to change.
//! - `PORT` (default `127.0.0.1:3001`; a bare number means `127.0.0.1:<n>`).
//! - `KANBAN_SLOT`: the replication slot (default `kanban_slot`); `LIVE_SECRET_KEY`: the key
//!   that signs page tokens (see `LiveConfig::from_env`).

use std::process::ExitCode;

use kanban::KanbanConfig;
use live_core::LiveConfig;
use live_core::postgres::LocalPostgres;

async fn local_database() -> Result<(String, LocalPostgres), String> {
    let dir = std::env::var("KANBAN_DATA_DIR").unwrap_or_else(|_| ".kanban-data".into());
    println!("No DATABASE_URL: starting a private Postgres in {dir}/ ...");
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::persistent(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let admin = sqlx::PgPool::connect(&pg.url("postgres"))
        .await
        .map_err(|e| format!("cannot connect to the private Postgres: {e}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'kanban')")
            .fetch_one(&admin)
            .await
            .map_err(|e| e.to_string())?;
    if !exists {
        sqlx::query("CREATE DATABASE kanban")
            .execute(&admin)
            .await
            .map_err(|e| e.to_string())?;
    }
    admin.close().await;
    Ok((pg.url("kanban"), pg))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()))
        .init();
    let (database_url, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => match local_database().await {
            Ok((url, pg)) => (url, Some(pg)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = KanbanConfig {
        database_url,
        slot: std::env::var("KANBAN_SLOT").unwrap_or_else(|_| "kanban_slot".into()),
        live: LiveConfig::from_env(),
    };
    let (app, live) = match kanban::app(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = std::env::var("PORT")
        .map(|p| {
            if p.contains(':') {
                p
            } else {
                format!("127.0.0.1:{p}")
            }
        })
        .unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e} (set PORT)");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("Kanban app running at http://{a}/  (Ctrl-C to stop)"),
        Err(_) => println!("Kanban app running on {addr}"),
    }
    if let Some(pg) = &cluster {
        println!(
            "Change a row and watch every window update:\n  {} -c \"UPDATE users SET name = name || ' (from psql)'\"",
            pg.psql_command("kanban")
        );
    }
    // Ctrl-C or SIGTERM (systemd, containers): stop accepting, tell the websockets to
    // reconnect, finish open requests (with a deadline), then stop the private Postgres.
    let stopping = live.clone();
    let shutdown = async move {
        live_core::shutdown_signal().await;
        stopping.shutdown().await;
    };
    let result = live_core::serve_until(listener, app, shutdown).await;
    live.shutdown().await;
    if let Some(pg) = cluster {
        println!("Stopping the private Postgres ...");
        let _ = tokio::task::spawn_blocking(move || drop(pg)).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
