//! One connected view: its tokio task, its mailbox of database changes, and its loop that
//! handles events, server messages and changes one at a time, renders, and sends diffs.
//!
//! Mounting follows the fence of the design notes: the view gets a mailbox, its rows are loaded
//! in one `REPEATABLE READ` transaction whose snapshot is recorded, then it subscribes with its
//! key; the fan-out replays every recent transaction that snapshot did not see. Nothing
//! committed meanwhile is lost, and nothing the load saw is applied again.
//!
//! The files: [`mount`] (the mount and its permits), [`fence`] (subscribe, replay, reload,
//! changes), [`handlers`] (events, messages, params, pushes), [`render`] (versions and
//! diffs), [`outbound`] (the connection's queue).

mod fence;
mod handlers;
mod mount;
mod outbound;
mod render;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

pub(crate) use mount::mount_retried;
pub(crate) use outbound::{OutFrame, Outbound};

use crate::diff::model_in_pieces;
use crate::fanout::{Delivery, Gap};
use crate::pg::Snapshot;
use crate::protocol::{Reason, error_reply};
use crate::render::Rendered;
use crate::row::WatchTypes;
use crate::runtime::Runtime;
use crate::token::{Session, ViewToken};
use crate::view::{DbSlot, Event, InfoSlot, LiveView, Params, join_params};
use fence::Subscription;
use mount::{mount_view, until_left};
use outbound::Wire;
use render::page_estimate;

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

/// The views a node serves, by route pattern.
pub(crate) struct Views<S> {
    spawners: RwLock<HashMap<String, Arc<dyn ViewSpawner<S>>>>,
}

impl<S> Default for Views<S> {
    fn default() -> Self {
        Views {
            spawners: RwLock::new(HashMap::new()),
        }
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
                s.spawn(rt.clone(), req);
                Ok(())
            }
            None => Err(req.token.route),
        }
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

/// The largest piece a whole page is sent in (bytes of row HTML per frame).
const FRAME_BUDGET: usize = 32 * 1024;

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
