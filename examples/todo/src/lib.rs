//! TodoMVC on live-core.
//!
//! Every handler only writes to Postgres. What the user sees comes back through the replication
//! listener into the watched assign `todos` (`#[derive(Watch)]` on [`Todo`], subscription key
//! = the list id); the `sync` hook orders the todos and applies the Active/Completed filter.
//! Two windows on one list see each other's changes, and so does a row written with `psql`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use live_core::{
    Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, Page, Params, RouterExt,
    SyncConfig, SyncCtx, ViewError, Watch, html, keyed,
};
use sqlx::{PgConnection, PgPool};

/// The stylesheet (written for this app, in `assets/`).
const CSS: &str = include_str!("../../../assets/todo.css");

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
    editing: Option<i64>,
    last_add: Option<(String, Instant)>,
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
                    input.edit value=(t.title) autofocus
                        live-keydown="save" live-key="Enter" live-keydown-escape="cancel"
                        live-blur="save" live-value-id=(t.id) aria-label="Edit";
                }
            }
        }
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
            last_add: None,
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
                    input.new-todo placeholder="What needs to be done?" autofocus autocomplete="off"
                        live-keydown="add" live-key="Enter" aria-label="New todo";
                }
                @if !self.todos.is_empty() {
                    section.main {
                        input #toggle-all .toggle-all type="checkbox" checked[left == 0] live-click="toggle_all";
                        label for="toggle-all" { "Mark all as complete" }
                        ul.todo-list {
                            (keyed("todos", &self.shown, |t| t.id)
                                .depends_on(|t| self.editing == Some(t.id))
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
                p { "List " a href=(format!("/lists/{}", self.list_id)) { "#" (self.list_id) } " · " a href="/new" { "new list" } }
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
                let title = event.get("value").unwrap_or("").trim().to_string();
                if title.is_empty() {
                    return Ok(());
                }
                // A double submit (the same title again within a second) adds it once.
                if let Some((last, at)) = &self.last_add
                    && *last == title
                    && at.elapsed() < Duration::from_secs(1)
                {
                    return Ok(());
                }
                sqlx::query("INSERT INTO todos (list_id, title) VALUES ($1, $2)")
                    .bind(self.list_id)
                    .bind(&title)
                    .execute(&pool)
                    .await?;
                self.last_add = Some((title, Instant::now()));
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
                }
            }
            "save" => {
                let id: i64 = event.get_as("id")?;
                if self.editing != Some(id) {
                    // Already saved (Enter, then the blur of the removed input) or cancelled.
                    return Ok(());
                }
                self.editing = None;
                let title = event.get("value").unwrap_or("").trim().to_string();
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
            "cancel" => self.editing = None,
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

/// `/`: the oldest list, created if there is none.
async fn index(State(pool): State<PgPool>) -> Response {
    let existing: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT id FROM lists ORDER BY id LIMIT 1")
            .fetch_optional(&pool)
            .await;
    match existing {
        Ok(Some(id)) => Redirect::to(&format!("/lists/{id}")).into_response(),
        Ok(None) => new_list(State(pool)).await,
        Err(e) => server_error(e),
    }
}

/// `/new`: a new list.
async fn new_list(State(pool): State<PgPool>) -> Response {
    match sqlx::query_scalar::<_, i64>("INSERT INTO lists DEFAULT VALUES RETURNING id")
        .fetch_one(&pool)
        .await
    {
        Ok(id) => Redirect::to(&format!("/lists/{id}")).into_response(),
        Err(e) => server_error(e),
    }
}

fn server_error(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "database error");
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "The database is not reachable right now; try again in a moment.",
    )
        .into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// How to run the app.
#[derive(Debug, Clone)]
pub struct TodoConfig {
    /// The database (needs `wal_level = logical` and a user with the REPLICATION attribute).
    pub database_url: String,
    /// The replication slot name.
    pub slot: String,
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
    let live = Live::builder(pool.clone())
        .config(config.live)
        .pool(pool.clone())
        .sync(SyncConfig::new(&config.database_url).slot(config.slot))
        .layout(layout)
        .build()?;
    let router = Router::new()
        .route("/", get(index))
        .route("/new", get(new_list))
        .route("/todo.css", get(stylesheet))
        .with_state(pool)
        .live_view::<TodoPage>("/lists/{id}", &live)
        .merge(live.router());
    live.listen().await?;
    Ok((router, live))
}
