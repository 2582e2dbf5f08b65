//! Calibration of the ZooKeeper model against a real ZooKeeper: the probes of
//! `fencelab::calibrate::zk` run against fencelab's model of one server in a small madsim world
//! (one model server, one probing client node, and a client node of its own per silenceable
//! session), beside the real ZooKeeper 3.8.0's figures committed in
//! `sims/calibration/zk-real.json` (measured by the real suite, `sims/real_zk.rs`, with
//! `FENCELAB_CALIBRATION_WRITE=1`). When they disagree, the model is wrong.
//!
//! Held (`calibrate::zk::zk_compare`): negotiation exactly; the expiry latency's min, median and
//! max inside the real [min, max] widened by `EXPIRY_WIDEN_MS`; each pause's share of expired
//! sessions inside the range the real server showed at that pause over nine rounds
//! (`PAUSE_SHARES_OBSERVED`: none up to 1 T); sequence numbers restarting at 0 under a
//! container created again, czxids rising; the failover probe (on the model's 3-server ensemble,
//! in a world of its own) as many trials as the real, kill → new leader min, median and max
//! inside the real ones widened by `FAILOVER_WIDEN_MS`, and every session ended no sooner than
//! T after its new leader and no later than T + tick + `FAILOVER_WIDEN_MS`, the real trials too.
//! Reported only: the failover's new leader → `NodeDeleted` min, median and max (T plus the rest
//! of the bucket the new leader started in: a phase set by the run, not by ZooKeeper, see
//! `calibrate::zk::compare`); the silent clients' own states (the real client is the
//! `zookeeper-client` crate, not `ClientCnxn`, which the model follows), and when the container
//! went (a phase of the 1000 ms check interval). One difference passes the checks: past 1 T the
//! model expires every session on resume, in every round and seed tried, where the real server's queued
//! reconnects sometimes won (madsim delivers a paused node's queued messages at least 1 ms after
//! its resume, so the tracker always runs first; `docs/zookeeper-model.md` says more).
//!
//! Run: `cargo test --release --test zk_calibration -- --nocapture` (seconds): prints the
//! model-against-real table (the one in the README) and every check.
#![cfg(madsim)]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

use fencelab::calibrate::zk::model::{ModelEnsemble, ModelSessions};
use fencelab::calibrate::zk::{self as calibrate, ZkFigures, ZkRecord};
use fencelab::calibrate::PauseNode;
use fencelab::clock::NodeClock;
use fencelab::zk::model::{self, ZkNode};
use madsim::runtime::{Handle, Runtime};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

const SERVER: &str = "10.0.0.41:2181";
const PROBE_IP: &str = "10.0.1.1";
/// The failover probe's ensemble: 3 servers, addressed as the world addresses them.
const ENSEMBLE: [&str; 3] = ["10.0.0.41:2181", "10.0.0.42:2181", "10.0.0.43:2181"];
/// One-way message latency: the real loopback's order (madsim delivers a connection's
/// message no sooner than 1 ms after it was sent whatever is set; see `sims/redis_calibration.rs`).
const LATENCY: std::ops::Range<Duration> = Duration::from_micros(50)..Duration::from_micros(200);
/// `znode.container.checkIntervalMs` of the real servers (`.ci/zk-servers`).
const CONTAINER_CHECK_MS: u64 = 1_000;

/// The world's seed: `FENCELAB_CALIBRATION_SEED`, else 20 (ZooKeeper's issue; any seed must
/// pass).
fn seed() -> u64 {
    std::env::var("FENCELAB_CALIBRATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Every probe against the model: the failover on a 3-server ensemble in a world of its own
/// (the other probes' world, and so their figures, are as they were without it).
fn simulate(seed: u64) -> ZkFigures {
    let mut figures = simulate_server(seed);
    let failover = simulate_ensemble(seed);
    figures.failover = calibrate::keep(&mut figures.errors, "failover", failover);
    figures
}

/// A madsim runtime on a loopback's network.
fn runtime(seed: u64) -> Runtime {
    let mut config = madsim::Config::default();
    config.net.send_latency = LATENCY;
    config.net.packet_loss_rate = 0.0;
    let mut rt = Runtime::with_seed_and_config(seed, config);
    rt.set_time_limit(Duration::from_secs(900));
    rt
}

/// A server's configuration: tickTime 2000 (as the real ones), the real servers' container
/// interval, `server_id` its ID (the top byte of its session IDs).
fn server_config(server_id: u8) -> model::Config {
    let mut cfg = model::Config::default();
    assert_eq!(cfg.sessions.tick_ms, calibrate::TICK_MS);
    cfg.container_check_ms = CONTAINER_CHECK_MS;
    cfg.sessions.server_id = server_id;
    cfg
}

/// The failover probe against the model's ensemble of 3 servers (tickTime 2000, as the real
/// one; its election draws from `seed`), on a loopback's network.
fn simulate_ensemble(seed: u64) -> Result<calibrate::Failover, String> {
    runtime(seed).block_on(async move {
        let handle = Handle::current();
        let origin = Instant::now();
        let endpoints: Vec<String> = ENSEMBLE.iter().map(|e| e.to_string()).collect();
        let cfgs = (0..ENSEMBLE.len())
            .map(|i| server_config(i as u8 + 1))
            .collect();
        let clocks = ENSEMBLE
            .iter()
            .map(|_| NodeClock::perfect(origin))
            .collect();
        let servers: Vec<_> = ZkNode::ensemble(cfgs, clocks, seed)
            .into_iter()
            .zip(&endpoints)
            .enumerate()
            .map(|(i, (z, e))| {
                let z = Arc::new(z);
                let addr: SocketAddr = e.parse().expect("address");
                let node = model::node(&handle, &format!("zk{}", i + 1), addr, z.clone());
                (z, node.id())
            })
            .collect();
        let probe = handle
            .create_node()
            .name("probe")
            .ip(PROBE_IP.parse().expect("ip"))
            .build();
        let sessions = Arc::new(ModelSessions::new(endpoints, origin, seed));
        let ensemble = ModelEnsemble {
            servers: servers.clone(),
            sessions,
        };
        let failover = probe
            .spawn(async move {
                // Let the servers bind first.
                tokio::time::sleep(Duration::from_millis(10)).await;
                calibrate::failover(&ensemble, "/calibration/failover").await
            })
            .await
            .expect("the probe ran");
        for (z, _) in &servers {
            z.with_server(|s| s.check_invariants());
        }
        failover
    })
}

/// Every probe but the failover against one model server (tickTime 2000, as the real one), on a
/// loopback's network.
fn simulate_server(seed: u64) -> ZkFigures {
    runtime(seed).block_on(async move {
        let handle = Handle::current();
        let origin = Instant::now();
        let cfg = server_config(model::Config::default().sessions.server_id);
        let node = Arc::new(ZkNode::new(cfg, NodeClock::perfect(origin)));
        let addr: SocketAddr = SERVER.parse().expect("address");
        let server = model::node(&handle, "zk1", addr, node.clone());
        let probe = handle
            .create_node()
            .name("probe")
            .ip(PROBE_IP.parse().expect("ip"))
            .build();
        let stall = PauseNode { node: server.id() };
        let sessions = Arc::new(ModelSessions::new(vec![SERVER.into()], origin, seed));
        let figures = probe
            .spawn(async move {
                // Let the server bind first.
                tokio::time::sleep(Duration::from_millis(10)).await;
                calibrate::run_zk(sessions, &stall, "/calibration").await
            })
            .await
            .expect("the probes ran");
        node.with_server(|s| s.check_invariants());
        figures
    })
}

/// The model's figures (computed once) and the committed real record.
fn columns() -> &'static (ZkFigures, ZkRecord) {
    static COLUMNS: OnceLock<(ZkFigures, ZkRecord)> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/sims/calibration/zk-real.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let real = ZkRecord::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        (simulate(seed()), real)
    })
}

#[test]
fn the_zookeeper_model_lands_within_the_tolerances_of_a_real_zookeeper() {
    let (model, real) = columns();
    let real_figures = real.figures();
    let real_name = format!("real ZooKeeper {}", real.zookeeper_version);
    println!(
        "{}",
        calibrate::zk_table(&[("model", model), ("real ZooKeeper 3.8.0", &real_figures)])
    );
    println!("real: {real_name}, measured on {}", real.machine);
    assert_eq!(real.tick_ms, calibrate::TICK_MS);
    assert!(model.errors.is_empty(), "model: {:?}", model.errors);
    // Every part of the real record is there: a check against a missing part would pass.
    for (part, present) in [
        ("negotiation", real_figures.negotiation.is_some()),
        ("expiry_latency", real_figures.expiry_latency.is_some()),
        ("paused", real_figures.paused.is_some()),
        ("sequence_restart", real_figures.sequence_restart.is_some()),
        ("failover", real_figures.failover.is_some()),
    ] {
        assert!(present, "zk-real.json has no part {part}");
    }
    let checks = calibrate::zk_compare(&real_figures, model);
    for check in &checks {
        println!("  {check}");
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "the model is outside the tolerances of {real_name}:\n{}",
        failed.join("\n")
    );
}

/// The committed rounds are among the nine the pause check's ranges come from, and the real
/// figures the checks rest on say what the checks say they do.
#[test]
fn the_ranges_held_to_are_the_real_ones() {
    let (_, real) = columns();
    let paused = real.figures().paused.expect("committed paused");
    for p in &paused.pauses {
        let (lo, hi) = calibrate::observed_range(p.factor).expect("a factor of the probe");
        assert!((lo..=hi).contains(&p.expired_share), "committed {p:?}");
    }
    for (factor, shares) in calibrate::PAUSE_SHARES_OBSERVED {
        assert!(calibrate::PAUSE_FACTORS.contains(&factor));
        if factor <= 1.0 {
            assert!(shares.iter().all(|s| *s == 0.0), "{factor} T");
        }
    }
    let negotiated = real.figures().negotiation.expect("committed negotiation");
    let granted: Vec<_> = negotiated.iter().map(|n| n.negotiated_ms).collect();
    assert_eq!(granted, [4_000, 4_000, 10_000, 40_000]);
}

#[test]
fn the_probes_are_deterministic_in_the_simulation() {
    let (model, _) = columns();
    assert_eq!(&simulate(seed()), model, "same seed, same figures");
}
