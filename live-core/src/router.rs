//! axum integration: the runtime ([`Live`]), mounting views on routes ([`RouterExt`]), the
//! first (static) render of a GET, the websocket endpoint and the JavaScript client.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sqlx::PgPool;

use crate::fanout::{Fanout, FanoutLimits};
use crate::replication::apply::Applier;
use crate::replication::{
    BusConfig, ListenerStatus, LocalSink, Role, Sink, SyncConfig, SyncError, run_listener, setup,
};
use crate::session::{JoinRequest, ViewSpawner};
use crate::token::{
    SESSION_COOKIE, Session, SessionCookie, Signer, ViewToken, session_from_headers,
};
use crate::view::{
    Ctx, DbSlot, InfoSlot, LiveView, Mount, Params, Push, SyncCtx, ViewError, is_stale_statement,
};
use crate::watch::{ChangeStream, Key, KeyValue, Watch, WatchTypes};

/// The browser client, served at `<prefix>/live-<hash>.js` (cached for a year: the name
/// changes with the content) and at `<prefix>/live.js` (cached briefly).
const LIVE_JS: &str = include_str!("../../assets/live.js");

/// The file name of the client with its content hash (`live-<16 hex>.js`).
fn live_js_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(LIVE_JS.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("live-{hex}.js")
    })
}

/// The parts of a page a layout puts together.
pub struct Page<'a> {
    /// The view's title, if it has one.
    pub title: Option<&'a str>,
    /// Tags for `<head>`: the client script.
    pub head: Markup,
    /// The view's container, with its first render inside.
    pub body: Markup,
}

type LayoutFn = dyn Fn(Page<'_>) -> Markup + Send + Sync;

/// The default layout: a minimal HTML document.
fn default_layout(page: Page<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title.unwrap_or("")) }
                (page.head)
            }
            body { (page.body) }
        }
    }
}

/// Settings of the runtime.
#[derive(Clone)]
pub struct LiveConfig {
    /// Key that signs view tokens and the session cookie (at least 32 bytes).
    pub secret_key: Vec<u8>,
    /// Where the client script and the websocket live (default `/live`).
    pub prefix: String,
    /// Origins allowed to open the websocket, besides the page's own host (e.g.
    /// `https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// Accept websocket upgrades without an `Origin` header (non-browser clients; default false).
    pub allow_missing_origin: bool,
    /// How long a page's view token is valid (default 24 h); a stale page reloads.
    pub token_max_age: Duration,
    /// How long a session cookie is valid (default 14 days).
    pub session_max_age: Duration,
    /// Largest websocket message accepted (default 1 MiB).
    pub max_message_size: usize,
    /// A connection that sends nothing (not even a heartbeat) for this long is closed
    /// (default 60 s).
    pub idle_timeout: Duration,
    /// The URL the app is served at for browsers (`https://app.example.com`). When set, the
    /// websocket accepts only this origin (and `allowed_origins`), pages and the websocket
    /// only this host (and `allowed_hosts`), and the session cookie is `Secure` over https.
    /// When unset: an `Origin` must have the request's own host and port and the `http`
    /// scheme, and the host must be `localhost` or an IP address (names that could be
    /// rebound to this machine by DNS are refused).
    pub public_url: Option<String>,
    /// Hosts (`name` or `name:port`) allowed in the `Host` header besides the public URL's.
    pub allowed_hosts: Vec<String>,
    /// Views one websocket may hold at once (default 16).
    pub max_views_per_socket: usize,
    /// Bytes queued per websocket, each way: frames waiting to be written to the client, and
    /// events waiting for their view (default 4 MiB).
    pub max_queued_bytes_per_socket: usize,
    /// A write that the client does not take within this long closes its connection
    /// (default 10 s).
    pub write_timeout: Duration,
    /// Mounts (and reloads) in flight at once on this node; each holds a database connection
    /// (default 8; keep it below the pool's size).
    pub max_concurrent_mounts: usize,
    /// Mounts in flight at once per websocket (default 2).
    pub max_mounts_per_socket: usize,
    /// How long a mount waits for its turn before it is refused as overloaded (default 10 s).
    pub mount_queue_timeout: Duration,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("prefix", &self.prefix)
            .field("allowed_origins", &self.allowed_origins)
            .field("token_max_age", &self.token_max_age)
            .field("max_message_size", &self.max_message_size)
            .field("public_url", &self.public_url)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_views_per_socket", &self.max_views_per_socket)
            .field(
                "max_queued_bytes_per_socket",
                &self.max_queued_bytes_per_socket,
            )
            .field("max_concurrent_mounts", &self.max_concurrent_mounts)
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// Defaults with this secret key.
    pub fn new(secret_key: impl Into<Vec<u8>>) -> Self {
        LiveConfig {
            secret_key: secret_key.into(),
            prefix: "/live".into(),
            allowed_origins: Vec::new(),
            allow_missing_origin: false,
            token_max_age: Duration::from_secs(24 * 3600),
            session_max_age: Duration::from_secs(14 * 24 * 3600),
            max_message_size: 1 << 20,
            idle_timeout: Duration::from_secs(60),
            public_url: None,
            allowed_hosts: Vec::new(),
            max_views_per_socket: 16,
            max_queued_bytes_per_socket: 4 << 20,
            write_timeout: Duration::from_secs(10),
            max_concurrent_mounts: 8,
            max_mounts_per_socket: 2,
            mount_queue_timeout: Duration::from_secs(10),
        }
    }

    /// Reads `LIVE_SECRET_KEY` (at least 32 bytes). Without it, a random key is generated and
    /// a warning logged: pages then do not survive a server restart (they reload).
    pub fn from_env() -> Self {
        match std::env::var("LIVE_SECRET_KEY") {
            Ok(k) if k.len() >= 32 => LiveConfig::new(k.into_bytes()),
            _ => {
                tracing::warn!(
                    "LIVE_SECRET_KEY is not set (or shorter than 32 bytes); using a random key"
                );
                LiveConfig::new(crate::token::random_bytes(32))
            }
        }
    }
}

/// Why the runtime could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The configuration is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Replication is not set up (the message says what to run).
    #[error(transparent)]
    Sync(#[from] SyncError),
}

pub(crate) struct SyncRuntime {
    pub fanout: Arc<Fanout>,
    pub status: Arc<ListenerStatus>,
    pub config: SyncConfig,
    pub stop: Arc<AtomicBool>,
    started: AtomicBool,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The bus consumer (several nodes).
    consumer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What a node reports about itself ([`Live::health`]).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Leader (streams the slot), standby, or starting.
    pub role: Role,
    /// Whether this node's replication stream is up.
    pub streaming: bool,
    /// WAL bytes the slot has not confirmed (`None`: unknown).
    pub slot_lag_bytes: Option<i64>,
    /// Bus messages this node has not received yet.
    pub bus_pending: u64,
    /// End LSN of the last transaction this node applied.
    pub last_lsn: u64,
    /// Transactions dispatched to this node's views.
    pub transactions: u64,
    /// Reconnects of the replication stream.
    pub reconnects: u64,
    /// Connected views subscribed to changes.
    pub connected_views: usize,
}

/// The shared runtime behind [`Live`].
pub(crate) struct Runtime<S> {
    pub state: S,
    pub config: LiveConfig,
    /// Signs page (view) tokens.
    pub signer: Signer,
    /// Signs session cookies (a key of its own: a page token never verifies as a session).
    pub cookies: Signer,
    pub pool: Option<PgPool>,
    pub sync: Option<SyncRuntime>,
    pub views: RwLock<HashMap<String, Arc<dyn ViewSpawner<S>>>>,
    layout: Arc<LayoutFn>,
    /// Mounts and reloads in flight on this node.
    mounts: Arc<Semaphore>,
    /// Set when the server stops: every websocket tells its client to reconnect.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// App message topics (`Live::broadcast`).
    pub topics: Arc<crate::pubsub::Topics>,
}

/// The permits a mount holds while it uses a database connection.
pub(crate) struct MountPermits {
    _socket: Option<OwnedSemaphorePermit>,
    _node: OwnedSemaphorePermit,
}

impl<S> Runtime<S> {
    /// Whether cookies are for https only (the public URL is https).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The session cookie's name: `__Host-live_session` over https.
    pub(crate) fn cookie_name(&self) -> String {
        if self.secure_cookies() {
            format!("__Host-{SESSION_COOKIE}")
        } else {
            SESSION_COOKIE.to_string()
        }
    }

    /// Waits (in arrival order, until the mount queue timeout) for a turn to mount: first
    /// the connection's, then the node's. `Err` is the client's reason.
    pub(crate) async fn mount_permits(
        &self,
        socket: Option<&Arc<Semaphore>>,
    ) -> Result<MountPermits, crate::protocol::Reason> {
        let wait = async {
            let socket = match socket {
                Some(s) => Some(
                    s.clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| crate::protocol::Reason::Overloaded)?,
                ),
                None => None,
            };
            let node = self
                .mounts
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| crate::protocol::Reason::Overloaded)?;
            Ok(MountPermits {
                _socket: socket,
                _node: node,
            })
        };
        match tokio::time::timeout(self.config.mount_queue_timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("mount refused: the mount queue is full");
                Err(crate::protocol::Reason::Overloaded)
            }
        }
    }
}

impl<S> Drop for Runtime<S> {
    fn drop(&mut self) {
        if let Some(s) = &self.sync {
            s.stop.store(true, Ordering::Release);
        }
    }
}

/// The live view runtime: app state, secret key, database and replication listener, and the
/// views mounted on routes. Cheap to clone.
///
/// ```no_run
/// use axum::Router;
/// use live_core::{Live, LiveConfig, RouterExt};
/// # use live_core::{Assigns, LiveView, Mount, Markup, ViewError, html};
/// # #[derive(Assigns)] struct Counter;
/// # impl LiveView for Counter { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Counter) }
/// #   fn render(&self) -> Markup { html! {} } }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let live = Live::builder(()).config(LiveConfig::from_env()).build()?;
/// let app = Router::new()
///     .live_view::<Counter>("/", &live)
///     .merge(live.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// live_core::serve(listener, app).await?;
/// # Ok(()) }
/// ```
pub struct Live<S> {
    pub(crate) rt: Arc<Runtime<S>>,
}

impl<S> Clone for Live<S> {
    fn clone(&self) -> Self {
        Live {
            rt: self.rt.clone(),
        }
    }
}

/// Builds a [`Live`].
pub struct LiveBuilder<S> {
    state: S,
    config: Option<LiveConfig>,
    pool: Option<PgPool>,
    sync: Option<SyncConfig>,
    layout: Arc<LayoutFn>,
}

impl<S: Clone + Send + Sync + 'static> Live<S> {
    /// Starts building a runtime around the app state.
    pub fn builder(state: S) -> LiveBuilder<S> {
        LiveBuilder {
            state,
            config: None,
            pool: None,
            sync: None,
            layout: Arc::new(default_layout),
        }
    }

    /// The app state.
    pub fn state(&self) -> &S {
        &self.rt.state
    }

    /// The routes of the runtime itself: the client at `<prefix>/live-<hash>.js` (what pages
    /// load; cached for a year) and `<prefix>/live.js`, and `<prefix>/websocket`.
    pub fn router<RS: Clone + Send + Sync + 'static>(&self) -> Router<RS> {
        let prefix = self.rt.config.prefix.trim_end_matches('/').to_string();
        let rt = self.rt.clone();
        Router::new()
            .route(&format!("{prefix}/live.js"), get(serve_js))
            .route(
                &format!("{prefix}/{}", live_js_name()),
                get(serve_js_hashed),
            )
            .route(
                &format!("{prefix}/websocket"),
                get(ws_upgrade::<S>).with_state(rt),
            )
    }

    /// Registers a view at a route pattern.
    pub(crate) fn register<V: LiveView<State = S>>(&self, path: &str) {
        let mut types = WatchTypes::default();
        V::watch_types(&mut types);
        if let Some(sync) = &self.rt.sync {
            sync.fanout.register_types(&types);
        } else if !types.types.is_empty() {
            tracing::warn!(
                view = std::any::type_name::<V>(),
                "the view has watched assigns but the runtime has no replication listener \
                 (LiveBuilder::sync); they will not update"
            );
        }
        let mut views = self.rt.views.write().unwrap_or_else(|p| p.into_inner());
        views.insert(
            path.to_string(),
            Arc::new(crate::session::Spawner::<V>(PhantomData)),
        );
    }

    /// Starts the replication listener: checks the server (wal_level, privileges, publication,
    /// replica identity, columns), creates the slot if needed, and streams. Call it after
    /// mounting the views, so their tables are known. Without `LiveBuilder::sync`, does nothing.
    pub async fn listen(&self) -> Result<(), LiveError> {
        let Some(sync) = &self.rt.sync else {
            return Ok(());
        };
        if sync.started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let pool = self.rt.pool.as_ref().ok_or_else(|| {
            LiveError::Config("replication needs a pool (LiveBuilder::pool)".into())
        })?;
        let types = sync.fanout.types();
        if let Err(e) = setup::check(pool, &sync.config, &types).await {
            sync.started.store(false, Ordering::Release);
            return Err(e.into());
        }
        let applier = Applier::new(&sync.config.slot, sync.config.max_transaction_bytes);
        let sink: Box<dyn Sink> = match &sync.config.bus {
            None => Box::new(LocalSink {
                applier,
                fanout: sync.fanout.clone(),
                status: sync.status.clone(),
            }),
            Some(bus) => match self.start_bus(sync, bus, applier).await {
                Ok(sink) => sink,
                Err(e) => {
                    sync.started.store(false, Ordering::Release);
                    return Err(e);
                }
            },
        };
        let task = tokio::spawn(run_listener(
            sync.config.clone(),
            sink,
            sync.status.clone(),
            sync.stop.clone(),
            Some(pool.clone()),
        ));
        *sync.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    /// Connects to the bus and starts this node's consumer (which feeds the fan-out from
    /// now on); returns the leader's publisher.
    #[cfg(feature = "nats")]
    async fn start_bus(
        &self,
        sync: &SyncRuntime,
        bus: &BusConfig,
        applier: Applier,
    ) -> Result<Box<dyn Sink>, LiveError> {
        let connected = crate::bus::Bus::connect(bus, &sync.config.slot)
            .await
            .map_err(|e| LiveError::Sync(SyncError::Bus(e.to_string())))?;
        let consumer = crate::bus::start_consumer(
            connected.clone(),
            applier,
            sync.fanout.clone(),
            sync.status.clone(),
            sync.stop.clone(),
            sync.config.max_transaction_bytes,
        )
        .await
        .map_err(|e| LiveError::Sync(SyncError::Bus(e.to_string())))?;
        *sync.consumer.lock().unwrap_or_else(|p| p.into_inner()) = Some(consumer);
        crate::bus::start_broadcasts(&connected, self.rt.topics.clone(), sync.stop.clone())
            .await
            .map_err(|e| LiveError::Sync(SyncError::Bus(e.to_string())))?;
        Ok(Box::new(crate::bus::Publisher::new(connected)))
    }

    #[cfg(not(feature = "nats"))]
    async fn start_bus(
        &self,
        _sync: &SyncRuntime,
        _bus: &BusConfig,
        _applier: Applier,
    ) -> Result<Box<dyn Sink>, LiveError> {
        Err(LiveError::Config(
            "SyncConfig::bus needs live-core's `nats` feature".into(),
        ))
    }

    /// Stops serving live views: every websocket is closed with code 1012 (the client
    /// reconnects, with jitter, to whatever the address serves next), and the replication
    /// listener stops (waiting up to 5 s for it to close its stream).
    pub async fn shutdown(&self) {
        // Every websocket tells its client to reconnect (close code 1012) and ends.
        self.rt.closing.send_replace(true);
        let Some(sync) = &self.rt.sync else {
            return;
        };
        sync.stop.store(true, Ordering::Release);
        let task = sync.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let consumer = sync
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(consumer) = consumer {
            let _ = tokio::time::timeout(Duration::from_secs(1), consumer).await;
        }
    }

    /// The replication listener's figures (`None` without replication).
    pub fn listener_status(&self) -> Option<Arc<ListenerStatus>> {
        self.rt.sync.as_ref().map(|s| s.status.clone())
    }

    /// Number of connected views subscribed to changes.
    pub fn connected_views(&self) -> usize {
        self.rt.sync.as_ref().map_or(0, |s| s.fanout.view_count())
    }

    /// Sends `msg` (as JSON) to the `handle_info` of every view subscribed to `topic`
    /// ([`Ctx::subscribe`](crate::Ctx::subscribe)), on this node and, with a bus, on every
    /// other. Delivery is at most once: a view that is not connected when it arrives misses
    /// it (database changes never are: those travel through the slot).
    ///
    /// ```
    /// # async fn f() -> Result<(), live_core::BroadcastError> {
    /// use live_core::{Live, LiveConfig};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// live.broadcast("room:lobby", &"hello").await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip(self, msg))]
    pub async fn broadcast<M: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        msg: &M,
    ) -> Result<(), crate::pubsub::BroadcastError> {
        let payload = serde_json::to_vec(msg)
            .map_err(|e| crate::pubsub::BroadcastError::Message(e.to_string()))?;
        self.rt.topics.broadcast(topic, payload).await
    }

    /// What this node reports about itself: its role in streaming the slot, how far behind
    /// the slot and the bus are, its connected views. See [`Live::health_route`].
    ///
    /// ```
    /// # async fn f() {
    /// use live_core::{Live, LiveConfig};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// let health = live.health().await;
    /// assert_eq!(health.connected_views, 0);
    /// # }
    /// ```
    #[tracing::instrument(skip(self))]
    pub async fn health(&self) -> Health {
        let Some(sync) = &self.rt.sync else {
            return Health {
                role: Role::Starting,
                streaming: false,
                slot_lag_bytes: None,
                bus_pending: 0,
                last_lsn: 0,
                transactions: 0,
                reconnects: 0,
                connected_views: 0,
            };
        };
        let slot_lag_bytes = match &self.rt.pool {
            Some(pool) => tokio::time::timeout(
                Duration::from_secs(2),
                setup::slot_lag_bytes(pool, &sync.config.slot),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
            None => None,
        };
        let st = &sync.status;
        Health {
            role: st.role(),
            streaming: st.connected(),
            slot_lag_bytes,
            bus_pending: st.bus_pending(),
            last_lsn: st.last_lsn(),
            transactions: st.transactions(),
            reconnects: st.reconnects(),
            connected_views: sync.fanout.view_count(),
        }
    }

    /// A route that answers `GET path` with [`Live::health`] as JSON (for load balancers and
    /// dashboards; it says nothing secret, but mount it where only operators reach it if the
    /// figures matter to you).
    ///
    /// ```
    /// use live_core::{Live, LiveConfig};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.health_route("/live/health"));
    /// ```
    pub fn health_route<RS: Clone + Send + Sync + 'static>(&self, path: &str) -> Router<RS> {
        let live = self.clone();
        Router::new().route(
            path,
            get(move || {
                let live = live.clone();
                async move { axum::Json(live.health().await) }
            }),
        )
    }

    /// A stream of committed changes to rows of `T` (inserted / updated / deleted), in the
    /// spirit of EctoWatch, for background jobs, caches and webhooks. Holds up to `capacity`
    /// changes; a reader that falls further behind gets [`StreamError::Lagged`](crate::watch::StreamError).
    ///
    /// ```no_run
    /// # use live_core::{Live, Watch, watch::Change};
    /// # #[derive(Watch, Clone)] #[watch(table = "todos", subscription_key = "list_id")]
    /// # struct Todo { id: i64, list_id: i64 }
    /// # async fn f(live: Live<()>) {
    /// let mut changes = live.changes::<Todo>().key(7_i64).subscribe(1024);
    /// while let Some(change) = changes.recv().await {
    ///     match change {
    ///         Ok(Change::Inserted(todo)) => println!("new todo {}", todo.id),
    ///         Ok(other) => println!("{other:?}"),
    ///         Err(e) => eprintln!("{e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn changes<T: Watch>(&self) -> ChangesBuilder<'_, S, T> {
        ChangesBuilder {
            live: self,
            filter: crate::fanout::StreamFilter::All,
            _t: PhantomData,
        }
    }

    /// A `Set-Cookie` header value that stores `session` (signed) in the browser; views get it
    /// in `mount`.
    ///
    /// The cookie is `HttpOnly`, `SameSite=Lax`, expires after
    /// [`LiveConfig::session_max_age`] (the expiry is signed inside it too), and when the
    /// public URL is https it is `Secure` and named with the `__Host-` prefix. It is signed
    /// with a key of its own (derived from the secret key), so no other token of the app
    /// verifies as a session. Its payload is readable by the client: keep secrets out.
    ///
    /// ```
    /// use live_core::{Live, LiveConfig, Session};
    /// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
    /// let mut session = Session::default();
    /// session.insert("user_id", 42);
    /// let cookie = live.session_cookie(&session);
    /// assert!(cookie.to_str().unwrap().starts_with("live_session="));
    /// assert!(cookie.to_str().unwrap().contains("HttpOnly"));
    /// ```
    pub fn session_cookie(&self, session: &Session) -> HeaderValue {
        let max_age = self.rt.config.session_max_age;
        let signed = self.rt.cookies.sign(&SessionCookie {
            session: session.clone(),
            exp: crate::token::now_secs() + max_age.as_secs(),
        });
        let secure = if self.rt.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let value = format!(
            "{}={signed}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.rt.cookie_name(),
            max_age.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Chooses which changes a change stream gets; see [`Live::changes`].
pub struct ChangesBuilder<'a, S, T> {
    live: &'a Live<S>,
    filter: crate::fanout::StreamFilter,
    _t: PhantomData<fn() -> T>,
}

impl<S: Clone + Send + Sync + 'static, T: Watch> ChangesBuilder<'_, S, T> {
    /// Only rows whose subscription key is `key` (moves in and out appear as inserts and
    /// deletes).
    pub fn key(mut self, key: impl KeyValue) -> Self {
        self.filter = match key.to_key() {
            Some(k) => crate::fanout::StreamFilter::Key(k),
            None => crate::fanout::StreamFilter::Key(Key::from("\u{0}null")),
        };
        self
    }

    /// Only the row with this id.
    pub fn id(mut self, id: impl KeyValue) -> Self {
        self.filter = match id.to_key() {
            Some(k) => crate::fanout::StreamFilter::Id(k),
            None => crate::fanout::StreamFilter::Id(Key::from("\u{0}null")),
        };
        self
    }

    /// Subscribes, buffering up to `capacity` changes.
    pub fn subscribe(self, capacity: usize) -> ChangeStream<T> {
        match &self.live.rt.sync {
            Some(sync) => {
                let mut types = WatchTypes::default();
                types.add::<T>();
                sync.fanout.register_types(&types);
                ChangeStream::new(sync.fanout.clone(), self.filter, capacity)
            }
            None => ChangeStream::closed(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> LiveBuilder<S> {
    /// Sets the configuration (secret key, origins, limits).
    pub fn config(mut self, config: LiveConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The pool that mounts load rows with (`Mount::db`).
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Enables the replication listener (start it with [`Live::listen`]).
    pub fn sync(mut self, config: SyncConfig) -> Self {
        self.sync = Some(config);
        self
    }

    /// Sets the page layout.
    ///
    /// ```
    /// use live_core::{Live, LiveConfig, html};
    /// let live = Live::builder(())
    ///     .config(LiveConfig::new(vec![7u8; 32]))
    ///     .layout(|page| html! {
    ///         html { head { (page.head) link rel="stylesheet" href="/app.css"; } body { (page.body) } }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn layout(mut self, layout: impl Fn(Page<'_>) -> Markup + Send + Sync + 'static) -> Self {
        self.layout = Arc::new(layout);
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Result<Live<S>, LiveError> {
        let config = self.config.unwrap_or_else(LiveConfig::from_env);
        if config.secret_key.len() < 32 {
            return Err(LiveError::Config(
                "the secret key must be at least 32 bytes".into(),
            ));
        }
        let config_mounts = config.max_concurrent_mounts.max(1);
        if let Some(u) = &config.public_url {
            url::Url::parse(u)
                .map_err(|e| LiveError::Config(format!("public_url {u:?} is not a URL: {e}")))?;
        }
        let sync = self.sync.map(|config| SyncRuntime {
            fanout: Arc::new(Fanout::new(FanoutLimits::default())),
            status: Arc::new(ListenerStatus::default()),
            config,
            stop: Arc::new(AtomicBool::new(false)),
            started: AtomicBool::new(false),
            task: std::sync::Mutex::new(None),
            consumer: std::sync::Mutex::new(None),
        });
        Ok(Live {
            rt: Arc::new(Runtime {
                signer: Signer::new(&config.secret_key, "page-token"),
                cookies: Signer::new(&config.secret_key, "session-cookie"),
                state: self.state,
                config,
                pool: self.pool,
                sync,
                views: RwLock::new(HashMap::new()),
                layout: self.layout,
                mounts: Arc::new(Semaphore::new(config_mounts)),
                closing: tokio::sync::watch::Sender::new(false),
                topics: Arc::default(),
            }),
        })
    }
}

/// Mounts live views on an axum router.
pub trait RouterExt<RS> {
    /// Serves view `V` at `path` (an axum route pattern such as `/lists/{id}`): a GET renders
    /// the page; the browser then joins over the websocket.
    fn live_view<V: LiveView>(self, path: &str, live: &Live<V::State>) -> Self;
}

impl<RS: Clone + Send + Sync + 'static> RouterExt<RS> for Router<RS> {
    fn live_view<V: LiveView>(self, path: &str, live: &Live<V::State>) -> Self {
        live.register::<V>(path);
        let rt = live.rt.clone();
        let route: Arc<str> = Arc::from(path);
        self.route(
            path,
            get(move |params: RawPathParams, uri: Uri, headers: HeaderMap| {
                let rt = rt.clone();
                let route = route.clone();
                async move { render_page::<V>(rt, route, params, uri, headers).await }
            }),
        )
    }
}

/// Settings of the HTTP server ([`serve_with`]).
///
/// ```
/// use std::time::Duration;
/// let mut cfg = live_core::ServeConfig::default();
/// cfg.max_connections = 50_000;
/// assert_eq!(cfg.header_read_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A client must send a request's headers within this long, and an idle keep-alive
    /// connection is closed after it (default 10 s): half-open connections are not held.
    pub header_read_timeout: Duration,
    /// Connections (websockets included) open at once; further ones wait in the kernel's
    /// backlog (default 16,384).
    pub max_connections: usize,
    /// After the shutdown signal: how long open requests may take to finish before their
    /// connections are closed (default 10 s).
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves an app with `TCP_NODELAY` set on every connection (small diff frames must not wait
/// for Nagle's algorithm), a header-read timeout and a connection cap ([`ServeConfig`]).
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        ServeConfig::default(),
        std::future::pending(),
    )
    .await
}

/// Like [`serve`], until `shutdown` completes: then it stops accepting, lets open requests
/// finish (for at most [`ServeConfig::shutdown_timeout`]) and returns. Call
/// [`Live::shutdown`] in the shutdown future, so websockets are told to reconnect.
///
/// ```no_run
/// # async fn f(app: axum::Router, live: live_core::Live<()>) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// live_core::serve_until(listener, app, async move {
///     live_core::shutdown_signal().await; // Ctrl-C or SIGTERM
///     live.shutdown().await;
/// })
/// .await
/// # }
/// ```
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeConfig::default(), shutdown).await
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM — what systemd, containers and orchestrators send
/// to stop a process.
///
/// ```no_run
/// # async fn f() {
/// live_core::shutdown_signal().await;
/// println!("stopping");
/// # }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: stopping"),
        _ = term => tracing::info!("SIGTERM: stopping"),
    }
}

/// A connection's place under [`ServeConfig::max_connections`], held by its requests (and by
/// a websocket it upgrades to).
#[derive(Clone)]
pub(crate) struct ConnSlot(#[allow(dead_code)] pub Arc<OwnedSemaphorePermit>);

/// [`serve_until`] with explicit settings.
///
/// ```no_run
/// # async fn f(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let cfg = live_core::ServeConfig::default();
/// live_core::serve_with(listener, app, cfg, live_core::shutdown_signal()).await
/// # }
/// ```
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let slot = ConnSlot(Arc::new(slot));
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(slot.clone());
                let mut app = app.clone();
                async move {
                    tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await
                }
            });
        let mut stop = stop_rx.clone();
        let header_timeout = config.header_read_timeout;
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "connections still open at the shutdown deadline; closing them"
        );
        tasks.abort_all();
    }
    Ok(())
}

async fn serve_js_hashed() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        LIVE_JS,
    )
        .into_response()
}

async fn serve_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        LIVE_JS,
    )
        .into_response()
}

/// The first render of a GET: mount (disconnected), params, render, token, layout.
async fn render_page<V: LiveView>(
    rt: Arc<Runtime<V::State>>,
    route: Arc<str>,
    raw: RawPathParams,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !host_allowed(&rt.config, &headers) {
        tracing::warn!(host = ?headers.get(header::HOST), "page refused: host not allowed");
        return (StatusCode::MISDIRECTED_REQUEST, "host not allowed").into_response();
    }
    let session = session_from_headers(&headers, &rt.cookies, &rt.cookie_name());
    let path_params: BTreeMap<String, String> = raw
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let uri_str = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let params = Params::from_parts(path_params.clone(), &uri_str);
    // A page's mount takes a database connection too: it waits its turn with the joins.
    let permits = match rt.mount_permits(None).await {
        Ok(p) => p,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "Server busy, try again",
            )
                .into_response();
        }
    };
    let mut db = DbSlot::new(rt.pool.clone());
    let mut mounted = Err(ViewError::NoDatabase);
    for attempt in 0..2 {
        let mut m = Mount::<V> {
            state: &rt.state,
            params: &params,
            session: &session,
            connected: false,
            db: &mut db,
        };
        mounted = V::mount(&mut m).await;
        match &mounted {
            Err(e) if attempt == 0 && is_stale_statement(e) => {
                // The table changed under a cached statement: once more, with a clean cache.
                db.rollback().await;
                db.clear_statement_cache();
            }
            _ => break,
        }
    }
    if let Err(e) = db.finish().await {
        tracing::warn!(error = %e, "mount transaction did not commit");
    }
    drop(permits);
    let mut view = match mounted {
        Ok(v) => v,
        Err(e) => return error_page(&rt, &e),
    };
    // The same steps as a connected mount, so the first HTML equals the connected render
    // (and the page is right without JavaScript): sync hooks, then params.
    {
        let mut ctx = SyncCtx::<V> { state: &rt.state };
        if let Err(e) = view.run_sync_hooks(&mut ctx).await {
            tracing::error!(error = %e, "sync hook failed");
        }
    }
    let mut info = InfoSlot::<V::Message>::new();
    let mut pushes = Vec::new();
    {
        let mut ctx = Ctx::<V> {
            state: &rt.state,
            session: &session,
            info: &mut info,
            pushes: &mut pushes,
            topics: None,
        };
        if let Err(e) = view.handle_params(&params, &mut ctx).await {
            return error_page(&rt, &e);
        }
    }
    for p in &pushes {
        match p {
            Push::Redirect { to } | Push::Patch { to, .. } => {
                if !crate::view::is_local_url(to) {
                    tracing::error!(to = %to, "refused a redirect to another origin");
                    return error_page(&rt, &ViewError::other("redirect to another origin"));
                }
                return Redirect::to(to).into_response();
            }
            Push::Event { .. } => {}
        }
    }
    let body_html = crate::render::render_static(|| view.render());
    let title = view.title();
    let token = rt.signer.sign(&ViewToken::new(
        route.to_string(),
        path_params,
        session,
        rt.config.token_max_age,
    ));
    let id: String = crate::token::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let prefix = rt.config.prefix.trim_end_matches('/');
    let page = Page {
        title: title.as_deref(),
        head: html! {
            script defer src=(format!("{prefix}/{}", live_js_name())) data-live-socket=(format!("{prefix}/websocket")) {}
        },
        body: html! {
            div id=(format!("lv-{id}")) data-live-root data-live-token=(token) class="live-loading" {
                (PreEscaped(body_html))
            }
        },
    };
    Html((rt.layout)(page).into_string()).into_response()
}

fn error_page<S>(rt: &Runtime<S>, e: &ViewError) -> Response {
    let (status, text) = e.http_status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "mount failed");
    } else {
        tracing::info!(error = %e, "mount refused");
    }
    let detail = match e {
        ViewError::BadRequest(m) => Some(m.clone()),
        _ => None,
    };
    let page = Page {
        title: Some(text),
        head: html! {},
        body: html! {
            main class="live-error-page" {
                h1 { (status.as_u16()) " " (text) }
                @if let Some(d) = detail { p { (d) } }
                p { a href="/" { "Back to the start" } }
            }
        },
    };
    (status, Html((rt.layout)(page).into_string())).into_response()
}

/// `host[:port]` of a URL, lowercase, the port only when it is not the scheme's default.
fn url_authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The host part of a `Host` header value (without the port).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether the request's `Host` is one this app answers to (DNS rebinding sends a foreign
/// name that resolves here: it is refused).
pub(crate) fn host_allowed(config: &LiveConfig, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let public = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok());
    if let Some(p) = &public
        && url_authority(p) == host
    {
        return true;
    }
    if config
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(host_name(&host)))
    {
        return true;
    }
    if public.is_none() && config.allowed_hosts.is_empty() {
        // No configured name: only names that cannot be rebound.
        let name = host_name(&host);
        return name == "localhost" || name.parse::<std::net::IpAddr>().is_ok();
    }
    false
}

/// Whether the websocket's `Origin` may connect: a configured origin, the public URL's
/// origin, or (without a public URL) `http://` + the request's own `Host`.
pub(crate) fn origin_allowed(config: &LiveConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return config.allow_missing_origin;
    };
    if config.allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let Ok(o) = url::Url::parse(origin) else {
        return false;
    };
    if let Some(public) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    {
        return o.origin() == public.origin();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    o.scheme() == "http" && !host.is_empty() && url_authority(&o) == host
}

/// The websocket endpoint: checks the `Host` and `Origin`, then upgrades by hand (rather
/// than through axum's extractor) so that the socket keeps its raw connection: an oversized
/// frame gets its close frame and the rest of the frame is drained, not reset.
async fn ws_upgrade<S: Clone + Send + Sync + 'static>(
    State(rt): State<Arc<Runtime<S>>>,
    mut req: axum::extract::Request,
) -> Response {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    let headers = req.headers();
    if !host_allowed(&rt.config, headers) {
        tracing::warn!(host = ?headers.get(header::HOST), "websocket refused: host not allowed");
        return (StatusCode::MISDIRECTED_REQUEST, "host not allowed").into_response();
    }
    if !origin_allowed(&rt.config, headers) {
        tracing::warn!(
            origin = ?headers.get(header::ORIGIN),
            host = ?headers.get(header::HOST),
            "websocket refused: foreign origin"
        );
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "a websocket upgrade is required",
        )
            .into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return (StatusCode::BAD_REQUEST, "websocket version 13 is required").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let slot = req.extensions_mut().remove::<ConnSlot>();
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        )
            .into_response();
    };
    let max = rt.config.max_message_size;
    // Small buffers: an idle connection should cost little (a frame bigger than the read
    // buffer is still read whole; the write buffer grows as needed and flushes at 16 KiB).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size((2 * max).max(4 << 20))
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio::spawn(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    io,
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                crate::socket::serve_socket(rt, ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// Looks up a registered view and starts it for a join (`Err`: the unknown route).
pub(crate) fn spawn_view<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    req: JoinRequest,
) -> Result<(), String> {
    let spawner = {
        let views = rt.views.read().unwrap_or_else(|p| p.into_inner());
        views.get(&req.token.route).cloned()
    };
    match spawner {
        Some(s) => {
            s.spawn(rt.clone(), req);
            Ok(())
        }
        None => Err(req.token.route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn origins() {
        let mut c = LiveConfig::new(vec![0; 32]);
        assert!(origin_allowed(
            &c,
            &headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://evil.example"), "127.0.0.1:3000")
        ));
        // The scheme counts, and so does the port.
        assert!(!origin_allowed(
            &c,
            &headers(Some("https://127.0.0.1:3000"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(&c, &headers(None, "127.0.0.1:3000")));
        assert!(!origin_allowed(
            &c,
            &headers(Some("null"), "127.0.0.1:3000")
        ));
        c.allowed_origins.push("https://app.example".into());
        assert!(origin_allowed(
            &c,
            &headers(Some("https://app.example"), "internal:80")
        ));
        c.allow_missing_origin = true;
        assert!(origin_allowed(&c, &headers(None, "x")));
        // With a public URL, only its origin.
        let mut c = LiveConfig::new(vec![0; 32]);
        c.public_url = Some("https://app.example.com".into());
        assert!(origin_allowed(
            &c,
            &headers(Some("https://app.example.com"), "app.example.com")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://app.example.com"), "app.example.com")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("https://rebind.evil.example"), "rebind.evil.example")
        ));
    }

    #[test]
    fn hosts() {
        let c = LiveConfig::new(vec![0; 32]);
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:8080",
            "127.0.0.1",
            "LOCALHOST",
        ] {
            assert!(host_allowed(&c, &headers(None, ok)), "{ok}");
        }
        // A DNS-rebinding name that resolves to this machine.
        assert!(!host_allowed(
            &c,
            &headers(None, "rebind.evil.example:3000")
        ));
        assert!(!host_allowed(&c, &HeaderMap::new()));
        let mut c = LiveConfig::new(vec![0; 32]);
        c.public_url = Some("https://app.example.com".into());
        c.allowed_hosts.push("internal.lan".into());
        assert!(host_allowed(&c, &headers(None, "app.example.com")));
        assert!(host_allowed(&c, &headers(None, "internal.lan:8080")));
        assert!(!host_allowed(&c, &headers(None, "127.0.0.1:3000")));
        assert!(!host_allowed(&c, &headers(None, "evil.example")));
    }
}
