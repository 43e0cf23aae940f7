//! A small watched app used by the sync and fault tests: lists of items, watched by list id,
//! in two tables — one with `REPLICA IDENTITY FULL`, one with the default identity (deletes
//! and moves then carry only the primary key).

use std::sync::Arc;

use axum::Router;
use live_core::{
    Assigns, Ctx, Live, LiveConfig, LiveView, Markup, Mount, Params, RouterExt, SyncConfig,
    SyncCtx, ViewError, Watch, html, keyed,
};

use crate::{SECRET, TestDb};

/// Tables, identities and the publication of the items app.
pub const SCHEMA: &str = "
CREATE TABLE items (id bigserial PRIMARY KEY, list_id bigint NOT NULL, title text NOT NULL, done boolean NOT NULL DEFAULT false);
ALTER TABLE items REPLICA IDENTITY FULL;
CREATE TABLE items_d (id bigserial PRIMARY KEY, list_id bigint NOT NULL, title text NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE PUBLICATION live_publication FOR TABLE items, items_d;
";

/// A row of `items`.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "items", subscription_key = "list_id")]
pub struct Item {
    /// Id.
    pub id: i64,
    /// Key.
    pub list_id: i64,
    /// Title.
    pub title: String,
    /// Done.
    pub done: bool,
}

/// A row of `items_d` (default replica identity).
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "items_d", subscription_key = "list_id")]
pub struct ItemD {
    /// Id.
    pub id: i64,
    /// Key.
    pub list_id: i64,
    /// Title.
    pub title: String,
    /// Done.
    pub done: bool,
}

/// Renders one list of rows with keyed `li`s: `<li data-live-key="ID">TITLE[ ✓]</li>`.
fn list<T: Send + Sync + 'static>(
    rows: &[Arc<T>],
    id: impl Fn(&T) -> i64,
    row: impl Fn(&T) -> Markup,
) -> Markup {
    html! { ul { (keyed("items", rows, id).render(row)) } }
}

/// Defines the view of one list of a table's rows: the rows ordered by id by a `sync` hook.
macro_rules! list_view {
    ($(#[$doc:meta])* $view:ident, $row:ty, $select:literal) => {
        $(#[$doc])*
        #[derive(Assigns)]
        pub struct $view {
            #[subscription_key]
            list_id: i64,
            #[watch(sync = Self::sorted)]
            items: Vec<Arc<$row>>,
            /// The last broadcast to `list:<id>`.
            notice: Option<String>,
        }

        impl $view {
            async fn sorted(
                &mut self,
                mut items: Vec<Arc<$row>>,
                _ctx: &mut SyncCtx<'_, Self>,
            ) -> Result<Vec<Arc<$row>>, ViewError> {
                items.sort_by_key(|i| i.id);
                Ok(items)
            }
        }

        impl LiveView for $view {
            type State = ();
            type Message = String;

            async fn handle_params(
                &mut self,
                _params: &Params,
                ctx: &mut Ctx<'_, Self>,
            ) -> Result<(), ViewError> {
                ctx.subscribe(format!("list:{}", self.list_id));
                Ok(())
            }

            async fn handle_info(
                &mut self,
                msg: String,
                _ctx: &mut Ctx<'_, Self>,
            ) -> Result<(), ViewError> {
                self.notice = Some(msg);
                Ok(())
            }

            async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
                let list_id: i64 = ctx.params().parse("id")?;
                // `SELECT *` on purpose: a test alters the table under cached statements.
                let items: Vec<$row> = sqlx::query_as($select)
                    .bind(list_id)
                    .fetch_all(ctx.db().await?)
                    .await?;
                Ok($view {
                    list_id,
                    items: items.into_iter().map(Arc::new).collect(),
                    notice: None,
                })
            }

            fn render(&self) -> Markup {
                html! {
                    h2 { "list " (self.list_id) }
                    p.count { (self.items.len()) }
                    @if let Some(n) = &self.notice { p.notice { (n) } }
                    (list(&self.items, |i| i.id, |i| html! { li { (i.title) @if i.done { " ✓" } } }))
                }
            }
        }
    };
}

list_view!(
    /// The view of one list of `items`.
    ItemsView,
    Item,
    "SELECT * FROM items WHERE list_id = $1"
);

list_view!(
    /// The view of one list of `items_d`.
    ItemsDView,
    ItemD,
    "SELECT * FROM items_d WHERE list_id = $1"
);

/// Starts the items app on `db` (with its own slot); returns the address and the runtime.
pub async fn start(db: &TestDb) -> (std::net::SocketAddr, Live<()>) {
    start_with(db, LiveConfig::new(SECRET.to_vec())).await
}

/// [`start`] with a configuration of the test's.
pub async fn start_with(db: &TestDb, config: LiveConfig) -> (std::net::SocketAddr, Live<()>) {
    let live = db.live(config);
    let app = Router::new()
        .live_view::<ItemsView>("/lists/{id}", &live)
        .live_view::<ItemsDView>("/d/{id}", &live)
        .merge(live.router());
    live.listen().await.expect("listener starts");
    (crate::serve(app).await, live)
}

/// Starts the items app as one node of several: its own pool on `db_url`, the shared
/// `slot`, the bus at `nats_url`, and `/live/health`.
pub async fn start_node(
    db_url: &str,
    slot: &str,
    nats_url: &str,
) -> Result<(std::net::SocketAddr, Live<()>), String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(db_url)
        .await
        .map_err(|e| e.to_string())?;
    let live = Live::builder(())
        .config(LiveConfig::new(SECRET.to_vec()))
        .pool(pool)
        .sync(SyncConfig::new(db_url).slot(slot).nats(nats_url))
        .build()
        .map_err(|e| e.to_string())?;
    let app = Router::new()
        .live_view::<ItemsView>("/lists/{id}", &live)
        .live_view::<ItemsDView>("/d/{id}", &live)
        .merge(live.router())
        .merge(live.health_route("/live/health"))
        .route(
            "/broadcast/{list}/{msg}",
            axum::routing::get({
                let live = live.clone();
                move |axum::extract::Path((list, msg)): axum::extract::Path<(i64, String)>| {
                    let live = live.clone();
                    async move {
                        match live.broadcast(&format!("list:{list}"), &msg).await {
                            Ok(()) => "sent".to_string(),
                            Err(e) => e.to_string(),
                        }
                    }
                }
            }),
        );
    live.listen().await.map_err(|e| e.to_string())?;
    Ok((crate::serve(app).await, live))
}

/// The rows a list view shows, parsed from its HTML: `(id, title)`, in order.
pub fn rows(html: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<li data-live-key=\"") {
        rest = &rest[i + 19..];
        let q = rest.find('"').unwrap_or(0);
        let id = rest[..q].parse().unwrap_or(-1);
        let gt = rest.find('>').unwrap_or(0);
        let end = rest.find("</li>").unwrap_or(rest.len());
        out.push((id, rest[gt + 1..end].to_string()));
        rest = &rest[end..];
    }
    out
}
