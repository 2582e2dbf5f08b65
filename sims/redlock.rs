//! Kleppmann against antirez, run: Redlock on five simulated Redis nodes (issue 19).
//!
//! Each of Kleppmann's scenarios (`sims/scenarios/kleppmann-redlock-*.toml`) must give the
//! double grant it describes, unfenced, and each of its faults must be needed: without the
//! clock jump, the restart or the pause, the same world grants the lock to one client at a time.
#![cfg(madsim)]

#[path = "../src/global_alloc.rs"]
mod global_alloc;
#[path = "shared/scenario_files.rs"]
mod scenario_files;
use scenario_files::load;

use fencelab::fault::{Fault, FaultPlan};
use fencelab::history::{EventKind, History, OpResult};
use fencelab::lock::RedlockToken;
use fencelab::protocol::Op;
use fencelab::redis::Persistence;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world::{self, Builder, Run};

const SEED: u64 = 7;

fn run(s: &Scenario, fencing: Fencing) -> Run {
    let run = world::run(s, &s.scripted_plan(), fencing, SEED);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    run
}

/// True times (µs) of each node's first `Acquired` and `Released`.
fn held(h: &History, node: &str) -> Option<(u64, u64)> {
    let at = |released: bool| {
        h.events.iter().find_map(|e| match e.kind {
            EventKind::Acquired { .. } if e.node == node && !released => Some(e.true_us),
            EventKind::Released { .. } if e.node == node && released => Some(e.true_us),
            _ => None,
        })
    };
    Some((at(false)?, at(true)?))
}

/// Whether both clients held the lock at once (the double grant).
fn double_grant(h: &History) -> bool {
    match (held(h, "client1"), held(h, "client2")) {
        (Some((a1, r1)), Some((a2, r2))) => a1 < r2 && a2 < r1,
        _ => false,
    }
}

fn write_outcome(h: &History, node: &str) -> Option<OpResult> {
    h.ops()
        .iter()
        .find(|o| {
            o.invoke.node == node
                && matches!(o.invoke.kind, EventKind::Invoke { op: Op::Write, .. })
        })
        .and_then(|o| o.outcome().cloned())
}

fn without(s: &Scenario, drop: impl Fn(&Fault) -> bool) -> Scenario {
    Scenario {
        faults: s.faults.iter().filter(|f| !drop(f)).cloned().collect(),
        ..s.clone()
    }
}

#[test]
fn a_clock_jump_on_one_redis_node_grants_the_lock_twice() {
    let s = load("kleppmann-redlock-clock-jump");
    let r = run(&s, Fencing::None);
    assert!(double_grant(&r.history), "{:#?}", r.history.events);
    // Client 1 writes last, after client 2 took the lock: the stale write lands.
    assert!(r.verdict.violates(), "{:?}", r.verdict);
    assert_eq!(r.history.final_entries["key0"].val, "value from client1");
    // The jump is needed: without it C keeps client 1's key, client 2 has 2 of 5.
    let calm = run(
        &without(&s, |f| matches!(f, Fault::Skew { .. })),
        Fencing::None,
    );
    assert!(!double_grant(&calm.history));
    assert!(!calm.verdict.violates(), "{:?}", calm.verdict);
    // So is the partition: with D and E reachable, client 1 holds all five.
    let joined = run(
        &without(&s, |f| matches!(f, Fault::Partition { .. })),
        Fencing::None,
    );
    assert!(!double_grant(&joined.history));
}

#[test]
fn a_restart_without_persistence_grants_the_lock_twice_and_fsync_always_does_not() {
    let s = load("kleppmann-redlock-restart");
    let r = run(&s, Fencing::None);
    assert!(double_grant(&r.history));
    assert!(r.verdict.violates(), "{:?}", r.verdict);
    let mut kept = s.clone();
    kept.redis.persistence = Persistence::AofAlways;
    let r = run(&kept, Fencing::None);
    assert!(!double_grant(&r.history), "aof-always keeps the key");
    assert!(!r.verdict.violates(), "{:?}", r.verdict);
    let mut delayed = s.clone();
    delayed.redis.restart_delay_ms = 2_500;
    let r = run(&delayed, Fencing::None);
    assert!(
        !double_grant(&r.history),
        "a delayed restart outlives the TTL"
    );
}

#[test]
fn a_pause_past_validity_breaks_redlock_and_only_a_rising_token_refuses_the_stale_write() {
    let s = load("kleppmann-redlock-gc-pause");
    let r = run(&s, Fencing::None);
    assert!(r.verdict.violates(), "{:?}", r.verdict);
    assert_eq!(r.history.final_entries["key0"].val, "value from client1");
    // An INCR counter on redis1 rises here (no restart): the token fence refuses client 1.
    let mut incr = s.clone();
    incr.redis.token = RedlockToken::Incr;
    let r = run(&incr, Fencing::Token);
    assert!(!r.verdict.violates(), "{:?}", r.verdict);
    assert!(matches!(
        write_outcome(&r.history, "client1"),
        Some(OpResult::Rejected { .. })
    ));
    assert_eq!(r.history.final_entries["key0"].val, "value from client2");
    // Without the pause, client 2 waits for client 1's release.
    let calm = run(&without(&s, |_| true), Fencing::None);
    assert!(!double_grant(&calm.history));
    assert!(!calm.verdict.violates());
}

#[test]
fn an_incr_token_resets_when_its_node_restarts_without_persistence() {
    // Kleppmann: "a counter on one node dies with the node". redis1 restarts empty between
    // the two grants; client 2's token is no higher than client 1's, and the token fence
    // refuses the new holder (a false rejection) while the stale one writes.
    let mut s = load("kleppmann-redlock-gc-pause");
    s.redis.token = RedlockToken::Incr;
    s.faults.push(Fault::Crash {
        node: "redis1".into(),
        at_ms: 1_500,
        restart_after_ms: 100,
    });
    let r = run(&s, Fencing::Token);
    let token = |node: &str| {
        r.history.events.iter().find_map(|e| match e.kind {
            EventKind::Acquired { token, .. } if e.node == node => Some(token),
            _ => None,
        })
    };
    assert_eq!(token("client1"), Some(1));
    assert_eq!(token("client2"), Some(1), "the counter started again");
    assert!(
        r.verdict.false_rejections > 0 || r.verdict.violates(),
        "{:?}",
        r.verdict
    );
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let s = load("kleppmann-redlock-clock-jump");
    let a = Builder::new(s.clone())
        .plan(s.scripted_plan())
        .seed(3)
        .run();
    let b = Builder::new(s.clone())
        .plan(s.scripted_plan())
        .seed(3)
        .run();
    assert_eq!(a.history_hash(), b.history_hash());
}

#[test]
fn bad_redlock_scenarios_name_the_key() {
    let base = "service = \"redlock\"\nlock_method = \"redlock\"\n";
    let e = Scenario::from_toml("service = \"redlock\"\n").unwrap_err();
    assert!(e.starts_with("lock_method"), "{e}");
    let e = Scenario::from_toml(&format!("{base}[redis]\nnodes = 0\n")).unwrap_err();
    assert!(e.contains("redis.nodes"), "{e}");
    let e = Scenario::from_toml(&format!("{base}[redis]\npersistence = \"fsync\"\n")).unwrap_err();
    assert!(e.contains("persistence"), "{e}");
    let e = Scenario::from_toml(&format!("{base}ttl_s = 0\n")).unwrap_err();
    assert!(e.starts_with("ttl_s"), "{e}");
    let e = Scenario::from_toml("lock_method = \"redlock\"\n").unwrap_err();
    assert!(e.starts_with("lock_method"), "{e}");
    let e = Scenario::from_toml(&format!(
        "{base}[[faults]]\nfault = \"crash\"\nnode = \"redis6\"\nat_ms = 1\nrestart_after_ms = 1\n"
    ))
    .unwrap_err();
    assert!(e.contains("faults"), "{e}");
    for quorum in [0, 6] {
        let e = Scenario::from_toml(&format!("{base}[redis]\nquorum = {quorum}\n")).unwrap_err();
        assert!(e.starts_with("redis.quorum"), "{e}");
        assert!(e.contains("1..=5"), "{e}");
    }
    let e = Scenario::from_toml(&format!("{base}[redis]\nnodes = 3\nquorum = 4\n")).unwrap_err();
    assert!(e.contains("majority, 2"), "{e}");
}

#[test]
fn a_quorum_below_a_majority_grants_twice_without_any_fault() {
    // Each client SETs the nodes in the same order, so the loser of redis1 wins redis2: with a
    // quorum of 1 both hold at once, and the counter loses increments with no fault at all.
    let majority = Scenario::redlock();
    let mut one = majority.clone();
    one.redis.quorum = Some(1);
    let mut violating = 0;
    for seed in 0..20 {
        let r = world::run(&majority, &FaultPlan::none(), Fencing::None, seed);
        assert!(!r.verdict.violates(), "seed {seed}: {:?}", r.verdict);
        violating += world::run(&one, &FaultPlan::none(), Fencing::None, seed)
            .verdict
            .violates() as u32;
    }
    println!("quorum 1 of 5, no faults: {violating} of 20 seeds violate");
    assert!(
        violating >= 10,
        "quorum 1 of 5 broke {violating} of 20 seeds"
    );
}

#[test]
fn the_single_instance_lock_excludes_without_faults_and_breaks_under_a_pause() {
    // redis.io's single-instance lock: SET NX PX on redis1 alone, quorum 1.
    let quiet = Scenario {
        lock_method: fencelab::lock::LockMethod::RedisSingle,
        ..Scenario::redlock()
    };
    for seed in 0..20 {
        let r = world::run(&quiet, &FaultPlan::none(), Fencing::None, seed);
        assert!(!r.verdict.violates(), "seed {seed}: {:?}", r.verdict);
        assert!(
            r.verdict.acked_increments > 10,
            "seed {seed}: {:?}",
            r.verdict
        );
        assert!(r.verdict.anomalies.is_empty(), "{:?}", r.verdict.anomalies);
    }
    let mut paused = load("kleppmann-redlock-gc-pause");
    paused.lock_method = fencelab::lock::LockMethod::RedisSingle;
    let r = run(&paused, Fencing::None);
    assert!(r.verdict.violates(), "{:?}", r.verdict);
}

#[test]
fn the_clock_jump_story_labels_the_step_outside_and_the_partitions_inside() {
    use fencelab::label::{label_plan, Assumption};
    let s = load("kleppmann-redlock-clock-jump");
    let labels = label_plan(&s.faults, &s);
    for l in &labels {
        let want = match l.fault {
            Fault::Skew { .. } => Assumption::Outside,
            _ => Assumption::Inside,
        };
        assert_eq!(l.assumption, want, "{:?}: {}", l.fault, l.why);
    }
    // A step within Redlock's drift margin (22 ms at a 2 s TTL) is inside, and breaks nothing.
    let mut small = s.clone();
    for f in small.faults.iter_mut() {
        if let Fault::Skew { skew, .. } = f {
            skew.steps[0].delta_ms = 20;
        }
    }
    assert!(label_plan(&small.faults, &small)
        .iter()
        .all(|l| l.assumption == Assumption::Inside));
    assert!(!run(&small, Fencing::None).verdict.violates());
    // A pause of the holder past its validity is outside.
    let paused = load("kleppmann-redlock-gc-pause");
    let labels = label_plan(&paused.faults, &paused);
    assert_eq!(
        labels[0].assumption,
        Assumption::Outside,
        "{}",
        labels[0].why
    );
    assert!(
        labels[0].why.contains("lock's validity"),
        "{}",
        labels[0].why
    );
}

#[test]
fn faults_labelled_inside_never_break_redlock_and_those_outside_do() {
    use fencelab::{label, nemesis, sweep};
    // The Redlock nemesis, each seed's plan kept to its faults labelled inside Redlock's
    // assumptions (client pauses within what is left of the validity, steps and drift within
    // the drift margin, partitions from Redis nodes, crashes).
    let scenario = Scenario::preset("redlock").unwrap();
    let runs = sweep::map_seeds(0..400, sweep::default_jobs(), |seed| {
        let full = nemesis::draw(&scenario, seed);
        let inside = label::keep_inside(&full, &scenario);
        let kept = inside.faults.len();
        let r = world::run(&scenario, &inside, Fencing::None, seed);
        let all = world::run(&scenario, &full, Fencing::None, seed);
        (
            seed,
            kept,
            r.verdict.violates(),
            all.verdict.violates(),
            inside,
        )
    });
    let kept: usize = runs.iter().map(|r| r.1).sum();
    assert!(kept > 400, "only {kept} inside faults in 400 seeds");
    for (seed, _, broke, _, plan) in &runs {
        assert!(
            !broke,
            "seed {seed}: inside faults broke Redlock: {}",
            serde_json::to_string(plan).unwrap()
        );
    }
    // Negative space: the same seeds with every fault break most runs.
    let broke_all = runs.iter().filter(|r| r.3).count();
    assert!(broke_all > 200, "{broke_all} of 400");
}

/// Whether a client's history shows an extension that succeeded, and one that failed.
fn extensions(h: &History) -> (usize, usize) {
    let mut n = (0, 0);
    for e in &h.events {
        if let EventKind::LockExtended { until_us, .. } = e.kind {
            match until_us {
                Some(_) => n.0 += 1,
                None => n.1 += 1,
            }
        }
    }
    n
}

#[test]
fn an_extended_lock_outlives_a_long_computation_but_not_a_pause_before_the_write() {
    // Computations of 2.5 to 3 s against a 2 s TTL: a holder that does not extend writes after
    // its keys expired, and another client may hold by then.
    let long = Scenario {
        critical_ms: fencelab::ms::MsRange::new(2_500, 3_000),
        ..Scenario::redlock()
    };
    let mut extended = long.clone();
    extended.redis.extend_below_ms = Some(500);
    let (mut plain_violating, mut extended_total) = (0, 0);
    for seed in 0..10 {
        let e = world::run(&extended, &FaultPlan::none(), Fencing::None, seed);
        assert!(!e.verdict.violates(), "seed {seed}: {:?}", e.verdict);
        let (ok, failed) = extensions(&e.history);
        assert!(
            ok > 0 && failed == 0,
            "seed {seed}: {ok} extended, {failed} failed"
        );
        extended_total += ok;
        let p = world::run(&long, &FaultPlan::none(), Fencing::None, seed);
        assert_eq!(extensions(&p.history), (0, 0));
        plain_violating += p.verdict.violates() as u32;
    }
    println!(
        "computations past the validity, 10 seeds: {plain_violating} violate without extension; \
         with it none, over {extended_total} extensions"
    );
    assert!(plain_violating >= 5, "{plain_violating} of 10");
    // Kleppmann's pause, between the last extension and the write, outlives any extension.
    let paused = Scenario::from_toml(
        "service = \"redlock\"\nlock_method = \"redlock\"\nclients = 2\nworkload = \"single\"\n\
         duration_ms = 30000\ncritical_ms = { min = 0, max = 0 }\n[redis]\nextend_below_ms = 500\n\
         [nemesis]\nenabled = false\n[[scripts]]\nclient = 1\nstart_ms = 0\n\
         [[scripts]]\nclient = 2\nstart_ms = 1000\n[[faults]]\nfault = \"pause\"\n\
         node = \"client1\"\nat = { point = { point = \"before-write\", nth = 1 } }\n\
         duration_ms = 5000\n",
    )
    .expect("the scenario");
    let r = run(&paused, Fencing::None);
    assert!(double_grant(&r.history), "{:?}", r.verdict);
    assert!(r.verdict.violates(), "{:?}", r.verdict);
    let e = Scenario::from_toml(
        "service = \"redlock\"\nlock_method = \"redlock\"\n[redis]\nextend_below_ms = 0\n",
    )
    .unwrap_err();
    assert!(e.starts_with("redis.extend_below_ms"), "{e}");
}
