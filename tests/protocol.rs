//! Protocol tests over a real websocket (tokio-tungstenite against the server on 127.0.0.1):
//! join, events, server pushes, patches that reproduce the server render byte for byte, and
//! every kind of bad input, each answered while a second view on the same server keeps working.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, Params, RouterExt, ViewError,
    html, keyed,
};
use live_tests::{Connect, SECRET, WsClient, get, open, page_token, serve};
use serde_json::json;

#[derive(Debug)]
struct Row {
    id: u64,
    text: String,
}

/// A view whose state the test mirrors: the same ops applied to a local copy render the HTML
/// the client must hold.
#[derive(Assigns)]
struct Lab {
    header: String,
    rows: Vec<Arc<Row>>,
    next: u64,
    ticks: u64,
    filter: String,
}

enum LabMsg {
    Tick,
}

impl Lab {
    fn new() -> Self {
        Self::with_rows(5)
    }

    fn with_rows(n: u64) -> Self {
        Lab {
            header: "Lab é".into(),
            rows: (0..n)
                .map(|i| {
                    Arc::new(Row {
                        id: i,
                        text: format!("row {i}"),
                    })
                })
                .collect(),
            next: n,
            ticks: 0,
            filter: String::new(),
        }
    }

    /// Applies one op (shared by the server view and the test's mirror).
    fn apply(&mut self, e: &Event) -> Result<(), ViewError> {
        let index = e.get_as::<usize>("index").unwrap_or(0);
        let text = e.get("text").unwrap_or("").to_string();
        match e.get("kind").unwrap_or("") {
            "insert" => {
                let id = self.next;
                self.next += 1;
                let at = index.min(self.rows.len());
                self.rows.insert(at, Arc::new(Row { id, text }));
            }
            "delete" if !self.rows.is_empty() => {
                self.rows.remove(index % self.rows.len());
            }
            "move" if !self.rows.is_empty() => {
                let r = self.rows.remove(index % self.rows.len());
                let to = e.get_as::<usize>("to").unwrap_or(0) % (self.rows.len() + 1);
                self.rows.insert(to, r);
            }
            "update" if !self.rows.is_empty() => {
                let i = index % self.rows.len();
                let id = self.rows[i].id;
                self.rows[i] = Arc::new(Row { id, text });
            }
            "header" => self.header = text,
            "delete" | "move" | "update" => {}
            other => return Err(ViewError::bad_request(format!("unknown op {other}"))),
        }
        Ok(())
    }
}

impl LiveView for Lab {
    type State = ();
    type Message = LabMsg;

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let rows = ctx.params().parse::<u64>("rows").unwrap_or(5).min(100_000);
        Ok(Lab::with_rows(rows))
    }

    fn title(&self) -> Option<String> {
        Some(format!("{} ({})", self.header, self.rows.len()))
    }

    fn render(&self) -> Markup {
        html! {
            section.lab {
                h1 { (self.header) }
                p.count { (self.rows.len()) " rows, ticks " span.ticks { (self.ticks) } }
                @if !self.filter.is_empty() { p.filter { "filter: " (self.filter) } }
                ul {
                    (keyed("rows", &self.rows, |r| r.id).render(|r| html! {
                        li title=(r.text) { span { (r.text) } " #" (r.id) }
                    }))
                }
                footer { "last: " @if let Some(r) = self.rows.last() { (r.text) } }
            }
        }
    }

    async fn handle_event(
        &mut self,
        event: Event,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        match event.name.as_str() {
            "op" => self.apply(&event),
            "tick" => {
                ctx.send_after(Duration::from_millis(5), LabMsg::Tick);
                Ok(())
            }
            "push" => {
                ctx.push_event("hello", json!({"n": 1}));
                ctx.push_patch("/lab?filter=active");
                Ok(())
            }
            "boom" => panic!("boom requested"),
            "fail" => Err(ViewError::other("handler failed on purpose")),
            _ => Err(ViewError::UnknownEvent(event.name)),
        }
    }

    async fn handle_info(
        &mut self,
        msg: LabMsg,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        match msg {
            LabMsg::Tick => self.ticks += 1,
        }
        Ok(())
    }

    async fn handle_params(
        &mut self,
        params: &Params,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        self.filter = params.get("filter").unwrap_or("").to_string();
        Ok(())
    }
}

fn app(config: LiveConfig) -> Router {
    let live = Live::builder(()).config(config).build().expect("runtime");
    Router::new()
        .live_view::<Lab>("/lab", &live)
        .merge(live.router())
}

async fn start() -> std::net::SocketAddr {
    serve(app(LiveConfig::new(SECRET.to_vec()))).await
}

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn text(&mut self) -> String {
        const PARTS: &[&str] = &[
            "a",
            "é",
            "😀",
            "中文",
            "<b>",
            "&amp;",
            "\"q\"",
            "'",
            " ",
            "Ünï",
            "👩‍👩‍👧",
            "x\ny",
            "ß",
            "🎉🎉",
        ];
        (0..1 + self.next() % 6)
            .map(|_| PARTS[(self.next() % PARTS.len() as u64) as usize])
            .collect()
    }
}

#[tokio::test]
async fn join_renders_the_page_and_events_patch_it() {
    let addr = start().await;
    let (status, body) = get(addr, "/lab").await;
    assert_eq!(status, 200);
    assert!(body.contains("<h1>Lab é</h1>"), "{body}");
    assert!(
        body.contains("data-live-key=\"3\""),
        "rows are keyed in the static render"
    );
    let (token, id) = page_token(&body);
    let mut c = WsClient::connect(addr).await;
    let topic = format!("lv:{id}");
    let reply = c.join(&topic, &token, &format!("http://{addr}/lab")).await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["response"]["v"], 1);
    assert_eq!(reply["response"]["title"], "Lab é (5)");
    assert_eq!(c.html(&topic), Lab::new().render().into_string());

    let reply = c
        .event(
            &topic,
            "click",
            "op",
            json!({"kind": "update", "index": "2", "text": "changed 😀"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(c.html(&topic).contains("<span>changed 😀</span>"));
    // The change travelled as one keyed row op, not the page.
    let diff = c.log.iter().rev().find(|f| f[3] == "diff").expect("a diff");
    assert_eq!(diff[4]["l"][0][1][0][0], "r", "{diff}");
    assert!(diff[4].get("full").is_none());
}

#[tokio::test]
async fn random_edits_reproduce_the_server_render_byte_for_byte() {
    let addr = start().await;
    let (mut c, topic) = open(addr, "/lab").await;
    let mut mirror = Lab::new();
    let mut rng = Rng(42);
    let mut full_bytes = 0usize;
    for step in 0..400 {
        let kind = [
            "insert", "insert", "delete", "move", "update", "update", "header",
        ][(rng.next() % 7) as usize];
        let value = json!({
            "kind": kind,
            "index": (rng.next() % 12).to_string(),
            "to": (rng.next() % 12).to_string(),
            "text": rng.text(),
        });
        let event = Event::new(live_core::EventKind::Click, "op", value.clone());
        mirror.apply(&event).expect("mirror op");
        let reply = c.event(&topic, "click", "op", value).await;
        assert_eq!(reply["status"], "ok", "step {step}");
        let expected = mirror.render().into_string();
        assert_eq!(c.html(&topic), expected, "step {step}");
        full_bytes += expected.len();
    }
    let diffs = c.log.iter().filter(|f| f[3] == "diff").count();
    assert!(diffs >= 390, "{diffs} diffs");
    assert!(
        c.log
            .iter()
            .filter(|f| f[3] == "diff")
            .all(|f| f[4].get("full").is_none()),
        "no edit needed a full resend"
    );
    assert!(
        c.diff_bytes * 4 < full_bytes,
        "diffs ({} B) are far smaller than pages ({full_bytes} B)",
        c.diff_bytes
    );
}

#[tokio::test]
async fn server_pushes_diffs_events_patches_and_titles() {
    let addr = start().await;
    let (mut c, topic) = open(addr, "/lab").await;
    let reply = c.event(&topic, "click", "tick", json!({})).await;
    assert_eq!(reply["status"], "ok");
    // The tick arrives later, as a push nobody asked for.
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains("<span class=\"ticks\">1</span>"))
            .await,
        "{}",
        c.html(&topic)
    );
    let reply = c.event(&topic, "click", "push", json!({})).await;
    assert_eq!(reply["status"], "ok");
    let events: Vec<&str> = c.log.iter().filter_map(|f| f[3].as_str()).collect();
    assert!(events.contains(&"push_event"), "{events:?}");
    let patch = c.log.iter().find(|f| f[3] == "patch").expect("patch frame");
    assert_eq!(patch[4]["to"], "/lab?filter=active");
    assert!(
        c.html(&topic).contains("filter: active"),
        "handle_params ran for the patch"
    );
    // Params from the client (a live-patch link or back button).
    let r = c
        .send_frame(
            Some(&topic),
            &topic,
            "params",
            json!({"url": format!("http://{addr}/lab?filter=done")}),
        )
        .await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    assert!(c.html(&topic).contains("filter: done"));
    c.event(
        &topic,
        "click",
        "op",
        json!({"kind": "insert", "index": "0", "text": "t"}),
    )
    .await;
    let title = c
        .log
        .iter()
        .rev()
        .find(|f| f[3] == "title")
        .expect("title frame");
    assert_eq!(title[4]["title"], "Lab é (6)");
}

#[tokio::test]
async fn resync_sends_the_whole_page() {
    let addr = start().await;
    let (mut c, topic) = open(addr, "/lab").await;
    let r = c
        .send_frame(Some(&topic), &topic, "resync", json!({}))
        .await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    let full = c.log.iter().find(|f| f[3] == "diff").expect("diff");
    assert!(full[4].get("full").is_some());
    assert_eq!(c.html(&topic), Lab::new().render().into_string());
    // Diffs continue from the resynced version.
    c.event(
        &topic,
        "click",
        "op",
        json!({"kind": "header", "text": "after"}),
    )
    .await;
    assert!(c.html(&topic).contains("<h1>after</h1>"));
}

/// Asserts the second view still answers and patches.
async fn still_works(c: &mut WsClient, topic: &str, n: usize) {
    let text = format!("still alive {n}");
    let reply = c
        .event(
            topic,
            "click",
            "op",
            json!({"kind": "header", "text": text}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(c.html(topic).contains(&format!("<h1>{text}</h1>")));
}

fn error_reason(reply: &serde_json::Value) -> &str {
    assert_eq!(reply["status"], "error", "{reply}");
    reply["response"]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_other_views_keep_working() {
    let addr = start().await;
    let (mut good, good_topic) = open(addr, "/lab").await;
    let (mut bad, bad_topic) = open(addr, "/lab").await;
    let mut n = 0;

    // Malformed JSON and wrong shapes.
    for text in [
        "{not json",
        "[1,2,3]",
        "{}",
        "[\"1\",\"2\",3,\"event\",{}]",
        "\u{0}",
    ] {
        bad.send_text(text.to_string()).await;
        let f = bad
            .next(Duration::from_secs(5))
            .await
            .expect("an error frame");
        assert_eq!(f[2], "phoenix");
        assert_eq!(f[3], "error");
        assert_eq!(f[4]["reason"], "malformed", "{text}: {f}");
        n += 1;
        still_works(&mut good, &good_topic, n).await;
    }

    // An unknown frame event, and an unknown view event.
    let r = bad
        .send_frame(Some(&bad_topic), &bad_topic, "bogus", json!({}))
        .await;
    assert_eq!(error_reason(&bad.reply(&r).await), "unknown_event");
    let reply = bad
        .event(&bad_topic, "click", "no_such_handler", json!({}))
        .await;
    assert_eq!(error_reason(&reply), "unknown_event");
    // A bad payload, and a handler that returns an error: the view carries on.
    let r = bad
        .send_frame(
            Some(&bad_topic),
            &bad_topic,
            "event",
            json!({"type": "click"}),
        )
        .await;
    assert_eq!(error_reason(&bad.reply(&r).await), "bad_payload");
    let reply = bad
        .event(&bad_topic, "click", "op", json!({"kind": "explode"}))
        .await;
    assert_eq!(error_reason(&reply), "bad_payload");
    let reply = bad.event(&bad_topic, "click", "fail", json!({})).await;
    assert_eq!(error_reason(&reply), "handler_failed");
    let reply = bad
        .event(
            &bad_topic,
            "click",
            "op",
            json!({"kind": "header", "text": "bad is fine"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    n += 1;
    still_works(&mut good, &good_topic, n).await;

    // Events for a view that is not joined, or with the wrong join ref.
    let r = bad
        .send_frame(
            Some("lv:nope"),
            "lv:nope",
            "event",
            json!({"type": "click", "event": "op", "value": {}}),
        )
        .await;
    assert_eq!(error_reason(&bad.reply(&r).await), "not_joined");
    let r = bad
        .send_frame(
            Some("wrong"),
            &bad_topic,
            "event",
            json!({"type": "click", "event": "op", "value": {}}),
        )
        .await;
    assert_eq!(error_reason(&bad.reply(&r).await), "not_joined");
    // Joining the same topic twice.
    let (_, body) = get(addr, "/lab").await;
    let (token, _) = page_token(&body);
    let r = bad
        .send_frame(
            Some(&bad_topic),
            &bad_topic,
            "join",
            json!({"token": token, "url": "/lab"}),
        )
        .await;
    assert_eq!(error_reason(&bad.reply(&r).await), "already_joined");

    // A tampered token, a token of another key, garbage.
    let mut tampered = token.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for t in [tampered.as_str(), "garbage", ""] {
        let topic = format!("lv:t{}", t.len());
        let reply = bad.join(&topic, t, "/lab").await;
        assert_eq!(error_reason(&reply), "invalid_token");
    }
    let other = serve(app(LiveConfig::new(
        b"another-secret-key-0123456789abcdef0123".to_vec(),
    )))
    .await;
    let (_, body) = get(other, "/lab").await;
    let (foreign_token, _) = page_token(&body);
    let reply = bad.join("lv:foreign", &foreign_token, "/lab").await;
    assert_eq!(error_reason(&reply), "invalid_token");
    n += 1;
    still_works(&mut good, &good_topic, n).await;

    // An expired token.
    let mut short = LiveConfig::new(SECRET.to_vec());
    short.token_max_age = Duration::from_secs(0);
    let short_addr = serve(app(short)).await;
    let (_, body) = get(short_addr, "/lab").await;
    let (expired, _) = page_token(&body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = WsClient::connect(short_addr).await;
    let reply = c.join("lv:old", &expired, "/lab").await;
    assert_eq!(error_reason(&reply), "expired");

    // A foreign Origin, and none: the upgrade is refused.
    match WsClient::connect_with_origin(addr, Some("http://evil.example")).await {
        Connect::Refused(status) => assert_eq!(status, 403),
        Connect::Ok(_) => panic!("a foreign origin was accepted"),
    }
    match WsClient::connect_with_origin(addr, None).await {
        Connect::Refused(status) => assert_eq!(status, 403),
        Connect::Ok(_) => panic!("a missing origin was accepted"),
    }
    n += 1;
    still_works(&mut good, &good_topic, n).await;

    // A crash ends that view only; the client can rejoin.
    let r = bad
        .send_frame(
            Some(&bad_topic),
            &bad_topic,
            "event",
            json!({"type": "click", "event": "boom", "value": {}}),
        )
        .await;
    let mut saw_error = false;
    while let Some(f) = bad.next(Duration::from_secs(5)).await {
        if f[3] == "error" && f[2] == bad_topic.as_str() {
            saw_error = true;
            break;
        }
        assert!(!(f[3] == "reply" && f[1] == r.as_str() && f[4]["status"] == "ok"));
    }
    assert!(saw_error, "the crashed view reported an error");
    n += 1;
    still_works(&mut good, &good_topic, n).await;
    let (_, body) = get(addr, "/lab").await;
    let (token, _) = page_token(&body);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = bad.join(&bad_topic, &token, "/lab").await;
    assert_eq!(reply["status"], "ok", "rejoined after the crash");

    // A binary frame.
    bad.send_binary(vec![1, 2, 3]).await;
    let f = bad.next(Duration::from_secs(5)).await.expect("error frame");
    assert_eq!(f[4]["reason"], "malformed");

    // An oversized frame closes that connection with 1009 "too_large".
    let huge = format!(
        "[null,\"1\",\"phoenix\",\"heartbeat\",{{\"x\":\"{}\"}}]",
        "x".repeat(2 << 20)
    );
    bad.send_text(huge).await;
    while bad.next(Duration::from_secs(5)).await.is_some() {}
    let close = bad.log.last().expect("close");
    assert_eq!(close[1][0], 1009, "{close}");
    assert_eq!(close[1][1], "too_large");
    n += 1;
    still_works(&mut good, &good_topic, n).await;

    // Heartbeats are answered.
    let r = good
        .send_frame(None, "phoenix", "heartbeat", json!({}))
        .await;
    assert_eq!(good.reply(&r).await["status"], "ok");
}

#[tokio::test]
async fn a_big_page_arrives_in_bounded_frames() {
    let addr = start().await;
    let (mut c, topic) = open(addr, "/lab?rows=4000").await;
    let mut mirror = Lab::with_rows(4000);
    mirror.filter = String::new();
    let expected = mirror.render().into_string();
    assert!(expected.len() > 200_000, "{}", expected.len());
    assert!(
        c.wait_html(&topic, Duration::from_secs(10), |h| h == expected)
            .await,
        "the join reply and its follow-up pieces rebuild the page"
    );
    let biggest = c.log.iter().map(|f| f.to_string().len()).max().unwrap_or(0);
    assert!(biggest < 64 * 1024, "largest frame {biggest} B");
    // A resync sends it whole again, in pieces too, and edits go on from there.
    let r = c
        .send_frame(Some(&topic), &topic, "resync", json!({}))
        .await;
    assert_eq!(c.reply(&r).await["status"], "ok");
    assert_eq!(c.html(&topic), expected);
    let reply = c
        .event(
            &topic,
            "click",
            "op",
            json!({"kind": "update", "index": "3999", "text": "last one 😀"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(c.html(&topic).contains("<span>last one 😀</span>"));
    let biggest = c.log.iter().map(|f| f.to_string().len()).max().unwrap_or(0);
    assert!(biggest < 64 * 1024, "largest frame {biggest} B");
}

/// Pages load the client from a content-hashed URL that may be cached for a year; the plain
/// `/live/live.js` stays, cached briefly.
#[tokio::test]
async fn the_client_is_served_at_a_content_hashed_url_with_long_caching() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = start().await;
    let (status, page) = get(addr, "/lab").await;
    assert_eq!(status, 200);
    let at = page.find("src=\"/live/live-").expect("a hashed script URL") + 5;
    let end = page[at..].find('"').expect("end of src") + at;
    let src = &page[at..end];
    assert!(
        src.ends_with(".js") && src.len() == "/live/live-0123456789abcdef.js".len(),
        "{src}"
    );
    let fetch = |path: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf).into_owned()
    };
    let hashed = fetch(src.to_string()).await;
    let (head, body) = hashed.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert_eq!(body, include_str!("../assets/live.js"));
    let plain = fetch("/live/live.js".into()).await;
    assert!(plain.to_ascii_lowercase().contains("max-age=300"));
}
