//! Scripted stories: scenarios and fault plans that tell one known tale.

use crate::nemesis::{Fault, FaultPlan, Point, Trigger};
use crate::scenario::{ClientScript, MsRange, Scenario};

/// How long client 1 is paused in the seed's walkthrough: well past its 2 s lease.
pub const SEED_PAUSE_MS: u64 = 5_000;

/// The seed's walkthrough: client 1 takes the lock and is paused (the keyboard wait) longer
/// than its lease; client 2 takes the lock and writes; client 1 resumes and writes.
pub fn seed_walkthrough() -> (Scenario, FaultPlan) {
    let mut scenario = Scenario::seed_story(2);
    scenario.scripts = vec![
        ClientScript {
            client: 1,
            start_ms: 0,
            critical_ms: None,
        },
        ClientScript {
            client: 2,
            start_ms: 1_000,
            critical_ms: None,
        },
    ];
    (scenario, pause_client1())
}

/// The seed's flaw: as the walkthrough, but client 2 stalls (alive, lease kept) before
/// writing, so client 1's stale write lands first; client 3 takes the lock after client 2.
pub fn seed_walkthrough_stalled() -> (Scenario, FaultPlan) {
    let mut scenario = Scenario::seed_story(3);
    scenario.scripts = vec![
        ClientScript {
            client: 1,
            start_ms: 0,
            critical_ms: None,
        },
        ClientScript {
            client: 2,
            start_ms: 1_000,
            critical_ms: Some(MsRange::exactly(4_000)),
        },
        ClientScript {
            client: 3,
            start_ms: 3_000,
            critical_ms: None,
        },
    ];
    (scenario, pause_client1())
}

fn pause_client1() -> FaultPlan {
    FaultPlan {
        faults: vec![Fault::Pause {
            node: "client1".into(),
            at: Trigger::Point {
                point: Point::AfterAcquire,
                nth: 1,
            },
            duration_ms: SEED_PAUSE_MS,
        }],
    }
}
