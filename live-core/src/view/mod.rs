//! The [`LiveView`] trait and its [`Assigns`], and what handlers get: [`Mount`], [`Ctx`],
//! [`SyncCtx`], [`Event`], [`Params`], [`ViewError`].

mod ctx;
mod db;
mod error;
mod event;
mod keep;
mod params;

use std::future::Future;

use maud::Markup;

#[cfg(test)]
pub(crate) use ctx::deliver_to;
pub use ctx::{Ctx, Mount, SyncCtx, ViewGone, ViewHandle};
pub(crate) use ctx::{InfoSlot, Push};
pub(crate) use db::{DbSlot, is_stale_statement};
pub use error::ViewError;
pub use event::{Event, EventKind};
#[doc(hidden)]
pub use keep::{KeptMap, keep_field, kept_object, restored_field};
pub use params::Params;
pub(crate) use params::{is_local_url, join_params, params_for};

use crate::row::{HeldRows, Key, WatchTypes};
use crate::watch::{ApplyError, ChangeBatch, Scopes};

/// A live view: assigns (the struct's fields), a `render`, and handlers.
///
/// The GET of a page mounts the view (disconnected) and renders full HTML; the browser then
/// joins over the websocket, the view is mounted again (connected) and lives in its own tokio
/// task, which handles events, messages and database changes one at a time and sends only
/// diffs. A panic or error in one view ends that view only.
///
/// ```
/// use live_core::{Assigns, Ctx, Event, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Counter { count: i64 }
///
/// impl LiveView for Counter {
///     type State = ();
///     type Message = ();
///
///     async fn mount(_ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
///         Ok(Counter { count: 0 })
///     }
///
///     fn render(&self) -> Markup {
///         html! { button live-click="inc" { "Clicked " (self.count) " times" } }
///     }
///
///     async fn handle_event(&mut self, event: Event, _ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         match event.name.as_str() {
///             "inc" => self.count += 1,
///             _ => return Err(ViewError::UnknownEvent(event.name)),
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait LiveView: Assigns {
    /// Shared application state (a `PgPool`, configuration), as axum's `State`.
    type State: Clone + Send + Sync + 'static;
    /// Messages from the server side (`Ctx::handle`, `Ctx::send_after`), for `handle_info`.
    type Message: Send + 'static;

    /// Builds the assigns. Runs on the GET (disconnected) and again on the websocket join
    /// (connected). Load watched rows through [`Mount::db`]: its snapshot is the fence that
    /// makes sure no change committed meanwhile is lost or applied twice.
    fn mount(ctx: &mut Mount<'_, Self>) -> impl Future<Output = Result<Self, ViewError>> + Send;

    /// Renders the view (maud). Render lists with [`keyed`](crate::keyed).
    fn render(&self) -> Markup;

    /// The page title; sent to the browser when it changes.
    fn title(&self) -> Option<String> {
        None
    }

    /// Handles an event from the browser (a `live-click`, `live-submit`, …).
    fn handle_event(
        &mut self,
        event: Event,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async move { Err(ViewError::UnknownEvent(event.name)) }
    }

    /// Handles a message sent to this view from the server side.
    fn handle_info(
        &mut self,
        _msg: Self::Message,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async { Ok(()) }
    }

    /// Handles the URL: after mount, and after each URL patch (a `live-patch` link, back and
    /// forward, or [`Ctx::push_patch`]).
    fn handle_params(
        &mut self,
        _params: &Params,
        _ctx: &mut Ctx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async { Ok(()) }
    }

    /// Reloads the watched assigns from the database: after the view fell behind, a row did
    /// not decode, a watched table was truncated or altered, or the subscription key changed.
    /// The default mounts the view again (which resets other assigns too); override it to
    /// reload only the rows.
    fn reload(
        &mut self,
        ctx: &mut Mount<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send {
        async move {
            *self = Self::mount(ctx).await?;
            Ok(())
        }
    }
}

/// The assigns of a view: derive it with `#[derive(Assigns)]` on the view struct.
///
/// Mark the field holding the subscription key with `#[subscription_key]` and the fields
/// holding watched rows with `#[watch]`, optionally with a `sync` hook that reshapes the list
/// after each change (filter, sort, preload) and returns the new value of the assign:
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, SyncCtx, LiveView, ViewError, Watch};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String, completed: bool }
///
/// #[derive(Assigns)]
/// struct TodoPage {
///     #[subscription_key]
///     list_id: i64,
///     #[watch(sync = Self::sort_todos)]
///     todos: Vec<Arc<Todo>>,
///     editing: Option<i64>,
/// }
///
/// impl TodoPage {
///     async fn sort_todos(&mut self, mut todos: Vec<Arc<Todo>>, _ctx: &mut SyncCtx<'_, Self>)
///         -> Result<Vec<Arc<Todo>>, ViewError> {
///         todos.sort_by_key(|t| t.id);
///         Ok(todos)
///     }
/// }
/// # impl LiveView for TodoPage {
/// #     type State = (); type Message = ();
/// #     async fn mount(_: &mut live_core::Mount<'_, Self>) -> Result<Self, ViewError> {
/// #         Ok(TodoPage { list_id: 1, todos: Vec::new(), editing: None })
/// #     }
/// #     fn render(&self) -> live_core::Markup { live_core::html! { (self.todos.len()) (self.editing.unwrap_or(0)) } }
/// # }
/// ```
///
/// Hooks run after mount, after every change to their assign and after a reload. A view with no
/// watched assigns derives `Assigns` with no attributes.
///
/// # Scopes
///
/// Each watched assign has a **scope**: which rows of its type it receives. By default it is
/// the row type's `subscription_key` column, matched against the view's `#[subscription_key]`
/// field; the two must have the same name, or the derive refuses to compile and asks for a
/// stated scope. A scope can be stated on the assign, from values the server holds (other
/// assigns, the mount, the session — never the client):
///
/// - `#[watch(by = "assignee_id", key = self.user_id)]`: rows whose column equals one value
///   (a type's subscription key is only a default: one `Card` type can be scoped by board on one
///   page and by assignee on another);
/// - `#[watch(by = "id", keys = self.assignee_ids())]`: rows whose column is in a **key set**,
///   computed from the assigns and recomputed after every change. When the set changes, the
///   view reloads through the same snapshot fence as a mount, so rows entering it arrive and
///   rows leaving it go. That is how joined rows stay live: the users of a board's cards, the
///   boards of a user's cards;
/// - `#[watch(all, max_rows = 500)]`: every row of a small table; more rows than `max_rows` at
///   mount or after a change is an error (logged; the view ends), never a silent slowdown;
/// - `filter = path` (a `fn(&Row) -> bool`), with any scope: a changed row that stops matching
///   leaves the assign (move out) and one that starts matching enters it (move in). Under the
///   default replica identity the row the view holds serves as the old row.
///
/// The column in `by` is checked against the row type at compile time. A view that changes the
/// value of its key at run time (an event that switches lists) reloads under the new scope.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, LiveView, Markup, Mount, ViewError, Watch, html};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "cards", subscription_key = "board_id")]
/// struct Card { id: i64, board_id: i64, assignee_id: Option<i64>, archived: bool }
/// impl Card { fn live(c: &Card) -> bool { !c.archived } }
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "users")] // no default scope: every assign states one
/// struct User { id: i64, name: String }
///
/// #[derive(Assigns)]
/// struct BoardPage {
///     #[subscription_key]
///     board_id: i64,
///     #[watch(filter = Card::live)]                     // by board_id, not archived
///     cards: Vec<Arc<Card>>,
///     #[watch(by = "id", keys = self.cards.iter().filter_map(|c| c.assignee_id))]
///     users: Vec<Arc<User>>,
/// }
///
/// #[derive(Assigns)]
/// struct MyCards {
///     user_id: i64,
///     #[watch(by = "assignee_id", key = self.user_id)]
///     cards: Vec<Arc<Card>>,
/// }
/// # impl LiveView for BoardPage { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Err(ViewError::NotFound) }
/// #   fn render(&self) -> Markup { html! { (self.board_id) (self.cards.len()) (self.users.len()) } } }
/// # impl LiveView for MyCards { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Err(ViewError::NotFound) }
/// #   fn render(&self) -> Markup { html! { (self.user_id) (self.cards.len()) } } }
/// ```
pub trait Assigns: Sized + Send + 'static {
    #[doc(hidden)]
    /// The `Watch` types of the watched assigns.
    fn watch_types(_types: &mut WatchTypes) {}

    #[doc(hidden)]
    /// The current subscription key (`None`: no rows are watched right now).
    fn subscription_key(&self) -> Option<Key> {
        None
    }

    #[doc(hidden)]
    /// The scopes of the watched assigns right now (which rows of which type each receives).
    fn watch_scopes(&self, _out: &mut Scopes) {}

    #[doc(hidden)]
    /// Every watched row held.
    fn held_rows(&self, _out: &mut HeldRows) {}

    /// Why the assigns are over a declared row cap (`#[watch(all, max_rows = n)]`), if they are.
    #[doc(hidden)]
    fn over_cap(&self) -> Option<String> {
        None
    }

    /// Replaces the watched rows by the node's shared versions (see `WatchedAssign::share`).
    #[doc(hidden)]
    fn share_rows(&mut self) {}

    /// The `#[keep]` assigns as a JSON object (`None`: the view keeps none).
    #[doc(hidden)]
    fn kept(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores the `#[keep]` assigns from what [`Assigns::kept`] gave (all or none: a field
    /// that does not decode leaves every assign as the mount set it).
    #[doc(hidden)]
    fn restore_kept(&mut self, _kept: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    #[doc(hidden)]
    /// Applies committed changes to the watched assigns and runs the `sync` hooks of those
    /// that changed. True if anything changed.
    fn apply_changes(
        &mut self,
        _batch: &ChangeBatch,
        _ctx: &mut SyncCtx<'_, Self>,
    ) -> impl Future<Output = Result<bool, ApplyError>> + Send
    where
        Self: LiveView,
    {
        async { Ok(false) }
    }

    #[doc(hidden)]
    /// Runs every `sync` hook (after mount and reload).
    fn run_sync_hooks(
        &mut self,
        _ctx: &mut SyncCtx<'_, Self>,
    ) -> impl Future<Output = Result<(), ViewError>> + Send
    where
        Self: LiveView,
    {
        async { Ok(()) }
    }
}

/// A `sync` hook of an assign of type `A` in view `V`: `async fn(&mut self, value: A, ctx:
/// &mut SyncCtx<'_, Self>) -> Result<A, ViewError>` (derive plumbing: `#[derive(Assigns)]`
/// calls each hook through it, so a hook of another shape is an error at the hook that names
/// this signature, and the hook's future is known to be `Send`).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `sync` hook for an assign of type `{A}`",
    label = "expected `async fn(&mut self, value: {A}, ctx: &mut SyncCtx<'_, Self>) -> Result<{A}, ViewError>`",
    note = "a sync hook gets the view, the assign's new value and a `&mut SyncCtx<'_, Self>`, and returns the value the assign keeps, e.g. `async fn sorted(&mut self, mut value: {A}, _ctx: &mut SyncCtx<'_, Self>) -> Result<{A}, ViewError>`"
)]
pub trait SyncHook<'a, 'b, V: LiveView, A>:
    Fn(&'a mut V, A, &'b mut SyncCtx<'b, V>) -> <Self as SyncHook<'a, 'b, V, A>>::Fut
{
    /// The hook's future.
    type Fut: Future<Output = Result<A, ViewError>> + Send;
}

impl<'a, 'b, V, A, F, Fut> SyncHook<'a, 'b, V, A> for F
where
    V: LiveView,
    F: Fn(&'a mut V, A, &'b mut SyncCtx<'b, V>) -> Fut,
    Fut: Future<Output = Result<A, ViewError>> + Send,
{
    type Fut = Fut;
}

/// Runs the `sync` hook `hook` of an assign of type `A` (derive plumbing).
#[doc(hidden)]
pub fn call_sync_hook<'a, 'b, V, A, F>(
    hook: F,
    view: &'a mut V,
    value: A,
    ctx: &'b mut SyncCtx<'b, V>,
) -> <F as SyncHook<'a, 'b, V, A>>::Fut
where
    V: LiveView,
    F: for<'x, 'y> SyncHook<'x, 'y, V, A>,
{
    hook(view, value, ctx)
}
