//! One websocket connection: reads frames, routes them by topic to view tasks, answers
//! heartbeats, refuses bad input with a clear error, and writes outgoing frames in batches
//! (one flush when the queue drains).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::protocol::{self, Inbound, Reason, error_reply, frame, reply};
use crate::runtime::Runtime;
use crate::task::keep;
use crate::task::{Attach, JoinRequest, OutFrame, Outbound, Queued, ToView, Views};
use crate::token::{TokenError, ViewToken};
use crate::view::{Event, EventKind};

/// The upgraded connection a socket serves.
pub(crate) type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Outgoing frames queued per connection (besides the byte cap).
const OUT_QUEUE: usize = 256;
/// Inbound messages queued per view before the client is told it is busy.
const VIEW_INBOX: usize = 64;
/// Longest topic a client may name (it is echoed in every frame of that view).
const MAX_TOPIC: usize = 128;
/// Longest `join_ref` / `ref`.
const MAX_REF: usize = 32;
/// Longest URL in a join or params frame.
pub(crate) const MAX_URL: usize = 4096;
/// Longest view token in a join.
const MAX_TOKEN: usize = 16 * 1024;
/// Longest blob of kept assigns in a join.
const MAX_KEEP: usize = 16 * 1024;
/// Longest resume id in a join (ours are 22 characters).
const MAX_RESUME_ID: usize = 64;

struct Topic {
    join_ref: String,
    tx: mpsc::Sender<Box<Queued>>,
}

/// What one connection may make the server hold, from the runtime's configuration.
struct Budget {
    /// Bytes of inbound events queued for this connection's views.
    inbound: Arc<Semaphore>,
    inbound_cap: usize,
    /// Mounts of this connection's views in flight at once.
    mounts: Arc<Semaphore>,
}

/// Serves one websocket until it closes. One task reads frames, writes what the views queued
/// (in batches, one flush when the queue drains) and keeps the idle timer. A write that the
/// client does not take within the write timeout closes the connection.
pub(crate) async fn serve_socket<S: Clone + Send + Sync + 'static>(
    rt: Arc<Runtime<S>>,
    views: Arc<Views<S>>,
    mut ws: Ws,
) {
    let cfg = &rt.config;
    let (out, mut out_rx) = Outbound::new(OUT_QUEUE, cfg.max_queued_bytes_per_socket);
    let budget = Budget {
        inbound: Arc::new(Semaphore::new(cfg.max_queued_bytes_per_socket)),
        inbound_cap: cfg.max_queued_bytes_per_socket,
        mounts: Arc::new(Semaphore::new(cfg.max_mounts_per_socket.max(1))),
    };
    let mut topics: HashMap<String, Topic> = HashMap::new();
    let mut replies: Vec<String> = Vec::new();
    let idle = cfg.idle_timeout;
    let write_timeout = cfg.write_timeout;
    let mut closing = rt.closing.subscribe();
    let mut deadline = Instant::now() + idle;
    let _open = OpenSocket::count(&rt.sockets);
    // Set once the server stops: the client was told to reconnect.
    let mut drain: Option<Drain> = None;
    loop {
        if drain.is_none() && *closing.borrow_and_update() {
            drain = Some(start_drain(&rt.config, &mut replies));
        }
        if let Some(d) = &drain {
            // Close once the client sent its last frame, its events were handled and their
            // replies written; or at the deadline.
            let handled = budget.inbound.available_permits() >= budget.inbound_cap;
            let done = d.client_done && handled && out_rx.is_empty() && replies.is_empty();
            if done || Instant::now() >= d.until {
                close_and_drain(&mut ws, 1012, "restart", write_timeout).await;
                break;
            }
        }
        tokio::select! {
            msg = ws.next() => {
                deadline = Instant::now() + idle;
                match msg {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => {
                        let drained = Box::pin(handle_text(&rt, &views, text.as_str(), &mut topics, &out, &budget, &mut replies)).await;
                        if drained && let Some(d) = &mut drain {
                            d.client_done = true;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!("binary frame refused");
                        replies.push(error_frame(Reason::Malformed, "binary frames are not accepted"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        tracing::warn!(error = %e, "oversized frame; closing the connection");
                        close_and_drain(&mut ws, 1009, "too_large", write_timeout).await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read error");
                        break;
                    }
                }
            }
            Some(first) = out_rx.recv() => {
                match tokio::time::timeout(write_timeout, write_batch(&mut ws, first, &mut out_rx)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::warn!("the client stopped reading; closing the connection");
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline), if drain.is_none() => {
                tracing::info!("closing an idle websocket");
                close_and_drain(&mut ws, 1000, "idle", write_timeout).await;
                break;
            }
            _ = closing.changed(), if drain.is_none() => {}
            // While draining, look again now and then (events finishing free their budget).
            _ = tokio::time::sleep(Duration::from_millis(20)), if drain.is_some() => {}
        }
        if !replies.is_empty() {
            let write = async {
                for r in replies.drain(..) {
                    ws.feed(Message::text(r)).await?;
                }
                ws.flush().await
            };
            match tokio::time::timeout(write_timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::warn!("the client stopped reading; closing the connection");
                    break;
                }
            }
        }
    }
    // Views waiting to queue a frame give up; dropping the topics closes every view's inbox.
    out.close();
    budget.mounts.close();
}

/// A graceful stop of one connection: the client was told to reconnect.
struct Drain {
    /// The client said it sends nothing more (`drained`).
    client_done: bool,
    /// Close at the latest then.
    until: Instant,
}

/// Tells the client the server stops: it sends nothing more (it queues new events), answers
/// `drained`, and reconnects after `reconnect_in` ms (random, so clients do not all come
/// back at once) to whatever the address serves next.
fn start_drain(cfg: &crate::config::LiveConfig, replies: &mut Vec<String>) -> Drain {
    let spread = cfg.reconnect_jitter.as_millis().max(1) as u64;
    let r = crate::token::random_bytes(8);
    let n = u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]);
    let payload = serde_json::json!({ "reconnect_in": n % spread }).to_string();
    replies.push(frame(None, None, "phoenix", "drain", &payload));
    Drain {
        client_done: false,
        until: Instant::now() + cfg.drain_timeout,
    }
}

/// Counts an open socket while it lives ([`Runtime::sockets`]).
struct OpenSocket<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> OpenSocket<'a> {
    fn count(open: &'a tokio::sync::watch::Sender<usize>) -> Self {
        open.send_modify(|n| *n += 1);
        OpenSocket(open)
    }
}

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Sends a close frame, then reads and discards what the client still sends (up to a few
/// MiB, for at most `limit`) so that closing the TCP connection with unread data does not
/// reset it before the client has read the close frame.
async fn close_and_drain(ws: &mut Ws, code: u16, reason: &'static str, limit: Duration) {
    let close = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let drain = async {
        let _ = ws.send(Message::Close(Some(close))).await;
        let io = ws.get_mut();
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < (16 << 20) {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(limit.min(Duration::from_secs(2)), drain).await;
}

/// Writes `first` and everything else queued, then flushes once.
async fn write_batch(
    ws: &mut Ws,
    first: Box<OutFrame>,
    rx: &mut mpsc::Receiver<Box<OutFrame>>,
) -> Result<(), tungstenite::Error> {
    // Each frame's share of the byte budget is given back once it is written.
    ws.feed(Message::text(first.text)).await?;
    while let Ok(more) = rx.try_recv() {
        ws.feed(Message::text(more.text)).await?;
    }
    ws.flush().await
}

fn error_frame(reason: Reason, detail: &str) -> String {
    let payload = serde_json::json!({ "reason": reason.as_str(), "detail": detail }).to_string();
    frame(None, None, "phoenix", "error", &payload)
}

/// Handles one text frame; true when it is the client's `drained` (it sends nothing more).
async fn handle_text<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    views: &Views<S>,
    text: &str,
    topics: &mut HashMap<String, Topic>,
    out: &Outbound,
    budget: &Budget,
    replies: &mut Vec<String>,
) -> bool {
    let f = match protocol::parse(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "malformed frame");
            replies.push(error_frame(Reason::Malformed, &e.0));
            return false;
        }
    };
    // Whatever a client names is echoed back or kept: bounded.
    if f.topic.len() > MAX_TOPIC {
        tracing::warn!(len = f.topic.len(), "topic too long");
        replies.push(error_frame(
            Reason::Malformed,
            "topic longer than 128 bytes",
        ));
        return false;
    }
    if f.join_ref.as_ref().is_some_and(|r| r.len() > MAX_REF)
        || f.msg_ref.as_ref().is_some_and(|r| r.len() > MAX_REF)
    {
        tracing::warn!("ref too long");
        replies.push(error_frame(Reason::Malformed, "refs longer than 32 bytes"));
        return false;
    }
    let jr = f.join_ref.as_deref();
    let mr = f.msg_ref.as_deref();
    match f.event.as_str() {
        "heartbeat" if f.topic == "phoenix" => {
            replies.push(reply(None, mr, "phoenix", true, "{}"));
        }
        // After a `drain`: the client sends nothing more on this connection.
        "drained" if f.topic == "phoenix" => return true,
        "join" => join(rt, views, f, topics, out, budget, replies),
        "leave" => {
            let removed = topics
                .get(&f.topic)
                .is_some_and(|t| Some(t.join_ref.as_str()) == jr);
            if removed {
                topics.remove(&f.topic);
                replies.push(reply(jr, mr, &f.topic, true, "{}"));
            } else {
                replies.push(error_reply(jr, mr, &f.topic, Reason::NotJoined));
            }
        }
        "event" | "params" | "resync" => {
            let Some(t) = topics
                .get(&f.topic)
                .filter(|t| Some(t.join_ref.as_str()) == jr && !t.tx.is_closed())
            else {
                tracing::warn!(topic = %f.topic, "frame for a view that is not joined");
                replies.push(error_reply(jr, mr, &f.topic, Reason::NotJoined));
                return false;
            };
            let msg = match to_view(&f) {
                Ok(m) => m,
                Err(why) => {
                    tracing::warn!(topic = %f.topic, error = why, "bad event payload");
                    replies.push(error_reply(jr, mr, &f.topic, Reason::BadPayload));
                    return false;
                }
            };
            // The event's bytes count against the connection's budget until the view has
            // handled it.
            let cost = text.len().clamp(1, budget.inbound_cap) as u32;
            let Ok(permit) = budget.inbound.clone().try_acquire_many_owned(cost) else {
                tracing::warn!(topic = %f.topic, "inbound budget of the connection used up");
                replies.push(error_reply(jr, mr, &f.topic, Reason::Busy));
                return false;
            };
            match t.tx.try_send(Box::new(Queued {
                msg,
                _permit: Some(permit),
            })) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(topic = %f.topic, "view inbox full");
                    replies.push(error_reply(jr, mr, &f.topic, Reason::Busy));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    topics.remove(&f.topic);
                    replies.push(error_reply(jr, mr, &f.topic, Reason::NotJoined));
                }
            }
        }
        other => {
            tracing::warn!(event = other, "unknown frame event");
            replies.push(error_reply(jr, mr, &f.topic, Reason::UnknownEvent));
        }
    }
    false
}

fn to_view(f: &Inbound) -> Result<ToView, &'static str> {
    let msg_ref = f.msg_ref.clone();
    match f.event.as_str() {
        "event" => {
            let p = &f.payload;
            let kind = p
                .get("type")
                .and_then(Value::as_str)
                .ok_or("missing type")?;
            let name = p
                .get("event")
                .and_then(Value::as_str)
                .ok_or("missing event name")?;
            let value = match p.get("value") {
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err("value must be an object"),
            };
            let target = match p.get("target") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err("target must be a string"),
            };
            let n = match p.get("n") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or("n must be a non-negative integer")?),
            };
            Ok(ToView::Event {
                msg_ref,
                event: Box::new(Event {
                    kind: EventKind::parse(kind),
                    name: name.to_string(),
                    value,
                    target,
                }),
                n,
            })
        }
        "params" => {
            let url = f
                .payload
                .get("url")
                .and_then(Value::as_str)
                .ok_or("missing url")?;
            if url.len() > MAX_URL {
                return Err("url too long");
            }
            Ok(ToView::Params {
                msg_ref,
                url: url.to_string(),
            })
        }
        _ => Ok(ToView::Resync { msg_ref }),
    }
}

fn join<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    views: &Views<S>,
    f: Inbound,
    topics: &mut HashMap<String, Topic>,
    out: &Outbound,
    budget: &Budget,
    replies: &mut Vec<String>,
) {
    let mr = f.msg_ref.as_deref();
    let Some(join_ref) = f.join_ref.clone() else {
        replies.push(error_reply(None, mr, &f.topic, Reason::BadPayload));
        return;
    };
    // A view that ended (crashed, or its mount failed) leaves its topic free.
    topics.retain(|_, t| !t.tx.is_closed());
    if topics.contains_key(&f.topic) {
        replies.push(error_reply(
            Some(&join_ref),
            mr,
            &f.topic,
            Reason::AlreadyJoined,
        ));
        return;
    }
    if topics.len() >= rt.config.max_views_per_socket {
        tracing::warn!(
            max = rt.config.max_views_per_socket,
            "join refused: too many views on one connection"
        );
        replies.push(error_reply(
            Some(&join_ref),
            mr,
            &f.topic,
            Reason::TooManyViews,
        ));
        return;
    }
    let token_str = f.payload.get("token").and_then(Value::as_str).unwrap_or("");
    let url = f
        .payload
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string();
    let keep_blob = f
        .payload
        .get("keep")
        .and_then(Value::as_str)
        .map(str::to_string);
    // `{"id": …, "v": n}`: the view to resume and the last version the client applied.
    let resume = f.payload.get("resume").and_then(|r| {
        let id = r.get("id")?.as_str()?;
        let v = r.get("v")?.as_u64()?;
        (id.len() <= MAX_RESUME_ID).then(|| (id.to_string(), v))
    });
    if token_str.len() > MAX_TOKEN
        || url.len() > MAX_URL
        || keep_blob.as_ref().is_some_and(|k| k.len() > MAX_KEEP)
    {
        replies.push(error_reply(
            Some(&join_ref),
            mr,
            &f.topic,
            Reason::BadPayload,
        ));
        return;
    }
    let token: ViewToken = match rt.signer.verify(token_str) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, topic = %f.topic, "join refused: bad token");
            replies.push(error_reply(
                Some(&join_ref),
                mr,
                &f.topic,
                Reason::InvalidToken,
            ));
            return;
        }
    };
    if let Err(TokenError::Expired) = token.check_expiry() {
        tracing::info!(topic = %f.topic, "join refused: expired token");
        replies.push(error_reply(Some(&join_ref), mr, &f.topic, Reason::Expired));
        return;
    }
    let (tx, inbox) = mpsc::channel(VIEW_INBOX);
    let page = keep::page_id(token_str);
    let mut req = JoinRequest {
        topic: f.topic.clone(),
        join_ref: join_ref.clone(),
        msg_ref: f.msg_ref.clone(),
        token,
        page,
        url,
        inbox,
        out: out.clone(),
        socket_mounts: budget.mounts.clone(),
        keep: keep_blob,
    };
    // A join that names a view of this node resumes it; one this node does not have (it
    // ended, or lived on another node) mounts anew.
    if let Some((id, version)) = resume {
        let keep = req.keep.take();
        match views
            .resumable()
            .attach(&id, Box::new(Attach { join: req, version }))
        {
            Ok(()) => {
                topics.insert(f.topic, Topic { join_ref, tx });
                return;
            }
            Err(a) => {
                req = a.join;
                req.keep = keep;
            }
        }
    }
    match views.spawn(rt, req) {
        Ok(()) => {
            topics.insert(f.topic, Topic { join_ref, tx });
        }
        Err(route) => {
            tracing::warn!(%route, "join for an unknown view");
            replies.push(error_reply(Some(&join_ref), mr, &f.topic, Reason::NotFound));
        }
    }
}
