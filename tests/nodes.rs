//! Several app nodes on one database (issue 9): each node is its own process (its listener,
//! fan-out and HTTP server), the slot's leader publishes every committed transaction to a
//! real `nats-server -js`, and every node consumes it. Views on every node must equal the
//! database after inserts, updates, moves and deletes by `psql`, through leader kills, a bus
//! restart, a killed walsender, a Postgres restart and a rolling deploy.

use std::time::{Duration, Instant};

use live_tests::faults::{assert_views_match_db, open_list_views, spawn_writer};
use live_tests::items::SCHEMA;
use live_tests::nats::NatsServer;
use live_tests::node::{NodeProc, node_main};
use live_tests::{TestDb, WsClient, get, page_token, with_cluster};

/// The tests of this binary share one Postgres cluster, and one of them restarts it: they
/// run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A list view: its path, its client, its topic.
type ListView = (String, WsClient, String);

/// The body of a node process (see `live_tests::node`); ignored as a test.
#[test]
#[ignore]
fn node_process() {
    node_main();
}

/// What every test here starts with: a bus, a database with the items schema, its slot.
async fn setup() -> (NatsServer, TestDb, String) {
    let nats = NatsServer::start();
    let db = TestDb::new(SCHEMA).await;
    let slot = format!("slot_{}", db.name);
    (nats, db, slot)
}

/// Starts node processes named `names` and waits until one leads; returns them and the
/// leader's index.
async fn start_nodes(db: &TestDb, slot: &str, url: &str, names: &[&str]) -> (Vec<NodeProc>, usize) {
    let nodes: Vec<NodeProc> = names
        .iter()
        .map(|n| NodeProc::spawn("node_process", n, &db.url, slot, url))
        .collect();
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let leader = wait_one_leader(&refs, Duration::from_secs(20)).await;
    (nodes, leader)
}

async fn roles(nodes: &[&NodeProc]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes {
        let role = match n.health().await {
            Some(h) => h["role"].as_str().unwrap_or("?").to_string(),
            None => "down".into(),
        };
        out.push(role);
    }
    out
}

/// Waits until exactly one of `nodes` is the leader and the others are standbys.
async fn wait_one_leader(nodes: &[&NodeProc], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let r = roles(nodes).await;
        let leaders: Vec<usize> = (0..r.len()).filter(|i| r[*i] == "leader").collect();
        if leaders.len() == 1 && r.iter().filter(|x| *x == "standby").count() == r.len() - 1 {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "roles never settled: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sessions streaming the slot right now (Postgres allows one).
async fn streaming(db: &TestDb, slot: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s \
         ON s.active_pid = r.pid WHERE s.slot_name = $1",
    )
    .bind(slot)
    .fetch_one(&db.pool)
    .await
    .unwrap_or(0)
}

fn noisy(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_see_every_psql_change_and_one_streams_the_slot() {
    let _serial = SERIAL.lock().await;
    let (nats, db, slot) = setup().await;
    let (nodes, leader) = start_nodes(&db, &slot, &nats.url(), &["n0", "n1", "n2"]).await;
    assert_eq!(streaming(&db, &slot).await, 1);

    let mut views = Vec::new();
    for n in &nodes {
        views.extend(open_list_views(n.addr, &[1, 2]).await);
    }
    db.psql(
        "INSERT INTO items (id, list_id, title) VALUES (1, 1, 'milk'), (2, 1, 'eggs'), (3, 2, 'tea');
         INSERT INTO items_d (id, list_id, title) VALUES (1, 1, 'milk'), (2, 1, 'eggs'), (3, 2, 'tea');",
    );
    assert_views_match_db(&db, &mut views).await;
    db.psql(
        "UPDATE items SET title = 'oat milk', done = true WHERE id = 1;
         UPDATE items SET list_id = 2 WHERE id = 2;
         DELETE FROM items WHERE id = 3;
         UPDATE items_d SET title = 'oat milk', done = true WHERE id = 1;
         UPDATE items_d SET list_id = 2 WHERE id = 2;
         DELETE FROM items_d WHERE id = 3;",
    );
    assert_views_match_db(&db, &mut views).await;

    // One transaction bigger than the server's max_payload (1 MiB) travels in parts.
    db.psql(
        "INSERT INTO items (id, list_id, title) SELECT 1000 + g, 1 + g % 2, repeat('x', 300) || g FROM generate_series(1, 6000) g;",
    );
    assert_views_match_db(&db, &mut views).await;

    // A broadcast from one node reaches the views subscribed to its topic on every node,
    // and no other view.
    let (status, body) = get(nodes[1].addr, "/broadcast/2/hello-from-n1").await;
    assert_eq!((status, body.as_str()), (200, "sent"));
    let notice = |h: &str| h.contains("<p class=\"notice\">hello-from-n1</p>");
    for subscribed in [true, false] {
        // The subscribed views first; then the others, given time to (wrongly) get it.
        for (path, client, topic) in views.iter_mut() {
            if path.ends_with("/2") != subscribed {
                continue;
            }
            let wait = Duration::from_millis(if subscribed { 5000 } else { 200 });
            let got = client.wait_html(topic, wait, notice).await;
            assert_eq!(got, subscribed, "{path}: {}", client.html(topic));
        }
    }

    // Every node applied every transaction (the leader through the bus too).
    for n in &nodes {
        let h = n.health().await.expect("health");
        assert!(
            h["transactions"].as_u64().unwrap_or(0) >= 2,
            "{}: {h}",
            n.name
        );
        assert_eq!(h["connected_views"], 4, "{}: {h}", n.name);
    }
    // The standbys wait quietly: one line when they became standbys, no warnings or errors.
    for (i, n) in nodes.iter().enumerate() {
        let log = n.log();
        assert!(noisy(&log).is_empty(), "{}: {:#?}", n.name, noisy(&log));
        if i != leader {
            let standby_lines = log.iter().filter(|l| l.contains("standby:")).count();
            assert_eq!(standby_lines, 1, "{}: {log:#?}", n.name);
        }
    }
}

/// The leader killed twice, the bus restarted, the walsender killed and Postgres restarted,
/// all during thousands of committed writes: afterwards every view on every node that is up
/// equals the database, and at no sampled moment do two sessions stream the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_bus_and_postgres_restarts_during_writes_lose_nothing() {
    let _serial = SERIAL.lock().await;
    let (mut nats, db, slot) = setup().await;
    let url = nats.url();
    let spawn = |name: &str| NodeProc::spawn("node_process", name, &db.url, &slot, &url);
    let (mut nodes, _) = start_nodes(&db, &slot, &url, &["a", "b", "c"]).await;
    // Views on every node from the start, through every fault (those of a killed node go
    // with it); a node started during the run gets its views at once.
    let mut views: Vec<(String, Vec<ListView>)> = Vec::new();
    for n in &nodes {
        views.push((n.name.clone(), open_list_views(n.addr, &[1, 2, 3, 4]).await));
    }
    let t0 = Instant::now();
    let writer = spawn_writer(db.pool.clone(), 5000, 9);
    let mut max_streaming = 0;
    let sample = async |db: &TestDb, max: &mut i64| {
        for _ in 0..10 {
            *max = (*max).max(streaming(db, &slot).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // 1. SIGKILL the leader (twice); a standby takes over; a new node joins each time.
    for round in 0..2 {
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        let leader = wait_one_leader(&refs, Duration::from_secs(20)).await;
        sample(&db, &mut max_streaming).await;
        nodes[leader].kill();
        let dead = nodes.remove(leader);
        views.retain(|(name, _)| *name != dead.name);
        drop(dead);
        let fresh = spawn(&format!("r{round}"));
        views.push((
            fresh.name.clone(),
            open_list_views(fresh.addr, &[1, 2, 3, 4]).await,
        ));
        nodes.push(fresh);
        sample(&db, &mut max_streaming).await;
    }
    eprintln!("two leaders killed at {:?}", t0.elapsed());
    // 2. The bus restarts.
    nats.restart();
    sample(&db, &mut max_streaming).await;
    // 3. The walsender is killed.
    sqlx::query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&slot)
    .execute(&db.pool)
    .await
    .expect("terminate the walsender");
    sample(&db, &mut max_streaming).await;
    // 4. Postgres restarts.
    eprintln!("postgres restarts at {:?}", t0.elapsed());
    tokio::task::spawn_blocking(|| with_cluster(|c| c.restart()))
        .await
        .expect("join")
        .expect("restart postgres");
    writer.await.expect("writer");
    eprintln!("writes done at {:?}", t0.elapsed());
    sample(&db, &mut max_streaming).await;
    assert!(max_streaming <= 1, "two sessions streamed the slot");

    // Every view that lived through it, and views opened now, equal the database.
    for n in &nodes {
        views.push((
            format!("{} (opened at the end)", n.name),
            open_list_views(n.addr, &[1, 2, 3, 4]).await,
        ));
    }
    let writer = spawn_writer(db.pool.clone(), 300, 10);
    writer.await.expect("writer");
    for (name, group) in views.iter_mut() {
        eprintln!("checking the views of node {name}");
        assert_views_match_db(&db, group).await;
    }
    eprintln!("views match at {:?}", t0.elapsed());
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    wait_one_leader(&refs, Duration::from_secs(20)).await;
}

/// A rolling deploy: a fourth node starts, the first stops gracefully (SIGTERM); views on the
/// others never miss a change, and the stopped node's client rejoins on another node with a
/// correct page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deploy_loses_no_change() {
    let _serial = SERIAL.lock().await;
    let (nats, db, slot) = setup().await;
    let url = nats.url();
    let spawn = |name: &str| NodeProc::spawn("node_process", name, &db.url, &slot, &url);
    let (mut nodes, _) = start_nodes(&db, &slot, &url, &["a", "b", "c"]).await;
    let mut watchers = Vec::new();
    for n in &nodes[1..] {
        watchers.extend(open_list_views(n.addr, &[1, 2]).await);
    }
    // A browser's page on the first node: its token is signed with the app's key, so any
    // node takes it.
    let (status, page) = get(nodes[0].addr, "/lists/1").await;
    assert_eq!(status, 200);
    let (token, id) = page_token(&page);
    let topic = format!("lv:{id}");
    let page_url = format!("http://{}/lists/1", nodes[0].addr);
    let mut on_first = WsClient::connect(nodes[0].addr).await;
    assert_eq!(
        on_first.join(&topic, &token, &page_url).await["status"],
        "ok"
    );
    let writer = spawn_writer(db.pool.clone(), 1500, 21);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.push(spawn("d"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = nodes[0].terminate();
    assert_eq!(code, Some(0), "the first node did not stop cleanly");
    // Its client was told to reconnect (close 1012).
    while on_first.next(Duration::from_secs(5)).await.is_some() {}
    let closed = on_first.log.last().cloned().unwrap_or_default();
    assert_eq!(closed[1][0], 1012, "{closed}");
    writer.await.expect("writer");
    assert_views_match_db(&db, &mut watchers).await;
    // The client rejoins with the same token on another node (a load balancer's choice),
    // and its page is the database's.
    let mut again = WsClient::connect(nodes[3].addr).await;
    assert_eq!(again.join(&topic, &token, &page_url).await["status"], "ok");
    let mut rejoined = vec![("/lists/1".to_string(), again, topic)];
    assert_views_match_db(&db, &mut rejoined).await;
    let refs: Vec<&NodeProc> = nodes[1..].iter().collect();
    wait_one_leader(&refs, Duration::from_secs(20)).await;
}

/// A node that misses part of the stream (paused while the stream lost those messages) sees
/// the hole in the stream's sequence and reloads its views: never a silent skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_stream_reloads_the_views() {
    let _serial = SERIAL.lock().await;
    let (nats, db, slot) = setup().await;
    let url = nats.url();
    let (nodes, leader) = start_nodes(&db, &slot, &url, &["a", "b"]).await;
    let standby = &nodes[1 - leader];
    let mut views = open_list_views(standby.addr, &[1, 2]).await;
    db.psql("INSERT INTO items (id, list_id, title) VALUES (1, 1, 'before')");
    assert_views_match_db(&db, &mut views).await;
    // The standby stops reading; changes are published; the stream loses them.
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(standby.pid(), libc::SIGSTOP) };
    db.psql("INSERT INTO items (id, list_id, title) VALUES (2, 1, 'missed'), (3, 2, 'missed too')");
    // More transactions than the consumer's pull asked for (what it asked for may already sit
    // in its socket's buffer), so the rest are on the server only.
    for i in 0..1500 {
        sqlx::query("UPDATE items SET title = $1 WHERE id = 1")
            .bind(format!("changed while away {i}"))
            .execute(&db.pool)
            .await
            .expect("update");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = async_nats::connect(url.as_str()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let stream_name = format!("LIVE_{}", slot.to_ascii_uppercase());
    let stream = js.get_stream(&stream_name).await.expect("the stream");
    stream.purge().await.expect("purge");
    // SAFETY: as above.
    unsafe { libc::kill(standby.pid(), libc::SIGCONT) };
    db.psql("INSERT INTO items (id, list_id, title) VALUES (4, 2, 'after')");
    assert_views_match_db(&db, &mut views).await;
    let log = standby.log();
    assert!(
        log.iter().any(|l| l.contains("gap in the bus stream")),
        "{log:#?}"
    );
}
