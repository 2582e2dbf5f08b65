//! The harness users run in their own tests: it must fail on a known violation with a report
//! that replays, stay quiet on a known-good fence, and replay a failure exactly.

#![cfg(madsim)]

use fencelab::harness::{Harness, PLAN_VAR, SEED_VAR};
use fencelab::robust::Hit;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world::Builder;

#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[test]
fn token_fencing_passes_the_standard_nemesis() {
    Harness::new(Builder::new(Scenario::standard()).fencing(Fencing::Token))
        .seeds(0..200)
        .run();
}

/// K for the shrinking test: small, to keep the suite quick (shrinking makes up to a few
/// hundred measurements of K runs); the default is 20.
const TEST_NOISE_SEEDS: u64 = 10;

#[test]
fn an_unfenced_counter_fails_with_a_shrunk_plan_that_replays() {
    let builder = Builder::new(Scenario::standard()).fencing(Fencing::None);
    let harness = Harness::new(builder.clone())
        .seeds(0..200)
        .noise_seeds(TEST_NOISE_SEEDS);
    let failure = harness.outcome().expect_err("unfenced storage breaks");
    // The lowest failing seed: every seed below it passes.
    for seed in 0..failure.seed {
        assert!(harness.replay(seed, None).is_ok(), "seed {seed} fails too");
    }
    assert_eq!(failure.plan, builder.plan_for(failure.seed));
    assert!(failure.shrunk.len() <= failure.plan.len());
    assert!(failure.shrunk.faults.iter().all(|f| !f.is_noop()));
    // Shrunk toward the finding that failed first, on robustness: the shrunk plan shows a
    // finding of that kind in at least half as many noise seeds as the drawn plan, and
    // without any one of its faults in fewer (each fault is needed).
    let kind = builder
        .run_seed(failure.seed)
        .verdict
        .findings
        .iter()
        .find(|f| f.kind.is_violation())
        .expect("a violation")
        .kind;
    let noise = failure.robustness.noise;
    assert_eq!((noise.first, noise.count), (failure.seed, TEST_NOISE_SEEDS));
    assert_eq!(failure.original.noise, noise);
    assert!(failure.original.violating >= 1, "the seed itself fails");
    let need = (failure.original.violating as f64 / 2.0).ceil().max(1.0) as u64;
    assert!(failure.robustness.violating >= need, "{}", failure.report);
    assert_eq!(failure.without.len(), failure.shrunk.len());
    for (i, r) in failure.without.iter().enumerate() {
        assert!(
            r.violating < need,
            "fault {i} is not needed: {}",
            failure.report
        );
    }
    // The shrunk run the report tells of fails that way at its seed, and replays so.
    let at = failure.story_seed;
    assert!(noise.seeds().contains(&at));
    let shrunk_run = builder.clone().plan(failure.shrunk.clone()).run_seed(at);
    assert!(Hit::of_run(&shrunk_run, Some(kind)).is_some());
    let again = harness
        .replay(at, Some(failure.shrunk.clone()))
        .expect_err("the shrunk plan still fails at its story's seed");
    assert_eq!(again.seed, at);
    println!("{}", failure.report);
    // The report tells one story: the shrunk plan's own counts and first finding, its
    // robustness over the noise seeds, each fault's without it, and its story, also written
    // beside the plan.
    let r = &failure.report;
    assert!(
        r.contains(&format!(
            "the shrunk plan's run (seed {at}): {}",
            failure.shrunk_why
        )),
        "{r}"
    );
    assert!(r.contains(&failure.original.text()), "{r}");
    for w in &failure.without {
        assert!(r.contains(&format!("without it: {}", w.text())), "{r}");
    }
    assert!(
        failure.shrunk_why.contains(kind.as_str()),
        "{}",
        failure.shrunk_why
    );
    assert!(r.contains(&failure.robustness.text()), "{r}");
    assert!(r.contains("story of the shrunk run"), "{r}");
    assert!(!r.contains(" 1 faults"), "{r}");
    assert!(
        failure.story.contains(&format!("=> {}", kind.as_str())),
        "{}",
        failure.story
    );
    // The report names the seed, the policy, the plan, and the lines that replay it.
    let r = &failure.report;
    assert!(
        r.contains(&format!("seed {} fails under fence `none`", failure.seed)),
        "{r}"
    );
    assert!(
        r.contains(&format!("replay: {SEED_VAR}={} cargo test", failure.seed)),
        "{r}"
    );
    assert!(
        r.contains(&serde_json::to_string(&failure.shrunk).unwrap()),
        "{r}"
    );
    let file = failure
        .plan_file
        .as_ref()
        .expect("the shrunk plan is written");
    assert!(
        r.contains(&format!("{SEED_VAR}={at} {PLAN_VAR}={}", file.display())),
        "{r}"
    );
    let written: fencelab::fault::FaultPlan =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(written, failure.shrunk);
    let story = std::fs::read_to_string(file.with_extension("story.txt")).unwrap();
    assert_eq!(story, failure.story);
    // Replays are exact: the same seed and plan give the same history.
    let one = builder.clone().plan(failure.shrunk.clone()).run_seed(at);
    let two = builder.plan(failure.shrunk.clone()).run_seed(at);
    assert_eq!(one.history_hash(), two.history_hash());
}

#[test]
#[should_panic(expected = "replay: FENCELAB_SEED=")]
fn run_panics_with_the_replay_line() {
    Harness::new(Builder::new(Scenario::standard()).fencing(Fencing::None))
        .seeds(0..50)
        .shrink(false)
        .run();
}

#[test]
fn the_panic_names_the_users_test_not_the_harness() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let me = std::thread::current().name().map(str::to_string);
    let keep = seen.clone();
    let before = std::panic::take_hook();
    // Other tests' threads may panic meanwhile: only this thread's panic is recorded.
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name().map(str::to_string) == me {
            *keep.lock().unwrap() = info.location().map(|l| l.file().to_string());
        }
    }));
    let caught = std::panic::catch_unwind(|| {
        Harness::new(Builder::new(Scenario::standard()).fencing(Fencing::None))
            .seeds(0..50)
            .shrink(false)
            .run()
    });
    std::panic::set_hook(before);
    assert!(caught.is_err(), "unfenced storage breaks");
    let file = seen.lock().unwrap().clone();
    assert_eq!(file.as_deref(), Some(file!()));
}

#[test]
fn a_property_of_ones_own_is_judged() {
    // Token fencing never violates, but it does refuse stale operations: a property that
    // forbids any refusal must fail, one that allows them must pass.
    let builder = Builder::new(Scenario::standard()).fencing(Fencing::Token);
    let strict = Harness::new(builder.clone())
        .seeds(0..100)
        .shrink(false)
        .property(|run| match run.verdict.fenced_refusals {
            0 => Ok(()),
            n => Err(format!("{n} fenced refusals")),
        });
    let failure = strict.outcome().expect_err("some seed refuses a stale op");
    assert!(failure.why.contains("fenced refusals"), "{}", failure.why);
    let lenient = Harness::new(builder).seeds(0..100).property(|_| Ok(()));
    assert!(lenient.outcome().is_ok());
}

#[test]
fn a_panic_inside_a_users_fence_is_reported_with_its_seed() {
    use fencelab::protocol::{Op, Request};
    use fencelab::storage::{Admit, Fence, KeyState};
    /// Panics on its first write: a user's bug, as the harness must report it.
    #[derive(Debug)]
    struct Broken;
    impl Fence for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn admit(&self, req: &Request, _: &KeyState<'_>) -> Result<Admit, String> {
            assert!(req.op == Op::Read, "the user's fence has a bug");
            Ok(Admit::keep())
        }
    }
    let harness = Harness::new(Builder::new(Scenario::standard()).fence(Broken))
        .seeds(0..3)
        .jobs(1)
        .shrink(false);
    let failure = harness.outcome().expect_err("the fence panics");
    assert_eq!(failure.seed, 0);
    assert!(
        failure.why.contains("the user's fence has a bug"),
        "{}",
        failure.why
    );
    assert!(
        failure.report.contains("replay: FENCELAB_SEED=0"),
        "{}",
        failure.report
    );
}
