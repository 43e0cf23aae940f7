//! Rendering a view and sending what changed: tracked renders, versions, diffs, whole pages
//! in pieces.

use std::panic::AssertUnwindSafe;

use super::{End, FRAME_BUDGET, ViewSession, keep, panic_message};
use crate::diff::{Patch, encode_diff, full_payload, model_in_pieces};
use crate::render::{Rendered, render_tracked};
use crate::view::LiveView;

impl<V: LiveView> ViewSession<V> {
    /// Sends the diff of version `self.version` and keeps it for a client that may come back
    /// without it.
    pub(super) async fn send_diff(&mut self, payload: &str) {
        let cfg = &self.rt.config;
        self.window.record(
            self.version,
            payload,
            cfg.resume_window_frames,
            cfg.resume_window_bytes,
        );
        self.wire.push("diff", payload).await;
    }

    /// Sends the whole page as a `full` diff, in pieces (see `model_in_pieces`).
    pub(super) async fn send_whole(&mut self) {
        let v = self.version + 1;
        self.wire.reserve(page_estimate(&self.model)).await;
        let pieces = model_in_pieces(&self.model, v, FRAME_BUDGET);
        self.version = v;
        self.send_diff(&full_payload(v, &self.model, &pieces)).await;
        for p in pieces.rest {
            self.version += 1;
            self.send_diff(&p).await;
        }
        self.wire.release();
    }

    pub(super) fn render_tracked(&mut self) -> Result<crate::render::Tracked, End> {
        let view = &self.view;
        let model = &mut self.model;
        std::panic::catch_unwind(AssertUnwindSafe(|| render_tracked(model, || view.render())))
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
        let next_version = self.version + 1;
        // Room first: a view whose client does not read waits here, holding no new frame.
        self.wire.reserve(diff_estimate(&tracked)).await;
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
                self.send_diff(&p).await;
            }
            Patch::Whole => self.send_whole().await,
        }
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
            if self.kept_sent.is_some() || self.version <= 1 {
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
        let blob = keep::seal(&self.rt.keeper, &self.page, self.token.exp, &kept);
        let payload = serde_json::json!({ "keep": blob }).to_string();
        self.wire.push("keep", &payload).await;
        self.kept_sent = Some(json);
    }
}

/// About how many bytes of frames a whole page makes (JSON escaping included).
pub(super) fn page_estimate(m: &Rendered) -> usize {
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
