//! Rendering a view and sending what changed (through the page's [`PageTracker`]), keeping
//! each versioned diff for a client that may come back without it.

use std::panic::AssertUnwindSafe;

use super::{End, ViewSession, keep, panic_message};
use crate::diff::{Frames, diff_estimate};
use crate::render::Tracked;
use crate::view::LiveView;

impl<V: LiveView> ViewSession<V> {
    /// Sends versioned diffs and keeps them for a client that may come back without them.
    pub(super) async fn send_frames(&mut self, frames: Frames) {
        let cfg = &self.rt.config;
        let (max_frames, max_bytes) = (cfg.resume_window_frames, cfg.resume_window_bytes);
        for (version, payload) in frames {
            self.window.record(version, &payload, max_frames, max_bytes);
            self.wire.push("diff", &payload).await;
        }
    }

    /// Sends the whole page as a `full` diff, in pieces.
    pub(super) async fn send_whole(&mut self) {
        self.wire.reserve(self.page.page_estimate()).await;
        let frames = self.page.whole();
        self.send_frames(frames).await;
        self.wire.release();
    }

    pub(super) fn render_tracked(&mut self) -> Result<Tracked, End> {
        let view = &self.view;
        let page = &mut self.page;
        std::panic::catch_unwind(AssertUnwindSafe(|| page.render(|| view.render())))
            .map_err(|p| End::Crash(format!("render panicked: {}", panic_message(p))))
    }

    /// Renders and sends the diff (if anything changed), the title (if it changed) and the
    /// kept assigns (if they changed). While the view waits for its client, it only notes
    /// that something changed: a client that comes back gets one diff of all of it.
    pub(super) async fn render_and_send(&mut self) -> Result<(), End> {
        if self.detached.is_some() {
            self.dirty = true;
            return Ok(());
        }
        let tracked = self.render_tracked()?;
        // Room first: a view whose client does not read waits here, holding no new frame.
        self.wire.reserve(diff_estimate(&tracked)).await;
        let frames = self.page.update(tracked);
        self.send_frames(frames).await;
        self.wire.release();
        let title = self.view.title();
        if title != self.title {
            self.title = title;
            if let Some(t) = &self.title {
                let payload = serde_json::json!({ "title": t }).to_string();
                self.wire.push("title", &payload).await;
            }
        }
        self.send_kept().await;
        Ok(())
    }

    /// Sends the client a signed blob of the view's `#[keep]` assigns when they changed
    /// (a new mount of the view, after the grace period or on another node, restores them).
    pub(super) async fn send_kept(&mut self) {
        let Some(kept) = self.view.kept() else {
            return;
        };
        let json = kept.to_string();
        if self.kept_sent.as_deref() == Some(json.as_str()) {
            return;
        }
        let max = self.rt.config.max_kept_bytes;
        if json.len() > max {
            if self.kept_sent.is_some() || self.page.version() <= 1 {
                tracing::error!(
                    bytes = json.len(),
                    max,
                    "the view's #[keep] assigns are over max_kept_bytes; not sent (keep small \
                     UI state only)"
                );
            }
            self.kept_sent = None;
            return;
        }
        let blob = keep::seal(&self.rt.keeper, &self.page_id, self.token.exp, &kept);
        let payload = serde_json::json!({ "keep": blob }).to_string();
        self.wire.push("keep", &payload).await;
        self.kept_sent = Some(json);
    }
}
