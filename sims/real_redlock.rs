//! Real mode: Kleppmann's clock jump on Redlock against five real redis-servers
//! (`fencelab real-redlock-demo`, `src/tools/real/redlock.rs`): the double grant, the stale
//! write an unfenced storage accepts and an `INCR`-fed token fence refuses, and the control
//! without the clock step, in which client 2 finds no quorum.
//!
//! Needs the five servers of `.ci/redis-servers` to itself (it stops D and E and steps C's
//! clock), so it is a test binary of its own, run after `real_redis` (`.ci/run`); skipped, with
//! a message, without `FENCELAB_REDIS`. On a developer's machine:
//!
//! ```text
//! bash .ci/redis-servers env RUSTFLAGS= cargo test --release --target-dir target/real \
//!   --test real_redlock -- --nocapture
//! ```
#![cfg(not(madsim))]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::history::OpResult;
use fencelab::lock::RedlockToken;
use fencelab::real::{self, RedlockDemoArgs, RedlockDemoConfig, RedlockRun};
use fencelab::storage::Fencing;
use std::sync::Mutex;

/// Every test stops and steps the same five servers: one story at a time.
static SERVERS: Mutex<()> = Mutex::new(());

/// The story's configuration from the environment, or `None` (with a message) without it.
fn config(fencing: Fencing, token: RedlockToken, clock_step: bool) -> Option<RedlockDemoConfig> {
    if std::env::var("FENCELAB_REDIS").is_err() {
        println!(
            "real Redlock suite skipped: FENCELAB_REDIS is unset; start five servers with \
             `bash .ci/redis-servers CMD` (see the header of sims/real_redlock.rs)"
        );
        return None;
    }
    let args = RedlockDemoArgs {
        redis: None,
        offset_files: None,
        pids: None,
        fencing: fencing.to_string(),
        token: match token {
            RedlockToken::Random => "random".into(),
            RedlockToken::Incr => "incr".into(),
        },
        no_clock_step: !clock_step,
    };
    let mut cfg = real::redlock_config(&args, fencing).expect("the environment's servers");
    cfg.echo = false;
    Some(cfg)
}

fn story(cfg: &RedlockDemoConfig) -> RedlockRun {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let run = real::redlock_walkthrough(cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
    println!("{}", run.lines.join("\n"));
    println!("{}", real::redlock_summary(&run));
    run
}

/// The story as Kleppmann tells it: client 1 holds A, B, C; client 2 holds C, D, E; both at
/// once, each valid by its own clock.
fn assert_double_grant(run: &RedlockRun) {
    let c2 = run
        .client2
        .as_ref()
        .expect("client 2 takes the lock after C's step");
    assert_eq!(run.client1.nodes_ok, ['A', 'B', 'C'], "{:?}", run.lines);
    assert_eq!(c2.nodes_ok, ['C', 'D', 'E'], "{:?}", run.lines);
    let (left1_ms, left2_ms) = run.validity_left_ms.expect("both validities");
    assert!(left1_ms > 0 && left2_ms > 0, "{left1_ms} {left2_ms}");
    assert!(run.double_grant());
    assert!(matches!(run.write2, Some(OpResult::Ok { .. })), "{run:?}");
}

/// Without a fence, client 1's stale write lands over client 2's.
#[test]
fn clock_jump_double_grant_and_an_unfenced_stale_write() {
    let Some(cfg) = config(Fencing::None, RedlockToken::Incr, true) else {
        return;
    };
    let run = story(&cfg);
    assert_double_grant(&run);
    assert!(run.stale_write_accepted(), "{run:?}");
    let key0 = run.key0.as_ref().expect("key0");
    assert_eq!(key0.val, "value from client1");
}

/// The token fence fed by the `INCR` counter refuses the stale write: client 2 incremented
/// after client 1. Redlock's random values, offered to the same fence, are in no order.
#[test]
fn clock_jump_the_incr_token_fence_refuses_the_stale_write() {
    let Some(cfg) = config(Fencing::Token, RedlockToken::Incr, true) else {
        return;
    };
    let run = story(&cfg);
    assert_double_grant(&run);
    let c2 = run.client2.as_ref().expect("client 2");
    assert!(c2.holding.token > run.client1.holding.token);
    assert!(
        matches!(run.write1, OpResult::Rejected { .. }),
        "{:?}",
        run.write1
    );
    assert!(!run.stale_write_accepted());
    assert_eq!(run.key0.as_ref().expect("key0").val, "value from client2");
    // The contrast with the random values: accepted exactly when client 1's happens to be
    // the larger (the fence accepts equal or higher).
    let random_accepts = run.random_token_accepts.expect("the contrast");
    assert_eq!(
        random_accepts,
        run.client1.holding.lease_id >= c2.holding.lease_id
    );
}

/// The control: C's clock left alone, client 2 finds only D and E (2 of 5) and gives up; no
/// double grant, and client 1 writes alone.
#[test]
fn without_the_clock_step_client_2_gets_no_lock() {
    let Some(cfg) = config(Fencing::None, RedlockToken::Incr, false) else {
        return;
    };
    let run = story(&cfg);
    assert_eq!(run.client1.nodes_ok, ['A', 'B', 'C'], "{:?}", run.lines);
    let e = run.client2.as_ref().expect_err("no quorum for client 2");
    assert!(e.contains("['D', 'E'] said OK"), "{e}");
    assert!(!run.double_grant());
    assert!(run.write2.is_none());
    assert!(
        matches!(run.write1, OpResult::Ok { .. }),
        "{:?}",
        run.write1
    );
}

/// Bad input is an error naming the fault, before any server is touched.
#[test]
fn bad_input_is_a_clear_error() {
    let Some(good) = config(Fencing::None, RedlockToken::Incr, true) else {
        return;
    };
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut four = good.clone();
    four.redis.pop();
    let e = real::redlock_walkthrough(&four).expect_err("four nodes");
    assert!(e.contains("needs 5 Redis nodes"), "{e}");
    let mut wrong_pid = good.clone();
    wrong_pid.pids[3] = std::process::id();
    let e = real::redlock_walkthrough(&wrong_pid).expect_err("not a redis-server");
    assert!(e.contains("is not a running redis-server"), "{e}");
    let mut missing = good.clone();
    missing.offset_files[2] = "/nonexistent/fencelab.offset".into();
    let e = real::redlock_walkthrough(&missing).expect_err("no offset file");
    assert!(e.contains("cannot read the offset file"), "{e}");
}
