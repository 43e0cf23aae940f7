//! TodoMVC on live-core.
//!
//! Every handler only writes to Postgres. What the user sees comes back through the replication
//! listener into the watched assign `todos` (`#[derive(Watch)]` on [`Todo`], subscription key
//! = the list id); the `sync` hook orders the todos and applies the Active/Completed filter.
//! Two windows on one list see each other's changes, and so does a row written with `psql`.
//!
//! As a model app it also guards its input: `/new` is a POST with a same-origin check (CSRF),
//! titles are capped at [`MAX_TITLE_CHARS`], adds are rate limited per view (a token bucket,
//! [`ADD_BURST`] then [`ADD_REFILL_PER_SECOND`]), and list ids are random (a list is open to
//! whoever has its link, so its link must not be guessable).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, Page, Params, RouterExt,
    SyncConfig, SyncCtx, ViewError, Watch, html, keyed,
};
use sqlx::{PgConnection, PgPool};

/// The stylesheet (written for this app, in `assets/`).
const CSS: &str = include_str!("../../../assets/todo.css");
/// Rules for the error message, the "new list" buttons and the start page.
const APP_CSS: &str = include_str!("app.css");

/// The longest title a todo may have, in characters (Unicode scalar values, not bytes).
pub const MAX_TITLE_CHARS: usize = 1000;
/// How many todos one view may add at once (the token bucket's size).
pub const ADD_BURST: u32 = 20;
/// How many more todos one view may add per second after a burst (the bucket's refill rate).
pub const ADD_REFILL_PER_SECOND: u32 = 2;

/// A todo, watched through logical replication.
#[derive(Watch, Clone, Debug, PartialEq, sqlx::FromRow)]
#[watch(table = "todos", subscription_key = "list_id")]
pub struct Todo {
    /// Id.
    pub id: i64,
    /// The list it belongs to: the subscription key.
    pub list_id: i64,
    /// Title.
    pub title: String,
    /// Done?
    pub completed: bool,
}

/// Which todos are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Every todo.
    All,
    /// Not completed.
    Active,
    /// Completed.
    Completed,
}

impl Filter {
    fn from_params(params: &Params) -> Self {
        match params.get("filter") {
            Some("active") => Filter::Active,
            Some("completed") => Filter::Completed,
            _ => Filter::All,
        }
    }

    fn keeps(self, t: &Todo) -> bool {
        match self {
            Filter::All => true,
            Filter::Active => !t.completed,
            Filter::Completed => t.completed,
        }
    }

    fn query(self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::Active => "?filter=active",
            Filter::Completed => "?filter=completed",
        }
    }
}

/// The page of one list.
#[derive(Assigns)]
pub struct TodoPage {
    #[subscription_key]
    list_id: i64,
    /// Every todo of the list, ordered (kept so by the `sync` hook).
    #[watch(sync = Self::shape)]
    todos: Vec<Arc<Todo>>,
    /// The todos the filter shows.
    shown: Vec<Arc<Todo>>,
    filter: Filter,
    /// The todo being edited. UI state that no database holds: `#[keep]` brings it back when
    /// the page is mounted anew (after a deploy, or a connection lost for longer than the
    /// grace period).
    #[keep]
    editing: Option<i64>,
    /// What the user typed into the edited todo, when saving it was refused (kept on screen).
    #[keep]
    edit_draft: Option<String>,
    last_add: Option<(String, Instant)>,
    /// What the user typed into the new-todo input, when adding it was refused (kept on screen).
    #[keep]
    draft: Option<String>,
    /// Why the last add or save was refused; cleared by the next one that succeeds.
    error: Option<String>,
    adds: TokenBucket,
}

/// A token bucket: [`ADD_BURST`] tokens, refilled at [`ADD_REFILL_PER_SECOND`]; each add takes
/// one. A typing human never meets it; a script sending adds in a loop gets 2 per second.
#[derive(Debug, Clone)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn full(now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(ADD_BURST),
            at: now,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() * f64::from(ADD_REFILL_PER_SECOND);
        self.tokens = (self.tokens + refill).min(f64::from(ADD_BURST));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a title cannot be stored, as the message shown to the user.
fn title_too_long(title: &str) -> Option<String> {
    let n = title.chars().count();
    (n > MAX_TITLE_CHARS).then(|| {
        format!("That todo is too long: {n} characters, at most {MAX_TITLE_CHARS} are allowed.")
    })
}

async fn load_todos(db: &mut PgConnection, list_id: i64) -> Result<Vec<Arc<Todo>>, ViewError> {
    let rows: Vec<Todo> =
        sqlx::query_as("SELECT id, list_id, title, completed FROM todos WHERE list_id = $1")
            .bind(list_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(Arc::new).collect())
}

impl TodoPage {
    /// The `sync` hook: orders the todos (oldest first) and applies the filter. Runs after
    /// mount, after every committed change to the list, and after a reload.
    async fn shape(
        &mut self,
        mut todos: Vec<Arc<Todo>>,
        _ctx: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Todo>>, ViewError> {
        todos.sort_by_key(|t| t.id);
        self.shown = self.filtered(&todos);
        if let Some(id) = self.editing
            && !todos.iter().any(|t| t.id == id)
        {
            // Deleted elsewhere while being edited.
            self.editing = None;
        }
        Ok(todos)
    }

    fn filtered(&self, todos: &[Arc<Todo>]) -> Vec<Arc<Todo>> {
        todos
            .iter()
            .filter(|t| self.filter.keeps(t))
            .cloned()
            .collect()
    }

    fn pool<'a>(ctx: &'a Ctx<'_, Self>) -> &'a PgPool {
        ctx.state()
    }

    fn left(&self) -> usize {
        self.todos.iter().filter(|t| !t.completed).count()
    }

    fn row(&self, t: &Todo) -> Markup {
        let editing = self.editing == Some(t.id);
        html! {
            li class=[match (t.completed, editing) {
                (true, true) => Some("completed editing"),
                (true, false) => Some("completed"),
                (false, true) => Some("editing"),
                (false, false) => None,
            }] {
                div.view {
                    input.toggle type="checkbox" checked[t.completed] live-click="toggle" live-value-id=(t.id) aria-label="Toggle";
                    label live-dblclick="edit" live-value-id=(t.id) { (t.title) }
                    button.destroy live-click="destroy" live-value-id=(t.id) aria-label="Delete" {}
                }
                @if editing {
                    input.edit value=(self.edit_draft.as_deref().unwrap_or(&t.title)) autofocus
                        live-keydown="save" live-key="Enter" live-keydown-escape="cancel"
                        live-blur="save" live-value-id=(t.id) aria-label="Edit";
                }
            }
        }
    }

    /// An add that writes nothing: the message is shown and the typed text stays in the input.
    fn refuse_add(&mut self, typed: &str, message: String) {
        self.draft = Some(typed.to_string());
        self.error = Some(message);
    }

    fn filter_link(&self, f: Filter, label: &str) -> Markup {
        html! {
            li { a class=[(self.filter == f).then_some("selected")]
                   href=(format!("/lists/{}{}", self.list_id, f.query())) live-patch { (label) } }
        }
    }
}

impl LiveView for TodoPage {
    type State = PgPool;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let list_id: i64 = ctx.params().parse("id").map_err(|_| ViewError::NotFound)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lists WHERE id = $1)")
            .bind(list_id)
            .fetch_one(ctx.db().await?)
            .await?;
        if !exists {
            return Err(ViewError::NotFound);
        }
        let todos = load_todos(ctx.db().await?, list_id).await?;
        let filter = Filter::from_params(ctx.params());
        Ok(TodoPage {
            list_id,
            todos,
            shown: Vec::new(),
            filter,
            editing: None,
            edit_draft: None,
            last_add: None,
            draft: None,
            error: None,
            adds: TokenBucket::full(Instant::now()),
        })
    }

    async fn reload(&mut self, ctx: &mut Mount<'_, Self>) -> Result<(), ViewError> {
        // Only the rows: the filter and the todo being edited stay.
        self.todos = load_todos(ctx.db().await?, self.list_id).await?;
        Ok(())
    }

    fn title(&self) -> Option<String> {
        Some(match self.left() {
            0 => "todos".to_string(),
            n => format!("todos ({n} left)"),
        })
    }

    fn render(&self) -> Markup {
        let left = self.left();
        let any_completed = self.todos.iter().any(|t| t.completed);
        html! {
            section.todoapp {
                header.header {
                    h1 { "todos" }
                    // Above the input: the toggle-all chevron is drawn over the input's left
                    // end, just above the list.
                    @if let Some(e) = &self.error {
                        p.error role="alert" { (e) }
                    }
                    input.new-todo placeholder="What needs to be done?" autofocus autocomplete="off"
                        value=[self.draft.as_deref()]
                        live-keydown="add" live-key="Enter" aria-label="New todo";
                }
                @if !self.todos.is_empty() {
                    section.main {
                        input #toggle-all .toggle-all type="checkbox" checked[left == 0] live-click="toggle_all";
                        label for="toggle-all" { "Mark all as complete" }
                        ul.todo-list {
                            (keyed("todos", &self.shown, |t| t.id)
                                .depends_on(|t| (self.editing == Some(t.id)).then_some(self.edit_draft.as_deref()))
                                .render(|t| self.row(t)))
                        }
                    }
                    footer.footer {
                        span.todo-count { strong { (left) } @if left == 1 { " item left" } @else { " items left" } }
                        ul.filters {
                            (self.filter_link(Filter::All, "All"))
                            (self.filter_link(Filter::Active, "Active"))
                            (self.filter_link(Filter::Completed, "Completed"))
                        }
                        @if any_completed {
                            button.clear-completed live-click="clear_completed" { "Clear completed" }
                        }
                    }
                }
            }
            footer.info {
                p { "Double-click to edit a todo" }
                p { "List " a href=(format!("/lists/{}", self.list_id)) { "#" (self.list_id) } }
                (new_list_form())
            }
        }
    }

    async fn handle_params(
        &mut self,
        params: &Params,
        _ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        self.filter = Filter::from_params(params);
        self.shown = self.filtered(&self.todos);
        Ok(())
    }

    async fn handle_event(
        &mut self,
        event: Event,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        let pool = Self::pool(ctx).clone();
        match event.name.as_str() {
            "add" => {
                let typed = event.get("value").unwrap_or("");
                let title = typed.trim().to_string();
                if title.is_empty() {
                    return Ok(());
                }
                if let Some(message) = title_too_long(&title) {
                    self.refuse_add(typed, message);
                    return Ok(());
                }
                // A double submit (the same title again within a second) adds it once.
                if let Some((last, at)) = &self.last_add
                    && *last == title
                    && at.elapsed() < Duration::from_secs(1)
                {
                    return Ok(());
                }
                if !self.adds.take(Instant::now()) {
                    self.refuse_add(
                        typed,
                        "Too many todos at once: wait a moment, then press Enter again.".into(),
                    );
                    return Ok(());
                }
                sqlx::query("INSERT INTO todos (list_id, title) VALUES ($1, $2)")
                    .bind(self.list_id)
                    .bind(&title)
                    .execute(&pool)
                    .await?;
                self.last_add = Some((title, Instant::now()));
                self.draft = None;
                self.error = None;
            }
            "toggle" => {
                let id: i64 = event.get_as("id")?;
                sqlx::query(
                    "UPDATE todos SET completed = NOT completed WHERE id = $1 AND list_id = $2",
                )
                .bind(id)
                .bind(self.list_id)
                .execute(&pool)
                .await?;
            }
            "toggle_all" => {
                let all_done = self.left() == 0;
                sqlx::query(
                    "UPDATE todos SET completed = $2 WHERE list_id = $1 AND completed <> $2",
                )
                .bind(self.list_id)
                .bind(!all_done)
                .execute(&pool)
                .await?;
            }
            "destroy" => {
                let id: i64 = event.get_as("id")?;
                sqlx::query("DELETE FROM todos WHERE id = $1 AND list_id = $2")
                    .bind(id)
                    .bind(self.list_id)
                    .execute(&pool)
                    .await?;
            }
            "edit" => {
                let id: i64 = event.get_as("id")?;
                if self.todos.iter().any(|t| t.id == id) {
                    self.editing = Some(id);
                    self.edit_draft = None;
                }
            }
            "save" => {
                let id: i64 = event.get_as("id")?;
                if self.editing != Some(id) {
                    // Already saved (Enter, then the blur of the removed input) or cancelled.
                    return Ok(());
                }
                let typed = event.get("value").unwrap_or("");
                let title = typed.trim().to_string();
                if let Some(message) = title_too_long(&title) {
                    // Nothing is written; the edit stays open with what was typed.
                    self.edit_draft = Some(typed.to_string());
                    self.error = Some(message);
                    return Ok(());
                }
                self.editing = None;
                self.edit_draft = None;
                self.error = None;
                if title.is_empty() {
                    sqlx::query("DELETE FROM todos WHERE id = $1 AND list_id = $2")
                        .bind(id)
                        .bind(self.list_id)
                        .execute(&pool)
                        .await?;
                } else {
                    // If another window deleted it meanwhile, this changes nothing.
                    sqlx::query("UPDATE todos SET title = $3 WHERE id = $1 AND list_id = $2")
                        .bind(id)
                        .bind(self.list_id)
                        .bind(&title)
                        .execute(&pool)
                        .await?;
                }
            }
            "cancel" => {
                self.editing = None;
                self.edit_draft = None;
            }
            "clear_completed" => {
                sqlx::query("DELETE FROM todos WHERE list_id = $1 AND completed")
                    .bind(self.list_id)
                    .execute(&pool)
                    .await?;
            }
            _ => return Err(ViewError::UnknownEvent(event.name)),
        }
        Ok(())
    }
}

/// The page layout: the stylesheet and the client script.
fn layout(page: Page<'_>) -> Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title.unwrap_or("todos")) }
                link rel="stylesheet" href="/todo.css";
                (page.head)
            }
            body { (page.body) }
        }
    }
}

/// The "new list" button: a POST form (creating a list is not a GET).
fn new_list_form() -> Markup {
    html! {
        form.new-list method="post" action="/new" {
            button type="submit" { "New list" }
        }
    }
}

/// State of the plain (non-live) routes.
#[derive(Clone)]
struct AppState {
    pool: PgPool,
    /// Origins besides the request's own that may post forms (the websocket's list too).
    allowed_origins: Arc<[String]>,
}

/// `/`: a start page with the "new list" button. It never redirects to an existing list:
/// whoever has a list's link may use it, so `/` must not hand links out.
async fn index() -> Response {
    let page = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "todos" }
                link rel="stylesheet" href="/todo.css";
            }
            body {
                main.start {
                    section.todoapp {
                        header.header { h1 { "todos" } }
                        (new_list_form())
                    }
                    footer.info {
                        p { "A list is open to whoever has its link, and links cannot be guessed:" }
                        p { "bookmark yours, or share it with the people who should see it." }
                    }
                }
            }
        }
    };
    Html(page.into_string()).into_response()
}

/// `POST /new`: creates a list and redirects to it, if the request comes from a page of this
/// app (see [`check_same_origin`]).
async fn new_list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(why) = check_same_origin(&headers, &app.allowed_origins) {
        tracing::warn!(
            origin = ?headers.get(header::ORIGIN),
            host = ?headers.get(header::HOST),
            "POST /new refused: {why}"
        );
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    match create_list(&app.pool).await {
        Ok(id) => Redirect::to(&format!("/lists/{id}")).into_response(),
        Err(e) => server_error(e),
    }
}

/// Inserts a list. Its id is random (the column default, see `migrations/0002`): on the rare
/// collision with an existing id the insert is tried again.
async fn create_list(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sqlx::query_scalar("INSERT INTO lists DEFAULT VALUES RETURNING id")
            .fetch_one(pool)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 3 => continue,
            result => return result,
        }
    }
}

/// The CSRF check of a state-changing request: its `Origin` must be this server (`http` or
/// `https` with the request's `Host`) or one of `allowed`. Without `Origin` (older browsers,
/// some same-origin requests) only `Sec-Fetch-Site: same-origin` is accepted; a request with
/// neither is refused, so a non-browser client has to send an `Origin`.
/// The origins besides the request's own that may post the app's forms: the websocket's
/// `allowed_origins`, and the origin of `public_url` (the address users reach the app at,
/// behind a proxy whose `Host` is another).
fn form_origins(config: &LiveConfig) -> Vec<String> {
    let mut origins = config.allowed_origins.clone();
    if let Some(url) = &config.public_url
        && let Some((scheme, rest)) = url.split_once("://")
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if !authority.is_empty() {
            origins.push(format!("{}://{authority}", scheme.to_ascii_lowercase()));
        }
    }
    origins
}

fn check_same_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), &'static str> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
        return match site {
            Some(b"same-origin") => Ok(()),
            _ => Err("Refused: this request does not say which site it comes from."),
        };
    };
    let origin = origin.to_str().unwrap_or("");
    if allowed.iter().any(|o| o == origin) {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ours = match origin.split_once("://") {
        Some((scheme, authority)) => {
            (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
                && !host.is_empty()
                && authority.eq_ignore_ascii_case(host)
        }
        None => false,
    };
    if ours {
        Ok(())
    } else {
        Err("Refused: this form was sent from another site.")
    }
}

fn server_error(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "database error");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is not reachable right now; try again in a moment.",
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        [CSS, APP_CSS].concat(),
    )
        .into_response()
}

/// How to run the app.
#[derive(Debug, Clone)]
pub struct TodoConfig {
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
pub enum TodoError {
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
pub async fn app(config: TodoConfig) -> Result<(Router, Live<PgPool>), TodoError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&config.database_url)
        .await
        .map_err(TodoError::Connect)?;
    sqlx::migrate!("../../migrations").run(&pool).await?;
    let state = AppState {
        pool: pool.clone(),
        allowed_origins: form_origins(&config.live).into(),
    };
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
        .route("/", get(index))
        // Only POST: a GET of /new is answered 405 and creates nothing.
        .route("/new", post(new_list))
        .route("/todo.css", get(stylesheet))
        .with_state(state)
        .live_view::<TodoPage>("/lists/{id}", &live)
        .merge(live.router())
        .merge(live.health_route("/live/health"));
    live.listen().await?;
    Ok((router, live))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_a_burst_then_its_refill_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(t0);
        let burst = (0..25).filter(|_| b.take(t0)).count();
        assert_eq!(burst, ADD_BURST as usize);
        assert!(!b.take(t0 + Duration::from_millis(400)), "0.8 of a token");
        assert!(
            b.take(t0 + Duration::from_millis(500)),
            "one token after 0.5 s"
        );
        assert!(!b.take(t0 + Duration::from_millis(500)));
        // A long pause refills up to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            (0..25).filter(|_| b.take(later)).count(),
            ADD_BURST as usize
        );
    }

    #[test]
    fn titles_are_counted_in_characters() {
        assert_eq!(title_too_long(&"😀".repeat(MAX_TITLE_CHARS)), None);
        let message = title_too_long(&"😀".repeat(MAX_TITLE_CHARS + 1));
        assert_eq!(
            message.as_deref(),
            Some("That todo is too long: 1001 characters, at most 1000 are allowed.")
        );
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, axum::http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_check() {
        let ok = |pairs: &[(&'static str, &'static str)]| check_same_origin(&headers(pairs), &[]);
        let host = ("host", "todo.example:3000");
        assert!(ok(&[host, ("origin", "http://todo.example:3000")]).is_ok());
        assert!(ok(&[host, ("origin", "HTTPS://Todo.Example:3000")]).is_ok());
        assert!(ok(&[host, ("sec-fetch-site", "same-origin")]).is_ok());
        for refused in [
            vec![host],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://todo.example")],
            vec![host, ("origin", "http://todo.example:3000/")],
            vec![host, ("origin", "ws://todo.example:3000")],
            vec![
                host,
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            vec![("origin", "http://todo.example:3000")],
            vec![("host", ""), ("origin", "http://")],
        ] {
            assert!(ok(&refused).is_err(), "{refused:?}");
        }
        let allowed = ["https://app.example".to_string()];
        let h = headers(&[host, ("origin", "https://app.example")]);
        assert!(check_same_origin(&h, &allowed).is_ok());
    }

    /// Behind a proxy the `Host` is the app's own address, not what the browser shows: the
    /// origin of `public_url` may post the forms too (it used to be refused).
    #[test]
    fn the_public_url_may_post_forms() {
        let mut config = LiveConfig::new(vec![7u8; 32]);
        config.public_url = Some("HTTPS://todo.example/app?x=1".into());
        let allowed = form_origins(&config);
        assert_eq!(allowed, ["https://todo.example"]);
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://todo.example"),
        ]);
        assert!(check_same_origin(&h, &allowed).is_ok());
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check_same_origin(&h, &allowed).is_err());
        config.public_url = None;
        assert!(form_origins(&config).is_empty());
    }
}
