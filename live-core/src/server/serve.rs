//! Serving an app: `TCP_NODELAY`, a header-read timeout, a connection cap, graceful shutdown
//! with a deadline, and the signal that starts it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Settings of the HTTP server ([`serve_with`]).
///
/// ```
/// use std::time::Duration;
/// let mut cfg = live_core::ServeConfig::default();
/// cfg.max_connections = 50_000;
/// assert_eq!(cfg.header_read_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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
///
/// ```no_run
/// use axum::{Router, routing::get};
/// # async fn run() -> std::io::Result<()> {
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// live_core::serve(listener, app).await // runs until the process ends
/// # }
/// ```
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
/// [`Live::shutdown`](crate::Live::shutdown) in the shutdown future, so websockets are told to reconnect.
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
