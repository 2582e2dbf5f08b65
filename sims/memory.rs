//! Memory stays flat across seeds: every node is killed before the runtime returns.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::sweep;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

#[test]
fn memory_is_flat_across_seeds() {
    let scenario = Scenario::standard();
    // Warm up allocator pools and lazy statics first.
    sweep::sweep(&scenario, Fencing::None, 0..100, 1, &|_| {});
    let before = rss_mb();
    sweep::sweep(&scenario, Fencing::None, 100..1100, 1, &|_| {});
    let after = rss_mb();
    // A leak of madsim's pending futures costs ~160 KB per seed: 160 MB here.
    assert!(
        after - before < 16.0,
        "RSS grew from {before:.1} MB to {after:.1} MB over 1,000 seeds"
    );
}
