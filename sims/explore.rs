//! Property-based exploration of fault schedules.
//!
//! - under `token`, no explored plan produces a violation (a violation found would persist in
//!   `sims/regressions/explore-token.txt`, to be re-run first forever after);
//! - under `none` and `token-writes`, on the standard scenario, the search finds a violation
//!   and shrinks it on robustness to issue 21's bar: at most 2 faults, none a no-op, violating
//!   in at least 50% of 20 noise seeds, below 10% without any one of its faults. The search
//!   seed is pinned ([`SEARCH_SEED`]); the noise seeds are the chosen case's.
//!
//! `PROPTEST_CASES=N` explores more.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::explore::{self, Case};
use fencelab::robust;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world::Builder;
use proptest::test_runner::{TestCaseError, TestRunner};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn token_fencing_survives_every_explored_plan() {
    let base = Scenario::standard();
    let config = explore::config(cases(1024), 1, Some("sims/regressions/explore-token.txt"));
    let mut runner = TestRunner::new(config);
    let result = runner.run(
        &explore::case_strategy(base.duration_ms, &explore::Space::new(3_000)),
        |case: Case| {
            let run = case.run(&base, Fencing::Token);
            if run.verdict.violates() || run.verdict.false_rejections > 0 {
                return Err(TestCaseError::fail(format!(
                    "{:?}\nplan: {}",
                    run.verdict,
                    serde_json::to_string(&case.plan()).unwrap()
                )));
            }
            assert!(
                run.verdict.anomalies.is_empty(),
                "{:?}",
                run.verdict.anomalies
            );
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("fencing=token broke: {e}");
    }
}

/// proptest's search seed the two shrinking tests use; the noise seeds are the 20 from the
/// chosen case's own seed on (printed).
const SEARCH_SEED: u64 = 0;

/// Issue 21's bar for a shrunk counterexample on the standard scenario, measured: at most 2
/// faults, none a no-op, violating in at least half of its noise seeds, and each fault needed
/// (without any one, under 10%).
fn shrinks_to_a_robust_minimal_plan(fencing: Fencing) {
    let base = Scenario::standard();
    let builder = Builder::new(base).fencing(fencing);
    let settings = explore::Settings::default();
    let found = explore::explore_with(
        &builder,
        explore::config(cases(256), SEARCH_SEED, None),
        &explore::Space::new(3_000),
        &settings,
    );
    assert!(
        found.found,
        "{fencing}: no violation in {} cases",
        found.cases
    );
    let plan = found.plan.clone().expect("found");
    let evidence = found.evidence.clone().expect("found");
    let original = found.original.clone().expect("found");
    println!(
        "fencing={fencing} cases={} runs={} faults_before={} original={} need={} plan={}\n{}",
        found.cases,
        found.runs,
        found.faults_before,
        original.text(),
        found.need,
        serde_json::to_string(&plan).unwrap(),
        evidence.text()
    );
    assert!(plan.len() <= 2, "{fencing}: {} faults", plan.len());
    assert!(!plan.is_empty(), "{fencing}: a violation with no fault");
    for f in &plan.faults {
        assert!(
            !f.is_noop(),
            "{fencing}: a no-op in the plan: {}",
            f.describe()
        );
    }
    let rate = evidence.robustness.rate();
    assert!(
        rate >= 0.5,
        "{fencing}: robustness {}",
        evidence.robustness.text()
    );
    for (f, without) in plan.faults.iter().zip(&evidence.without) {
        assert!(
            without.rate() < 0.1,
            "{fencing}: without {} it still violates in {}",
            f.describe(),
            without.text()
        );
    }
    // Measured afresh over the same noise seeds, it is the same figure.
    let scenario = found.scenario.clone().expect("found");
    let judge = robust::violation_judge(None);
    let b = builder.with_scenario(scenario);
    let noise = evidence.robustness.noise;
    let (again, _) = robust::measure(&b, &plan, noise, settings.jobs, &judge);
    assert_eq!(again, evidence.robustness);
    // The most typical noise seed violates, and its story ends in the finding.
    let seed = evidence.typical_seed.expect("a violating noise seed");
    let run = b.plan(plan).run_seed(seed);
    assert!(run.verdict.violates());
    let story = fencelab::report::story_excerpt(&run);
    assert!(story.contains("=> "), "{story}");
}

#[test]
fn unfenced_violation_shrinks_to_a_robust_minimal_plan() {
    shrinks_to_a_robust_minimal_plan(Fencing::None);
}

#[test]
fn token_writes_violation_shrinks_to_a_robust_minimal_plan() {
    shrinks_to_a_robust_minimal_plan(Fencing::TokenWrites);
}
