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

// The real Redis suite's helpers: the servers, offset files, the machine's description.
#[allow(dead_code)] // this suite uses a few of them
#[path = "real_redis/support.rs"]
mod support;

use fencelab::calibrate::redis::{redlock_story, story_differences, story_table, StoryFigures};
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

/// Where the story grid's real figures are committed, for the model to be held to them
/// (`sims/redis_calibration.rs`).
const STORY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sims/calibration/redlock-real.json"
);

/// The committed record of the story grid.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoryRecord {
    redis_version: String,
    machine: String,
    date: String,
    method: String,
    figures: StoryFigures,
}

/// Redlock end to end (`calibrate::redis::redlock_story`): Kleppmann's clock jump over a grid
/// of C's steps, with D and E taken by a third client or not. The real servers must give the
/// committed cells (the model is held to the same cells); with
/// `FENCELAB_CALIBRATION_WRITE=1` the run's cells are committed instead.
#[test]
fn the_story_grid_grants_twice_exactly_where_the_committed_figures_say() {
    let Some(servers) = support::Servers::from_env() else {
        println!("real Redlock story grid skipped: FENCELAB_REDIS is unset");
        return;
    };
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let c_wall = support::OffsetFile::new(&servers.offset_files[2], &servers.endpoints[2]);
    let fresh = support::block_on(async {
        let nodes = fencelab::redis::connect_all(&servers.endpoints[..5])
            .await
            .expect("the five servers");
        redlock_story(&nodes, &c_wall).await
    })
    .expect("the story grid");
    println!("{}", story_table(&fresh));
    // The grid shows both outcomes, or it shows nothing: the double grant where D and E were
    // taken and C's step passed the TTL, and none elsewhere.
    for c in &fresh.cells {
        assert_eq!(c.double_grant, c.d_e_taken && c.step_ms > 2_000, "{c:?}");
    }
    if std::env::var("FENCELAB_CALIBRATION_WRITE").is_ok_and(|v| v == "1") {
        let record = StoryRecord {
            redis_version: support::redis_version(&servers.endpoints[0]),
            machine: support::machine(),
            date: support::command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            method: "calibrate::redis::redlock_story against the five servers of .ci/redis-servers, C stepped through its offset file".into(),
            figures: fresh,
        };
        let text = serde_json::to_string_pretty(&record).expect("json") + "\n";
        std::fs::write(STORY_FILE, text).unwrap_or_else(|e| panic!("{STORY_FILE}: {e}"));
        println!("wrote {STORY_FILE}");
        return;
    }
    let text = std::fs::read_to_string(STORY_FILE).unwrap_or_else(|e| panic!("{STORY_FILE}: {e}"));
    let committed: StoryRecord = serde_json::from_str(&text).expect("the committed grid");
    let differences = story_differences(&committed.figures, &fresh);
    assert!(
        differences.is_empty(),
        "these servers are not those committed ({} on {}):\n{}",
        committed.date,
        committed.machine,
        differences.join("\n")
    );
}
