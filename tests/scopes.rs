//! Watch scopes: pages whose rows span several tables and keys stay live with no hand-written
//! subscriptions. One `Card` type scoped by `board_id` on a board page and by `assignee_id` on
//! a "my cards" page; users watched by the key set of the board's assignees; boards by the
//! set of the user's cards' boards; a whole small table; a filter with move-in and move-out.
//! Real Postgres, every change really committed, under DEFAULT and FULL replica identity.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, RouterExt, SyncCtx, ViewError,
    Watch, html, keyed,
};
use live_tests::{Rng, SECRET, TestDb, WsClient, open};

const WAIT: Duration = Duration::from_secs(15);

const SCHEMA: &str = "
CREATE TABLE boards (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE cards (id bigint PRIMARY KEY, board_id bigint NOT NULL, assignee_id bigint,
                    title text NOT NULL, archived boolean NOT NULL DEFAULT false);
CREATE PUBLICATION live_publication FOR TABLE boards, users, cards;
INSERT INTO boards VALUES (1, 'Board one'), (2, 'Board two');
INSERT INTO users VALUES (7, 'Ada'), (8, 'Bo'), (9, 'Cy');
INSERT INTO cards VALUES (1, 1, 7, 'write spec', false), (2, 1, 8, 'review', false),
                         (3, 2, 7, 'deploy', false), (4, 2, 9, 'secret of Cy', false);
";

/// A card: scoped by its board by default, by its assignee on "my cards".
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "cards", subscription_key = "board_id")]
struct Card {
    id: i64,
    board_id: i64,
    assignee_id: Option<i64>,
    title: String,
    archived: bool,
}

impl Card {
    fn live(c: &Card) -> bool {
        !c.archived
    }
}

/// A user: no default scope — every assign states its own.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "users")]
struct User {
    id: i64,
    name: String,
}

/// A board: no default scope either.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "boards")]
struct Board {
    id: i64,
    name: String,
}

fn by_id<T>(mut rows: Vec<Arc<T>>, id: impl Fn(&T) -> i64) -> Vec<Arc<T>> {
    rows.sort_by_key(|r| id(r));
    rows
}

/// A board: its live (not archived) cards, and the users assigned to them.
#[derive(Assigns)]
struct BoardPage {
    #[subscription_key]
    board_id: i64,
    #[watch(sync = Self::sorted, filter = Card::live)]
    cards: Vec<Arc<Card>>,
    #[watch(by = "id", keys = self.assignees())]
    users: Vec<Arc<User>>,
}

impl BoardPage {
    fn assignees(&self) -> Vec<i64> {
        self.cards.iter().filter_map(|c| c.assignee_id).collect()
    }

    async fn sorted(
        &mut self,
        cards: Vec<Arc<Card>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Card>>, ViewError> {
        Ok(by_id(cards, |c| c.id))
    }

    fn name_of(&self, user: Option<i64>) -> &str {
        self.users
            .iter()
            .find(|u| Some(u.id) == user)
            .map_or("nobody", |u| u.name.as_str())
    }
}

impl LiveView for BoardPage {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let board_id: i64 = ctx.params().parse("id")?;
        let db = ctx.db().await?;
        let cards: Vec<Card> =
            sqlx::query_as("SELECT * FROM cards WHERE board_id = $1 AND NOT archived")
                .bind(board_id)
                .fetch_all(&mut *db)
                .await?;
        let ids: Vec<i64> = cards.iter().filter_map(|c| c.assignee_id).collect();
        let users: Vec<User> = sqlx::query_as("SELECT * FROM users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *db)
            .await?;
        Ok(BoardPage {
            board_id,
            cards: by_id(cards.into_iter().map(Arc::new).collect(), |c| c.id),
            users: users.into_iter().map(Arc::new).collect(),
        })
    }

    fn render(&self) -> Markup {
        html! {
            ul.cards {
                (keyed("cards", &self.cards, |c| c.id)
                    .depends_on(|c| self.name_of(c.assignee_id).to_string())
                    .render(|c| html! { li { (c.title) " @" (self.name_of(c.assignee_id)) } }))
            }
        }
    }
}

/// One user's cards over every board, with the names of their boards.
#[derive(Assigns)]
struct MyCards {
    user_id: i64,
    #[watch(by = "assignee_id", key = self.user_id, sync = Self::sorted)]
    cards: Vec<Arc<Card>>,
    #[watch(by = "id", keys = self.cards.iter().map(|c| c.board_id))]
    boards: Vec<Arc<Board>>,
}

impl MyCards {
    async fn sorted(
        &mut self,
        cards: Vec<Arc<Card>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Card>>, ViewError> {
        Ok(by_id(cards, |c| c.id))
    }

    async fn load(user_id: i64, ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let db = ctx.db().await?;
        let cards: Vec<Card> = sqlx::query_as("SELECT * FROM cards WHERE assignee_id = $1")
            .bind(user_id)
            .fetch_all(&mut *db)
            .await?;
        let ids: Vec<i64> = cards.iter().map(|c| c.board_id).collect();
        let boards: Vec<Board> = sqlx::query_as("SELECT * FROM boards WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *db)
            .await?;
        Ok(MyCards {
            user_id,
            cards: by_id(cards.into_iter().map(Arc::new).collect(), |c| c.id),
            boards: boards.into_iter().map(Arc::new).collect(),
        })
    }
}

impl LiveView for MyCards {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let user_id: i64 = ctx.params().parse("id")?;
        Self::load(user_id, ctx).await
    }

    /// The key changes at run time (the server decides: here an event names the user).
    async fn reload(&mut self, ctx: &mut Mount<'_, Self>) -> Result<(), ViewError> {
        *self = Self::load(self.user_id, ctx).await?;
        Ok(())
    }

    fn render(&self) -> Markup {
        let board = |id: i64| {
            self.boards
                .iter()
                .find(|b| b.id == id)
                .map_or("?", |b| b.name.as_str())
                .to_string()
        };
        html! {
            p.user { "user " (self.user_id) }
            ul.mine {
                (keyed("mine", &self.cards, |c| c.id)
                    .depends_on(|c| board(c.board_id))
                    .render(|c| html! { li { (c.title) " in " (board(c.board_id)) } }))
            }
        }
    }

    async fn handle_event(&mut self, e: Event, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
        match e.name.as_str() {
            "switch" => self.user_id = e.get_as("user")?,
            _ => return Err(ViewError::UnknownEvent(e.name)),
        }
        Ok(())
    }
}

/// Everybody: the whole (small) users table.
#[derive(Assigns)]
struct Everyone {
    #[watch(all, max_rows = 100, sync = Self::sorted)]
    users: Vec<Arc<User>>,
}

impl Everyone {
    async fn sorted(
        &mut self,
        users: Vec<Arc<User>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        Ok(by_id(users, |u| u.id))
    }
}

impl LiveView for Everyone {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let users: Vec<User> = sqlx::query_as("SELECT * FROM users")
            .fetch_all(ctx.db().await?)
            .await?;
        Ok(Everyone {
            users: by_id(users.into_iter().map(Arc::new).collect(), |u| u.id),
        })
    }

    fn render(&self) -> Markup {
        html! { ul { (keyed("users", &self.users, |u| u.id).render(|u| html! { li { (u.name) } })) } }
    }
}

async fn start(db: &TestDb) -> (std::net::SocketAddr, Live<()>) {
    let live = db.live(LiveConfig::new(SECRET.to_vec()));
    let app = Router::new()
        .live_view::<BoardPage>("/boards/{id}", &live)
        .live_view::<MyCards>("/users/{id}/cards", &live)
        .live_view::<Everyone>("/users", &live)
        .merge(live.router());
    live.listen().await.expect("listener");
    (live_tests::serve(app).await, live)
}

/// The `li` texts of a page, in order.
fn items(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<li") {
        rest = &rest[i..];
        let gt = rest.find('>').unwrap_or(0);
        let end = rest.find("</li>").unwrap_or(rest.len());
        out.push(rest[gt + 1..end].to_string());
        rest = &rest[end..];
    }
    out
}

async fn wait_items(c: &mut WsClient, topic: &str, want: &[&str]) {
    let ok = c
        .wait_html(topic, WAIT, |h| items(h) == want.to_vec())
        .await;
    assert!(
        ok,
        "want {want:?}, the view shows {:?}",
        items(&c.html(topic))
    );
}

async fn scopes_script(identity_full: bool) {
    let db = TestDb::new(SCHEMA).await;
    if identity_full {
        db.exec(
            "ALTER TABLE cards REPLICA IDENTITY FULL; ALTER TABLE users REPLICA IDENTITY FULL; \
             ALTER TABLE boards REPLICA IDENTITY FULL",
        )
        .await;
    }
    let (addr, _live) = start(&db).await;
    let (mut board, tb) = open(addr, "/boards/1").await;
    let (mut ada, ta) = open(addr, "/users/7/cards").await;
    let (mut cy, tc) = open(addr, "/users/9/cards").await;
    let (mut all, tu) = open(addr, "/users").await;
    wait_items(&mut board, &tb, &["write spec @Ada", "review @Bo"]).await;
    wait_items(
        &mut ada,
        &ta,
        &["write spec in Board one", "deploy in Board two"],
    )
    .await;
    wait_items(&mut cy, &tc, &["secret of Cy in Board two"]).await;
    wait_items(&mut all, &tu, &["Ada", "Bo", "Cy"]).await;

    // A user in the board's key set is renamed (by another connection): the board shows it.
    db.exec("UPDATE users SET name = 'Bo B.' WHERE id = 8")
        .await;
    wait_items(&mut board, &tb, &["write spec @Ada", "review @Bo B."]).await;
    wait_items(&mut all, &tu, &["Ada", "Bo B.", "Cy"]).await;

    // A board renamed: "my cards" of both users with cards there follow.
    db.exec("UPDATE boards SET name = 'Board 2' WHERE id = 2")
        .await;
    wait_items(
        &mut ada,
        &ta,
        &["write spec in Board one", "deploy in Board 2"],
    )
    .await;
    wait_items(&mut cy, &tc, &["secret of Cy in Board 2"]).await;

    // Reassigned: the card leaves Ada's page, enters Cy's; on the board, the key set grows to
    // Cy (loaded through the fence) and the name follows.
    db.exec("UPDATE cards SET assignee_id = 9 WHERE id = 1")
        .await;
    wait_items(&mut ada, &ta, &["deploy in Board 2"]).await;
    wait_items(
        &mut cy,
        &tc,
        &["write spec in Board one", "secret of Cy in Board 2"],
    )
    .await;
    wait_items(&mut board, &tb, &["write spec @Cy", "review @Bo B."]).await;

    // A card moved to another board (a move between keys of the default scope).
    db.exec("UPDATE cards SET board_id = 2 WHERE id = 2").await;
    wait_items(&mut board, &tb, &["write spec @Cy"]).await;
    // Bo left the board's key set: a rename of Bo no longer changes it.
    db.exec("UPDATE users SET name = 'Bo again' WHERE id = 8")
        .await;
    wait_items(&mut all, &tu, &["Ada", "Bo again", "Cy"]).await;

    // The filter: archived cards leave (move out), unarchived come back (move in).
    db.exec("UPDATE cards SET archived = true WHERE id = 1")
        .await;
    wait_items(&mut board, &tb, &[]).await;
    db.exec("UPDATE cards SET archived = false, title = 'spec v2' WHERE id = 1")
        .await;
    wait_items(&mut board, &tb, &["spec v2 @Cy"]).await;

    // A new card, then a delete (default identity: the delete carries only the id).
    db.exec("INSERT INTO cards VALUES (5, 1, 7, 'new for Ada', false)")
        .await;
    wait_items(&mut board, &tb, &["spec v2 @Cy", "new for Ada @Ada"]).await;
    wait_items(
        &mut ada,
        &ta,
        &["deploy in Board 2", "new for Ada in Board one"],
    )
    .await;
    db.exec("DELETE FROM cards WHERE id = 5").await;
    wait_items(&mut board, &tb, &["spec v2 @Cy"]).await;
    wait_items(&mut ada, &ta, &["deploy in Board 2"]).await;

    // The whole table: inserts and deletes.
    db.exec("INSERT INTO users VALUES (10, 'Di')").await;
    wait_items(&mut all, &tu, &["Ada", "Bo again", "Cy", "Di"]).await;
    db.exec("DELETE FROM users WHERE id = 8").await;
    wait_items(&mut all, &tu, &["Ada", "Cy", "Di"]).await;

    // The key changed at run time by the server: the page follows the new user.
    let before_switch = ada.log.len();
    let r = ada
        .event(&ta, "click", "switch", serde_json::json!({"user": "9"}))
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    wait_items(
        &mut ada,
        &ta,
        &["spec v2 in Board one", "secret of Cy in Board 2"],
    )
    .await;
    db.exec("UPDATE cards SET title = 'after switch' WHERE id = 4")
        .await;
    wait_items(
        &mut ada,
        &ta,
        &["spec v2 in Board one", "after switch in Board 2"],
    )
    .await;

    // Isolation: the board page never received another board's cards or other users' names,
    // and Ada's page (before the switch) never received Cy's secret card.
    for f in &board.log {
        let text = f.to_string();
        assert!(
            !text.contains("secret of Cy"),
            "board 1 got a card of board 2: {text}"
        );
        assert!(
            !text.contains("Bo again"),
            "board 1 got a user outside its key set: {text}"
        );
        assert!(
            !text.contains("Di"),
            "board 1 got a user outside its key set: {text}"
        );
    }
    for f in &ada.log[..before_switch] {
        let text = f.to_string();
        assert!(
            !text.contains("secret of Cy"),
            "Ada's page got Cy's card: {text}"
        );
    }
}

#[tokio::test]
async fn scopes_on_assigns_key_sets_filters_and_whole_tables_default_identity() {
    scopes_script(false).await;
}

#[tokio::test]
async fn scopes_on_assigns_key_sets_filters_and_whole_tables_full_identity() {
    scopes_script(true).await;
}

/// A whole-table watch with a small cap.
#[derive(Assigns)]
struct FewUsers {
    #[watch(all, max_rows = 3)]
    users: Vec<Arc<User>>,
}

impl LiveView for FewUsers {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let users: Vec<User> = sqlx::query_as("SELECT * FROM users")
            .fetch_all(ctx.db().await?)
            .await?;
        Ok(FewUsers {
            users: users.into_iter().map(Arc::new).collect(),
        })
    }

    fn render(&self) -> Markup {
        html! { p { (self.users.len()) " users" } }
    }
}

/// A whole-table watch past its `max_rows` is an error the developer sees, not a slowdown:
/// the view ends with a logged reason, and a mount over the cap is refused.
#[tokio::test]
async fn a_whole_table_watch_over_its_cap_is_an_error() {
    let db = TestDb::new(SCHEMA).await;
    let live = db.live(LiveConfig::new(SECRET.to_vec()));
    let app = Router::new()
        .live_view::<FewUsers>("/few", &live)
        .merge(live.router());
    live.listen().await.expect("listener");
    let addr = live_tests::serve(app).await;
    let (mut c, t) = open(addr, "/few").await;
    assert!(c.html(&t).contains("3 users"));
    db.exec("INSERT INTO users VALUES (11, 'Ed')").await;
    let mut crashed = false;
    while let Some(f) = c.next(WAIT).await {
        if f[3] == "error" {
            crashed = true;
            break;
        }
    }
    assert!(crashed, "the view went on with 4 rows over a cap of 3");
    // Now over the cap at mount: the join is refused.
    let (_, body) = live_tests::get(addr, "/few").await;
    let (token, id) = live_tests::page_token(&body);
    let mut c = WsClient::connect(addr).await;
    let topic = format!("lv:{id}");
    let reply = c.join(&topic, &token, &format!("http://{addr}/few")).await;
    assert_eq!(reply["response"]["reason"], "mount_failed", "{reply}");
}

/// What a board page must show, from a fresh query.
async fn board_want(db: &TestDb, board: i64) -> Vec<String> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.title, u.name FROM cards c LEFT JOIN users u ON u.id = c.assignee_id \
         WHERE c.board_id = $1 AND NOT c.archived ORDER BY c.id",
    )
    .bind(board)
    .fetch_all(&db.pool)
    .await
    .expect("board query");
    rows.into_iter()
        .map(|(t, n)| format!("{t} @{}", n.as_deref().unwrap_or("nobody")))
        .collect()
}

/// What a "my cards" page must show, from a fresh query.
async fn mine_want(db: &TestDb, user: i64) -> Vec<String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.title, b.name FROM cards c JOIN boards b ON b.id = c.board_id \
         WHERE c.assignee_id = $1 ORDER BY c.id",
    )
    .bind(user)
    .fetch_all(&db.pool)
    .await
    .expect("mine query");
    rows.into_iter()
        .map(|(t, b)| format!("{t} in {b}"))
        .collect()
}

/// Key sets grow and shrink during 2,000 committed writes (reassignments, moves between
/// boards, renames of users and boards, archive toggles, inserts, deletes) while the walsender
/// is killed: afterwards every view equals a fresh query — nothing missing, nothing extra.
#[tokio::test]
async fn key_sets_stay_exact_through_thousands_of_writes_and_walsender_kills() {
    let db = TestDb::new(SCHEMA).await;
    db.exec(
        "INSERT INTO boards VALUES (3, 'Board three'); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(10, 20) g; \
         INSERT INTO cards SELECT g, 1 + g % 3, CASE WHEN g % 5 = 0 THEN NULL ELSE 7 + g % 14 END, \
                'card ' || g, false FROM generate_series(5, 60) g",
    )
    .await;
    let (addr, live) = start(&db).await;
    let mut boards = Vec::new();
    for b in 1..=3 {
        boards.push((b, open(addr, &format!("/boards/{b}")).await));
    }
    let mut mine = Vec::new();
    for u in [7_i64, 8, 9, 10, 11] {
        mine.push((u, open(addr, &format!("/users/{u}/cards")).await));
    }
    let pool = db.pool.clone();
    let writer = tokio::spawn(async move {
        let mut rng = Rng(42);
        let users: Vec<i64> = (7..=20).collect();
        for op in 0..2000_u64 {
            let card = 1 + rng.below(70) as i64;
            let sql: (String, Vec<i64>) = match rng.below(8) {
                0 | 1 => {
                    let u = users[rng.below(users.len() as u64) as usize];
                    (
                        "UPDATE cards SET assignee_id = $2 WHERE id = $1".into(),
                        vec![card, u],
                    )
                }
                2 => (
                    "UPDATE cards SET assignee_id = NULL WHERE id = $1".into(),
                    vec![card],
                ),
                3 => {
                    let b = 1 + rng.below(3) as i64;
                    (
                        "UPDATE cards SET board_id = $2 WHERE id = $1".into(),
                        vec![card, b],
                    )
                }
                4 => {
                    let u = users[rng.below(users.len() as u64) as usize];
                    (
                        format!("UPDATE users SET name = 'u{u}-v{op}' WHERE id = $1"),
                        vec![u],
                    )
                }
                5 => {
                    let b = 1 + rng.below(3) as i64;
                    (
                        format!("UPDATE boards SET name = 'b{b}-v{op}' WHERE id = $1"),
                        vec![b],
                    )
                }
                6 => (
                    "UPDATE cards SET archived = NOT archived WHERE id = $1".into(),
                    vec![card],
                ),
                _ => {
                    if rng.below(2) == 0 {
                        ("DELETE FROM cards WHERE id = $1".into(), vec![card])
                    } else {
                        let b = 1 + rng.below(3) as i64;
                        let u = users[rng.below(users.len() as u64) as usize];
                        (
                            format!(
                                "INSERT INTO cards VALUES ($1, $2, $3, 'new {op}', false) \
                                 ON CONFLICT (id) DO UPDATE SET title = 'new {op}', board_id = $2, assignee_id = $3"
                            ),
                            vec![card, b, u],
                        )
                    }
                }
            };
            loop {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.0.clone()));
                for v in &sql.1 {
                    q = q.bind(*v);
                }
                match q.execute(&pool).await {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    });
    let slot = format!("slot_{}", db.name);
    let mut kills = 0;
    while !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed: Option<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
        )
        .bind(&slot)
        .fetch_optional(&db.pool)
        .await
        .ok()
        .flatten();
        if killed == Some(true) {
            kills += 1;
        }
    }
    writer.await.expect("writer");
    assert!(kills >= 2, "the walsender was killed {kills} times");
    for (b, (c, t)) in boards.iter_mut() {
        let want = board_want(&db, *b).await;
        let ok = c
            .wait_html(t, Duration::from_secs(60), |h| items(h) == want)
            .await;
        assert!(
            ok,
            "board {b}: want {want:?}\nshows {:?}",
            items(&c.html(t))
        );
    }
    for (u, (c, t)) in mine.iter_mut() {
        let want = mine_want(&db, *u).await;
        let ok = c
            .wait_html(t, Duration::from_secs(60), |h| items(h) == want)
            .await;
        assert!(ok, "user {u}: want {want:?}\nshows {:?}", items(&c.html(t)));
    }
    let status = live.listener_status().expect("listener");
    eprintln!(
        "walsender killed {kills} times; listener reconnected {} times",
        status.reconnects()
    );
}
