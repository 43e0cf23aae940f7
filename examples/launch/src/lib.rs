//! What the example apps' `main`s share:
//!
//! - without `DATABASE_URL`, a private Postgres (`wal_level=logical`) from the installed server
//!   binaries, its data kept in a directory between runs, its database created on first use;
//! - `PORT` (`127.0.0.1:<n>` for a bare number);
//! - Ctrl-C or SIGTERM: stop accepting, tell the websockets to reconnect, finish open requests
//!   (with a deadline), then stop the private Postgres.

use std::future::Future;
use std::process::ExitCode;

use live_core::Live;
use live_core::postgres::LocalPostgres;

/// One example app.
#[derive(Debug, Clone)]
pub struct App {
    /// Its name in messages ("Todo app").
    pub title: &'static str,
    /// Its database in the private cluster.
    pub database: &'static str,
    /// The variable naming the private cluster's directory, and its default.
    pub data_dir: (&'static str, &'static str),
    /// The address without `PORT`.
    pub default_addr: &'static str,
    /// An SQL statement to try with `psql` (printed at start).
    pub psql_example: &'static str,
}

/// Logs as `RUST_LOG` says (default `info,sqlx=warn`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()))
        .init();
}

/// `DATABASE_URL`, or a private cluster (started, its database created if missing).
pub async fn database(app: &App) -> Result<(String, Option<LocalPostgres>), String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url, None));
    }
    let dir = std::env::var(app.data_dir.0).unwrap_or_else(|_| app.data_dir.1.into());
    println!("No DATABASE_URL: starting a private Postgres in {dir}/ ...");
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::persistent(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let admin = sqlx::PgPool::connect(&pg.url("postgres"))
        .await
        .map_err(|e| format!("cannot connect to the private Postgres: {e}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(app.database)
            .fetch_one(&admin)
            .await
            .map_err(|e| e.to_string())?;
    if !exists {
        // The name is one of the examples' constants, not input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            app.database.replace('"', "\"\"")
        )))
        .execute(&admin)
        .await
        .map_err(|e| e.to_string())?;
    }
    admin.close().await;
    Ok((pg.url(app.database), Some(pg)))
}

/// Serves `router` on `PORT` until Ctrl-C or SIGTERM, then stops `live` and the cluster.
pub async fn serve<S: Clone + Send + Sync + 'static>(
    app: &App,
    router: axum::Router,
    live: Live<S>,
    cluster: Option<LocalPostgres>,
) -> ExitCode {
    let addr = std::env::var("PORT")
        .map(|p| {
            if p.contains(':') {
                p
            } else {
                format!("127.0.0.1:{p}")
            }
        })
        .unwrap_or_else(|_| app.default_addr.into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e} (set PORT)");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("{} running at http://{a}/  (Ctrl-C to stop)", app.title),
        Err(_) => println!("{} running on {addr}", app.title),
    }
    if let Some(pg) = &cluster {
        println!(
            "Change a row and watch every window update:\n  {} -c \"{}\"",
            pg.psql_command(app.database),
            app.psql_example
        );
    }
    let stopping = live.clone();
    let shutdown = async move {
        live_core::shutdown_signal().await;
        stopping.shutdown().await;
    };
    let result = live_core::serve_until(listener, router, shutdown).await;
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

/// Runs an app's start-up, printing its error and failing when it fails.
pub async fn or_exit<T, E: std::fmt::Display>(
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, ExitCode> {
    f.await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
