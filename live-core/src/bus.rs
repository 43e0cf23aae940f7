//! Several app nodes on one database: the node that holds the replication slot (the leader)
//! publishes each committed transaction to a NATS JetStream stream, and every node — the
//! leader too — consumes the stream into its own fan-out and replay ring. Postgres decodes the
//! WAL once, whatever the number of nodes.
//!
//! - **Publish, then acknowledge.** The leader acknowledges the slot's LSN only after
//!   JetStream acknowledged the publish. A leader that cannot publish gives the slot up (and
//!   reconnects), so nothing is acknowledged that no node received.
//! - **Duplicates.** After a failover the new leader streams from the slot's confirmed LSN, so
//!   transactions the old leader published but did not acknowledge are published again: the
//!   stream drops them by message id (`Nats-Msg-Id` = commit LSN, commit time and part,
//!   within the duplicate window), and each node skips a transaction at or below the last LSN
//!   it applied.
//! - **Gaps.** A node that sees a hole in the stream's sequence (messages it never received,
//!   say after the stream's limits removed them) reloads every view: never a silent skip.
//! - **Size.** A transaction bigger than the server's `max_payload` is sent in parts and put
//!   back together by each node; one over `SyncConfig::max_transaction_bytes` becomes a
//!   reload of the tables it touched.
//!
//! See `src/docs/nodes.md` for deployment, and how this grows to many nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::fanout::Fanout;
use crate::pubsub::Topics;
use crate::replication::apply::Applier;
use crate::replication::raw::RawTxn;
use crate::replication::{BusConfig, ListenerStatus, Sink, SinkError};

/// Why the bus cannot start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    /// The NATS server cannot be reached.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        message: String,
    },
    /// JetStream refused to create or open the stream or its consumer.
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// How long the leader waits for JetStream to acknowledge a publish.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the bus of one slot.
#[derive(Clone)]
pub(crate) struct Bus {
    js: jetstream::Context,
    client: async_nats::Client,
    stream: String,
    subject: String,
    /// Counts the client's (re)connections: after a server restart the consumer is created
    /// again at once rather than when its pull request times out.
    connects: tokio::sync::watch::Receiver<u64>,
}

/// The stream and subject of a slot (`LIVE_<SLOT>`, `live.<slot>.txn`).
fn names(cfg: &BusConfig, slot: &str) -> (String, String) {
    let clean: String = slot
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let stream = cfg
        .stream
        .clone()
        .unwrap_or_else(|| format!("LIVE_{}", clean.to_ascii_uppercase()));
    (stream, format!("live.{clean}.txn"))
}

impl Bus {
    /// Connects and opens (or creates) the slot's stream.
    pub(crate) async fn connect(cfg: &BusConfig, slot: &str) -> Result<Bus, BusError> {
        let (connects_tx, connects) = tokio::sync::watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .name("live-core")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let tx = connects_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => tx.send_modify(|n| *n += 1),
                        async_nats::Event::Disconnected => {
                            tracing::warn!("bus: disconnected from NATS; reconnecting")
                        }
                        other => tracing::debug!(event = %other, "bus event"),
                    }
                }
            })
            .connect(cfg.nats_url.as_str())
            .await
            .map_err(|e| BusError::Connect {
                url: cfg.nats_url.clone(),
                message: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        let (stream, subject) = names(cfg, slot);
        js.get_or_create_stream(stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            duplicate_window: Duration::from_secs(120),
            max_age: cfg.max_age,
            max_bytes: cfg.max_bytes,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::JetStream(e.to_string()))?;
        Ok(Bus {
            js,
            client,
            stream,
            subject,
            connects,
        })
    }

    /// The largest part the server takes (its `max_payload`, less room for headers).
    fn max_part(&self) -> usize {
        (self.client.server_info().max_payload.max(8192)) - 4096
    }
}

/// The leader's side: publishes each committed transaction, in parts if it is big.
pub(crate) struct Publisher {
    bus: Bus,
}

impl Publisher {
    pub(crate) fn new(bus: Bus) -> Self {
        Publisher { bus }
    }

    async fn publish(&self, raw: &RawTxn) -> Result<(), SinkError> {
        let bytes = raw.encode();
        let max = self.bus.max_part();
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![&bytes[..]]
        } else {
            bytes.chunks(max).collect()
        };
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", message_id(raw, i).as_str());
            headers.insert("Live-Lsn", raw.end_lsn.to_string().as_str());
            headers.insert("Live-Part", format!("{i}/{n}").as_str());
            let ack = self
                .bus
                .js
                .publish_with_headers(self.bus.subject.clone(), headers, part.to_vec().into())
                .await
                .map_err(|e| SinkError(format!("publish: {e}")))?;
            match tokio::time::timeout(PUBLISH_ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(SinkError(format!("publish not acknowledged: {e}"))),
                Err(_) => {
                    return Err(SinkError(format!(
                        "no publish acknowledgement within {PUBLISH_ACK_TIMEOUT:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The JetStream message id of part `part` of `raw`. The commit time is in it: a transaction
/// published again (after a failover) has the same LSN and commit time, and is dropped as a
/// duplicate; another database's transaction at an equal LSN (a new or restored cluster that
/// reuses the slot name within the duplicate window) has not, and is kept. The `live-bench
/// nodes` benchmark, which starts a fresh cluster per scenario, lost every transaction of its
/// later scenarios while the id was the LSN alone.
fn message_id(raw: &RawTxn, part: usize) -> String {
    format!("{:016x}-{:x}-{part}", raw.end_lsn, raw.commit_time_micros)
}

impl Sink for Publisher {
    fn commit<'a>(&'a mut self, raw: RawTxn) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.publish(&raw).await })
    }
}

/// Puts transactions sent in parts back together.
#[derive(Default)]
struct Parts {
    lsn: u64,
    next: usize,
    count: usize,
    bytes: Vec<u8>,
}

/// What one message of the stream means.
enum Received {
    /// A whole transaction.
    Txn(Box<RawTxn>),
    /// A part of one; more follow.
    Partial,
    /// Something that cannot be applied: every view reloads.
    Broken(String),
}

impl Parts {
    fn push(&mut self, headers: Option<&HeaderMap>, payload: &[u8], cap: usize) -> Received {
        let get = |k: &str| {
            headers
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_string())
        };
        let lsn: u64 = get("Live-Lsn").and_then(|v| v.parse().ok()).unwrap_or(0);
        let (i, n) = get("Live-Part")
            .and_then(|v| {
                let (a, b) = v.split_once('/')?;
                Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
            })
            .unwrap_or((0, 1));
        if n <= 1 {
            let broken_part = self.count > 0;
            self.count = 0;
            self.bytes.clear();
            return match RawTxn::decode(payload) {
                Ok(t) if !broken_part => Received::Txn(Box::new(t)),
                Ok(_) => Received::Broken("a transaction sent in parts is incomplete".into()),
                Err(e) => Received::Broken(e.to_string()),
            };
        }
        if i == 0 {
            let broken_part = self.count > 0;
            self.lsn = lsn;
            self.count = n;
            self.next = 0;
            self.bytes.clear();
            if broken_part {
                self.push_part(payload, cap);
                return Received::Broken("a transaction sent in parts is incomplete".into());
            }
        } else if self.count != n || self.lsn != lsn || self.next != i {
            self.count = 0;
            self.bytes.clear();
            return Received::Broken(format!("part {i}/{n} of {lsn} out of order"));
        }
        if !self.push_part(payload, cap) {
            self.count = 0;
            self.bytes = Vec::new();
            return Received::Broken("a transaction in parts is over the size cap".into());
        }
        if self.next < self.count {
            return Received::Partial;
        }
        self.count = 0;
        let bytes = std::mem::take(&mut self.bytes);
        match RawTxn::decode(&bytes) {
            Ok(t) => Received::Txn(Box::new(t)),
            Err(e) => Received::Broken(e.to_string()),
        }
    }

    fn push_part(&mut self, payload: &[u8], cap: usize) -> bool {
        if self.bytes.len() + payload.len() > cap {
            return false;
        }
        self.bytes.extend_from_slice(payload);
        self.next += 1;
        true
    }
}

/// Creates the node's consumer of the stream from sequence `start` on (`None`: after the
/// stream's last message); returns it and the sequence before its first message.
async fn consumer(
    bus: &Bus,
    start: Option<u64>,
) -> Result<(consumer::Consumer<consumer::pull::OrderedConfig>, u64), BusError> {
    let stream = bus
        .js
        .get_stream(bus.stream.clone())
        .await
        .map_err(|e| BusError::JetStream(e.to_string()))?;
    let start = start.unwrap_or(stream.cached_info().state.last_sequence + 1);
    let c = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            filter_subject: bus.subject.clone(),
            // A lost consumer is noticed within seconds, not the default 30 s pull expiry.
            max_expires: Duration::from_secs(5),
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::JetStream(e.to_string()))?;
    Ok((c, start - 1))
}

/// Starts this node's consumer; returns once it receives every message published from now
/// on (so a view that mounts afterwards misses nothing), and runs until `stop`.
pub(crate) async fn start_consumer(
    bus: Bus,
    mut applier: Applier,
    fanout: Arc<Fanout>,
    status: Arc<ListenerStatus>,
    stop: Arc<AtomicBool>,
    max_transaction_bytes: usize,
) -> Result<tokio::task::JoinHandle<()>, BusError> {
    let (first, mut last_seq) = consumer(&bus, None).await?;
    let mut connects = bus.connects.clone();
    connects.mark_unchanged();
    let task = tokio::spawn(async move {
        let mut current = Some(first);
        let mut parts = Parts::default();
        let mut delay = Duration::from_millis(100);
        let cap = max_transaction_bytes.saturating_mul(2).max(1 << 20);
        while !stop.load(Ordering::Acquire) {
            let c = match current.take() {
                Some(c) => c,
                None => match consumer(&bus, Some(last_seq + 1)).await {
                    Ok((c, _)) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "bus consumer: cannot resume; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            let mut messages = match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "bus consumer: no message stream; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            delay = Duration::from_millis(100);
            loop {
                let next = tokio::select! {
                    m = messages.next() => m,
                    _ = connects.changed() => {
                        // Reconnected (the server may have restarted): a new consumer from
                        // the next sequence.
                        tracing::info!(last_seq, "bus: reconnected; resuming the stream");
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stop.load(Ordering::Acquire) { return; }
                        continue;
                    }
                };
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "bus consumer: a stream error");
                        continue;
                    }
                    None => break,
                };
                let (seq, pending) = match msg.info() {
                    Ok(info) => (info.stream_sequence, info.pending),
                    Err(_) => (0, 0),
                };
                status.set_bus_pending(pending);
                if seq > 0 {
                    if seq != last_seq + 1 {
                        if seq <= last_seq {
                            // The stream was created again (its sequence restarted), or a
                            // redelivery: whatever it holds, views reload.
                            tracing::warn!(seq, last_seq, "bus stream sequence went back");
                        } else {
                            tracing::error!(
                                missed = seq - last_seq - 1,
                                "gap in the bus stream; every view reloads"
                            );
                        }
                        reload_all(&fanout, &status);
                    }
                    last_seq = seq;
                }
                match parts.push(msg.headers.as_ref(), &msg.payload, cap) {
                    Received::Partial => {}
                    Received::Txn(raw) => {
                        if let Some(txn) = applier.apply(&raw, &status) {
                            fanout.dispatch(txn);
                            status.count_transaction();
                        }
                    }
                    Received::Broken(why) => {
                        tracing::error!(reason = %why, "a bus message cannot be applied; every view reloads");
                        reload_all(&fanout, &status);
                    }
                }
            }
            tracing::debug!("bus consumer: message stream ended; resuming");
        }
    });
    Ok(task)
}

/// Carries this node's broadcasts to every node (this one too): publishes on
/// `live.<slot>.bcast` with the topic in a header, and delivers what arrives to the node's
/// subscribed views.
pub(crate) async fn start_broadcasts(
    bus: &Bus,
    topics: Arc<Topics>,
    stop: Arc<AtomicBool>,
) -> Result<(), BusError> {
    let subject = bus.subject.replace(".txn", ".bcast");
    let mut sub = bus
        .client
        .subscribe(subject.clone())
        .await
        .map_err(|e| BusError::JetStream(format!("subscribe to broadcasts: {e}")))?;
    let local = topics.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                m = sub.next() => m,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if stop.load(Ordering::Acquire) { return; }
                    continue;
                }
            };
            let Some(msg) = next else { return };
            let topic = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Live-Topic"))
                .map(|v| v.as_str().to_string());
            match topic {
                Some(t) => {
                    local.deliver_local(&t, &msg.payload);
                }
                None => tracing::warn!("a broadcast without a topic; dropped"),
            }
        }
    });
    let client = bus.client.clone();
    topics.set_publish(Arc::new(move |topic: String, payload: Vec<u8>| {
        let client = client.clone();
        let subject = subject.clone();
        Box::pin(async move {
            let mut headers = HeaderMap::new();
            headers.insert("Live-Topic", topic.as_str());
            client
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| e.to_string())
        })
    }));
    Ok(())
}

/// Makes every view of every watched table reload.
fn reload_all(fanout: &Fanout, status: &ListenerStatus) {
    let mut b = crate::replication::change::TxnBuilder::new(0, 0);
    b.reload_all();
    fanout.dispatch(b.finish(0, 0));
    status.count_transaction();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lsn: u64, part: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Live-Lsn", lsn.to_string().as_str());
        h.insert("Live-Part", part);
        h
    }

    #[test]
    fn parts_are_put_back_together_and_broken_sequences_reload() {
        let t = RawTxn {
            xid: 1,
            end_lsn: 42,
            items: vec![crate::replication::raw::RawItem::Pg(vec![7; 1000])],
            ..RawTxn::default()
        };
        let bytes = t.encode();
        let chunks: Vec<&[u8]> = bytes.chunks(300).collect();
        let n = chunks.len();
        let mut p = Parts::default();
        for (i, c) in chunks.iter().enumerate() {
            match p.push(Some(&headers(42, &format!("{i}/{n}"))), c, 1 << 20) {
                Received::Partial => assert!(i + 1 < n),
                Received::Txn(got) => {
                    assert_eq!(i + 1, n);
                    assert_eq!(*got, t);
                }
                Received::Broken(w) => panic!("{w}"),
            }
        }
        // A missing middle part.
        let mut p = Parts::default();
        assert!(matches!(
            p.push(Some(&headers(42, &format!("0/{n}"))), chunks[0], 1 << 20),
            Received::Partial
        ));
        assert!(matches!(
            p.push(Some(&headers(42, &format!("2/{n}"))), chunks[2], 1 << 20),
            Received::Broken(_)
        ));
        // A new transaction while one was incomplete.
        let mut p = Parts::default();
        assert!(matches!(
            p.push(Some(&headers(42, &format!("0/{n}"))), chunks[0], 1 << 20),
            Received::Partial
        ));
        assert!(matches!(
            p.push(Some(&headers(50, "0/1")), &bytes, 1 << 20),
            Received::Broken(_)
        ));
        assert!(matches!(
            p.push(Some(&headers(50, "0/1")), &bytes, 1 << 20),
            Received::Txn(_)
        ));
        // Over the cap; garbage.
        let mut p = Parts::default();
        assert!(matches!(
            p.push(Some(&headers(42, &format!("0/{n}"))), chunks[0], 100),
            Received::Broken(_)
        ));
        assert!(matches!(
            p.push(None, b"junk", 1 << 20),
            Received::Broken(_)
        ));
    }

    #[test]
    fn message_ids_tell_databases_apart() {
        let a = RawTxn {
            end_lsn: 0x1234,
            commit_time_micros: 1_000,
            ..RawTxn::default()
        };
        let again = a.clone();
        let other_db = RawTxn {
            commit_time_micros: 2_000,
            ..a.clone()
        };
        assert_eq!(message_id(&a, 0), message_id(&again, 0));
        assert_ne!(message_id(&a, 0), message_id(&other_db, 0));
        assert_ne!(message_id(&a, 0), message_id(&a, 1));
    }

    #[test]
    fn stream_names_are_safe() {
        let cfg = BusConfig::new("nats://127.0.0.1:4222");
        assert_eq!(
            names(&cfg, "live_slot"),
            ("LIVE_LIVE_SLOT".into(), "live.live_slot.txn".into())
        );
        assert_eq!(names(&cfg, "a.b*c>").1, "live.a_b_c_.txn");
    }
}
