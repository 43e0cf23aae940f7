//! # live-core
//!
//! Server-rendered live views whose assigns stay in sync with Postgres by themselves.
//!
//! A view is a Rust struct (its assigns), a `render` written with [maud](https://maud.lambda.xyz),
//! and event handlers. A browser GETs the page and gets full HTML, then joins over a websocket;
//! from then on only HTML diffs travel. Rows that a view watches are patched when they change in
//! Postgres — by this app, another service or `psql` — through logical replication; nobody calls
//! "broadcast".
//!
//! ```text
//! Postgres ─pgoutput─▶ replication (listener, decoding) ─▶ fanout (key → views)
//!   ─▶ session (one task per view: patch assigns, sync hook) ─▶ render + diff ─▶ socket ─▶ live.js
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::Router;
//! use live_core::{Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, RouterExt,
//!                 SyncConfig, ViewError, Watch, html, keyed};
//!
//! #[derive(Watch, Clone, sqlx::FromRow)]
//! #[watch(table = "todos", subscription_key = "list_id")]
//! struct Todo { id: i64, list_id: i64, title: String, completed: bool }
//!
//! #[derive(Assigns)]
//! struct List {
//!     #[subscription_key]
//!     list_id: i64,
//!     #[watch]
//!     todos: Vec<Arc<Todo>>,
//! }
//!
//! impl LiveView for List {
//!     type State = sqlx::PgPool;
//!     type Message = ();
//!
//!     async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
//!         let list_id: i64 = ctx.params().parse("id")?;
//!         let todos: Vec<Todo> = sqlx::query_as("SELECT * FROM todos WHERE list_id = $1")
//!             .bind(list_id)
//!             .fetch_all(ctx.db().await?)
//!             .await?;
//!         Ok(List { list_id, todos: todos.into_iter().map(Arc::new).collect() })
//!     }
//!
//!     fn render(&self) -> Markup {
//!         html! { ul { (keyed("todos", &self.todos, |t| t.id).render(|t| html! { li { (t.title) } })) } }
//!     }
//!
//!     async fn handle_event(&mut self, e: Event, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
//!         // Handlers only write; the change comes back through replication.
//!         sqlx::query("INSERT INTO todos (list_id, title) VALUES ($1, $2)")
//!             .bind(self.list_id)
//!             .bind(e.get_as::<String>("title")?)
//!             .execute(ctx.state())
//!             .await?;
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgres://postgres@127.0.0.1/app";
//! let pool = sqlx::PgPool::connect(url).await?;
//! let live = Live::builder(pool.clone())
//!     .config(LiveConfig::from_env())
//!     .pool(pool)
//!     .sync(SyncConfig::new(url))
//!     .build()?;
//! let app = Router::new().live_view::<List>("/lists/{id}", &live).merge(live.router());
//! live.listen().await?; // checks the server, then streams changes
//! live_core::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! ## Where to read on
//!
//! The guides in [`docs`]: getting started, watched assigns and their scopes, the delivery
//! guarantees, security, deployment, several nodes. The wire protocol and the browser client
//! are in `assets/README.md`. The change streams of [`Live::changes`] are in [`watch`]; the
//! replication listener's settings and status in [`sync`]; a private Postgres for tests and
//! examples in [`postgres`]; a browser-free test harness in `testing` (feature `testing`).
//!
//! The source follows the data: `pg` and `row` (decoding, row types) → `replication` (the
//! slot) → `fanout` (routing by key and id) → `watch` (patching assigns) → `task` (one task
//! per connected view, resume) → `render` and `diff` → `socket` → `server` (axum) →
//! `assets/live.js` in the browser. `ARCHITECTURE.md` has one line per module.

/// Guides: how to use live-core, and what it guarantees.
pub mod docs {
    #[doc = include_str!("docs/guide.md")]
    pub mod guide {}
    #[doc = include_str!("docs/watched_assigns.md")]
    pub mod watched_assigns {}
    #[doc = include_str!("docs/delivery.md")]
    pub mod delivery {}
    #[doc = include_str!("docs/security.md")]
    pub mod security {}
    #[doc = include_str!("docs/deployment.md")]
    pub mod deployment {}
    #[doc = include_str!("docs/nodes.md")]
    pub mod nodes {}
}

#[cfg(feature = "nats")]
mod bus;
mod config;
mod diff;
mod fanout;
mod pg;
pub mod postgres;
mod protocol;
mod pubsub;
mod render;
mod replication;
mod row;
mod runtime;
mod server;
mod socket;
mod task;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
mod view;
pub mod watch;

/// The replication listener's settings and status: [`SyncConfig`] (also at
/// the crate root), the bus of several nodes ([`BusConfig`](sync::BusConfig)), the status a
/// node reports ([`ListenerStatus`](sync::ListenerStatus), [`Role`](sync::Role)), transaction
/// marks, and the slot's lag.
pub mod sync {
    pub use crate::replication::{
        BusConfig, ListenerStatus, Role, SyncConfig, SyncError, TxnMark, mark_transaction,
        slot_lag_bytes,
    };
}

pub use config::LiveConfig;
/// maud's `<!DOCTYPE html>`, for a page layout ([`LiveBuilder::layout`]).
///
/// ```
/// use live_core::{DOCTYPE, html};
/// let page = html! { (DOCTYPE) html { body { "hi" } } };
/// assert_eq!(page.into_string(), "<!DOCTYPE html><html><body>hi</body></html>");
/// ```
pub use maud::DOCTYPE;
/// maud's HTML type: what a view's `render` returns, and what `html!` builds.
///
/// ```
/// use live_core::{Markup, html};
/// fn badge(count: usize) -> Markup {
///     html! { span.badge { (count) } }
/// }
/// let title = html! { h1 { "Inbox " (badge(3)) } };
/// assert_eq!(title.into_string(), r#"<h1>Inbox <span class="badge">3</span></h1>"#);
/// ```
pub use maud::Markup;
/// maud's wrapper for text that is HTML already: it is written as is, not escaped. Wrap only
/// HTML you trust, never what a user sent.
///
/// ```
/// use live_core::{PreEscaped, html};
/// let icon = r#"<svg width="8" height="8"></svg>"#;
/// let m = html! { i { (PreEscaped(icon)) } "<b>" };
/// assert_eq!(m.into_string(), r#"<i><svg width="8" height="8"></svg></i>&lt;b&gt;"#);
/// ```
pub use maud::PreEscaped;
/// maud's `html!`: writes a view's HTML; `(expr)` inserts a value, escaped.
///
/// ```
/// use live_core::html;
/// let name = "<Ada>";
/// let count = 3;
/// let m = html! {
///     p.greeting { "Hello, " (name) }
///     @if count > 0 { span { (count) " new" } }
///     button live-click="refresh" { "Refresh" }
/// };
/// assert_eq!(
///     m.into_string(),
///     r#"<p class="greeting">Hello, &lt;Ada&gt;</p><span>3 new</span><button live-click="refresh">Refresh</button>"#
/// );
/// ```
pub use maud::html;
pub use pubsub::BroadcastError;
pub use render::{Keyed, keyed};
pub use replication::{SyncConfig, SyncError, TxnMark, mark_transaction};
pub use row::{Key, KeyValue, Watch};
pub use server::{
    Health, Live, LiveBuilder, LiveError, Page, RouterExt, ServeConfig, serve, serve_until,
    serve_with, shutdown_signal,
};
pub use token::Session;
pub use view::{
    Assigns, Ctx, Event, EventKind, LiveView, Mount, Params, SyncCtx, ViewError, ViewGone,
    ViewHandle,
};

/// Derives [`Watch`](trait@Watch) for a row type: its table, its id column (default `id`),
/// and optionally the column that scopes its rows by default (`subscription_key`).
///
/// ```
/// use live_core::Watch;
///
/// #[derive(Watch, Clone, Debug)]
/// #[watch(table = "todos", subscription_key = "list_id")] // id = "id" by default
/// struct Todo {
///     id: i64,
///     list_id: i64,
///     title: String,
///     #[watch(rename = "is_done")] // reads column `is_done`
///     completed: bool,
///     #[watch(skip)] // not in the table: keeps the value the view holds, else Default
///     expanded: bool,
/// }
/// assert_eq!(<Todo as Watch>::TABLE, "todos");
/// assert_eq!(<Todo as Watch>::KEY_COLUMN, "list_id");
/// assert_eq!(<Todo as Watch>::COLUMNS, &["id", "list_id", "title", "is_done"]);
/// ```
///
/// `#[watch(table = "schema.table")]` names a table of another schema than `public`;
/// `#[watch(id = "column")]` another id column. Each field is read from its column in
/// Postgres' text form through serde (integers, text, booleans, floats, `Option` for NULL,
/// `Vec` for arrays, json, chrono/time, uuid, decimals, enums). Fields whose type is
/// `PartialEq` are compared so views of the same rows share one `Arc` per row version.
pub use live_macros::Watch;

/// Derives [`Assigns`](trait@Assigns) for a view struct: which fields hold watched rows
/// (`#[watch]`, with their scope and `sync` hook), which one is the view's subscription key
/// (`#[subscription_key]`), and which UI state survives a new mount (`#[keep]`).
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, LiveView, Markup, Mount, SyncCtx, ViewError, Watch, html};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String }
///
/// #[derive(Assigns)]
/// struct TodoPage {
///     #[subscription_key]                  // from the route and session, never the client
///     list_id: i64,
///     #[watch(sync = Self::sorted)]        // patched when rows change, then sorted
///     todos: Vec<Arc<Todo>>,
///     #[keep]                              // back after a deploy or a long disconnection
///     editing: Option<i64>,
/// }
///
/// impl TodoPage {
///     async fn sorted(&mut self, mut todos: Vec<Arc<Todo>>, _: &mut SyncCtx<'_, Self>)
///         -> Result<Vec<Arc<Todo>>, ViewError> {
///         todos.sort_by_key(|t| t.id);
///         Ok(todos)
///     }
/// }
/// # impl LiveView for TodoPage {
/// #     type State = (); type Message = ();
/// #     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
/// #         Ok(TodoPage { list_id: 1, todos: Vec::new(), editing: None })
/// #     }
/// #     fn render(&self) -> Markup { html! { (self.todos.len()) } }
/// # }
/// ```
///
/// On a `#[watch]` field: `sync = path` (a hook `async fn(&mut self, Vec<Arc<T>>, &mut
/// SyncCtx<'_, Self>) -> Result<Vec<Arc<T>>, ViewError>` run after every change to the
/// assign), and a scope: `by = "column"` with `key = expr` (one value) or `keys = expr` (a
/// key set), or `all` with `max_rows = n`, and `filter = path` (`fn(&T) -> bool`). See
/// [`Assigns`](trait@Assigns) and the watched-assigns guide. A `#[keep]` field must be
/// `Serialize` and `DeserializeOwned`; keep it small and never secret (the client holds it,
/// signed).
pub use live_macros::Assigns;

/// Hooks for the benchmarks (`benches/`). Not part of the public API.
#[doc(hidden)]
pub mod __bench {
    /// Tracks one page the way a connected view does (the view task's own tracker): render
    /// with keyed-row tracking, then encode what the client needs.
    #[derive(Default, Debug)]
    pub struct PageTracker(crate::diff::PageTracker);

    impl PageTracker {
        /// A tracker with nothing rendered yet.
        pub fn new() -> Self {
            Self::default()
        }

        /// Renders and returns the payloads sent to the client: one diff, or the whole page in
        /// pieces (empty: nothing changed).
        pub fn update(&mut self, render: impl FnOnce() -> maud::Markup) -> Vec<String> {
            let tracked = self.0.render(render);
            self.0.update(tracked).into_iter().map(|(_, p)| p).collect()
        }

        /// Bytes of the whole page's HTML.
        pub fn html_bytes(&self) -> usize {
            self.0.html_bytes()
        }
    }

    /// Mean time of the fan-out routing one committed one-row update that `matching` views
    /// receive, while `others` views watch other keys of the same table (the real `Fanout`,
    /// with rows decoded from pgoutput text tuples). In nanoseconds per transaction.
    pub fn fanout_dispatch_ns(matching: usize, others: usize, rounds: usize) -> f64 {
        use std::any::TypeId;
        use std::sync::Arc;

        use crate::fanout::{Fanout, FanoutLimits};
        use crate::pg::pgoutput::{Cell, Column, Relation};
        use crate::replication::change::{ChangeKind, RowChange, TxnBuilder};
        use crate::row::{HeldRows, Key, WatchTypes};

        let fanout = Fanout::new(
            FanoutLimits {
                mailbox: rounds + 1,
                mailbox_bytes: usize::MAX,
                ..FanoutLimits::default()
            },
            Arc::default(),
        );
        let mut types = WatchTypes::default();
        types.add::<BenchRow>();
        fanout.register_types(&types);
        let ty = TypeId::of::<BenchRow>();
        let held = HeldRows::default();
        let mut boxes = Vec::new();
        for v in 0..matching + others {
            let mb = fanout.add_view();
            let key = if v < matching {
                Key::from("1")
            } else {
                Key::from((v + 2).to_string())
            };
            let _ = fanout.subscribe(mb.id, vec![(0, ty, "k", key)], &held, 0, None);
            boxes.push(mb);
        }
        let rel = Arc::new(Relation {
            id: 1,
            schema: "public".into(),
            name: "bench".into(),
            replica_identity: b'd',
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 20,
                    is_key: true,
                },
                Column {
                    name: "k".into(),
                    type_oid: 20,
                    is_key: false,
                },
            ],
        });
        let start = std::time::Instant::now();
        for r in 0..rounds {
            let mut b = TxnBuilder::new(r as u32 + 1, 1 << 20);
            let row = vec![
                Cell::Text(((r % 100) + 1).to_string().into()),
                Cell::Text("1".into()),
            ];
            b.push(
                0,
                RowChange::new(rel.clone(), ChangeKind::Update, Some(row), None, false),
            );
            fanout.dispatch(b.finish(r as u64 + 1, 0));
            for mb in boxes.iter_mut().take(matching) {
                while mb.rx.try_recv().is_ok() {}
            }
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    }

    /// The row type of [`fanout_dispatch_ns`] (table `bench`, scoped by `k`); the fan-out's
    /// unit tests use it too.
    pub(crate) struct BenchRow {
        pub(crate) id: i64,
    }

    impl crate::Watch for BenchRow {
        const TABLE: &'static str = "bench";
        const ID_COLUMN: &'static str = "id";
        const KEY_COLUMN: &'static str = "k";
        const COLUMNS: &'static [&'static str] = &["id", "k"];
        type Id = i64;

        fn id(&self) -> &i64 {
            &self.id
        }

        fn subscription_key(&self) -> Option<crate::Key> {
            None
        }

        fn decode(
            row: &crate::row::RowData<'_>,
            base: Option<&Self>,
        ) -> Result<Self, crate::row::DecodeError> {
            Ok(BenchRow {
                id: row.field("id", base.map(|b| &b.id))?,
            })
        }
    }
}

/// Items the derive macros refer to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::row::{
        DecodeError, HeldRows, KeyByValue, KeyNever, KeyOf, RowData, SameByEq, SameField,
        SameNever, WatchTypes, has_column, keys_of, str_eq,
    };
    pub use crate::view::{
        KeptMap, SyncHook, call_sync_hook, keep_field, kept_object, restored_field,
    };
    /// The kept fields of a view as one JSON value.
    pub type KeptValue = serde_json::Value;
    pub use crate::watch::apply::{ApplyError, ChangeBatch, Scopes, apply_changes};
    pub use crate::watch::assign::WatchedAssign;
}
