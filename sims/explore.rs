//! Property-based exploration of fault schedules.
//!
//! - under `token`, no explored plan produces a violation;
//! - under `none`, and `token-writes` with long critical sections, proptest finds a violation
//!   and shrinks it; the shrunk plan still fails and removing any one fault makes it pass.
//!
//! Found counterexamples persist in `sims/regressions/`, so they are re-run first forever
//! after. `PROPTEST_CASES=N` explores more.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::explore::{self, Case};
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
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

fn finds_and_shrinks(fencing: Fencing, regressions: &'static str) {
    let base = Scenario::standard();
    let found = explore::explore(
        &base,
        fencing,
        explore::config(cases(256), 0, Some(regressions)),
        &explore::Space::new(3_000),
    );
    assert!(
        found.found,
        "{fencing}: no violation in {} cases",
        found.cases
    );
    let case = found.case.expect("found");
    println!(
        "fencing={fencing} cases={} faults_before={} faults_after={} plan={}",
        found.cases,
        found.faults_before,
        found.faults_after,
        serde_json::to_string(&case.plan()).unwrap()
    );
    assert!(found.faults_after <= found.faults_before);
    assert_eq!(found.faults_after, case.faults.len());
    // The shrunk plan still fails, run afresh.
    assert!(case.run(&base, fencing).verdict.violates());
    // And it is 1-minimal: without any one of its faults, the run passes.
    for i in 0..case.faults.len() {
        let smaller = case.without(i);
        assert!(
            !smaller.run(&base, fencing).verdict.violates(),
            "{fencing}: still fails without fault {i} ({:?})",
            case.faults[i]
        );
    }
}

#[test]
fn unfenced_violation_is_found_and_shrunk_to_a_minimal_plan() {
    finds_and_shrinks(Fencing::None, "sims/regressions/explore-none.txt");
}

#[test]
fn token_writes_violation_is_found_and_shrunk_to_a_minimal_plan() {
    finds_and_shrinks(
        Fencing::TokenWrites,
        "sims/regressions/explore-token-writes.txt",
    );
}
