//! Scripted stories: scenarios whose scripted faults tell one known tale.
//!
//! The same stories are committed as scenario files under `sims/scenarios/` (a test keeps the
//! two equal), so `fencelab run --scenario sims/scenarios/kleppmann-gc-pause.toml` tells them.

use crate::clock::{ClockStep, Skew};
use crate::fault::{Fault, FaultPlan, Trigger};
use crate::ms::MsRange;
use crate::nemesis::NemesisConfig;
use crate::scenario::{ClientScript, Scenario};
use crate::workload::Point;

/// How long client 1 is paused in the walkthrough of etcd's example: well past its 2 s lease.
pub const WALKTHROUGH_PAUSE_MS: u64 = 5_000;

fn script(client: u32, start_ms: u64, critical_ms: Option<MsRange>) -> ClientScript {
    ClientScript {
        client,
        start_ms,
        critical_ms,
    }
}

fn story(clients: u32, scripts: Vec<ClientScript>, faults: Vec<Fault>) -> Scenario {
    Scenario {
        scripts,
        faults,
        nemesis: NemesisConfig::off(),
        ..Scenario::contrib_lock_story(clients)
    }
}

fn with_plan(s: Scenario) -> (Scenario, FaultPlan) {
    let plan = s.scripted_plan();
    // A story is a valid scenario whose plan is exactly its scripted faults.
    debug_assert_eq!(s.validate(), Ok(()));
    debug_assert!(!s.nemesis.enabled, "a story draws no random fault");
    (s, plan)
}

fn after_acquire() -> Trigger {
    Trigger::Point {
        point: Point::AfterAcquire,
        nth: 1,
    }
}

/// The walkthrough of etcd's example (`contrib/lock`), which is also Kleppmann's first story (a GC pause): client 1
/// takes the lock and is paused longer than its lease; client 2 takes the lock and writes;
/// client 1 resumes and writes.
pub fn contrib_lock_walkthrough() -> (Scenario, FaultPlan) {
    with_plan(story(
        2,
        vec![script(1, 0, None), script(2, 1_000, None)],
        vec![Fault::Pause {
            node: "client1".into(),
            at: after_acquire(),
            duration_ms: WALKTHROUGH_PAUSE_MS,
        }],
    ))
}

/// The flaw of etcd's example: as the walkthrough, but client 2 stalls (alive, lease kept) before
/// writing, so client 1's stale write lands first; client 3 takes the lock after client 2.
pub fn contrib_lock_walkthrough_stalled() -> (Scenario, FaultPlan) {
    let (mut s, _) = contrib_lock_walkthrough();
    s.clients = 3;
    s.scripts = vec![
        script(1, 0, None),
        script(2, 1_000, Some(MsRange::exactly(4_000))),
        script(3, 3_000, None),
    ];
    with_plan(s)
}

/// Kleppmann's second story: client 1's write packet is delayed in the network past its
/// lease; it gives up waiting, releases, client 2 takes the lock and writes, then the old
/// packet arrives.
pub fn kleppmann_delayed_packet() -> (Scenario, FaultPlan) {
    with_plan(story(
        2,
        vec![script(1, 0, None), script(2, 500, None)],
        vec![Fault::HoldRequest {
            node: "client1".into(),
            at: Trigger::Point {
                point: Point::BeforeWrite,
                nth: 1,
            },
            duration_ms: 5_000,
        }],
    ))
}

/// Kleppmann's third story: the lock server's clock jumps forward while client 1, in a 2 s
/// critical section, holds the lock. On etcd the jump changes nothing: its lessor measures
/// lease deadlines on the monotonic clock (`lease/lessor.go`, `Lease.refresh` and
/// `Remaining` use `time.Now()`, whose monotonic reading a wall-clock step does not move),
/// so client 1 keeps its lease, writes, releases, and only then does client 2 take the lock.
/// What a jump does to a lock server that reads its wall clock, the `revoke-lease` fault
/// shows (the lease ends early).
pub fn kleppmann_clock_jump() -> (Scenario, FaultPlan) {
    with_plan(story(
        2,
        vec![
            script(1, 0, Some(MsRange::exactly(2_000))),
            script(2, 500, None),
        ],
        vec![Fault::Skew {
            node: crate::fault::ETCD.into(),
            skew: Skew {
                steps: vec![ClockStep {
                    at_ms: 1_000,
                    delta_ms: 5_000,
                }],
                ..Skew::default()
            },
        }],
    ))
}

/// One of [`kleppmann_redlock`]'s stories by its file name (`kleppmann-redlock-clock-jump`, ...):
/// its scenario and plan.
pub fn kleppmann_redlock_named(name: &str) -> Option<(Scenario, FaultPlan)> {
    kleppmann_redlock()
        .into_iter()
        .find(|s| s.0 == name)
        .map(|(_, _, s, p)| (s, p))
}

/// Kleppmann's stories on Redlock (issue 19): file name under `sims/scenarios/`, title,
/// scenario and plan. Built in from those files, so `demo` tells exactly what they say.
pub fn kleppmann_redlock() -> Vec<(&'static str, &'static str, Scenario, FaultPlan)> {
    let files = [
        (
            "kleppmann-redlock-clock-jump",
            "Kleppmann's clock jump on Redlock: redis3's wall clock jumps past the TTL",
            include_str!("../../sims/scenarios/kleppmann-redlock-clock-jump.toml"),
        ),
        (
            "kleppmann-redlock-restart",
            "Kleppmann's restart on Redlock: redis3 restarts without persistence",
            include_str!("../../sims/scenarios/kleppmann-redlock-restart.toml"),
        ),
        (
            "kleppmann-redlock-gc-pause",
            "Kleppmann's GC pause on Redlock: client 1 pauses past its validity",
            include_str!("../../sims/scenarios/kleppmann-redlock-gc-pause.toml"),
        ),
    ];
    files
        .into_iter()
        .map(|(name, title, text)| {
            // The files are tested (`sims/redlock.rs`): a bad one is a bug of the build.
            let s = Scenario::from_toml(text).unwrap_or_else(|e| panic!("{name}.toml: {e}"));
            assert_eq!(s.service, crate::lock::ServiceKind::Redlock, "{name}");
            let (s, plan) = with_plan(s);
            (name, title, s, plan)
        })
        .collect()
}

/// Every story by its file name under `sims/scenarios/`.
pub fn all() -> Vec<(&'static str, Scenario)> {
    vec![
        ("kleppmann-gc-pause", contrib_lock_walkthrough().0),
        (
            "contrib-lock-stalled-holder",
            contrib_lock_walkthrough_stalled().0,
        ),
        ("kleppmann-delayed-packet", kleppmann_delayed_packet().0),
        ("kleppmann-clock-jump", kleppmann_clock_jump().0),
    ]
}
