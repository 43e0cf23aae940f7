//! App messages between views, on one node or across nodes: a view subscribes to a topic
//! ([`Ctx::subscribe`](crate::Ctx::subscribe)) and [`Live::broadcast`](crate::Live::broadcast)
//! reaches the `handle_info` of every view subscribed to it — what Phoenix.PubSub gives
//! LiveView. With a bus (several nodes) a broadcast travels through NATS (core NATS, not the
//! stream: app messages are not replayed), so it reaches views on every node; delivery is at
//! most once, in publish order per publisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Delivers one message (JSON) to one view; false once the view is gone.
pub(crate) type Deliver = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The longest topic.
pub(crate) const MAX_TOPIC_BYTES: usize = 256;
/// Whether `topic` can be a topic: 1 to 256 printable ASCII characters, no spaces (it
/// travels in a NATS header).
pub(crate) fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_BYTES
        && topic.bytes().all(|b| b.is_ascii_graphic())
}

/// The largest message (NATS' default `max_payload` is 1 MiB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 512 * 1024;

/// Why a broadcast was not sent.
///
/// ```
/// use live_core::{BroadcastError, Live, LiveConfig};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).build().unwrap();
/// match live.broadcast("room lobby", &"hello").await {
///     Err(BroadcastError::Topic) => {} // a space: not a topic
///     other => panic!("{other:?}"),
/// }
/// assert!(live.broadcast("room:lobby", &"hello").await.is_ok());
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The topic is empty, longer than 256 bytes, or not printable ASCII without spaces.
    #[error("a topic has 1 to 256 printable ASCII characters, no spaces")]
    Topic,
    /// The message does not serialize, or is over 512 KiB as JSON.
    #[error("the message: {0}")]
    Message(String),
    /// The bus refused it.
    #[error("the bus: {0}")]
    Bus(String),
}

/// Sends broadcasts to the other nodes.
pub(crate) type Publish = Arc<
    dyn Fn(String, Vec<u8>) -> futures_util::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync,
>;

/// This node's topics and the views subscribed to them.
#[derive(Default)]
pub(crate) struct Topics {
    map: Mutex<HashMap<String, Vec<Deliver>>>,
    /// Set when the node has a bus: broadcasts go out through it (and come back to this node
    /// through its subscription).
    publish: OnceLock<Publish>,
}

impl std::fmt::Debug for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics").finish_non_exhaustive()
    }
}

impl Topics {
    /// Adds a view to `topic` (views that are gone are swept at the same time).
    pub(crate) fn subscribe(&self, topic: &str, deliver: Deliver) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let subs = map.entry(topic.to_string()).or_default();
        subs.retain(|d| d(&[]));
        subs.push(deliver);
    }

    /// Delivers `payload` to this node's views of `topic`; returns how many got it.
    pub(crate) fn deliver_local(&self, topic: &str, payload: &[u8]) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = map.get_mut(topic) else {
            return 0;
        };
        subs.retain(|d| d(payload));
        let n = subs.len();
        if n == 0 {
            map.remove(topic);
        }
        n
    }

    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn set_publish(&self, publish: Publish) {
        let _ = self.publish.set(publish);
    }

    /// Sends `payload` to every view of `topic`, on every node.
    pub(crate) async fn broadcast(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), BroadcastError> {
        if !valid_topic(topic) {
            return Err(BroadcastError::Topic);
        }
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(BroadcastError::Message(format!(
                "{} bytes, over the {MAX_MESSAGE_BYTES}-byte cap",
                payload.len()
            )));
        }
        match self.publish.get() {
            Some(publish) => publish(topic.to_string(), payload)
                .await
                .map_err(BroadcastError::Bus),
            None => {
                self.deliver_local(topic, &payload);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ViewHandle, deliver_to};

    #[tokio::test]
    async fn local_delivery_decodes_and_sweeps_views_that_are_gone() {
        let topics = Topics::default();
        let (h1, mut rx1) = ViewHandle::<String>::new();
        let (h2, rx2) = ViewHandle::<String>::new();
        topics.subscribe("t", deliver_to(h1, "t"));
        topics.subscribe("t", deliver_to(h2, "t"));
        topics.broadcast("t", b"\"hi\"".to_vec()).await.unwrap();
        assert_eq!(*rx1.recv().await.unwrap(), "hi");
        drop(rx2);
        // A message of another shape is dropped for the view, which stays subscribed.
        assert_eq!(topics.deliver_local("t", b"42"), 1);
        assert_eq!(topics.deliver_local("t", b"\"again\""), 1);
        assert_eq!(*rx1.recv().await.unwrap(), "again");
        assert_eq!(topics.deliver_local("other", b"\"x\""), 0);
        assert!(matches!(
            topics.broadcast("", b"1".to_vec()).await,
            Err(BroadcastError::Topic)
        ));
        assert!(matches!(
            topics.broadcast(&"x".repeat(300), b"1".to_vec()).await,
            Err(BroadcastError::Topic)
        ));
        assert!(matches!(
            topics.broadcast("a b\r\n", b"1".to_vec()).await,
            Err(BroadcastError::Topic)
        ));
        assert!(matches!(
            topics
                .broadcast("t", vec![b'1'; MAX_MESSAGE_BYTES + 1])
                .await,
            Err(BroadcastError::Message(_))
        ));
    }
}
