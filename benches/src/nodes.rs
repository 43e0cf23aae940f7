//! `live-bench nodes`: several app nodes on one database through NATS JetStream.
//!
//! 1. Commit-to-frame of one view on a standby node (2 nodes on the bus) against one view on a
//!    single node without a bus, in the same run: sequential changes, each waiting for its
//!    frame.
//! 2. Three nodes × 300 views of one list, 64 changes/s: p95 and frames lost.
//! 3. Failover: SIGKILL of the leader during 50 changes/s; the time from the kill to the first
//!    frame of a change committed after it, on the views of the surviving nodes, and frames
//!    lost.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::{Seen, Server, collect, connect_views_at, database, report};

/// A private `nats-server -js` on a free port (stopped on drop).
struct Nats {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nats {
    fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("live-bench-nats-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt-get install nats-server)");
        for _ in 0..400 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return Nats { child, port, dir };
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not start");
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The role `/live/health` reports.
async fn role(server: &Server) -> String {
    let body = super::http_get(server.port, "/live/health").await;
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["role"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Starts `n` nodes and waits until one is the leader; returns them and the leader's index.
async fn start_nodes(url: &str, nats: &str, n: usize) -> (Vec<Server>, usize) {
    let nodes: Vec<Server> = (0..n).map(|_| Server::start_node(url, nats)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut roles = Vec::new();
        for s in &nodes {
            roles.push(role(s).await);
        }
        let leaders: Vec<usize> = (0..n).filter(|i| roles[*i] == "leader").collect();
        if leaders.len() == 1 && roles.iter().filter(|r| *r == "standby").count() == n - 1 {
            return (nodes, leaders[0]);
        }
        assert!(Instant::now() < deadline, "roles never settled: {roles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Updates rows of list 1, `changes` times at `rate` per second (`None`: each waits for its
/// frame); returns when each was committed. `kill` runs once, before change `at`.
async fn write(
    db: &super::Db,
    changes: usize,
    rate: Option<f64>,
    last_seen: &Arc<(AtomicU64, Notify)>,
    mut kill: Option<(usize, &mut dyn FnMut())>,
) -> (Vec<(i64, Instant)>, Option<Instant>) {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM items WHERE list_id = 1 ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("ids");
    let mut sent = Vec::with_capacity(changes);
    let period = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let start = Instant::now();
    let mut killed_at = None;
    for seq in 0..changes {
        if let Some((at, f)) = kill.as_mut()
            && *at == seq
        {
            // From the signal on (a graceful stop returns once the process ended).
            killed_at = Some(Instant::now());
            f();
        }
        if let Some(p) = period {
            let due = start + p * seq as u32;
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
        let t0 = Instant::now();
        sqlx::query("UPDATE items SET title = $2 WHERE id = $1")
            .bind(ids[seq % ids.len()])
            .bind(format!("c{seq}z"))
            .execute(&db.pool)
            .await
            .expect("update");
        sent.push((1, t0));
        if period.is_none() {
            let (max, notify) = &**last_seen;
            while max.load(Ordering::Acquire) <= seq as u64 {
                let waiter = notify.notified();
                if max.load(Ordering::Acquire) > seq as u64 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), waiter).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (sent, killed_at)
}

type Views = Vec<(i64, tokio::task::JoinHandle<Seen>)>;

async fn views_on(
    servers: &[&Server],
    per_server: usize,
    last_seen: &Arc<(AtomicU64, Notify)>,
    stop: &watch::Receiver<bool>,
) -> Views {
    let mut all = Vec::new();
    for s in servers {
        let ready = Arc::new(AtomicU64::new(0));
        all.extend(connect_views_at(s, "/lists", 1, per_server, &ready, last_seen, stop).await);
    }
    all
}

/// One view, sequential changes: a single node without a bus, then a standby node on a bus.
async fn one_view(nats: &Nats, changes: usize) -> Vec<String> {
    let mut rows = Vec::new();
    for bus in [false, true] {
        let db = database(1, 20).await;
        let (nodes, leader) = if bus {
            start_nodes(&db.url, &nats.url(), 2).await
        } else {
            (vec![Server::start(&db.url)], 0)
        };
        let on = if bus { 1 - leader } else { 0 };
        let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let handles = views_on(&[&nodes[on]], 1, &last_seen, &stop_rx).await;
        let (sent, _) = write(&db, changes, None, &last_seen, None).await;
        let _ = stop_tx.send(true);
        let o = collect(handles, &sent, 1, 0.0).await;
        let name = if bus {
            "1 view on a standby node (2 nodes, bus)"
        } else {
            "1 view on a single node (baseline)"
        };
        rows.push(report(name, &o));
    }
    rows
}

/// Three nodes, 300 views of one list on each, 64 changes/s.
async fn three_by_300(nats: &Nats) -> Vec<String> {
    let db = database(1, 20).await;
    let (nodes, _) = start_nodes(&db.url, &nats.url(), 3).await;
    let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let refs: Vec<&Server> = nodes.iter().collect();
    let handles = views_on(&refs, 300, &last_seen, &stop_rx).await;
    let (sent, _) = write(&db, 640, Some(64.0), &last_seen, None).await;
    let _ = stop_tx.send(true);
    let o = collect(handles, &sent, 1, 0.0).await;
    vec![report("3 nodes × 300 views of one list, 64 changes/s", &o)]
}

/// SIGKILL (or, `graceful`, SIGTERM) of the leader during 50 changes/s; views on the two
/// other nodes.
async fn failover(nats: &Nats, round: usize, graceful: bool) -> (String, f64, usize) {
    let db = database(1, 20).await;
    let (mut nodes, leader) = start_nodes(&db.url, &nats.url(), 3).await;
    let last_seen = Arc::new((AtomicU64::new(0), Notify::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let others: Vec<&Server> = (0..3).filter(|i| *i != leader).map(|i| &nodes[i]).collect();
    let handles = views_on(&others, 5, &last_seen, &stop_rx).await;
    let mut kill = || {
        if graceful {
            nodes[leader].terminate();
        } else {
            nodes[leader].kill();
        }
    };
    let (sent, killed_at) = write(&db, 300, Some(50.0), &last_seen, Some((100, &mut kill))).await;
    let _ = stop_tx.send(true);
    let killed_at = killed_at.expect("killed");
    // Per view: the first frame of a change committed after the kill.
    let mut worst: f64 = 0.0;
    let mut expected = 0;
    let mut received = 0;
    for (_, h) in handles {
        let seen = h.await.expect("client");
        let mut firsts: HashMap<u32, Instant> = HashMap::new();
        for (n, at) in seen.arrivals {
            firsts.entry(n).or_insert(at);
        }
        expected += sent.len();
        received += firsts.len();
        let first_after = firsts
            .iter()
            .filter(|(n, _)| sent[**n as usize].1 > killed_at)
            .map(|(_, at)| *at)
            .min();
        if let Some(at) = first_after {
            worst = worst.max(at.duration_since(killed_at).as_secs_f64() * 1e3);
        }
    }
    let lost = expected - received;
    let how = if graceful { "SIGTERM" } else { "SIGKILL" };
    println!("failover_{how}_{round}_to_first_frame: {worst:.0} ms");
    println!("failover_{how}_{round}_frames_lost: {lost} frames");
    (
        format!("| {how} of the leader, round {round} | {worst:.0} ms | {lost} of {expected} |"),
        worst,
        lost,
    )
}

pub(super) async fn all() {
    let nats = Nats::start();
    let mut table = vec![
        "| scenario | p50 ms | p95 ms | p99 ms | max ms | frames | lost | B/frame |".to_string(),
        "|---|---|---|---|---|---|---|---|".to_string(),
    ];
    table.extend(one_view(&nats, 300).await);
    table.extend(three_by_300(&nats).await);
    let mut fail = vec![
        "| leader stopped | stop → first frame (worst view) | frames lost |".to_string(),
        "|---|---|---|".to_string(),
    ];
    for graceful in [false, true] {
        for round in 1..=3 {
            fail.push(failover(&nats, round, graceful).await.0);
        }
    }
    for l in table
        .iter()
        .chain(std::iter::once(&String::new()))
        .chain(&fail)
    {
        println!("{l}");
    }
}
