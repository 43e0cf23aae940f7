//! The todo app in real headless Chromium, against a private Postgres: every TodoMVC
//! behaviour, two browsers on one list, a row written from outside the app, escaping, emoji,
//! and typed text that survives remote changes. Plus its bad input, over the protocol; its
//! guards (`POST /new` with a same-origin check, the title cap, the add rate limit), and random
//! list ids.

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::key::Key;
use live_core::LiveConfig;
use live_tests::browser::Browser;
use live_tests::{SECRET, TestDb, WsClient, get, open, page_token, serve, with_cluster};
use serde_json::json;
use todo::{ADD_BURST, MAX_TITLE_CHARS, TodoConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> (SocketAddr, TestDb) {
    let db = TestDb::new("").await;
    let addr = start_on(&db).await;
    (addr, db)
}

/// Starts the app on an existing database (applying its migrations).
async fn start_on(db: &TestDb) -> SocketAddr {
    let (router, _live) = todo::app(TodoConfig {
        database_url: db.url.clone(),
        slot: format!("slot_{}", db.name),
        nats_url: None,
        live: LiveConfig::new(SECRET.to_vec()),
    })
    .await
    .expect("the todo app starts");
    serve(router).await
}

/// An HTTP response: status, `Location` header, body.
struct Reply {
    status: u16,
    location: Option<String>,
    allow: Option<String>,
    body: String,
}

/// Sends `method path` (no body) with `Host: addr` and the extra headers.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    Reply {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        location: header("location"),
        allow: header("allow"),
        body: body.to_string(),
    }
}

/// `POST /new` with these headers.
async fn post_new(addr: SocketAddr, headers: &[(&str, &str)]) -> Reply {
    request(addr, "POST", "/new", headers).await
}

/// The ids of every list, ascending.
async fn list_ids(db: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM lists ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("list ids")
}

/// The list a `/lists/{id}` redirect points to.
fn redirected_list(r: &Reply) -> i64 {
    assert_eq!(r.status, 303, "{}", r.body);
    r.location
        .as_deref()
        .and_then(|l| l.strip_prefix("/lists/"))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a list: {:?}", r.location))
}

async fn todo_count(db: &TestDb, list: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM todos WHERE list_id = $1")
        .bind(list)
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

async fn new_list(db: &TestDb) -> i64 {
    sqlx::query_scalar("INSERT INTO lists DEFAULT VALUES RETURNING id")
        .fetch_one(&db.pool)
        .await
        .expect("new list")
}

/// Focuses an input and selects its text (WebDriver's clear would blur it, which saves).
async fn select_all(b: &Browser, css: &str) {
    b.js(&format!(
        "const e = document.querySelector({}); e.focus(); e.select(); return true",
        q(css)
    ))
    .await;
}

/// Types a title into `input.new-todo` and presses Enter.
async fn add_todo(b: &Browser, title: &str) {
    b.find("input.new-todo")
        .await
        .send_keys(&enter(title))
        .await
        .unwrap();
}

/// Waits until the new-todo input is empty: the server added what was sent and cleared it
/// (text typed before that reply stays in the input, by design, so a test that types the
/// next title at once would race the reply).
async fn wait_cleared(b: &Browser) {
    b.wait_js("return document.querySelector('input.new-todo').value === ''")
        .await;
}

/// Two browsers on the same page.
async fn two_windows(url: &str) -> (Browser, Browser) {
    let a = Browser::start().await;
    let b = Browser::start().await;
    a.open(url).await;
    b.open(url).await;
    (a, b)
}

/// A CSS selector as a JavaScript string literal.
fn q(css: &str) -> String {
    serde_json::to_string(css).expect("json")
}

fn enter(text: &str) -> String {
    format!("{text}{}", char::from(Key::Enter))
}

/// The labels of the shown todos.
async fn labels(b: &Browser) -> Vec<String> {
    let v = b
        .js("return [...document.querySelectorAll('.todo-list li label')].map(l => l.textContent)")
        .await;
    serde_json::from_value(v).expect("labels")
}

async fn wait_labels(b: &Browser, want: &[&str]) {
    let want_json = serde_json::to_string(want).expect("json");
    b.wait_js(&format!(
        "return JSON.stringify([...document.querySelectorAll('.todo-list li label')].map(l => l.textContent)) === {}",
        serde_json::to_string(&want_json).expect("json")
    ))
    .await;
}

async fn js_click(b: &Browser, css: &str) {
    b.js(&format!(
        "document.querySelector({}).click(); return true",
        serde_json::to_string(css).expect("json")
    ))
    .await;
}

async fn js_dblclick(b: &Browser, css: &str) {
    b.js(&format!(
        "document.querySelector({}).dispatchEvent(new MouseEvent('dblclick', {{bubbles: true}})); return true",
        serde_json::to_string(css).expect("json")
    ))
    .await;
}

/// The `li` whose label is `text`, as a selector.
async fn li_of(b: &Browser, text: &str) -> String {
    let key = b
        .js(&format!(
            "const l = [...document.querySelectorAll('.todo-list li')].find(li => li.querySelector('label').textContent === {}); return l ? l.dataset.liveKey : null",
            serde_json::to_string(text).expect("json")
        ))
        .await;
    let key = key
        .as_str()
        .unwrap_or_else(|| panic!("no todo {text:?}"))
        .to_string();
    format!(".todo-list li[data-live-key=\"{key}\"]")
}

async fn count_text(b: &Browser) -> String {
    b.js("const c = document.querySelector('.todo-count'); return c ? c.textContent : null")
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn todomvc_behaviours_in_a_real_browser() {
    let (addr, db) = start().await;
    let list = new_list(&db).await;
    let url = format!("http://{addr}/lists/{list}");
    let b = Browser::start().await;
    b.open(&url).await;

    // An empty list hides main and footer.
    assert_eq!(b.js("return document.querySelector('section.main') === null && document.querySelector('footer.footer') === null").await, true);
    assert_eq!(
        b.find("input.new-todo")
            .await
            .attr("placeholder")
            .await
            .unwrap()
            .as_deref(),
        Some("What needs to be done?")
    );

    // Enter adds a trimmed title and clears the input; empty titles are ignored.
    let input = b.find("input.new-todo").await;
    input.send_keys(&enter("  milk  ")).await.unwrap();
    wait_labels(&b, &["milk"]).await;
    b.wait_js("return document.querySelector('input.new-todo').value === ''")
        .await;
    input.send_keys(&enter("   ")).await.unwrap();
    input.send_keys(&enter("eggs")).await.unwrap();
    wait_labels(&b, &["milk", "eggs"]).await;
    assert_eq!(count_text(&b).await, "2 items left");
    b.wait_js("return document.querySelector('section.main') !== null && document.querySelector('footer.footer') !== null").await;
    assert_eq!(
        b.js("return document.querySelector('.clear-completed') === null")
            .await,
        true
    );

    // Toggle one.
    let milk = li_of(&b, "milk").await;
    js_click(&b, &format!("{milk} input.toggle")).await;
    b.wait_js(&format!(
        "return document.querySelector({}).classList.contains('completed')",
        q(&milk)
    ))
    .await;
    assert_eq!(count_text(&b).await, "1 item left");
    b.wait_js("return document.querySelector('.clear-completed') !== null")
        .await;

    // Filters are URL patches, kept across reloads.
    js_click(&b, ".filters a[href$='filter=active']").await;
    wait_labels(&b, &["eggs"]).await;
    b.wait_js("return location.search === '?filter=active' && document.querySelector('.filters a.selected').textContent === 'Active'").await;
    b.client.refresh().await.unwrap();
    b.wait_connected().await;
    assert_eq!(labels(&b).await, vec!["eggs"]);
    assert_eq!(
        b.js("return document.querySelector('.filters a.selected').textContent")
            .await,
        "Active"
    );
    js_click(&b, ".filters a[href$='filter=completed']").await;
    wait_labels(&b, &["milk"]).await;
    js_click(&b, ".filters a:not([href*='filter'])").await;
    wait_labels(&b, &["milk", "eggs"]).await;
    b.wait_js("return location.search === ''").await;

    // Double-click edits; Enter saves.
    let eggs = li_of(&b, "eggs").await;
    js_dblclick(&b, &format!("{eggs} label")).await;
    b.wait_js(&format!(
        "const e = document.querySelector({}); return e !== null && document.activeElement === e",
        q(&format!("{eggs} input.edit"))
    ))
    .await;
    let edit = b.find(&format!("{eggs} input.edit")).await;
    assert_eq!(edit.prop("value").await.unwrap().as_deref(), Some("eggs"));
    select_all(&b, "li.editing input.edit").await;
    edit.send_keys(&enter("bacon")).await.unwrap();
    wait_labels(&b, &["milk", "bacon"]).await;
    b.wait_js("return document.querySelector('li.editing') === null")
        .await;

    // Escape cancels.
    js_dblclick(&b, &format!("{eggs} label")).await;
    b.wait_js("return document.querySelector('li.editing input.edit') !== null")
        .await;
    let edit = b.find("li.editing input.edit").await;
    edit.send_keys("zzz").await.unwrap();
    edit.send_keys(&char::from(Key::Escape).to_string())
        .await
        .unwrap();
    b.wait_js("return document.querySelector('li.editing') === null")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(labels(&b).await, vec!["milk", "bacon"]);

    // Blur saves.
    js_dblclick(&b, &format!("{eggs} label")).await;
    b.wait_js("return document.querySelector('li.editing input.edit') !== null")
        .await;
    let edit = b.find("li.editing input.edit").await;
    select_all(&b, "li.editing input.edit").await;
    edit.send_keys("bacon & beans").await.unwrap();
    b.find("h1").await.click().await.unwrap();
    wait_labels(&b, &["milk", "bacon & beans"]).await;

    // An emptied title deletes.
    js_dblclick(&b, &format!("{eggs} label")).await;
    b.wait_js("return document.querySelector('li.editing input.edit') !== null")
        .await;
    let edit = b.find("li.editing input.edit").await;
    select_all(&b, "li.editing input.edit").await;
    edit.send_keys(&enter(&char::from(Key::Backspace).to_string()))
        .await
        .unwrap();
    wait_labels(&b, &["milk"]).await;

    // Toggle all, both ways. (The page was reloaded above: find the input again.)
    let input = b.find("input.new-todo").await;
    input.send_keys(&enter("tea")).await.unwrap();
    wait_labels(&b, &["milk", "tea"]).await;
    js_click(&b, "#toggle-all").await;
    b.wait_js("return document.querySelectorAll('.todo-list li.completed').length === 2")
        .await;
    assert_eq!(count_text(&b).await, "0 items left");
    js_click(&b, "#toggle-all").await;
    b.wait_js("return document.querySelectorAll('.todo-list li.completed').length === 0")
        .await;
    assert_eq!(count_text(&b).await, "2 items left");

    // Clear completed; destroy.
    let tea = li_of(&b, "tea").await;
    js_click(&b, &format!("{tea} input.toggle")).await;
    b.wait_js("return document.querySelector('.clear-completed') !== null")
        .await;
    js_click(&b, ".clear-completed").await;
    wait_labels(&b, &["milk"]).await;
    b.wait_js("return document.querySelector('.clear-completed') === null")
        .await;
    let milk = li_of(&b, "milk").await;
    js_click(&b, &format!("{milk} button.destroy")).await;
    b.wait_js("return document.querySelector('section.main') === null")
        .await;

    // HTML is text; emoji and long titles round-trip.
    let xss = "<img src=x onerror=alert(1)>";
    input.send_keys(&enter(xss)).await.unwrap();
    wait_cleared(&b).await;
    input.send_keys(&enter("🎉 fête 😀")).await.unwrap();
    wait_labels(&b, &[xss, "🎉 fête 😀"]).await;
    assert_eq!(
        b.js("return document.querySelector('.todo-list img') === null")
            .await,
        true
    );
    // Titles have at most 1,000 characters (characters, not bytes: this one has more bytes).
    // One more is refused: nothing is written, the page says why and keeps the text. Shortened
    // by a Backspace, it is added and the message goes.
    let long: String = "fête 😀 "
        .chars()
        .cycle()
        .take(MAX_TITLE_CHARS - 1)
        .chain(['!'])
        .collect();
    assert_eq!(long.chars().count(), 1000);
    assert!(long.len() > 1000);
    input.send_keys(&enter(&format!("{long}?"))).await.unwrap();
    b.wait_js(
        "const e = document.querySelector('header.header p.error'); \
         return e !== null && e.textContent.includes('too long: 1001 characters')",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('input.new-todo').value")
            .await,
        format!("{long}?"),
        "the refused text stays in the input"
    );
    assert_eq!(todo_count(&db, list).await, 2);
    assert_eq!(labels(&b).await.len(), 2);
    input
        .send_keys(&enter(&char::from(Key::Backspace).to_string()))
        .await
        .unwrap();
    b.wait_js("return document.querySelectorAll('.todo-list li').length === 3")
        .await;
    b.wait_js("return document.querySelector('p.error') === null && document.querySelector('input.new-todo').value === ''")
        .await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT title FROM todos WHERE list_id = $1 ORDER BY id")
            .bind(list)
            .fetch_all(&db.pool)
            .await
            .expect("titles");
    assert_eq!(
        stored,
        vec![xss.to_string(), "🎉 fête 😀".to_string(), long.clone()]
    );
    assert_eq!(labels(&b).await[2].chars().count(), long.chars().count());

    if let Ok(path) = std::env::var("TODO_SCREENSHOT") {
        // A picture for the README.
        sqlx::query("DELETE FROM todos WHERE list_id = $1")
            .bind(list)
            .execute(&db.pool)
            .await
            .expect("delete");
        b.wait_js("return document.querySelector('section.main') === null")
            .await;
        for t in [
            "Buy oat milk",
            "Write the release notes",
            "Call the plumber",
            "Water the plants",
        ] {
            input.send_keys(&enter(t)).await.unwrap();
            wait_cleared(&b).await;
        }
        b.wait_js("return document.querySelectorAll('.todo-list li').length === 4")
            .await;
        js_click(
            &b,
            &format!("{} input.toggle", li_of(&b, "Buy oat milk").await),
        )
        .await;
        b.wait_js("return document.querySelectorAll('.todo-list li.completed').length === 1")
            .await;
        b.js("document.activeElement.blur(); return true").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = b.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
    }
    b.close().await;
}

#[tokio::test]
async fn two_browsers_see_each_others_changes_and_outside_writes() {
    let (addr, db) = start().await;
    let list = new_list(&db).await;
    let other = new_list(&db).await;
    let url = format!("http://{addr}/lists/{list}");
    let (a, b) = two_windows(&url).await;

    add_todo(&a, "from A").await;
    wait_labels(&b, &["from A"]).await;
    add_todo(&b, "from B").await;
    wait_labels(&a, &["from A", "from B"]).await;

    // B toggles, A sees it.
    let sel = li_of(&b, "from A").await;
    js_click(&b, &format!("{sel} input.toggle")).await;
    a.wait_js(&format!(
        "return document.querySelector({}).classList.contains('completed')",
        serde_json::to_string(&sel).unwrap()
    ))
    .await;
    // A edits, B sees it.
    js_dblclick(&a, &format!("{} label", li_of(&a, "from B").await)).await;
    a.wait_js("return document.querySelector('li.editing input.edit') !== null")
        .await;
    let edit = a.find("li.editing input.edit").await;
    select_all(&a, "li.editing input.edit").await;
    edit.send_keys(&enter("edited by A")).await.unwrap();
    wait_labels(&b, &["from A", "edited by A"]).await;
    // B deletes, A sees it.
    js_click(&b, &format!("{} button.destroy", li_of(&b, "from A").await)).await;
    wait_labels(&a, &["edited by A"]).await;

    // A row written by another program (psql) appears in both.
    db.psql(&format!(
        "INSERT INTO todos (list_id, title) VALUES ({list}, 'from psql')"
    ));
    wait_labels(&a, &["edited by A", "from psql"]).await;
    wait_labels(&b, &["edited by A", "from psql"]).await;
    sqlx::query("UPDATE todos SET completed = true WHERE title = 'from psql'")
        .execute(&db.pool)
        .await
        .expect("update");
    a.wait_js("return document.querySelectorAll('.todo-list li.completed').length === 1")
        .await;

    // A second list never sees the first one's rows, and the other way round.
    b.open(&format!("http://{addr}/lists/{other}")).await;
    assert_eq!(labels(&b).await, Vec::<String>::new());
    add_todo(&a, "only in list one").await;
    wait_labels(&a, &["edited by A", "from psql", "only in list one"]).await;
    add_todo(&b, "only in list two").await;
    wait_labels(&b, &["only in list two"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        labels(&a).await,
        vec!["edited by A", "from psql", "only in list one"]
    );
    assert_eq!(labels(&b).await, vec!["only in list two"]);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn typed_text_and_focus_survive_changes_from_another_window() {
    let (addr, db) = start().await;
    let list = new_list(&db).await;
    let url = format!("http://{addr}/lists/{list}");
    let (a, b) = two_windows(&url).await;
    add_todo(&b, "first").await;
    wait_labels(&a, &["first"]).await;

    let input = a.find("input.new-todo").await;
    input.click().await.unwrap();
    input.send_keys("half typed é😀").await.unwrap();
    a.js("document.querySelector('input.new-todo').setSelectionRange(3, 7); return true")
        .await;
    for t in ["second", "third"] {
        add_todo(&b, t).await;
        wait_cleared(&b).await;
    }
    js_click(&b, &format!("{} input.toggle", li_of(&b, "first").await)).await;
    wait_labels(&a, &["first", "second", "third"]).await;
    a.wait_js("return document.querySelectorAll('.todo-list li.completed').length === 1")
        .await;
    let state = a
        .js("const n = document.querySelector('input.new-todo'); return [n.value, document.activeElement === n, n.selectionStart, n.selectionEnd]")
        .await;
    assert_eq!(state, json!(["half typed é😀", true, 3, 7]));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn bad_input_gets_sensible_results() {
    let (addr, db) = start().await;
    // Lists that do not exist, or ids that are not numbers: a 404 page, not a 500.
    for path in [
        "/lists/999999",
        "/lists/abc",
        "/lists/-1",
        "/lists/1%27%20OR%201=1",
    ] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("Not found"), "{path}: {body}");
    }
    // `/` is a start page with the "New list" form; it creates nothing.
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"<form class="new-list" method="post" action="/new">"#),
        "{body}"
    );
    assert_eq!(list_ids(&db).await, Vec::<i64>::new());

    let list = new_list(&db).await;
    let (mut c, topic) = open(addr, &format!("/lists/{list}")).await;
    let titles = |c: &live_tests::WsClient| {
        let h = c.html(&topic);
        h.matches("<label live-dblclick").count()
    };
    // Whitespace only: ignored.
    c.event(
        &topic,
        "keydown",
        "add",
        json!({"key": "Enter", "value": " \t  "}),
    )
    .await;
    // A double submit adds once.
    let r1 = c
        .send_frame(
            Some(&topic),
            &topic,
            "event",
            json!({"type": "keydown", "event": "add", "value": {"key": "Enter", "value": "twice"}}),
        )
        .await;
    let r2 = c
        .send_frame(
            Some(&topic),
            &topic,
            "event",
            json!({"type": "keydown", "event": "add", "value": {"key": "Enter", "value": "twice"}}),
        )
        .await;
    assert_eq!(c.reply(&r1).await["status"], "ok");
    assert_eq!(c.reply(&r2).await["status"], "ok");
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains(">twice</label>"))
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM todos WHERE list_id = $1")
        .bind(list)
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
    // Editing a todo that another window just deleted.
    let id: i64 = sqlx::query_scalar("SELECT id FROM todos WHERE list_id = $1")
        .bind(list)
        .fetch_one(&db.pool)
        .await
        .expect("id");
    let reply = c
        .event(&topic, "dblclick", "edit", json!({"id": id.to_string()}))
        .await;
    assert_eq!(reply["status"], "ok");
    sqlx::query("DELETE FROM todos WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("delete");
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| !h.contains("twice"))
            .await
    );
    let reply = c
        .event(
            &topic,
            "keydown",
            "save",
            json!({"id": id.to_string(), "key": "Enter", "value": "too late"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(titles(&c), 0);
    // Nonsense values: clear errors, the view carries on.
    let reply = c
        .event(&topic, "click", "toggle", json!({"id": "not a number"}))
        .await;
    assert_eq!(reply["response"]["reason"], "bad_payload");
    let reply = c
        .event(&topic, "click", "toggle", json!({"id": "999999"}))
        .await;
    assert_eq!(
        reply["status"], "ok",
        "toggling a todo of no list of ours changes nothing"
    );
    // Another list's todo cannot be touched from this view.
    let other = new_list(&db).await;
    let foreign: i64 = sqlx::query_scalar(
        "INSERT INTO todos (list_id, title) VALUES ($1, 'not yours') RETURNING id",
    )
    .bind(other)
    .fetch_one(&db.pool)
    .await
    .expect("insert");
    c.event(
        &topic,
        "click",
        "destroy",
        json!({"id": foreign.to_string()}),
    )
    .await;
    let still: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM todos WHERE id = $1)")
        .bind(foreign)
        .fetch_one(&db.pool)
        .await
        .expect("exists");
    assert!(still);
    let reply = c
        .event(
            &topic,
            "keydown",
            "add",
            json!({"key": "Enter", "value": "still works"}),
        )
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains(">still works</label>"))
            .await
    );
    assert!(!c.html(&topic).contains("not yours"));

    // A join cannot choose another list than the one its page's signed token names.
    let (_, body) = get(addr, &format!("/lists/{list}")).await;
    let (token, id) = page_token(&body);
    let mut c2 = WsClient::connect(addr).await;
    let t2 = format!("lv:{id}");
    let reply = c2
        .join(&t2, &token, &format!("http://{addr}/lists/{other}"))
        .await;
    assert_eq!(reply["status"], "ok");
    assert!(c2.html(&t2).contains("still works"), "{}", c2.html(&t2));
    assert!(!c2.html(&t2).contains("not yours"));
}

#[tokio::test]
async fn the_app_says_what_to_change_when_postgres_cannot_replicate() {
    // A database user without the REPLICATION attribute (the server itself is fine).
    let db = TestDb::new("").await;
    let port = with_cluster(|c| c.port());
    let role = format!("app_{}", db.name);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN NOREPLICATION PASSWORD 'app-password'"
    )))
    .execute(&db.pool)
    .await
    .expect("role");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} OWNER TO {role}",
        db.name
    )))
    .execute(&db.pool)
    .await
    .expect("owner");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER SCHEMA public OWNER TO {role}"
    )))
    .execute(&db.pool)
    .await
    .expect("schema owner");
    let result = todo::app(TodoConfig {
        database_url: format!(
            "postgres://{role}:app-password@127.0.0.1:{port}/{}",
            db.name
        ),
        slot: format!("slot_{}", db.name),
        nats_url: None,
        live: LiveConfig::new(SECRET.to_vec()),
    })
    .await;
    let message = match result {
        Ok(_) => panic!("the app started without replication rights"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains(&format!("ALTER ROLE \"{role}\" WITH REPLICATION")),
        "{message}"
    );
}

#[tokio::test]
async fn new_list_is_a_post_from_this_site_only() {
    let (addr, db) = start().await;
    let ours = format!("http://{addr}");

    // A GET of /new (a link, a prefetch, an <img src>) creates nothing.
    let r = request(addr, "GET", "/new", &[("Origin", &ours)]).await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.allow.as_deref(), Some("POST"));
    let r = request(addr, "GET", "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(list_ids(&db).await, Vec::<i64>::new());

    // Posted from another site, or not saying where from: 403 with a reason, nothing created.
    let (ftp, suffixed, pathed) = (
        format!("ftp://{addr}"),
        format!("http://{addr}.evil.example"),
        format!("http://evil.example/{addr}"),
    );
    let foreign = [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        vec![("Origin", ftp.as_str())],
        vec![("Origin", suffixed.as_str())],
        vec![("Origin", pathed.as_str())],
    ];
    for headers in &foreign {
        let r = post_new(addr, headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert!(
            r.body.contains("from another site"),
            "{headers:?}: {}",
            r.body
        );
    }
    for headers in [vec![], vec![("Sec-Fetch-Site", "cross-site")]] {
        let r = post_new(addr, &headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert!(
            r.body.contains("does not say which site"),
            "{headers:?}: {}",
            r.body
        );
    }
    assert_eq!(list_ids(&db).await, Vec::<i64>::new());

    // From this site (http or https, as behind a TLS proxy; or only Sec-Fetch-Site): created.
    let mut made = Vec::new();
    let tls = format!("https://{addr}");
    for headers in [
        vec![("Origin", ours.as_str())],
        vec![("Origin", tls.as_str())],
        vec![("Sec-Fetch-Site", "same-origin")],
    ] {
        made.push(redirected_list(&post_new(addr, &headers).await));
    }
    made.sort();
    assert_eq!(list_ids(&db).await, made);
    let (status, _) = get(addr, &format!("/lists/{}", made[0])).await;
    assert_eq!(status, 200);
    // `/` does not hand out an existing list's link.
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    for id in &made {
        assert!(!body.contains(&id.to_string()), "{body}");
    }
}

#[tokio::test]
async fn the_new_list_buttons_create_lists_in_a_real_browser() {
    let (addr, db) = start().await;
    let b = Browser::start().await;
    b.client
        .goto(&format!("http://{addr}/"))
        .await
        .expect("goto");
    b.wait_js("return document.querySelector('form.new-list button') !== null")
        .await;
    assert_eq!(list_ids(&db).await, Vec::<i64>::new());

    // The start page's button: a list, opened.
    b.find("form.new-list button").await.click().await.unwrap();
    b.wait_js("return location.pathname.startsWith('/lists/')")
        .await;
    b.wait_connected().await;
    let path = b.js("return location.pathname").await;
    let first: i64 = path
        .as_str()
        .and_then(|p| p.strip_prefix("/lists/"))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a list page: {path}"));
    assert_eq!(list_ids(&db).await, vec![first]);
    add_todo(&b, "in the first list").await;
    wait_labels(&b, &["in the first list"]).await;

    // The list page's button (in its footer): another, empty list.
    b.find("footer.info form.new-list button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_js(&format!(
        "return location.pathname.startsWith('/lists/') && location.pathname !== '/lists/{first}'"
    ))
    .await;
    b.wait_connected().await;
    assert_eq!(labels(&b).await, Vec::<String>::new());
    let ids = list_ids(&db).await;
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first));
    b.close().await;
}

#[tokio::test]
async fn list_ids_are_random_and_existing_lists_keep_theirs() {
    // A database that an older version of the app set up (migration 0001 only), with two lists.
    let db = TestDb::new("").await;
    let dir = std::env::temp_dir().join(format!("todo-migrations-{}", db.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("0001_todos.sql"),
        include_str!("../migrations/0001_todos.sql"),
    )
    .expect("copy 0001");
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .expect("migrator")
        .run(&db.pool)
        .await
        .expect("migration 0001");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    let old = [new_list(&db).await, new_list(&db).await];
    assert_eq!(old, [1, 2], "bigserial ids before 0002");
    sqlx::query("INSERT INTO todos (list_id, title) VALUES (1, 'kept')")
        .execute(&db.pool)
        .await
        .expect("todo");

    // The app applies 0002: the old lists keep their ids (and links); new ones get random ids.
    let addr = start_on(&db).await;
    let (c, topic) = open(addr, "/lists/1").await;
    assert!(c.html(&topic).contains(">kept</label>"));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(redirected_list(
            &post_new(addr, &[("Origin", &format!("http://{addr}"))]).await,
        ));
        ids.push(new_list(&db).await); // the column default, as other programs insert
    }
    let mut all = list_ids(&db).await;
    assert_eq!(all[..2], [1, 2]);
    all.drain(..2);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    for (i, a) in ids.iter().enumerate() {
        // Large: a sequence gives 3, 4, ...; a random 63-bit id is above 2^32 but for 1 in 2^31.
        assert!(*a > i64::from(u32::MAX), "{ids:?}");
        for b in &ids[i + 1..] {
            assert!((a - b).abs() > 1, "consecutive ids: {ids:?}");
        }
    }
    let (status, _) = get(addr, &format!("/lists/{}", ids[0])).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn long_titles_and_rapid_adds_are_refused_with_a_message() {
    let (addr, db) = start().await;
    let list = new_list(&db).await;
    let (mut c, topic) = open(addr, &format!("/lists/{list}")).await;
    let add = |title: String| json!({"key": "Enter", "value": title});

    // 1,001 characters: nothing written, the message shown, the text kept in the input.
    let too_long = "é".repeat(MAX_TITLE_CHARS + 1);
    let reply = c
        .event(&topic, "keydown", "add", add(too_long.clone()))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let html = c.html(&topic);
    assert!(
        html.contains(r#"<p class="error" role="alert">That todo is too long: 1001 characters, at most 1000 are allowed.</p>"#),
        "{html}"
    );
    assert!(html.contains(&format!(r#"value="{too_long}""#)), "{html}");
    // Exactly 1,000 (2,000 bytes): added, the message cleared.
    let reply = c
        .event(&topic, "keydown", "add", add("é".repeat(MAX_TITLE_CHARS)))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(!c.html(&topic).contains("class=\"error\""));
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains("<label live-dblclick"))
            .await
    );
    assert_eq!(todo_count(&db, list).await, 1);

    // An edit gets the same cap: nothing written, the message, the edit stays open.
    let id: i64 = sqlx::query_scalar("SELECT id FROM todos WHERE list_id = $1")
        .bind(list)
        .fetch_one(&db.pool)
        .await
        .expect("id");
    c.event(&topic, "dblclick", "edit", json!({"id": id.to_string()}))
        .await;
    let reply = c
        .event(
            &topic,
            "keydown",
            "save",
            json!({"id": id.to_string(), "key": "Enter", "value": too_long}),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let html = c.html(&topic);
    assert!(html.contains("too long: 1001 characters"), "{html}");
    assert!(html.contains(r#"class="editing""#), "{html}");
    let stored: String = sqlx::query_scalar("SELECT title FROM todos WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("title");
    assert_eq!(stored, "é".repeat(MAX_TITLE_CHARS));
    let reply = c
        .event(
            &topic,
            "keydown",
            "save",
            json!({"id": id.to_string(), "key": "Enter", "value": "short"}),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(!c.html(&topic).contains("class=\"error\""));
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains(">short</label>"))
            .await
    );

    // 25 adds as fast as the socket takes them, from a new view (its bucket is full): the
    // bucket holds 20, refilled 2 per second, so the burst writes 20 (21 or 22 if the server
    // is slow), and the rest are refused.
    let (mut c, topic) = open(addr, &format!("/lists/{list}")).await;
    let mut refs = Vec::new();
    for i in 0..25 {
        let payload = json!({"type": "keydown", "event": "add", "value": {"key": "Enter", "value": format!("rapid {i}")}});
        refs.push(c.send_frame(Some(&topic), &topic, "event", payload).await);
    }
    for r in &refs {
        let reply = c.reply(r).await;
        assert_eq!(reply["status"], "ok", "{reply}");
    }
    let html = c.html(&topic);
    assert!(
        html.contains("Too many todos at once: wait a moment, then press Enter again."),
        "{html}"
    );
    assert!(html.contains(r#"value="rapid 24""#), "{html}");
    let rapid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM todos WHERE list_id = $1 AND title LIKE 'rapid %'",
    )
    .bind(list)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    let burst = i64::from(ADD_BURST);
    assert!(
        (burst..=burst + 2).contains(&rapid),
        "{rapid} of 25 rapid adds written"
    );
    // After a pause there are tokens again: the add succeeds and the message goes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = c
        .event(&topic, "keydown", "add", add("after a pause".into()))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(!c.html(&topic).contains("class=\"error\""));
    assert!(
        c.wait_html(&topic, Duration::from_secs(5), |h| h
            .contains(">after a pause</label>"))
            .await
    );
}

/// Issue 9: two instances of the todo app on one database with a bus (what `LIVE_NATS_URL`
/// sets up), a browser on each: changes made in either window, and by `psql`, reach both.
#[tokio::test]
async fn two_instances_on_one_database_with_a_bus_are_live_both_ways() {
    let nats = live_tests::nats::NatsServer::start();
    let db = TestDb::new("").await;
    let mut addrs = Vec::new();
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let (router, live) = todo::app(TodoConfig {
            database_url: db.url.clone(),
            slot: format!("slot_{}", db.name),
            nats_url: Some(nats.url()),
            live: LiveConfig::new(SECRET.to_vec()),
        })
        .await
        .expect("the todo app starts");
        addrs.push(serve(router).await);
        runtimes.push(live);
    }
    let list = new_list(&db).await;
    let a = Browser::start().await;
    let b = Browser::start().await;
    a.open(&format!("http://{}/lists/{list}", addrs[0])).await;
    b.open(&format!("http://{}/lists/{list}", addrs[1])).await;
    a.wait_connected().await;
    b.wait_connected().await;
    add_todo(&a, "from the first instance").await;
    wait_labels(&b, &["from the first instance"]).await;
    add_todo(&b, "from the second instance").await;
    wait_labels(&a, &["from the first instance", "from the second instance"]).await;
    db.psql(&format!(
        "UPDATE todos SET title = 'renamed by psql' WHERE list_id = {list} AND title = 'from the first instance'"
    ));
    for w in [&a, &b] {
        wait_labels(w, &["renamed by psql", "from the second instance"]).await;
    }
    // One instance streams the slot, the other waits for it.
    let mut roles: Vec<String> = Vec::new();
    for l in &runtimes {
        roles.push(format!("{:?}", l.health().await.role));
    }
    roles.sort();
    assert_eq!(roles, ["Leader", "Standby"]);
    a.close().await;
    b.close().await;
}

/// The todo app as its own process, so a test can restart it (see
/// [`a_dropped_socket_and_a_restart_cost_the_user_nothing`]): serves on `TODO_PROC_ADDR` with
/// the test secret until SIGTERM, then stops gracefully. Without `TODO_PROC_DB`, does nothing.
#[test]
#[ignore = "run by the tests as a child process"]
fn todo_app_process() {
    let (Ok(db), Ok(slot), Ok(addr)) = (
        std::env::var("TODO_PROC_DB"),
        std::env::var("TODO_PROC_SLOT"),
        std::env::var("TODO_PROC_ADDR"),
    ) else {
        return;
    };
    live_tests::node::child_runtime().block_on(async move {
        let (router, live) = todo::app(TodoConfig {
            database_url: db,
            slot,
            nats_url: None,
            live: LiveConfig::new(SECRET.to_vec()),
        })
        .await
        .expect("the todo app starts");
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("LIVE_NODE_READY {addr}");
        live_core::serve_until(listener, router, async move {
            live_core::shutdown_signal().await;
            live.shutdown().await;
        })
        .await
        .expect("serve");
        std::process::exit(0);
    });
}

/// The value of a selector's element (`null` when there is none), read by JavaScript.
async fn value_of(b: &Browser, css: &str) -> serde_json::Value {
    b.js(&format!(
        "const e = document.querySelector({}); return e ? e.value : null",
        q(css)
    ))
    .await
}

/// Issue 11's browser test. A window is editing a todo, with text typed and not sent, and
/// an error on screen (UI state no database holds). Its connection drops for a few seconds
/// while another window changes rows: when it comes back it shows the changes, is still
/// editing with its text, and still shows the error (the view was resumed, not mounted
/// again). Then the whole app process restarts: the page is mounted anew on the new process;
/// the `#[keep]` assigns (the todo being edited) come back and the typed text stays.
#[tokio::test]
async fn a_dropped_socket_and_a_restart_cost_the_user_nothing() {
    use live_tests::node::NodeProc;
    use live_tests::proxy::TcpProxy;
    let db = TestDb::new("").await;
    let app_addr: SocketAddr = format!("127.0.0.1:{}", live_tests::free_port())
        .parse()
        .expect("address");
    let slot = format!("slot_{}", db.name);
    let env = [
        ("TODO_PROC_DB", db.url.as_str()),
        ("TODO_PROC_SLOT", slot.as_str()),
        ("TODO_PROC_ADDR", &app_addr.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, &**v)).collect();
    let mut app = NodeProc::spawn_with("todo_app_process", "todo", &env);
    let list = new_list(&db).await;
    db.exec(&format!(
        "INSERT INTO todos (list_id, title) VALUES ({list}, 'one'), ({list}, 'two')"
    ))
    .await;
    let proxy = TcpProxy::start(app_addr).await;
    let a = Browser::start().await;
    let b = Browser::start().await;
    a.open(&format!("http://{}/lists/{list}", proxy.addr)).await;
    b.open(&format!("http://{app_addr}/lists/{list}")).await;
    wait_labels(&a, &["one", "two"]).await;
    wait_labels(&b, &["one", "two"]).await;

    // A: an add refused (too long: an error on screen), then editing "one" with text typed.
    a.js(&format!(
        "const i = document.querySelector('input.new-todo'); i.value = 'x'.repeat({}); \
         i.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}})); return true",
        MAX_TITLE_CHARS + 1
    ))
    .await;
    a.wait_js("return !!document.querySelector('p.error')")
        .await;
    let one = li_of(&a, "one").await;
    js_dblclick(&a, &format!("{one} label")).await;
    a.wait_js("return !!document.querySelector('input.edit')")
        .await;
    a.find("input.edit")
        .await
        .send_keys(" typed")
        .await
        .unwrap();
    assert_eq!(value_of(&a, "input.edit").await, "one typed");

    // The network drops A's connection; meanwhile B renames "two" and adds "three".
    proxy.offline().await;
    let two = li_of(&b, "two").await;
    js_dblclick(&b, &format!("{two} label")).await;
    b.wait_js("return !!document.querySelector('input.edit')")
        .await;
    b.js("const i = document.querySelector('input.edit'); i.focus(); i.select(); return true")
        .await;
    b.find("input.edit")
        .await
        .send_keys(&enter("two renamed"))
        .await
        .unwrap();
    add_todo(&b, "three").await;
    wait_labels(&b, &["one", "two renamed", "three"]).await;
    // A notices after a moment (no flicker on a blip, then the reconnecting state).
    a.wait_js(
        "return document.querySelector('[data-live-root]').classList.contains('live-reconnecting')",
    )
    .await;
    // The user ticks "two" while offline (a click that leaves the edited input focused): the
    // event waits in the client and is sent after the resume.
    let two_in_a = li_of(&a, "two").await;
    a.js(&format!(
        "document.querySelector({}).dispatchEvent(new MouseEvent('click', {{bubbles: true}})); return true",
        q(&format!("{two_in_a} input.toggle"))
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.online();

    // A comes back: B's changes are there, it is still editing with its text, and the error
    // (not kept, not in any database) is still on screen: the view was resumed.
    wait_labels(&a, &["one", "two renamed", "three"]).await;
    a.wait_js(
        "return document.querySelector('[data-live-root]').classList.contains('live-connected')",
    )
    .await;
    assert_eq!(value_of(&a, "input.edit").await, "one typed");
    // The tick made offline reached the server once it was back: both windows show it.
    let two_renamed = li_of(&b, "two renamed").await;
    for w in [&a, &b] {
        w.wait_js(&format!(
            "return document.querySelector({}).classList.contains('completed')",
            q(&two_renamed)
        ))
        .await;
    }
    assert!(
        a.js("return !!document.querySelector('p.error')")
            .await
            .as_bool()
            .unwrap_or(false),
        "the resumed view kept its error message"
    );
    assert!(
        !a.js(
            "return document.querySelector('[data-live-root]').classList.contains('live-refused')"
        )
        .await
        .as_bool()
        .unwrap_or(true)
    );

    // The whole app process restarts on the same address (a deploy).
    assert_eq!(app.terminate(), Some(0), "a graceful stop");
    app = NodeProc::spawn_with("todo_app_process", "todo", &env);
    // Mounted anew on the new process: the kept assign (editing) came back, the typed text
    // stayed, and the error (not kept) is gone — the sign of a new mount.
    a.wait_js("return !document.querySelector('p.error') && document.querySelector('[data-live-root]').classList.contains('live-connected')")
        .await;
    assert_eq!(
        value_of(&a, "input.edit").await,
        "one typed",
        "still editing, with the typed text"
    );
    wait_labels(&a, &["one", "two renamed", "three"]).await;
    // And it is live on the new process.
    db.exec(&format!(
        "INSERT INTO todos (list_id, title) VALUES ({list}, 'four')"
    ))
    .await;
    wait_labels(&a, &["one", "two renamed", "three", "four"]).await;
    wait_labels(&b, &["one", "two renamed", "three", "four"]).await;
    a.close().await;
    b.close().await;
    drop(app);
}
