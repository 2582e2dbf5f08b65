//! Real mode against real ZooKeeper 3.8.0: the seam (`fencelab::zk::real::RealZk`) on a
//! standalone server, `fencelab real-zk-demo`'s walkthrough (Curator's lock, a holder stopped
//! past its session, the stale write and the czxid fence), and the calibration probes of
//! `fencelab::calibrate::zk` held to what ZooKeeper's source says and to the committed figures
//! (`sims/calibration/zk-real.json`).
//!
//! Needs the servers `.ci/zk-servers` starts (`FENCELAB_ZK`, `FENCELAB_ZK_PID`, ...); skipped,
//! with a message, without them. `.ci/run` always starts them. On a developer's machine:
//!
//! ```text
//! bash .ci/zk-servers env RUSTFLAGS= cargo test --release --target-dir target/real \
//!   --test real_zk -- --nocapture
//! ```
//!
//! With `FENCELAB_CALIBRATION_WRITE=1` each probe's figures, measured just now, go to
//! `sims/calibration/zk-real.json` as that test's part, in place of the committed ones.
#![cfg(not(madsim))]

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[path = "shared/machine.rs"]
mod machine;

use fencelab::calibrate::zk::real::{RealEnsemble, RealSessions};
use fencelab::calibrate::zk::{self as cal, Sessions, ZkRecord};
use fencelab::calibrate::SigStop;
use fencelab::history::OpResult;
use fencelab::real::{self, ZkDemoConfig, ZkWalkthrough};
use fencelab::storage::Fencing;
use fencelab::zk::model::Owner;
use fencelab::zk::{CreateMode, Fired, MultiFailed, Op, SessionState, Zk, ZkError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The standalone server, from the environment.
struct Standalone {
    endpoint: String,
    pid: u32,
}

fn standalone() -> Option<Standalone> {
    let Ok(endpoint) = std::env::var("FENCELAB_ZK") else {
        println!(
            "real ZooKeeper suite skipped: FENCELAB_ZK is unset; start the servers with \
             `bash .ci/zk-servers CMD` (see the header of sims/real_zk.rs)"
        );
        return None;
    };
    let pid = std::env::var("FENCELAB_ZK_PID")
        .expect("FENCELAB_ZK is set, FENCELAB_ZK_PID is not (.ci/zk-servers sets both)")
        .parse()
        .expect("FENCELAB_ZK_PID: a PID");
    Some(Standalone { endpoint, pid })
}

/// The tests on the standalone server run one at a time: one of them pauses it, and the
/// others' timings must not share it with a pause or with another probe's twenty sessions.
static STANDALONE: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    STANDALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A path of its own for this test in this run (a server may keep a failed run's nodes).
fn run_dir(test: &str) -> String {
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("/fencelab-real-zk/{test}/{run:x}")
}

/// Runs `f` on a runtime of its own, two threads: the probes' timing is the test's alone.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

// ---------------------------------------------------------------------------------------
// the calibration file

const CALIBRATION_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/sims/calibration/zk-real.json");
const PARTS: [&str; 5] = [
    "negotiation",
    "expiry_latency",
    "paused",
    "failover",
    "sequence_restart",
];

/// The committed record.
fn committed() -> ZkRecord {
    let text = std::fs::read_to_string(CALIBRATION_FILE)
        .unwrap_or_else(|e| panic!("read {CALIBRATION_FILE}: {e}"));
    ZkRecord::parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn writing() -> bool {
    std::env::var("FENCELAB_CALIBRATION_WRITE").is_ok_and(|v| v == "1")
}

/// The server's version line from `srvr` (`Zookeeper version: 3.8.0-...`).
fn zookeeper_version(endpoint: &str) -> String {
    use std::io::{Read, Write};
    let addr = endpoint.parse().expect("host:port");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("srvr");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.write_all(b"srvr").expect("srvr");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
        .lines()
        .find_map(|l| l.strip_prefix("Zookeeper version: "))
        .unwrap_or("?")
        .trim()
        .to_string()
}

/// With `FENCELAB_CALIBRATION_WRITE=1`, puts `figures` into the calibration file as part
/// `name` (the other parts stay as they were).
fn calibration_part(endpoint: &str, name: &str, method: &str, figures: impl serde::Serialize) {
    if !writing() {
        return;
    }
    static FILE: Mutex<()> = Mutex::new(());
    let _one = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let mut record: serde_json::Value = std::fs::read_to_string(CALIBRATION_FILE)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(parts) = record["parts"].as_object_mut() {
        parts.retain(|k, _| PARTS.contains(&k.as_str()));
    }
    record["zookeeper_version"] = zookeeper_version(endpoint).into();
    record["machine"] = machine::machine().into();
    record["tick_ms"] = cal::TICK_MS.into();
    record["parts"][name] = serde_json::json!({
        "date": machine::command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "method": method,
        "figures": serde_json::to_value(figures).expect("figures as JSON"),
    });
    let text = serde_json::to_string_pretty(&record).expect("json") + "\n";
    std::fs::write(CALIBRATION_FILE, text)
        .unwrap_or_else(|e| panic!("write {CALIBRATION_FILE}: {e}"));
    println!("wrote part {name} of {CALIBRATION_FILE}");
}

// ---------------------------------------------------------------------------------------
// the seam

async fn open(endpoint: &str, timeout_ms: u64) -> Arc<dyn Zk> {
    fencelab::zk::real::connect(endpoint, timeout_ms)
        .await
        .unwrap_or_else(|e| panic!("connect {endpoint}: {e}"))
}

/// Every call of the seam on the real server, and how its errors are classified.
#[test]
fn the_seams_operations_on_a_real_server() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let dir = run_dir("ops");
    block_on(async {
        let a = open(&server.endpoint, 10_000).await;
        let b = open(&server.endpoint, 10_000).await;
        assert_eq!(a.state(), SessionState::Connected);
        assert_eq!(a.session().timeout_ms, 10_000);
        cal::mkdirs(&*a, &dir).await.unwrap();
        // Sequential children of a container: the parent's count, %010d.
        let lock = format!("{dir}/lock");
        a.create(&lock, b"", CreateMode::Container).await.unwrap();
        let n0 = a
            .create(&format!("{lock}/n-"), b"", CreateMode::EphemeralSequential)
            .await
            .unwrap();
        let n1 = b
            .create(&format!("{lock}/n-"), b"", CreateMode::EphemeralSequential)
            .await
            .unwrap();
        assert_eq!(n0.path, format!("{lock}/n-0000000000"));
        assert_eq!(n1.path, format!("{lock}/n-0000000001"));
        assert!(n1.stat.czxid > n0.stat.czxid, "{:?} {:?}", n0.stat, n1.stat);
        let mut children = a.get_children(&lock).await.unwrap();
        children.sort();
        assert_eq!(children, ["n-0000000000", "n-0000000001"]);
        // Data and versions.
        let (data, stat) = a.get_data(&n0.path).await.unwrap();
        assert_eq!((data.as_slice(), stat.version), (&b""[..], 0));
        assert_eq!(
            a.set_data(&n0.path, b"x", 1).await,
            Err(ZkError::BadVersion)
        );
        assert_eq!(a.set_data(&n0.path, b"x", 0).await.unwrap().version, 1);
        assert_eq!(
            a.create(&lock, b"", CreateMode::Persistent)
                .await
                .unwrap_err(),
            ZkError::NodeExists
        );
        assert_eq!(
            a.get_data(&format!("{dir}/none")).await.unwrap_err(),
            ZkError::NoNode
        );
        assert_eq!(a.delete(&lock, -1).await, Err(ZkError::NotEmpty));
        // Owners as a client reads them: the session; and 0 for a container, whose stored
        // owner is the container marker but which `DataNode.copyStat` hands out as 0
        // (`getClientEphemeralOwner`: 0 for every type but NORMAL).
        let me = a.session().session_id;
        assert_eq!(n0.stat.owner, Owner::Session(me));
        let (_, parent) = a.get_data(&lock).await.unwrap();
        assert_eq!(parent.owner, Owner::None);
        assert_eq!((parent.cversion, parent.num_children), (2, 2));
        // A watch on b's node fires NodeDeleted when b's session closes.
        let (stat, watch) = a.exists_watch(&n1.path).await.unwrap();
        assert!(stat.is_some());
        b.close().await.unwrap();
        assert_eq!(b.state(), SessionState::Closed);
        assert_eq!(
            b.get_data(&n0.path).await.unwrap_err(),
            ZkError::SessionExpired
        );
        let fired = tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("fired");
        assert_eq!(fired, Fired::NodeDeleted);
        // A delete does not move the stored cversion, the next suffix (the server reads out
        // 2 × 2 − 1 = 3, `DataNode.copyStat`; the seam keeps the stored 2).
        let (_, parent) = a.get_data(&lock).await.unwrap();
        assert_eq!((parent.cversion, parent.num_children), (2, 1));
        let n2 = a
            .create(&format!("{lock}/n-"), b"", CreateMode::EphemeralSequential)
            .await
            .unwrap();
        assert_eq!(n2.path, format!("{lock}/n-0000000002"));
        // multi with check: the failed op's index, nothing applied.
        let ops = [
            Op::SetData {
                path: n0.path.clone(),
                data: b"y".to_vec(),
                version: 1,
            },
            Op::Check {
                path: n0.path.clone(),
                version: 7,
            },
        ];
        match a.multi(&ops).await {
            Err(MultiFailed::Op(e)) => assert_eq!((e.index, e.error), (1, ZkError::BadVersion)),
            other => panic!("multi: {other:?}"),
        }
        assert_eq!(a.get_data(&n0.path).await.unwrap().0, b"x");
        let ops = [
            Op::Check {
                path: n0.path.clone(),
                version: 1,
            },
            ops[0].clone(),
        ];
        assert_eq!(a.multi(&ops).await.unwrap().len(), 2);
        a.close().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// calibration

fn sessions(server: &Standalone) -> Arc<dyn Sessions> {
    Arc::new(RealSessions {
        endpoints: server.endpoint.clone(),
    })
}

/// 1000 ms requested gives 4000 (2 × tickTime), 60000 gives 40000 (20 × tickTime): the clamp of
/// `ZooKeeperServer.processConnectRequest` (`minSessionTimeout`, `maxSessionTimeout`).
#[test]
fn negotiation_clamps_to_2_and_20_ticks() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let figures = block_on(cal::negotiation(&*sessions(&server))).unwrap();
    println!("negotiation: {figures:?}");
    let granted: Vec<(u64, u64)> = figures
        .iter()
        .map(|n| (n.requested_ms, n.negotiated_ms))
        .collect();
    let tick = cal::TICK_MS;
    let want = [
        (1_000, 2 * tick),
        (4_000, 4_000),
        (10_000, 10_000),
        (60_000, 20 * tick),
    ];
    assert_eq!(granted, want);
    if writing() {
        calibration_part(
            &server.endpoint,
            "negotiation",
            cal::NEGOTIATION_METHOD,
            &figures,
        );
    } else {
        let c = committed()
            .parts
            .negotiation
            .expect("committed negotiation");
        assert_eq!(figures, c.figures, "the committed negotiation");
    }
}

/// How far a real expiry may land past T + tick: the server's `SessionTrackerImpl` thread
/// wakes at the bucket's time and its `closeSession` goes through the request pipeline, and
/// the watcher's notification crosses loopback and a JVM and a tokio runtime on 2 shared cores.
const EXPIRY_LATE_MS: f64 = 250.0;
/// How far this run's min, median and max may be from the committed ones: the trials cover
/// one tick of phases, so each is about the committed one, within a few staggers.
const EXPIRY_AGREE_MS: f64 = 400.0;

/// A silent session's ephemeral goes between T and T + tick after its last packet
/// (`ExpiryQueue.roundToNextInterval`, `SessionTrackerImpl.run`), never sooner.
#[test]
fn expiry_latency_is_t_to_t_plus_a_tick() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let dir = run_dir("expiry");
    let e = block_on(cal::expiry_latency(sessions(&server), &dir)).unwrap();
    println!("expiry latency: {e:?}");
    let t = e.timeout_ms as f64;
    let tick = cal::TICK_MS as f64;
    for (i, d) in e.last_packet_to_deleted.samples_ms.iter().enumerate() {
        assert!(
            *d >= t,
            "trial {i}: deleted {d:.3} ms after the last packet, before T"
        );
        assert!(
            *d <= t + tick + EXPIRY_LATE_MS,
            "trial {i}: deleted {d:.3} ms after the last packet"
        );
    }
    // The crate's client calls itself Disconnected 2T/5 after its last receive (checked
    // every T/20), and gives up (Lost, or its own Expired) no sooner than 7T/5.
    let s = &e.last_packet_to_suspended;
    assert!(
        s.max_ms <= 2.0 * t / 5.0 + t / 10.0 + EXPIRY_LATE_MS,
        "suspended {s:?}"
    );
    let g = &e.last_packet_to_gave_up;
    assert!(
        g.min_ms >= s.min_ms + t - t / 20.0,
        "gave up {g:?}, suspended {s:?}"
    );
    if writing() {
        calibration_part(&server.endpoint, "expiry_latency", cal::EXPIRY_METHOD, &e);
        return;
    }
    let c = committed()
        .parts
        .expiry_latency
        .expect("committed expiry latency")
        .figures;
    let (now, then) = (&e.last_packet_to_deleted, &c.last_packet_to_deleted);
    for (what, a, b) in [
        ("min", now.min_ms, then.min_ms),
        ("median", now.median_ms, then.median_ms),
        ("max", now.max_ms, then.max_ms),
    ] {
        assert!(
            (a - b).abs() <= EXPIRY_AGREE_MS,
            "{what}: {a:.3} ms now, {b:.3} ms committed"
        );
    }
}

/// The server paused for 0.5 T to 2 T: nothing expires while paused, and on resume the
/// sessions past their bucket go (`SessionTrackerImpl.run` on a monotonic clock), unless a
/// packet queued during the pause touches them first.
#[test]
fn a_paused_server_expires_on_resume() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let dir = run_dir("paused");
    let stall = SigStop { pid: server.pid };
    let p = block_on(cal::paused(&*sessions(&server), &stall, &dir)).unwrap();
    println!("paused: {p:?}");
    let t = p.timeout_ms as f64;
    for pause in &p.pauses {
        // Stalled: the server touches nothing and expires nothing. A pause shorter than T
        // less the crate's longest gap between sends (a ping 3T/20 after the last send,
        // checked every T/20) leaves every session's last touch plus T in the future on
        // resume: none is due.
        if pause.pause_ms + t / 5.0 < t {
            assert_eq!(pause.expired, 0, "{pause:?}");
        }
        // Longer pauses are races on resume, and so not asserted: the sessions opened
        // together mostly share a bucket (`ExpiryQueue`), so they mostly go all together or
        // not at all; past T + tick the bucket is due, but the reconnects the clients queued
        // in the server's listen backlog during the pause may be read first and touch the
        // session (`ZooKeeperServer.reopenSession`). Measured in nine rounds: 1.25 T
        // expired 10, 0, 10, 10, 10, 0, 10, 0, 0 of 10; 1.5 T 10, 10, 10, 8, 1, 10, 10, 10,
        // 10; 2 T 1, 10, 10, 10, 10, 1, 10, 10, 1.
    }
    if writing() {
        calibration_part(&server.endpoint, "paused", cal::PAUSE_METHOD, &p);
        return;
    }
    let c = committed().parts.paused.expect("committed paused").figures;
    let plan = |x: &cal::Paused| {
        let pauses = x.pauses.iter().map(|p| (p.round, p.factor));
        pauses.collect::<Vec<_>>()
    };
    assert_eq!(plan(&p), plan(&c), "the committed pauses");
    // The committed pauses shorter than the bound above expired none either.
    for q in &c.pauses {
        if q.pause_ms + t / 5.0 < t {
            assert_eq!(q.expired, 0, "committed {q:?}");
        }
    }
}

/// A container parent's sequence restarts at 0 once the server deleted it empty
/// (`ContainerManager.checkContainers`; the suffix is the parent's cversion,
/// `PrepRequestProcessor.pRequest2TxnCreate`), while `czxid` keeps rising (zxids are the
/// ensemble's, never a node's).
#[test]
fn sequence_numbers_restart_with_the_container_czxid_does_not() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let dir = run_dir("sequence");
    let q = block_on(cal::sequence_restart(&*sessions(&server), &dir)).unwrap();
    println!("sequence restart: {q:?}");
    assert_eq!(q.before, [0, 1, 2]);
    assert_eq!(q.after, 0, "the sequence restarted");
    assert!(q.before_czxids.windows(2).all(|w| w[0] < w[1]), "{q:?}");
    assert!(q.after_czxid > q.before_czxids[2], "czxid rose: {q:?}");
    // The servers check containers every 1000 ms (`.ci/zk-servers`).
    assert!(q.container_deleted_after_ms <= 2_500, "{q:?}");
    if writing() {
        calibration_part(
            &server.endpoint,
            "sequence_restart",
            cal::SEQUENCE_METHOD,
            &q,
        );
        return;
    }
    let c = committed()
        .parts
        .sequence_restart
        .expect("committed sequence")
        .figures;
    assert_eq!(
        (&q.before, q.after),
        (&c.before, c.after),
        "the committed sequences"
    );
}

/// The ensemble from the environment.
fn ensemble() -> Option<RealEnsemble> {
    let endpoints = std::env::var("FENCELAB_ZK_ENSEMBLE").ok()?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("FENCELAB_ZK_ENSEMBLE is set, {name} is not"))
    };
    let launch_file = var("FENCELAB_ZK_ENSEMBLE_LAUNCH");
    let launch = std::fs::read_to_string(&launch_file)
        .unwrap_or_else(|e| panic!("{launch_file}: {e}"))
        .lines()
        .map(String::from)
        .collect();
    let pids = var("FENCELAB_ZK_ENSEMBLE_PIDS")
        .split(',')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|e| panic!("FENCELAB_ZK_ENSEMBLE_PIDS: {p}: {e}"))
        })
        .collect();
    Some(RealEnsemble {
        endpoints: endpoints.split(',').map(String::from).collect(),
        pids: Mutex::new(pids),
        launch,
        restarted_pids_file: var("FENCELAB_ZK_RESTARTED_PIDS"),
    })
}

/// How much sooner than the new leader first seen serving + T the session may end: the new
/// leader's tracker started before `srvr` could see it lead (a poll every 20 ms, and a
/// round trip), never after.
const FAILOVER_SEEN_LATE_MS: f64 = 100.0;

/// The leader killed while a client is silent: the new leader re-tracks the session with a
/// full T (`SessionTrackerImpl`'s constructor touches every session it loads), so the session
/// ends no sooner than the new leader's start + T, though its client went silent before.
#[test]
fn a_new_leader_gives_every_session_a_full_timeout() {
    if standalone().is_none() {
        return;
    }
    let e = ensemble().expect("FENCELAB_ZK is set, FENCELAB_ZK_ENSEMBLE is not");
    // Not on the standalone server, but a JVM's restart on two cores would disturb the
    // standalone probes' timings.
    let _one = one_at_a_time();
    let dir = run_dir("failover");
    let f = block_on(cal::failover(&e, &dir)).unwrap();
    println!("failover: {f:?}");
    let t = f.timeout_ms as f64;
    let tick = cal::TICK_MS as f64;
    for k in &f.trials {
        assert!(
            k.new_leader_to_deleted_ms >= t - FAILOVER_SEEN_LATE_MS,
            "{k:?}"
        );
        assert!(
            k.new_leader_to_deleted_ms <= t + tick + EXPIRY_LATE_MS + 1_000.0,
            "{k:?}"
        );
        // Later than the standalone server would have ended it (T + tick after the packet).
        assert!(
            k.last_packet_to_deleted_ms > t + k.last_packet_to_kill_ms,
            "{k:?}"
        );
    }
    let endpoint = e.endpoints[0].clone();
    if writing() {
        calibration_part(&endpoint, "failover", cal::FAILOVER_METHOD, &f);
        return;
    }
    let c = committed()
        .parts
        .failover
        .expect("committed failover")
        .figures;
    assert_eq!(
        (f.timeout_ms, f.trials.len()),
        (c.timeout_ms, c.trials.len())
    );
}

// ---------------------------------------------------------------------------------------
// `fencelab real-zk-demo`: etcd's example on ZooKeeper with Curator's lock

/// The walkthrough on the standalone server under `fencing`, and what holds whatever the
/// fence: client 2 took the lock only once client 1's session expired, with a higher czxid,
/// and its write landed.
fn zk_walkthrough(server: &Standalone, fencing: Fencing) -> ZkWalkthrough {
    let cfg = ZkDemoConfig {
        zk: server.endpoint.clone(),
        fencing,
        session_timeout_ms: real::ZK_SESSION_TIMEOUT_MS,
        echo: false,
    };
    let w = real::zk_walkthrough(&cfg).unwrap_or_else(|e| panic!("{fencing}: {e}"));
    println!("{}", w.lines.join("\n"));
    println!("{}", real::zk_summary(&w));
    let (c1, c2) = (&w.client1, &w.client2);
    assert!(
        c2.holding.token > c1.holding.token,
        "{}",
        real::zk_summary(&w)
    );
    assert_ne!(c1.holding.lease_id, c2.holding.lease_id);
    assert_ne!(c1.holding.key, c2.holding.key);
    assert!(matches!(c2.write, OpResult::Ok { .. }), "{w:?}");
    // 4000 ms asked, 2 ticks granted. Client 1's last packet came just before it stopped (the
    // answer to its last request): its node cannot go sooner than T after that, nor client 2
    // hold sooner.
    assert_eq!(c1.timeout_ms, real::ZK_SESSION_TIMEOUT_MS);
    let t = Duration::from_millis(c1.timeout_ms);
    let early = Duration::from_millis(500);
    assert!(w.node_deleted_after >= t - early, "{w:?}");
    assert!(w.client2_held_after >= t - early, "{w:?}");
    w
}

/// Without a fence, client 1's write with its old czxid lands over client 2's.
#[test]
fn zk_demo_without_a_fence_the_stale_write_is_accepted() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    let w = zk_walkthrough(&server, Fencing::None);
    assert!(w.stale_write_accepted(), "{w:?}");
    let key0 = w.key0.expect("key0 written");
    assert_eq!(key0.val, "value from client1", "the stale write won");
    assert_eq!(key0.version, w.client1.holding.token);
}

/// The token fences refuse client 1's old czxid, naming both tokens; client 2's write stays.
#[test]
fn zk_demo_the_czxid_fence_refuses_the_stale_write() {
    let Some(server) = standalone() else {
        return;
    };
    let _one = one_at_a_time();
    for fencing in [Fencing::TokenWrites, Fencing::Token] {
        let w = zk_walkthrough(&server, fencing);
        let (t1, t2) = (w.client1.holding.token, w.client2.holding.token);
        match &w.client1.write {
            OpResult::Rejected { err } => assert!(
                err.contains(&format!("({t1})")) && err.contains(&format!("({t2})")),
                "{err}"
            ),
            other => panic!("{fencing}: client 1 should be refused, got {other:?}"),
        }
        assert!(
            w.lines
                .iter()
                .any(|l| l.contains("expected fail to write to storage with old fencing token")),
            "{:?}",
            w.lines
        );
        let key0 = w.key0.expect("key0");
        assert_eq!(key0.val, "value from client2");
        assert_eq!(key0.version, t2);
    }
}

/// Bad arguments get one clear error before any server is touched.
#[test]
fn zk_demo_refuses_bad_arguments() {
    let bad = |zk: &str, session_timeout_ms: u64| ZkDemoConfig {
        zk: zk.into(),
        fencing: Fencing::Token,
        session_timeout_ms,
        echo: false,
    };
    let e = real::zk_walkthrough(&bad("127.0.0.1:1", 0)).expect_err("timeout 0");
    assert!(e.contains("--session-timeout-ms 0 is outside"), "{e}");
    let e = real::zk_walkthrough(&bad("127.0.0.1:1", 700_000)).expect_err("timeout");
    assert!(e.contains("--session-timeout-ms 700000 is outside"), "{e}");
    let e = real::zk_walkthrough(&bad("127.0.0.1", 4_000)).expect_err("no port");
    assert!(e.contains("is not host:port"), "{e}");
    let e = real::zk_walkthrough(&bad("a:1,,b:2", 4_000)).expect_err("empty");
    assert!(e.contains("is not host:port"), "{e}");
    // The command line: exit status 2 and the same one line.
    let bin = env!("CARGO_BIN_EXE_fencelab");
    for (args, said) in [
        (
            &["--session-timeout-ms", "0"][..],
            "error: --session-timeout-ms 0 is outside",
        ),
        (&["--zk", "nowhere"][..], "is not host:port"),
        (&["--fencing", "czxid"][..], "czxid"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("real-zk-demo")
            .args(args)
            .output()
            .expect("run fencelab");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing ran");
    }
}
