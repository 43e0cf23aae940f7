//! A kanban board on live-core, written only with watched assigns.
//!
//! There is no change stream, no channel, no `handle_info` and no broadcast here: every handler
//! only writes to Postgres, and each page states which rows it shows as **watch scopes** on its
//! assigns. The replication listener brings every committed change (from this app, another
//! window, or `psql`) to exactly the views whose scopes hold the row.
//!
//! - `/boards/{id}` ([`BoardPage`]): the board (by id), its columns and cards (by `board_id`,
//!   the default scope), the names of the cards' assignees (by the key set of their ids) and
//!   the whole team for the assignee select (a whole small table, capped).
//! - `/users/{id}/cards` ([`MyCards`]): one user's cards over every board (by `assignee_id`),
//!   with the names of their boards and columns (key sets over the cards' board and column
//!   ids). A card moved to another board, column or assignee enters and leaves these sets.
//! - `/` ([`Home`]): every board and every user, with links.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, Page, RouterExt, SyncConfig,
    SyncCtx, ViewError, Watch, html, keyed,
};
use sqlx::{PgConnection, PgPool};

/// The stylesheet (written for this app, in `assets/`).
const CSS: &str = include_str!("../../../assets/kanban.css");

/// The longest title a card may have, in characters (Unicode scalar values, not bytes).
pub const MAX_TITLE_CHARS: usize = 500;

/// The most boards and users the whole-table watches hold (over it the view ends with an error).
pub const MAX_ROWS: usize = 200;

/// A board.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "boards")]
pub struct Board {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A column of a board: scoped by its board by default.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "columns", subscription_key = "board_id")]
pub struct BoardColumn {
    /// Id.
    pub id: i64,
    /// The board it belongs to.
    pub board_id: i64,
    /// Name.
    pub name: String,
    /// Its place on the board, left to right.
    pub position: i32,
}

/// A user.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "users")]
pub struct User {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A card: scoped by its board by default, by its assignee on "my cards".
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "cards", subscription_key = "board_id")]
pub struct Card {
    /// Id.
    pub id: i64,
    /// The board it is on.
    pub board_id: i64,
    /// The column it is in.
    pub column_id: i64,
    /// Its place in the column, top to bottom.
    pub position: i32,
    /// Title.
    pub title: String,
    /// Who works on it, if anybody.
    pub assignee_id: Option<i64>,
}

/// Why a title cannot be stored, as the message shown to the user.
pub fn title_too_long(title: &str) -> Option<String> {
    let n = title.chars().count();
    (n > MAX_TITLE_CHARS).then(|| {
        format!("That title is too long: {n} characters, at most {MAX_TITLE_CHARS} are allowed.")
    })
}

fn arcs<T>(rows: Vec<T>) -> Vec<Arc<T>> {
    rows.into_iter().map(Arc::new).collect()
}

fn sort_cards(cards: &mut [Arc<Card>]) {
    cards.sort_by_key(|c| (c.position, c.id));
}

// ==== The board page

/// `/boards/{id}`: one board, its columns side by side with their cards.
#[derive(Assigns)]
pub struct BoardPage {
    #[subscription_key]
    board_id: i64,
    /// The board itself (its name).
    #[watch(by = "id", key = self.board_id)]
    board: Option<Arc<Board>>,
    /// The board's columns, left to right.
    #[watch(sync = Self::sort_columns)]
    columns: Vec<Arc<BoardColumn>>,
    /// The board's cards, by position.
    #[watch(sync = Self::sort_cards)]
    cards: Vec<Arc<Card>>,
    /// The users the cards are assigned to (the key set of the cards' assignee ids).
    #[watch(by = "id", keys = self.assignee_ids())]
    assignees: Vec<Arc<User>>,
    /// Everybody, for the assignee select.
    #[watch(all, max_rows = MAX_ROWS, sync = Self::sort_team)]
    team: Vec<Arc<User>>,
    /// A hash of the team's ids and names: what each card's select depends on.
    team_sig: u64,
    /// The card whose title is being edited (UI state: `#[keep]` brings it back when the page
    /// is mounted anew, after a deploy or a long disconnection).
    #[keep]
    editing: Option<i64>,
    /// What the user typed into the edited card, when saving it was refused (kept on screen).
    #[keep]
    edit_draft: Option<String>,
    /// What the user typed into a column's new-card input, when adding it was refused.
    #[keep]
    draft: Option<(i64, String)>,
    /// Why the last add or rename was refused; cleared by the next one that succeeds.
    error: Option<String>,
}

/// The watched rows of a board page, as loaded at mount and reload.
struct BoardRows {
    board: Option<Arc<Board>>,
    columns: Vec<Arc<BoardColumn>>,
    cards: Vec<Arc<Card>>,
    assignees: Vec<Arc<User>>,
    team: Vec<Arc<User>>,
}

async fn load_board(db: &mut PgConnection, board_id: i64) -> Result<BoardRows, ViewError> {
    let board: Option<Board> = sqlx::query_as("SELECT id, name FROM boards WHERE id = $1")
        .bind(board_id)
        .fetch_optional(&mut *db)
        .await?;
    let mut columns = arcs(
        sqlx::query_as::<_, BoardColumn>(
            "SELECT id, board_id, name, position FROM columns WHERE board_id = $1",
        )
        .bind(board_id)
        .fetch_all(&mut *db)
        .await?,
    );
    columns.sort_by_key(|c| (c.position, c.id));
    let mut cards = arcs(
        sqlx::query_as::<_, Card>(
            "SELECT id, board_id, column_id, position, title, assignee_id FROM cards \
             WHERE board_id = $1",
        )
        .bind(board_id)
        .fetch_all(&mut *db)
        .await?,
    );
    sort_cards(&mut cards);
    let ids: Vec<i64> = cards.iter().filter_map(|c| c.assignee_id).collect();
    let assignees = arcs(
        sqlx::query_as::<_, User>("SELECT id, name FROM users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *db)
            .await?,
    );
    let mut team = arcs(
        sqlx::query_as::<_, User>("SELECT id, name FROM users")
            .fetch_all(&mut *db)
            .await?,
    );
    team.sort_by_key(|u| u.id);
    Ok(BoardRows {
        board: board.map(Arc::new),
        columns,
        cards,
        assignees,
        team,
    })
}

impl BoardPage {
    fn assignee_ids(&self) -> Vec<i64> {
        self.cards.iter().filter_map(|c| c.assignee_id).collect()
    }

    async fn sort_columns(
        &mut self,
        mut columns: Vec<Arc<BoardColumn>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<BoardColumn>>, ViewError> {
        columns.sort_by_key(|c| (c.position, c.id));
        Ok(columns)
    }

    async fn sort_cards(
        &mut self,
        mut cards: Vec<Arc<Card>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Card>>, ViewError> {
        sort_cards(&mut cards);
        if let Some(id) = self.editing
            && !cards.iter().any(|c| c.id == id)
        {
            // Deleted (or moved to another board) while being edited.
            self.editing = None;
            self.edit_draft = None;
        }
        Ok(cards)
    }

    async fn sort_team(
        &mut self,
        mut team: Vec<Arc<User>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        team.sort_by_key(|u| u.id);
        let mut h = DefaultHasher::new();
        for u in &team {
            (u.id, &u.name).hash(&mut h);
        }
        self.team_sig = h.finish();
        Ok(team)
    }

    fn name_of(&self, user: Option<i64>) -> Option<&str> {
        let id = user?;
        self.assignees
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.as_str())
    }

    fn pool<'a>(ctx: &'a Ctx<'_, Self>) -> &'a PgPool {
        ctx.state()
    }

    /// The column `step` places left (-1) or right (+1) of `column_id`.
    fn neighbour(&self, column_id: i64, step: isize) -> Option<&BoardColumn> {
        let i = self.columns.iter().position(|c| c.id == column_id)?;
        let j = i.checked_add_signed(step)?;
        self.columns.get(j).map(|c| &**c)
    }

    fn card(&self, c: &Card) -> Markup {
        let editing = self.editing == Some(c.id);
        let left = self.neighbour(c.column_id, -1).is_some();
        let right = self.neighbour(c.column_id, 1).is_some();
        html! {
            li.card {
                @if editing {
                    input.rename value=(self.edit_draft.as_deref().unwrap_or(&c.title)) autofocus
                        live-keydown="rename" live-key="Enter" live-keydown-escape="cancel"
                        live-value-id=(c.id) aria-label="Title";
                } @else {
                    span.title live-dblclick="edit" live-value-id=(c.id) { (c.title) }
                }
                span.who {
                    @match self.name_of(c.assignee_id) {
                        Some(name) => (name),
                        None => "unassigned",
                    }
                }
                div.tools {
                    button.left live-click="move" live-value-id=(c.id) live-value-dir="left"
                        disabled[!left] aria-label="Move left" { "←" }
                    select.assign live-change="assign" live-value-id=(c.id) aria-label="Assignee" {
                        option value="" selected[c.assignee_id.is_none()] { "unassigned" }
                        @for u in &self.team {
                            option value=(u.id) selected[c.assignee_id == Some(u.id)] { (u.name) }
                        }
                    }
                    button.edit live-click="edit" live-value-id=(c.id) aria-label="Rename" { "✎" }
                    button.delete live-click="delete" live-value-id=(c.id) aria-label="Delete" { "×" }
                    button.right live-click="move" live-value-id=(c.id) live-value-dir="right"
                        disabled[!right] aria-label="Move right" { "→" }
                }
            }
        }
    }

    fn column(&self, col: &BoardColumn) -> Markup {
        let cards: Vec<Arc<Card>> = self
            .cards
            .iter()
            .filter(|c| c.column_id == col.id)
            .cloned()
            .collect();
        let draft = match &self.draft {
            Some((id, text)) if *id == col.id => Some(text.as_str()),
            _ => None,
        };
        let first = self.columns.first().map(|c| c.id);
        let last = self.columns.last().map(|c| c.id);
        html! {
            section.column data-column=(col.id) {
                h2 { (col.name) " " span.count { (cards.len()) } }
                ul.cards {
                    (keyed(format!("cards-{}", col.id), &cards, |c| c.id)
                        .depends_on(|c| (
                            self.editing == Some(c.id),
                            (self.editing == Some(c.id)).then_some(self.edit_draft.as_deref()),
                            self.name_of(c.assignee_id),
                            self.team_sig,
                            first == Some(c.column_id),
                            last == Some(c.column_id),
                        ))
                        .render(|c| self.card(c)))
                }
                input.new-card placeholder="Add a card" autocomplete="off" value=[draft]
                    live-keydown="add" live-key="Enter" live-value-column=(col.id)
                    aria-label=(format!("New card in {}", col.name));
            }
        }
    }
}

impl LiveView for BoardPage {
    type State = PgPool;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let board_id: i64 = ctx.params().parse("id").map_err(|_| ViewError::NotFound)?;
        let rows = load_board(ctx.db().await?, board_id).await?;
        if rows.board.is_none() {
            return Err(ViewError::NotFound);
        }
        Ok(BoardPage {
            board_id,
            board: rows.board,
            columns: rows.columns,
            cards: rows.cards,
            assignees: rows.assignees,
            team: rows.team,
            team_sig: 0,
            editing: None,
            edit_draft: None,
            draft: None,
            error: None,
        })
    }

    async fn reload(&mut self, ctx: &mut Mount<'_, Self>) -> Result<(), ViewError> {
        // Only the rows: the card being edited, the drafts and the error stay.
        let rows = load_board(ctx.db().await?, self.board_id).await?;
        self.board = rows.board;
        self.columns = rows.columns;
        self.cards = rows.cards;
        self.assignees = rows.assignees;
        self.team = rows.team;
        Ok(())
    }

    fn title(&self) -> Option<String> {
        Some(match &self.board {
            Some(b) => format!("{} · kanban", b.name),
            None => "kanban".into(),
        })
    }

    fn render(&self) -> Markup {
        html! {
            header.board-head {
                h1 {
                    @match &self.board {
                        Some(b) => (b.name),
                        None => "This board was deleted",
                    }
                }
                @if let Some(e) = &self.error {
                    p.error role="alert" { (e) }
                }
            }
            main.board {
                // Columns are a keyed list, each holding its cards' keyed list: a card change
                // is sent as a row op inside its column.
                (keyed("columns", &self.columns, |c| c.id).render(|col| self.column(col)))
            }
        }
    }

    async fn handle_event(
        &mut self,
        event: Event,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        let pool = Self::pool(ctx).clone();
        match event.name.as_str() {
            "add" => {
                let column: i64 = event.get_as("column")?;
                if !self.columns.iter().any(|c| c.id == column) {
                    return Ok(());
                }
                let typed = event.get("value").unwrap_or("");
                let title = typed.trim();
                if title.is_empty() {
                    return Ok(());
                }
                if let Some(message) = title_too_long(title) {
                    self.draft = Some((column, typed.to_string()));
                    self.error = Some(message);
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO cards (board_id, column_id, position, title) \
                     SELECT $1, $2, coalesce(max(position) + 1, 0), $3 FROM cards WHERE column_id = $2",
                )
                .bind(self.board_id)
                .bind(column)
                .bind(title)
                .execute(&pool)
                .await?;
                self.draft = None;
                self.error = None;
            }
            "move" => {
                let id: i64 = event.get_as("id")?;
                let step = match event.get("dir") {
                    Some("left") => -1,
                    Some("right") => 1,
                    _ => return Ok(()),
                };
                let Some(card) = self.cards.iter().find(|c| c.id == id) else {
                    return Ok(());
                };
                let Some(to) = self.neighbour(card.column_id, step).map(|c| c.id) else {
                    return Ok(());
                };
                sqlx::query(
                    "UPDATE cards SET column_id = $3, position = \
                     (SELECT coalesce(max(position) + 1, 0) FROM cards WHERE column_id = $3) \
                     WHERE id = $1 AND board_id = $2",
                )
                .bind(id)
                .bind(self.board_id)
                .bind(to)
                .execute(&pool)
                .await?;
            }
            "edit" => {
                let id: i64 = event.get_as("id")?;
                if self.cards.iter().any(|c| c.id == id) {
                    self.editing = Some(id);
                    self.edit_draft = None;
                }
            }
            "cancel" => {
                self.editing = None;
                self.edit_draft = None;
            }
            "rename" => {
                let id: i64 = event.get_as("id")?;
                if self.editing != Some(id) {
                    return Ok(());
                }
                let typed = event.get("value").unwrap_or("");
                let title = typed.trim();
                if title.is_empty() {
                    return Ok(());
                }
                if let Some(message) = title_too_long(title) {
                    self.edit_draft = Some(typed.to_string());
                    self.error = Some(message);
                    return Ok(());
                }
                sqlx::query("UPDATE cards SET title = $3 WHERE id = $1 AND board_id = $2")
                    .bind(id)
                    .bind(self.board_id)
                    .bind(title)
                    .execute(&pool)
                    .await?;
                self.editing = None;
                self.edit_draft = None;
                self.error = None;
            }
            "assign" => {
                let id: i64 = event.get_as("id")?;
                let user = match event.get("value").unwrap_or("") {
                    "" => None,
                    v => match v.parse::<i64>() {
                        Ok(u) if self.team.iter().any(|t| t.id == u) => Some(u),
                        _ => return Ok(()),
                    },
                };
                sqlx::query("UPDATE cards SET assignee_id = $3 WHERE id = $1 AND board_id = $2")
                    .bind(id)
                    .bind(self.board_id)
                    .bind(user)
                    .execute(&pool)
                    .await?;
            }
            "delete" => {
                let id: i64 = event.get_as("id")?;
                sqlx::query("DELETE FROM cards WHERE id = $1 AND board_id = $2")
                    .bind(id)
                    .bind(self.board_id)
                    .execute(&pool)
                    .await?;
            }
            _ => return Err(ViewError::UnknownEvent(event.name)),
        }
        Ok(())
    }
}

// ==== "My cards"

/// `/users/{id}/cards`: one user's cards over every board, with their boards and columns.
#[derive(Assigns)]
pub struct MyCards {
    user_id: i64,
    /// The user (their name).
    #[watch(by = "id", key = self.user_id)]
    user: Option<Arc<User>>,
    /// Their cards, on any board.
    #[watch(by = "assignee_id", key = self.user_id, sync = Self::sort_cards)]
    cards: Vec<Arc<Card>>,
    /// The boards of those cards.
    #[watch(by = "id", keys = self.cards.iter().map(|c| c.board_id))]
    boards: Vec<Arc<Board>>,
    /// The columns of those cards.
    #[watch(by = "id", keys = self.cards.iter().map(|c| c.column_id))]
    columns: Vec<Arc<BoardColumn>>,
}

fn sort_mine(cards: &mut [Arc<Card>]) {
    cards.sort_by_key(|c| (c.board_id, c.id));
}

impl MyCards {
    async fn sort_cards(
        &mut self,
        mut cards: Vec<Arc<Card>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Card>>, ViewError> {
        sort_mine(&mut cards);
        Ok(cards)
    }

    async fn load(user_id: i64, ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let db = ctx.db().await?;
        let user: Option<User> = sqlx::query_as("SELECT id, name FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *db)
            .await?;
        let mut cards = arcs(
            sqlx::query_as::<_, Card>(
                "SELECT id, board_id, column_id, position, title, assignee_id FROM cards \
                 WHERE assignee_id = $1",
            )
            .bind(user_id)
            .fetch_all(&mut *db)
            .await?,
        );
        sort_mine(&mut cards);
        let board_ids: Vec<i64> = cards.iter().map(|c| c.board_id).collect();
        let column_ids: Vec<i64> = cards.iter().map(|c| c.column_id).collect();
        let boards = arcs(
            sqlx::query_as::<_, Board>("SELECT id, name FROM boards WHERE id = ANY($1)")
                .bind(&board_ids)
                .fetch_all(&mut *db)
                .await?,
        );
        let columns = arcs(
            sqlx::query_as::<_, BoardColumn>(
                "SELECT id, board_id, name, position FROM columns WHERE id = ANY($1)",
            )
            .bind(&column_ids)
            .fetch_all(&mut *db)
            .await?,
        );
        Ok(MyCards {
            user_id,
            user: user.map(Arc::new),
            cards,
            boards,
            columns,
        })
    }

    fn board_name(&self, id: i64) -> &str {
        self.boards
            .iter()
            .find(|b| b.id == id)
            .map_or("?", |b| b.name.as_str())
    }

    fn column_name(&self, id: i64) -> &str {
        self.columns
            .iter()
            .find(|c| c.id == id)
            .map_or("?", |c| c.name.as_str())
    }
}

impl LiveView for MyCards {
    type State = PgPool;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let user_id: i64 = ctx.params().parse("id").map_err(|_| ViewError::NotFound)?;
        let page = Self::load(user_id, ctx).await?;
        if page.user.is_none() {
            return Err(ViewError::NotFound);
        }
        Ok(page)
    }

    async fn reload(&mut self, ctx: &mut Mount<'_, Self>) -> Result<(), ViewError> {
        *self = Self::load(self.user_id, ctx).await?;
        Ok(())
    }

    fn title(&self) -> Option<String> {
        Some(match &self.user {
            Some(u) => format!("Cards of {} · kanban", u.name),
            None => "kanban".into(),
        })
    }

    fn render(&self) -> Markup {
        html! {
            header.board-head {
                h1 {
                    "Cards of "
                    span.user { @if let Some(u) = &self.user { (u.name) } @else { "a deleted user" } }
                }
            }
            main.mine {
                @if self.cards.is_empty() {
                    p.empty { "No cards assigned." }
                }
                ul.my-cards {
                    (keyed("mine", &self.cards, |c| c.id)
                        .depends_on(|c| (self.board_name(c.board_id).to_string(), self.column_name(c.column_id).to_string()))
                        .render(|c| html! {
                            li.my-card {
                                span.title { (c.title) }
                                a.board href=(format!("/boards/{}", c.board_id)) { (self.board_name(c.board_id)) }
                                span.column { (self.column_name(c.column_id)) }
                            }
                        }))
                }
            }
        }
    }
}

// ==== Home

/// `/`: every board and every user.
#[derive(Assigns)]
pub struct Home {
    #[watch(all, max_rows = MAX_ROWS, sync = Self::sort_boards)]
    boards: Vec<Arc<Board>>,
    #[watch(all, max_rows = MAX_ROWS, sync = Self::sort_users)]
    users: Vec<Arc<User>>,
}

impl Home {
    async fn sort_boards(
        &mut self,
        mut boards: Vec<Arc<Board>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Board>>, ViewError> {
        boards.sort_by_key(|b| b.id);
        Ok(boards)
    }

    async fn sort_users(
        &mut self,
        mut users: Vec<Arc<User>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<User>>, ViewError> {
        users.sort_by_key(|u| u.id);
        Ok(users)
    }
}

impl LiveView for Home {
    type State = PgPool;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let db = ctx.db().await?;
        let mut boards = arcs(
            sqlx::query_as::<_, Board>("SELECT id, name FROM boards")
                .fetch_all(&mut *db)
                .await?,
        );
        boards.sort_by_key(|b| b.id);
        let mut users = arcs(
            sqlx::query_as::<_, User>("SELECT id, name FROM users")
                .fetch_all(&mut *db)
                .await?,
        );
        users.sort_by_key(|u| u.id);
        Ok(Home { boards, users })
    }

    fn title(&self) -> Option<String> {
        Some("kanban".into())
    }

    fn render(&self) -> Markup {
        html! {
            main.home {
                section {
                    h2 { "Boards" }
                    ul.boards {
                        (keyed("boards", &self.boards, |b| b.id).render(|b| html! {
                            li { a href=(format!("/boards/{}", b.id)) { (b.name) } }
                        }))
                    }
                }
                section {
                    h2 { "People" }
                    ul.users {
                        (keyed("users", &self.users, |u| u.id).render(|u| html! {
                            li { a href=(format!("/users/{}/cards", u.id)) { "Cards of " (u.name) } }
                        }))
                    }
                }
            }
        }
    }
}

// ==== The app

/// The page layout: the stylesheet and the client script.
fn layout(page: Page<'_>) -> Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title.unwrap_or("kanban")) }
                link rel="stylesheet" href="/kanban.css";
                (page.head)
            }
            body {
                nav.top { a href="/" { "kanban" } }
                (page.body)
            }
        }
    }
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// How to run the app.
#[derive(Debug, Clone)]
pub struct KanbanConfig {
    /// The database (needs `wal_level = logical` and a user with the REPLICATION attribute).
    pub database_url: String,
    /// The replication slot name.
    pub slot: String,
    /// Several app nodes on one database: the NATS server (`nats-server -js`) they share
    /// (`LIVE_NATS_URL`); `None` for one node.
    pub nats_url: Option<String>,
    /// The runtime configuration (secret key, origins).
    pub live: LiveConfig,
}

/// Why the app cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KanbanError {
    /// The database is unreachable.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The runtime or its replication listener cannot start (the message says what to change).
    #[error("{0}")]
    Live(#[from] live_core::LiveError),
}

/// Connects, applies the migrations, starts the replication listener, and returns the app.
pub async fn app(config: KanbanConfig) -> Result<(Router, Live<PgPool>), KanbanError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&config.database_url)
        .await
        .map_err(KanbanError::Connect)?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let live = Live::builder(pool.clone())
        .config(config.live)
        .pool(pool)
        .sync(match config.nats_url {
            Some(url) => SyncConfig::new(&config.database_url)
                .slot(config.slot)
                .nats(url),
            None => SyncConfig::new(&config.database_url).slot(config.slot),
        })
        .layout(layout)
        .build()?;
    let router = Router::new()
        .route("/kanban.css", get(stylesheet))
        .live_view::<Home>("/", &live)
        .live_view::<BoardPage>("/boards/{id}", &live)
        .live_view::<MyCards>("/users/{id}/cards", &live)
        .merge(live.router())
        .merge(live.health_route("/live/health"));
    live.listen().await?;
    Ok((router, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_counted_in_characters() {
        assert_eq!(title_too_long(&"😀".repeat(MAX_TITLE_CHARS)), None);
        assert_eq!(
            title_too_long(&"😀".repeat(MAX_TITLE_CHARS + 1)).as_deref(),
            Some("That title is too long: 501 characters, at most 500 are allowed.")
        );
    }
}
