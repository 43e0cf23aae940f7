//! Shared helpers of the integration tests: a private Postgres cluster per test binary (one
//! database per test), the app server on a free port, a websocket client that keeps the page
//! model like the browser does, and headless Chromium through chromedriver.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use live_core::postgres::LocalPostgres;
use live_core::testing::ClientModel;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod browser;
pub mod faults;
pub mod items;
pub mod nats;
pub mod node;
pub mod proxy;

/// The secret key of test apps.
pub const SECRET: &[u8] = b"test-secret-key-0123456789abcdef0123456789";

static CLUSTER: Mutex<Option<LocalPostgres>> = Mutex::new(None);
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_cluster() {
    if let Ok(mut c) = CLUSTER.lock() {
        c.take();
    }
}

/// Logs to stderr when `RUST_LOG` is set.
pub fn init_tracing() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Runs `f` with the cluster of this test binary, starting it on first use. It is stopped
/// and removed when the process exits.
pub fn with_cluster<R>(f: impl FnOnce(&mut LocalPostgres) -> R) -> R {
    let mut guard = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let pg = LocalPostgres::temporary().expect("start a private postgres cluster");
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe { libc::atexit(stop_cluster) };
        *guard = Some(pg);
    }
    f(guard.as_mut().expect("cluster"))
}

/// A fresh database of the shared cluster.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
    /// A pool on it.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates a database and runs `setup` in it (several statements allowed).
    pub async fn new(setup: &str) -> TestDb {
        init_tracing();
        let admin_url = with_cluster(|c| c.url("postgres"));
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}", std::process::id());
        let admin = PgPool::connect(&admin_url).await.expect("connect admin");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = with_cluster(|c| c.url(&name));
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("connect");
        if !setup.is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_string()))
                .execute(&pool)
                .await
                .expect("setup sql");
        }
        TestDb { url, name, pool }
    }
}

impl TestDb {
    /// A runtime on this database with `config`: its pool, and a replication slot of its own.
    pub fn live(&self, config: live_core::LiveConfig) -> live_core::Live<()> {
        live_core::Live::builder(())
            .config(config)
            .pool(self.pool.clone())
            .sync(live_core::SyncConfig::new(&self.url).slot(format!("slot_{}", self.name)))
            .build()
            .expect("runtime")
    }

    /// Runs SQL (several statements allowed) through the pool; panics with the statement on
    /// error.
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs SQL with the `psql` program: a write by another process and protocol client.
    pub fn psql(&self, sql: &str) {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A port of 127.0.0.1 that is free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tiny deterministic generator (reproducible write sequences).
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Serves `app` on a free port of 127.0.0.1; returns the address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = live_core::serve(listener, app).await;
    });
    addr
}

/// GETs a page; returns status and body.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(body)
        }
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The view token and container id in a page.
pub fn page_token(html: &str) -> (String, String) {
    let attr = |name: &str| {
        let start = html
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("no {name} in page: {html}"))
            + name.len()
            + 2;
        let end = html[start..].find('"').expect("attribute end") + start;
        html[start..end].to_string()
    };
    (attr("data-live-token"), attr("id"))
}

/// A websocket client speaking the live protocol, keeping one model per joined topic.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    /// Models by topic.
    pub models: std::collections::HashMap<String, ClientModel>,
    /// Every frame received, in order.
    pub log: Vec<Value>,
    /// Bytes of `diff` payloads received (for size checks).
    pub diff_bytes: usize,
    /// Answer a `drain` with `drained` (as the browser client does; default true).
    pub answer_drain: bool,
}

/// How a connection attempt ended.
pub enum Connect {
    /// Connected.
    Ok(Box<WsClient>),
    /// Refused with this HTTP status.
    Refused(u16),
}

impl WsClient {
    /// Connects with `Origin: http://<addr>`.
    pub async fn connect(addr: std::net::SocketAddr) -> WsClient {
        match Self::connect_with_origin(addr, Some(&format!("http://{addr}"))).await {
            Connect::Ok(c) => *c,
            Connect::Refused(s) => panic!("websocket refused: {s}"),
        }
    }

    /// Connects with the given `Origin` (or none).
    pub async fn connect_with_origin(addr: std::net::SocketAddr, origin: Option<&str>) -> Connect {
        let mut req = format!("ws://{addr}/live/websocket")
            .into_client_request()
            .expect("request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("Origin", o.parse().expect("origin header"));
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Connect::Ok(Box::new(WsClient {
                ws,
                next_ref: 1,
                models: Default::default(),
                log: Vec::new(),
                diff_bytes: 0,
                answer_drain: true,
            })),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Connect::Refused(resp.status().as_u16())
            }
            Err(e) => panic!("websocket connect: {e}"),
        }
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// Sends a frame; returns its ref.
    pub async fn send_frame(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        let f = json!([join_ref, r, topic, event, payload]);
        self.send_text(f.to_string()).await;
        r
    }

    /// The next frame (applying diffs to the models); `None` on close or timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next()).await.ok()??;
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("frame is JSON");
                    if v[2] == "phoenix" && v[3] == "drain" && self.answer_drain {
                        // The server stops: like the browser client, send nothing more and
                        // say so, so it can close once it answered what was sent.
                        let r = self.next_ref.to_string();
                        self.next_ref += 1;
                        let f = json!([null, r, "phoenix", "drained", {}]);
                        let _ = self.ws.send(Message::Text(f.to_string().into())).await;
                    }
                    if v[3] == "diff" {
                        self.diff_bytes += v[4].to_string().len();
                        let topic = v[2].as_str().unwrap_or_default().to_string();
                        if let Some(m) = self.models.get_mut(&topic) {
                            m.apply(&v[4])
                                .unwrap_or_else(|e| panic!("diff did not apply: {e}: {v}"));
                        }
                    }
                    self.log.push(v.clone());
                    return Some(v);
                }
                Ok(Message::Close(c)) => {
                    self.log.push(json!([
                        "close",
                        c.map(|c| (u16::from(c.code), c.reason.to_string()))
                    ]));
                    return None;
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until the reply to `msg_ref`; returns its payload.
    pub async fn reply(&mut self, msg_ref: &str) -> Value {
        loop {
            let f = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no reply to {msg_ref}; log: {:?}", self.log));
            if f[3] == "reply" && f[1] == msg_ref {
                return f[4].clone();
            }
        }
    }

    /// Joins `topic` with a page token; returns the reply payload and sets up the model.
    pub async fn join(&mut self, topic: &str, token: &str, url: &str) -> Value {
        let r = self
            .send_frame(
                Some(topic),
                topic,
                "join",
                json!({"token": token, "url": url}),
            )
            .await;
        let reply = self.reply(&r).await;
        if reply["status"] == "ok" {
            let m = ClientModel::from_rendered(&reply["response"]["rendered"], 1).expect("model");
            self.models.insert(topic.to_string(), m);
        }
        reply
    }

    /// Joins `topic` with a whole join payload (a `resume`, a `keep` blob); returns the reply.
    /// A fresh mount's reply sets up the topic's model; a resumed view keeps `model` (the
    /// client's copy it resumes from), to which the diffs that follow apply.
    pub async fn join_with(
        &mut self,
        topic: &str,
        payload: Value,
        model: Option<ClientModel>,
    ) -> Value {
        let r = self.send_frame(Some(topic), topic, "join", payload).await;
        if let Some(m) = model {
            self.models.insert(topic.to_string(), m);
        }
        let reply = self.reply(&r).await;
        let resp = &reply["response"];
        if reply["status"] == "ok" && resp.get("rendered").is_some() {
            let m = ClientModel::from_rendered(&resp["rendered"], 1).expect("model");
            self.models.insert(topic.to_string(), m);
        }
        reply
    }

    /// Sends an event to a joined topic and waits for its reply.
    pub async fn event(&mut self, topic: &str, kind: &str, name: &str, value: Value) -> Value {
        let r = self
            .send_frame(
                Some(topic),
                topic,
                "event",
                json!({"type": kind, "event": name, "value": value}),
            )
            .await;
        self.reply(&r).await
    }

    /// The HTML of a joined topic as this client holds it.
    pub fn html(&self, topic: &str) -> String {
        self.models
            .get(topic)
            .map(ClientModel::html)
            .unwrap_or_default()
    }

    /// Reads frames until `pred` holds for the topic's HTML.
    pub async fn wait_html(
        &mut self,
        topic: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !pred(&self.html(topic)) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next(left).await.is_none() {
                return pred(&self.html(topic));
            }
        }
        true
    }
}

/// Opens a page and joins its view on a new connection; returns the client and the topic.
pub async fn open(addr: std::net::SocketAddr, path: &str) -> (WsClient, String) {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    let (token, id) = page_token(&body);
    let mut c = WsClient::connect(addr).await;
    let topic = format!("lv:{id}");
    let reply = c
        .join(&topic, &token, &format!("http://{addr}{path}"))
        .await;
    assert_eq!(reply["status"], "ok", "join {path}: {reply}");
    (c, topic)
}
