//! ZooKeeper with Curator's `InterProcessMutex` (issue 20), run: the model's session expiry,
//! a stalled server, a holder paused past its session, and the czxid fence.
#![cfg(madsim)]

#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::fault::FaultPlan;
use fencelab::history::{EventKind, History};
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world;

fn acquisitions(h: &History) -> usize {
    h.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Acquired { .. }))
        .count()
}

#[test]
fn curator_takes_the_lock_in_turn_without_faults() {
    let s = Scenario::zk();
    let run = world::run(&s, &FaultPlan::default(), Fencing::None, 1);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    let n = acquisitions(&run.history);
    eprintln!("acquisitions {n} verdict {:?}", run.verdict);
    assert!(n > 10, "{n} acquisitions");
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
}
