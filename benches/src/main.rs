//! Load and replication benchmarks of live-core, on 127.0.0.1, bounded in count and time.
//!
//! ```text
//! cargo run --release -p live-bench -- scale all        # scenarios 1–6 (or: scale 2)
//! cargo run --release -p live-bench -- replication      # bulk decode rate vs pg_recvlogical
//! cargo run --release -p live-bench -- attack [EXE]     # hostile clients (vs another build)
//! cargo run --release -p live-bench -- kanban           # key-set views: renames, fan-out, memory
//! cargo run --release -p live-bench -- resume           # a dropped connection: resume vs remount
//! ```
//!
//! Each run starts a private Postgres (`wal_level=logical`) and the app server as a child
//! process, connects websocket clients that join views exactly as a browser does (a GET of the
//! page for its token, then the websocket join), writes rows through a separate connection and
//! measures commit-to-frame latency at every client. Figures print as `name: value unit`.

mod nodes;
mod resume;
mod server;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use live_core::postgres::LocalPostgres;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SCHEMA: &str = "
CREATE TABLE items (id bigserial PRIMARY KEY, list_id bigint NOT NULL, title text NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE INDEX items_list ON items (list_id);
ALTER TABLE items REPLICA IDENTITY FULL;
CREATE TABLE bulk (id bigserial PRIMARY KEY, list_id bigint NOT NULL, title text NOT NULL, n integer NOT NULL);
CREATE TABLE kb_users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE kb_cards (id bigint PRIMARY KEY, board_id bigint NOT NULL, assignee_id bigint, title text NOT NULL);
CREATE INDEX kb_cards_board ON kb_cards (board_id);
CREATE PUBLICATION live_publication FOR TABLE items, bulk, kb_users, kb_cards;
";

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

struct Db {
    _pg: LocalPostgres,
    url: String,
    pool: PgPool,
    port: u16,
}

async fn database(lists: i64, rows_per_list: i64) -> Db {
    let pg = tokio::task::spawn_blocking(LocalPostgres::temporary)
        .await
        .expect("join")
        .expect("start postgres");
    let admin = PgPool::connect(&pg.url("postgres")).await.expect("connect");
    sqlx::query("CREATE DATABASE bench")
        .execute(&admin)
        .await
        .expect("create db");
    admin.close().await;
    let url = pg.url("bench");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql(SCHEMA).execute(&pool).await.expect("schema");
    sqlx::query(
        "INSERT INTO items (list_id, title) SELECT l, 'init-' || g FROM generate_series(1, $1::bigint) l, generate_series(1, $2::bigint) g",
    )
    .bind(lists)
    .bind(rows_per_list)
    .execute(&pool)
    .await
    .expect("seed");
    let port = pg.port();
    Db {
        _pg: pg,
        url,
        pool,
        port,
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(url: &str) -> Server {
        let exe = std::env::current_exe().expect("current exe");
        Server::start_exe(&exe, url)
    }

    /// Starts the `serve` mode of a live-bench binary (this one, or a build of another
    /// version of the code, for a baseline in the same run).
    fn start_exe(exe: &std::path::Path, url: &str) -> Server {
        Server::spawn(exe, &["serve", url], Stdio::inherit())
    }

    /// Starts one node of several on the bus at `nats`.
    fn start_node(url: &str, nats: &str) -> Server {
        let exe = std::env::current_exe().expect("current exe");
        Server::spawn(&exe, &["serve", url, nats], Stdio::null())
    }

    /// Runs `exe args` and waits for the `PORT <n>` line.
    fn spawn(exe: &std::path::Path, args: &[&str], stderr: Stdio) -> Server {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start server");
        let stdout = child.stdout.take().expect("stdout");
        let mut port = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(p) = line.strip_prefix("PORT ") {
                port = p.trim().parse().expect("port");
                break;
            }
        }
        assert!(port > 0, "the server did not start");
        Server { child, port }
    }

    /// SIGTERM, and waits for the process to end (a graceful stop).
    fn terminate(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return; // already gone (and reaped): its pid may belong to someone else now
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// GETs `/lists/<list>`; returns the view token and container id.
async fn page_token(port: u16, list: i64) -> (String, String) {
    page_token_at(port, "/lists", list).await
}

/// GETs `<prefix>/<list>`; returns the view token and container id.
async fn page_token_at(port: u16, prefix: &str, list: i64) -> (String, String) {
    let body = http_get(port, &format!("{prefix}/{list}")).await;
    let attr = |name: &str| {
        let start = body.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
        let end = body[start..].find('"').expect("end") + start;
        body[start..end].to_string()
    };
    (attr("data-live-token"), attr("id"))
}

/// GETs `path` (`Connection: close`); returns the body ("" when the server is gone).
async fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    arrivals: Vec<(u32, Instant)>,
    frame_bytes: Vec<usize>,
}

/// Every `c<digits>z` marker in a frame.
fn markers(text: &str, mut f: impl FnMut(u32)) {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b'c' && b[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            let mut n: u32 = 0;
            while j < b.len() && b[j].is_ascii_digit() {
                n = n.wrapping_mul(10).wrapping_add(u32::from(b[j] - b'0'));
                j += 1;
            }
            if j < b.len() && b[j] == b'z' {
                f(n);
            }
            i = j;
        } else {
            i += 1;
        }
    }
}

/// One browser-like view: websocket join, then record every frame until `stop`.
async fn view_client(
    port: u16,
    prefix: &'static str,
    token: Arc<(String, String)>,
    list: i64,
    ready: Arc<AtomicU64>,
    last_seen: Arc<(AtomicU64, Notify)>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut req = format!("ws://127.0.0.1:{port}/live/websocket")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().expect("origin"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let topic = format!("lv:{}-{list}", token.1);
    let join = serde_json::json!([topic, "1", topic, "join", {"token": token.0, "url": format!("http://127.0.0.1:{port}{prefix}/{list}")}]);
    ws.send(Message::Text(join.to_string().into()))
        .await
        .expect("join");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"reply\"") => {
                assert!(t.as_str().contains("\"ok\""), "join failed: {}", t.as_str());
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("join: {other:?}"),
        }
    }
    ready.fetch_add(1, Ordering::AcqRel);
    let mut seen = Seen::default();
    let mut beat = tokio::time::interval(Duration::from_secs(25));
    beat.tick().await;
    let mut heartbeat_ref = 100u64;
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    let text = t.as_str();
                    let mut any = false;
                    markers(text, |n| {
                        seen.arrivals.push((n, now));
                        any = true;
                        let (max, notify) = &*last_seen;
                        max.fetch_max(u64::from(n) + 1, Ordering::AcqRel);
                        notify.notify_waiters();
                    });
                    if any {
                        seen.frame_bytes.push(text.len());
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = beat.tick() => {
                heartbeat_ref += 1;
                let hb = serde_json::json!([null, heartbeat_ref.to_string(), "phoenix", "heartbeat", {}]);
                let _ = ws.send(Message::Text(hb.to_string().into())).await;
            }
            _ = stop.changed() => break,
        }
    }
    seen
}

/// A load scenario.
struct Scenario {
    name: &'static str,
    lists: i64,
    rows_per_list: i64,
    views: usize,
    /// Changes per second; `None`: sequential (each waits for its frame).
    rate: Option<f64>,
    changes: usize,
}

struct Outcome {
    latencies_ms: Vec<f64>,
    expected: usize,
    received: usize,
    frame_bytes: Vec<usize>,
    connect_secs: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn connect_views(
    server: &Server,
    lists: i64,
    views: usize,
    ready: &Arc<AtomicU64>,
    last_seen: &Arc<(AtomicU64, Notify)>,
    stop: &watch::Receiver<bool>,
) -> Vec<(i64, tokio::task::JoinHandle<Seen>)> {
    connect_views_at(server, "/lists", lists, views, ready, last_seen, stop).await
}

/// Connects `views` views of `<prefix>/1..=lists`, spread round-robin.
async fn connect_views_at(
    server: &Server,
    prefix: &'static str,
    lists: i64,
    views: usize,
    ready: &Arc<AtomicU64>,
    last_seen: &Arc<(AtomicU64, Notify)>,
    stop: &watch::Receiver<bool>,
) -> Vec<(i64, tokio::task::JoinHandle<Seen>)> {
    let mut tokens = HashMap::new();
    for l in 1..=lists {
        tokens.insert(l, Arc::new(page_token_at(server.port, prefix, l).await));
    }
    let mut handles = Vec::with_capacity(views);
    for v in 0..views {
        let list = 1 + (v as i64 % lists);
        let h = tokio::spawn(view_client(
            server.port,
            prefix,
            tokens[&list].clone(),
            list,
            ready.clone(),
            last_seen.clone(),
            stop.clone(),
        ));
        handles.push((list, h));
        // Bounded concurrency of joins.
        while (handles.len() as u64) - ready.load(Ordering::Acquire) > 64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while ready.load(Ordering::Acquire) < views as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handles
}

async fn run_scenario(s: &Scenario) -> Outcome {
    let db = database(s.lists, s.rows_per_list).await;
    let server = Server::start(&db.url);
    let ready = Arc::new(AtomicU64::new(0));
    let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let t = Instant::now();
    let handles = connect_views(&server, s.lists, s.views, &ready, &last_seen, &stop_rx).await;
    let connect_secs = t.elapsed().as_secs_f64();
    // Items of each list, to update round-robin.
    let ids: Vec<(i64, i64)> = sqlx::query_as("SELECT id, list_id FROM items ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("ids");
    let mut by_list: HashMap<i64, Vec<i64>> = HashMap::new();
    for (id, l) in ids {
        by_list.entry(l).or_default().push(id);
    }
    let mut sent: Vec<(i64, Instant)> = Vec::with_capacity(s.changes);
    let period = s.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let start = Instant::now();
    for seq in 0..s.changes {
        let list = 1 + (seq as i64 % s.lists);
        let items = &by_list[&list];
        let id = items[(seq / s.lists as usize) % items.len()];
        if let Some(p) = period {
            let due = start + p * seq as u32;
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
        let t0 = Instant::now();
        sqlx::query("UPDATE items SET title = $2 WHERE id = $1")
            .bind(id)
            .bind(format!("c{seq}z"))
            .execute(&db.pool)
            .await
            .expect("update");
        sent.push((list, t0));
        if period.is_none() {
            let (max, notify) = &*last_seen;
            while max.load(Ordering::Acquire) <= seq as u64 {
                let waiter = notify.notified();
                if max.load(Ordering::Acquire) > seq as u64 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), waiter).await;
            }
        }
    }
    // Let the last frames arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_tx.send(true);
    collect(handles, &sent, s.lists, connect_secs).await
}

/// Gathers what every client saw: commit-to-frame latency of each marker's first arrival at
/// each client, against `sent[seq] = (list, commit start)`.
async fn collect(
    handles: Vec<(i64, tokio::task::JoinHandle<Seen>)>,
    sent: &[(i64, Instant)],
    lists: i64,
    connect_secs: f64,
) -> Outcome {
    let mut latencies = Vec::new();
    let mut expected = 0;
    let mut received = 0;
    let mut frame_bytes = Vec::new();
    for l in 1..=lists {
        let views = handles.iter().filter(|(x, _)| *x == l).count();
        expected += sent.iter().filter(|(x, _)| *x == l).count() * views;
    }
    for (_list, h) in handles {
        let seen = h.await.expect("client");
        let mut firsts: HashMap<u32, Instant> = HashMap::new();
        for (n, at) in seen.arrivals {
            firsts.entry(n).or_insert(at);
        }
        received += firsts.len();
        for (n, at) in firsts {
            if let Some((_, t0)) = sent.get(n as usize) {
                latencies.push(at.duration_since(*t0).as_secs_f64() * 1e3);
            }
        }
        frame_bytes.extend(seen.frame_bytes);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Outcome {
        latencies_ms: latencies,
        expected,
        received,
        frame_bytes,
        connect_secs,
    }
}

fn report(name: &str, o: &Outcome) -> String {
    let l = &o.latencies_ms;
    let p50 = percentile(l, 0.50);
    let p95 = percentile(l, 0.95);
    let p99 = percentile(l, 0.99);
    let max = l.last().copied().unwrap_or(f64::NAN);
    let lost = o.expected.saturating_sub(o.received);
    let bytes = if o.frame_bytes.is_empty() {
        0
    } else {
        o.frame_bytes.iter().sum::<usize>() / o.frame_bytes.len()
    };
    println!("{name}_p50: {p50:.2} ms");
    println!("{name}_p95: {p95:.2} ms");
    println!("{name}_p99: {p99:.2} ms");
    println!("{name}_max: {max:.2} ms");
    println!("{name}_frames_expected: {} frames", o.expected);
    println!("{name}_frames_lost: {lost} frames");
    println!("{name}_bytes_per_frame: {bytes} B");
    println!("{name}_connect_time: {:.2} s", o.connect_secs);
    format!(
        "| {name} | {p50:.2} | {p95:.2} | {p99:.2} | {max:.2} | {} | {lost} | {bytes} |",
        o.expected
    )
}

async fn idle_memory(views: usize, lists: i64) -> Vec<String> {
    let db = database(lists, 5).await;
    let server = Server::start(&db.url);
    let ready = Arc::new(AtomicU64::new(0));
    let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Warm up (one view per list), then measure the rest.
    let warm = connect_views(&server, lists, lists as usize, &ready, &last_seen, &stop_rx).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let ready2 = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let handles = connect_views(&server, lists, views, &ready2, &last_seen, &stop_rx).await;
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    let per_view = (after.saturating_sub(before)) as f64 / views as f64;
    println!("idle_views_connected: {} views", handles.len() + warm.len());
    println!("idle_connect_time_{views}: {secs:.2} s");
    println!("idle_server_rss_before: {before} KiB");
    println!("idle_server_rss_after: {after} KiB");
    println!("idle_memory_per_view: {per_view:.2} KiB");
    let _ = stop_tx.send(true);
    for (_, h) in handles.into_iter().chain(warm) {
        let _ = h.await;
    }
    vec![format!(
        "| 4 idle views | {} views connected | {per_view:.2} KiB per view | RSS {before} → {after} KiB |",
        views + lists as usize
    )]
}

async fn scale(which: &str) {
    let all = which == "all";
    let mut table = vec![
        "| scenario | p50 ms | p95 ms | p99 ms | max ms | frames | lost | B/frame |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ];
    let scenarios = [
        (
            "1",
            Scenario {
                name: "s1_one_view_sequential",
                lists: 1,
                rows_per_list: 5,
                views: 1,
                rate: None,
                changes: 1000,
            },
        ),
        (
            "2",
            Scenario {
                name: "s2_500_views_64_per_s",
                lists: 1,
                rows_per_list: 5,
                views: 500,
                rate: Some(64.0),
                changes: 640,
            },
        ),
        (
            "3",
            Scenario {
                name: "s3_1000_views_10_per_s",
                lists: 1,
                rows_per_list: 5,
                views: 1000,
                rate: Some(10.0),
                changes: 100,
            },
        ),
        (
            "5",
            Scenario {
                name: "s5_1000_views_100_lists_200_per_s",
                lists: 100,
                rows_per_list: 5,
                views: 1000,
                rate: Some(200.0),
                changes: 2000,
            },
        ),
        (
            "6",
            Scenario {
                name: "s6_1000_row_list_one_row",
                lists: 1,
                rows_per_list: 1000,
                views: 1,
                rate: None,
                changes: 300,
            },
        ),
    ];
    for (id, s) in &scenarios {
        if all || which == *id {
            eprintln!("running scenario {id}: {}", s.name);
            let o = run_scenario(s).await;
            table.push(report(s.name, &o));
        }
    }
    if all || which == "4" {
        eprintln!("running scenario 4: 10,000 idle views");
        table.extend(idle_memory(10_000, 100).await);
    }
    println!();
    for row in table {
        println!("{row}");
    }
}

/// Decode rate on a 100,000-row bulk insert: the listener (pgoutput decoding, folding,
/// routing; and with a change stream, decoding every row into a Rust struct) against
/// `pg_recvlogical` on a slot of the same kind, in the same run.
async fn replication() {
    use live_core::{Live, LiveConfig, SyncConfig, Watch};
    #[derive(Watch, Clone)]
    #[watch(table = "bulk", subscription_key = "list_id")]
    struct Bulk {
        id: i64,
        list_id: i64,
        title: String,
        n: i32,
    }
    const ROWS: i64 = 100_000;
    let db = database(1, 1).await;
    let mut lines = Vec::new();
    for round in 1..=3 {
        for slot in ["ours", "ours_stream", "recv"] {
            sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
                .bind(format!("{slot}_{round}"))
                .execute(&db.pool)
                .await
                .expect("slot");
        }
        sqlx::query("INSERT INTO bulk (list_id, title, n) SELECT g % 100, 'bulk row number ' || g, g FROM generate_series(1, $1::bigint) g")
            .bind(ROWS)
            .execute(&db.pool)
            .await
            .expect("bulk insert");
        let end: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&db.pool)
            .await
            .expect("lsn");

        // pg_recvlogical.
        let t = Instant::now();
        let status = Command::new("pg_recvlogical")
            .args([
                "-d",
                &format!(
                    "host=127.0.0.1 port={} user=postgres password={} dbname=bench",
                    db.port,
                    db._pg.password()
                ),
            ])
            .args([
                "--slot",
                &format!("recv_{round}"),
                "--start",
                "--endpos",
                &end,
            ])
            .args([
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=live_publication",
                "-f",
                "/dev/null",
                "--no-loop",
            ])
            .status()
            .expect("pg_recvlogical");
        let recv_secs = t.elapsed().as_secs_f64();
        assert!(status.success(), "pg_recvlogical failed");

        // Ours: decode, fold, route.
        let live = Live::builder(())
            .config(LiveConfig::new(vec![7; 32]))
            .pool(db.pool.clone())
            .sync(SyncConfig::new(&db.url).slot(format!("ours_{round}")))
            .build()
            .expect("runtime");
        let _none = live.changes::<Bulk>().key(-1_i64).subscribe(16);
        let t = Instant::now();
        live.listen().await.expect("listen");
        let status = live.listener_status().expect("status");
        while status.transactions() < 1 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let ours_secs = t.elapsed().as_secs_f64();
        live.shutdown().await;

        // Ours, with every row decoded into the Rust struct by a change stream.
        let live = Live::builder(())
            .config(LiveConfig::new(vec![7; 32]))
            .pool(db.pool.clone())
            .sync(SyncConfig::new(&db.url).slot(format!("ours_stream_{round}")))
            .build()
            .expect("runtime");
        let mut all = live.changes::<Bulk>().subscribe(ROWS as usize + 10);
        let t = Instant::now();
        live.listen().await.expect("listen");
        let mut decoded = 0i64;
        let mut checksum = 0i64;
        while decoded < ROWS {
            match all.recv().await {
                Some(Ok(live_core::watch::Change::Inserted(r))) => {
                    decoded += 1;
                    checksum += i64::from(r.n) + r.list_id + r.id + r.title.len() as i64;
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("stream closed"),
            }
        }
        let stream_secs = t.elapsed().as_secs_f64();
        live.shutdown().await;
        assert!(checksum > 0);

        let rate = |s: f64| ROWS as f64 / s;
        lines.push((rate(recv_secs), rate(ours_secs), rate(stream_secs)));
        println!(
            "round_{round}_pg_recvlogical: {:.0} rows/s",
            rate(recv_secs)
        );
        println!(
            "round_{round}_listener_decode_route: {:.0} rows/s",
            rate(ours_secs)
        );
        println!(
            "round_{round}_listener_decode_into_structs: {:.0} rows/s",
            rate(stream_secs)
        );
        for slot in ["ours", "ours_stream", "recv"] {
            for _ in 0..50 {
                let r = sqlx::query("SELECT pg_drop_replication_slot($1)")
                    .bind(format!("{slot}_{round}"))
                    .execute(&db.pool)
                    .await;
                if r.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        sqlx::query("TRUNCATE bulk")
            .execute(&db.pool)
            .await
            .expect("truncate");
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let recv = median(lines.iter().map(|l| l.0).collect());
    let ours = median(lines.iter().map(|l| l.1).collect());
    let stream = median(lines.iter().map(|l| l.2).collect());
    println!("pg_recvlogical_median: {recv:.0} rows/s");
    println!("listener_decode_route_median: {ours:.0} rows/s");
    println!("listener_decode_into_structs_median: {stream:.0} rows/s");
    println!("listener_vs_pg_recvlogical: {:.2} ratio", ours / recv);
    println!("structs_vs_pg_recvlogical: {:.2} ratio", stream / recv);
}

/// A websocket to the server with a browser's `Origin`.
async fn ws_connect(
    port: u16,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut req = format!("ws://127.0.0.1:{port}/live/websocket")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().expect("origin"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

/// GETs a page; returns its latency and whether it answered 200.
async fn timed_get(port: u16, list: i64) -> (f64, bool) {
    let t = Instant::now();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return (t.elapsed().as_secs_f64() * 1e3, false);
    };
    let req = format!(
        "GET /lists/{list} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    let mut buf = Vec::new();
    let ok = s.write_all(req.as_bytes()).await.is_ok()
        && tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
            .await
            .is_ok_and(|r| r.is_ok())
        && buf.starts_with(b"HTTP/1.1 200");
    (t.elapsed().as_secs_f64() * 1e3, ok)
}

/// The red-team attacks of the hardening issue, against one server: (a) 4 sockets × 60 joins
/// of a list of 4 × 1 MiB rows that never read while those rows change (peak RSS above the
/// idle server); (b) 150 joins on one socket while another client loads pages (latency).
async fn attack_one(label: &str, exe: &std::path::Path) -> Vec<String> {
    let db = database(0, 0).await;
    sqlx::query("INSERT INTO items (list_id, title) SELECT 1, repeat('x', 1 << 20) FROM generate_series(1, 4)")
        .execute(&db.pool)
        .await
        .expect("big rows");
    sqlx::query(
        "INSERT INTO items (list_id, title) SELECT 2, 'row ' || g FROM generate_series(1, 20000) g",
    )
    .execute(&db.pool)
    .await
    .expect("rows");
    sqlx::query(
        "INSERT INTO items (list_id, title) SELECT 3, 'row ' || g FROM generate_series(1, 20) g",
    )
    .execute(&db.pool)
    .await
    .expect("rows");
    let server = Server::start_exe(exe, &db.url);
    // Idle baseline: one page served.
    let _ = page_token(server.port, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_kib();

    // Control: the same writes with one reader that keeps up (what the writes alone cost:
    // the replay ring of the mount fence holds the recent big transactions).
    let writes = |secs: u64, seed: u64| {
        let pool = db.pool.clone();
        async move {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM items WHERE list_id = 1 ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .expect("ids");
            let t = Instant::now();
            let mut n = seed;
            while t.elapsed() < Duration::from_secs(secs) {
                let id = ids[(n as usize) % ids.len()];
                let _ = sqlx::query("UPDATE items SET title = repeat($1, 1 << 20) WHERE id = $2")
                    .bind(format!("{}", n % 10))
                    .bind(id)
                    .execute(&pool)
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (token, id) = page_token(server.port, 1).await;
    let mut reader = ws_connect(server.port).await;
    let topic = format!("lv:{id}-r");
    let join = serde_json::json!([topic, "1", topic, "join", {"token": token, "url": format!("http://127.0.0.1:{}/lists/1", server.port)}]);
    let _ = reader.send(Message::Text(join.to_string().into())).await;
    let reading = tokio::spawn(async move { while let Some(Ok(_)) = reader.next().await {} });
    let control = tokio::spawn(writes(20, 0));
    let mut control_peak = idle;
    while !control.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        control_peak = control_peak.max(server.rss_kib());
    }
    reading.abort();
    let control_above = control_peak.saturating_sub(idle) as f64 / 1024.0;
    println!("attack_{label}_control_peak_rss_above_idle: {control_above:.1} MiB");

    // (a) Stalled readers.
    let mut stalled = Vec::new();
    for s in 0..4 {
        let mut ws = ws_connect(server.port).await;
        for j in 0..60 {
            let topic = format!("lv:{id}-{s}-{j}");
            let join = serde_json::json!([topic, "1", topic, "join", {"token": token, "url": format!("http://127.0.0.1:{}/lists/1", server.port)}]);
            let _ = ws.send(Message::Text(join.to_string().into())).await;
        }
        stalled.push(ws); // never read again
    }
    let attack = tokio::spawn(writes(40, 1000));
    let mut peak = idle;
    while !attack.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(server.rss_kib());
    }
    drop(stalled);
    let above = peak.saturating_sub(idle) as f64 / 1024.0;
    let over_control = peak.saturating_sub(control_peak) as f64 / 1024.0;
    println!("attack_{label}_idle_rss: {idle} KiB");
    println!("attack_{label}_peak_rss_above_idle: {above:.1} MiB");
    println!("attack_{label}_peak_rss_above_control: {over_control:.1} MiB");

    // (b) A mount flood on one socket while another client loads pages.
    let (token, id) = page_token(server.port, 2).await;
    let mut flood = ws_connect(server.port).await;
    for j in 0..150 {
        let topic = format!("lv:{id}-f{j}");
        let join = serde_json::json!([topic, "1", topic, "join", {"token": token, "url": format!("http://127.0.0.1:{}/lists/2", server.port)}]);
        let _ = flood.send(Message::Text(join.to_string().into())).await;
    }
    let reader = tokio::spawn(async move {
        // The flooding client reads (it only wants the pool).
        while let Some(Ok(_)) = flood.next().await {}
    });
    let mut lat = Vec::new();
    let mut failed = 0;
    for _ in 0..200 {
        let (ms, ok) = timed_get(server.port, 3).await;
        lat.push(ms);
        if !ok {
            failed += 1;
        }
    }
    reader.abort();
    lat.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    println!("attack_{label}_page_load_during_flood_p50: {p50:.1} ms");
    println!("attack_{label}_page_load_during_flood_p99: {p99:.1} ms");
    println!("attack_{label}_page_load_during_flood_max: {max:.1} ms");
    println!("attack_{label}_page_load_failures: {failed} of 200");
    vec![format!(
        "| {label} | {control_above:.1} MiB | {above:.1} MiB | {over_control:.1} MiB | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {failed} of 200 |"
    )]
}

/// `attack [BASELINE_EXE]`: the attacks against this build, and against a build of another
/// version of the code (its live-bench binary) in the same run.
async fn attack(baseline: Option<String>) {
    let mut table = vec![
        "| server | control: the writes, one reader (peak RSS above idle) | attack: + 4 × 60 stalled joins (peak above idle) | attack above control | page load p50 during a 150-join flood | p99 | max | failed |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ];
    if let Some(b) = baseline {
        table.extend(attack_one("baseline", std::path::Path::new(&b)).await);
    }
    let me = std::env::current_exe().expect("current exe");
    table.extend(attack_one("this_build", &me).await);
    for l in table {
        println!("{l}");
    }
}

/// CPU time (user + system) of a process, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) * 1000.0 / hz.max(1.0)
}

/// Board pages of a kanban: each view watches its board's cards (by `board_id`) and the users
/// assigned to them (a key set by `id`). `boards` boards, `per_board` users (and cards) per
/// board, users disjoint between boards; `views` views spread over the boards. Renames of a
/// user reach the views of its board only.
async fn kanban(
    boards: i64,
    per_board: i64,
    views: usize,
    renames: usize,
    rate: f64,
) -> Vec<String> {
    let db = database(0, 0).await;
    sqlx::query(
        "INSERT INTO kb_users SELECT g, 'user ' || g FROM generate_series(1, $1::bigint) g",
    )
    .bind(boards * per_board)
    .execute(&db.pool)
    .await
    .expect("users");
    sqlx::query(
        "INSERT INTO kb_cards SELECT g, (g - 1) / $1 + 1, g, 'card ' || g FROM generate_series(1, $2::bigint) g",
    )
    .bind(per_board)
    .bind(boards * per_board)
    .execute(&db.pool)
    .await
    .expect("cards");
    let server = Server::start(&db.url);
    let ready = Arc::new(AtomicU64::new(0));
    let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let warm = connect_views_at(
        &server,
        "/boards",
        boards,
        boards as usize,
        &ready,
        &last_seen,
        &stop_rx,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let ready2 = Arc::new(AtomicU64::new(0));
    let handles = connect_views_at(
        &server, "/boards", boards, views, &ready2, &last_seen, &stop_rx,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    let per_view = after.saturating_sub(before) as f64 / views as f64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let cpu0 = cpu_ms(server.child.id());
    let start = Instant::now();
    let mut sent: Vec<(i64, Instant)> = Vec::with_capacity(renames);
    for seq in 0..renames {
        let board = 1 + (seq as i64 % boards);
        let user = (board - 1) * per_board + 1 + ((seq as i64 / boards) % per_board);
        let due = start + period * seq as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let t0 = Instant::now();
        sqlx::query("UPDATE kb_users SET name = $2 WHERE id = $1")
            .bind(user)
            .bind(format!("c{seq}z"))
            .execute(&db.pool)
            .await
            .expect("rename");
        sent.push((board, t0));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = cpu_ms(server.child.id()) - cpu0;
    let _ = stop_tx.send(true);
    let o = collect(handles, &sent, boards, 0.0).await;
    drop(warm);
    let name = format!("kanban_{views}_views_{boards}_boards_{per_board}_users");
    let row = report(&name, &o);
    let cpu_per_change = cpu / renames as f64;
    println!("{name}_server_cpu_per_change: {cpu_per_change:.3} ms");
    println!("{name}_memory_per_idle_view: {per_view:.2} KiB");
    vec![format!(
        "{row} {cpu_per_change:.3} ms | {per_view:.2} KiB |"
    )]
}

/// `kanban`: key-set views at 1,000 views over 20 boards and at 200 views over 4 boards (the
/// same 50 views per board: fan-out cost per change should not depend on the views that do
/// not match), and with 10 users per board (the key-set size, for memory per entry).
async fn kanban_all() {
    let mut table = vec![
        "| scenario | p50 ms | p95 ms | p99 ms | max ms | frames | lost | B/frame | server CPU per change | memory per idle view |".to_string(),
        "|---|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    table.extend(kanban(20, 50, 1000, 200, 20.0).await);
    table.extend(kanban(4, 50, 200, 200, 20.0).await);
    table.extend(kanban(20, 10, 1000, 200, 20.0).await);
    for l in table {
        println!("{l}");
    }
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).map(String::as_str).unwrap_or("help");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match cmd {
        "serve" => {
            let url = args
                .get(2)
                .cloned()
                .expect("serve <database url> [nats url]");
            rt.block_on(server::serve(url, args.get(3).cloned()));
        }
        "nodes" => rt.block_on(nodes::all()),
        "scale" => rt.block_on(scale(args.get(2).map(String::as_str).unwrap_or("all"))),
        "replication" => rt.block_on(replication()),
        "attack" => rt.block_on(attack(args.get(2).cloned())),
        "kanban" => rt.block_on(kanban_all()),
        "resume" => rt.block_on(resume::all()),
        _ => {
            eprintln!(
                "usage: live-bench scale [1|2|3|4|5|6|all] | replication | attack [BASELINE_EXE] | kanban | nodes | resume"
            );
        }
    }
}
