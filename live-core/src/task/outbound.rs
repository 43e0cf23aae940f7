//! Where a view's frames go: the connection's outbound queue ([`Outbound`], counted in frames
//! and bytes) and a view's end of it ([`Wire`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::protocol::{Reason, error_reply, frame, reply};

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
        self.send_from(text, &mut None).await
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

    /// Whether the connection is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.budget.is_closed()
    }
}

/// Where a view's frames go: the connection it is attached to. A connection that closed
/// does not end the view (its client may come back): frames are then dropped, and the view
/// keeps what a returning client needs (its replay window, its rendered model).
pub(crate) struct Wire {
    pub(crate) topic: String,
    pub(crate) join_ref: String,
    pub(crate) out: Outbound,
    /// Room reserved in the connection's queue for the frames being built.
    pub(crate) room: Option<OwnedSemaphorePermit>,
}

impl Wire {
    /// Whether the connection is gone (frames go nowhere).
    pub(crate) fn is_closed(&self) -> bool {
        self.out.is_closed()
    }

    /// Reserves room for about `bytes` of frames before building them (a view whose client
    /// does not read waits here, holding no new frame).
    pub(crate) async fn reserve(&mut self, bytes: usize) {
        self.room = None;
        self.room = self.out.reserve(bytes).await.ok();
    }

    /// Gives back what is left of the reservation.
    pub(crate) fn release(&mut self) {
        self.room = None;
    }

    async fn send(&mut self, text: String) {
        if self.out.send_from(text, &mut self.room).await.is_err() {
            tracing::trace!("a frame for a closed connection dropped");
        }
    }

    pub(crate) async fn push(&mut self, event: &str, payload: &str) {
        self.send(frame(
            Some(&self.join_ref),
            None,
            &self.topic,
            event,
            payload,
        ))
        .await
    }

    pub(crate) async fn reply_ok(&mut self, msg_ref: Option<&str>, response: &str) {
        self.send(reply(
            Some(&self.join_ref),
            msg_ref,
            &self.topic,
            true,
            response,
        ))
        .await
    }

    pub(crate) async fn reply_error(&mut self, msg_ref: Option<&str>, reason: Reason) {
        self.send(error_reply(
            Some(&self.join_ref),
            msg_ref,
            &self.topic,
            reason,
        ))
        .await
    }
}
