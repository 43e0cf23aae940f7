//! What handlers get: [`Mount`] (mount and reload), [`Ctx`] (events, messages, params),
//! [`SyncCtx`] (sync hooks), and [`ViewHandle`] (messages from other tasks).

use std::time::Duration;

use serde::Serialize;
use sqlx::PgConnection;
use tokio::sync::mpsc;

use super::{DbSlot, LiveView, Params, ViewError};
use crate::token::Session;

/// What `mount` (and `reload`) gets.
///
/// ```
/// use live_core::{Assigns, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Invoice { id: i64, total_cents: i64 }
///
/// impl LiveView for Invoice {
///     type State = ();
///     type Message = ();
///
///     async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
///         let id: i64 = ctx.params().parse("id")?; // the route is `/invoices/{id}`
///         let user_id: i64 = ctx.session().get("user_id").ok_or(ViewError::Unauthorized)?;
///         let total_cents: i64 =
///             sqlx::query_scalar("SELECT total_cents FROM invoices WHERE id = $1 AND owner_id = $2")
///                 .bind(id)
///                 .bind(user_id)
///                 .fetch_optional(ctx.db().await?) // the mount's snapshot
///                 .await?
///                 .ok_or(ViewError::NotFound)?;
///         Ok(Invoice { id, total_cents })
///     }
///
///     fn render(&self) -> Markup {
///         html! { h1 { "Invoice " (self.id) } p { (self.total_cents) " cents" } }
///     }
/// }
/// ```
pub struct Mount<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
    pub(crate) params: &'a Params,
    pub(crate) session: &'a Session,
    pub(crate) connected: bool,
    pub(crate) db: &'a mut DbSlot,
}

impl<V: LiveView> std::fmt::Debug for Mount<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("view", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

impl<V: LiveView> Mount<'_, V> {
    /// The application state.
    pub fn state(&self) -> &V::State {
        self.state
    }

    /// The URL parameters.
    pub fn params(&self) -> &Params {
        self.params
    }

    /// The server-side session.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// Whether this is the connected mount (websocket) rather than the first render (GET).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A connection inside this mount's transaction (`REPEATABLE READ`: every query sees the
    /// same snapshot). Load watched rows through it.
    pub async fn db(&mut self) -> Result<&mut PgConnection, ViewError> {
        self.db.begin().await
    }
}

/// Something a handler asked the browser to do.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    Patch {
        to: String,
        replace: bool,
    },
    Redirect {
        to: String,
    },
    Event {
        name: String,
        payload: serde_json::Value,
    },
}

/// What event, message and params handlers get.
///
/// ```
/// use std::time::Duration;
/// use live_core::{Assigns, Ctx, Event, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Editor { saved: bool }
///
/// impl LiveView for Editor {
///     type State = ();
///     type Message = &'static str;
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Editor { saved: false }) }
/// #   fn render(&self) -> Markup { html! { @if self.saved { p { "Saved" } } } }
///
///     async fn handle_event(&mut self, e: Event, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         match e.name.as_str() {
///             "save" => {
///                 self.saved = true;
///                 ctx.push_event("saved", serde_json::json!({ "ok": true })); // to client hooks
///                 ctx.send_after(Duration::from_secs(3), "hide"); // to handle_info, later
///             }
///             "close" => ctx.redirect("/"),
///             _ => return Err(ViewError::UnknownEvent(e.name)),
///         }
///         Ok(())
///     }
///
///     async fn handle_info(&mut self, _hide: &'static str, _ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         self.saved = false;
///         Ok(())
///     }
/// }
/// ```
pub struct Ctx<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
    pub(crate) session: &'a Session,
    pub(crate) info: &'a mut InfoSlot<V::Message>,
    pub(crate) pushes: &'a mut Vec<Push>,
    /// The node's topics (`None` in the first, static render: nothing to subscribe).
    pub(crate) topics: Option<&'a crate::pubsub::Topics>,
}

impl<V: LiveView> std::fmt::Debug for Ctx<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("view", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

impl<'a, V: LiveView> Ctx<'a, V> {
    pub(crate) fn new(
        state: &'a V::State,
        session: &'a Session,
        info: &'a mut InfoSlot<V::Message>,
        pushes: &'a mut Vec<Push>,
        topics: Option<&'a crate::pubsub::Topics>,
    ) -> Self {
        Ctx {
            state,
            session,
            info,
            pushes,
            topics,
        }
    }
}

/// A view's `handle_info` channel, created the first time a handler asks for it (most views
/// never do, and an idle view should cost little).
pub(crate) struct InfoSlot<M> {
    handle: Option<ViewHandle<M>>,
    pub(crate) rx: Option<mpsc::UnboundedReceiver<Box<M>>>,
    /// Topics this view subscribed to (once each).
    topics: Vec<String>,
}

impl<M: Send + 'static> InfoSlot<M> {
    pub(crate) fn new() -> Self {
        InfoSlot {
            handle: None,
            rx: None,
            topics: Vec::new(),
        }
    }

    fn handle(&mut self) -> ViewHandle<M> {
        if let Some(h) = &self.handle {
            return h.clone();
        }
        let (h, rx) = ViewHandle::new();
        self.handle = Some(h.clone());
        self.rx = Some(rx);
        h
    }
}

impl<V: LiveView> Ctx<'_, V> {
    /// The application state.
    pub fn state(&self) -> &V::State {
        self.state
    }

    /// The server-side session.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// A handle to send this view messages from other tasks (`handle_info`).
    pub fn handle(&mut self) -> ViewHandle<V::Message> {
        self.info.handle()
    }

    /// Sends this view `msg` after `delay` (a timer).
    pub fn send_after(&mut self, delay: Duration, msg: V::Message) {
        self.info.handle().send_after(delay, msg);
    }

    /// Subscribes this view to `topic`: every [`Live::broadcast`](crate::Live::broadcast) to
    /// it, from this node or (with a bus) any other, reaches `handle_info` as a
    /// `V::Message` decoded from JSON. Subscribe in `handle_params` (it runs after every
    /// connected mount); in the first, static render it does nothing. A topic is 1 to 256
    /// printable ASCII characters without spaces (`room:lobby`); topics are server-side
    /// names: never build one from what a client sent without checking it.
    ///
    /// ```
    /// # use live_core::{Assigns, Ctx, LiveView, Markup, Mount, Params, ViewError, html};
    /// #[derive(Assigns)]
    /// struct Room { last: Option<String> }
    /// impl LiveView for Room {
    ///     type State = ();
    ///     type Message = String;
    ///     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Room { last: None }) }
    ///     async fn handle_params(&mut self, _: &Params, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
    ///         ctx.subscribe("room:lobby");
    ///         Ok(())
    ///     }
    ///     async fn handle_info(&mut self, msg: String, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
    ///         self.last = Some(msg);
    ///         Ok(())
    ///     }
    ///     fn render(&self) -> Markup { html! { p { (self.last.as_deref().unwrap_or("")) } } }
    /// }
    /// ```
    pub fn subscribe(&mut self, topic: impl Into<String>)
    where
        V::Message: serde::de::DeserializeOwned,
    {
        let topic = topic.into();
        let Some(topics) = self.topics else { return };
        if !crate::pubsub::valid_topic(&topic) {
            tracing::error!(topic = %topic, "not a topic (1 to 256 printable ASCII characters, no spaces); not subscribed");
            return;
        }
        if self.info.topics.contains(&topic) {
            return;
        }
        let handle = self.info.handle();
        topics.subscribe(&topic, deliver_to(handle, &topic));
        self.info.topics.push(topic);
    }

    /// Changes the URL without a reload (history push); `handle_params` runs with it. The
    /// target must be a path of this site (`/lists/2?filter=active`); another origin, or a
    /// scheme such as `javascript:`, is refused (logged, not sent).
    pub fn push_patch(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Patch {
            to: to.into(),
            replace: false,
        });
    }

    /// Like `push_patch`, replacing the current history entry.
    pub fn replace_patch(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Patch {
            to: to.into(),
            replace: true,
        });
    }

    /// Sends the browser to another page of this site (a path such as `/lists/2`; another
    /// origin is refused, logged and not sent).
    pub fn redirect(&mut self, to: impl Into<String>) {
        self.pushes.push(Push::Redirect { to: to.into() });
    }

    /// Sends an event to client hooks (`handleEvent`) and `window` (`live:<name>`).
    pub fn push_event(&mut self, name: impl Into<String>, payload: impl Serialize) {
        self.pushes.push(Push::Event {
            name: name.into(),
            payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
        });
    }
}

/// What `sync` hooks get.
///
/// ```
/// use std::sync::Arc;
/// use live_core::{Assigns, LiveView, Markup, Mount, SyncCtx, ViewError, Watch, html};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, done: bool }
///
/// #[derive(Clone)]
/// struct App { hide_done: bool }
///
/// #[derive(Assigns)]
/// struct List {
///     #[subscription_key]
///     list_id: i64,
///     #[watch(sync = Self::visible)]
///     todos: Vec<Arc<Todo>>,
/// }
///
/// impl List {
///     async fn visible(&mut self, mut todos: Vec<Arc<Todo>>, ctx: &mut SyncCtx<'_, Self>)
///         -> Result<Vec<Arc<Todo>>, ViewError> {
///         if ctx.state().hide_done {
///             todos.retain(|t| !t.done);
///         }
///         todos.sort_by_key(|t| t.id);
///         Ok(todos)
///     }
/// }
/// # impl LiveView for List {
/// #     type State = App; type Message = ();
/// #     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
/// #         Ok(List { list_id: 1, todos: Vec::new() })
/// #     }
/// #     fn render(&self) -> Markup { html! { (self.list_id) (self.todos.len()) } }
/// # }
/// ```
pub struct SyncCtx<'a, V: LiveView> {
    pub(crate) state: &'a V::State,
}

impl<V: LiveView> std::fmt::Debug for SyncCtx<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncCtx")
            .field("view", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

impl<V: LiveView> SyncCtx<'_, V> {
    /// A context for one hook call (derive plumbing).
    #[doc(hidden)]
    pub fn reborrow(&self) -> SyncCtx<'_, V> {
        SyncCtx { state: self.state }
    }

    /// The application state (e.g. a pool to preload associations).
    pub fn state(&self) -> &V::State {
        self.state
    }
}

/// Sends messages to a connected view (its `handle_info`), from any task.
///
/// ```
/// use std::time::Duration;
/// use live_core::{Assigns, Ctx, Event, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Export { progress: u8 }
///
/// impl LiveView for Export {
///     type State = ();
///     type Message = u8;
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Export { progress: 0 }) }
/// #   fn render(&self) -> Markup { html! { progress max="100" value=(self.progress) {} } }
///
///     async fn handle_event(&mut self, _: Event, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         let handle = ctx.handle();
///         tokio::spawn(async move {
///             for percent in [25, 50, 75, 100] {
///                 tokio::time::sleep(Duration::from_millis(200)).await; // some work
///                 if handle.send(percent).is_err() {
///                     return; // the view is gone: stop working for it
///                 }
///             }
///         });
///         Ok(())
///     }
///
///     async fn handle_info(&mut self, percent: u8, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         self.progress = percent;
///         Ok(())
///     }
/// }
/// ```
pub struct ViewHandle<M> {
    tx: mpsc::UnboundedSender<Box<M>>,
}

impl<M> std::fmt::Debug for ViewHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewHandle")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl<M> Clone for ViewHandle<M> {
    fn clone(&self) -> Self {
        ViewHandle {
            tx: self.tx.clone(),
        }
    }
}

/// The view is gone (disconnected or crashed).
///
/// ```
/// use live_core::{ViewGone, ViewHandle};
///
/// /// Tells every view of a room about a new message, and forgets the views that are gone.
/// fn notify(room: &mut Vec<ViewHandle<String>>, text: &str) {
///     room.retain(|view| match view.send(text.to_string()) {
///         Ok(()) => true,
///         Err(ViewGone) => false,
///     });
/// }
/// # notify(&mut Vec::new(), "hello");
/// ```
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the view is gone")]
pub struct ViewGone;

impl<M: Send + 'static> ViewHandle<M> {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Box<M>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ViewHandle { tx }, rx)
    }

    /// Sends a message.
    pub fn send(&self, msg: M) -> Result<(), ViewGone> {
        self.tx.send(Box::new(msg)).map_err(|_| ViewGone)
    }

    /// Sends a message after `delay`.
    pub fn send_after(&self, delay: Duration, msg: M) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Box::new(msg));
        });
    }

    /// Whether the view is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A delivery to one view: the JSON decodes into its message type and goes to its
/// `handle_info`. An empty payload only asks whether the view is still there.
pub(crate) fn deliver_to<M>(handle: ViewHandle<M>, topic: &str) -> crate::pubsub::Deliver
where
    M: serde::de::DeserializeOwned + Send + 'static,
{
    let topic = topic.to_string();
    Box::new(move |bytes: &[u8]| {
        if bytes.is_empty() {
            return !handle.is_closed();
        }
        match serde_json::from_slice::<M>(bytes) {
            Ok(msg) => handle.send(msg).is_ok(),
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "a broadcast does not decode into the view's message type; dropped for this view");
                !handle.is_closed()
            }
        }
    })
}
