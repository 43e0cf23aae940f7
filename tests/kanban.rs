//! The kanban example (written only with watched assigns and their scopes) against a private
//! Postgres: two real Chromium windows on one board, `psql` writes reaching the board page and
//! the "my cards" pages, and the first (GET) render equal to the connected one.

use std::net::SocketAddr;
use std::time::Duration;

use fantoccini::key::Key;
use kanban::{KanbanConfig, MAX_TITLE_CHARS};
use live_core::LiveConfig;
use live_tests::browser::Browser;
use live_tests::{SECRET, TestDb, WsClient, open, serve};
use serde_json::Value;

/// How long a `psql` write may take to reach a page.
const FAST: Duration = Duration::from_secs(2);

/// Starts the app on a fresh database (its migrations create the tables and the demo board).
async fn start() -> (SocketAddr, TestDb) {
    let db = TestDb::new("").await;
    let (router, _live) = kanban::app(KanbanConfig {
        database_url: db.url.clone(),
        slot: format!("slot_{}", db.name),
        nats_url: None,
        live: LiveConfig::new(SECRET.to_vec()),
    })
    .await
    .expect("the kanban app starts");
    (serve(router).await, db)
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ==== Reading the pages' HTML (as a websocket client holds it)

/// The text of the first element after `marker` (up to its first tag).
fn text_after<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let at = html.find(marker)? + marker.len();
    let gt = html[at..].find('>')? + at + 1;
    let end = html[gt..].find('<')? + gt;
    Some(&html[gt..end])
}

/// The chunks of `html` that start at each `marker`.
fn chunks<'a>(html: &'a str, marker: &str) -> Vec<&'a str> {
    let starts: Vec<usize> = html.match_indices(marker).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| &html[s..starts.get(n + 1).copied().unwrap_or(html.len())])
        .collect()
}

type Columns = Vec<(String, Vec<String>)>;

/// A board page: its name, and each column's name with its cards as `"title @assignee"`.
fn board_view(html: &str) -> (String, Columns) {
    let name = text_after(html, "<h1").unwrap_or("").to_string();
    let columns = chunks(html, "class=\"column\" data-column=")
        .into_iter()
        .map(|col| {
            let title = text_after(col, "<h2").unwrap_or("").trim().to_string();
            let cards = chunks(col, "class=\"card\"")
                .into_iter()
                .map(|card| {
                    format!(
                        "{} @{}",
                        text_after(card, "class=\"title\"").unwrap_or("(editing)"),
                        text_after(card, "class=\"who\"").unwrap_or("?")
                    )
                })
                .collect();
            (title, cards)
        })
        .collect();
    (name, columns)
}

/// A "my cards" page: the user's name, and each card as `"title | board | column"`.
fn my_cards_view(html: &str) -> (String, Vec<String>) {
    let user = text_after(html, "class=\"user\"").unwrap_or("").to_string();
    let cards = chunks(html, "class=\"my-card\"")
        .into_iter()
        .map(|c| {
            format!(
                "{} | {} | {}",
                text_after(c, "class=\"title\"").unwrap_or("?"),
                text_after(c, "class=\"board\"").unwrap_or("?"),
                text_after(c, "class=\"column\"").unwrap_or("?")
            )
        })
        .collect();
    (user, cards)
}

fn owned(name: &str, cols: &[(&str, &[&str])]) -> (String, Columns) {
    (
        name.to_string(),
        cols.iter()
            .map(|(n, cards)| (n.to_string(), cards.iter().map(|c| c.to_string()).collect()))
            .collect(),
    )
}

async fn wait_board(c: &mut WsClient, topic: &str, within: Duration, want: (String, Columns)) {
    let ok = c.wait_html(topic, within, |h| board_view(h) == want).await;
    assert!(
        ok,
        "within {within:?}: want {want:?}\n  the board shows {:?}",
        board_view(&c.html(topic))
    );
}

async fn wait_mine(c: &mut WsClient, topic: &str, within: Duration, user: &str, want: &[&str]) {
    let want = (
        user.to_string(),
        want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let ok = c
        .wait_html(topic, within, |h| my_cards_view(h) == want)
        .await;
    assert!(
        ok,
        "within {within:?}: want {want:?}\n  \"my cards\" shows {:?}",
        my_cards_view(&c.html(topic))
    );
}

// ==== In the browser

/// A CSS selector or any text as a JavaScript string literal.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("json")
}

fn enter(text: &str) -> String {
    format!("{text}{}", char::from(Key::Enter))
}

/// The board as the browser shows it, as JSON: `[[column, ["title @who", ...]], ...]`.
const BOARD_JS: &str = "JSON.stringify([...document.querySelectorAll('section.column')].map(s => \
     [s.querySelector('h2').firstChild.textContent.trim(), [...s.querySelectorAll('li.card')].map(li => \
     { const t = li.querySelector('.title'); return (t ? t.textContent : '(editing)') + ' @' + \
     li.querySelector('.who').textContent; })]))";

async fn wait_browser_board(b: &Browser, cols: &[(&str, &[&str])]) {
    let want = serde_json::to_string(cols).expect("json");
    b.wait_js(&format!("return {BOARD_JS} === {}", q(&want)))
        .await;
}

/// The selector of the card whose title is `title`.
async fn card_of(b: &Browser, title: &str) -> String {
    let key = b
        .js(&format!(
            "const li = [...document.querySelectorAll('li.card')].find(li => {{ const t = li.querySelector('.title'); return t && t.textContent === {}; }}); return li ? li.dataset.liveKey : null",
            q(title)
        ))
        .await;
    let key = key
        .as_str()
        .unwrap_or_else(|| panic!("no card {title:?}"))
        .to_string();
    format!("li.card[data-live-key=\"{key}\"]")
}

async fn js_click(b: &Browser, css: &str) {
    let ok = b
        .js(&format!(
            "const e = document.querySelector({}); if (!e) return false; e.click(); return true",
            q(css)
        ))
        .await;
    assert_eq!(ok, true, "no {css}");
}

const SEED: &[(&str, &[&str])] = &[
    (
        "To do",
        &[
            "Sketch the board page @Ada",
            "Write the migration @Grace",
            "Invite the team @unassigned",
        ],
    ),
    ("Doing", &["Watch the cards by board @Ada"]),
    ("Done", &["Set up Postgres @Linus"]),
];

#[tokio::test]
async fn two_browsers_on_one_board_see_each_others_adds_moves_renames_assignments_and_deletes() {
    let (addr, db) = start().await;
    let url = format!("http://{addr}/boards/1");
    let a = Browser::start().await;
    let b = Browser::start().await;
    a.open(&url).await;
    b.open(&url).await;
    wait_browser_board(&a, SEED).await;
    wait_browser_board(&b, SEED).await;
    assert_eq!(
        a.js("return document.querySelector('h1').textContent")
            .await,
        "Demo board"
    );

    // Add (A, Enter in the first column's input): B sees it at the end of "To do".
    a.find("section.column[data-column=\"1\"] input.new-card")
        .await
        .send_keys(&enter("  Ship it  "))
        .await
        .unwrap();
    let todo_plus: &[&str] = &[
        "Sketch the board page @Ada",
        "Write the migration @Grace",
        "Invite the team @unassigned",
        "Ship it @unassigned",
    ];
    let with_new: &[(&str, &[&str])] = &[("To do", todo_plus), SEED[1], SEED[2]];
    wait_browser_board(&b, with_new).await;
    wait_browser_board(&a, with_new).await;
    a.wait_js("return document.querySelector('section.column[data-column=\"1\"] input.new-card').value === ''")
        .await;

    // Move right (A): B sees it in "Doing".
    let card = card_of(&a, "Ship it").await;
    js_click(&a, &format!("{card} button.right")).await;
    let moved: &[(&str, &[&str])] = &[
        SEED[0],
        (
            "Doing",
            &["Watch the cards by board @Ada", "Ship it @unassigned"],
        ),
        SEED[2],
    ];
    wait_browser_board(&b, moved).await;
    wait_browser_board(&a, moved).await;

    // Rename (B: double-click the title, type, Enter): A sees the new title.
    b.js(&format!(
        "document.querySelector({}).dispatchEvent(new MouseEvent('dblclick', {{bubbles: true}})); return true",
        q(&format!("{card} .title"))
    ))
    .await;
    let rename = format!("{card} input.rename");
    b.wait_js(&format!(
        "const e = document.querySelector({}); return e !== null && e.value === 'Ship it'",
        q(&rename)
    ))
    .await;
    b.js(&format!(
        "const e = document.querySelector({}); e.focus(); e.select(); return true",
        q(&rename)
    ))
    .await;
    b.find(&rename)
        .await
        .send_keys(&enter("Ship it <now> & then"))
        .await
        .unwrap();
    let renamed: &[(&str, &[&str])] = &[
        SEED[0],
        (
            "Doing",
            &[
                "Watch the cards by board @Ada",
                "Ship it <now> & then @unassigned",
            ],
        ),
        SEED[2],
    ];
    wait_browser_board(&a, renamed).await;
    wait_browser_board(&b, renamed).await;

    // Assign (A, the select): B shows the assignee, and its select has them selected.
    a.js(&format!(
        "const s = document.querySelector({}); s.value = '2'; s.dispatchEvent(new Event('change', {{bubbles: true}})); return true",
        q(&format!("{card} select.assign"))
    ))
    .await;
    let assigned: &[(&str, &[&str])] = &[
        SEED[0],
        (
            "Doing",
            &[
                "Watch the cards by board @Ada",
                "Ship it <now> & then @Grace",
            ],
        ),
        SEED[2],
    ];
    wait_browser_board(&b, assigned).await;
    wait_browser_board(&a, assigned).await;
    b.wait_js(&format!(
        "return document.querySelector({}).value === '2'",
        q(&format!("{card} select.assign"))
    ))
    .await;

    // Move left (B): A sees it back in "To do"; then right twice into "Done" (no further right).
    js_click(&b, &format!("{card} button.left")).await;
    let back: &[(&str, &[&str])] = &[
        (
            "To do",
            &[
                "Sketch the board page @Ada",
                "Write the migration @Grace",
                "Invite the team @unassigned",
                "Ship it <now> & then @Grace",
            ],
        ),
        SEED[1],
        SEED[2],
    ];
    wait_browser_board(&a, back).await;
    wait_browser_board(&b, back).await;
    // A card in the first column cannot go further left, but can go right.
    a.wait_js(&format!(
        "return document.querySelector({}).disabled === true && document.querySelector({}).disabled === false",
        q(&format!("{card} button.left")),
        q(&format!("{card} button.right"))
    ))
    .await;

    // Delete (B): A no longer has it.
    js_click(&b, &format!("{card} button.delete")).await;
    wait_browser_board(&a, SEED).await;
    wait_browser_board(&b, SEED).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM cards WHERE title LIKE 'Ship it%'"
        )
        .await,
        0
    );

    // Too long a title: a visible error, the text stays in the input, nothing is stored, and
    // the other window is not disturbed.
    let input = "section.column[data-column=\"2\"] input.new-card";
    let long = "x".repeat(MAX_TITLE_CHARS + 1);
    a.js(&format!(
        "document.querySelector({}).value = {}; return true",
        q(input),
        q(&long)
    ))
    .await;
    a.find(input)
        .await
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    a.wait_js(
        "const e = document.querySelector('.error[role=alert]'); \
         return e !== null && e.textContent.includes('501 characters, at most 500')",
    )
    .await;
    assert_eq!(
        a.js(&format!(
            "return document.querySelector({}).value.length",
            q(input)
        ))
        .await,
        501
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM cards WHERE length(title) > 500").await,
        0
    );
    assert_eq!(
        b.js("return document.querySelector('.error') === null")
            .await,
        true
    );
    // Exactly the cap is fine, and clears the error.
    let max = "y".repeat(MAX_TITLE_CHARS);
    a.js(&format!(
        "document.querySelector({}).value = {}; return true",
        q(input),
        q(&max)
    ))
    .await;
    a.find(input)
        .await
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    a.wait_js("return document.querySelector('.error') === null")
        .await;
    b.wait_js(&format!(
        "return [...document.querySelectorAll('section.column[data-column=\"2\"] li.card')].some(li => li.textContent.includes({}))",
        q(&max)
    ))
    .await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn psql_renames_and_moves_reach_the_board_and_my_cards_within_two_seconds() {
    let (addr, db) = start().await;
    db.exec("INSERT INTO boards (id, name) VALUES (2, 'Second board');
         INSERT INTO columns (id, board_id, name, position) VALUES (4, 2, 'Backlog', 0), (5, 2, 'Shipped', 1);
         INSERT INTO cards (id, board_id, column_id, position, title, assignee_id)
             VALUES (6, 2, 4, 0, 'Board two card', 1);",
    )
    .await;
    let (mut board, tb) = open(addr, "/boards/1").await;
    let (mut ada, ta) = open(addr, "/users/1/cards").await;
    let (mut grace, tg) = open(addr, "/users/2/cards").await;
    // The page loads at once; the generous wait is only for the first frames.
    wait_board(&mut board, &tb, FAST, owned("Demo board", SEED)).await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada",
        &[
            "Sketch the board page | Demo board | To do",
            "Watch the cards by board | Demo board | Doing",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;
    wait_mine(
        &mut grace,
        &tg,
        FAST,
        "Grace",
        &["Write the migration | Demo board | To do"],
    )
    .await;

    // A user renamed: the board (Ada is in its key set of assignees) and her own page.
    db.psql("UPDATE users SET name = 'Ada Lovelace' WHERE id = 1");
    wait_board(
        &mut board,
        &tb,
        FAST,
        owned(
            "Demo board",
            &[
                (
                    "To do",
                    &[
                        "Sketch the board page @Ada Lovelace",
                        "Write the migration @Grace",
                        "Invite the team @unassigned",
                    ],
                ),
                ("Doing", &["Watch the cards by board @Ada Lovelace"]),
                ("Done", &["Set up Postgres @Linus"]),
            ],
        ),
    )
    .await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Sketch the board page | Demo board | To do",
            "Watch the cards by board | Demo board | Doing",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;

    // A board renamed: its page, and the "my cards" pages with cards on it.
    db.psql("UPDATE boards SET name = 'Launch' WHERE id = 1");
    // A column renamed.
    db.psql("UPDATE columns SET name = 'Ideas' WHERE id = 1");
    wait_board(
        &mut board,
        &tb,
        FAST,
        owned(
            "Launch",
            &[
                (
                    "Ideas",
                    &[
                        "Sketch the board page @Ada Lovelace",
                        "Write the migration @Grace",
                        "Invite the team @unassigned",
                    ],
                ),
                ("Doing", &["Watch the cards by board @Ada Lovelace"]),
                ("Done", &["Set up Postgres @Linus"]),
            ],
        ),
    )
    .await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Sketch the board page | Launch | Ideas",
            "Watch the cards by board | Launch | Doing",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;
    wait_mine(
        &mut grace,
        &tg,
        FAST,
        "Grace",
        &["Write the migration | Launch | Ideas"],
    )
    .await;

    // A card moved to another column (the column key set of "my cards" changes).
    let mark = board.log.len();
    db.psql("UPDATE cards SET column_id = 3, position = 5 WHERE id = 1");
    wait_board(
        &mut board,
        &tb,
        FAST,
        owned(
            "Launch",
            &[
                (
                    "Ideas",
                    &["Write the migration @Grace", "Invite the team @unassigned"],
                ),
                ("Doing", &["Watch the cards by board @Ada Lovelace"]),
                (
                    "Done",
                    &[
                        "Set up Postgres @Linus",
                        "Sketch the board page @Ada Lovelace",
                    ],
                ),
            ],
        ),
    )
    .await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Sketch the board page | Launch | Done",
            "Watch the cards by board | Launch | Doing",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;

    // Columns are a keyed list with the cards' lists inside: the move is a patch of the two
    // columns (their counts and one card each), never a column sent whole.
    let top_ops: Vec<&Value> = board.log[mark..]
        .iter()
        .filter(|f| f[3] == "diff")
        .flat_map(|f| f[4]["l"].as_array().into_iter().flatten())
        .flat_map(|l| l[1].as_array().into_iter().flatten())
        .collect();
    let patched: Vec<&str> = top_ops
        .iter()
        .filter(|op| op[0] == "p")
        .filter_map(|op| op[1].as_str())
        .collect();
    assert!(
        patched.contains(&"1") && patched.contains(&"3"),
        "{top_ops:?}"
    );
    assert!(top_ops.iter().all(|op| op[0] == "p"), "{top_ops:?}");

    // A card moved to another board: it leaves this board; "my cards" shows its new board and
    // column (both key sets change).
    db.psql("UPDATE cards SET board_id = 2, column_id = 5 WHERE id = 3");
    let board_after_move: &[(&str, &[&str])] = &[
        (
            "Ideas",
            &["Write the migration @Grace", "Invite the team @unassigned"],
        ),
        ("Doing", &[]),
        (
            "Done",
            &[
                "Set up Postgres @Linus",
                "Sketch the board page @Ada Lovelace",
            ],
        ),
    ];
    wait_board(&mut board, &tb, FAST, owned("Launch", board_after_move)).await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Sketch the board page | Launch | Done",
            "Watch the cards by board | Second board | Shipped",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;

    // A card given to another assignee: it leaves Ada's page, enters Grace's, and the board
    // shows the new name.
    db.psql("UPDATE cards SET assignee_id = 2 WHERE id = 1");
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Watch the cards by board | Second board | Shipped",
            "Board two card | Second board | Backlog",
        ],
    )
    .await;
    wait_mine(
        &mut grace,
        &tg,
        FAST,
        "Grace",
        &[
            "Sketch the board page | Launch | Done",
            "Write the migration | Launch | Ideas",
        ],
    )
    .await;
    wait_board(
        &mut board,
        &tb,
        FAST,
        owned(
            "Launch",
            &[
                (
                    "Ideas",
                    &["Write the migration @Grace", "Invite the team @unassigned"],
                ),
                ("Doing", &[]),
                (
                    "Done",
                    &["Set up Postgres @Linus", "Sketch the board page @Grace"],
                ),
            ],
        ),
    )
    .await;

    // A card moved onto this board from another one (a move in), and a delete (the default
    // replica identity: the delete carries only the id).
    db.psql(
        "UPDATE cards SET board_id = 1, column_id = 2 WHERE id = 6; DELETE FROM cards WHERE id = 2",
    );
    wait_board(
        &mut board,
        &tb,
        FAST,
        owned(
            "Launch",
            &[
                ("Ideas", &["Invite the team @unassigned"]),
                ("Doing", &["Board two card @Ada Lovelace"]),
                (
                    "Done",
                    &["Set up Postgres @Linus", "Sketch the board page @Grace"],
                ),
            ],
        ),
    )
    .await;
    wait_mine(
        &mut ada,
        &ta,
        FAST,
        "Ada Lovelace",
        &[
            "Board two card | Launch | Doing",
            "Watch the cards by board | Second board | Shipped",
        ],
    )
    .await;
    wait_mine(
        &mut grace,
        &tg,
        FAST,
        "Grace",
        &["Sketch the board page | Launch | Done"],
    )
    .await;

    // The board page never received a row of the other board while it was not on this one.
    for f in &board.log {
        let text = f.to_string();
        assert!(
            !text.contains("Backlog")
                && !text.contains("Shipped")
                && !text.contains("Second board"),
            "board 1 got a row of board 2: {text}"
        );
    }
}

#[tokio::test]
async fn the_get_html_of_a_board_equals_the_connected_render() {
    let (addr, db) = start().await;
    db.exec(
        "INSERT INTO cards (board_id, column_id, position, title, assignee_id)
             VALUES (1, 2, 7, '<b>bold</b> & \"quoted\"', 3)",
    )
    .await;
    let (status, body) = live_tests::get(addr, "/boards/1").await;
    assert_eq!(status, 200);
    let (_, id) = live_tests::page_token(&body);
    // The container's inner HTML, as the GET sent it.
    let open_tag = body.find(&format!("id=\"{id}\"")).expect("container");
    let start = body[open_tag..].find('>').expect("tag end") + open_tag + 1;
    let end = body.rfind("</div>").expect("container end");
    let first = &body[start..end];
    assert_eq!(
        board_view(first),
        owned(
            "Demo board",
            &[
                SEED[0],
                (
                    "Doing",
                    &[
                        "Watch the cards by board @Ada",
                        "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; @Linus",
                    ],
                ),
                SEED[2],
            ],
        )
    );
    assert!(!first.contains("<b>bold"), "a title was not escaped");
    // The team is in each card's select.
    assert_eq!(first.matches("<option value=\"3\"").count(), 6);
    let (c, topic) = open(addr, "/boards/1").await;
    assert_eq!(first, c.html(&topic), "GET and connected renders differ");

    // An unknown board is not found, and so is an unknown user.
    assert_eq!(live_tests::get(addr, "/boards/999").await.0, 404);
    assert_eq!(live_tests::get(addr, "/users/999/cards").await.0, 404);
    // The start page lists the boards and the people, the stylesheet is served.
    let (status, home) = live_tests::get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(home.contains("href=\"/boards/1\">Demo board</a>"), "{home}");
    assert!(
        home.contains("href=\"/users/2/cards\">Cards of Grace</a>"),
        "{home}"
    );
    let (status, css) = live_tests::get(addr, "/kanban.css").await;
    assert_eq!(status, 200);
    assert!(css.contains(".column"));
}
