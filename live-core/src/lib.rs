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
//! The modules follow the flow: [`replication`] (listener, pgoutput and value decoding) →
//! `fanout` (routing by key and id) → `session` (one task per connected view) → `render` and
//! `diff` → `socket` and `router` (axum) → `assets/live.js` in the browser.

#![warn(missing_docs)]

/// Guides.
pub mod docs {
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
pub mod replication;
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

pub use config::LiveConfig;
pub use live_macros::{Assigns, Watch};
pub use maud::{DOCTYPE, Markup, PreEscaped, html};
pub use pubsub::BroadcastError;
pub use render::{Keyed, keyed};
pub use replication::{ListenerStatus, SyncConfig, SyncError, TxnMark, mark_transaction};
pub use row::{Key, KeyValue, Watch};
pub use server::{
    ChangesBuilder, Health, Live, LiveBuilder, LiveError, Page, RouterExt, ServeConfig, serve,
    serve_until, serve_with, shutdown_signal,
};
pub use token::{Session, TokenError};
pub use view::{
    Assigns, Ctx, Event, EventKind, LiveView, Mount, Params, SyncCtx, ViewError, ViewGone,
    ViewHandle,
};

/// Hooks for the benchmarks (`benches/`). Not part of the public API.
#[doc(hidden)]
pub mod __bench {
    use crate::render::{Rendered, render_tracked};

    /// Tracks one page the way a connected view does: render with keyed-row tracking, then
    /// encode the diff against what the client holds.
    #[derive(Default)]
    pub struct PageTracker {
        model: Rendered,
        version: u64,
    }

    impl PageTracker {
        /// A tracker with nothing rendered yet.
        pub fn new() -> Self {
            Self::default()
        }

        /// Renders and returns the payloads sent to the client: one diff, or the whole page in
        /// pieces (empty: nothing changed).
        pub fn update(&mut self, render: impl FnOnce() -> maud::Markup) -> Vec<String> {
            use crate::diff::{Patch, encode_diff, full_payload, model_in_pieces};
            let tracked = render_tracked(&mut self.model, render);
            let first = self.version == 0;
            let patch = encode_diff(
                &self.model.statics,
                &tracked.model,
                &tracked.ops,
                self.version + 1,
                first || !tracked.same_shape,
            );
            self.model = tracked.model;
            match patch {
                Patch::Unchanged => Vec::new(),
                Patch::Diff(p) => {
                    self.version += 1;
                    vec![p]
                }
                Patch::Whole => {
                    self.version += 1;
                    let pieces = model_in_pieces(&self.model, self.version, 32 * 1024);
                    let mut out = vec![full_payload(self.version, &self.model, &pieces)];
                    self.version += pieces.rest.len() as u64;
                    out.extend(pieces.rest);
                    out
                }
            }
        }

        /// Bytes of the whole page's HTML.
        pub fn html_bytes(&self) -> usize {
            self.model.to_html().len()
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
    pub use crate::view::{KeptMap, keep_field, kept_object, restored_field};
    /// The kept fields of a view as one JSON value.
    pub type KeptValue = serde_json::Value;
    pub use crate::watch::{ApplyError, ChangeBatch, Scopes, WatchedAssign, apply_changes};
}
