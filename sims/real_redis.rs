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
//! of one server must not disturb another test). The figures are measured by the probes of
//! `fencelab::calibrate::redis`, the same ones `sims/redis_calibration.rs` runs against the
//! model; here they are asserted against what real Redis must do. With
//! `FENCELAB_CALIBRATION_WRITE=1` they go to `sims/calibration/redis-real.json`, each test its
//! own part, which the simulation's calibration holds the model to.
#![cfg(not(madsim))]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "real_redis/support.rs"]
mod support;

// The sixth server, the test's own: crashes and restarts under each persistence mode.
#[path = "real_redis/restart.rs"]
mod restart;

use fencelab::calibrate::redis as cal;
use fencelab::redis::real::RealRedis;
use fencelab::redis::{Redis, RedisError, PTTL_MISSING, PTTL_PERSISTENT};
use std::sync::{Arc, Mutex};
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
/// round trip and Redis's ms truncation), and a second client spinning `SET NX` wins then: the
/// shared probe (`calibrate::redis::ttl_precision`).
#[test]
fn ttl_precision_to_the_ms() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let endpoint = &servers.endpoints[1];
    let figures = block_on(async {
        let setter: Arc<dyn Redis> = Arc::new(connect(endpoint).await);
        let poller: Arc<dyn Redis> = Arc::new(connect(endpoint).await);
        cal::ttl_precision(setter, poller, &run_key("ttl"))
            .await
            .unwrap_or_else(|e| panic!("ttl precision: {e}"))
    });
    let px = figures.px_ms as f64;
    for (name, e) in [
        ("gone", &figures.gone),
        ("second_client_wins", &figures.second_client_wins),
    ] {
        println!(
            "PX {px}, {name} ({} trials, ms after the SET's reply): found at {:?}; last found \
             holding at {:?}; SET round trip {:?}",
            figures.trials,
            (
                e.after_reply.min_ms,
                e.after_reply.median_ms,
                e.after_reply.max_ms
            ),
            (
                e.last_seen.min_ms,
                e.last_seen.median_ms,
                e.last_seen.max_ms
            ),
            (
                e.set_round_trip.min_ms,
                e.set_round_trip.median_ms,
                e.set_round_trip.max_ms
            ),
        );
        assert_eq!(e.after_reply.samples_ms.len(), figures.trials as usize);
        for (after, rtt) in e
            .after_reply
            .samples_ms
            .iter()
            .zip(&e.set_round_trip.samples_ms)
        {
            // Never early: the key holds until `when` = exec time + px, exec >= reply - rtt.
            assert!(
                *after >= px - rtt - 1.0,
                "{name}: gone {after:.3} ms after the reply (SET took {rtt:.3} ms)"
            );
            assert!(
                *after <= px + TRIAL_LATE_MS_MAX,
                "{name}: still there {after:.3} ms after the reply"
            );
        }
        // Passive expiry: found gone within a few ms (a poll period, Redis's ms, a round trip).
        assert!(
            e.after_reply.median_ms <= px + 10.0,
            "{name}: median {:.3} ms",
            e.after_reply.median_ms
        );
    }
    calibration_part(&servers, "ttl_precision", cal::TTL_METHOD, &figures);
}

/// Server 2: a forward wall step shortens every key by the step, a step past the expiry hands
/// the lock to another client (Kleppmann's clock jump), and a backward step makes a key outlive
/// its TTL by the step: the shared probe (`calibrate::redis::wall_steps`).
#[test]
fn wall_steps() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let (endpoint, offset) = (
        &servers.endpoints[2],
        OffsetFile::new(&servers.offset_files[2], &servers.endpoints[2]),
    );
    let w = block_on(async {
        let a = connect(endpoint).await;
        let b = connect(endpoint).await;
        cal::wall_steps(&a, &b, &offset, &run_key("steps"))
            .await
            .unwrap_or_else(|e| panic!("wall steps: {e}"))
    });
    let (f, back) = (&w.forward, &w.backward);
    println!(
        "offset +5000 ms: PTTL dropped by {:.1} ms; back to 0: rose by {:.1} ms",
        f.pttl_drop_ms, f.pttl_rise_back_ms
    );
    assert!((f.pttl_drop_ms - 5_000.0).abs() <= 50.0, "{f:?}");
    assert!((f.pttl_rise_back_ms - 5_000.0).abs() <= 50.0, "{f:?}");
    // The jump: client 1's PX 10000 lock is gone for the server, client 2 takes it, and
    // client 1's unlock no longer matches.
    assert_eq!(f.pttl_after_jump, PTTL_MISSING, "{f:?}");
    assert!(f.second_client_won, "{f:?}");
    assert_eq!(f.holder_after_jump.as_deref(), Some("client2"), "{f:?}");
    assert!(!f.first_unlock_deleted, "{f:?}");
    // Stepped back, client 2's key was set 11 s in the future: it now holds ~21 s.
    println!(
        "after the +11000 jump and back: client 2's PX 10000 key holds {} ms",
        f.second_key_pttl_after_back_ms
    );
    assert!(
        (20_000..=21_000).contains(&f.second_key_pttl_after_back_ms),
        "{f:?}"
    );
    // Past the nominal TTL the key still holds, and goes ~5 s later.
    println!(
        "offset -5000 ms: PX 1000 key's PTTL 1100 ms after its SET {}; gone {:.1} ms after it",
        back.pttl_past_deadline_ms, back.gone_after_reply_ms
    );
    assert!(back.pttl_past_deadline_ms > 3_000, "{back:?}");
    assert!(back.second_client_refused, "{back:?}");
    // Early is what must not be (the step holds the key the whole 5 s); late only by a
    // probe's delay on a busy machine.
    let expected_ms = (back.px_ms - back.step_ms) as f64;
    assert!(
        back.gone_after_reply_ms >= expected_ms - 50.0
            && back.gone_after_reply_ms <= expected_ms + TRIAL_LATE_MS_MAX,
        "{back:?}"
    );
    calibration_part(&servers, "wall_steps", cal::STEPS_METHOD, &w);
}

/// Server 4: a server stopped (SIGSTOP) for 3 s with a `PX 2000` key: the key is gone the
/// moment it runs again (its wall clock kept running), so a `SET NX` queued during the stall
/// wins (the shared probe, `calibrate::redis::sigstop`); a client with a short response timeout
/// meets `Timeout`, which is indeterminate.
#[test]
fn sigstop_longer_than_the_ttl() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let (endpoint, pid) = (&servers.endpoints[4], servers.pids[4]);
    let key = run_key("sigstop");
    let s = block_on(async {
        let a = connect(endpoint).await;
        let b = Arc::new(connect(endpoint).await);
        let stall = StopWithImpatientGet {
            pid,
            impatient: RealRedis::connect_with_timeouts(endpoint, 2_000, 200)
                .await
                .expect("connect"),
            key: key.clone(),
            met: Mutex::new(None),
        };
        let s = cal::sigstop(&a, b.clone(), &stall, &key)
            .await
            .unwrap_or_else(|e| panic!("sigstop: {e}"));
        let met = stall.met.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(met, Some(Err(RedisError::Timeout)), "a stopped server");
        assert!(matches!(&met, Some(Err(e)) if e.is_indeterminate()));
        // The impatient client's connection still pairs answers with calls: the late answer
        // to its timed-out GET (a string or nil) is not taken for this PTTL's integer.
        let pttl = stall.impatient.pttl(&key).await;
        assert!(
            matches!(pttl, Ok(9_000..=10_000)),
            "PTTL after a timed-out GET: {pttl:?}"
        );
        assert_eq!(b.del_if_eq(&key, "client2").await, Ok(true));
        s
    });
    println!(
        "stopped {:.0} ms with a PX {} key: the queued SET NX {} {:.1} ms after SIGCONT",
        s.stall_ms,
        s.px_ms,
        if s.queued_set_nx_won { "won" } else { "lost" },
        s.cont_to_reply_ms
    );
    assert!(
        s.queued_set_nx_won,
        "the queued SET NX must find the key gone: {s:?}"
    );
    assert_eq!(s.holder_after_resume.as_deref(), Some("client2"), "{s:?}");
    assert!(!s.first_unlock_deleted, "{s:?}");
    // At once: never before the resume, and within a scheduler's delay after it.
    assert!((0.0..=100.0).contains(&s.cont_to_reply_ms), "{s:?}");
    calibration_part(&servers, "sigstop", cal::SIGSTOP_METHOD, &s);
}
