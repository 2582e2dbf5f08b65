//! ZooKeeper with Curator's `InterProcessMutex` (issue 20), run: the model's session expiry,
//! a stalled server, a holder paused past its session, and the czxid fence.
#![cfg(madsim)]

#[path = "../src/global_alloc.rs"]
mod global_alloc;
#[path = "shared/scenario_files.rs"]
mod scenario_files;
use scenario_files::{grants, load};

use fencelab::fault::FaultPlan;
use fencelab::history::{EventKind, History, OpResult};
use fencelab::protocol::Op;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world;

fn acquisitions(h: &History) -> usize {
    h.events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Acquired { .. }))
        .count()
}

#[test]
fn curator_takes_the_lock_in_turn_without_faults() {
    let s = Scenario::zk();
    let run = world::run(&s, &FaultPlan::default(), Fencing::None, 1);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    let n = acquisitions(&run.history);
    eprintln!("acquisitions {n} verdict {:?}", run.verdict);
    assert!(n > 10, "{n} acquisitions");
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
}

fn write_outcome(h: &History, node: &str) -> Option<OpResult> {
    h.ops()
        .iter()
        .find(|o| {
            o.invoke.node == node
                && matches!(o.invoke.kind, EventKind::Invoke { op: Op::Write, .. })
        })
        .and_then(|o| o.outcome().cloned())
}

fn acquired_at(h: &History, node: &str) -> Option<u64> {
    grants(h, node).first().map(|g| g.0)
}

/// Kleppmann's pause on ZooKeeper: the holder paused past its session, the next holder
/// takes the lock at the expiry, and the stale write is accepted unfenced and refused by the
/// czxid token.
#[test]
fn a_holder_paused_past_its_session_writes_stale_unless_fenced() {
    let s = load("kleppmann-zk-gc-pause");
    let run = world::run(&s, &s.scripted_plan(), Fencing::None, 7);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    let h = &run.history;
    let (a1, a2) = (
        acquired_at(h, "client1").unwrap(),
        acquired_at(h, "client2").unwrap(),
    );
    // Client 2 holds once the server expired client 1's session: 4 to 6 s after client 1's
    // last ping (at most T/3 before the pause).
    let waited_ms = (a2 - a1) / 1000;
    assert!(
        (2_600..=7_000).contains(&waited_ms),
        "client 2 took the lock {waited_ms} ms after client 1"
    );
    assert!(matches!(
        write_outcome(h, "client2"),
        Some(OpResult::Ok { .. })
    ));
    assert!(
        matches!(write_outcome(h, "client1"), Some(OpResult::Ok { .. })),
        "the stale write goes through unfenced: {:?}",
        write_outcome(h, "client1")
    );
    let fenced = world::run(&s, &s.scripted_plan(), Fencing::Token, 7);
    assert!(matches!(
        write_outcome(&fenced.history, "client2"),
        Some(OpResult::Ok { .. })
    ));
    assert!(
        matches!(
            write_outcome(&fenced.history, "client1"),
            Some(OpResult::Rejected { .. })
        ),
        "the czxid fence refuses the stale write: {:?}",
        write_outcome(&fenced.history, "client1")
    );
    // Without the pause, one holder at a time: client 2 takes the lock after client 1 let go.
    let calm = Scenario {
        faults: Vec::new(),
        ..s.clone()
    };
    let run = world::run(&calm, &FaultPlan::default(), Fencing::None, 7);
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
}

fn token_of(h: &History, node: &str) -> Option<i64> {
    grants(h, node).first().map(|g| g.2)
}

/// Sequence numbers restart with their container parent: both holders get 0, and a token
/// fence fed them accepts the stale write; fed the czxid, the same fence refuses it.
#[test]
fn sequence_numbers_restart_and_let_a_stale_holder_through() {
    let s = load("zk-sequence-restart");
    let run = world::run(&s, &s.scripted_plan(), Fencing::Token, 7);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    let h = &run.history;
    assert_eq!(token_of(h, "client1"), Some(0));
    assert_eq!(
        token_of(h, "client2"),
        Some(0),
        "the sequence restarted at 0"
    );
    assert!(matches!(
        write_outcome(h, "client2"),
        Some(OpResult::Ok { .. })
    ));
    assert!(
        matches!(write_outcome(h, "client1"), Some(OpResult::Ok { .. })),
        "the stale write passes a fence fed sequence numbers: {:?}",
        write_outcome(h, "client1")
    );
    let czxid = Scenario {
        zk: fencelab::zk_settings::ZkSettings {
            token: fencelab::lock::ZkToken::Czxid,
            ..s.zk
        },
        ..s.clone()
    };
    let run = world::run(&czxid, &czxid.scripted_plan(), Fencing::Token, 7);
    let (t1, t2) = (
        token_of(&run.history, "client1"),
        token_of(&run.history, "client2"),
    );
    assert!(t2 > t1, "czxid rises: {t1:?} then {t2:?}");
    assert!(
        matches!(
            write_outcome(&run.history, "client1"),
            Some(OpResult::Rejected { .. })
        ),
        "the czxid fence refuses it: {:?}",
        write_outcome(&run.history, "client1")
    );
}

/// SUSPENDED against LOST: client 1 holds and is cut off from the server (not from the
/// storage) for 10 s while it computes for 6 s. The server expires its session 4 to 6 s after
/// its last packet and client 2 takes the lock. Client 1's client called itself suspended
/// after 2T/3 without an answer; Curator's LOST comes one session timeout later, about 6.7 s
/// after its last answer. A holder that stops at SUSPENDED (Curator's advice) gives up before
/// its write; one that waits for LOST still writes, after client 2.
#[test]
fn a_holder_that_waits_for_lost_writes_after_the_next_holder() {
    use fencelab::fault::Fault;
    use fencelab::lock::StopAt;
    use fencelab::ms::MsRange;
    use fencelab::scenario::{ClientScript, WorkloadKind};
    let script = |client, start_ms, critical_ms| ClientScript {
        client,
        start_ms,
        critical_ms: Some(MsRange::exactly(critical_ms)),
    };
    let base = Scenario {
        clients: 2,
        workload: WorkloadKind::Single,
        duration_ms: 30_000,
        scripts: vec![script(1, 0, 6_000), script(2, 500, 0)],
        faults: vec![Fault::Partition {
            a: "client1".into(),
            b: "zk:all".into(),
            at_ms: 1_000,
            duration_ms: 10_000,
        }],
        ..Scenario::zk()
    };
    let with = |stop_at| Scenario {
        zk: fencelab::zk_settings::ZkSettings { stop_at, ..base.zk },
        ..base.clone()
    };
    let lost = with(StopAt::Lost);
    let run = world::run(&lost, &lost.scripted_plan(), Fencing::None, 7);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    let h = &run.history;
    let (a1, a2) = (
        acquired_at(h, "client1").unwrap(),
        acquired_at(h, "client2").unwrap(),
    );
    assert!(
        a2 > a1 + 4_000_000,
        "client 2 holds after the expiry: {a1} then {a2} µs"
    );
    let written_at = |node: &str| {
        h.ops().iter().find_map(|o| {
            (o.invoke.node == node
                && matches!(o.invoke.kind, EventKind::Invoke { op: Op::Write, .. }))
            .then_some(o.invoke.true_us)
        })
    };
    let (w1, w2) = (
        written_at("client1").unwrap(),
        written_at("client2").unwrap(),
    );
    assert!(
        w1 > a2,
        "client 1 writes after client 2 took the lock: {w1} against {a2} µs"
    );
    assert!(matches!(
        write_outcome(h, "client1"),
        Some(OpResult::Ok { .. })
    ));
    eprintln!(
        "stop at lost: client 2 holds at {} ms, writes at {} ms; client 1 writes at {} ms",
        a2 / 1000,
        w2 / 1000,
        w1 / 1000
    );
    let suspended = with(StopAt::Suspended);
    let run = world::run(&suspended, &suspended.scripted_plan(), Fencing::None, 7);
    let h = &run.history;
    assert_eq!(
        write_outcome(h, "client1"),
        None,
        "client 1 gave up at SUSPENDED"
    );
    assert!(h
        .events
        .iter()
        .any(|e| e.node == "client1" && matches!(e.kind, EventKind::LocalCheckRefused { .. })));
    assert!(matches!(
        write_outcome(h, "client2"),
        Some(OpResult::Ok { .. })
    ));
}

/// The zk preset under its random nemesis: unfenced, some seeds lose updates; with the czxid
/// token fence, none do.
#[test]
fn the_zk_preset_violates_unfenced_and_never_with_the_czxid_fence() {
    let s = Scenario::preset("zk").unwrap();
    assert_eq!(load("zk"), s, "sims/scenarios/zk.toml is the zk preset");
    const SEEDS: u64 = 40;
    let seeds = 0..SEEDS;
    let started = std::time::Instant::now();
    let (mut unfenced, mut fenced) = (Vec::new(), Vec::new());
    for seed in seeds.clone() {
        let plan = fencelab::nemesis::draw(&s, seed);
        let none = world::run(&s, &plan, Fencing::None, seed);
        assert!(
            none.verdict.anomalies.is_empty(),
            "seed {seed}: {:?}",
            none.verdict.anomalies
        );
        if none.verdict.violates() {
            unfenced.push(seed);
        }
        let token = world::run(&s, &plan, Fencing::Token, seed);
        assert!(
            token.verdict.anomalies.is_empty(),
            "seed {seed}: {:?}",
            token.verdict.anomalies
        );
        if token.verdict.violates() {
            fenced.push(seed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "zk preset, {} seeds: none violates on {:?}, token on {:?}; {:.1} runs/s",
        SEEDS,
        unfenced,
        fenced,
        2.0 * SEEDS as f64 / secs
    );
    assert!(!unfenced.is_empty(), "some seed violates unfenced");
    assert!(
        fenced.is_empty(),
        "the czxid fence never lets a violation through: {fenced:?}"
    );
}

/// Bad `[zk]` keys, and ZooKeeper roles on a world without ZooKeeper, get one clear error.
#[test]
fn bad_zk_settings_and_roles_name_the_key() {
    let zk = |table: &str| {
        Scenario::from_toml(&format!(
            "service = \"zk\"\nlock_method = \"curator\"\n[zk]\n{table}"
        ))
    };
    assert!(zk("servers = 1").is_ok());
    for (table, key) in [
        ("servers = 0", "zk.servers: 0"),
        ("servers = 2", "zk.servers: 2"),
        ("servers = 7", "zk.servers: 7"),
        ("session_timeout_ms = 1000", "zk.session_timeout_ms: 1000"),
        (
            "session_timeout_ms = 100000",
            "zk.session_timeout_ms: 100000",
        ),
        ("tick_ms = 0", "zk.tick_ms: 0"),
        ("stop_at = \"never\"", "stop_at"),
        ("colour = 1", "colour"),
    ] {
        let e = zk(table).unwrap_err();
        assert!(e.contains(key), "{table}: {e}");
    }
    let e = Scenario::from_toml("service = \"zk\"\nlock_method = \"election\"").unwrap_err();
    assert!(e.starts_with("lock_method: election"), "{e}");
    let e =
        Scenario::from_toml("service = \"zk\"\nlock_method = \"curator\"\nworkload = \"etcd-set\"")
            .unwrap_err();
    assert!(e.contains("etcd-set"), "{e}");
    let pause = |node: &str| {
        format!("[[faults]]\nfault = \"pause\"\nnode = \"{node}\"\nat = {{ at_ms = 1000 }}\nduration_ms = 100\n")
    };
    for node in ["zk:all", "zk", "zk1", "zk:1"] {
        let on_zk = format!(
            "service = \"zk\"\nlock_method = \"curator\"\n{}",
            pause(node)
        );
        assert!(Scenario::from_toml(&on_zk).is_ok(), "{node} on a zk world");
        let e = Scenario::from_toml(&pause(node)).unwrap_err();
        assert!(e.starts_with("faults:"), "{node} on an etcd world: {e}");
    }
}

/// The model's servers and clients alone, on a madsim runtime of their own.
mod model {
    use fencelab::clock::NodeClock;
    use fencelab::zk::model::{self, ModelZk, ZkNode};
    use fencelab::zk::{CreateMode, Fired, Zk};
    use madsim::net::NetSim;
    use madsim::runtime::{Handle, Runtime};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

    const SERVER: &str = "10.0.0.41:2181";
    const T_MS: u64 = 4000;
    const TICK_MS: u64 = 2000;

    fn server(handle: &Handle, origin: Instant) -> (Arc<ZkNode>, madsim::runtime::NodeHandle) {
        let node = Arc::new(ZkNode::new(
            model::Config::default(),
            NodeClock::perfect(origin),
        ));
        let addr: SocketAddr = SERVER.parse().unwrap();
        let h = model::node(handle, "zk1", addr, node.clone());
        (node, h)
    }

    async fn session(origin: Instant, seed: u64) -> ModelZk {
        let servers = vec![SERVER.parse().unwrap()];
        ModelZk::connect(servers, T_MS, NodeClock::perfect(origin), seed, None)
            .await
            .unwrap()
    }

    /// A holder creates an ephemeral and falls silent at once (its node cut off from the
    /// network); a watcher's `NodeDeleted` comes between T and T + tick after the create's
    /// answer, give or take the network's latency.
    fn expiry_latency_ms(seed: u64, offset_ms: u64) -> u64 {
        let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
        rt.block_on(async move {
            let handle = Handle::current();
            let origin = Instant::now();
            let _server = server(&handle, origin);
            let holder = handle
                .create_node()
                .name("a")
                .ip("10.0.1.1".parse().unwrap())
                .build();
            let watcher = handle
                .create_node()
                .name("b")
                .ip("10.0.1.2".parse().unwrap())
                .build();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let holder_id = holder.id();
            holder.spawn(async move {
                tokio::time::sleep(Duration::from_millis(offset_ms)).await;
                let a = session(origin, seed).await;
                a.create("/x", b"", CreateMode::Ephemeral).await.unwrap();
                NetSim::current().clog_node(holder_id);
                let _ = tx.send(Instant::now());
                std::future::pending::<()>().await;
            });
            let deleted = watcher
                .spawn(async move {
                    let b = session(origin, seed + 1).await;
                    let last = rx.await.unwrap();
                    let (stat, watch) = b.exists_watch("/x").await.unwrap();
                    assert!(stat.is_some(), "the ephemeral exists");
                    assert_eq!(watch.await, Fired::NodeDeleted);
                    Instant::now() - last
                })
                .await
                .unwrap();
            deleted.as_millis() as u64
        })
    }

    #[test]
    fn a_silent_session_expires_between_t_and_t_plus_a_tick() {
        let mut seen = Vec::new();
        for seed in 0..24u64 {
            let ms = expiry_latency_ms(seed, seed * 137 % TICK_MS);
            // The create's answer left the server up to 10 ms before the client read it; the
            // event takes up to 10 ms to arrive.
            assert!(
                (T_MS - 10..=T_MS + TICK_MS + 10).contains(&ms),
                "seed {seed}: NodeDeleted {ms} ms after the last packet"
            );
            seen.push(ms);
        }
        seen.sort();
        eprintln!(
            "expiry latency, 24 trials: min {} median {} max {} ms",
            seen[0], seen[12], seen[23]
        );
        // The buckets spread the expiries over the tick, not all at one end.
        assert!(seen[23] - seen[0] > TICK_MS / 2, "{seen:?}");
    }

    /// No panic in a server on bad input: a message that is not a packet and a request
    /// before the connect are dropped, and bad requests get ZooKeeper's errors; the server
    /// goes on serving.
    #[test]
    fn bad_input_gets_errors_not_panics() {
        use fencelab::zk::model::wire::{Request, ToClient, ToServer};
        use fencelab::zk::{Op, ZkError};
        let rt = Runtime::with_seed_and_config(5, madsim::Config::default());
        rt.block_on(async move {
            let handle = Handle::current();
            let origin = Instant::now();
            let (state, _server) = server(&handle, origin);
            let client = handle
                .create_node()
                .name("a")
                .ip("10.0.1.1".parse().unwrap())
                .build();
            client
                .spawn(async move {
                    let ep = madsim::net::Endpoint::bind("0.0.0.0:0").await.unwrap();
                    let (tx, mut rx) = ep.connect1(SERVER.parse().unwrap()).await.unwrap();
                    tx.send(Box::new("not a packet".to_string())).await.unwrap();
                    let early = ToServer::Request {
                        xid: 1,
                        body: Request::GetChildren { path: "/".into() },
                    };
                    tx.send(Box::new(early)).await.unwrap();
                    let hello = ToServer::Connect {
                        session_id: 0,
                        timeout_ms: T_MS,
                    };
                    tx.send(Box::new(hello)).await.unwrap();
                    let first = rx.recv().await.unwrap().downcast::<ToClient>().unwrap();
                    assert!(matches!(*first, ToClient::Connected { .. }), "{first:?}");
                    // An unknown session's reconnect is told it expired.
                    let (tx2, mut rx2) = ep.connect1(SERVER.parse().unwrap()).await.unwrap();
                    let stale = ToServer::Connect {
                        session_id: 0x0100_0000_0000_0999,
                        timeout_ms: T_MS,
                    };
                    tx2.send(Box::new(stale)).await.unwrap();
                    let told = rx2.recv().await.unwrap().downcast::<ToClient>().unwrap();
                    assert_eq!(*told, ToClient::Expired);
                    let a = session(origin, 5).await;
                    for bad in ["", "no-slash", "/a//b", "/a/", "/a/./b"] {
                        let e = a
                            .create(bad, b"", CreateMode::Persistent)
                            .await
                            .unwrap_err();
                        assert_eq!(e, ZkError::BadArguments, "{bad:?}");
                    }
                    let e = a
                        .create("/missing/child", b"", CreateMode::Persistent)
                        .await
                        .unwrap_err();
                    assert_eq!(e, ZkError::NoNode);
                    let e = a.delete("/missing", -1).await.unwrap_err();
                    assert_eq!(e, ZkError::NoNode);
                    a.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
                    let e = a
                        .create("/e/c", b"", CreateMode::Persistent)
                        .await
                        .unwrap_err();
                    assert_eq!(e, ZkError::NoChildrenForEphemerals);
                    let e = a.set_data("/e", b"x", 7).await.unwrap_err();
                    assert_eq!(e, ZkError::BadVersion);
                    let ops: Vec<Op> = (0..100)
                        .map(|_| Op::Check {
                            path: "/e".into(),
                            version: -1,
                        })
                        .collect();
                    assert!(
                        a.multi(&ops).await.is_err(),
                        "a multi past its bound is refused"
                    );
                    // Still serving.
                    assert_eq!(a.get_children("/").await.unwrap(), vec!["e".to_string()]);
                })
                .await
                .unwrap();
            state.with_server(|s| s.check_invariants());
        });
    }

    /// A server paused (SIGSTOP) for 3T with a silent client expires nothing while paused,
    /// and expires the session within a tick of its resume (the tracker catches up).
    #[test]
    fn a_paused_server_expires_nothing_while_paused() {
        let rt = Runtime::with_seed_and_config(3, madsim::Config::default());
        rt.block_on(async move {
            let handle = Handle::current();
            let origin = Instant::now();
            let (state, server) = server(&handle, origin);
            let holder = handle
                .create_node()
                .name("a")
                .ip("10.0.1.1".parse().unwrap())
                .build();
            let holder_id = holder.id();
            holder.spawn(async move {
                let a = session(origin, 3).await;
                a.create("/x", b"", CreateMode::Ephemeral).await.unwrap();
                std::future::pending::<()>().await;
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(state.with_server(|s| s
                .tree()
                .get_children("/")
                .unwrap()
                .contains(&"x".to_string())));
            handle.pause(server.id());
            handle.pause(holder_id);
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(T_MS / 4)).await;
                assert_eq!(state.expired(), 0, "a paused server expired a session");
            }
            handle.resume(server.id());
            tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
            assert_eq!(state.expired(), 1, "the silent session expires on resume");
            assert!(state.with_server(|s| s.tree().get_children("/").unwrap().is_empty()));
        });
    }
}

/// `compare` on ZooKeeper: the same fault families as etcd's and Redlock's (those not tied to
/// another service), the czxid token never violates, and the rows tied to ZooKeeper run.
#[test]
fn compare_rows_on_zookeeper() {
    use fencelab::{compare, schemes};
    let base = Scenario::zk();
    let fitting: Vec<&str> = schemes::fitting(&base).iter().map(|s| s.name).collect();
    for name in ["none", "token", "seq-token", "seq-token-writes"] {
        assert!(fitting.contains(&name), "{name} runs on zk: {fitting:?}");
    }
    for name in ["sequencer", "lock-delay", "incr-token"] {
        assert!(!fitting.contains(&name), "{name} is another service's");
    }
    let picked = ["none", "token", "seq-token"].map(|n| schemes::by_name(n).unwrap());
    let families = compare::families_for(fencelab::lock::ServiceKind::Zk);
    let names: Vec<&str> = families.iter().map(|f| f.name).collect();
    assert!(
        names.contains(&"zk-stall") && !names.contains(&"etcd-stall"),
        "{names:?}"
    );
    let cmp = compare::compare(&base, &picked, &families, 0..20, 2, &|| {}).unwrap();
    for f in &families {
        let none = cmp.cell("none", f.name).unwrap();
        let token = cmp.cell("token", f.name).unwrap();
        let seq = cmp.cell("seq-token", f.name).unwrap();
        eprintln!(
            "{:>14}: none {}/{}, token {}/{}, seq-token {}/{}",
            f.name, none.k, none.n, token.k, token.n, seq.k, seq.n
        );
        assert_eq!(token.k, 0, "the czxid token violates under {}", f.name);
    }
}

/// A ZooKeeper world is its seed: the same seed gives the same history, on this thread and
/// on another (tokio's unbiased `select!` would draw from a per-thread RNG outside madsim's).
#[test]
fn a_zk_run_is_its_seed() {
    let s = Scenario::preset("zk").unwrap();
    for seed in [0u64, 1, 3] {
        let plan = fencelab::nemesis::draw(&s, seed);
        let here = world::run(&s, &plan, Fencing::None, seed).history_hash();
        let again = world::run(&s, &plan, Fencing::None, seed).history_hash();
        let (s2, plan2) = (s.clone(), plan.clone());
        let there =
            std::thread::spawn(move || world::run(&s2, &plan2, Fencing::None, seed).history_hash())
                .join()
                .unwrap();
        assert_eq!((here, here), (again, there), "seed {seed}");
    }
}
