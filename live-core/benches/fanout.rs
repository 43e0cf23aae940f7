//! Fan-out cost per committed change: one-row updates that `matching` views receive, with
//! 0 to 100,000 other views watching other keys of the same table. The routing looks up
//! `(type, column, value)` and walks only the matching entries, so the cost should not grow
//! with the views that do not match. Prints `name: value unit`.
//!
//! `cargo bench -p live-core --bench fanout`

use live_core::__bench::fanout_dispatch_ns;

fn main() {
    for matching in [1, 50] {
        for others in [0, 1_000, 10_000, 100_000] {
            // Warm up, then measure.
            let _ = fanout_dispatch_ns(matching, others, 200);
            let ns = fanout_dispatch_ns(matching, others, 20_000);
            println!("fanout_dispatch_{matching}_matching_{others}_others: {ns:.0} ns");
        }
    }
}
