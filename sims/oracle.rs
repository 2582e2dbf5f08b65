//! The fast checker agrees with a brute-force oracle on thousands of small random histories.
//!
//! `sims/oracle/brute.rs` defines what a legal history is and searches for a legal order;
//! `sims/oracle/gen.rs` draws histories, clean and broken. Each case asserts that
//! `checker::check(..).violates()` is exactly "the oracle found no legal order", that
//! token-order breaks are reported exactly when no order satisfies the lock and the storage,
//! and that lost updates match the increments the oracle counts as lost.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test oracle -- --nocapture` runs more than the
//! default 10,000; `--nocapture` prints the agreement count and the mix of cases.

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "oracle/brute.rs"]
mod brute;
#[path = "oracle/gen.rs"]
mod gen;

use fencelab::checker;
use fencelab::history::{Event, EventKind, History, OpResult};
use fencelab::protocol::Op;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;

const DEFAULT_CASES: u32 = 10_000;

fn cases() -> u32 {
    match std::env::var("PROPTEST_CASES") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("PROPTEST_CASES={s:?} is not a number")),
        Err(_) => DEFAULT_CASES,
    }
}

/// Whether the checker and the oracle agree on one history; `Err` says how they differ.
fn agree(history: &History) -> Result<brute::Judgement, String> {
    let verdict = checker::check(history);
    let judgement = brute::judge(history);
    let (oracle_violates, oracle_breaks) = (!judgement.legal, !judgement.order_legal);
    let why = if verdict.violates() != oracle_violates {
        "violates() differs from the oracle"
    } else if (verdict.token_order_breaks > 0) != oracle_breaks {
        "token-order breaks differ from the oracle's order-legality"
    } else if verdict.lost_updates != judgement.lost_increments {
        "lost updates differ from the oracle's lost increments"
    } else if !verdict.anomalies.is_empty() {
        "the checker reported anomalies in a well-formed history"
    } else {
        return Ok(judgement);
    };
    Err(format!(
        "{why}\noracle: {judgement:?}\nchecker: {verdict:?}\nhistory: {}",
        serde_json::to_string_pretty(&history.events).unwrap()
    ))
}

#[test]
fn checker_agrees_with_the_brute_force_oracle() {
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (agreed, violating, order_broken, lost) = (
        Cell::new(0u64),
        Cell::new(0u64),
        Cell::new(0u64),
        Cell::new(0u64),
    );
    let max_steps = Cell::new(0u64);
    let started = std::time::Instant::now();
    let result = runner.run(&gen::plan(), |plan| {
        let history = gen::build(&plan);
        let judgement = agree(&history).map_err(TestCaseError::fail)?;
        agreed.set(agreed.get() + 1);
        violating.set(violating.get() + u64::from(!judgement.legal));
        order_broken.set(order_broken.get() + u64::from(!judgement.order_legal));
        lost.set(lost.get() + u64::from(judgement.lost_increments > 0));
        max_steps.set(max_steps.get().max(judgement.steps));
        Ok(())
    });
    // Shrinking re-runs cases: the counts below are for passing runs only.
    if let Err(e) = result {
        panic!("checker and oracle disagree: {e}");
    }
    let agreed = agreed.get();
    println!(
        "oracle: agreed on {agreed} of {cases} histories in {:.1} s; violating={} token_order_broken={} lost_increment={} clean={} max_search_steps={}",
        started.elapsed().as_secs_f64(),
        violating.get(),
        order_broken.get(),
        lost.get(),
        agreed - violating.get(),
        max_steps.get()
    );
    assert_eq!(agreed, u64::from(cases));
    // Both sides of the line must be well represented, or agreement proves little.
    let share = |n: u64| n as f64 / agreed as f64;
    assert!(
        share(violating.get()) >= 0.25,
        "too few violating histories"
    );
    assert!(
        share(agreed - violating.get()) >= 0.2,
        "too few clean histories"
    );
    assert!(
        share(order_broken.get()) >= 0.1,
        "too few token-order breaks"
    );
    assert!(share(lost.get()) >= 0.05, "too few lost increments");
}

fn event(true_us: u64, node: &str, kind: EventKind) -> Event {
    Event {
        true_us,
        perceived_us: None,
        node: node.into(),
        kind,
    }
}

/// One accepted counter write, invoked by `node` with `token`, acknowledged or not.
fn counter_write(
    events: &mut Vec<Event>,
    op_id: u64,
    node: &str,
    token: i64,
    value: u64,
    outcome: OpResult,
) {
    let t = events.len() as u64;
    let val = value.to_string();
    events.push(event(
        t,
        node,
        EventKind::Invoke {
            op_id,
            op: Op::Write,
            key: "counter".into(),
            val: val.clone(),
            version: token,
            lease_id: 1,
            token,
        },
    ));
    events.push(event(
        t + 1,
        "storage",
        EventKind::StorageApplied {
            op_id: Some(op_id),
            op: Op::Write,
            key: "counter".into(),
            val,
            version: token,
            accepted: true,
            err: String::new(),
        },
    ));
    events.push(event(t + 2, node, EventKind::Complete { op_id, outcome }));
}

/// The counterexample the oracle found in the first checker: an acknowledged increment
/// carried by a write nobody heard back from, then overwritten by a writer that saw neither.
/// Tokens are in order (no break): only the lost-update rule can see it.
#[test]
fn an_increment_carried_by_an_unacknowledged_write_is_still_lost() {
    let ok = |v: u64| OpResult::Ok {
        val: v.to_string(),
        version: 0,
    };
    let unknown = OpResult::Unknown {
        err: "timed out".into(),
    };
    let mut events = Vec::new();
    counter_write(&mut events, 1, "client1", 101, 1, ok(1));
    counter_write(&mut events, 2, "client2", 102, 2, unknown);
    counter_write(&mut events, 3, "client3", 103, 1, ok(1));
    let history = History {
        events,
        ..History::default()
    };
    let judgement = brute::judge(&history);
    assert!(!judgement.legal && judgement.order_legal);
    assert_eq!(judgement.lost_increments, 1);
    let verdict = checker::check(&history);
    assert_eq!(verdict.lost_updates, 1, "{verdict:?}");
    assert_eq!(verdict.token_order_breaks, 0);
    agree(&history).unwrap();
}

/// Negative space: a clean serial history is legal to both, a stale write is not.
#[test]
fn oracle_tells_clean_from_stale() {
    let ok = |v: u64| OpResult::Ok {
        val: v.to_string(),
        version: 0,
    };
    let mut events = Vec::new();
    counter_write(&mut events, 1, "client1", 101, 1, ok(1));
    counter_write(&mut events, 2, "client2", 102, 2, ok(2));
    let clean = History {
        events: events.clone(),
        ..History::default()
    };
    assert!(brute::judge(&clean).legal);
    agree(&clean).unwrap();
    counter_write(&mut events, 3, "client1", 101, 3, ok(3));
    let stale = History {
        events,
        ..History::default()
    };
    let judgement = brute::judge(&stale);
    assert!(!judgement.legal && !judgement.order_legal);
    assert!(checker::check(&stale).token_order_breaks > 0);
    agree(&stale).unwrap();
}
