//! The [`LiveView`] trait, its [`Assigns`], and what handlers get: [`Mount`], [`Ctx`],
//! [`SyncCtx`], [`Event`], [`Params`].

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use maud::Markup;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::mpsc;

use crate::fanout::Snapshot;
use crate::token::Session;
use crate::watch::{ApplyError, ChangeBatch, HeldRows, Key, Scopes, WatchTypes};

/// A live view: assigns (the struct's fields), a `render`, and handlers.
///
/// The GET of a page mounts the view (disconnected) and renders full HTML; the browser then
/// joins over the websocket, the view is mounted again (connected) and lives in its own tokio
/// task, which handles events, messages and database changes one at a time and sends only
/// diffs. A panic or error in one view ends that view only.
///
/// ```
/// use live_core::{Assigns, Ctx, Event, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Counter { count: i64 }
///
/// impl LiveView for Counter {
///     type State = ();
///     type Message = ();
///
///     async fn mount(_ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
///         Ok(Counter { count: 0 })
///     }
///
///     fn render(&self) -> Markup {
///         html! { button live-click="inc" { "Clicked " (self.count) " times" } }
///     }
///
///     async fn handle_event(&mut self, event: Event, _ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         match event.name.as_str() {
///             "inc" => self.count += 1,
///             _ => return Err(ViewError::UnknownEvent(event.name)),
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait LiveView: Assigns {
    /// Shared application state (a `PgPool`, configuration), as axum's `State`.
    type State: Clone + Send + Sync + 'static;
    /// Messages from the server side (`Ctx::handle`, `Ctx::send_after`), for `handle_info`.
    type Message: Send + 'static;

    /// Builds the assigns. Runs on the GET (disconnected) and again on the websocket join
    /// (connected). Load watched rows through [`Mount::db`]: its snapshot is the fence that
    /// makes sure no change committed meanwhile is lost or applied twice.
    fn mount(ctx: &mut Mount<'_, Self>) -> impl Future<Output = Result<Self, ViewError>> + Send;

    /// Renders the view (maud). Render lists with [`keyed`](crate::keyed).
    fn render(&self) -> Markup;

    /// The page title; sent to the browser when it changes.
    fn title(&self) -> Option<String> {
        None
    }

    /// Handles an event from the browser (a `live-click`, `live-submit`, …).
    fn handle_event(
        &mut self,
        event: Event,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async move { Err(ViewError::UnknownEvent(event.name)) }
    }

    /// Handles a message sent to this view from the server side.
    fn handle_info(
        &mut self,
        _msg: Self::Message,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async { Ok(()) }
    }

    /// Handles the URL: after mount, and after each URL patch (a `live-patch` link, back and
    /// forward, or [`Ctx::push_patch`]).
    fn handle_params(
        &mut self,
        _params: &Params,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async { Ok(()) }
    }

    /// Reloads the watched assigns from the database: after the view fell behind, a row did
    /// not decode, a watched table was truncated or altered, or the subscription key changed.
    /// The default mounts the view again (which resets other assigns too); override it to
    /// reload only the rows.
    fn reload(
        &mut self,
        ctx: &mut Mount<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async move {
            *self = Self::mount(ctx).await?;
            Ok(())
        }
    }
}

/// The assigns of a view: derive it with `#[derive(Assigns)]` on the view struct.
///
/// Mark the field holding the subscription key with `#[subscription_key]` and the fields
/// holding watched rows with `#[watch]`, optionally with a `sync` hook that reshapes the list
/// after each change (filter, sort, preload) and returns the new value of the assign:
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, SyncCtx, LiveView, ViewError, Watch};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String, completed: bool }
///
/// #[derive(Assigns)]
/// struct TodoPage {
///     #[subscription_key]
///     list_id: i64,
///     #[watch(sync = Self::sort_todos)]
///     todos: Vec<Arc<Todo>>,
///     editing: Option<i64>,
/// }
///
/// impl TodoPage {
///     async fn sort_todos(&mut self, mut todos: Vec<Arc<Todo>>, _ctx: &mut SyncCtx<'_, Self>)
///         -> Result<Vec<Arc<Todo>>, ViewError> {
///         todos.sort_by_key(|t| t.id);
///         Ok(todos)
///     }
/// }
/// # impl LiveView for TodoPage {
/// #     type State = (); type Message = ();
/// #     async fn mount(_: &mut live_core::Mount<'_, Self>) -> Result<Self, ViewError> {
/// #         Ok(TodoPage { list_id: 1, todos: Vec::new(), editing: None })
/// #     }
/// #     fn render(&self) -> live_core::Markup { live_core::html! { (self.todos.len()) (self.editing.unwrap_or(0)) } }
/// # }
/// ```
///
/// Hooks run after mount, after every change to their assign and after a reload. A view with no
/// watched assigns derives `Assigns` with no attributes.
///
/// # Scopes
///
/// Each watched assign has a **scope**: which rows of its type it receives. By default it is
/// the row type's `subscription_key` column, matched against the view's `#[subscription_key]`
/// field; the two must have the same name, or the derive refuses to compile and asks for a
/// stated scope. A scope can be stated on the assign, from values the server holds (other
/// assigns, the mount, the session — never the client):
///
/// - `#[watch(by = "assignee_id", key = self.user_id)]`: rows whose column equals one value
///   (a type's subscription key is only a default: one `Card` type can be scoped by board on one
///   page and by assignee on another);
/// - `#[watch(by = "id", keys = self.assignee_ids())]`: rows whose column is in a **key set**,
///   computed from the assigns and recomputed after every change. When the set changes, the
///   view reloads through the same snapshot fence as a mount, so rows entering it arrive and
///   rows leaving it go. That is how joined rows stay live: the users of a board's cards, the
///   boards of a user's cards;
/// - `#[watch(all, max_rows = 500)]`: every row of a small table; more rows than `max_rows` at
///   mount or after a change is an error (logged; the view ends), never a silent slowdown;
/// - `filter = path` (a `fn(&Row) -> bool`), with any scope: a changed row that stops matching
///   leaves the assign (move out) and one that starts matching enters it (move in). Under the
///   default replica identity the row the view holds serves as the old row.
///
/// The column in `by` is checked against the row type at compile time. A view that changes the
/// value of its key at run time (an event that switches lists) reloads under the new scope.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, LiveView, Markup, Mount, ViewError, Watch, html};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "cards", subscription_key = "board_id")]
/// struct Card { id: i64, board_id: i64, assignee_id: Option<i64>, archived: bool }
/// impl Card { fn live(c: &Card) -> bool { !c.archived } }
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "users")] // no default scope: every assign states one
/// struct User { id: i64, name: String }
///
/// #[derive(Assigns)]
/// struct BoardPage {
///     #[subscription_key]
///     board_id: i64,
///     #[watch(filter = Card::live)]                     // by board_id, not archived
///     cards: Vec<Arc<Card>>,
///     #[watch(by = "id", keys = self.cards.iter().filter_map(|c| c.assignee_id))]
///     users: Vec<Arc<User>>,
/// }
///
/// #[derive(Assigns)]
/// struct MyCards {
///     user_id: i64,
///     #[watch(by = "assignee_id", key = self.user_id)]
///     cards: Vec<Arc<Card>>,
/// }
/// # impl LiveView for BoardPage { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Err(ViewError::NotFound) }
/// #   fn render(&self) -> Markup { html! { (self.board_id) (self.cards.len()) (self.users.len()) } } }
/// # impl LiveView for MyCards { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Err(ViewError::NotFound) }
/// #   fn render(&self) -> Markup { html! { (self.user_id) (self.cards.len()) } } }
/// ```
pub trait Assigns: Sized + Send + 'static {
    /// The `Watch` types of the watched assigns.
    fn watch_types(_types: &mut WatchTypes) {}

    /// The current subscription key (`None`: no rows are watched right now).
    fn subscription_key(&self) -> Option<Key> {
        None
    }

    /// The scopes of the watched assigns right now (which rows of which type each receives).
    fn watch_scopes(&self, _out: &mut Scopes) {}

    /// Every watched row held.
    fn held_rows(&self, _out: &mut HeldRows) {}

    /// Why the assigns are over a declared row cap (`#[watch(all, max_rows = n)]`), if they are.
    #[doc(hidden)]
    fn over_cap(&self) -> Option<String> {
        None
    }

    /// Replaces the watched rows by the node's shared versions (see `WatchedAssign::share`).
    #[doc(hidden)]
    fn share_rows(&mut self) {}

    /// Applies committed changes to the watched assigns and runs the `sync` hooks of those
    /// that changed. True if anything changed.
    fn apply_changes(
        &mut self,
        _batch: &ChangeBatch,
        _ctx: &mut SyncCtx<'_, Self>,
    ) -> impl Future<Output = Result<bool, ApplyError>> + Send
    where
        Self: LiveView,
    {
        async { Ok(false) }
    }

    /// Runs every `sync` hook (after mount and reload).
    fn run_sync_hooks(
        &mut self,
        _ctx: &mut SyncCtx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send
    where
        Self: LiveView,
    {
        async { Ok(()) }
    }
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// No handler for this event (the client gets `unknown_event`; the view carries on).
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// The request or event payload is not acceptable (a page answers 400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The thing asked for does not exist (a page answers 404).
    #[error("not found")]
    NotFound,
    /// The session may not see this (a page answers 403, a join is refused).
    #[error("unauthorized")]
    Unauthorized,
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// `Mount::db` was called but the app has no database.
    #[error("no database configured")]
    NoDatabase,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// How an error reaches the browser: the one place that decides a page's HTTP status and
/// the wire reasons of a refused join and a failed event (`protocol::Reason`).
impl ViewError {
    /// The status and text of a page whose mount or params failed.
    pub(crate) fn http_status(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode;
        match self {
            ViewError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ViewError::BadRequest(_) | ViewError::UnknownEvent(_) => {
                (StatusCode::BAD_REQUEST, "Bad request")
            }
            ViewError::Unauthorized => (StatusCode::FORBIDDEN, "Forbidden"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        }
    }

    /// The reason a join is refused with when the mount failed.
    pub(crate) fn join_reason(&self) -> crate::protocol::Reason {
        use crate::protocol::Reason;
        match self {
            ViewError::NotFound => Reason::NotFound,
            ViewError::Unauthorized => Reason::Unauthorized,
            _ => Reason::MountFailed,
        }
    }

    /// The reason an event is answered with when its handler failed.
    pub(crate) fn event_reason(&self) -> crate::protocol::Reason {
        use crate::protocol::Reason;
        match self {
            ViewError::UnknownEvent(_) => Reason::UnknownEvent,
            ViewError::BadRequest(_) => Reason::BadPayload,
            _ => Reason::HandlerFailed,
        }
    }

    /// A `BadRequest` with this message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ViewError::BadRequest(msg.into())
    }

    /// An `Other` error with this message.
    pub fn other(msg: impl std::fmt::Display) -> Self {
        ViewError::Other(msg.to_string())
    }
}

/// The kind of DOM event that sent an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `live-click`
    Click,
    /// `live-dblclick`
    DblClick,
    /// `live-submit`
    Submit,
    /// `live-change`
    Change,
    /// `live-keydown`
    KeyDown,
    /// `live-keyup`
    KeyUp,
    /// `live-blur`
    Blur,
    /// `live-focus`
    Focus,
    /// `pushEvent` from a client hook
    Hook,
    /// Anything else
    Other(String),
}

impl EventKind {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "click" => EventKind::Click,
            "dblclick" => EventKind::DblClick,
            "submit" => EventKind::Submit,
            "change" => EventKind::Change,
            "keydown" => EventKind::KeyDown,
            "keyup" => EventKind::KeyUp,
            "blur" => EventKind::Blur,
            "focus" => EventKind::Focus,
            "hook" => EventKind::Hook,
            other => EventKind::Other(other.to_string()),
        }
    }
}

/// An event from the browser.
///
/// ```
/// use live_core::{Event, EventKind};
/// let e = Event::new(EventKind::Click, "toggle", serde_json::json!({"id": "7"}));
/// assert_eq!(e.get("id"), Some("7"));
/// assert_eq!(e.get_as::<i64>("id").unwrap(), 7);
/// assert!(e.get_as::<i64>("missing").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    /// What sent it.
    pub kind: EventKind,
    /// The event name (the binding's attribute value).
    pub name: String,
    /// Values: `live-value-*` attributes, form fields, `key`, an input's `value`.
    pub value: serde_json::Map<String, serde_json::Value>,
    /// For `change` events, the name of the field that changed.
    pub target: Option<String>,
}

impl Event {
    /// An event (for tests and hooks).
    pub fn new(kind: EventKind, name: impl Into<String>, value: serde_json::Value) -> Self {
        Event {
            kind,
            name: name.into(),
            value: match value {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
            target: None,
        }
    }

    /// A value as text (the first one, if the field repeats).
    pub fn get(&self, field: &str) -> Option<&str> {
        match self.value.get(field)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()),
            _ => None,
        }
    }

    /// A value parsed with `FromStr`; a missing or unparsable value is a `BadRequest`.
    pub fn get_as<T: FromStr>(&self, field: &str) -> Result<T, ViewError> {
        let raw = self
            .get(field)
            .ok_or_else(|| ViewError::bad_request(format!("missing value {field:?}")))?;
        raw.trim()
            .parse()
            .map_err(|_| ViewError::bad_request(format!("bad value for {field:?}")))
    }

    /// All values deserialized into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ViewError> {
        serde_json::from_value(serde_json::Value::Object(self.value.clone()))
            .map_err(|e| ViewError::bad_request(e.to_string()))
    }
}

/// The URL's parameters: path parameters of the route, then the query string.
///
/// ```
/// use live_core::Params;
/// let p = Params::from_parts([("id", "7")], "/lists/7?filter=active");
/// assert_eq!(p.get("id"), Some("7"));
/// assert_eq!(p.get("filter"), Some("active"));
/// assert_eq!(p.parse::<i64>("id").unwrap(), 7);
/// assert!(p.parse::<i64>("filter").is_err());
/// assert_eq!(p.path(), "/lists/7");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    path_params: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    uri: String,
}

impl Params {
    /// Parameters from path parameters and a URI (path and query).
    pub fn from_parts<K: Into<String>, V: Into<String>>(
        path_params: impl IntoIterator<Item = (K, V)>,
        uri: &str,
    ) -> Self {
        let query = uri
            .split_once('?')
            .map(|(_, q)| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Params {
            path_params: path_params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            query,
            uri: uri.to_string(),
        }
    }

    /// A path parameter, or else the first query parameter of that name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.path_params.get(name).map(String::as_str).or_else(|| {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
    }

    /// A parameter parsed with `FromStr`; missing or unparsable is a `BadRequest`.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, ViewError> {
        self.get(name)
            .ok_or_else(|| ViewError::bad_request(format!("missing parameter {name:?}")))?
            .parse()
            .map_err(|_| ViewError::bad_request(format!("bad parameter {name:?}")))
    }

    /// The path and query.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    #[allow(dead_code)]
    pub(crate) fn path_params(&self) -> &BTreeMap<String, String> {
        &self.path_params
    }
}

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

/// What `mount` (and `reload`) gets.
pub struct Mount<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
    pub(crate) params: &'a Params,
    pub(crate) session: &'a Session,
    pub(crate) connected: bool,
    pub(crate) db: &'a mut DbSlot,
}

impl<V: LiveView> Mount<'_, V> {
    /// The application state.
    pub fn state(&self) -> &V::State {
        self.state
    }

    /// The URL parameters.
    pub fn params(&self) -> &Params {
        self.params
    }

    /// The server-side session.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// Whether this is the connected mount (websocket) rather than the first render (GET).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A connection inside this mount's transaction (`REPEATABLE READ`: every query sees the
    /// same snapshot). Load watched rows through it.
    pub async fn db(&mut self) -> Result<&mut PgConnection, ViewError> {
        self.db.begin().await
    }
}

/// Whether `to` is a path on this site: it starts with one `/` (not `//` or `/\\`, which
/// browsers read as another host) and has no control characters.
pub(crate) fn is_local_url(to: &str) -> bool {
    let b = to.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !to.chars().any(|c| c.is_control())
}

/// Something a handler asked the browser to do.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    Patch {
        to: String,
        replace: bool,
    },
    Redirect {
        to: String,
    },
    Event {
        name: String,
        payload: serde_json::Value,
    },
}

/// What event, message and params handlers get.
pub struct Ctx<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
    pub(crate) session: &'a Session,
    pub(crate) info: &'a mut InfoSlot<V::Message>,
    pub(crate) pushes: &'a mut Vec<Push>,
    /// The node's topics (`None` in the first, static render: nothing to subscribe).
    pub(crate) topics: Option<&'a crate::pubsub::Topics>,
}

/// A view's `handle_info` channel, created the first time a handler asks for it (most views
/// never do, and an idle view should cost little).
pub(crate) struct InfoSlot<M> {
    handle: Option<ViewHandle<M>>,
    pub(crate) rx: Option<mpsc::UnboundedReceiver<Box<M>>>,
    /// Topics this view subscribed to (once each).
    topics: Vec<String>,
}

impl<M: Send + 'static> InfoSlot<M> {
    pub(crate) fn new() -> Self {
        InfoSlot {
            handle: None,
            rx: None,
            topics: Vec::new(),
        }
    }

    fn handle(&mut self) -> ViewHandle<M> {
        if let Some(h) = &self.handle {
            return h.clone();
        }
        let (h, rx) = ViewHandle::new();
        self.handle = Some(h.clone());
        self.rx = Some(rx);
        h
    }
}

impl<V: LiveView> Ctx<'_, V> {
    /// The application state.
    pub fn state(&self) -> &V::State {
        self.state
    }

    /// The server-side session.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// A handle to send this view messages from other tasks (`handle_info`).
    pub fn handle(&mut self) -> ViewHandle<V::Message> {
        self.info.handle()
    }

    /// Sends this view `msg` after `delay` (a timer).
    pub fn send_after(&mut self, delay: Duration, msg: V::Message) {
        self.info.handle().send_after(delay, msg);
    }

    /// Subscribes this view to `topic`: every [`Live::broadcast`](crate::Live::broadcast) to
    /// it, from this node or (with a bus) any other, reaches `handle_info` as a
    /// `V::Message` decoded from JSON. Subscribe in `handle_params` (it runs after every
    /// connected mount); in the first, static render it does nothing. A topic is 1 to 256
    /// printable ASCII characters without spaces (`room:lobby`); topics are server-side
    /// names: never build one from what a client sent without checking it.
    ///
    /// ```
    /// # use live_core::{Assigns, Ctx, LiveView, Markup, Mount, Params, ViewError, html};
    /// #[derive(Assigns)]
    /// struct Room { last: Option<String> }
    /// impl LiveView for Room {
    ///     type State = ();
    ///     type Message = String;
    ///     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Room { last: None }) }
    ///     async fn handle_params(&mut self, _: &Params, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
    ///         ctx.subscribe("room:lobby");
    ///         Ok(())
    ///     }
    ///     async fn handle_info(&mut self, msg: String, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
    ///         self.last = Some(msg);
    ///         Ok(())
    ///     }
    ///     fn render(&self) -> Markup { html! { p { (self.last.as_deref().unwrap_or("")) } } }
    /// }
    /// ```
    pub fn subscribe(&mut self, topic: impl Into<String>)
    where
        V::Message: serde::de::DeserializeOwned,
    {
        let topic = topic.into();
        let Some(topics) = self.topics else { return };
        if !crate::pubsub::valid_topic(&topic) {
            tracing::error!(topic = %topic, "not a topic (1 to 256 printable ASCII characters, no spaces); not subscribed");
            return;
        }
        if self.info.topics.contains(&topic) {
            return;
        }
        let handle = self.info.handle();
        topics.subscribe(&topic, crate::pubsub::deliver_to(handle, &topic));
        self.info.topics.push(topic);
    }

    /// Changes the URL without a reload (history push); `handle_params` runs with it. The
    /// target must be a path of this site (`/lists/2?filter=active`); another origin, or a
    /// scheme such as `javascript:`, is refused (logged, not sent).
    pub fn push_patch(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Patch {
            to: to.into(),
            replace: false,
        });
    }

    /// Like `push_patch`, replacing the current history entry.
    pub fn replace_patch(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Patch {
            to: to.into(),
            replace: true,
        });
    }

    /// Sends the browser to another page of this site (a path such as `/lists/2`; another
    /// origin is refused, logged and not sent).
    pub fn redirect(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Redirect { to: to.into() });
    }

    /// Sends an event to client hooks (`handleEvent`) and `window` (`live:<name>`).
    pub fn push_event(&mut self, name: impl Into<String>, payload: impl Serialize) {
        self.pushes.push(Push::Event {
            name: name.into(),
            payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
        });
    }
}

/// What `sync` hooks get.
pub struct SyncCtx<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
}

impl<V: LiveView> SyncCtx<'_, V> {
    /// The application state (e.g. a pool to preload associations).
    pub fn state(&self) -> &V::State {
        self.state
    }
}

/// Sends messages to a connected view (its `handle_info`), from any task.
pub struct ViewHandle<M> {
    tx: mpsc::UnboundedSender<Box<M>>,
}

impl<M> Clone for ViewHandle<M> {
    fn clone(&self) -> Self {
        ViewHandle {
            tx: self.tx.clone(),
        }
    }
}

/// The view is gone (disconnected or crashed).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the view is gone")]
pub struct ViewGone;

impl<M: Send + 'static> ViewHandle<M> {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Box<M>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ViewHandle { tx }, rx)
    }

    /// Sends a message.
    pub fn send(&self, msg: M) -> Result<(), ViewGone> {
        self.tx.send(Box::new(msg)).map_err(|_| ViewGone)
    }

    /// Sends a message after `delay`.
    pub fn send_after(&self, delay: Duration, msg: M) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Box::new(msg));
        });
    }

    /// Whether the view is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
