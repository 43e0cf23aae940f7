//! A browser-free test harness (the `testing` feature), in the spirit of
//! `Phoenix.LiveViewTest`: mount a view in-process, read its HTML, fire events at the element a
//! CSS selector picks (failing when that element has no such binding), and check the HTML after
//! the server's reply. The view runs exactly as a connected one — same task, same frames, same
//! diffs — and the harness applies the diffs to its copy of the HTML as the browser client
//! does, checking version, length and hash.
//!
//! ```
//! use live_core::{Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, ViewError, html};
//! use live_core::testing::TestView;
//!
//! #[derive(Assigns)]
//! struct Counter { n: i64 }
//! impl LiveView for Counter {
//!     type State = ();
//!     type Message = ();
//!     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Counter { n: 0 }) }
//!     fn render(&self) -> Markup { html! { button #inc live-click="inc" { (self.n) } } }
//!     async fn handle_event(&mut self, e: Event, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
//!         self.n += 1;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let live = Live::builder(()).config(LiveConfig::new(vec![1; 32])).build().unwrap();
//! let mut view = TestView::mount::<Counter>(&live, "/", "/").await.unwrap();
//! assert!(view.html().contains(">0</button>"));
//! view.click("#inc").await.unwrap();
//! assert!(view.html().contains(">1</button>"));
//! assert!(view.click("#missing").await.is_err());
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use scraper::{Html, Selector};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Live;
pub use crate::diff::client::{ClientModel, Mismatch};
pub use crate::postgres::LocalPostgres;
use crate::task::{JoinRequest, OutFrame, Outbound, Queued, ToView};
use crate::token::{Session, ViewToken};
use crate::view::params_for;
use crate::view::{Event, EventKind, LiveView};

/// Why a test step failed.
///
/// ```
/// use live_core::testing::{TestError, TestView};
/// use live_core::{Live, LiveConfig};
/// # use live_core::{Assigns, LiveView, Markup, Mount, ViewError, html};
/// # #[derive(Assigns)] struct Note;
/// # impl LiveView for Note { type State = (); type Message = ();
/// #   async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Note) }
/// #   fn render(&self) -> Markup { html! { p { "A note" } } } }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// let mut view = TestView::mount::<Note>(&live, "/", "/").await.unwrap();
/// assert!(matches!(view.click("#save").await, Err(TestError::NoElement(_))));
/// assert!(matches!(view.click("p").await, Err(TestError::NoBinding { .. }))); // no live-click
/// assert!(matches!(view.text("p["), Err(TestError::BadSelector(_))));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// No element matches the selector.
    #[error("no element matches {0:?}")]
    NoElement(String),
    /// The selector does not parse.
    #[error("bad selector {0:?}")]
    BadSelector(String),
    /// The element has no such binding.
    #[error("the element {selector:?} has no {binding} binding")]
    NoBinding {
        /// The selector.
        selector: String,
        /// The attribute looked for.
        binding: String,
    },
    /// The server answered with an error.
    #[error("the server replied with an error: {0}")]
    Reply(String),
    /// The view crashed.
    #[error("the view crashed: {0}")]
    Crashed(String),
    /// A diff did not apply.
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// Nothing arrived in time.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The view ended.
    #[error("the view is gone")]
    Gone,
}

/// A view mounted in-process, as a connected browser would see it.
///
/// ```
/// use live_core::testing::TestView;
/// use live_core::{Assigns, Ctx, Event, Live, LiveConfig, LiveView, Markup, Mount, ViewError, html};
///
/// #[derive(Assigns)]
/// struct Greeter { name: Option<String> }
///
/// impl LiveView for Greeter {
///     type State = ();
///     type Message = ();
///     async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> { Ok(Greeter { name: None }) }
///     fn render(&self) -> Markup {
///         html! {
///             form live-submit="greet" { input name="name"; button { "Go" } }
///             @if let Some(name) = &self.name { p.hello { "Hello, " (name) } }
///         }
///     }
///     async fn handle_event(&mut self, e: Event, _: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
///         self.name = Some(e.get_as("name")?);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// let mut view = TestView::mount::<Greeter>(&live, "/", "/").await.unwrap();
/// assert_eq!(view.count(".hello").unwrap(), 0);
/// view.submit("form", serde_json::json!({ "name": "Ada" })).await.unwrap();
/// assert_eq!(view.text(".hello").unwrap(), "Hello, Ada");
/// # }
/// ```
pub struct TestView {
    inbox: mpsc::Sender<Box<Queued>>,
    out: mpsc::Receiver<Box<OutFrame>>,
    model: ClientModel,
    title: Option<String>,
    pushes: Vec<(String, Value)>,
    next_ref: u64,
    timeout: Duration,
}

impl std::fmt::Debug for TestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestView")
            .field("html", &self.html())
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl TestView {
    /// Mounts view `V` (registered at route pattern `route`) for the URL `uri`, with an empty
    /// session.
    pub async fn mount<V: LiveView>(
        live: &Live<V::State>,
        route: &str,
        uri: &str,
    ) -> Result<Self, TestError> {
        Self::mount_with_session::<V>(live, route, uri, Session::default()).await
    }

    /// Mounts view `V` with a server session.
    pub async fn mount_with_session<V: LiveView>(
        live: &Live<V::State>,
        route: &str,
        uri: &str,
        session: Session,
    ) -> Result<Self, TestError> {
        live.register::<V>(route);
        let blank = ViewToken::new(
            route.to_string(),
            BTreeMap::new(),
            session.clone(),
            Duration::from_secs(60),
        );
        let params = params_for(route, &blank, uri);
        let token = ViewToken::new(
            route.to_string(),
            params
                .path_params()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            session,
            Duration::from_secs(60),
        );
        let (inbox_tx, inbox) = mpsc::channel(64);
        let (out_tx, out) = Outbound::new(1024, 64 << 20);
        let req = JoinRequest {
            topic: "lv:test".into(),
            join_ref: "1".into(),
            msg_ref: Some("1".into()),
            token,
            page: String::new(),
            url: uri.to_string(),
            inbox,
            out: out_tx,
            socket_mounts: Arc::new(tokio::sync::Semaphore::new(2)),
            keep: None,
        };
        live.views
            .spawn(&live.rt, req)
            .map_err(|route| TestError::Reply(format!("no view at {route}")))?;
        let mut view = TestView {
            inbox: inbox_tx,
            out,
            model: ClientModel::default(),
            title: None,
            pushes: Vec::new(),
            next_ref: 2,
            timeout: Duration::from_secs(10),
        };
        let reply = view.read_until_reply("1").await?;
        let rendered = reply
            .get("rendered")
            .ok_or_else(|| TestError::Reply("join reply without rendered".into()))?;
        view.model = ClientModel::from_rendered(rendered, 1)?;
        view.title = reply
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(view)
    }

    /// Sets how long to wait for the server (default 10 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The view's HTML as the client holds it.
    pub fn html(&self) -> String {
        self.model.html()
    }

    /// The last title the server sent.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Frames the server pushed (`patch`, `redirect`, `push_event`) with their payloads.
    pub fn pushes(&self) -> &[(String, Value)] {
        &self.pushes
    }

    /// The text of the first element matching `selector`.
    pub fn text(&self, selector: &str) -> Result<String, TestError> {
        let doc = Html::parse_fragment(&self.html());
        let sel = parse_selector(selector)?;
        doc.select(&sel)
            .next()
            .map(|e| e.text().collect())
            .ok_or_else(|| TestError::NoElement(selector.to_string()))
    }

    /// How many elements match `selector`.
    pub fn count(&self, selector: &str) -> Result<usize, TestError> {
        let doc = Html::parse_fragment(&self.html());
        Ok(doc.select(&parse_selector(selector)?).count())
    }

    /// Clicks the element (it must have `live-click`).
    pub async fn click(&mut self, selector: &str) -> Result<(), TestError> {
        self.fire(selector, "live-click", EventKind::Click, json!({}))
            .await
    }

    /// Double-clicks the element (it must have `live-dblclick`).
    pub async fn dblclick(&mut self, selector: &str) -> Result<(), TestError> {
        self.fire(selector, "live-dblclick", EventKind::DblClick, json!({}))
            .await
    }

    /// Submits the form (it must have `live-submit`) with these field values.
    pub async fn submit(&mut self, selector: &str, fields: Value) -> Result<(), TestError> {
        self.fire(selector, "live-submit", EventKind::Submit, fields)
            .await
    }

    /// Sends a change of the form or input (it must have `live-change`).
    pub async fn change(&mut self, selector: &str, fields: Value) -> Result<(), TestError> {
        self.fire(selector, "live-change", EventKind::Change, fields)
            .await
    }

    /// Blurs the input (it must have `live-blur`), whose value is `value`.
    pub async fn blur(&mut self, selector: &str, value: &str) -> Result<(), TestError> {
        self.fire(
            selector,
            "live-blur",
            EventKind::Blur,
            json!({ "value": value }),
        )
        .await
    }

    /// Presses `key` on the element (it must have `live-keydown` with a matching or no
    /// `live-key`, or `live-keydown-<key>`); `value` is the input's value.
    pub async fn keydown(
        &mut self,
        selector: &str,
        key: &str,
        input_value: &str,
    ) -> Result<(), TestError> {
        let specific = format!("live-keydown-{}", key.to_ascii_lowercase());
        let (name, values) = {
            let doc = Html::parse_fragment(&self.html());
            let sel = parse_selector(selector)?;
            let el = doc
                .select(&sel)
                .next()
                .ok_or_else(|| TestError::NoElement(selector.to_string()))?;
            let e = el.value();
            let name = match (
                e.attr(&specific),
                e.attr("live-keydown"),
                e.attr("live-key"),
            ) {
                (Some(n), _, _) => n.to_string(),
                (None, Some(n), None) => n.to_string(),
                (None, Some(n), Some(k)) if k.eq_ignore_ascii_case(key) => n.to_string(),
                _ => {
                    return Err(TestError::NoBinding {
                        selector: selector.to_string(),
                        binding: format!("live-keydown for {key}"),
                    });
                }
            };
            (name, value_attrs(&el))
        };
        let mut value = values;
        value.insert("key".into(), json!(key));
        value.insert("value".into(), json!(input_value));
        self.send_event(EventKind::KeyDown, name, value, None).await
    }

    /// Sends an event by name, without looking at the HTML.
    pub async fn event(
        &mut self,
        kind: EventKind,
        name: &str,
        value: Value,
    ) -> Result<(), TestError> {
        let value = match value {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        self.send_event(kind, name.to_string(), value, None).await
    }

    /// Reads server pushes until `pred` holds for the HTML.
    pub async fn wait_until(
        &mut self,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<(), TestError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while !pred(&self.html()) {
            let msg = tokio::time::timeout_at(deadline, self.out.recv())
                .await
                .map_err(|_| TestError::Timeout)?
                .ok_or(TestError::Gone)?;
            self.handle_frame(*msg)?;
        }
        Ok(())
    }

    async fn fire(
        &mut self,
        selector: &str,
        binding: &str,
        kind: EventKind,
        fields: Value,
    ) -> Result<(), TestError> {
        let (name, mut value) = {
            let doc = Html::parse_fragment(&self.html());
            let sel = parse_selector(selector)?;
            let el = doc
                .select(&sel)
                .next()
                .ok_or_else(|| TestError::NoElement(selector.to_string()))?;
            let name = el
                .value()
                .attr(binding)
                .ok_or_else(|| TestError::NoBinding {
                    selector: selector.to_string(),
                    binding: binding.to_string(),
                })?;
            (name.to_string(), value_attrs(&el))
        };
        if let Value::Object(m) = fields {
            value.extend(m);
        }
        self.send_event(kind, name, value, None).await
    }

    async fn send_event(
        &mut self,
        kind: EventKind,
        name: String,
        value: serde_json::Map<String, Value>,
        target: Option<String>,
    ) -> Result<(), TestError> {
        let msg_ref = self.next_ref.to_string();
        self.next_ref += 1;
        self.inbox
            .send(Box::new(Queued {
                msg: ToView::Event {
                    msg_ref: Some(msg_ref.clone()),
                    event: Box::new(Event {
                        kind,
                        name,
                        value,
                        target,
                    }),
                    n: None,
                },
                _permit: None,
            }))
            .await
            .map_err(|_| TestError::Gone)?;
        self.read_until_reply(&msg_ref).await.map(|_| ())
    }

    async fn read_until_reply(&mut self, msg_ref: &str) -> Result<Value, TestError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.out.recv())
                .await
                .map_err(|_| TestError::Timeout)?
                .ok_or(TestError::Gone)?;
            if let Some(reply) = self.handle_frame_reply(*msg, msg_ref)? {
                return Ok(reply);
            }
        }
    }

    fn handle_frame(&mut self, msg: OutFrame) -> Result<(), TestError> {
        self.handle_frame_reply(msg, "").map(|_| ())
    }

    /// Applies one frame; returns the reply's response if it answers `msg_ref`.
    fn handle_frame_reply(
        &mut self,
        msg: OutFrame,
        msg_ref: &str,
    ) -> Result<Option<Value>, TestError> {
        let v: Value = serde_json::from_str(&msg.text)
            .map_err(|e| TestError::Reply(format!("bad frame: {e}")))?;
        let event = v[3].as_str().unwrap_or("");
        let payload = &v[4];
        match event {
            "diff" => self.model.apply(payload)?,
            "title" => self.title = payload["title"].as_str().map(str::to_string),
            "error" => {
                return Err(TestError::Crashed(payload["reason"].to_string()));
            }
            "reply" if v[1].as_str() == Some(msg_ref) => {
                if payload["status"] == "ok" {
                    return Ok(Some(payload["response"].clone()));
                }
                return Err(TestError::Reply(
                    payload["response"]["reason"]
                        .as_str()
                        .unwrap_or("error")
                        .to_string(),
                ));
            }
            "reply" => {}
            other => self.pushes.push((other.to_string(), payload.clone())),
        }
        Ok(None)
    }
}

fn parse_selector(s: &str) -> Result<Selector, TestError> {
    Selector::parse(s).map_err(|_| TestError::BadSelector(s.to_string()))
}

fn value_attrs(el: &scraper::ElementRef<'_>) -> serde_json::Map<String, Value> {
    el.value()
        .attrs()
        .filter_map(|(k, v)| {
            k.strip_prefix("live-value-")
                .map(|n| (n.to_string(), json!(v)))
        })
        .collect()
}

/// Makes the replication listener of `slot` fail to decode the next Relation message that
/// describes `table`, as a corrupt or unsupported message would: a fault for tests of what
/// happens to the changes that follow (every view reloads; nothing is skipped silently).
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// live_core::testing::fail_next_relation("live_slot", "todos");
/// // The insert's Relation message does not decode: the views of `todos` must reload (and
/// // show the new row), not skip it.
/// sqlx::query("INSERT INTO todos (list_id, title) VALUES (1, 'after a bad message')")
///     .execute(&pool)
///     .await?;
/// # Ok(()) }
/// ```
pub fn fail_next_relation(slot: &str, table: &str) {
    crate::replication::faults::fail_next_relation(slot, table);
}

/// How many holders the node's shared copy of row `id` of `T` has: every view that holds this
/// version of the row holds the same `Arc` (0 when no view holds it).
///
/// ```
/// use live_core::{Watch, testing::row_holders};
///
/// #[derive(Watch, Clone)]
/// #[watch(table = "todos", subscription_key = "list_id")]
/// struct Todo { id: i64, list_id: i64, title: String }
///
/// // No view holds todo 7 here; two mounted views of its list would make it 2 (one shared copy).
/// assert_eq!(row_holders::<Todo>(7_i64), 0);
/// ```
pub fn row_holders<T: crate::Watch>(id: impl crate::KeyValue) -> usize {
    id.to_key()
        .map_or(0, |k| crate::row::shared::holders::<T>(&k))
}
