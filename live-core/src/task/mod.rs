//! One connected view: its tokio task, its mailbox of database changes, and its loop that
//! handles events, server messages and changes one at a time, renders, and sends diffs.
//!
//! Mounting follows the fence of the design notes: the view gets a mailbox, its rows are loaded
//! in one `REPEATABLE READ` transaction whose snapshot is recorded, then it subscribes with its
//! key; the fan-out replays every recent transaction that snapshot did not see. Nothing
//! committed meanwhile is lost, and nothing the load saw is applied again.
//!
//! A view outlives its socket for a grace period ([`resume`]): a client that comes back gets
//! only what it missed, and its assigns as they were. Past it, a new mount gets the view's
//! kept assigns back from the client ([`keep`]).
//!
//! The files: [`mount`] (the mount and its permits), [`fence`] (subscribe, replay, reload,
//! changes), [`handlers`] (events, messages, params, pushes), [`render`] (versions and
//! diffs), [`outbound`] (the connection's queue), [`resume`] and [`keep`].

mod fence;
mod handlers;
pub(crate) mod keep;
mod mount;
mod outbound;
mod render;
pub(crate) mod resume;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

pub(crate) use mount::mount_retried;
pub(crate) use outbound::{OutFrame, Outbound};
pub(crate) use resume::{Attach, Resumable};

use crate::diff::PageTracker;
use crate::fanout::{Delivery, Gap};
use crate::pg::Snapshot;
use crate::protocol::{Reason, error_reply};
use crate::row::WatchTypes;
use crate::runtime::Runtime;
use crate::token::{Session, ViewToken};
use crate::view::{DbSlot, Event, InfoSlot, LiveView, Params, join_params};
use fence::Subscription;
use keep::KeepRefused;
use mount::{mount_view, until_left};
use outbound::Wire;
use resume::{Missed, ResumeId, Window, new_resume_id};

/// What the connection forwards to a view.
#[derive(Debug)]
pub(crate) enum ToView {
    Event {
        msg_ref: Option<String>,
        event: Box<Event>,
        /// The client's number for the event (increasing per view): an event numbered at or
        /// below the last one handled is a resend of one already handled, answered ok.
        n: Option<u64>,
    },
    Params {
        msg_ref: Option<String>,
        url: String,
    },
    Resync {
        msg_ref: Option<String>,
    },
}

/// A message for a view with its share of the connection's inbound byte budget.
pub(crate) struct Queued {
    pub msg: ToView,
    pub _permit: Option<OwnedSemaphorePermit>,
}

/// A verified join, ready to start a view.
pub(crate) struct JoinRequest {
    pub topic: String,
    pub join_ref: String,
    pub msg_ref: Option<String>,
    pub token: ViewToken,
    /// The page token as the client sent it (kept blobs are bound to it).
    pub page: String,
    pub url: String,
    pub inbox: mpsc::Receiver<Box<Queued>>,
    pub out: Outbound,
    /// Mounts in flight on this view's connection.
    pub socket_mounts: Arc<Semaphore>,
    /// The blob of kept assigns the client holds, if any.
    pub keep: Option<String>,
}

/// Starts views of one type (type-erased, one per registered route).
pub(crate) trait ViewSpawner<S>: Send + Sync {
    fn spawn(&self, rt: Arc<Runtime<S>>, resumable: Arc<Resumable>, req: JoinRequest);
}

pub(crate) struct Spawner<V>(pub PhantomData<fn() -> V>);

impl<V: LiveView> ViewSpawner<V::State> for Spawner<V> {
    fn spawn(&self, rt: Arc<Runtime<V::State>>, resumable: Arc<Resumable>, req: JoinRequest) {
        let span =
            tracing::info_span!("view", view = std::any::type_name::<V>(), topic = %req.topic);
        tokio::spawn(run::<V>(rt, resumable, req).instrument(span));
    }
}

/// The views a node serves, by route pattern, and its views by resume id.
pub(crate) struct Views<S> {
    spawners: RwLock<HashMap<String, Arc<dyn ViewSpawner<S>>>>,
    resumable: Arc<Resumable>,
}

impl<S> Default for Views<S> {
    fn default() -> Self {
        Views {
            spawners: RwLock::new(HashMap::new()),
            resumable: Arc::default(),
        }
    }
}

impl<S> Views<S> {
    /// The node's views by resume id.
    pub(crate) fn resumable(&self) -> &Resumable {
        &self.resumable
    }
}

impl<S: Clone + Send + Sync + 'static> Views<S> {
    /// Registers view `V` at a route pattern.
    pub(crate) fn register<V: LiveView<State = S>>(&self, route: &str) {
        let mut views = self.spawners.write().unwrap_or_else(|p| p.into_inner());
        views.insert(route.to_string(), Arc::new(Spawner::<V>(PhantomData)));
    }

    /// Starts the view of a join (`Err`: the unknown route).
    pub(crate) fn spawn(&self, rt: &Arc<Runtime<S>>, req: JoinRequest) -> Result<(), String> {
        let spawner = {
            let views = self.spawners.read().unwrap_or_else(|p| p.into_inner());
            views.get(&req.token.route).cloned()
        };
        match spawner {
            Some(s) => {
                s.spawn(rt.clone(), self.resumable.clone(), req);
                Ok(())
            }
            None => Err(req.token.route),
        }
    }
}

/// Why a view ends.
enum End {
    /// The view was left, its client did not come back in time, or the server stops: end
    /// quietly.
    Gone,
    /// The view crashed (a panic, or a reload that keeps failing): tell the client.
    Crash(String),
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Runs a step of the view's own code (`what`: which, for the reason); a panic ends the view
/// (a crash the client is told about), never the node.
async fn guarded<F: std::future::Future>(what: &str, step: F) -> Result<F::Output, End> {
    AssertUnwindSafe(step)
        .catch_unwind()
        .await
        .map_err(|p| End::Crash(format!("{what} panicked: {}", panic_message(p))))
}

struct ViewSession<V: LiveView> {
    rt: Arc<Runtime<V::State>>,
    view: V,
    wire: Wire,
    /// Events from the connection (`None` while detached: no connection).
    inbox: Option<mpsc::Receiver<Box<Queued>>>,
    session: Session,
    params: Params,
    route: String,
    token: ViewToken,
    /// The page as the client holds it (model and version).
    page: PageTracker,
    title: Option<String>,
    info: InfoSlot<V::Message>,
    sub: Option<Subscription>,
    /// The client's number of the last event handled.
    last_event: u64,
    /// What a client that comes back may have missed.
    window: Window,
    /// The node's views by resume id, and this view's id in it.
    resumable: Arc<Resumable>,
    resume_id: ResumeId,
    /// Joins that name this view.
    attach: oneshot::Receiver<Box<Attach>>,
    /// Since when the view has had no connection (its grace period runs).
    detached: Option<Instant>,
    /// Changes were applied while detached and not rendered yet.
    dirty: bool,
    /// The page the client holds (a digest of its token): kept blobs are bound to it.
    page_id: String,
    /// The kept fields last sent to the client (JSON).
    kept_sent: Option<String>,
}

async fn run<V: LiveView>(rt: Arc<Runtime<V::State>>, resumable: Arc<Resumable>, req: JoinRequest) {
    let JoinRequest {
        topic,
        join_ref,
        msg_ref,
        token,
        page,
        url,
        mut inbox,
        out,
        socket_mounts,
        keep,
    } = req;
    let route = token.route.clone();
    let params = join_params(&token, &url);
    let session = token.session.clone();
    let mut types = WatchTypes::default();
    V::watch_types(&mut types);
    let watched = !types.types.is_empty();
    let sub = match (&rt.sync, watched) {
        (Some(sync), true) => Some(Subscription {
            fanout: sync.fanout.clone(),
            mailbox: sync.fanout.add_view(),
            seq_after: 0,
            keys: Vec::new(),
        }),
        _ => None,
    };
    // Messages that arrive while the view mounts wait for it (the inbox is bounded).
    let mut early: Vec<Queued> = Vec::new();
    let refuse = |reason: Reason| {
        let out = out.clone();
        let frame = error_reply(Some(&join_ref), msg_ref.as_deref(), &topic, reason);
        async move {
            let _ = out.send(frame).await;
        }
    };
    // A mount takes a database connection: at most a few per connection and per node, in
    // arrival order, each wait with a deadline. A view left (or whose socket closed) while it
    // waits or mounts is cancelled.
    let permits = match until_left(
        &mut inbox,
        &mut early,
        rt.mount_permits(Some(&socket_mounts)),
    )
    .await
    {
        None => return,
        Some(Ok(p)) => p,
        Some(Err(reason)) => return refuse(reason).await,
    };
    let s0 = sub.as_ref().map(|s| s.fanout.next_seq()).unwrap_or(0);
    let mut db = DbSlot::new(rt.pool.clone());
    // The one-time and the occasional steps are boxed, so that what an idle view keeps between
    // messages is only its loop (a few hundred bytes), not the largest step's state.
    let mounted = until_left(
        &mut inbox,
        &mut early,
        Box::pin(mount_view::<V>(
            &rt,
            &params,
            &session,
            &mut db,
            sub.is_some(),
        )),
    )
    .await;
    drop(permits);
    let mut view = match mounted {
        None => return,
        Some(Ok(v)) => v,
        Some(Err(reason)) => return refuse(reason).await,
    };
    // Kept assigns come back from the client's blob, after mount and before params (the URL
    // has the last word).
    let keep_refused = match keep {
        None => None,
        Some(blob) => restore_kept(&rt, &mut view, &blob, &page).err(),
    };
    let resume_id = new_resume_id();
    let attach = resumable.register(&resume_id);
    let mut s = ViewSession::<V> {
        rt,
        view,
        wire: Wire {
            topic,
            join_ref,
            out,
            room: None,
        },
        inbox: Some(inbox),
        session,
        params,
        route,
        token,
        page: PageTracker::default(),
        title: None,
        info: InfoSlot::new(),
        sub,
        last_event: 0,
        window: Window::default(),
        resumable,
        resume_id,
        attach,
        detached: None,
        dirty: false,
        page_id: page,
        kept_sent: None,
    };
    let end = match Box::pin(s.start(s0, db.snapshot.take(), msg_ref, keep_refused)).await {
        Ok(()) => s.run_loop(early).await,
        Err(e) => e,
    };
    s.resumable.unregister(&s.resume_id);
    if s.detached.is_some() {
        s.resumable.reattached();
    }
    if let End::Crash(why) = end {
        tracing::error!(reason = %why, "view crashed");
        let payload = serde_json::json!({ "reason": Reason::Crashed.as_str() }).to_string();
        s.wire.push("error", &payload).await;
    }
}

/// Restores a view's kept assigns from a client's blob.
fn restore_kept<V: LiveView>(
    rt: &Runtime<V::State>,
    view: &mut V,
    blob: &str,
    page: &str,
) -> Result<(), KeepRefused> {
    let result = keep::open(&rt.keeper, blob, page, crate::token::now_secs()).and_then(|fields| {
        view.restore_kept(&fields).map_err(|e| {
            tracing::warn!(error = %e, "kept assigns do not fit the view; mounted plain");
            KeepRefused::Fields
        })
    });
    if let Err(why) = result {
        tracing::warn!(
            reason = why.as_str(),
            "a kept-assigns blob was refused; mounted plain"
        );
    }
    result
}

impl<V: LiveView> ViewSession<V> {
    /// After mount: sync hooks, subscription with replay, params, first render, join reply.
    async fn start(
        &mut self,
        s0: u64,
        snapshot: Option<Snapshot>,
        msg_ref: Option<String>,
        keep_refused: Option<KeepRefused>,
    ) -> Result<(), End> {
        self.run_hooks().await?;
        if self.sub.is_some() {
            match self.subscribe(s0, snapshot.as_ref()).await {
                Ok(None) => {}
                Ok(Some(xids)) => self.reload(xids).await?,
                Err(Gap) => self.reload(Vec::new()).await?,
            }
        }
        let params = self.params.clone();
        let mut pushes = Vec::new();
        self.call_params(&params, &mut pushes).await?;
        let tracked = self.render_tracked()?;
        self.title = self.view.title();
        self.wire.reserve(self.page.page_estimate()).await;
        let (first, rest) = self.page.first(tracked);
        let mut response = format!(
            "{{\"rendered\":{},\"v\":1,\"title\":{},\"resume\":{}",
            first,
            serde_json::to_string(&self.title).unwrap_or_else(|_| "null".into()),
            serde_json::to_string(&self.resume_id).unwrap_or_else(|_| "null".into()),
        );
        if let Some(why) = keep_refused {
            response.push_str(&format!(",\"keep_refused\":\"{}\"", why.as_str()));
        }
        response.push('}');
        self.wire.reply_ok(msg_ref.as_deref(), &response).await;
        self.send_frames(rest).await;
        self.wire.release();
        self.send_kept().await;
        self.process_pushes(pushes).await
    }

    async fn run_loop(&mut self, early: Vec<Queued>) -> End {
        for m in early {
            if let Err(end) = Box::pin(self.on_inbound(m.msg)).await {
                return end;
            }
        }
        loop {
            let grace = self
                .detached
                .map(|since| since + self.rt.config.resume_grace);
            let result = tokio::select! {
                biased;
                a = &mut self.attach => match a {
                    Ok(a) => Box::pin(self.on_attach(a)).await,
                    // The node's table of views dropped this view's entry: nobody can name
                    // it any more.
                    Err(_) => {
                        self.attach = self.resumable.register(&self.resume_id);
                        Ok(())
                    }
                },
                msg = recv_inbox(&mut self.inbox) => match msg {
                    // The message's share of the inbound budget is freed once handled.
                    Some(m) => Box::pin(self.on_inbound(m.msg)).await,
                    None => self.on_connection_gone(),
                },
                Some(msg) = recv_info(&mut self.info.rx) => Box::pin(self.on_info(*msg)).await,
                Some(d) = recv_delivery(&mut self.sub) => Box::pin(self.on_changes(d)).await,
                _ = sleep_until(grace) => {
                    tracing::debug!("the client did not come back within the grace period");
                    Err(End::Gone)
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// The inbox closed: the view was left (its socket is still there), or its socket is gone
    /// and it waits for its client to come back.
    fn on_connection_gone(&mut self) -> Result<(), End> {
        self.inbox = None;
        if !self.wire.is_closed() {
            return Err(End::Gone); // left
        }
        if *self.rt.closing.borrow() {
            return Err(End::Gone); // the server stops: its clients resume elsewhere
        }
        if !self.resumable.detach(self.rt.config.max_detached_views) {
            tracing::warn!(
                max = self.rt.config.max_detached_views,
                "too many views wait for their clients; this one ends"
            );
            return Err(End::Gone);
        }
        tracing::debug!("connection gone; waiting for the client to come back");
        self.detached = Some(Instant::now());
        Ok(())
    }

    /// A join names this view. It may take it when it is from the same route and session and
    /// its version is one this view sent; it then gets only what it missed.
    async fn on_attach(&mut self, a: Box<Attach>) -> Result<(), End> {
        let Attach { join: a, version } = *a;
        let refusal = if a.token.route != self.token.route || a.token.session != self.session {
            tracing::warn!("a resume of a view of another page or session refused");
            Some(Reason::ResumeRefused)
        } else if version == 0 || version > self.page.version() {
            tracing::warn!(
                client = version,
                server = self.page.version(),
                "a resume at a version this view never sent refused"
            );
            Some(Reason::BadVersion)
        } else {
            None
        };
        // The join that named the view took its entry: a refused one leaves the id to its
        // owner (registered again); an accepted one gets a new id below.
        self.attach = self.resumable.register(&self.resume_id);
        if let Some(reason) = refusal {
            let frame = error_reply(Some(&a.join_ref), a.msg_ref.as_deref(), &a.topic, reason);
            let _ = a.out.send(frame).await;
            return Ok(());
        }
        self.resumable.unregister(&self.resume_id);
        self.resume_id = new_resume_id();
        self.attach = self.resumable.register(&self.resume_id);
        if self.detached.take().is_some() {
            self.resumable.reattached();
        }
        // The old connection (if it is still open, half-dead) loses this view.
        self.wire = Wire {
            topic: a.topic,
            join_ref: a.join_ref,
            out: a.out,
            room: None,
        };
        self.inbox = Some(a.inbox);
        if self.page_id != a.page {
            self.page_id = a.page;
            self.kept_sent = None;
        }
        tracing::debug!(client = version, server = self.page.version(), "resumed");
        let response = serde_json::json!({
            "resumed": true,
            "title": self.title,
            "resume": self.resume_id,
            "events": self.last_event,
        })
        .to_string();
        self.wire.reply_ok(a.msg_ref.as_deref(), &response).await;
        let missed: Option<Vec<String>> = match self.window.missed(version, self.page.version()) {
            Missed::Frames(frames) => Some(frames.into_iter().map(str::to_string).collect()),
            Missed::Whole => None,
        };
        match missed {
            Some(frames) => {
                for f in frames {
                    self.wire.push("diff", &f).await;
                }
            }
            None => self.send_whole().await,
        }
        if std::mem::take(&mut self.dirty) {
            self.render_and_send().await?;
        }
        self.send_kept().await;
        // A URL the client moved to while offline (back/forward): its params.
        let url = a.url;
        if crate::view::params_for(&self.route, &self.token, &url) != self.params {
            return self.on_params(None, url).await;
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv_inbox(inbox: &mut Option<mpsc::Receiver<Box<Queued>>>) -> Option<Box<Queued>> {
    match inbox {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_info<M>(rx: &mut Option<mpsc::UnboundedReceiver<Box<M>>>) -> Option<Box<M>> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_delivery(sub: &mut Option<Subscription>) -> Option<Box<Delivery>> {
    match sub {
        Some(s) => s.mailbox.rx.recv().await,
        None => std::future::pending().await,
    }
}
