//! Render + diff cost per view update: a page with a keyed list of 100 / 1,000 / 10,000 rows
//! where one row changes. Prints one figure per line as `name: value unit`.
//!
//! `cargo bench -p live-core --bench diff`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use live_core::__bench::PageTracker;
use live_core::{Markup, html, keyed};

struct Row {
    id: i64,
    title: String,
    completed: bool,
}

fn row(r: &Row) -> Markup {
    html! {
        li class=[r.completed.then_some("completed")] {
            div.view {
                input.toggle type="checkbox" checked[r.completed] live-click="toggle" live-value-id=(r.id);
                label live-dblclick="edit" live-value-id=(r.id) { (r.title) }
                button.destroy live-click="destroy" live-value-id=(r.id) {}
            }
        }
    }
}

/// The page. With `count`, the template itself walks every row (TodoMVC's "items left"),
/// which is the template's own cost, not the framework's.
fn page(rows: &[Arc<Row>], count: bool) -> Markup {
    let left = if count {
        rows.iter().filter(|r| !r.completed).count()
    } else {
        rows.len()
    };
    html! {
        section.todoapp {
            header.header { h1 { "todos" } input.new-todo placeholder="What needs to be done?" autofocus; }
            section.main {
                ul.todo-list { (keyed("todos", rows, |r| r.id).render(row)) }
            }
            footer.footer { span.todo-count { strong { (left) } " items left" } }
        }
    }
}

fn page_plain(rows: &[Arc<Row>]) -> String {
    page(rows, true).into_string()
}

fn make(n: usize) -> Vec<Arc<Row>> {
    (0..n as i64)
        .map(|id| {
            Arc::new(Row {
                id,
                title: format!(
                    "Todo number {id}: buy some milk, call the plumber, write the notes"
                ),
                completed: id % 3 == 0,
            })
        })
        .collect()
}

/// Changes one random row per update; returns (µs per update, patch bytes per update, the
/// tracker).
fn run(n: usize, iters: usize, count: bool) -> (f64, usize, PageTracker, usize) {
    let mut rows = make(n);
    let mut tracker = PageTracker::new();
    let first: usize = tracker
        .update(|| page(&rows, count))
        .iter()
        .map(String::len)
        .sum();
    let mut patch_bytes = 0usize;
    let mut seed = 1u64;
    let start = Instant::now();
    for i in 0..iters {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let k = (seed >> 33) as usize % n;
        let old = &rows[k];
        rows[k] = Arc::new(Row {
            id: old.id,
            title: format!("Todo number {} edited {i}", old.id),
            completed: !old.completed,
        });
        let p = tracker.update(|| page(&rows, count));
        patch_bytes += p.iter().map(String::len).sum::<usize>();
        black_box(p);
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / iters as f64;
    (per, patch_bytes / iters, tracker, first)
}

fn main() {
    for n in [100usize, 1_000, 10_000] {
        let iters = match n {
            100 => 20_000,
            1_000 => 10_000,
            _ => 2_000,
        };
        let (per, patch, tracker, first) = run(n, iters, false);
        let (per_count, _, _, _) = run(n, iters, true);
        // Baseline: rendering the whole page (no tracking, no diff) costs this much alone.
        let rows = make(n);
        let start = Instant::now();
        let base_iters = (iters / 10).max(50);
        for _ in 0..base_iters {
            black_box(page_plain(&rows));
        }
        let base = start.elapsed().as_secs_f64() * 1e6 / base_iters as f64;
        println!("render_diff_one_row_{n}_rows: {per:.2} us");
        println!("render_diff_one_row_{n}_rows_template_counts_rows: {per_count:.2} us");
        println!("patch_bytes_one_row_{n}_rows: {patch} B");
        println!("full_html_bytes_{n}_rows: {} B", tracker.html_bytes());
        println!("full_model_frame_bytes_{n}_rows: {first} B");
        println!("full_render_only_{n}_rows: {base:.2} us");
    }
}
