//! One page as its client holds it: the last rendered model and its version, and what each new
//! render makes of it (a diff, nothing, or the whole page in pieces). The view task, the test
//! harness (through the view task) and the benchmarks all go through it, so a benchmark
//! measures the real path.

use super::{Patch, encode_diff, full_payload, model_in_pieces};
use crate::render::{ListOp, Rendered, Tracked, render_tracked};

/// The largest piece a whole page is sent in (bytes of row HTML per frame).
pub(crate) const FRAME_BUDGET: usize = 32 * 1024;

/// The payloads of one update, each with the version it brings the client to (in order).
pub(crate) type Frames = Vec<(u64, String)>;

/// A page's model and version.
#[derive(Debug, Default)]
pub(crate) struct PageTracker {
    model: Rendered,
    version: u64,
}

impl PageTracker {
    /// The version of the last frame produced.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Renders against the current model (rows whose `Arc` did not change are reused).
    pub(crate) fn render(&mut self, render: impl FnOnce() -> maud::Markup) -> Tracked {
        render_tracked(&mut self.model, render)
    }

    /// The first render of a join: the join reply's `rendered` (version 1, the lists cut short
    /// to about [`FRAME_BUDGET`]) and the diffs that insert the rest.
    pub(crate) fn first(&mut self, tracked: Tracked) -> (String, Frames) {
        self.model = tracked.model;
        let pieces = model_in_pieces(&self.model, 1, FRAME_BUDGET);
        self.version = 1;
        let rest = pieces
            .rest
            .into_iter()
            .map(|p| {
                self.version += 1;
                (self.version, p)
            })
            .collect();
        (pieces.first, rest)
    }

    /// What a new render makes: nothing, one diff, or the whole page (when its shape changed).
    pub(crate) fn update(&mut self, tracked: Tracked) -> Frames {
        let next = self.version + 1;
        let first = self.version == 0;
        let patch = encode_diff(
            &self.model.statics,
            &tracked.model,
            &tracked.ops,
            next,
            first || !tracked.same_shape,
        );
        self.model = tracked.model;
        match patch {
            Patch::Unchanged => Vec::new(),
            Patch::Diff(p) => {
                self.version = next;
                vec![(next, p)]
            }
            Patch::Whole => self.whole(),
        }
    }

    /// The whole page as a `full` diff and the pieces after it.
    pub(crate) fn whole(&mut self) -> Frames {
        let v = self.version + 1;
        let pieces = model_in_pieces(&self.model, v, FRAME_BUDGET);
        let mut out = vec![(v, full_payload(v, &self.model, &pieces))];
        self.version = v;
        for p in pieces.rest {
            self.version += 1;
            out.push((self.version, p));
        }
        out
    }

    /// About how many bytes of frames the whole page makes (JSON escaping included).
    pub(crate) fn page_estimate(&self) -> usize {
        let m = &self.model;
        let rows: usize = m.lists.iter().map(|l| l.rows.len() * 48).sum();
        (m.html_bytes() + rows) / 4 * 5 + 256
    }

    /// Bytes of the whole page's HTML.
    pub(crate) fn html_bytes(&self) -> usize {
        self.model.to_html().len()
    }
}

/// About how many bytes a diff of this render makes (at most the statics plus the rows of
/// its operations; JSON escaping included).
pub(crate) fn diff_estimate(t: &Tracked) -> usize {
    let statics: usize = t.model.statics.iter().map(String::len).sum();
    let rows: usize = t.ops.iter().map(|ops| ops_estimate(ops)).sum();
    (statics + rows) / 4 * 5 + 256
}

fn ops_estimate(ops: &[ListOp]) -> usize {
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
