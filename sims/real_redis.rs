//! Real mode against real Redis: the seam (`fencelab::redis::real::RealRedis`) on five real
//! `redis-server` 7.0.15 masters, and what a lock client meets there: expiry to the ms, wall
//! steps (Redis expires by the wall clock), a stalled server.
//!
//! Needs the five servers `.ci/redis-servers` starts, each under the realtime-offset shim with
//! its own offset file (`FENCELAB_REDIS`, `FENCELAB_REDIS_OFFSET_FILES`, `FENCELAB_REDIS_PIDS`,
//! comma lists in one order); skipped, with a message, without them. `.ci/run` always starts
//! them. On a developer's machine:
//!
//! ```text
//! bash .ci/redis-servers env RUSTFLAGS= cargo test --release --target-dir target/real \
//!   --test real_redis -- --nocapture
//! ```
//!
//! Each test uses a server of its own (tests run on parallel threads, and a step or a stall
//! of one server must not disturb another test). With `FENCELAB_CALIBRATION_WRITE=1` the
//! measured figures go to `sims/calibration/redis-real.json`, each test its own part; nothing
//! is compared against that file here.
#![cfg(not(madsim))]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "real_redis/support.rs"]
mod support;

// The sixth server, the test's own: crashes and restarts under each persistence mode.
#[path = "real_redis/restart.rs"]
mod restart;

use fencelab::redis::real::RealRedis;
use fencelab::redis::{Redis, RedisError, PTTL_MISSING, PTTL_PERSISTENT};
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

/// Server 0: every call of the seam, and how each error is classified.
#[test]
fn the_seams_operations_on_a_real_server() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let key = run_key("ops");
    block_on(async {
        let r = connect(&servers.endpoints[0]).await;
        // SET NX PX, GET, PTTL
        assert_eq!(r.get(&key).await, Ok(None));
        assert_eq!(r.pttl(&key).await, Ok(PTTL_MISSING));
        assert_eq!(r.set_nx_px(&key, "a", 10_000).await, Ok(true));
        assert_eq!(r.set_nx_px(&key, "b", 10_000).await, Ok(false));
        assert_eq!(r.get(&key).await, Ok(Some("a".into())));
        let pttl = r.pttl(&key).await.unwrap();
        assert!((9_000..=10_000).contains(&pttl), "PTTL {pttl}");
        // PEXPIRE
        assert_eq!(r.pexpire(&key, 60_000).await, Ok(true));
        let pttl = r.pttl(&key).await.unwrap();
        assert!(
            (59_000..=60_000).contains(&pttl),
            "PTTL {pttl} after PEXPIRE 60000"
        );
        assert_eq!(r.pexpire(&format!("{key}/none"), 1_000).await, Ok(false));
        // the extend script compares the value
        assert_eq!(r.pexpire_if_eq(&key, "b", 5_000).await, Ok(false));
        let pttl = r.pttl(&key).await.unwrap();
        assert!(
            pttl > 55_000,
            "a wrong value must not shorten the key: PTTL {pttl}"
        );
        assert_eq!(r.pexpire_if_eq(&key, "a", 5_000).await, Ok(true));
        let pttl = r.pttl(&key).await.unwrap();
        assert!(
            (4_000..=5_000).contains(&pttl),
            "PTTL {pttl} after the extend"
        );
        // the unlock script compares the value, also after the server forgot the script
        // (EVALSHA answers NOSCRIPT, the client falls back to EVAL)
        assert_eq!(r.del_if_eq(&key, "b").await, Ok(false));
        assert_eq!(r.get(&key).await, Ok(Some("a".into())));
        raw_command(&servers.endpoints[0], &["SCRIPT", "FLUSH"]);
        assert_eq!(r.del_if_eq(&key, "a").await, Ok(true));
        assert_eq!(r.get(&key).await, Ok(None));
        assert_eq!(r.del_if_eq(&key, "a").await, Ok(false));
        // DEL
        assert_eq!(r.set_nx_px(&key, "c", 10_000).await, Ok(true));
        assert_eq!(r.del(&key).await, Ok(true));
        assert_eq!(r.del(&key).await, Ok(false));
        // INCR: a counter has no expiry
        let counter = format!("{key}/counter");
        assert_eq!(r.incr(&counter).await, Ok(1));
        assert_eq!(r.incr(&counter).await, Ok(2));
        assert_eq!(r.pttl(&counter).await, Ok(PTTL_PERSISTENT));
        assert_eq!(r.del(&counter).await, Ok(true));
    });
    errors_are_classified(&servers, &key);
}

/// Server 0: what Redis answers wrongly typed or out-of-range calls, and an absent server.
fn errors_are_classified(servers: &Servers, key: &str) {
    block_on(async {
        let r = connect(&servers.endpoints[0]).await;
        // INCR of a lock key's value: Redis says "ERR value is not an integer or out of range"
        assert_eq!(r.set_nx_px(key, "token-abc", 10_000).await, Ok(true));
        assert!(
            matches!(r.incr(key).await, Err(RedisError::Other { ref why }) if why.contains("not an integer")),
            "INCR of a non-integer"
        );
        assert_eq!(r.del(key).await, Ok(true));
        // a list under the key: WRONGTYPE proper
        let list = format!("{key}/list");
        raw_command(&servers.endpoints[0], &["RPUSH", &list, "x"]);
        assert_eq!(r.get(&list).await, Err(RedisError::WrongType));
        assert_eq!(r.incr(&list).await, Err(RedisError::WrongType));
        assert_eq!(r.del_if_eq(&list, "x").await, Err(RedisError::WrongType));
        assert_eq!(r.del(&list).await, Ok(true));
        // expiries outside the seam's range never reach the server
        for px_ms in [0, -1, fencelab::redis::PX_MS_MAX + 1] {
            let e = r.set_nx_px(key, "v", px_ms).await;
            assert!(matches!(e, Err(RedisError::Other { .. })), "{px_ms}: {e:?}");
        }
        assert_eq!(r.get(key).await, Ok(None));
        // nothing listening: refused, not sent
        let port = refused_port();
        match RealRedis::connect(&format!("127.0.0.1:{port}")).await {
            Err(RedisError::Unavailable { why }) => println!("no server on {port}: {why}"),
            Err(e) => panic!("port {port}: {e:?}"),
            Ok(_) => panic!("port {port} answered"),
        }
    });
}

/// Server 1: a `PX 2000` key is gone 2000 ms after the reply to its SET (give or take a
/// round trip and Redis's ms truncation), and a second client spinning `SET NX` wins then.
#[test]
fn ttl_precision_to_the_ms() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let endpoint = &servers.endpoints[1];
    let (gone, won) = block_on(async {
        let setter = std::sync::Arc::new(connect(endpoint).await);
        let prober = std::sync::Arc::new(connect(endpoint).await);
        let base = run_key("ttl");
        let gone = staggered_trials(&setter, &prober, &format!("{base}/gone"), Probe::Pttl).await;
        let won = staggered_trials(&setter, &prober, &format!("{base}/nx"), Probe::SetNx).await;
        (gone, won)
    });
    let mut part = serde_json::Map::new();
    for (name, trials) in [("gone", &gone), ("second_client_wins", &won)] {
        let after = Stats::of(trials.iter().map(|t| t.after_ms));
        let before = Stats::of(trials.iter().filter_map(|t| t.last_seen_ms));
        let set_rtt = Stats::of(trials.iter().map(|t| t.set_rtt_ms));
        println!(
            "PX {TRIAL_PX_MS}, {name} ({} trials, ms after the SET's reply): found at {after}; \
             last found holding at {before}; SET round trip {set_rtt}",
            trials.len()
        );
        for t in trials {
            // Never early: the key holds until `when` = exec time + px, exec >= reply - rtt.
            assert!(
                t.after_ms >= TRIAL_PX_MS as f64 - t.set_rtt_ms - 1.0,
                "{name}: gone {:.3} ms after the reply (SET took {:.3} ms)",
                t.after_ms,
                t.set_rtt_ms
            );
            assert!(
                t.after_ms <= TRIAL_PX_MS as f64 + TRIAL_LATE_MS_MAX,
                "{name}: still there {:.3} ms after the reply",
                t.after_ms
            );
        }
        assert!(
            after.median_ms <= TRIAL_PX_MS as f64 + 10.0,
            "{name}: median {after}: passive expiry should answer within a few ms"
        );
        part.insert(
            name.into(),
            json!({"px_ms": TRIAL_PX_MS, "after_reply": after, "last_seen": before,
                   "set_round_trip": set_rtt}),
        );
    }
    calibration_part(
        &servers,
        "ttl_precision",
        "key set with SET NX PX 2000; probes back to back (PTTL, or SET NX by a second client) \
         from 30 ms before the deadline; ms from the SET's reply to the reply of the first probe \
         that finds it gone / wins; 20 trials 80 ms apart",
        serde_json::Value::Object(part),
    );
}

/// Server 2: a forward wall step shortens every key by the step, and a step past the expiry
/// hands the lock to another client (Kleppmann's clock jump).
#[test]
fn forward_wall_steps() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let (endpoint, offset) = (
        &servers.endpoints[2],
        OffsetFile::new(&servers.offset_files[2], &servers.endpoints[2]),
    );
    let key = run_key("step-forward");
    let figures = block_on(async {
        let a = connect(endpoint).await;
        let b = connect(endpoint).await;
        assert_eq!(a.set_nx_px(&key, "client1", 10_000).await, Ok(true));
        let drop_ms = pttl_drop_ms(&a, &key, &offset, 5_000).await;
        println!("offset +5000 ms: PTTL dropped by {drop_ms:.1} ms");
        assert!(
            (drop_ms - 5_000.0).abs() <= 50.0,
            "PTTL dropped by {drop_ms} ms"
        );
        let back_ms = -pttl_drop_ms(&a, &key, &offset, 0).await;
        println!("offset back to 0: PTTL rose by {back_ms:.1} ms");
        assert!(
            (back_ms - 5_000.0).abs() <= 50.0,
            "PTTL rose by {back_ms} ms"
        );
        // The jump: client 1's PX 10000 lock is gone for the server, client 2 takes it, and
        // client 1's unlock no longer matches.
        offset.set_ms(11_000);
        assert_eq!(a.pttl(&key).await, Ok(PTTL_MISSING));
        assert_eq!(b.set_nx_px(&key, "client2", 10_000).await, Ok(true));
        assert_eq!(a.get(&key).await, Ok(Some("client2".into())));
        assert_eq!(a.del_if_eq(&key, "client1").await, Ok(false));
        offset.set_ms(0);
        // Stepped back, client 2's key was set 11 s in the future: it now holds ~21 s.
        let pttl = b.pttl(&key).await.unwrap();
        println!("after the +11000 jump and back: client 2's PX 10000 key holds {pttl} ms");
        assert!((20_000..=21_000).contains(&pttl), "PTTL {pttl}");
        assert_eq!(b.del_if_eq(&key, "client2").await, Ok(true));
        json!({"offset_ms": 5_000, "pttl_drop_ms": round3(drop_ms),
               "pttl_rise_back_ms": round3(back_ms), "jump_offset_ms": 11_000,
               "jump_px_ms": 10_000, "second_client_won": true,
               "second_key_pttl_after_back_ms": pttl})
    });
    calibration_part(
        &servers,
        "forward_wall_steps",
        "PX 10000 key; offset file stepped +5000 and back to 0, PTTL before and after, minus the \
         client time between the two PTTLs; then +11000: PTTL -2, a second client's SET NX wins",
        figures,
    );
}

/// Server 3: a backward wall step makes a key outlive its TTL by the step.
#[test]
fn backward_wall_step() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let (endpoint, offset) = (
        &servers.endpoints[3],
        OffsetFile::new(&servers.offset_files[3], &servers.endpoints[3]),
    );
    let key = run_key("step-backward");
    const PX_MS: i64 = 1_000;
    const STEP_MS: i64 = -5_000;
    let figures = block_on(async {
        let a = connect(endpoint).await;
        let b = connect(endpoint).await;
        let (t0, _) = timed_set(&a, &key, PX_MS).await;
        offset.set_ms(STEP_MS);
        // Past the nominal TTL the key still holds...
        sleep_until(t0 + Duration::from_millis(PX_MS as u64 + 100)).await;
        let pttl = a.pttl(&key).await.unwrap();
        assert!(
            pttl > 3_000,
            "PTTL {pttl} ms 100 ms past a PX {PX_MS} key's deadline"
        );
        assert_eq!(b.set_nx_px(&key, "client2", 1_000).await, Ok(false));
        // ...and goes ~5 s later.
        let expected_ms = (PX_MS - STEP_MS) as f64;
        let (last_seen_ms, gone_ms) = spin_until_gone(&b, &key, t0, expected_ms, Probe::Pttl).await;
        offset.set_ms(0);
        println!(
            "offset {STEP_MS} ms: PX {PX_MS} key last seen {:.1} ms, gone {gone_ms:.1} ms \
             after the SET",
            last_seen_ms.unwrap_or(f64::NAN)
        );
        // Early is what must not be (the step holds the key the whole 5 s); late only by a
        // probe's delay on a busy machine.
        assert!(
            gone_ms >= expected_ms - 50.0 && gone_ms <= expected_ms + TRIAL_LATE_MS_MAX,
            "gone after {gone_ms} ms"
        );
        json!({"px_ms": PX_MS, "offset_ms": STEP_MS, "last_seen_ms": last_seen_ms.map(round3),
               "gone_after_reply_ms": round3(gone_ms)})
    });
    calibration_part(
        &servers,
        "backward_wall_step",
        "PX 1000 key, offset file stepped to -5000 right after the SET's reply; PTTL probes back \
         to back from 30 ms before the expected 6000 ms",
        figures,
    );
}

/// Server 4: a server stopped (SIGSTOP) for 3 s with a `PX 2000` key: the key is gone the
/// moment it runs again (its wall clock kept running), so a `SET NX` queued during the stall
/// wins; a client with a short response timeout meets `Timeout`, which is indeterminate.
#[test]
fn sigstop_longer_than_the_ttl() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let (endpoint, pid) = (&servers.endpoints[4], servers.pids[4]);
    let key = run_key("sigstop");
    const PX_MS: i64 = 2_000;
    const STALL_MS: u64 = 3_000;
    let figures = block_on(async {
        let a = connect(endpoint).await;
        let b = std::sync::Arc::new(connect(endpoint).await);
        let impatient = RealRedis::connect_with_timeouts(endpoint, 2_000, 200)
            .await
            .expect("connect");
        assert_eq!(a.set_nx_px(&key, "client1", PX_MS).await, Ok(true));
        let stall = Stall::start(pid);
        let stopped = Instant::now();
        let queued = tokio::spawn({
            let (b, key) = (b.clone(), key.clone());
            async move {
                let r = b.set_nx_px(&key, "client2", 10_000).await;
                (r, Instant::now())
            }
        });
        let e = impatient.get(&key).await;
        assert_eq!(e, Err(RedisError::Timeout), "a stopped server");
        assert!(e.unwrap_err().is_indeterminate());
        sleep_until(stopped + Duration::from_millis(STALL_MS)).await;
        let resumed = stall.end();
        let stalled_ms = ms(resumed - stopped);
        let (won, replied) = tokio::time::timeout(Duration::from_secs(5), queued)
            .await
            .expect("the queued SET NX answers after the resume")
            .expect("task");
        assert_eq!(won, Ok(true), "the queued SET NX must find the key gone");
        let reply_ms = ms(replied.saturating_duration_since(resumed));
        println!(
            "stopped {stalled_ms:.0} ms with a PX {PX_MS} key: the queued SET NX won \
             {reply_ms:.1} ms after SIGCONT"
        );
        assert_eq!(a.get(&key).await, Ok(Some("client2".into())));
        assert_eq!(a.del_if_eq(&key, "client1").await, Ok(false));
        // The impatient client's connection still pairs answers with calls: the late answer
        // to its timed-out GET (a string or nil) is not taken for this PTTL's integer.
        let pttl = impatient.pttl(&key).await;
        assert!(
            matches!(pttl, Ok(9_000..=10_000)),
            "PTTL after a timed-out GET: {pttl:?}"
        );
        assert_eq!(b.del_if_eq(&key, "client2").await, Ok(true));
        json!({"px_ms": PX_MS, "stall_ms": round3(stalled_ms),
               "queued_set_nx_won": true, "cont_to_reply_ms": round3(reply_ms)})
    });
    calibration_part(
        &servers,
        "sigstop",
        "PX 2000 key; SIGSTOP 3 s, a second client's SET NX sent during the stall; SIGCONT, its \
         reply's time after the kill -CONT returned",
        figures,
    );
}
