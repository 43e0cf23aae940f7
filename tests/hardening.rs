//! Hardening: exact rows under every replica identity, nothing dropped silently, bounded
//! resources per client, and no open doors. Real Postgres, real websockets; each test fails on
//! the code before the fix it covers.

use std::time::{Duration, Instant};

use axum::Router;
use live_core::watch::Change;
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, RouterExt, ServeConfig,
    Session, ViewError, html,
};
use live_tests::items::{self, ItemD, rows};
use live_tests::{SECRET, TestDb, WsClient, get, open, page_token, with_cluster};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(15);

/// Item 1: rows a view got from the mount replay (committed while it mounted, before any
/// view of that list had subscribed) are routable by id: their later DELETE (default
/// identity: only the primary key) reaches the view.
#[tokio::test]
async fn rows_from_the_mount_replay_are_deleted_under_default_identity() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, _live) = items::start(&db).await;
    for trial in 0..6_i64 {
        let list = 100 + trial;
        // Inserts committed while the list's first view mounts.
        let pool = db.pool.clone();
        let writer = tokio::spawn(async move {
            for i in 0..300 {
                sqlx::query("INSERT INTO items_d (id, list_id, title) VALUES ($1, $2, $3)")
                    .bind(list * 1000 + i)
                    .bind(list)
                    .bind(format!("r{i}"))
                    .execute(&pool)
                    .await
                    .expect("insert");
            }
        });
        tokio::time::sleep(Duration::from_millis(20 + 10 * trial as u64)).await;
        let (mut c, t) = open(addr, &format!("/d/{list}")).await;
        writer.await.expect("writer");
        let ok = c.wait_html(&t, WAIT, |h| rows(h).len() == 300).await;
        assert!(
            ok,
            "trial {trial}: view shows {} rows",
            rows(&c.html(&t)).len()
        );
        sqlx::query("DELETE FROM items_d WHERE list_id = $1")
            .bind(list)
            .execute(&db.pool)
            .await
            .expect("delete");
        let ok = c.wait_html(&t, WAIT, |h| rows(h).is_empty()).await;
        assert!(
            ok,
            "trial {trial}: {} ghost rows after DELETE",
            rows(&c.html(&t)).len()
        );
    }
}

/// Item 2: a message that does not decode (here the Relation message of `items`, so that
/// the insert after it is on a relation the listener does not know) is not dropped while its
/// commit is acknowledged: the views reload and show the row.
#[tokio::test]
async fn an_undecodable_message_reloads_the_views_instead_of_dropping_the_change() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, _live) = items::start(&db).await;
    let (mut a, ta) = open(addr, "/lists/1").await;
    let (mut d, td) = open(addr, "/d/1").await;
    live_core::testing::fail_next_relation(&format!("slot_{}", db.name), "items");
    db.exec("INSERT INTO items (id, list_id, title) VALUES (1, 1, 'after a bad message')")
        .await;
    let ok = a
        .wait_html(&ta, WAIT, |h| {
            rows(h) == vec![(1, "after a bad message".to_string())]
        })
        .await;
    assert!(ok, "the change was dropped: {:?}", rows(&a.html(&ta)));
    // Later changes flow as usual, on both tables.
    db.exec(
        "INSERT INTO items (id, list_id, title) VALUES (2, 1, 'next'); \
         INSERT INTO items_d (id, list_id, title) VALUES (3, 1, 'other table')",
    )
    .await;
    assert!(a.wait_html(&ta, WAIT, |h| rows(h).len() == 2).await);
    assert!(
        d.wait_html(&td, WAIT, |h| rows(h)
            == vec![(3, "other table".to_string())])
            .await
    );
}

/// Item 3: a key-filtered change stream reports a move-in as `Inserted(new)` (not an update
/// carrying the previous tenant's row) and a move-out as `Deleted`, under FULL identity.
#[tokio::test]
async fn a_key_filtered_stream_sees_moves_as_inserts_and_deletes() {
    let db = TestDb::new(items::SCHEMA).await;
    let (_addr, live) = items::start(&db).await;
    let mut stream = live.changes::<items::Item>().key(2_i64).subscribe(64);
    db.exec("INSERT INTO items (id, list_id, title) VALUES (1, 1, 'secret of list 1')")
        .await;
    db.exec("UPDATE items SET list_id = 2, title = 'now in 2' WHERE id = 1")
        .await;
    let next = tokio::time::timeout(WAIT, stream.recv())
        .await
        .expect("a change")
        .expect("open")
        .expect("decodes");
    match next {
        Change::Inserted(row) => {
            assert_eq!(
                (row.id, row.list_id, row.title.as_str()),
                (1, 2, "now in 2")
            )
        }
        other => panic!("a move-in must be Inserted, got {other:?}"),
    }
    db.exec("UPDATE items SET list_id = 3, title = 'gone to 3' WHERE id = 1")
        .await;
    let next = tokio::time::timeout(WAIT, stream.recv())
        .await
        .expect("a change")
        .expect("open")
        .expect("decodes");
    match next {
        Change::Deleted { id, old } => {
            assert_eq!(id, 1);
            // The old row was list 2's; the new values (list 3's) are not carried.
            if let Some(old) = old {
                assert_eq!(old.list_id, 2);
                assert_eq!(old.title, "now in 2");
            }
        }
        other => panic!("a move-out must be Deleted, got {other:?}"),
    }
}

/// Item 4: views per socket are capped, and so are topic and ref lengths (the topic is
/// echoed in every frame).
#[tokio::test]
async fn joins_topics_and_refs_are_capped_per_socket() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, _live) = items::start(&db).await;
    let (_, body) = get(addr, "/lists/1").await;
    let (token, _) = page_token(&body);
    let mut c = WsClient::connect(addr).await;
    let url = format!("http://{addr}/lists/1");
    let mut refs = Vec::new();
    for i in 0..1000 {
        let topic = format!("lv:v{i}");
        let r = c
            .send_frame(
                Some(&topic),
                &topic,
                "join",
                json!({"token": token, "url": url}),
            )
            .await;
        refs.push(r);
    }
    let (mut ok, mut refused) = (0, 0);
    while ok + refused < refs.len() {
        let f = c.next(WAIT).await.expect("a reply to every join");
        if f[3] != "reply" {
            continue;
        }
        match f[4]["status"].as_str() {
            Some("ok") => ok += 1,
            _ => {
                assert_eq!(f[4]["response"]["reason"], "too_many_views", "{f}");
                refused += 1;
            }
        }
    }
    assert_eq!(ok, 16, "views per socket are capped at the default 16");
    assert_eq!(refused, 984);
    // A long topic is refused without being echoed.
    let long = format!("lv:{}", "x".repeat(10_000));
    c.send_frame(
        Some("1"),
        &long,
        "join",
        json!({"token": token, "url": url}),
    )
    .await;
    let f = c.next(WAIT).await.expect("an error frame");
    assert_eq!(f[3], "error", "{f}");
    assert_eq!(f[4]["reason"], "malformed");
    assert!(
        f.to_string().len() < 200,
        "the topic was echoed: {} bytes",
        f.to_string().len()
    );
    // A long ref too.
    c.send_frame(Some(&"r".repeat(100)), "lv:v0", "event", json!({}))
        .await;
    let f = c.next(WAIT).await.expect("an error frame");
    assert_eq!(f[4]["reason"], "malformed", "{f}");
}

/// Item 4: a client that stops reading while big rows change is disconnected after the
/// write timeout; its views end and free what they held; another client is unaffected.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let db = TestDb::new(items::SCHEMA).await;
    let mut config = LiveConfig::new(SECRET.to_vec());
    config.write_timeout = Duration::from_secs(2);
    let (addr, live) = items::start_with(&db, config).await;
    db.exec("INSERT INTO items_d (id, list_id, title) SELECT g, 1, repeat('x', 1 << 20) FROM generate_series(1, 4) g",
    )
    .await;
    // The stalled client: joins 8 views of the big list and never reads again.
    let (_, body) = get(addr, "/d/1").await;
    let (token, _) = page_token(&body);
    let mut stalled = WsClient::connect(addr).await;
    for i in 0..8 {
        let topic = format!("lv:s{i}");
        stalled
            .send_frame(
                Some(&topic),
                &topic,
                "join",
                json!({"token": token, "url": format!("http://{addr}/d/1")}),
            )
            .await;
    }
    let (mut fast, tf) = open(addr, "/lists/1").await;
    let pool = db.pool.clone();
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            sqlx::query("UPDATE items_d SET title = repeat($1, 1 << 20) WHERE id = $2")
                .bind(format!("{}", i % 10))
                .bind(1 + (i % 4) as i64)
                .execute(&pool)
                .await
                .expect("update");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // The stalled connection is closed: its views lose their socket (they wait, detached and
    // not rendering, for a client that comes back within the grace period); the fast
    // client's one stays attached.
    let start = Instant::now();
    let mut views = usize::MAX;
    while start.elapsed() < Duration::from_secs(30) {
        views = attached_views(&live).await;
        if views == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(views, 1, "the stalled client's views are still connected");
    assert!(live.health().await.detached_views >= 1);
    writer.await.expect("writer");
    db.exec("INSERT INTO items (id, list_id, title) VALUES (1, 1, 'fast client still live')")
        .await;
    assert!(
        fast.wait_html(&tf, WAIT, |h| h.contains("fast client still live"))
            .await
    );
    drop(stalled);
}

/// Item 5: 150 joins on one socket do not take the pool: another client's page loads keep
/// working (no 500s, no 10 s waits), and a socket that closes cancels its queued mounts.
#[tokio::test]
async fn a_mount_flood_on_one_socket_does_not_starve_other_page_loads() {
    let db = TestDb::new(items::SCHEMA).await;
    db.exec("INSERT INTO items_d (id, list_id, title) SELECT g, 1, 'row ' || g FROM generate_series(1, 500) g",
    )
    .await;
    let mut config = LiveConfig::new(SECRET.to_vec());
    config.max_views_per_socket = 200;
    let (addr, live) = items::start_with(&db, config).await;
    let (_, body) = get(addr, "/d/1").await;
    let (token, _) = page_token(&body);
    let mut flood = WsClient::connect(addr).await;
    for i in 0..150 {
        let topic = format!("lv:f{i}");
        flood
            .send_frame(
                Some(&topic),
                &topic,
                "join",
                json!({"token": token, "url": format!("http://{addr}/d/1")}),
            )
            .await;
    }
    let mut worst = Duration::ZERO;
    for _ in 0..30 {
        let t = Instant::now();
        let (status, _) = get(addr, "/lists/2").await;
        worst = worst.max(t.elapsed());
        assert_eq!(status, 200, "a page load failed during the mount flood");
    }
    eprintln!("slowest page load during the flood: {worst:?}");
    assert!(
        worst < Duration::from_secs(3),
        "page loads waited {worst:?} behind the flood"
    );
    // Closing the flooding socket cancels what it still had queued (the views it had
    // mounted lose their socket and wait, detached, for their grace period).
    drop(flood);
    let start = Instant::now();
    while attached_views(&live).await > 0 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attached_views(&live).await, 0);
    // No mount goes on for the closed socket: no client connection stays busy (a cancelled
    // mount's connection is closed, not handed back inside its transaction).
    let mut busy = i64::MAX;
    let start = Instant::now();
    while busy > 0 && start.elapsed() < WAIT {
        busy = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&db.pool)
        .await
        .expect("activity");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        busy, 0,
        "client connections still busy after the socket closed"
    );
}

/// Item 6: half-open connections are closed after the header-read timeout, and a slow client
/// does not keep the server from stopping past the shutdown deadline.
#[tokio::test]
async fn half_open_connections_time_out_and_shutdown_has_a_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/", axum::routing::get(|| async { "hi" }));
    let mut cfg = ServeConfig::default();
    cfg.header_read_timeout = Duration::from_secs(1);
    cfg.shutdown_timeout = Duration::from_secs(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(live_core::serve_with(listener, app, cfg, async move {
        let _ = stop_rx.await;
    }));
    let mut half = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        half.push(s);
    }
    // A connection that never sends a byte is held no longer either.
    half.push(TcpStream::connect(addr).await.expect("connect"));
    let start = Instant::now();
    for s in half.iter_mut() {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(_)) | Ok(Err(_))),
            "a half-open connection was still held after 5 s"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    let (status, body) = get(addr, "/").await;
    assert_eq!((status, body.as_str()), (200, "hi"));
    // A slow client in the middle of a request at shutdown.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stopped within its deadline")
        .expect("join")
        .expect("serve");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

/// Item 7: views of the same list on one node share one copy of each row.
#[tokio::test]
async fn views_of_the_same_rows_share_them() {
    let db = TestDb::new(items::SCHEMA).await;
    db.exec(
        "INSERT INTO items_d (id, list_id, title) VALUES (7001, 1, 'shared'), (7002, 1, 'also')",
    )
    .await;
    let (addr, _live) = items::start(&db).await;
    let mut views = Vec::new();
    for _ in 0..10 {
        views.push(open(addr, "/d/1").await);
    }
    assert!(
        live_core::testing::row_holders::<ItemD>(7001_i64) >= 10,
        "each view holds its own copy: {} holders of the shared one",
        live_core::testing::row_holders::<ItemD>(7001_i64)
    );
    // A replicated change is shared too, and so is a view mounted after it.
    db.exec("UPDATE items_d SET title = 'changed' WHERE id = 7001")
        .await;
    for (c, t) in views.iter_mut() {
        assert!(c.wait_html(t, WAIT, |h| h.contains("changed")).await);
    }
    views.push(open(addr, "/d/1").await);
    assert!(live_core::testing::row_holders::<ItemD>(7001_i64) >= 11);
}

/// Item 8: an oversized frame gets the close frame 1009 "too_large", not an abnormal close.
#[tokio::test]
async fn an_oversized_frame_gets_a_proper_close() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, _live) = items::start(&db).await;
    for size in [2 << 20, 8 << 20] {
        let mut c = WsClient::connect(addr).await;
        let text = format!(
            "[null,null,\"phoenix\",\"heartbeat\",{{\"x\":\"{}\"}}]",
            "y".repeat(size)
        );
        let _ = tokio::time::timeout(WAIT, c.send_text(text)).await;
        while c.next(WAIT).await.is_some() {}
        let close = c.log.last().cloned().unwrap_or_default();
        assert_eq!(close[0], "close", "{size} bytes: {close}");
        assert_eq!(close[1][0], 1009, "{size} bytes: {close}");
        assert_eq!(close[1][1], "too_large");
    }
}

/// Item 9: the private cluster does not trust TCP.
#[tokio::test]
async fn the_private_postgres_needs_a_password_on_tcp() {
    let port = with_cluster(|c| c.port());
    let no_password = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let err = sqlx::PgPool::connect(&no_password)
        .await
        .expect_err("a superuser connection without a password is refused");
    assert!(err.to_string().contains("password"), "{err}");
    let wrong = format!("postgres://postgres:wrong@127.0.0.1:{port}/postgres");
    assert!(sqlx::PgPool::connect(&wrong).await.is_err());
    let url = with_cluster(|c| c.url("postgres"));
    assert!(sqlx::PgPool::connect(&url).await.is_ok());
}

/// A raw request with chosen headers; returns the status.
async fn raw_status(addr: std::net::SocketAddr, req: String) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// Item 10: a DNS-rebinding host (with a matching origin) is refused, pages and websocket.
#[tokio::test]
async fn a_rebinding_host_is_refused() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, _live) = items::start(&db).await;
    let port = addr.port();
    let ws = |host: &str, origin: &str| {
        format!(
            "GET /live/websocket HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let evil = format!("rebind.evil.example:{port}");
    assert_eq!(
        raw_status(addr, ws(&evil, &format!("http://{evil}"))).await,
        421
    );
    let own = format!("127.0.0.1:{port}");
    assert_eq!(
        raw_status(addr, ws(&own, &format!("http://{own}"))).await,
        101
    );
    // The scheme counts.
    assert_eq!(
        raw_status(addr, ws(&own, &format!("https://{own}"))).await,
        403
    );
    let page =
        |host: &str| format!("GET /lists/1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(addr, page(&evil)).await, 421);
    assert_eq!(raw_status(addr, page(&own)).await, 200);
}

/// A view that shows the session's user and can be asked to redirect anywhere.
#[derive(Assigns)]
struct WhoAmI {
    user: Option<String>,
    id: String,
}

impl LiveView for WhoAmI {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Ok(WhoAmI {
            user: ctx.session().get("user"),
            id: ctx.params().get("id").unwrap_or("").to_string(),
        })
    }

    fn render(&self) -> Markup {
        html! {
            p.user { "user=" (self.user.as_deref().unwrap_or("nobody")) }
            p.id { "id=" (self.id) }
            p.query { "q=" }
        }
    }

    async fn handle_event(&mut self, e: Event, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
        match e.name.as_str() {
            "go" => ctx.redirect(e.get("to").unwrap_or("")),
            "patch" => ctx.push_patch(e.get("to").unwrap_or("")),
            "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
            _ => return Err(ViewError::UnknownEvent(e.name)),
        }
        Ok(())
    }
}

async fn start_whoami() -> (std::net::SocketAddr, Live<()>) {
    let live = Live::builder(())
        .config(LiveConfig::new(SECRET.to_vec()))
        .build()
        .expect("runtime");
    let app = Router::new()
        .live_view::<WhoAmI>("/who/{id}", &live)
        .merge(live.router());
    (live_tests::serve(app).await, live)
}

async fn get_with_cookie(addr: std::net::SocketAddr, path: &str, cookie: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

/// Item 11: a page token is not accepted as the session cookie (keys per purpose); a real
/// session cookie is, and carries its flags and expiry.
#[tokio::test]
async fn a_page_token_is_not_a_session_cookie() {
    let (addr, live) = start_whoami().await;
    let mut s = Session::default();
    s.insert("user", "alice");
    let cookie = live.session_cookie(&s);
    let cookie = cookie.to_str().expect("ascii");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Max-Age="), "{cookie}");
    let pair = cookie.split(';').next().expect("pair");
    let page = get_with_cookie(addr, "/who/1", pair).await;
    assert!(page.contains("user=alice"), "{page}");
    // The page's own view token, presented as the session cookie.
    let (token, _) = page_token(&page);
    let forged = get_with_cookie(addr, "/who/1", &format!("live_session={token}")).await;
    assert!(
        forged.contains("user=nobody"),
        "a page token verified as a session"
    );
    // Over https the cookie is Secure and __Host- prefixed.
    let mut cfg = LiveConfig::new(SECRET.to_vec());
    cfg.public_url = Some("https://app.example.com".into());
    let secure = Live::builder(()).config(cfg).build().expect("runtime");
    let c = secure.session_cookie(&s);
    let c = c.to_str().expect("ascii");
    assert!(
        c.starts_with("__Host-live_session=") && c.contains("; Secure"),
        "{c}"
    );
}

/// Item 12: a `params` frame cannot change the signed path parameters, and redirects or
/// patches to another origin are not sent.
#[tokio::test]
async fn path_params_stay_signed_and_targets_stay_on_site() {
    let (addr, _live) = start_whoami().await;
    let (mut c, t) = open(addr, "/who/1").await;
    let r = c
        .send_frame(
            Some(&t),
            &t,
            "params",
            json!({"url": format!("http://{addr}/who/2")}),
        )
        .await;
    let reply = c.reply(&r).await;
    assert_eq!(reply["response"]["reason"], "navigate", "{reply}");
    // Only the query may change.
    let r = c
        .send_frame(
            Some(&t),
            &t,
            "params",
            json!({"url": format!("http://{addr}/who/1?tab=x")}),
        )
        .await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    assert!(c.html(&t).contains("id=1"));
    for bad in [
        "javascript:alert(1)",
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let reply = c.event(&t, "click", "go", json!({"to": bad})).await;
        assert_eq!(reply["status"], "ok");
        let reply = c.event(&t, "click", "patch", json!({"to": bad})).await;
        assert_eq!(reply["status"], "ok");
    }
    let reply = c.event(&t, "click", "go", json!({"to": "/who/3"})).await;
    assert_eq!(reply["status"], "ok");
    // Read what is left; only the local redirect went out.
    while c.next(Duration::from_millis(300)).await.is_some() {}
    let sent: Vec<String> = c
        .log
        .iter()
        .filter(|f| f[3] == "redirect" || f[3] == "patch")
        .map(|f| f[4]["to"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(sent, vec!["/who/3".to_string()]);
}

/// Frames of a raw websocket client are bounded too: a client that floods events to a view
/// gets `busy` once the connection's inbound budget is used up, never unbounded memory.
#[tokio::test]
async fn inbound_events_are_bounded_per_connection() {
    let (addr, _live) = start_whoami().await;
    let (mut c, t) = open(addr, "/who/1").await;
    let big = "z".repeat(900 * 1024);
    // The view is busy for a while: what the client sends meanwhile waits in its inbox.
    let slow = c
        .send_frame(
            Some(&t),
            &t,
            "event",
            json!({"type": "click", "event": "slow"}),
        )
        .await;
    let mut refs = vec![slow];
    for _ in 0..40 {
        refs.push(
            c.send_frame(
                Some(&t),
                &t,
                "event",
                json!({"type": "click", "event": "nope", "value": {"v": big}}),
            )
            .await,
        );
    }
    let (mut busy, mut replies) = (0, 0);
    while replies < refs.len() {
        let f = c.next(WAIT).await.expect("a reply to every event");
        if f[3] == "reply" && refs.iter().any(|r| f[1] == r.as_str()) {
            replies += 1;
            if f[4]["response"]["reason"] == "busy" {
                busy += 1;
            }
        }
    }
    // 4 MiB per connection: four events of 900 KiB wait, the others are refused.
    assert!(
        busy >= 30,
        "{busy} of 40 refused: 36 MiB of events were queued for one view"
    );
}

/// Views with a socket: connected views minus those waiting, detached, for their client.
async fn attached_views<S: Clone + Send + Sync + 'static>(live: &live_core::Live<S>) -> usize {
    let h = live.health().await;
    live.connected_views() - h.detached_views
}
