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

// Kleppmann's stories on Redlock (issue 19): what the Redis nodes record, the double grant
// the detector finds, and `demo --service redlock`'s words.

use fencelab::fault::Fault;
use fencelab::redis::Persistence;
use fencelab::redlock_story::{self, DoubleGrant};

/// A Redlock story by its file name: its scenario and plan.
fn redlock_story(name: &str) -> (Scenario, FaultPlan) {
    stories::kleppmann_redlock_named(name).unwrap_or_else(|| panic!("no Redlock story {name}"))
}

/// As the story, with the scenario's faults changed by `f` (the plan follows).
fn changed(name: &str, f: impl FnOnce(&mut Scenario)) -> (Scenario, FaultPlan) {
    let (mut s, _) = redlock_story(name);
    f(&mut s);
    let plan = s.scripted_plan();
    (s, plan)
}

fn redlock_run((s, plan): (Scenario, FaultPlan), fencing: Fencing) -> Run {
    world::run(&s, &plan, fencing, 1)
}

/// The Redis nodes' own events on `node`, in words.
fn node_words(h: &History, node: &str) -> Vec<String> {
    h.events
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| redlock_story::redis_words(&e.kind))
        .collect()
}

fn the_one(doubles: &[DoubleGrant]) -> &DoubleGrant {
    assert_eq!(doubles.len(), 1, "{doubles:#?}");
    &doubles[0]
}

#[test]
fn the_clock_jump_grants_redis3_to_client2_while_client1_believes() {
    let run = redlock_run(redlock_story("kleppmann-redlock-clock-jump"), Fencing::None);
    let h = &run.history;
    // redis3, in its own words: client 1's grant, the step seen, the expiry on its stepped
    // wall clock, client 2's grant.
    let words = node_words(h, "redis3");
    let at = |prefix: &str| {
        words
            .iter()
            .position(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' in {words:#?}"))
    };
    let granted1 = at("GRANTS fencelab:lock to client1");
    let stepped = at("** wall clock stepped +2500 ms at 0.300 s");
    let expired = at("EXPIRES fencelab:lock of client1");
    let granted2 = at("GRANTS fencelab:lock to client2");
    assert!(
        granted1 < stepped && stepped < expired && expired < granted2,
        "{words:#?}"
    );
    // The nodes client 1 could not reach granted it nothing; redis1 and redis2 refused client 2.
    assert!(node_words(h, "redis4")
        .iter()
        .all(|w| !w.contains("to client1")));
    assert!(node_words(h, "redis1")
        .iter()
        .any(|w| w == "refuses fencelab:lock to client2: held by client1"));
    // The detector: one double grant, on redis3, inside client 1's belief.
    let doubles = redlock_story::double_grants(h);
    let d = the_one(&doubles);
    assert_eq!(d.node, "redis3");
    assert_eq!(
        (d.earlier.client.as_str(), d.later.client.as_str()),
        ("client1", "client2")
    );
    assert_eq!(d.earlier.end_why, "expired");
    assert!(d.earlier.start_us < d.later.start_us && d.later.start_us < d.believed_until_us);
    // Each side held a quorum of 3 of 5 at once.
    let summary = redlock_story::summary(h);
    assert!(
        summary.contains("client1 holds the lock from 0.055 s to 1.632 s, granted by redis1, redis2, redis3 (3 node(s))"),
        "{summary}"
    );
    assert!(
        summary.contains("granted by redis3, redis4, redis5 (3 node(s))"),
        "{summary}"
    );
    assert!(
        summary.contains("DOUBLE GRANT on redis3: it granted fencelab:lock to client2"),
        "{summary}"
    );
}

#[test]
fn the_restart_loses_client1s_key_on_redis3_and_grants_it_again() {
    let run = redlock_run(redlock_story("kleppmann-redlock-restart"), Fencing::None);
    let boots: Vec<String> = node_words(&run.history, "redis3")
        .into_iter()
        .filter(|w| w.starts_with("boots again"))
        .collect();
    assert_eq!(
        boots,
        ["boots again (boot 2, persistence none): loads 0 key(s); LOST fencelab:lock of client1"]
    );
    let doubles = redlock_story::double_grants(&run.history);
    let d = the_one(&doubles);
    assert_eq!(
        (d.node.as_str(), d.earlier.end_why),
        ("redis3", "lost in a restart")
    );
    // With an fsync per write the key survives the restart: redis3 refuses client 2 and
    // no node grants twice.
    let kept = redlock_run(
        changed("kleppmann-redlock-restart", |s| {
            s.redis.persistence = Persistence::AofAlways
        }),
        Fencing::None,
    );
    let words = node_words(&kept.history, "redis3");
    assert!(
        words
            .iter()
            .any(|w| w.contains("kept fencelab:lock of client1")),
        "{words:#?}"
    );
    assert_eq!(redlock_story::double_grants(&kept.history), []);
    assert!(!kept.verdict.violates());
}

#[test]
fn the_gc_pause_double_grants_on_every_node_and_a_short_pause_on_none() {
    let run = redlock_run(redlock_story("kleppmann-redlock-gc-pause"), Fencing::None);
    let doubles = redlock_story::double_grants(&run.history);
    let nodes: Vec<&str> = doubles.iter().map(|d| d.node.as_str()).collect();
    assert_eq!(nodes, ["redis1", "redis2", "redis3", "redis4", "redis5"]);
    assert!(doubles.iter().all(|d| d.earlier.end_why == "expired"));
    // A pause well inside the validity: client 2 waits for client 1's unlock.
    let short = redlock_run(
        changed("kleppmann-redlock-gc-pause", |s| {
            for f in &mut s.faults {
                if let Fault::Pause { duration_ms, .. } = f {
                    *duration_ms = 500;
                }
            }
        }),
        Fencing::None,
    );
    assert_eq!(redlock_story::double_grants(&short.history), []);
    assert!(!short.verdict.violates());
}

#[test]
fn without_the_jump_no_node_grants_twice_and_the_checker_is_quiet() {
    let run = redlock_run(
        changed("kleppmann-redlock-clock-jump", |s| {
            s.faults.retain(|f| !matches!(f, Fault::Skew { .. }))
        }),
        Fencing::None,
    );
    assert_eq!(redlock_story::double_grants(&run.history), []);
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
    // No step told: the clock never stepped.
    assert!(node_words(&run.history, "redis3")
        .iter()
        .all(|w| !w.contains("wall clock stepped")));
    let summary = redlock_story::summary(&run.history);
    assert!(summary.contains("no double grant"), "{summary}");
}

#[test]
fn a_token_fence_refuses_the_stale_write_though_redlock_still_grants_twice() {
    let run = redlock_run(
        redlock_story("kleppmann-redlock-clock-jump"),
        Fencing::Token,
    );
    // The double grant is Redlock's, whatever the storage does.
    assert_eq!(
        the_one(&redlock_story::double_grants(&run.history)).node,
        "redis3"
    );
    // On seed 1 client 1's random value is the lower, so the token fence refuses it.
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
    let writes = redlock_story::writes_in_words(&run.history);
    assert!(
        writes.starts_with("client2's write accepted, client1's write REJECTED (given token"),
        "{writes}"
    );
}
