//! The server process of the load benchmarks: one live view per list, watched rows.

use std::sync::Arc;

use axum::Router;
use live_core::{
    Assigns, Live, LiveConfig, LiveView, Markup, Mount, RouterExt, SyncConfig, ViewError, Watch,
    html, keyed,
};

/// A watched row.
#[derive(Watch, Clone, sqlx::FromRow)]
#[watch(table = "items", subscription_key = "list_id")]
pub struct Item {
    id: i64,
    list_id: i64,
    title: String,
    done: bool,
}

/// One list.
#[derive(Assigns)]
pub struct ListView {
    #[subscription_key]
    list_id: i64,
    #[watch]
    items: Vec<Arc<Item>>,
}

impl LiveView for ListView {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let list_id: i64 = ctx.params().parse("id")?;
        let items: Vec<Item> = sqlx::query_as(
            "SELECT id, list_id, title, done FROM items WHERE list_id = $1 ORDER BY id",
        )
        .bind(list_id)
        .fetch_all(ctx.db().await?)
        .await?;
        Ok(ListView {
            list_id,
            items: items.into_iter().map(Arc::new).collect(),
        })
    }

    fn render(&self) -> Markup {
        html! {
            section.list {
                h1 { "List " (self.list_id) }
                ul {
                    (keyed("items", &self.items, |i| i.id).render(|i| html! {
                        li class=[i.done.then_some("done")] {
                            input type="checkbox" checked[i.done] live-click="toggle" live-value-id=(i.id);
                            label { (i.title) }
                        }
                    }))
                }
                p { (self.items.len()) " items" }
            }
        }
    }
}

/// A user of the kanban scenario.
#[derive(Watch, Clone, PartialEq, sqlx::FromRow)]
#[watch(table = "kb_users")]
pub struct KbUser {
    id: i64,
    name: String,
}

/// A card of the kanban scenario (scoped by board by default).
#[derive(Watch, Clone, PartialEq, sqlx::FromRow)]
#[watch(table = "kb_cards", subscription_key = "board_id")]
pub struct KbCard {
    id: i64,
    board_id: i64,
    assignee_id: Option<i64>,
    title: String,
}

/// A board: its cards, and the users assigned to them (a key set).
#[derive(Assigns)]
pub struct BoardView {
    #[subscription_key]
    board_id: i64,
    #[watch]
    cards: Vec<Arc<KbCard>>,
    #[watch(by = "id", keys = self.cards.iter().filter_map(|c| c.assignee_id))]
    users: Vec<Arc<KbUser>>,
}

impl LiveView for BoardView {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let board_id: i64 = ctx.params().parse("id")?;
        let db = ctx.db().await?;
        let cards: Vec<KbCard> =
            sqlx::query_as("SELECT * FROM kb_cards WHERE board_id = $1 ORDER BY id")
                .bind(board_id)
                .fetch_all(&mut *db)
                .await?;
        let ids: Vec<i64> = cards.iter().filter_map(|c| c.assignee_id).collect();
        let users: Vec<KbUser> = sqlx::query_as("SELECT * FROM kb_users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *db)
            .await?;
        Ok(BoardView {
            board_id,
            cards: cards.into_iter().map(Arc::new).collect(),
            users: users.into_iter().map(Arc::new).collect(),
        })
    }

    fn render(&self) -> Markup {
        let name = |id: Option<i64>| {
            self.users
                .iter()
                .find(|u| Some(u.id) == id)
                .map_or("", |u| u.name.as_str())
                .to_string()
        };
        html! {
            h1 { "Board " (self.board_id) }
            ul {
                (keyed("cards", &self.cards, |c| c.id)
                    .depends_on(|c| name(c.assignee_id))
                    .render(|c| html! { li { (c.title) " — " (name(c.assignee_id)) } }))
            }
        }
    }
}

/// Serves until killed; prints `PORT <n>` when ready. With `nats`, one node of several on
/// the bus (`/live/health` says its role).
pub async fn serve(url: String, nats: Option<String>) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("connect");
    let mut config = LiveConfig::new(b"bench-secret-key-0123456789abcdef0123".to_vec());
    config.idle_timeout = std::time::Duration::from_secs(300);
    let live = Live::builder(())
        .config(config)
        .pool(pool)
        .sync(match nats {
            Some(n) => SyncConfig::new(&url).nats(n),
            None => SyncConfig::new(&url),
        })
        .build()
        .expect("runtime");
    let app = Router::new()
        .live_view::<ListView>("/lists/{id}", &live)
        .live_view::<BoardView>("/boards/{id}", &live)
        .merge(live.router())
        .merge(live.health_route("/live/health"));
    live.listen().await.expect("listen");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("PORT {}", listener.local_addr().expect("addr").port());
    // SIGTERM: a graceful stop (the slot is freed at once, clients told to reconnect).
    let stopping = live.clone();
    live_core::serve_until(listener, app, async move {
        live_core::shutdown_signal().await;
        stopping.shutdown().await;
    })
    .await
    .expect("serve");
}
