//! `cargo run -p todo`: TodoMVC, live across browsers.
//!
//! - Without `DATABASE_URL` it starts a private Postgres (`wal_level=logical`) from the
//!   installed server binaries, keeping its data in `TODO_DATA_DIR` (default `.todo-data`),
//!   and stops it when the app stops.
//! - With `DATABASE_URL` it uses that database; if the server cannot do logical replication it
//!   stops with a message that says what to change.
//! - `PORT` (default `127.0.0.1:3000`; a bare number means `127.0.0.1:<n>`).
//! - `LIVE_NATS_URL`: run several instances on one database (a second replica, a rolling
//!   deploy) through a NATS server with JetStream; each serves live pages.

use std::process::ExitCode;

use live_core::LiveConfig;
use live_launch::App;
use todo::TodoConfig;

const APP: App = App {
    title: "Todo app",
    database: "todo",
    data_dir: ("TODO_DATA_DIR", ".todo-data"),
    default_addr: "127.0.0.1:3000",
    psql_example: "UPDATE todos SET title = title || ' (from psql)'",
};

#[tokio::main]
async fn main() -> ExitCode {
    live_launch::init_tracing();
    let (database_url, cluster) = match live_launch::or_exit(live_launch::database(&APP)).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    let config = TodoConfig {
        database_url,
        slot: std::env::var("TODO_SLOT").unwrap_or_else(|_| "live_slot".into()),
        nats_url: std::env::var("LIVE_NATS_URL").ok(),
        live: LiveConfig::from_env(),
    };
    let (app, live) = match live_launch::or_exit(todo::app(config)).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    live_launch::serve(&APP, app, live, cluster).await
}
