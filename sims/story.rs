//! The walkthrough of etcd's example (`contrib/lock`), told by the simulation, asserted under every fencing policy.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::checker::FindingKind;
use fencelab::fault::FaultPlan;
use fencelab::history::{EventKind, History, OpResult};
use fencelab::protocol::Op;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::stories;
use fencelab::world::{self, Run};

const SEED: u64 = 7;

/// The outcome the client saw of its write to `key0`.
fn write_outcome(h: &History, node: &str) -> OpResult {
    let ops = h.ops();
    let op = ops
        .iter()
        .find(|o| {
            o.invoke.node == node
                && matches!(o.invoke.kind, EventKind::Invoke { op: Op::Write, .. })
        })
        .unwrap_or_else(|| panic!("{node} never wrote"));
    op.outcome()
        .cloned()
        .unwrap_or_else(|| panic!("{node}'s write never completed"))
}

/// The lease ID and token of the node's first acquisition.
fn acquired(h: &History, node: &str) -> (i64, i64) {
    h.events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Acquired { lease_id, token } if e.node == node => Some((lease_id, token)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{node} never acquired"))
}

fn token_of(h: &History, node: &str) -> i64 {
    acquired(h, node).1
}

fn lease_of(h: &History, node: &str) -> i64 {
    acquired(h, node).0
}

fn kinds(run: &Run) -> Vec<(FindingKind, String)> {
    run.verdict
        .findings
        .iter()
        .map(|f| (f.kind, f.node.clone()))
        .collect()
}

/// Runs a story; the checker must make sense of it whatever the policy.
fn tell((scenario, plan): (Scenario, FaultPlan), fencing: Fencing) -> Run {
    let run = world::run(&scenario, &plan, fencing, SEED);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    run
}

fn walkthrough(fencing: Fencing) -> Run {
    let run = tell(stories::contrib_lock_walkthrough(), fencing);
    // The story happened as told: client 2 took the lock after client 1, with a higher token,
    // and client 2's write landed.
    let h = &run.history;
    assert!(token_of(h, "client2") > token_of(h, "client1"));
    assert!(matches!(write_outcome(h, "client2"), OpResult::Ok { .. }));
    run
}

#[test]
fn none_accepts_the_stale_write_and_the_checker_says_so() {
    let run = walkthrough(Fencing::None);
    assert!(matches!(
        write_outcome(&run.history, "client1"),
        OpResult::Ok { .. }
    ));
    assert_eq!(run.verdict.token_order_breaks, 1);
    assert_eq!(run.verdict.stale_acceptances, 1);
    assert!(run.verdict.violates());
    assert_eq!(
        run.history.final_entries["key0"].val, "value from client1",
        "the stale write won"
    );
}

#[test]
fn lease_id_rejects_client1_with_contrib_locks_message() {
    let run = walkthrough(Fencing::LeaseId);
    let h = &run.history;
    let expected = format!(
        "given version ({:x}) is different from the existing version ({:x})",
        lease_of(h, "client1"),
        lease_of(h, "client2")
    );
    assert_eq!(
        write_outcome(h, "client1"),
        OpResult::Rejected { err: expected }
    );
    assert!(!run.verdict.violates());
    assert_eq!(run.verdict.false_rejections, 0);
}

#[test]
fn token_policies_reject_client1_naming_both_tokens() {
    for fencing in [Fencing::TokenWrites, Fencing::Token] {
        let run = walkthrough(fencing);
        let h = &run.history;
        let (t1, t2) = (token_of(h, "client1"), token_of(h, "client2"));
        match write_outcome(h, "client1") {
            OpResult::Rejected { err } => {
                assert!(
                    err.contains(&format!("({t1})")) && err.contains(&format!("({t2})")),
                    "{err}"
                )
            }
            other => panic!("{fencing}: client 1 should be rejected, got {other:?}"),
        }
        assert!(!run.verdict.violates(), "{fencing}");
        assert_eq!(run.verdict.stale_acceptances, 0, "{fencing}");
        assert_eq!(h.final_entries["key0"].val, "value from client2");
    }
}

fn stalled(fencing: Fencing) -> Run {
    let run = tell(stories::contrib_lock_walkthrough_stalled(), fencing);
    let h = &run.history;
    assert!(token_of(h, "client1") < token_of(h, "client2"));
    assert!(token_of(h, "client2") < token_of(h, "client3"));
    // Client 1's stale write lands first, whatever the policy: the key is still absent.
    assert!(matches!(write_outcome(h, "client1"), OpResult::Ok { .. }));
    run
}

#[test]
fn lease_id_shows_contrib_locks_flaw_when_client2_stalls() {
    let run = stalled(Fencing::LeaseId);
    let h = &run.history;
    assert!(matches!(
        write_outcome(h, "client2"),
        OpResult::Rejected { .. }
    ));
    assert!(matches!(
        write_outcome(h, "client3"),
        OpResult::Rejected { .. }
    ));
    assert_eq!(
        kinds(&run),
        vec![
            (FindingKind::StaleAcceptance, "client1".into()),
            (FindingKind::FalseRejection, "client2".into()),
            (FindingKind::FalseRejection, "client3".into()),
        ]
    );
    assert_eq!(
        h.final_entries["key0"].val, "value from client1",
        "the stale holder owns the key"
    );
}

#[test]
fn token_policies_accept_the_stale_write_in_token_order_then_the_holders() {
    for fencing in [Fencing::TokenWrites, Fencing::Token] {
        let run = stalled(fencing);
        let h = &run.history;
        assert!(
            matches!(write_outcome(h, "client2"), OpResult::Ok { .. }),
            "{fencing}"
        );
        assert!(
            matches!(write_outcome(h, "client3"), OpResult::Ok { .. }),
            "{fencing}"
        );
        assert_eq!(
            kinds(&run),
            vec![(FindingKind::StaleAcceptance, "client1".into())],
            "{fencing}"
        );
        assert!(!run.verdict.violates());
        assert_eq!(h.final_entries["key0"].val, "value from client3");
    }
}

#[test]
fn counter_without_faults_is_clean_under_every_policy() {
    let scenario = Scenario::standard();
    for fencing in Fencing::ALL {
        for seed in 0..5 {
            let run = world::run(&scenario, &FaultPlan::none(), fencing, seed);
            let v = &run.verdict;
            assert!(
                v.anomalies.is_empty(),
                "{fencing} seed {seed}: {:?}",
                v.anomalies
            );
            assert!(!v.violates(), "{fencing} seed {seed}: {v:?}");
            assert_eq!(v.stale_acceptances, 0, "{fencing} seed {seed}");
            if fencing == Fencing::LeaseId {
                // `contrib/lock`'s check lets only the first writer's lease (one session, one
                // cycle) ever write the counter: every later holder is refused.
                assert_eq!(v.acked_increments, 1, "seed {seed}");
                assert!(
                    v.false_rejections >= 20,
                    "seed {seed}: {}",
                    v.false_rejections
                );
            } else {
                // Positive space: the clients really worked, and every acked increment counts.
                assert!(
                    v.acked_increments >= 20,
                    "{fencing} seed {seed}: only {}",
                    v.acked_increments
                );
                assert_eq!(v.false_rejections, 0, "{fencing} seed {seed}");
                assert_eq!(v.final_counter, v.acked_increments, "{fencing} seed {seed}");
            }
        }
    }
}

#[test]
fn scenario_files_are_the_library_stories() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sims/scenarios");
    let load = |name: &str| {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{name}.toml: {e}"))
    };
    assert_eq!(load("standard"), Scenario::standard());
    for (name, scenario) in stories::all() {
        assert_eq!(
            load(name),
            scenario,
            "{name}.toml differs from stories::{name}"
        );
    }
}

#[test]
fn kleppmanns_three_stories_break_unfenced_and_hold_fenced() {
    for (name, (scenario, plan)) in [
        ("gc pause", stories::contrib_lock_walkthrough()),
        ("delayed packet", stories::kleppmann_delayed_packet()),
    ] {
        let none = world::run(&scenario, &plan, Fencing::None, SEED);
        assert!(none.verdict.violates(), "{name}: {:?}", none.verdict);
        assert_eq!(
            none.history.final_entries["key0"].val, "value from client1",
            "{name}"
        );
        for fencing in [Fencing::TokenWrites, Fencing::Token] {
            let run = world::run(&scenario, &plan, fencing, SEED);
            assert!(
                !run.verdict.violates(),
                "{name} {fencing}: {:?}",
                run.verdict
            );
            assert_eq!(
                run.history.final_entries["key0"].val, "value from client2",
                "{name} {fencing}"
            );
            assert!(matches!(
                write_outcome(&run.history, "client1"),
                OpResult::Rejected { .. } | OpResult::Unknown { .. }
            ));
        }
    }
}

#[test]
fn a_clock_jump_on_etcd_ends_no_lease() {
    // etcd's lessor reads the monotonic clock: the 5 s jump while client 1 holds the lock
    // changes nothing, even unfenced. Client 2 acquires only after client 1 released.
    let (scenario, plan) = stories::kleppmann_clock_jump();
    let run = world::run(&scenario, &plan, Fencing::None, SEED);
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
    assert_eq!(run.verdict.stale_acceptances, 0);
    let h = &run.history;
    // Client 2 acquires only after client 1's write landed (client 1 kept the lock).
    let landed = h
        .events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::StorageApplied { val, .. } if val == "value from client1"))
        .map(|e| e.true_us)
        .unwrap();
    let acquired = h
        .events
        .iter()
        .find(|e| e.node == "client2" && matches!(e.kind, EventKind::Acquired { .. }))
        .map(|e| e.true_us)
        .unwrap();
    assert!(landed < acquired, "{landed} {acquired}");
    assert!(!h
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::LeaseLost { .. })));
    assert_eq!(h.final_entries["key0"].val, "value from client2");
    // The same story where the lock service does end the lease early (what a server that
    // read its wall clock would do): unfenced breaks.
    let revoked = FaultPlan {
        faults: vec![fencelab::fault::Fault::RevokeLease {
            node: "client1".into(),
            at: fencelab::fault::Trigger::Point {
                point: fencelab::workload::Point::AfterAcquire,
                nth: 1,
            },
        }],
    };
    let scenario = fencelab::scenario::Scenario {
        faults: revoked.faults.clone(),
        ..scenario
    };
    let run = world::run(&scenario, &revoked, Fencing::None, SEED);
    assert!(run.verdict.violates(), "{:?}", run.verdict);
}

#[test]
fn a_network_fault_slows_every_link_for_its_window_only() {
    use fencelab::fault::Fault;
    use fencelab::ms::MsRange;
    use fencelab::nemesis::NemesisConfig;
    let scenario = Scenario {
        nemesis: NemesisConfig::none(),
        ..Scenario::standard()
    };
    let window_ms = 5_000..10_000u64;
    let plan = FaultPlan {
        faults: vec![Fault::Network {
            at_ms: window_ms.start,
            duration_ms: window_ms.end - window_ms.start,
            latency_ms: MsRange::new(400, 400),
            loss_permille: 0,
        }],
    };
    let run = world::run(&scenario, &plan, Fencing::Token, SEED);
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
    let h = &run.history;
    // Round trips of storage operations sent inside the window (and answered before it
    // ended) take two 400 ms legs; those sent after it are back to the scenario's 1-10 ms.
    let (mut inside, mut after) = (vec![], vec![]);
    for op in h.ops() {
        let Some(done) = op.complete else { continue };
        let (sent_ms, back_ms) = (op.invoke.true_us / 1000, done.true_us / 1000);
        if window_ms.contains(&sent_ms) && back_ms < window_ms.end {
            inside.push(back_ms - sent_ms);
        } else if sent_ms > window_ms.end + 1_000 {
            after.push(back_ms - sent_ms);
        }
    }
    assert!(
        !inside.is_empty() && !after.is_empty(),
        "{inside:?} {after:?}"
    );
    assert!(inside.iter().all(|ms| *ms >= 800), "{inside:?}");
    assert!(after.iter().all(|ms| *ms < 100), "{after:?}");
    let notes: Vec<&str> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Fault { what } if e.node == "network" => Some(what.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("network degraded") && notes[1] == "network restored");
}

#[test]
fn abutting_network_windows_apply_in_time_order_whatever_the_plan_order() {
    use fencelab::fault::Fault;
    use fencelab::ms::MsRange;
    use fencelab::nemesis::NemesisConfig;
    let scenario = Scenario {
        nemesis: NemesisConfig::none(),
        ..Scenario::standard()
    };
    let window = |at_ms, latency_ms| Fault::Network {
        at_ms,
        duration_ms: 500,
        latency_ms: MsRange::new(latency_ms, latency_ms),
        loss_permille: 0,
    };
    // The later window first: at 1,000 ms the first window's restore must not undo the second.
    let plan = FaultPlan {
        faults: vec![window(1_000, 30), window(500, 20)],
    };
    let run = world::run(&scenario, &plan, Fencing::Token, SEED);
    let notes: Vec<(u64, &str)> = run
        .history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Fault { what } if e.node == "network" => {
                Some((e.true_us / 1000, what.as_str()))
            }
            _ => None,
        })
        .collect();
    let whats: Vec<&str> = notes.iter().map(|n| n.1).collect();
    assert_eq!(
        whats,
        [
            "network degraded: latency 20..20 ms, loss 0‰",
            "network restored",
            "network degraded: latency 30..30 ms, loss 0‰",
            "network restored",
        ],
        "{notes:?}"
    );
    // At the planned times, give or take the supervisor's wake-up (madsim wakes a few µs
    // late, and each action is one more turn of its loop).
    for (note, planned_ms) in notes.iter().zip([500, 1_000, 1_000, 1_500]) {
        assert!((planned_ms..planned_ms + 2).contains(&note.0), "{notes:?}");
    }
}
