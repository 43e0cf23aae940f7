//! [`Live`], the runtime an app builds once, and [`RouterExt`], which mounts views on an axum
//! router.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::RawPathParams;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::routing::get;
use maud::Markup;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::assets::{live_js_name, serve_js, serve_js_hashed};
use super::page::{LayoutFn, Page, default_layout, render_page};
use super::upgrade::ws_upgrade;
use crate::config::LiveConfig;
use crate::fanout::{Fanout, FanoutLimits};
use crate::replication::apply::Applier;
use crate::replication::{
    BusConfig, ListenerStatus, Sink, SyncConfig, SyncError, run_listener, setup,
};
use crate::row::{Key, KeyValue, Watch, WatchTypes};
use crate::runtime::{LocalSink, Runtime, SyncRuntime};
use crate::task::Views;
use crate::token::{Session, SessionCookie, Signer};
use crate::view::LiveView;
use crate::watch::ChangeStream;

/// Why the runtime could not be built or started.
///
/// ```
/// use live_core::{Live, LiveConfig, LiveError};
///
/// let err = Live::builder(()).config(LiveConfig::new(b"too short".to_vec())).build().unwrap_err();
/// match err {
///     LiveError::Config(why) => assert!(why.contains("at least 32 bytes")),
///     other => panic!("{other}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The configuration is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Replication is not set up (the message says what to run).
    #[error(transparent)]
    Sync(#[from] SyncError),
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
    /// The views mounted on routes.
    pub(crate) views: Arc<Views<S>>,
    /// Puts a page together around a view's first render.
    pub(crate) layout: Arc<LayoutFn>,
}

impl<S> std::fmt::Debug for Live<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config", &self.rt.config)
            .field("sync", &self.rt.sync.as_ref().map(|s| &s.config))
            .finish_non_exhaustive()
    }
}

impl<S> Clone for Live<S> {
    fn clone(&self) -> Self {
        Live {
            rt: self.rt.clone(),
            views: self.views.clone(),
            layout: self.layout.clone(),
        }
    }
}

/// Builds a [`Live`].
///
/// ```
/// use live_core::{Live, LiveConfig};
///
/// #[derive(Clone)]
/// struct App { name: &'static str }
///
/// let live = Live::builder(App { name: "todos" })
///     .config(LiveConfig::new(vec![7u8; 32]))
///     // .pool(pool).sync(SyncConfig::new(url)): watched assigns, kept in sync with Postgres
///     .build()
///     .unwrap();
/// assert_eq!(live.state().name, "todos");
/// ```
pub struct LiveBuilder<S> {
    state: S,
    config: Option<LiveConfig>,
    pool: Option<PgPool>,
    sync: Option<SyncConfig>,
    layout: Arc<LayoutFn>,
}

impl<S> std::fmt::Debug for LiveBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBuilder")
            .field("config", &self.config)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
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
        Router::new()
            .route(&format!("{prefix}/live.js"), get(serve_js))
            .route(
                &format!("{prefix}/{}", live_js_name()),
                get(serve_js_hashed),
            )
            .route(
                &format!("{prefix}/websocket"),
                get(ws_upgrade::<S>).with_state(self.clone()),
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
        self.views.register::<V>(path);
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
        let types = sync.fanout.registry().all();
        if let Err(e) = setup::check(pool, &sync.config, &types).await {
            sync.started.store(false, Ordering::Release);
            return Err(e.into());
        }
        let applier = Applier::new(
            &sync.config.slot,
            sync.config.max_transaction_bytes,
            sync.fanout.registry().clone(),
        );
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

    /// Stops serving live views, gracefully: every websocket tells its client that the
    /// server stops (the client sends nothing more on it and will reconnect after a random
    /// delay of up to [`LiveConfig::reconnect_jitter`]), finishes the events the client had
    /// sent, writes their replies, and closes with code 1012; this waits for that (at most
    /// [`LiveConfig::drain_timeout`]). Then the replication listener stops (waiting up to 5 s
    /// for it to close its stream). A client reconnects to whatever the address serves next:
    /// its views mount there, with their kept assigns (`#[keep]`).
    ///
    /// ```no_run
    /// # async fn f(live: live_core::Live<()>) {
    /// live_core::shutdown_signal().await;
    /// live.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.rt.closing.send_replace(true);
        let mut open = self.rt.sockets.subscribe();
        let drained = open.wait_for(|n| *n == 0);
        let limit = self.rt.config.drain_timeout + Duration::from_millis(500);
        if tokio::time::timeout(limit, drained).await.is_err() {
            tracing::warn!(
                open = *self.rt.sockets.borrow(),
                "websockets still open at the drain deadline"
            );
        }
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
///
/// ```
/// use live_core::{Live, LiveConfig, Watch};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64 }
///
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// let whole_table = live.changes::<Todo>().subscribe(4096);
/// let one_list = live.changes::<Todo>().key(7_i64).subscribe(1024); // list_id = 7
/// let one_row = live.changes::<Todo>().id(42_i64).subscribe(16); // id = 42
/// # drop((whole_table, one_list, one_row));
/// ```
pub struct ChangesBuilder<'a, S, T> {
    live: &'a Live<S>,
    filter: crate::fanout::StreamFilter,
    _t: PhantomData<fn() -> T>,
}

impl<S, T> std::fmt::Debug for ChangesBuilder<'_, S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangesBuilder")
            .field("row", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
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
            fanout: Arc::new(Fanout::new(FanoutLimits::default(), Arc::default())),
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
                keeper: Signer::new(&config.secret_key, "keep-blob"),
                state: self.state,
                config,
                pool: self.pool,
                sync,
                mounts: Arc::new(Semaphore::new(config_mounts)),
                closing: tokio::sync::watch::Sender::new(false),
                sockets: tokio::sync::watch::Sender::new(0),
                topics: Arc::default(),
            }),
            views: Arc::default(),
            layout: self.layout,
        })
    }
}

/// Mounts live views on an axum router.
///
/// ```
/// use axum::Router;
/// use live_core::{Live, LiveConfig, RouterExt};
/// # use live_core::{Assigns, LiveView, Markup, Mount, ViewError, html};
/// # #[derive(Assigns)] struct Hello { name: String }
/// # impl LiveView for Hello { type State = (); type Message = ();
/// #   async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
/// #       Ok(Hello { name: ctx.params().parse("name")? })
/// #   }
/// #   fn render(&self) -> Markup { html! { h1 { "Hello, " (self.name) } } } }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build()?;
/// let mut app: Router = Router::new()
///     .live_view::<Hello>("/hello/{name}", &live)
///     .merge(live.router()); // the client script and the websocket
///
/// // A GET renders the page (here in-process, as a test would).
/// use tower_service::Service;
/// let get = axum::http::Request::get("/hello/ada")
///     .header("host", "localhost")
///     .body(axum::body::Body::empty())?;
/// let page = app.call(get).await?;
/// assert_eq!(page.status(), 200);
/// let html = axum::body::to_bytes(page.into_body(), 1 << 20).await?;
/// assert!(String::from_utf8(html.to_vec())?.contains("<h1>Hello, ada</h1>"));
/// # Ok(()) }
/// ```
pub trait RouterExt<RS> {
    /// Serves view `V` at `path` (an axum route pattern such as `/lists/{id}`): a GET renders
    /// the page; the browser then joins over the websocket.
    fn live_view<V: LiveView>(self, path: &str, live: &Live<V::State>) -> Self;
}

impl<RS: Clone + Send + Sync + 'static> RouterExt<RS> for Router<RS> {
    fn live_view<V: LiveView>(self, path: &str, live: &Live<V::State>) -> Self {
        live.register::<V>(path);
        let live = live.clone();
        let route: Arc<str> = Arc::from(path);
        self.route(
            path,
            get(move |params: RawPathParams, uri: Uri, headers: HeaderMap| {
                let live = live.clone();
                let route = route.clone();
                async move { render_page::<V>(live, route, params, uri, headers).await }
            }),
        )
    }
}
