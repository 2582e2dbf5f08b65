//! Same seed, same configuration: the same history, byte for byte.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::fault::FaultPlan;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::stories;
use fencelab::world;

const SEEDS: u64 = 100;

#[test]
fn standard_scenario_replays_byte_for_byte() {
    let scenario = Scenario::standard();
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..SEEDS {
        // Half the seeds without faults, half with the plan the nemesis draws.
        let plan = if seed % 2 == 0 {
            FaultPlan::none()
        } else {
            fencelab::nemesis::draw(&scenario, seed)
        };
        let a = world::run(&scenario, &plan, Fencing::Token, seed);
        let b = world::run(&scenario, &plan, Fencing::Token, seed);
        let (ja, jb) = (
            serde_json::to_string(&a.history).unwrap(),
            serde_json::to_string(&b.history).unwrap(),
        );
        assert!(ja == jb, "seed {seed}: two runs differ");
        assert_eq!(a.history_hash(), b.history_hash());
        distinct.insert(a.history_hash());
    }
    // Negative space: the seed matters. Different seeds give different histories.
    assert!(
        distinct.len() as u64 > SEEDS * 9 / 10,
        "only {} distinct histories",
        distinct.len()
    );
}

#[test]
fn scripted_story_replays_interleaved_with_other_runs() {
    let (scenario, plan) = stories::contrib_lock_walkthrough_stalled();
    let first = world::run(&scenario, &plan, Fencing::LeaseId, 3).history_hash();
    // Other runs on the same thread in between must not leak into the next one.
    let _ = world::run(&Scenario::standard(), &FaultPlan::none(), Fencing::None, 99);
    let again = world::run(&scenario, &plan, Fencing::LeaseId, 3).history_hash();
    assert_eq!(first, again);
}

#[test]
fn a_thousand_random_plans_replay_whatever_the_thread_split() {
    use fencelab::sweep;
    let scenario = Scenario::standard();
    let one = sweep::sweep(&scenario, Fencing::None, 0..1000, 1, &|_| {});
    let all = sweep::sweep(
        &scenario,
        Fencing::None,
        0..1000,
        sweep::default_jobs().max(2),
        &|_| {},
    );
    assert_eq!(one.len(), 1000);
    for (a, b) in one.iter().zip(&all) {
        assert_eq!(a.seed, b.seed);
        assert_eq!(a.history_hash, b.history_hash, "seed {} differs", a.seed);
    }
}

/// Every number in `v`, with the key it sits under ("" in arrays and at the top).
fn numbers<'a>(
    key: &'a str,
    v: &'a serde_json::Value,
    out: &mut Vec<(&'a str, &'a serde_json::Number)>,
) {
    match v {
        serde_json::Value::Number(n) => out.push((key, n)),
        serde_json::Value::Array(items) => items.iter().for_each(|i| numbers("", i, out)),
        serde_json::Value::Object(fields) => fields.iter().for_each(|(k, i)| numbers(k, i, out)),
        _ => {}
    }
}

/// Every `lease_id` string in `v`.
fn lease_ids<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| lease_ids(i, out)),
        serde_json::Value::Object(fields) => {
            for (k, i) in fields {
                match (k.as_str(), i) {
                    ("lease_id", serde_json::Value::String(s)) => out.push(s),
                    _ => lease_ids(i, out),
                }
            }
        }
        _ => {}
    }
}

/// A history's JSON is exact in jq 1.6 and JavaScript (which read numbers as doubles): every
/// number is within 2^53, lease IDs are hex strings. It reads back to the same history, and the
/// same seed still gives the same hash.
#[test]
fn history_json_is_exact_for_json_tools_and_round_trips() {
    use fencelab::exact_json::{lease_id, SAFE_INTEGER_MAX};
    use fencelab::history::History;
    let scenario = Scenario::standard();
    let (mut leases, mut big_leases, mut wire_versions) = (0, 0, 0);
    for fencing in Fencing::ALL {
        for seed in 0..8 {
            let plan = fencelab::nemesis::draw(&scenario, seed);
            let run = world::run(&scenario, &plan, fencing, seed);
            // The history, and the whole run as `run --json` prints it.
            let json = serde_json::to_string(&run.history).unwrap();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            let whole = serde_json::to_value(&run).unwrap();
            let mut found = vec![];
            numbers("", &whole, &mut found);
            numbers("", &value, &mut found);
            assert!(
                found.len() > 100,
                "{fencing} seed {seed}: {} numbers",
                found.len()
            );
            for (key, n) in found {
                let exact = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                    (Some(u), _, _) => u <= SAFE_INTEGER_MAX,
                    (_, Some(i), _) => i.unsigned_abs() <= SAFE_INTEGER_MAX,
                    (_, _, Some(f)) => f.abs() <= SAFE_INTEGER_MAX as f64,
                    _ => false,
                };
                assert!(exact, "{fencing} seed {seed}: {key} = {n} is beyond 2^53");
            }
            // Lease IDs are there, as hex strings, and the big ones are why.
            let mut ids = vec![];
            lease_ids(&value, &mut ids);
            assert!(!ids.is_empty(), "{fencing} seed {seed}: no lease ID");
            for id in ids {
                assert_eq!(id.len(), 16, "{id}");
                let parsed = lease_id::parse(id).unwrap();
                leases += 1;
                big_leases += (parsed.unsigned_abs() > SAFE_INTEGER_MAX) as u32;
            }
            // What the wire carried reads back exactly, as it went: under lease-id the lease
            // ID, else the token.
            for e in &run.history.events {
                if let fencelab::history::EventKind::Invoke {
                    version,
                    lease_id,
                    token,
                    ..
                } = &e.kind
                {
                    let sent = if fencing.sends_lease_id() {
                        lease_id
                    } else {
                        token
                    };
                    assert_eq!(version, sent);
                    wire_versions += 1;
                }
            }
            // The JSON reads back to the same history, hash and text.
            let back: History = serde_json::from_str(&json).unwrap();
            assert!(
                back == run.history,
                "{fencing} seed {seed}: round trip differs"
            );
            assert_eq!(back.hash(), run.history_hash());
            assert!(serde_json::to_string(&back).unwrap() == json);
            // Same seed, same hash.
            let again = world::run(&scenario, &plan, fencing, seed);
            assert_eq!(
                again.history_hash(),
                run.history_hash(),
                "{fencing} seed {seed}"
            );
        }
    }
    assert!(wire_versions > 100, "{wire_versions} operations");
    // Negative space: plain numbers would not have done. The simulated etcd's lease IDs are
    // random 63-bit numbers, nearly all above 2^53.
    assert!(
        big_leases * 10 > leases * 9,
        "only {big_leases} of {leases} lease IDs above 2^53"
    );
}

#[test]
fn a_run_does_not_depend_on_the_runs_before_it_on_its_thread() {
    // tokio's unbiased `select!` draws from a thread-local RNG outside madsim's: with one in
    // the world, seed 797 came out differently after other seeds had run on the same thread.
    use fencelab::nemesis;
    let scenario = Scenario::standard();
    let json_of = |seed: u64| {
        let plan = nemesis::draw(&scenario, seed);
        serde_json::to_string(&world::run(&scenario, &plan, Fencing::None, seed).history).unwrap()
    };
    for seed in [797u64, 3, 1234] {
        let alone = std::thread::scope(|s| s.spawn(|| json_of(seed)).join().unwrap());
        let after = std::thread::scope(|s| {
            s.spawn(|| {
                for other in 0..25 {
                    json_of(10_000 + other);
                }
                json_of(seed)
            })
            .join()
            .unwrap()
        });
        assert!(
            alone == after,
            "seed {seed} changed after other runs on its thread"
        );
    }
}

/// The history's events other than the nemesis's own, hashed: what a fault changed in the
/// world, not the record of the fault itself.
fn world_hash(h: &fencelab::history::History) -> u64 {
    let mut world = h.clone();
    world
        .events
        .retain(|e| !matches!(e.kind, fencelab::history::EventKind::Fault { .. }));
    world.hash()
}

/// How chaotic the world is (issue 21): add a 0 ms pause of client 2 at 3 s, which does
/// nothing but wake the node, to each seed's own plan, and count the seeds whose history, fault
/// events aside, changes, and those whose verdict flips. madsim draws every message latency
/// and the poll order of ready tasks from one global RNG, so one extra wake-up shifts every
/// later draw (the etcd model's draws have streams of their own per member: 57 changed before
/// them, 56 after). Pinned as measured (`docs/determinism.md`): a change that lowers the chaos
/// lowers these counts and updates them there and here.
#[test]
fn a_no_op_pause_changes_most_histories() {
    use fencelab::fault::{Fault, Trigger};
    use fencelab::nemesis;
    let scenario = Scenario::standard();
    let (mut changed, mut flipped) = (0, 0);
    for seed in 1..=60u64 {
        let plan = nemesis::draw(&scenario, seed);
        let mut with_noop = plan.clone();
        with_noop.faults.push(Fault::Pause {
            node: "client2".into(),
            at: Trigger::AtMs(3_000),
            duration_ms: 0,
        });
        let a = world::run(&scenario, &plan, Fencing::None, seed);
        let b = world::run(&scenario, &with_noop, Fencing::None, seed);
        changed += (world_hash(&a.history) != world_hash(&b.history)) as u32;
        flipped += (a.verdict.violates() != b.verdict.violates()) as u32;
    }
    println!("a 0 ms pause, seeds 1-60: {changed} histories changed, {flipped} verdicts flipped");
    assert_eq!((changed, flipped), (NOOP_CHANGED, NOOP_FLIPPED));
}

/// The counts `a_no_op_pause_changes_most_histories` measured (see its doc).
const NOOP_CHANGED: u32 = 56;
const NOOP_FLIPPED: u32 = 2;
