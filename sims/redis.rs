//! fencelab's Redis 7.0.15 model end to end: model nodes in a madsim world, clients through
//! `ModelRedis`, checked against the rules of `src/system/redis/model/` and the probes of
//! `/work/shared/design/lease-services.md` (P1 TTL precision, P3 server pause, P4 wall-clock
//! step, P6 restart loss). The network is a loopback's: one-way latency 0.1–0.5 ms, no loss.
//!
//! Run: `cargo test --release --test redis` (a second or two).
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::clock::{ClockStep, NodeClock, Skew};
use fencelab::redis::model::{self, Config, ModelRedis, Node};
use fencelab::redis::{Persistence, Redis, RedisError, PTTL_MISSING};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const SEED: u64 = 19;
/// Most 1 ms polls a client spins before it gives up (a limit on everything).
const POLLS_MAX: u32 = 100;

/// A world of one seed: runs `test` on its main node and answers its result.
fn world<T, F, Fut>(seed: u64, test: F) -> T
where
    F: FnOnce(Handle, Instant) -> Fut,
    Fut: Future<Output = T> + 'static,
{
    let mut config = madsim::Config::default();
    config.net.send_latency = Duration::from_micros(100)..Duration::from_micros(500);
    config.net.packet_loss_rate = 0.0;
    let mut rt = Runtime::with_seed_and_config(seed, config);
    rt.set_time_limit(Duration::from_secs(7200));
    rt.block_on(async move { test(Handle::current(), Instant::now()).await })
}

/// A model Redis node named `name` at `ip`:6379, booted and serving.
fn redis_node(
    handle: &Handle,
    origin: Instant,
    name: &str,
    ip: &str,
    cfg: Config,
    skew: Skew,
) -> (NodeHandle, Arc<Node>, SocketAddr) {
    let addr: SocketAddr = format!("{ip}:6379").parse().expect("address");
    let node = Arc::new(Node::new(cfg, NodeClock::new(origin, skew)));
    let handle = model::node(handle, name, addr, node.clone());
    (handle, node, addr)
}

fn client_node(handle: &Handle, name: &str, ip: &str) -> NodeHandle {
    handle
        .create_node()
        .name(name)
        .ip(ip.parse().expect("ip"))
        .build()
}

/// True ms since the world's origin.
fn ms(origin: Instant) -> f64 {
    origin.elapsed().as_secs_f64() * 1000.0
}

async fn at(origin: Instant, ms: u64) {
    tokio::time::sleep_until(origin + Duration::from_millis(ms)).await;
}

/// Spins `SET key value NX PX px_ms` every ms until it wins: the true ms of the winning
/// answer, and how many attempts lost before it.
async fn spin_set_nx(redis: &ModelRedis, origin: Instant, key: &str, value: &str) -> (f64, u32) {
    for lost in 0..POLLS_MAX {
        if redis.set_nx_px(key, value, 2000).await.expect("set") {
            return (ms(origin), lost);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("SET NX never won in {POLLS_MAX} ms");
}

/// P1: a `PX 2000` key is there until its deadline and gone right after; a second client's
/// `SET NX` wins in the first ms past it, not before. Answers what it saw, for determinism.
async fn expiry_race(handle: Handle, origin: Instant) -> Vec<String> {
    let (server, _, addr) = redis_node(
        &handle,
        origin,
        "redis",
        "10.0.0.1",
        Config::defaults(),
        Skew::default(),
    );
    let client = client_node(&handle, "client", "10.0.1.1");
    let seen = client
        .spawn(async move {
            let (a, b) = (ModelRedis::new(addr), ModelRedis::new(addr));
            // Connected first, so that the timed calls cost one round trip each.
            at(origin, 10).await;
            assert_eq!(a.get("lock").await, Ok(None));
            assert_eq!(b.get("lock").await, Ok(None));
            at(origin, 100).await;
            let sent_ms = ms(origin);
            assert_eq!(a.set_nx_px("lock", "a", 2000).await, Ok(true));
            let acked_ms = ms(origin);
            at(origin, 100 + 1990).await;
            assert_eq!(b.get("lock").await, Ok(Some("a".into())));
            let (won_ms, lost) = spin_set_nx(&b, origin, "lock", "b").await;
            assert!(
                lost >= 1,
                "the first SET NX, 10 ms before the deadline, won"
            );
            let after_ms = won_ms - sent_ms;
            assert!(
                (2000.0..=2004.0).contains(&after_ms),
                "SET NX won {after_ms:.3} ms after the first SET (acked {:.3} ms after sending)",
                acked_ms - sent_ms
            );
            assert_eq!(a.get("lock").await, Ok(Some("b".into())));
            assert_eq!(
                a.del_if_eq("lock", "a").await,
                Ok(false),
                "not a's any more"
            );
            let pttl = a.pttl("lock").await.expect("pttl");
            assert!((1990..=2000).contains(&pttl), "pttl {pttl}");
            assert_eq!(b.del_if_eq("lock", "b").await, Ok(true));
            assert_eq!(a.pttl("lock").await, Ok(PTTL_MISSING));
            vec![
                format!("acked {:.3}", acked_ms - sent_ms),
                format!("won {after_ms:.3} after {lost} losses"),
                format!("pttl {pttl}"),
            ]
        })
        .await
        .expect("client ran");
    handle.kill(server.id());
    handle.kill(client.id());
    seen
}

#[test]
fn a_px_key_is_gone_right_after_its_ttl_and_a_second_client_wins_then() {
    let seen = world(SEED, expiry_race);
    println!("expiry race: {seen:?}");
}

#[test]
fn the_same_seed_gives_the_same_answers() {
    let first = world(SEED, expiry_race);
    let second = world(SEED, expiry_race);
    assert_eq!(first, second);
    let restarts = |seed| world(seed, |h, o| restart_world(h, o, Persistence::AofEverysec));
    assert_eq!(restarts(SEED), restarts(SEED));
    println!("seed {SEED}: {first:?}");
    println!("seed {}: {:?}", SEED + 1, world(SEED + 1, expiry_race));
}

/// The node's view of one key over a wall-clock step of `delta_ms` at true 3 s: PTTL at 2 s
/// and 4 s (true), set at 1 s with PX 10000, and whether the key is there just before and
/// just after `gone_ms` (true).
async fn clock_step(handle: Handle, origin: Instant, delta_ms: i64, gone_ms: u64) {
    let skew = Skew {
        steps: vec![ClockStep {
            at_ms: 3000,
            delta_ms,
        }],
        ..Skew::default()
    };
    let cfg = Config::defaults();
    let (server, _, addr) = redis_node(&handle, origin, "redis", "10.0.0.1", cfg, skew);
    let client = client_node(&handle, "client", "10.0.1.1");
    client
        .spawn(async move {
            let redis = ModelRedis::new(addr);
            at(origin, 1000).await;
            assert_eq!(redis.set_nx_px("lock", "a", 10_000).await, Ok(true));
            at(origin, 2000).await;
            let (t1, p1) = (ms(origin), redis.pttl("lock").await.expect("pttl"));
            at(origin, 4000).await;
            let (t2, p2) = (ms(origin), redis.pttl("lock").await.expect("pttl"));
            let drop_ms = (p1 - p2) as f64 - (t2 - t1);
            println!("step {delta_ms:+} ms: PTTL {p1} then {p2}, beyond elapsed {drop_ms:.1}");
            assert!((drop_ms - delta_ms as f64).abs() <= 2.0, "{drop_ms}");
            at(origin, gone_ms - 5).await;
            assert_eq!(redis.get("lock").await, Ok(Some("a".into())));
            at(origin, gone_ms + 5).await;
            assert_eq!(redis.get("lock").await, Ok(None));
            assert_eq!(redis.set_nx_px("lock", "b", 1000).await, Ok(true));
        })
        .await
        .expect("client ran");
    handle.kill(server.id());
    handle.kill(client.id());
}

#[test]
fn a_wall_clock_step_moves_every_deadline() {
    // P4: +5 s at true 3 s: the key set at 1 s for 10 s is gone at true 6 s, not 11 s.
    world(SEED, |h, o| clock_step(h, o, 5000, 6000));
    // -5 s: it lives until true 16 s.
    world(SEED, |h, o| clock_step(h, o, -5000, 16_000));
}

#[test]
fn a_paused_node_judges_expiry_at_its_resume() {
    // P3: a PX 2000 key, the node paused for 3 s from true 500 ms: a GET and a SET NX sent
    // during the pause are answered at the resume, the key gone and the SET NX won.
    world(SEED, |handle, origin| async move {
        let cfg = Config::defaults();
        let (server, _, addr) =
            redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
        let client = client_node(&handle, "client", "10.0.1.1");
        let (a, b) = (
            Arc::new(ModelRedis::new(addr)),
            Arc::new(ModelRedis::new(addr)),
        );
        let (a1, b1) = (a.clone(), b.clone());
        let c3 = Arc::new(ModelRedis::new(addr));
        let c4 = c3.clone();
        client
            .spawn(async move {
                // Both connected before the pause.
                at(origin, 10).await;
                assert_eq!(b1.get("lock").await, Ok(None));
                assert_eq!(c4.get("lock").await, Ok(None));
                at(origin, 100).await;
                assert_eq!(a1.set_nx_px("lock", "a", 2000).await, Ok(true));
                assert_eq!(a1.incr("fence").await, Ok(1));
            })
            .await
            .expect("set");
        // One round trip on a warm connection, before the pause: the bound on "at once".
        let rtt_ms = client
            .spawn(async move {
                at(origin, 400).await;
                let sent_ms = ms(origin);
                assert_eq!(c3.get("x").await, Ok(None));
                ms(origin) - sent_ms
            })
            .await
            .expect("probe");
        at(origin, 500).await;
        handle.pause(server.id());
        let get = client.spawn(async move {
            at(origin, 1000).await;
            let answer = a.get("lock").await;
            (answer, ms(origin))
        });
        let set = client.spawn(async move {
            at(origin, 1500).await;
            let answer = b.set_nx_px("lock", "b", 2000).await;
            (answer, ms(origin))
        });
        at(origin, 3500).await;
        handle.resume(server.id());
        let (got, got_ms) = get.await.expect("get");
        let (set, set_ms) = set.await.expect("set nx");
        println!(
            "after the pause: GET {got:?} at {got_ms:.3} ms, SET NX {set:?} at {set_ms:.3} \
             (a round trip: {rtt_ms:.3} ms)"
        );
        // The key expired during the pause: the GET finds it gone, or (the two connections'
        // commands run in either order at the resume) already the SET NX's.
        assert!(
            matches!(&got, Ok(None)) || got == Ok(Some("b".into())),
            "{got:?}"
        );
        assert_eq!(set, Ok(true), "the queued SET NX wins");
        for t in [got_ms, set_ms] {
            assert!(
                (3500.0..=3500.0 + rtt_ms + 0.5).contains(&t),
                "answered at {t} ms"
            );
        }
        handle.kill(server.id());
        handle.kill(client.id());
    });
}

/// What a client sees of two keys across a crash: `early` written at true 500 ms, `late` at
/// 2100 ms, both PX 60000, the node killed at 2900 ms and restarted at 3000 ms; and what two
/// calls while it was down answered.
#[derive(Debug, PartialEq, Eq)]
struct Survivors {
    early: Option<String>,
    late: Option<String>,
    early_pttl: i64,
    /// `INCR fence` after the restart, after one `INCR` with each write (a per-node
    /// fencing counter: it goes back when the node loses writes).
    fence: i64,
    while_down: String,
}

async fn restart_world(handle: Handle, origin: Instant, mode: Persistence) -> Survivors {
    let cfg = Config::with_persistence(mode);
    let (server, node, addr) =
        redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
    let client = client_node(&handle, "client", "10.0.1.1");
    let redis = Arc::new(ModelRedis::new(addr));
    let r = redis.clone();
    client
        .spawn(async move {
            at(origin, 500).await;
            assert_eq!(r.set_nx_px("early", "1", 60_000).await, Ok(true));
            assert_eq!(r.incr("fence").await, Ok(1));
            at(origin, 2100).await;
            assert_eq!(r.set_nx_px("late", "2", 60_000).await, Ok(true));
            assert_eq!(r.incr("fence").await, Ok(2));
        })
        .await
        .expect("writes");
    at(origin, 2900).await;
    handle.kill(server.id());
    let r = redis.clone();
    // The first call may go out on the connection before the client notices it broke
    // (indeterminate); once it has, a call finds no node to connect to.
    let while_down = client
        .spawn(async move {
            let first = r.get("early").await;
            at(origin, 2950).await;
            format!("{first:?} then {:?}", r.get("early").await)
        })
        .await
        .expect("down");
    at(origin, 3000).await;
    handle.restart(server.id());
    let survivors = client
        .spawn(async move {
            at(origin, 3100).await;
            Survivors {
                early: redis.get("early").await.expect("get"),
                late: redis.get("late").await.expect("get"),
                early_pttl: redis.pttl("early").await.expect("pttl"),
                fence: redis.incr("fence").await.expect("incr"),
                while_down,
            }
        })
        .await
        .expect("reads");
    assert_eq!(node.boots(), 2, "the restart booted the node again");
    handle.kill(server.id());
    handle.kill(client.id());
    survivors
}

#[test]
fn a_crash_keeps_what_each_persistence_mode_made_durable() {
    for mode in Persistence::ALL {
        let s = world(SEED, |h, o| restart_world(h, o, mode));
        println!("{}: {s:?}", mode.as_str());
        let down = &s.while_down;
        assert!(
            down.starts_with("Err(") && down.contains("then Err(Unavailable"),
            "{down}"
        );
        let (early, late) = match mode {
            Persistence::None | Persistence::Rdb => (false, false),
            Persistence::AofAlways => (true, true),
            // Fsynced at 1 s (written 2.4 s before the crash); written 0.8 s before it, after
            // the fsync at 2 s, lost.
            Persistence::AofEverysec => (true, false),
        };
        assert_eq!(s.early.is_some(), early, "{}", mode.as_str());
        assert_eq!(s.late.is_some(), late, "{}", mode.as_str());
        let fence = 1 + i64::from(early) + i64::from(late);
        assert_eq!(
            s.fence,
            fence,
            "{}: the counter kept what the keys kept",
            mode.as_str()
        );
        if early {
            // The absolute deadline (500 + 60000) survived: 60500 - 3100 left, give or take
            // the few ms a connection and a round trip cost on either side.
            let left = s.early_pttl - (60_500 - 3_100);
            assert!(
                (-8..=8).contains(&left),
                "{}: {}",
                mode.as_str(),
                s.early_pttl
            );
        } else {
            assert_eq!(s.early_pttl, PTTL_MISSING);
        }
    }
}

#[test]
fn a_node_down_longer_than_the_ttl_comes_back_without_the_key() {
    world(SEED, |handle, origin| async move {
        let cfg = Config::with_persistence(Persistence::AofAlways);
        let (server, node, addr) =
            redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
        let client = client_node(&handle, "client", "10.0.1.1");
        let redis = Arc::new(ModelRedis::new(addr));
        let r = redis.clone();
        client
            .spawn(async move {
                at(origin, 100).await;
                assert_eq!(r.set_nx_px("lock", "a", 2000).await, Ok(true));
                assert_eq!(r.set_nx_px("other", "a", 60_000).await, Ok(true));
            })
            .await
            .expect("set");
        at(origin, 500).await;
        handle.kill(server.id());
        at(origin, 3000).await;
        handle.restart(server.id());
        let got = client
            .spawn(async move {
                at(origin, 3010).await;
                (redis.get("lock").await, redis.pttl("lock").await)
            })
            .await
            .expect("get");
        assert_eq!(got, (Ok(None), Ok(PTTL_MISSING)));
        assert_eq!(node.keys(), 1, "the expired key was not loaded");
        handle.kill(server.id());
        handle.kill(client.id());
    });
}

#[test]
fn rdb_saves_after_an_hour_with_one_change_and_restores_absolute_expiries() {
    world(SEED, |handle, origin| async move {
        let cfg = Config::with_persistence(Persistence::Rdb);
        let (server, node, addr) =
            redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
        let client = client_node(&handle, "client", "10.0.1.1");
        let redis = Arc::new(ModelRedis::new(addr));
        let r = redis.clone();
        client
            .spawn(async move {
                at(origin, 100).await;
                assert_eq!(r.set_nx_px("day", "a", 86_400_000).await, Ok(true));
            })
            .await
            .expect("set");
        // The save point `3600 1`: more than 3600 wall seconds after the boot's.
        at(origin, 3_601_500).await;
        assert_eq!(node.fsyncs_and_saves(), (0, 1));
        let r = redis.clone();
        client
            .spawn(async move { assert_eq!(r.set_nx_px("late", "a", 60_000).await, Ok(true)) })
            .await
            .expect("late");
        handle.kill(server.id());
        handle.restart(server.id());
        let (day, late) = client
            .spawn(async move {
                at(origin, 3_601_600).await;
                (redis.pttl("day").await, redis.get("late").await)
            })
            .await
            .expect("reads");
        let left = day.expect("pttl") - (86_400_100 - 3_601_600);
        assert!((-2..=1).contains(&left), "{left}");
        assert_eq!(late, Ok(None), "written after the save");
        handle.kill(server.id());
        handle.kill(client.id());
    });
}

#[test]
fn bad_input_is_answered_and_the_node_serves_on() {
    world(SEED, |handle, origin| async move {
        let cfg = Config::defaults();
        let (server, _, addr) =
            redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
        let client = client_node(&handle, "client", "10.0.1.1");
        client
            .spawn(async move {
                at(origin, 10).await;
                let redis = ModelRedis::new(addr);
                let invalid = RedisError::Other {
                    why: "ERR invalid expire time in 'set' command".into(),
                };
                assert_eq!(redis.set_nx_px("k", "v", 0).await, Err(invalid.clone()));
                assert_eq!(redis.set_nx_px("k", "v", i64::MAX).await, Err(invalid));
                assert!(redis.get("").await.is_err());
                assert_eq!(redis.set_nx_px("k", "v", 1000).await, Ok(true));
                let not_int = RedisError::Other {
                    why: "ERR value is not an integer or out of range".into(),
                };
                assert_eq!(redis.incr("k").await, Err(not_int));
                assert_eq!(redis.pexpire("k", 5000).await, Ok(true));
                assert_eq!(redis.pexpire_if_eq("k", "v", 9000).await, Ok(true));
                assert_eq!(redis.del("k").await, Ok(true));
                assert_eq!(redis.del("k").await, Ok(false));
            })
            .await
            .expect("client ran");
        handle.kill(server.id());
        handle.kill(client.id());
    });
}

#[test]
fn a_client_past_maxclients_is_refused() {
    world(SEED, |handle, origin| async move {
        let cfg = Config {
            clients_max: 1,
            ..Config::defaults()
        };
        let (server, _, addr) =
            redis_node(&handle, origin, "redis", "10.0.0.1", cfg, Skew::default());
        let client = client_node(&handle, "client", "10.0.1.1");
        client
            .spawn(async move {
                at(origin, 10).await;
                let (first, second) = (ModelRedis::new(addr), ModelRedis::new(addr));
                assert_eq!(first.incr("n").await, Ok(1));
                let refused = RedisError::Other {
                    why: "ERR max number of clients reached".into(),
                };
                assert_eq!(second.incr("n").await, Err(refused));
                // The refused connection was closed: the next call finds it so.
                assert!(second.incr("n").await.is_err());
                // The first client's place is given back when it goes.
                drop(first);
                tokio::time::sleep(Duration::from_millis(10)).await;
                let third = ModelRedis::new(addr);
                assert_eq!(third.incr("n").await, Ok(2));
            })
            .await
            .expect("client ran");
        handle.kill(server.id());
        handle.kill(client.id());
    });
}

/// A key set at true 1 s with PX 2000 (deadline: wall 3 s), untouched past it, then the
/// node's wall clock stepped back 5 s at true 4 s: what a GET at true 4.5 s (wall -0.5 s)
/// finds.
async fn untouched_key_after_a_step_back(
    handle: Handle,
    origin: Instant,
    active_expire: bool,
) -> Option<String> {
    let skew = Skew {
        steps: vec![ClockStep {
            at_ms: 4000,
            delta_ms: -5000,
        }],
        ..Skew::default()
    };
    let cfg = Config {
        active_expire,
        ..Config::defaults()
    };
    let (server, _, addr) = redis_node(&handle, origin, "redis", "10.0.0.1", cfg, skew);
    let client = client_node(&handle, "client", "10.0.1.1");
    let got = client
        .spawn(async move {
            let redis = ModelRedis::new(addr);
            at(origin, 1000).await;
            assert_eq!(redis.set_nx_px("lock", "a", 2000).await, Ok(true));
            at(origin, 4500).await;
            redis.get("lock").await.expect("get")
        })
        .await
        .expect("client ran");
    handle.kill(server.id());
    handle.kill(client.id());
    got
}

#[test]
fn a_step_back_revives_an_untouched_expired_key_only_without_active_expiry() {
    // The one corner where active expiry shows (the model's `mod.rs`): without it the key
    // that expired at wall 3 s, untouched, is alive again at wall -0.5 s; with it (as a
    // real Redis at hz 10 with few keys) it was deleted in the first tick past its deadline.
    let passive = world(SEED, |h, o| untouched_key_after_a_step_back(h, o, false));
    let active = world(SEED, |h, o| untouched_key_after_a_step_back(h, o, true));
    assert_eq!(passive, Some("a".into()));
    assert_eq!(active, None);
}
