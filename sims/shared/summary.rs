//! What the suites that split a sweep (shards, Kubernetes indexes) compare: a sweep's JSON
//! lines and the figures a split must not change (timings may). Included with `#[path]` by
//! `sims/cli.rs` and `sims/deploy.rs`.

use serde_json::Value;

/// The figures of a `sweep --json` line that a shard split must not change.
pub const FIGURES: [&str; 12] = [
    "fencing",
    "seeds",
    "violating_seeds",
    "lost_updates",
    "token_order_breaks",
    "stale_acceptances",
    "false_rejections",
    "rate",
    "rate_low",
    "rate_high",
    "violating_examples",
    "messages",
];

/// A line's [`FIGURES`], in order.
pub fn figures(v: &Value) -> Vec<Value> {
    FIGURES.iter().map(|k| v[*k].clone()).collect()
}

/// One JSON value per line (an empty line is not JSON either).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
