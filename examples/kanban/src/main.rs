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
use live_launch::App;

const APP: App = App {
    title: "Kanban app",
    database: "kanban",
    data_dir: ("KANBAN_DATA_DIR", ".kanban-data"),
    default_addr: "127.0.0.1:3001",
    psql_example: "UPDATE users SET name = name || ' (from psql)'",
};

#[tokio::main]
async fn main() -> ExitCode {
    live_launch::init_tracing();
    let (database_url, cluster) = match live_launch::or_exit(live_launch::database(&APP)).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let config = KanbanConfig {
        database_url,
        slot: std::env::var("KANBAN_SLOT").unwrap_or_else(|_| "kanban_slot".into()),
        nats_url: std::env::var("LIVE_NATS_URL").ok(),
        live: LiveConfig::from_env(),
    };
    let (app, live) = match live_launch::or_exit(kanban::app(config)).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    live_launch::serve(&APP, app, live, cluster).await
}
