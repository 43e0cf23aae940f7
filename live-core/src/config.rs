//! Settings of the runtime ([`LiveConfig`]).

use std::time::Duration;

/// Settings of the runtime.
///
/// ```
/// use std::time::Duration;
/// use live_core::{Live, LiveConfig};
///
/// let mut config = LiveConfig::new(vec![7u8; 32]); // or LiveConfig::from_env()
/// config.public_url = Some("https://app.example.com".into());
/// config.resume_grace = Duration::from_secs(60);
/// assert_eq!(config.prefix, "/live");
/// let live = Live::builder(()).config(config).build().unwrap();
/// # drop(live);
/// ```
#[derive(Clone)]
#[non_exhaustive]
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
    /// How long a view outlives its socket, waiting for its client to resume it (default
    /// 30 s). Meanwhile it applies changes (without rendering); a client that comes back gets
    /// only what it missed, with every assign as it was.
    pub resume_grace: Duration,
    /// Diffs a view keeps for a client that comes back having missed some (default 32).
    pub resume_window_frames: usize,
    /// Bytes of those diffs per view (default 64 KiB). A client further behind gets the
    /// whole page.
    pub resume_window_bytes: usize,
    /// Views waiting for their client at once on this node (default 10,000); past it a view
    /// whose socket drops ends at once.
    pub max_detached_views: usize,
    /// Largest JSON of a view's `#[keep]` fields (default 4 KiB); a larger one is not sent
    /// (logged as an error: keep small UI state only).
    pub max_kept_bytes: usize,
    /// When the server stops gracefully, each client reconnects after a random delay up to
    /// this long (default 2 s), so clients do not all come back at once.
    pub reconnect_jitter: Duration,
    /// When the server stops gracefully: how long sockets may take to finish the events in
    /// flight and tell their clients to reconnect (default 5 s).
    pub drain_timeout: Duration,
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
            .field("resume_grace", &self.resume_grace)
            .field("resume_window_frames", &self.resume_window_frames)
            .field("resume_window_bytes", &self.resume_window_bytes)
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
            resume_grace: Duration::from_secs(30),
            resume_window_frames: 32,
            resume_window_bytes: 64 << 10,
            max_detached_views: 10_000,
            max_kept_bytes: 4 << 10,
            reconnect_jitter: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(5),
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
