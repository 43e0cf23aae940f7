//! Resume: a view outlives its socket for a grace period, and a client that comes back names
//! it (its resume id) and the last version it applied. The view sends only what the client
//! missed: the frames in its replay window, or one diff of what changed while it was away,
//! or (past the window) the whole page. Its assigns, including those no database holds, are
//! kept.
//!
//! - [`Resumable`]: the node's views by resume id (a random 128-bit name only the client
//!   holds; it changes at every resume, so an old one is refused).
//! - [`Window`]: the last versioned diffs a view sent, bounded in frames and bytes.
//! - [`Attach`]: a join that names a view, handed to the view's task, which checks it (same
//!   route and session, a version it sent) and takes the new connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;

use super::JoinRequest;

/// A view's name for resuming it (base64url of 16 random bytes).
pub(crate) type ResumeId = String;

/// A new resume id.
pub(crate) fn new_resume_id() -> ResumeId {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::token::random_bytes(16))
}

/// A join that names a view to resume, on its way to the view's task: the join (its
/// `keep` taken out: a resumed view has its assigns) and the last version the client applied.
pub(crate) struct Attach {
    pub(crate) join: JoinRequest,
    pub(crate) version: u64,
}

/// The node's views by resume id, and how many are detached (waiting for their client).
#[derive(Default)]
pub(crate) struct Resumable {
    views: Mutex<HashMap<ResumeId, oneshot::Sender<Box<Attach>>>>,
    detached: AtomicUsize,
}

impl Resumable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ResumeId, oneshot::Sender<Box<Attach>>>> {
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a view under `id`; the receiver gets the joins that name it.
    pub(crate) fn register(&self, id: &ResumeId) -> oneshot::Receiver<Box<Attach>> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.clone(), tx);
        rx
    }

    /// Forgets `id` (the view ended, or took a new id).
    pub(crate) fn unregister(&self, id: &ResumeId) {
        self.lock().remove(id);
    }

    /// Hands `attach` to the view named `id`. `Err` gives it back: no such view on this node
    /// (it ended, it is on another node, or the id was never ours), and the join mounts anew.
    pub(crate) fn attach(&self, id: &str, attach: Box<Attach>) -> Result<(), Box<Attach>> {
        let Some(tx) = self.lock().remove(id) else {
            return Err(attach);
        };
        tx.send(attach)
    }

    /// Counts a view that lost its socket, unless `max` are detached already (`false`: the
    /// view ends instead).
    pub(crate) fn detach(&self, max: usize) -> bool {
        self.detached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A detached view got a socket again, or ended.
    pub(crate) fn reattached(&self) {
        let _ = self
            .detached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Views waiting for their client.
    pub(crate) fn detached(&self) -> usize {
        self.detached.load(Ordering::Acquire)
    }
}

/// The last versioned diffs a view sent, so a client that lost some can get exactly those.
#[derive(Debug, Default)]
pub(crate) struct Window {
    frames: VecDeque<(u64, String)>,
    bytes: usize,
}

/// What a client at some version needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Missed<'a> {
    /// These diffs, in order (none: the client is up to date).
    Frames(Vec<&'a str>),
    /// The window does not reach back to the client's version: the whole page.
    Whole,
}

impl Window {
    /// Records the diff of `version` (the versions recorded are consecutive).
    pub(crate) fn record(
        &mut self,
        version: u64,
        payload: &str,
        max_frames: usize,
        max_bytes: usize,
    ) {
        if max_frames == 0 || payload.len() > max_bytes {
            self.clear();
            return;
        }
        if self.frames.back().is_some_and(|(v, _)| *v + 1 != version) {
            // A gap (a version that was never recorded): nothing before it can be replayed.
            self.clear();
        }
        self.bytes += payload.len();
        self.frames.push_back((version, payload.to_string()));
        while self.frames.len() > max_frames || self.bytes > max_bytes {
            match self.frames.pop_front() {
                Some((_, p)) => self.bytes -= p.len(),
                None => break,
            }
        }
    }

    /// Forgets every frame.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// What a client that applied `client` needs to reach `current`.
    pub(crate) fn missed(&self, client: u64, current: u64) -> Missed<'_> {
        if client >= current {
            return Missed::Frames(Vec::new());
        }
        let Some((first, _)) = self.frames.front() else {
            return Missed::Whole;
        };
        let last = self.frames.back().map_or(0, |(v, _)| *v);
        if *first > client + 1 || last != current {
            return Missed::Whole;
        }
        Missed::Frames(
            self.frames
                .iter()
                .filter(|(v, _)| *v > client)
                .map(|(_, p)| p.as_str())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_replays_exactly_what_was_missed_or_asks_for_the_whole_page() {
        let mut w = Window::default();
        for v in 2..=6 {
            w.record(v, &format!("d{v}"), 4, 1 << 20);
        }
        // Holds 3..=6 (four frames).
        assert_eq!(w.missed(6, 6), Missed::Frames(vec![]));
        assert_eq!(w.missed(4, 6), Missed::Frames(vec!["d5", "d6"]));
        assert_eq!(w.missed(2, 6), Missed::Frames(vec!["d3", "d4", "d5", "d6"]));
        assert_eq!(w.missed(1, 6), Missed::Whole, "d2 fell out of the window");
        // A version the window never saw (the view rendered past it without recording).
        assert_eq!(w.missed(4, 7), Missed::Whole);
        // Bytes count too.
        let mut w = Window::default();
        w.record(2, "aaaa", 10, 6);
        w.record(3, "bbbb", 10, 6);
        assert_eq!(w.missed(1, 3), Missed::Whole);
        assert_eq!(w.missed(2, 3), Missed::Frames(vec!["bbbb"]));
        assert_eq!(w.bytes(), 4);
        // A frame bigger than the window empties it.
        w.record(4, "cccccccc", 10, 6);
        assert_eq!(w.bytes(), 0);
        assert_eq!(w.missed(3, 4), Missed::Whole);
        // A gap in the versions forgets what came before it.
        let mut w = Window::default();
        w.record(2, "x", 10, 100);
        w.record(5, "y", 10, 100);
        assert_eq!(w.missed(1, 5), Missed::Whole);
        assert_eq!(w.missed(4, 5), Missed::Frames(vec!["y"]));
    }

    #[test]
    fn detached_views_are_capped() {
        let r = Resumable::default();
        assert!(r.detach(2));
        assert!(r.detach(2));
        assert!(!r.detach(2), "a third detached view is over the cap");
        r.reattached();
        assert_eq!(r.detached(), 1);
        r.reattached();
        r.reattached();
        assert_eq!(r.detached(), 0, "never below zero");
    }
}
