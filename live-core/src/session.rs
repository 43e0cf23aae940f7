//! One connected view: its tokio task, its mailbox of database changes, and its loop that
//! handles events, server messages and changes one at a time, renders, and sends diffs.
//!
//! Mounting follows the fence of the design notes: the view gets a mailbox, its rows are loaded
//! in one `REPEATABLE READ` transaction whose snapshot is recorded, then it subscribes with its
//! key; the fan-out replays every recent transaction that snapshot did not see. Nothing
//! committed meanwhile is lost, and nothing the load saw is applied again.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::diff::{Patch, encode_diff, full_payload, model_in_pieces};
use crate::fanout::{Delivery, Fanout, Gap, Mailbox, Op, ScopeKey, Snapshot};
use crate::protocol::{Reason, error_reply, frame, reply};
use crate::render::{Rendered, render_tracked};
use crate::router::Runtime;
use crate::token::{Session, ViewToken};
use crate::view::{
    Ctx, DbSlot, Event, InfoSlot, LiveView, Mount, Params, Push, SyncCtx, ViewError, is_local_url,
    is_stale_statement,
};
use crate::watch::{ApplyError, ChangeBatch, HeldRows, Scopes, WatchTypes};

/// What the connection forwards to a view.
#[derive(Debug)]
pub(crate) enum ToView {
    Event {
        msg_ref: Option<String>,
        event: Box<Event>,
    },
    Params {
        msg_ref: Option<String>,
        url: String,
    },
    Resync {
        msg_ref: Option<String>,
    },
}

/// The largest piece a whole page is sent in (bytes of row HTML per frame).
const FRAME_BUDGET: usize = 32 * 1024;

/// One frame queued for the socket writer, holding its share of the connection's byte budget
/// until it is written.
pub(crate) struct OutFrame {
    pub text: String,
    _permit: OwnedSemaphorePermit,
}

/// Frames to the socket writer: a bounded queue whose bytes are counted too. A view whose
/// connection's queue is full waits (the socket closes a client that stops reading).
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: mpsc::Sender<Box<OutFrame>>,
    budget: Arc<Semaphore>,
    cap: usize,
}

impl Outbound {
    /// A queue of at most `frames` frames and `bytes` bytes (a bigger frame takes it all).
    pub(crate) fn new(frames: usize, bytes: usize) -> (Self, mpsc::Receiver<Box<OutFrame>>) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let cap = bytes.clamp(1, u32::MAX as usize);
        let out = Outbound {
            tx,
            budget: Arc::new(Semaphore::new(cap)),
            cap,
        };
        (out, rx)
    }

    /// Queues a frame; `Err` when the connection is gone.
    pub(crate) async fn send(&self, text: String) -> Result<(), ()> {
        let cost = text.len().clamp(1, self.cap) as u32;
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(cost)
            .await
            .map_err(|_| ())?;
        self.tx
            .send(Box::new(OutFrame {
                text,
                _permit: permit,
            }))
            .await
            .map_err(|_| ())
    }

    /// Waits until `bytes` (at most the cap) fit in the queue and holds them for frames about
    /// to be built, so a view whose client does not read builds nothing it cannot queue.
    pub(crate) async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ()> {
        let n = bytes.clamp(1, self.cap) as u32;
        self.budget
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| ())
    }

    /// Queues a frame, paying from `room` (a reservation) when it is big enough. A reservation
    /// too small is given back before waiting for the whole frame's share (never hold and
    /// wait: two views could each hold part of the budget and wait for the rest).
    pub(crate) async fn send_from(
        &self,
        text: String,
        room: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), ()> {
        let need = text.len().clamp(1, self.cap);
        let permit = match room.take() {
            Some(mut r) if r.num_permits() >= need => {
                let spare = r.num_permits() - need;
                if spare > 0 {
                    *room = r.split(spare);
                }
                r
            }
            other => {
                drop(other);
                self.budget
                    .clone()
                    .acquire_many_owned(need as u32)
                    .await
                    .map_err(|_| ())?
            }
        };
        self.tx
            .send(Box::new(OutFrame {
                text,
                _permit: permit,
            }))
            .await
            .map_err(|_| ())
    }

    /// The connection is gone: wake and refuse every sender.
    pub(crate) fn close(&self) {
        self.budget.close();
    }
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
    pub url: String,
    pub inbox: mpsc::Receiver<Box<Queued>>,
    pub out: Outbound,
    /// Mounts in flight on this view's connection.
    pub socket_mounts: Arc<Semaphore>,
}

/// Starts views of one type (type-erased, one per registered route).
pub(crate) trait ViewSpawner<S>: Send + Sync {
    fn spawn(&self, rt: Arc<Runtime<S>>, req: JoinRequest);
}

pub(crate) struct Spawner<V>(pub PhantomData<fn() -> V>);

impl<V: LiveView> ViewSpawner<V::State> for Spawner<V> {
    fn spawn(&self, rt: Arc<Runtime<V::State>>, req: JoinRequest) {
        let span =
            tracing::info_span!("view", view = std::any::type_name::<V>(), topic = %req.topic);
        tokio::spawn(run::<V>(rt, req).instrument(span));
    }
}

/// Why a view ends.
enum End {
    /// The socket is gone or the view left: end quietly.
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

/// The path and query of a URL (absolute, or already a path).
fn path_and_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) if url.starts_with('/') => url.to_string(),
        Err(_) => String::from("/"),
    }
}

/// The params of a join: the path parameters signed in the page's token (a client cannot join
/// with other ones), and the query of the client's current URL (filters it patched in).
pub(crate) fn join_params(token: &ViewToken, url: &str) -> Params {
    let pq = path_and_query(url);
    let query = pq.split_once('?').map(|(_, q)| q).unwrap_or("");
    let uri = if query.is_empty() {
        pq.split('?').next().unwrap_or("/").to_string()
    } else {
        pq.clone()
    };
    Params::from_parts(token.path_params.clone(), &uri)
}

/// The params of a URL the view navigated to (a live patch): path parameters matched against
/// the view's route (the view's `handle_params` decides whether the session may see them).
pub(crate) fn params_for(route: &str, token: &ViewToken, url: &str) -> Params {
    let path_and_query = path_and_query(url);
    let path = path_and_query.split('?').next().unwrap_or("/");
    let mut router = matchit::Router::new();
    let matched = router
        .insert(route, ())
        .ok()
        .and_then(|_| router.at(path).ok())
        .map(|m| {
            m.params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        });
    match matched {
        Some(pp) => Params::from_parts(pp, &path_and_query),
        None => Params::from_parts(token.path_params.clone(), &path_and_query),
    }
}

struct Subscription {
    fanout: Arc<Fanout>,
    mailbox: Mailbox,
    seq_after: u64,
    /// The scope keys subscribed, as the assigns stated them at the last (re)load.
    keys: Vec<ScopeKey>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.remove_view(self.mailbox.id);
    }
}

/// Where a view's frames go.
struct Wire {
    topic: String,
    join_ref: String,
    out: Outbound,
    /// Room reserved in the connection's queue for the frames being built.
    room: Option<OwnedSemaphorePermit>,
}

impl Wire {
    /// Reserves room for about `bytes` of frames before building them.
    async fn reserve(&mut self, bytes: usize) -> Result<(), End> {
        self.room = None;
        self.room = Some(self.out.reserve(bytes).await.map_err(|_| End::Gone)?);
        Ok(())
    }

    /// Gives back what is left of the reservation.
    fn release(&mut self) {
        self.room = None;
    }

    async fn send(&mut self, text: String) -> Result<(), End> {
        self.out
            .send_from(text, &mut self.room)
            .await
            .map_err(|_| End::Gone)
    }

    async fn push(&mut self, event: &str, payload: &str) -> Result<(), End> {
        self.send(frame(
            Some(&self.join_ref),
            None,
            &self.topic,
            event,
            payload,
        ))
        .await
    }

    async fn reply_ok(&mut self, msg_ref: Option<&str>, response: &str) -> Result<(), End> {
        self.send(reply(
            Some(&self.join_ref),
            msg_ref,
            &self.topic,
            true,
            response,
        ))
        .await
    }

    async fn reply_error(&mut self, msg_ref: Option<&str>, reason: Reason) -> Result<(), End> {
        self.send(error_reply(
            Some(&self.join_ref),
            msg_ref,
            &self.topic,
            reason,
        ))
        .await
    }
}

struct ViewSession<V: LiveView> {
    rt: Arc<Runtime<V::State>>,
    view: V,
    wire: Wire,
    session: Session,
    params: Params,
    route: String,
    token: ViewToken,
    model: Rendered,
    version: u64,
    title: Option<String>,
    info: InfoSlot<V::Message>,
    sub: Option<Subscription>,
}

async fn run<V: LiveView>(rt: Arc<Runtime<V::State>>, req: JoinRequest) {
    let JoinRequest {
        topic,
        join_ref,
        msg_ref,
        token,
        url,
        mut inbox,
        out,
        socket_mounts,
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
    let view = match mounted {
        None => return,
        Some(Ok(v)) => v,
        Some(Err(reason)) => return refuse(reason).await,
    };
    let mut s = ViewSession::<V> {
        rt,
        view,
        wire: Wire {
            topic,
            join_ref,
            out,
            room: None,
        },
        session,
        params,
        route,
        token,
        model: Rendered::default(),
        version: 0,
        title: None,
        info: InfoSlot::new(),
        sub,
    };
    let end = match Box::pin(s.start(s0, db.snapshot.take(), msg_ref)).await {
        Ok(()) => s.run_loop(early, &mut inbox).await,
        Err(e) => e,
    };
    if let End::Crash(why) = end {
        tracing::error!(reason = %why, "view crashed");
        let payload = serde_json::json!({ "reason": Reason::Crashed.as_str() }).to_string();
        let _ = s.wire.push("error", &payload).await;
    }
}

/// Runs `fut` unless the view's inbox closes first (the view was left, or its socket closed):
/// `None` then. Messages received meanwhile are kept in `early`.
async fn until_left<F: std::future::Future>(
    inbox: &mut mpsc::Receiver<Box<Queued>>,
    early: &mut Vec<Queued>,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Some(out),
            msg = inbox.recv() => match msg {
                Some(m) => early.push(*m),
                None => {
                    tracing::debug!("view left before its mount finished; cancelled");
                    return None;
                }
            },
        }
    }
}

/// Mounts (connected). Returns the client's error reason on failure.
async fn mount_view<V: LiveView>(
    rt: &Runtime<V::State>,
    params: &Params,
    session: &Session,
    db: &mut DbSlot,
    fence: bool,
) -> Result<V, Reason> {
    for attempt in 0..2 {
        if fence && let Err(e) = db.begin().await {
            tracing::error!(error = %e, "could not open the mount transaction");
            return Err(Reason::MountFailed);
        }
        let result = {
            let mut m = Mount::<V> {
                state: &rt.state,
                params,
                session,
                connected: true,
                db,
            };
            AssertUnwindSafe(Box::pin(V::mount(&mut m)))
                .catch_unwind()
                .await
        };
        let view = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) if attempt == 0 && is_stale_statement(&e) => {
                // The table changed under a cached statement: once more, with a clean cache.
                db.rollback().await;
                db.clear_statement_cache();
                continue;
            }
            Ok(Err(e)) => {
                let reason = e.join_reason();
                if reason == Reason::MountFailed {
                    tracing::error!(error = %e, "mount failed");
                }
                return Err(reason);
            }
            Err(p) => {
                tracing::error!(panic = %panic_message(p), "mount panicked");
                return Err(Reason::MountFailed);
            }
        };
        if let Err(e) = db.finish().await {
            tracing::error!(error = %e, "mount transaction did not commit");
            return Err(Reason::MountFailed);
        }
        let mut view = view;
        if let Some(why) = view.over_cap() {
            tracing::error!(reason = %why, "mount refused: a watched assign is over its row cap");
            return Err(Reason::MountFailed);
        }
        // Views of the same rows share one copy of each row version.
        view.share_rows();
        return Ok(view);
    }
    Err(Reason::MountFailed)
}

impl<V: LiveView> ViewSession<V> {
    /// After mount: sync hooks, subscription with replay, params, first render, join reply.
    async fn start(
        &mut self,
        s0: u64,
        snapshot: Option<Snapshot>,
        msg_ref: Option<String>,
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
        self.model = tracked.model;
        self.title = self.view.title();
        self.wire.reserve(page_estimate(&self.model)).await?;
        let pieces = model_in_pieces(&self.model, 1, FRAME_BUDGET);
        let response = format!(
            "{{\"rendered\":{},\"v\":1,\"title\":{}}}",
            pieces.first,
            serde_json::to_string(&self.title).unwrap_or_else(|_| "null".into())
        );
        self.wire.reply_ok(msg_ref.as_deref(), &response).await?;
        self.version = 1;
        for p in pieces.rest {
            self.version += 1;
            self.wire.push("diff", &p).await?;
        }
        self.wire.release();
        self.process_pushes(pushes).await
    }

    async fn run_loop(
        &mut self,
        early: Vec<Queued>,
        inbox: &mut mpsc::Receiver<Box<Queued>>,
    ) -> End {
        for m in early {
            if let Err(end) = Box::pin(self.on_inbound(m.msg)).await {
                return end;
            }
        }
        loop {
            let result = tokio::select! {
                biased;
                msg = inbox.recv() => match msg {
                    None => return End::Gone,
                    // The message's share of the inbound budget is freed once handled.
                    Some(m) => Box::pin(self.on_inbound(m.msg)).await,
                },
                Some(msg) = recv_info(&mut self.info.rx) => Box::pin(self.on_info(*msg)).await,
                Some(d) = recv_delivery(&mut self.sub) => Box::pin(self.on_changes(d)).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn on_inbound(&mut self, msg: ToView) -> Result<(), End> {
        match msg {
            ToView::Event { msg_ref, event } => self.on_event(msg_ref, *event).await,
            ToView::Params { msg_ref, url } => {
                // The client may change the query, never the signed path parameters: a URL
                // of another path needs a page load (and a token for it).
                let params = params_for(&self.route, &self.token, &url);
                if params.path_params() != &self.token.path_params {
                    tracing::warn!(url = %url, "params for other path parameters refused");
                    return self
                        .wire
                        .reply_error(msg_ref.as_deref(), Reason::Navigate)
                        .await;
                }
                self.params = params;
                let params = self.params.clone();
                let mut pushes = Vec::new();
                self.call_params(&params, &mut pushes).await?;
                self.after_handler(pushes).await?;
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await
            }
            ToView::Resync { msg_ref } => {
                self.send_whole().await?;
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await
            }
        }
    }

    async fn on_event(&mut self, msg_ref: Option<String>, event: Event) -> Result<(), End> {
        let mut pushes = Vec::new();
        let name = event.name.clone();
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes: &mut pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_event(event, &mut ctx)))
                .catch_unwind()
                .await
        };
        let error = match result {
            Err(p) => {
                return Err(End::Crash(format!(
                    "handle_event panicked: {}",
                    panic_message(p)
                )));
            }
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                match &e {
                    ViewError::UnknownEvent(n) => tracing::warn!(event = %n, "unknown event"),
                    ViewError::BadRequest(m) => {
                        tracing::warn!(event = %name, error = %m, "bad event payload")
                    }
                    e => tracing::error!(event = %name, error = %e, "event handler failed"),
                }
                Some(e.event_reason())
            }
        };
        self.after_handler(pushes).await?;
        match error {
            None => self.wire.reply_ok(msg_ref.as_deref(), "{}").await,
            Some(reason) => self.wire.reply_error(msg_ref.as_deref(), reason).await,
        }
    }

    async fn on_info(&mut self, msg: V::Message) -> Result<(), End> {
        let mut pushes = Vec::new();
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes: &mut pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_info(msg, &mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => {
                return Err(End::Crash(format!(
                    "handle_info panicked: {}",
                    panic_message(p)
                )));
            }
            Ok(Err(e)) => tracing::error!(error = %e, "handle_info failed"),
            Ok(Ok(())) => {}
        }
        self.after_handler(pushes).await
    }

    async fn call_params(&mut self, params: &Params, pushes: &mut Vec<Push>) -> Result<(), End> {
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_params(params, &mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => Err(End::Crash(format!(
                "handle_params panicked: {}",
                panic_message(p)
            ))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "handle_params failed");
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// After any handler: follow a changed subscription key, render and send, then pushes.
    async fn after_handler(&mut self, pushes: Vec<Push>) -> Result<(), End> {
        if self.scopes_changed() {
            self.reload(Vec::new()).await?;
        }
        self.render_and_send().await?;
        self.process_pushes(pushes).await
    }

    async fn process_pushes(&mut self, pushes: Vec<Push>) -> Result<(), End> {
        for p in pushes {
            match p {
                Push::Patch { to, .. } | Push::Redirect { to } if !is_local_url(&to) => {
                    tracing::error!(to = %to, "refused a patch or redirect to another origin");
                }
                Push::Patch { to, replace } => {
                    // The server chose this URL: its path parameters are trusted, and the
                    // client gets a token signed with them for later rejoins.
                    self.params = params_for(&self.route, &self.token, &to);
                    let mut token = None;
                    if self.params.path_params() != &self.token.path_params {
                        self.token.path_params = self.params.path_params().clone();
                        self.token.exp =
                            crate::token::now_secs() + self.rt.config.token_max_age.as_secs();
                        token = Some(self.rt.signer.sign(&self.token));
                    }
                    let params = self.params.clone();
                    let mut more = Vec::new();
                    self.call_params(&params, &mut more).await?;
                    self.render_and_send().await?;
                    let payload =
                        serde_json::json!({ "to": to, "replace": replace, "token": token })
                            .to_string();
                    self.wire.push("patch", &payload).await?;
                    // Pushes from that params handler (a redirect, say) are followed once.
                    for q in more {
                        if let Push::Redirect { to } = q
                            && is_local_url(&to)
                        {
                            let payload = serde_json::json!({ "to": to }).to_string();
                            self.wire.push("redirect", &payload).await?;
                        }
                    }
                }
                Push::Redirect { to } => {
                    let payload = serde_json::json!({ "to": to }).to_string();
                    self.wire.push("redirect", &payload).await?;
                }
                Push::Event { name, payload } => {
                    let payload =
                        serde_json::json!({ "event": name, "payload": payload }).to_string();
                    self.wire.push("push_event", &payload).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends the whole page as a `full` diff, in pieces (see `model_in_pieces`).
    async fn send_whole(&mut self) -> Result<(), End> {
        let v = self.version + 1;
        self.wire.reserve(page_estimate(&self.model)).await?;
        let pieces = model_in_pieces(&self.model, v, FRAME_BUDGET);
        self.wire
            .push("diff", &full_payload(v, &self.model, &pieces))
            .await?;
        self.version = v;
        for p in pieces.rest {
            self.version += 1;
            self.wire.push("diff", &p).await?;
        }
        self.wire.release();
        Ok(())
    }

    fn render_tracked(&mut self) -> Result<crate::render::Tracked, End> {
        let view = &self.view;
        let model = &mut self.model;
        std::panic::catch_unwind(AssertUnwindSafe(|| render_tracked(model, || view.render())))
            .map_err(|p| End::Crash(format!("render panicked: {}", panic_message(p))))
    }

    /// Renders and sends the diff (if anything changed) and the title (if it changed).
    async fn render_and_send(&mut self) -> Result<(), End> {
        let tracked = self.render_tracked()?;
        let next_version = self.version + 1;
        // Room first: a view whose client does not read waits here, holding no new frame.
        self.wire.reserve(diff_estimate(&tracked)).await?;
        let payload = encode_diff(
            &self.model.statics,
            &tracked.model,
            &tracked.ops,
            next_version,
            !tracked.same_shape,
        );
        self.model = tracked.model;
        match payload {
            Patch::Unchanged => {}
            Patch::Diff(p) => {
                self.version = next_version;
                self.wire.push("diff", &p).await?;
            }
            Patch::Whole => self.send_whole().await?,
        }
        self.wire.release();
        let title = self.view.title();
        if title != self.title {
            self.title = title;
            if let Some(t) = &self.title {
                let payload = serde_json::json!({ "title": t }).to_string();
                self.wire.push("title", &payload).await?;
            }
        }
        Ok(())
    }

    async fn run_hooks(&mut self) -> Result<(), End> {
        let result = {
            let mut ctx = SyncCtx::<V> {
                state: &self.rt.state,
            };
            AssertUnwindSafe(Box::pin(self.view.run_sync_hooks(&mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => Err(End::Crash(format!(
                "sync hook panicked: {}",
                panic_message(p)
            ))),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "sync hook failed");
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Whether the assigns now state other scopes than those subscribed (a changed key, or a
    /// key set that grew or shrank).
    fn scopes_changed(&self) -> bool {
        self.sub
            .as_ref()
            .is_some_and(|sub| sub.keys != scope_keys(&self.view))
    }

    /// Subscribes with the view's key and applies the replay. `Ok(Some(xids))`: the replay
    /// asks for a reload whose snapshot sees those transactions.
    async fn subscribe(
        &mut self,
        since: u64,
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<Vec<u32>>, Gap> {
        let Some(sub) = &mut self.sub else {
            return Ok(None);
        };
        let keys = scope_keys(&self.view);
        let mut held = HeldRows::default();
        self.view.held_rows(&mut held);
        let (replay, seq_after) =
            sub.fanout
                .subscribe(sub.mailbox.id, keys.clone(), &held, since, snapshot)?;
        sub.seq_after = seq_after;
        sub.keys = keys;
        if replay.is_empty() {
            return Ok(None);
        }
        let xids: Vec<u32> = replay.iter().map(|d| d.txn.xid).collect();
        Ok(match self.apply(replay).await {
            Ok(Applied::Done) => None,
            Ok(Applied::Reload) | Err(_) => Some(xids),
        })
    }

    /// Reloads the watched assigns under a new fence (retrying a few times). The new snapshot
    /// sees at least the transactions in `must_see` (those that asked for the reload).
    async fn reload(&mut self, mut must_see: Vec<u32>) -> Result<(), End> {
        let Some(fanout) = self.sub.as_ref().map(|s| s.fanout.clone()) else {
            return Ok(());
        };
        let mut delay = Duration::from_millis(50);
        let mut stale = false;
        for attempt in 0..6 {
            if let Some(sub) = &self.sub {
                sub.mailbox.overflow.store(false, Ordering::Release);
            }
            // A reload takes a database connection like a mount does.
            let permits = match self.rt.mount_permits(None).await {
                Ok(p) => p,
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    continue;
                }
            };
            let s0 = fanout.next_seq();
            let mut db = DbSlot::new(self.rt.pool.clone());
            if stale {
                db.clear_statement_cache();
            }
            let result = match db.begin_seeing(&must_see).await {
                Err(e) => Ok(Err(e)),
                Ok(_) => {
                    let mut m = Mount::<V> {
                        state: &self.rt.state,
                        params: &self.params,
                        session: &self.session,
                        connected: true,
                        db: &mut db,
                    };
                    AssertUnwindSafe(Box::pin(self.view.reload(&mut m)))
                        .catch_unwind()
                        .await
                }
            };
            match result {
                Err(p) => return Err(End::Crash(format!("reload panicked: {}", panic_message(p)))),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, attempt, "reload failed; retrying");
                    if is_stale_statement(&e) {
                        stale = true;
                    }
                    db.rollback().await;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    continue;
                }
                Ok(Ok(())) => {}
            }
            let finished = db.finish().await;
            drop(permits);
            self.view.share_rows();
            if let Err(e) = finished {
                tracing::warn!(error = %e, attempt, "reload transaction failed; retrying");
                continue;
            }
            self.run_hooks().await?;
            match self.subscribe(s0, db.snapshot.as_ref()).await {
                Ok(None) => return Ok(()),
                Ok(Some(xids)) => must_see = xids,
                Err(Gap) => {}
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(End::Crash("reload kept failing".into()))
    }

    async fn on_changes(&mut self, first: Box<Delivery>) -> Result<(), End> {
        let mut batch = vec![*first];
        let mut overflow = false;
        if let Some(sub) = &mut self.sub {
            sub.mailbox.taken(&batch[0]);
            while batch.len() < 256 {
                match sub.mailbox.rx.try_recv() {
                    Ok(d) => {
                        sub.mailbox.taken(&d);
                        batch.push(*d);
                    }
                    Err(_) => break,
                }
            }
            let after = sub.seq_after;
            batch.retain(|d| d.seq >= after);
            overflow = sub.mailbox.overflow.load(Ordering::Acquire);
        }
        if overflow {
            tracing::info!("view fell behind; reloading");
            self.reload(Vec::new()).await?;
        } else if !batch.is_empty() {
            let xids: Vec<u32> = batch.iter().map(|d| d.txn.xid).collect();
            match self.apply(batch).await? {
                Applied::Done if self.scopes_changed() => {
                    // A key set derived from the rows changed: rows entering it are loaded
                    // through the fence (the new snapshot sees what was just applied).
                    self.reload(xids).await?
                }
                Applied::Done => {}
                Applied::Reload => self.reload(xids).await?,
            }
        }
        if let Some(why) = self.view.over_cap() {
            // An error, not a silent slowdown.
            return Err(End::Crash(why));
        }
        self.render_and_send().await
    }

    async fn apply(&mut self, deliveries: Vec<Delivery>) -> Result<Applied, End> {
        if deliveries
            .iter()
            .any(|d| d.items.iter().any(|i| i.op == Op::Reload))
        {
            return Ok(Applied::Reload);
        }
        let batch = ChangeBatch { deliveries };
        let result = {
            let mut ctx = SyncCtx::<V> {
                state: &self.rt.state,
            };
            AssertUnwindSafe(Box::pin(self.view.apply_changes(&batch, &mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => Err(End::Crash(format!(
                "applying changes panicked: {}",
                panic_message(p)
            ))),
            Ok(Ok(_)) => Ok(Applied::Done),
            Ok(Err(ApplyError::Reload)) => Ok(Applied::Reload),
            Ok(Err(ApplyError::Decode(e))) => {
                tracing::error!(error = %e, "a row did not decode; reloading the view");
                Ok(Applied::Reload)
            }
            Ok(Err(ApplyError::Hook(e))) => {
                tracing::error!(error = %e, "sync hook failed");
                Ok(Applied::Done)
            }
        }
    }
}

/// About how many bytes of frames a whole page makes (JSON escaping included).
fn page_estimate(m: &Rendered) -> usize {
    let rows: usize = m.lists.iter().map(|l| l.rows.len() * 48).sum();
    (m.html_bytes() + rows) / 4 * 5 + 256
}

/// About how many bytes a diff of this render makes (at most the statics plus the rows of
/// its operations; JSON escaping included).
fn diff_estimate(t: &crate::render::Tracked) -> usize {
    let statics: usize = t.model.statics.iter().map(String::len).sum();
    let rows: usize = t.ops.iter().map(|ops| ops_estimate(ops)).sum();
    (statics + rows) / 4 * 5 + 256
}

fn ops_estimate(ops: &[crate::render::ListOp]) -> usize {
    use crate::render::ListOp;
    ops.iter()
        .map(|op| match op {
            ListOp::Replace(row) | ListOp::Insert { row, .. } => row.html_bytes() + 48,
            ListOp::Delete(k) | ListOp::Move { key: k, .. } => k.as_str().len() + 48,
            ListOp::Patch {
                row,
                old_statics,
                lists,
            } => {
                let statics: usize = row.sub.as_ref().map_or(0, |sub| {
                    old_statics
                        .iter()
                        .map(|(i, _)| sub.statics.get(*i).map_or(0, String::len))
                        .sum()
                });
                row.key().as_str().len()
                    + 48
                    + statics
                    + lists
                        .iter()
                        .map(|(_, ops)| ops_estimate(ops))
                        .sum::<usize>()
            }
        })
        .sum()
}

/// The scope keys the view's assigns state right now.
fn scope_keys<V: LiveView>(view: &V) -> Vec<ScopeKey> {
    let mut scopes = Scopes::default();
    view.watch_scopes(&mut scopes);
    scopes
        .list
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (s.slot, s.ty, s.column, k.clone()))
        })
        .collect()
}

enum Applied {
    Done,
    Reload,
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
