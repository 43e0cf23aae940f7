//! One websocket connection: reads frames, routes them by topic to view tasks, answers
//! heartbeats, refuses bad input with a clear error, and writes outgoing frames in batches
//! (one flush when the queue drains).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    tx: mpsc::Sender<ToView>,
}

/// Serves one websocket until it closes.
pub(crate) async fn serve_socket<S: Clone + Send + Sync + 'static>(
    rt: Arc<Runtime<S>>,
    socket: WebSocket,
) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String)>();
    let mut topics: HashMap<String, Topic> = HashMap::new();
    let idle = rt.config.idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            msg = stream.next() => {
                deadline = Instant::now() + idle;
                match msg {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => {
                        handle_text(&rt, text.as_str(), &mut topics, &out, &done_tx).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!("binary frame refused");
                        send_error(&out, "malformed", "binary frames are not accepted").await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
                            tracing::warn!(error = %text, "oversized frame; closing the connection");
                            let _ = out
                                .send(Message::Close(Some(CloseFrame {
                                    code: 1009,
                                    reason: "too_large".into(),
                                })))
                                .await;
                        } else {
                            tracing::debug!(error = %text, "websocket read error");
                        }
                        break;
                    }
                }
            }
            Some((topic, join_ref)) = done_rx.recv() => {
                if topics.get(&topic).is_some_and(|t| t.join_ref == join_ref) {
                    topics.remove(&topic);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("closing an idle websocket");
                let _ = out
                    .send(Message::Close(Some(CloseFrame { code: 1000, reason: "idle".into() })))
                    .await;
                break;
            }
        }
    }
    drop(topics);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(first) = rx.recv().await {
        let closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return;
        }
        if !closing {
            while let Ok(more) = rx.try_recv() {
                let closing = matches!(more, Message::Close(_));
                if sink.feed(more).await.is_err() {
                    return;
                }
                if closing {
                    break;
                }
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
        if closing {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn send(out: &mpsc::Sender<Message>, text: String) {
    let _ = out.send(Message::Text(text.into())).await;
}

async fn send_error(out: &mpsc::Sender<Message>, reason: &str, detail: &str) {
    let payload = serde_json::json!({ "reason": reason, "detail": detail }).to_string();
    send(out, frame(None, None, "phoenix", "error", &payload)).await;
}

async fn handle_text<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    text: &str,
    topics: &mut HashMap<String, Topic>,
    out: &mpsc::Sender<Message>,
    done: &mpsc::UnboundedSender<(String, String)>,
) {
    let f = match protocol::parse(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "malformed frame");
            send_error(out, "malformed", &e.0).await;
            return;
        }
    };
    let jr = f.join_ref.as_deref();
    let mr = f.msg_ref.as_deref();
    match f.event.as_str() {
        "heartbeat" if f.topic == "phoenix" => {
            send(out, reply(None, mr, "phoenix", true, "{}")).await;
        }
        "join" => join(rt, f, topics, out, done).await,
        "leave" => {
            let removed = topics
                .get(&f.topic)
                .is_some_and(|t| Some(t.join_ref.as_str()) == jr);
            if removed {
                topics.remove(&f.topic);
                send(out, reply(jr, mr, &f.topic, true, "{}")).await;
            } else {
                send(out, error_reply(jr, mr, &f.topic, "not_joined")).await;
            }
        }
        "event" | "params" | "resync" => {
            let Some(t) = topics
                .get(&f.topic)
                .filter(|t| Some(t.join_ref.as_str()) == jr)
            else {
                tracing::warn!(topic = %f.topic, "frame for a view that is not joined");
                send(out, error_reply(jr, mr, &f.topic, "not_joined")).await;
                return;
            };
            let msg = match to_view(&f) {
                Ok(m) => m,
                Err(why) => {
                    tracing::warn!(topic = %f.topic, error = why, "bad event payload");
                    send(out, error_reply(jr, mr, &f.topic, "bad_payload")).await;
                    return;
                }
            };
            match t.tx.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(topic = %f.topic, "view inbox full");
                    send(out, error_reply(jr, mr, &f.topic, "busy")).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    send(out, error_reply(jr, mr, &f.topic, "not_joined")).await;
                }
            }
        }
        other => {
            tracing::warn!(event = other, "unknown frame event");
            send(out, error_reply(jr, mr, &f.topic, "unknown_event")).await;
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
                event: Event {
                    kind: EventKind::parse(kind),
                    name: name.to_string(),
                    value,
                    target,
                },
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

async fn join<S: Clone + Send + Sync + 'static>(
    rt: &Arc<Runtime<S>>,
    f: Inbound,
    topics: &mut HashMap<String, Topic>,
    out: &mpsc::Sender<Message>,
    done: &mpsc::UnboundedSender<(String, String)>,
) {
    let mr = f.msg_ref.as_deref();
    let Some(join_ref) = f.join_ref.clone() else {
        send(out, error_reply(None, mr, &f.topic, "bad_payload")).await;
        return;
    };
    if topics.contains_key(&f.topic) {
        send(
            out,
            error_reply(Some(&join_ref), mr, &f.topic, "already_joined"),
        )
        .await;
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
            send(
                out,
                error_reply(Some(&join_ref), mr, &f.topic, "invalid_token"),
            )
            .await;
            return;
        }
    };
    if let Err(TokenError::Expired) = token.check_expiry() {
        tracing::info!(topic = %f.topic, "join refused: expired token");
        send(out, error_reply(Some(&join_ref), mr, &f.topic, "expired")).await;
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
        done: done.clone(),
    };
    match spawn_view(rt, req) {
        Ok(()) => {
            topics.insert(f.topic, Topic { join_ref, tx });
        }
        Err(route) => {
            tracing::warn!(%route, "join for an unknown view");
            send(out, error_reply(Some(&join_ref), mr, &f.topic, "not_found")).await;
        }
    }
}
