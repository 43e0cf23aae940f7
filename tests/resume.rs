//! Resume: a dropped socket costs the user nothing. Real Postgres, real websockets.
//!
//! - A short drop: the view outlived its socket; the client rejoins with its resume id and the
//!   last version it applied and gets only the frames it missed; its assigns (those no
//!   database holds too) are as they were; events in flight and events sent after the resume
//!   run once each.
//! - Past the window: the whole page, correct.
//! - Refused: a version the server never sent, another session's view, another route's view;
//!   a tampered or foreign kept blob (the view mounts plain).
//! - Past the grace period: a new mount, with the `#[keep]` assigns back from the blob.
//! - Graceful stop: the server tells the client, finishes the event in flight, then closes.
//! - Detached views are capped per node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, RouterExt, Session, SyncCtx,
    ViewError, Watch, html, keyed,
};
use live_tests::{SECRET, TestDb, WsClient, get, page_token};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCHEMA: &str = "
CREATE TABLE notes (id bigserial PRIMARY KEY, list_id bigint NOT NULL, body text NOT NULL);
ALTER TABLE notes REPLICA IDENTITY FULL;
CREATE PUBLICATION live_publication FOR TABLE notes;
";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "notes", subscription_key = "list_id")]
struct Note {
    id: i64,
    list_id: i64,
    body: String,
}

/// A list of notes with UI state no database holds: a selected note (kept across mounts) and
/// a click counter (kept only while the view lives).
#[derive(Assigns)]
struct NotesView {
    #[subscription_key]
    list_id: i64,
    #[watch(sync = Self::sorted)]
    notes: Vec<Arc<Note>>,
    #[keep]
    selected: Option<i64>,
    clicks: u64,
    user: String,
}

impl NotesView {
    async fn sorted(
        &mut self,
        mut notes: Vec<Arc<Note>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Note>>, ViewError> {
        notes.sort_by_key(|n| n.id);
        Ok(notes)
    }
}

impl LiveView for NotesView {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let list_id: i64 = ctx.params().parse("id")?;
        let user = ctx
            .session()
            .get::<String>("user")
            .unwrap_or_else(|| "nobody".into());
        let notes: Vec<Note> = sqlx::query_as("SELECT * FROM notes WHERE list_id = $1")
            .bind(list_id)
            .fetch_all(ctx.db().await?)
            .await?;
        Ok(NotesView {
            list_id,
            notes: notes.into_iter().map(Arc::new).collect(),
            selected: None,
            clicks: 0,
            user,
        })
    }

    fn render(&self) -> Markup {
        html! {
            h1 { "notes of " (self.user) }
            p #clicks { "clicks " (self.clicks) }
            p #selected { "selected " (self.selected.map(|s| s.to_string()).unwrap_or_default()) }
            ul { (keyed("notes", &self.notes, |n| n.id).render(|n| html! { li { (n.body) } })) }
        }
    }

    async fn handle_event(&mut self, e: Event, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
        match e.name.as_str() {
            "click" => self.clicks += 1,
            "slow" => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                self.clicks += 1;
            }
            "select" => self.selected = Some(e.get_as("id")?),
            _ => return Err(ViewError::UnknownEvent(e.name)),
        }
        Ok(())
    }
}

/// Another view, at another route, for the cross-route refusal.
#[derive(Assigns)]
struct OtherView;

impl LiveView for OtherView {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Ok(OtherView)
    }
    fn render(&self) -> Markup {
        html! { p { "other" } }
    }
}

async fn start(db: &TestDb, config: LiveConfig) -> (std::net::SocketAddr, Live<()>) {
    let live = db.live(config);
    let app = axum::Router::new()
        .live_view::<NotesView>("/notes/{id}", &live)
        .live_view::<OtherView>("/other", &live)
        .merge(live.router());
    live.listen().await.expect("listener");
    (live_tests::serve(app).await, live)
}

fn config() -> LiveConfig {
    LiveConfig::new(SECRET.to_vec())
}

/// A page's token and topic, fetched with a session cookie (or none).
async fn page(addr: std::net::SocketAddr, path: &str, cookie: Option<&str>) -> (String, String) {
    let body = match cookie {
        None => get(addr, path).await.1,
        Some(c) => {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {c}\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.expect("write");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let (token, id) = page_token(&body);
    (token, format!("lv:{id}"))
}

/// Opens `/notes/1` on a new connection: the client, its page token and topic, and the view's
/// resume id.
async fn open_notes(addr: std::net::SocketAddr) -> (WsClient, String, String, String) {
    let (token, topic) = page(addr, "/notes/1", None).await;
    let mut c = WsClient::connect(addr).await;
    let reply = c
        .join_with(&topic, join_payload(addr, "/notes/1", &token), None)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let id = reply["response"]["resume"]
        .as_str()
        .expect("a resume id")
        .to_string();
    (c, token, topic, id)
}

fn join_payload(addr: std::net::SocketAddr, path: &str, token: &str) -> Value {
    json!({"token": token, "url": format!("http://{addr}{path}")})
}

/// Sends an event with the client's number `n` and returns its ref (the reply is not read).
async fn send_event(c: &mut WsClient, topic: &str, name: &str, value: Value, n: u64) -> String {
    c.send_frame(
        Some(topic),
        topic,
        "event",
        json!({"type": "click", "event": name, "value": value, "n": n}),
    )
    .await
}

/// The bytes of every frame received from index `from` of the log on.
fn bytes_since(c: &WsClient, from: usize) -> usize {
    c.log[from..].iter().map(|f| f.to_string().len()).sum()
}

/// Asks the server for the view's whole page (a `full` diff and the pieces after it, all
/// before the reply) and checks that the client's copy was equal to it, byte for byte.
async fn assert_equals_server_render(c: &mut WsClient, topic: &str) {
    let before = c.html(topic);
    let from = c.log.len();
    let r = c.send_frame(Some(topic), topic, "resync", json!({})).await;
    let reply = c.reply(&r).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(
        c.log[from..]
            .iter()
            .any(|f| f[3] == "diff" && f[4].get("full").is_some()),
        "a full render came"
    );
    let server = c.html(topic);
    if before != server {
        let at = before
            .bytes()
            .zip(server.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(before.len().min(server.len()));
        let lo = at.saturating_sub(80);
        panic!(
            "the client's page differs from the server's render at byte {at}: client …{}… server …{}…",
            &before[lo..(at + 80).min(before.len())],
            &server[lo..(at + 80).min(server.len())]
        );
    }
}

fn rows_of(html: &str) -> usize {
    html.matches("<li data-live-key=").count()
}

#[tokio::test]
async fn a_short_drop_sends_only_the_missed_frames_and_keeps_every_assign() {
    let db = TestDb::new(SCHEMA).await;
    db.exec(
        "INSERT INTO notes (list_id, body) SELECT 1, 'note ' || g FROM generate_series(1, 1000) g",
    )
    .await;
    let (addr, live) = start(&db, config()).await;
    let (mut c, token, topic, resume_id) = open_notes(addr).await;
    assert!(c.wait_html(&topic, WAIT, |h| rows_of(h) == 1000).await);
    let full_bytes = bytes_since(&c, 0);
    // UI state no database holds.
    for n in 1..=2 {
        let r = send_event(&mut c, &topic, "click", json!({}), n).await;
        assert_eq!(c.reply(&r).await["status"], "ok");
    }
    assert!(c.html(&topic).contains("clicks 2"));
    // An event whose reply is lost with the connection: the server handles it.
    send_event(&mut c, &topic, "click", json!({}), 3).await;
    let model = c.models.get(&topic).cloned().expect("model");
    let version = model.version();
    drop(c);
    // Meanwhile, rows change in Postgres.
    for i in 0..10 {
        db.exec(&format!(
            "UPDATE notes SET body = 'changed {i}' WHERE id = {}",
            i * 97 + 1
        ))
        .await;
    }
    let start = Instant::now();
    while live.health().await.detached_views != 1 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.health().await.detached_views, 1, "the view waits");
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The client comes back with the view's name and its version.
    let mut c = WsClient::connect(addr).await;
    let mut payload = join_payload(addr, "/notes/1", &token);
    payload["resume"] = json!({"id": resume_id, "v": version});
    let reply = c.join_with(&topic, payload, Some(model)).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let resp = &reply["response"];
    assert_eq!(resp["resumed"], true, "{reply}");
    assert!(resp.get("rendered").is_none(), "no whole page");
    assert_eq!(resp["events"], 3, "the event in flight was handled");
    let new_id = resp["resume"].as_str().expect("a new resume id");
    assert_ne!(new_id, resume_id, "the id changes at every resume");
    assert!(
        c.wait_html(&topic, WAIT, |h| (0..10)
            .all(|i| h.contains(&format!(">changed {i}<"))))
            .await,
        "the changes made while away arrived"
    );
    let resumed_bytes = bytes_since(&c, 0);
    assert_eq!(live.health().await.detached_views, 0);
    // Every assign survived, the one no database holds too: 3 clicks (the third was the
    // event in flight).
    assert!(c.html(&topic).contains("clicks 3"), "{}", c.html(&topic));
    // That event, resent by a client that did not know, is answered but not run again; a
    // new one runs.
    let r = send_event(&mut c, &topic, "click", json!({}), 3).await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    let r = send_event(&mut c, &topic, "click", json!({}), 4).await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    assert!(
        c.wait_html(&topic, WAIT, |h| h.contains("clicks 4")).await,
        "{}",
        c.html(&topic)
    );
    eprintln!("whole page: {full_bytes} bytes; resume after 10 changes: {resumed_bytes} bytes");
    assert!(
        resumed_bytes < 8 * 1024,
        "a resume sent {resumed_bytes} bytes (the whole page is {full_bytes})"
    );
    assert!(full_bytes > 20 * resumed_bytes);
    assert_equals_server_render(&mut c, &topic).await;
}

#[tokio::test]
async fn a_client_further_behind_than_the_window_gets_the_whole_page() {
    let db = TestDb::new(SCHEMA).await;
    db.exec(
        "INSERT INTO notes (list_id, body) SELECT 1, 'note ' || g FROM generate_series(1, 20) g",
    )
    .await;
    let mut cfg = config();
    cfg.resume_window_frames = 2;
    let (addr, live) = start(&db, cfg).await;
    let (c, token, topic, resume_id) = open_notes(addr).await;
    let model = c.models.get(&topic).cloned().expect("model");
    // Five changes are sent while the client reads nothing; then its connection drops: it
    // is at version 1, the window holds only the last two diffs.
    for i in 0..5 {
        db.exec(&format!(
            "UPDATE notes SET body = 'late {i}' WHERE id = {}",
            i + 1
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(c);
    let start = Instant::now();
    while live.health().await.detached_views != 1 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = WsClient::connect(addr).await;
    let mut payload = join_payload(addr, "/notes/1", &token);
    payload["resume"] = json!({"id": resume_id, "v": model.version()});
    let reply = c.join_with(&topic, payload, Some(model)).await;
    assert_eq!(reply["response"]["resumed"], true, "{reply}");
    assert!(
        c.wait_html(&topic, WAIT, |h| (0..5)
            .all(|i| h.contains(&format!(">late {i}<"))))
            .await
    );
    assert!(
        c.log
            .iter()
            .any(|f| f[3] == "diff" && f[4].get("full").is_some()),
        "past the window the page comes whole"
    );
    assert_equals_server_render(&mut c, &topic).await;
}

#[tokio::test]
async fn resumes_of_versions_never_sent_and_of_other_sessions_views_are_refused() {
    let db = TestDb::new(SCHEMA).await;
    db.exec("INSERT INTO notes (list_id, body) VALUES (1, 'alice secret')")
        .await;
    let (addr, live) = start(&db, config()).await;
    let cookie = |user: &str| {
        let mut s = Session::default();
        s.insert("user", user);
        let c = live.session_cookie(&s);
        c.to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_string()
    };
    let (alice_cookie, bob_cookie) = (cookie("alice"), cookie("bob"));
    let (alice_token, topic) = page(addr, "/notes/1", Some(&alice_cookie)).await;
    let mut alice = WsClient::connect(addr).await;
    let reply = alice
        .join_with(&topic, join_payload(addr, "/notes/1", &alice_token), None)
        .await;
    assert!(alice.html(&topic).contains("notes of alice"));
    let id = reply["response"]["resume"]
        .as_str()
        .expect("id")
        .to_string();
    let version = alice.models[&topic].version();

    // Bob names Alice's view, with his own page token (same route, another session).
    let (bob_token, bob_topic) = page(addr, "/notes/1", Some(&bob_cookie)).await;
    let mut bob = WsClient::connect(addr).await;
    let mut payload = join_payload(addr, "/notes/1", &bob_token);
    payload["resume"] = json!({"id": id, "v": version});
    let reply = bob.join_with(&bob_topic, payload, None).await;
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["response"]["reason"], "resume_refused");
    // A page of another route naming it.
    let (other_token, other_topic) = page(addr, "/other", None).await;
    let mut payload = join_payload(addr, "/other", &other_token);
    payload["resume"] = json!({"id": id, "v": version});
    let reply = bob.join_with(&other_topic, payload, None).await;
    assert_eq!(reply["response"]["reason"], "resume_refused");
    // A version Alice's view never sent.
    let mut payload = join_payload(addr, "/notes/1", &alice_token);
    payload["resume"] = json!({"id": id, "v": version + 100});
    let mut alice2 = WsClient::connect(addr).await;
    let reply = alice2.join_with(&topic, payload, None).await;
    assert_eq!(reply["response"]["reason"], "bad_version");
    // Nothing of Alice's view reached Bob; Alice's view is untouched and still hers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while bob.next(Duration::from_millis(100)).await.is_some() {}
    let seen: String = bob.log.iter().map(Value::to_string).collect();
    assert!(!seen.contains("alice"), "Bob received Alice's data: {seen}");
    db.exec("INSERT INTO notes (list_id, body) VALUES (1, 'still live')")
        .await;
    assert!(
        alice
            .wait_html(&topic, WAIT, |h| h.contains("still live"))
            .await
    );
    // A refused id stays Alice's: she can still resume with it.
    drop(alice);
    let model = alice2.models.get(&topic).cloned();
    assert!(model.is_none());
    let mut payload = join_payload(addr, "/notes/1", &alice_token);
    payload["resume"] = json!({"id": id, "v": version});
    let mut alice3 = WsClient::connect(addr).await;
    let reply = alice3.join_with(&topic, payload, None).await;
    assert_eq!(reply["response"]["resumed"], true, "{reply}");
}

#[tokio::test]
async fn kept_assigns_come_back_on_a_new_mount_and_foreign_or_tampered_blobs_are_refused() {
    let db = TestDb::new(SCHEMA).await;
    db.exec("INSERT INTO notes (id, list_id, body) VALUES (7, 1, 'seven')")
        .await;
    let mut cfg = config();
    cfg.resume_grace = Duration::from_millis(200);
    let (addr, _live) = start(&db, cfg).await;
    let (mut c, token, topic, id) = open_notes(addr).await;
    let r = send_event(&mut c, &topic, "select", json!({"id": "7"}), 1).await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    let r = send_event(&mut c, &topic, "click", json!({}), 2).await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    assert!(c.html(&topic).contains("selected 7"));
    let keep = c
        .log
        .iter()
        .rev()
        .find(|f| f[3] == "keep")
        .and_then(|f| f[4]["keep"].as_str().map(str::to_string))
        .expect("a kept blob after the selection");
    let version = c.models[&topic].version();
    drop(c);
    // Past the grace period: the view is gone, the join mounts anew with the blob.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut c = WsClient::connect(addr).await;
    let mut payload = join_payload(addr, "/notes/1", &token);
    payload["resume"] = json!({"id": id, "v": version});
    payload["keep"] = json!(keep);
    let reply = c.join_with(&topic, payload, None).await;
    let resp = &reply["response"];
    assert!(resp.get("rendered").is_some(), "a new mount: {reply}");
    assert!(resp.get("keep_refused").is_none(), "{reply}");
    let html = c.html(&topic);
    assert!(
        html.contains("selected 7"),
        "the kept assign is back: {html}"
    );
    assert!(
        html.contains("clicks 0"),
        "an assign not kept starts over: {html}"
    );

    // A tampered blob: refused, the view mounts plain.
    let mut bad = keep.clone().into_bytes();
    bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("ascii");
    for (blob, page_path, reason) in [(bad.as_str(), "/notes/1", "invalid")] {
        let (t, tp) = page(addr, page_path, None).await;
        let mut payload = join_payload(addr, page_path, &t);
        payload["keep"] = json!(blob);
        let mut c = WsClient::connect(addr).await;
        let reply = c.join_with(&tp, payload, None).await;
        assert_eq!(reply["response"]["keep_refused"], reason, "{reply}");
        assert!(c.html(&tp).contains("selected <"), "{}", c.html(&tp));
    }
    // The blob of another page (another page load: another token) is refused too — replayed
    // into another session's or another list's page, it would be the same.
    let (t, tp) = page(addr, "/notes/1", None).await;
    let mut payload = join_payload(addr, "/notes/1", &t);
    payload["keep"] = json!(keep);
    let mut c = WsClient::connect(addr).await;
    let reply = c.join_with(&tp, payload, None).await;
    assert_eq!(reply["response"]["keep_refused"], "other_page", "{reply}");
    assert!(!c.html(&tp).contains("selected 7"));
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_event_in_flight_then_closes() {
    let db = TestDb::new(SCHEMA).await;
    let mut cfg = config();
    cfg.reconnect_jitter = Duration::from_millis(500);
    let (addr, live) = start(&db, cfg).await;
    let (mut c, _, topic, _) = open_notes(addr).await;
    // A slow event, and the server stops while it runs.
    let r = send_event(&mut c, &topic, "slow", json!({}), 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn({
        let live = live.clone();
        async move {
            live.shutdown().await;
            Instant::now()
        }
    });
    let mut order = Vec::new();
    while let Some(f) = c.next(WAIT).await {
        if f[3] == "reply" && f[1] == r.as_str() {
            assert_eq!(f[4]["status"], "ok");
            order.push("reply".to_string());
        } else if f[3] == "drain" {
            let ms = f[4]["reconnect_in"].as_u64().expect("reconnect_in");
            assert!(ms < 500, "within the jitter: {ms}");
            order.push("drain".to_string());
        }
    }
    let closed_at = Instant::now();
    let close = c.log.last().cloned().expect("a close");
    assert_eq!(close[0], "close");
    assert_eq!(close[1][0], 1012, "{close}");
    assert_eq!(
        order,
        ["drain", "reply"],
        "told first, then the event's reply, then closed"
    );
    assert!(c.html(&topic).contains("clicks 1"), "its diff arrived too");
    let stopped_at = stopping.await.expect("shutdown");
    assert!(
        stopped_at + Duration::from_millis(50) >= closed_at,
        "shutdown returned before the socket was closed"
    );
}

#[tokio::test]
async fn detached_views_are_capped_per_node() {
    let db = TestDb::new(SCHEMA).await;
    let mut cfg = config();
    cfg.max_detached_views = 2;
    let (addr, live) = start(&db, cfg).await;
    let (token, _) = page(addr, "/notes/1", None).await;
    let mut c = WsClient::connect(addr).await;
    for i in 0..3 {
        let topic = format!("lv:cap{i}");
        let reply = c
            .join_with(&topic, join_payload(addr, "/notes/1", &token), None)
            .await;
        assert_eq!(reply["status"], "ok");
    }
    assert_eq!(live.connected_views(), 3);
    drop(c);
    let start = Instant::now();
    while live.connected_views() != 2 && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = live.health().await;
    assert_eq!(h.detached_views, 2, "two wait");
    assert_eq!(live.connected_views(), 2, "the third ended");
}
