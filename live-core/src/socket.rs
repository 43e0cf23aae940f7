//! One websocket connection: reads frames, routes them by topic to view tasks, answers
//! heartbeats, refuses bad input with a clear error, and writes outgoing frames in batches
//! (one flush when the queue drains).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::protocol::{self, Inbound, error_reply, frame, reply};
use crate::router::{Runtime, spawn_view};
use crate::session::{JoinRequest, ToView};
use crate::token::{TokenError, ViewToken};
use crate::view::{Event, EventKind};

/// Outgoing frames queued per connection before a view waits.
const OUT_QUEUE: usize = 256;
/// Inbound messages queued per view before the client is told it is busy.
const VIEW_INBOX: usize = 64;

struct Topic {
    join_ref: String,
    tx: mpsc::Sender<Box<ToView>>,
}

/// Serves one websocket until it closes. One task reads frames, writes what the views queued
/// (in batches, one flush when the queue drains) and keeps the idle timer.
pub(crate) async fn serve_socket<S: Clone + Send + Sync + 'static>(
    rt: Arc<Runtime<S>>,
    mut ws: WebSocket,
) {
    let (out, mut out_rx) = mpsc::channel::<Box<Message>>(OUT_QUEUE);
    let mut topics: HashMap<String, Topic> = HashMap::new();
    let mut replies: Vec<String> = Vec::new();
    let idle = rt.config.idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            msg = ws.next() => {
                deadline = Instant::now() + idle;
                match msg {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => {
                        Box::pin(handle_text(&rt, text.as_str(), &mut topics, &out, &mut replies)).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!("binary frame refused");
                        replies.push(error_frame("malformed", "binary frames are not accepted"));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
                            tracing::warn!(error = %text, "oversized frame; closing the connection");
                            let close = CloseFrame { code: 1009, reason: "too_large".into() };
                            let _ = ws.send(Message::Close(Some(close))).await;
                        } else {
                            tracing::debug!(error = %text, "websocket read error");
                        }
                        break;
                    }
                }
                if !replies.is_empty() {
                    for r in replies.drain(..) {
                        if ws.feed(Message::Text(r.into())).await.is_err() {
                            return;
                        }
                    }
                    if ws.flush().await.is_err() {
                        break;
                    }
                }
            }
            Some(first) = out_rx.recv() => {
                if write_batch(&mut ws, first, &mut out_rx).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("closing an idle websocket");
                let close = CloseFrame { code: 1000, reason: "idle".into() };
                let _ = ws.send(Message::Close(Some(close))).await;
                break;
            }
        }
    }
    // Dropping the topics closes every view's inbox: the views end.
}

/// Writes `first` and everything else queued, then flushes once.
async fn write_batch(
    ws: &mut WebSocket,
    first: Box<Message>,
    rx: &mut mpsc::Receiver<Box<Message>>,
) -> Result<(), axum::Error> {
    ws.feed(*first).await?;
    while let Ok(more) = rx.try_recv() {
        ws.feed(*more).await?;
    }
    ws.flush().await
}

fn error_frame(reason: &str, detail: &str) -> String {
    let payload = serde_json::json!({ "reason": reason, "detail": detail }).to_string();
    frame(None, None, "phoenix", "error", &payload)
}

async fn handle_text<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    text: &str,
    topics: &mut HashMap<String, Topic>,
    out: &mpsc::Sender<Box<Message>>,
    replies: &mut Vec<String>,
) {
    let f = match protocol::parse(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "malformed frame");
            replies.push(error_frame("malformed", &e.0));
            return;
        }
    };
    let jr = f.join_ref.as_deref();
    let mr = f.msg_ref.as_deref();
    match f.event.as_str() {
        "heartbeat" if f.topic == "phoenix" => {
            replies.push(reply(None, mr, "phoenix", true, "{}"));
        }
        "join" => join(rt, f, topics, out, replies),
        "leave" => {
            let removed = topics
                .get(&f.topic)
                .is_some_and(|t| Some(t.join_ref.as_str()) == jr);
            if removed {
                topics.remove(&f.topic);
                replies.push(reply(jr, mr, &f.topic, true, "{}"));
            } else {
                replies.push(error_reply(jr, mr, &f.topic, "not_joined"));
            }
        }
        "event" | "params" | "resync" => {
            let Some(t) = topics
                .get(&f.topic)
                .filter(|t| Some(t.join_ref.as_str()) == jr && !t.tx.is_closed())
            else {
                tracing::warn!(topic = %f.topic, "frame for a view that is not joined");
                replies.push(error_reply(jr, mr, &f.topic, "not_joined"));
                return;
            };
            let msg = match to_view(&f) {
                Ok(m) => m,
                Err(why) => {
                    tracing::warn!(topic = %f.topic, error = why, "bad event payload");
                    replies.push(error_reply(jr, mr, &f.topic, "bad_payload"));
                    return;
                }
            };
            match t.tx.try_send(Box::new(msg)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(topic = %f.topic, "view inbox full");
                    replies.push(error_reply(jr, mr, &f.topic, "busy"));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    topics.remove(&f.topic);
                    replies.push(error_reply(jr, mr, &f.topic, "not_joined"));
                }
            }
        }
        other => {
            tracing::warn!(event = other, "unknown frame event");
            replies.push(error_reply(jr, mr, &f.topic, "unknown_event"));
        }
    }
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
            Ok(ToView::Event {
                msg_ref,
                event: Box::new(Event {
                    kind: EventKind::parse(kind),
                    name: name.to_string(),
                    value,
                    target,
                }),
            })
        }
        "params" => {
            let url = f
                .payload
                .get("url")
                .and_then(Value::as_str)
                .ok_or("missing url")?;
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
    f: Inbound,
    topics: &mut HashMap<String, Topic>,
    out: &mpsc::Sender<Box<Message>>,
    replies: &mut Vec<String>,
) {
    let mr = f.msg_ref.as_deref();
    let Some(join_ref) = f.join_ref.clone() else {
        replies.push(error_reply(None, mr, &f.topic, "bad_payload"));
        return;
    };
    // A view that ended (crashed, or its mount failed) leaves its topic free.
    topics.retain(|_, t| !t.tx.is_closed());
    if topics.contains_key(&f.topic) {
        replies.push(error_reply(Some(&join_ref), mr, &f.topic, "already_joined"));
        return;
    }
    let token_str = f.payload.get("token").and_then(Value::as_str).unwrap_or("");
    let url = f
        .payload
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_string();
    let token: ViewToken = match rt.signer.verify(token_str) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, topic = %f.topic, "join refused: bad token");
            replies.push(error_reply(Some(&join_ref), mr, &f.topic, "invalid_token"));
            return;
        }
    };
    if let Err(TokenError::Expired) = token.check_expiry() {
        tracing::info!(topic = %f.topic, "join refused: expired token");
        replies.push(error_reply(Some(&join_ref), mr, &f.topic, "expired"));
        return;
    }
    let (tx, inbox) = mpsc::channel(VIEW_INBOX);
    let req = JoinRequest {
        topic: f.topic.clone(),
        join_ref: join_ref.clone(),
        msg_ref: f.msg_ref.clone(),
        token,
        url,
        inbox,
        out: out.clone(),
    };
    match spawn_view(rt, req) {
        Ok(()) => {
            topics.insert(f.topic, Topic { join_ref, tx });
        }
        Err(route) => {
            tracing::warn!(%route, "join for an unknown view");
            replies.push(error_reply(Some(&join_ref), mr, &f.topic, "not_found"));
        }
    }
}
