//! `live-bench resume`: what a dropped connection costs.
//!
//! - **Resume vs mount anew**, in one run: a client on a 1,000-row list loses its connection
//!   for 5 s while 10 rows change, then comes back, either naming its view and version
//!   (resume) or joining as today's client did before resume existed (a new mount: the whole
//!   page). Bytes received and time from the new connection to a page that shows every
//!   change, median of several rounds of each, alternating.
//! - **Memory per detached view**: views whose socket dropped wait for their client (the
//!   grace period); what one costs, measured beside what a connected idle view costs, in the
//!   same server.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{Server, database, http_get, page_token, ws_connect};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a client holds of its view between connections.
struct Held {
    resume: String,
    version: u64,
}

/// Frames received on one connection until the page is live.
struct Arrival {
    bytes: usize,
    elapsed: Duration,
    held: Held,
}

/// Joins list 1 on a new connection (resuming `held` if given) and reads until the page shows
/// `rows` rows (a new mount) or every marker `c<round>-<i>z` (both cases): the time and bytes
/// from connecting to that point.
async fn join_until_live(
    port: u16,
    token: &(String, String),
    held: Option<&Held>,
    round: u32,
    changed: usize,
) -> (Ws, Arrival) {
    let t0 = Instant::now();
    let mut ws = ws_connect(port).await;
    let topic = format!("lv:{}", token.1);
    let mut payload = json!({"token": token.0, "url": format!("http://127.0.0.1:{port}/lists/1")});
    if let Some(h) = held {
        payload["resume"] = json!({"id": h.resume, "v": h.version});
    }
    let join = json!([topic, "1", topic, "join", payload]);
    ws.send(Message::Text(join.to_string().into()))
        .await
        .expect("join");
    let mut bytes = 0;
    let mut rows = 0;
    let mut version = held.map_or(0, |h| h.version);
    let mut resume = String::new();
    let mut seen = vec![false; changed];
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("the connection ended before the page was live");
        };
        let text = t.as_str();
        bytes += text.len();
        let f: Value = serde_json::from_str(text).expect("a frame");
        if f[3] == "reply" {
            assert_eq!(f[4]["status"], "ok", "join: {f}");
            let r = &f[4]["response"];
            resume = r["resume"].as_str().unwrap_or_default().to_string();
            if r.get("rendered").is_some() {
                version = 1;
            }
        } else if f[3] == "diff"
            && let Some(v) = f[4]["v"].as_u64()
        {
            version = v;
        }
        // Every row's HTML carries its key once (the whole page comes in pieces).
        rows += text.matches("data-live-key").count();
        for (i, s) in seen.iter_mut().enumerate() {
            *s |= text.contains(&format!("c{round}-{i}z"));
        }
        let whole = held.is_some() || rows >= 1000;
        if whole && seen.iter().all(|s| *s) {
            break;
        }
    }
    let elapsed = t0.elapsed();
    let held = Held { resume, version };
    (
        ws,
        Arrival {
            bytes,
            elapsed,
            held,
        },
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resume against a new mount after a 5 s drop with 10 changed rows, `rounds` of each.
async fn resume_vs_mount(rounds: u32) -> Vec<String> {
    let db = database(1, 1000).await;
    let server = Server::start(&db.url);
    let token = page_token(server.port, 1).await;
    let changed = 10;
    let (mut resumed, mut mounted) = (Vec::new(), Vec::new());
    // A first connection, to hold the view.
    let (mut ws, first) = join_until_live(server.port, &token, None, 0, 0).await;
    let mut held = first.held;
    let whole_page = first.bytes;
    for round in 1..=rounds * 2 {
        let resume = round % 2 == 1;
        // The connection drops (no close handshake) while rows change.
        drop(ws);
        for i in 0..changed {
            sqlx::query("UPDATE items SET title = $1 WHERE id = $2")
                .bind(format!("c{round}-{i}z"))
                .bind(1 + (i as i64) * 97)
                .execute(&db.pool)
                .await
                .expect("update");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (next, a) =
            join_until_live(server.port, &token, resume.then_some(&held), round, changed).await;
        let figure = (a.bytes as f64, a.elapsed.as_secs_f64() * 1000.0);
        if resume {
            resumed.push(figure);
        } else {
            mounted.push(figure);
        }
        held = a.held;
        ws = next;
    }
    drop(ws);
    let rb = median(resumed.iter().map(|f| f.0).collect());
    let rt = median(resumed.iter().map(|f| f.1).collect());
    let mb = median(mounted.iter().map(|f| f.0).collect());
    let mt = median(mounted.iter().map(|f| f.1).collect());
    println!("resume_whole_page: {whole_page} bytes");
    println!("resume_bytes: {rb:.0} bytes");
    println!("resume_time: {rt:.2} ms");
    println!("remount_bytes: {mb:.0} bytes");
    println!("remount_time: {mt:.2} ms");
    println!("resume_vs_remount_bytes: {:.4} ratio", rb / mb);
    println!("resume_vs_remount_time: {:.3} ratio", rt / mt);
    vec![
        format!(
            "| resume (names its view and version) | {rb:.0} B | {rt:.2} ms | {rounds} rounds, median |"
        ),
        format!(
            "| mount anew (the whole page) | {mb:.0} B | {mt:.2} ms | {rounds} rounds, median |"
        ),
        format!(
            "| resume / mount anew | {:.4} | {:.3} | |",
            rb / mb,
            rt / mt
        ),
    ]
}

/// `n` views of lists 1..=`lists` on their own connections, each joined (reply read).
async fn connect(port: u16, lists: i64, n: usize) -> Vec<Ws> {
    let mut tokens = Vec::new();
    for l in 1..=lists {
        tokens.push(page_token(port, l).await);
    }
    let mut out = Vec::with_capacity(n);
    for v in 0..n {
        let l = v % lists as usize;
        let (token, id) = &tokens[l];
        let mut ws = ws_connect(port).await;
        let topic = format!("lv:{id}-{v}");
        let join = json!([topic, "1", topic, "join", {"token": token, "url": format!("http://127.0.0.1:{port}/lists/{}", l + 1)}]);
        ws.send(Message::Text(join.to_string().into()))
            .await
            .expect("join");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("\"reply\"") => break,
                Some(Ok(_)) => {}
                other => panic!("join: {other:?}"),
            }
        }
        out.push(ws);
    }
    out
}

async fn detached_views(port: u16) -> u64 {
    let body = http_get(port, "/live/health").await;
    serde_json::from_str::<Value>(body.trim())
        .ok()
        .and_then(|h| h["detached_views"].as_u64())
        .unwrap_or(0)
}

/// RSS growth per detached view and per connected idle view, in one server.
async fn detached_memory(views: usize, lists: i64) -> Vec<String> {
    let db = database(lists, 5).await;
    let server = Server::start(&db.url);
    // Warm up: a view per list, connected then dropped (allocator pools, row caches).
    drop(connect(server.port, lists, lists as usize).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = server.rss_kib();
    // Batch 1 connects and drops (its socket memory goes back to the allocator)…
    drop(connect(server.port, lists, views).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after1 = server.rss_kib();
    // …batch 2 reuses it: what it adds is what detached views hold.
    let t = Instant::now();
    drop(connect(server.port, lists, views).await);
    let connect_secs = t.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while detached_views(server.port).await < (2 * views + lists as usize) as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detached = detached_views(server.port).await;
    let after2 = server.rss_kib();
    // Then as many connected idle views, in the same server.
    let kept = connect(server.port, lists, views).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after3 = server.rss_kib();
    assert!(
        connect_secs < 25.0,
        "connecting took {connect_secs:.1} s: the first detached views may have ended"
    );
    let per_detached = after2.saturating_sub(after1) as f64 / views as f64;
    let per_connected = after3.saturating_sub(after2) as f64 / views as f64;
    println!("detached_views_waiting: {detached} views");
    println!("detached_rss: {base} → {after1} → {after2} KiB");
    println!("memory_per_detached_view: {per_detached:.2} KiB");
    println!("memory_per_connected_idle_view: {per_connected:.2} KiB");
    drop(kept);
    vec![format!(
        "| {views} views, 5 rows each | {per_detached:.2} KiB per detached view | {per_connected:.2} KiB per connected idle view | RSS {after1} → {after2} → {after3} KiB |"
    )]
}

pub async fn all() {
    let mut table = vec![
        "| reconnect after a 5 s drop, 1,000-row list, 10 rows changed | bytes | time to a live page | |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    table.extend(resume_vs_mount(5).await);
    table.push(String::new());
    table.push("| detached views | per detached view | per connected view | RSS |".to_string());
    table.push("|---|---|---|---|".to_string());
    table.extend(detached_memory(4000, 100).await);
    println!();
    for l in table {
        println!("{l}");
    }
}
