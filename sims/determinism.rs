//! Same seed, same configuration: the same history, byte for byte.
#![cfg(madsim)]

use fencelab::nemesis::FaultPlan;
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
    let (scenario, plan) = stories::seed_walkthrough_stalled();
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
