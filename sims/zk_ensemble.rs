//! ZooKeeper's ensemble of 3 or 5 servers (issue 20): a follower's clients kept alive by the
//! leader's pings, a leader killed or paused, the election, and the ensemble in a world with
//! the `zk:leader` role.
#![cfg(madsim)]

#[path = "../src/global_alloc.rs"]
mod global_alloc;
#[path = "shared/scenario_files.rs"]
mod scenario_files;
use scenario_files::{grants, load};

use fencelab::clock::NodeClock;
use fencelab::fault::FaultPlan;
use fencelab::history::EventKind;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::world;
use fencelab::zk::model::{self, ModelZk, ZkNode};
use fencelab::zk::{CreateMode, SessionState, Zk};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const T_MS: u64 = 4000;
const TICK_MS: u64 = 2000;

fn addr(i: usize) -> SocketAddr {
    format!("10.0.0.{}:2181", 41 + i).parse().unwrap()
}

/// An ensemble of `n` servers on perfect clocks, led by the last.
fn ensemble(
    handle: &Handle,
    origin: Instant,
    n: usize,
    seed: u64,
) -> Vec<(Arc<ZkNode>, NodeHandle)> {
    let cfgs = (0..n)
        .map(|i| {
            let mut c = model::Config::default();
            c.sessions.server_id = (i + 1) as u8;
            c
        })
        .collect();
    let clocks = (0..n).map(|_| NodeClock::perfect(origin)).collect();
    ZkNode::ensemble(cfgs, clocks, seed)
        .into_iter()
        .enumerate()
        .map(|(i, z)| {
            let z = Arc::new(z);
            let h = model::node(handle, &format!("zk{}", i + 1), addr(i), z.clone());
            (z, h)
        })
        .collect()
}

async fn session(origin: Instant, servers: Vec<SocketAddr>, seed: u64) -> ModelZk {
    ModelZk::connect(servers, T_MS, NodeClock::perfect(origin), seed, None)
        .await
        .unwrap()
}

fn client(handle: &Handle, name: &str, ip: &str) -> NodeHandle {
    handle
        .create_node()
        .name(name)
        .ip(ip.parse().unwrap())
        .build()
}

/// The leader killed 1000 ms after a client fell silent: ms from the kill to the new leader,
/// and from the new leader to the silent session's node leaving the committed tree.
fn leader_killed(seed: u64) -> (u64, u64) {
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(async move {
        let handle = Handle::current();
        let origin = Instant::now();
        let servers = ensemble(&handle, origin, 3, seed);
        let holder = client(&handle, "a", "10.0.1.1");
        let holder_id = holder.id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        holder.spawn(async move {
            let a = session(origin, vec![addr(0)], seed).await;
            a.create("/x", b"", CreateMode::Ephemeral).await.unwrap();
            NetSim::current().clog_node(holder_id);
            let _ = tx.send(());
            std::future::pending::<()>().await;
        });
        rx.await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (old, old_node) = &servers[2];
        assert!(old.leads(), "the highest myid leads first");
        handle.kill(old_node.id());
        old.set_up(false, true);
        let killed = Instant::now();
        let mut elected = None;
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let leaders = servers.iter().filter(|(z, _)| z.leads()).count();
            assert!(leaders <= 1, "{leaders} leaders at once");
            if leaders == 1 {
                elected = Some(Instant::now());
                break;
            }
        }
        let elected = elected.expect("a new leader within a second");
        assert!(servers[1].0.leads(), "the highest myid that is up wins");
        assert_eq!(servers[1].0.epoch(), 2);
        // The session's end as the servers see it: its ephemeral gone from the committed tree
        // (the real probe reads it from another session's `NodeDeleted`, 10 ms later at most).
        let gone = |z: &ZkNode| z.with_server(|s| s.tree().get_children("/").unwrap().is_empty());
        let mut deleted = None;
        for _ in 0..(2 * (T_MS + TICK_MS)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if gone(&servers[0].0) {
                deleted = Some(Instant::now());
                break;
            }
        }
        let deleted = deleted.expect("the silent session ends");
        (
            (elected - killed).as_millis() as u64,
            (deleted - elected).as_millis() as u64,
        )
    })
}

/// The real ensemble (`sims/calibration/zk-real.json`): the new leader serving 379–654 ms after
/// the kill; the silent session ended 4026–5838 ms after that: no sooner than the new
/// leader's start plus T, because its `SessionTrackerImpl` re-tracks every session.
#[test]
fn a_killed_leaders_silent_session_ends_no_sooner_than_the_new_leader_plus_t() {
    let (mut elections, mut ends) = (Vec::new(), Vec::new());
    for seed in 0..12u64 {
        let (elected_ms, ended_ms) = leader_killed(seed);
        assert!(
            (380..=660).contains(&elected_ms),
            "seed {seed}: new leader after {elected_ms} ms"
        );
        assert!(
            (T_MS..=T_MS + TICK_MS).contains(&ended_ms),
            "seed {seed}: the session ended {ended_ms} ms after the new leader"
        );
        elections.push(elected_ms);
        ends.push(ended_ms);
    }
    elections.sort();
    ends.sort();
    eprintln!(
        "12 leader kills: new leader {}..{} ms after the kill; session ended {}..{} ms after the new leader",
        elections[0], elections[11], ends[0], ends[11]
    );
}

/// A client on a follower pings that follower only; the leader touches the session from the
/// follower's touch table every tick/2, so it lives through 5T. A silent one on the same
/// follower is expired by the leader.
#[test]
fn a_followers_clients_keep_their_sessions_through_forwarding() {
    let rt = Runtime::with_seed_and_config(11, madsim::Config::default());
    rt.block_on(async move {
        let handle = Handle::current();
        let origin = Instant::now();
        let servers = ensemble(&handle, origin, 5, 11);
        assert!(servers[4].0.leads() && !servers[0].0.leads());
        let (live, silent) = (
            client(&handle, "a", "10.0.1.1"),
            client(&handle, "b", "10.0.1.2"),
        );
        let silent_id = silent.id();
        silent.spawn(async move {
            let s = session(origin, vec![addr(0)], 2).await;
            s.create("/gone", b"", CreateMode::Ephemeral).await.unwrap();
            NetSim::current().clog_node(silent_id);
            std::future::pending::<()>().await;
        });
        let state = live
            .spawn(async move {
                let a = session(origin, vec![addr(0)], 1).await;
                a.create("/kept", b"", CreateMode::Ephemeral).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5 * T_MS)).await;
                assert_eq!(a.get_children("/").await.unwrap(), vec!["kept".to_string()]);
                a.state()
            })
            .await
            .unwrap();
        assert_eq!(state, SessionState::Connected);
        assert_eq!(servers[0].0.expired(), 1, "the silent session, only");
        servers[0].0.with_server(|s| s.check_invariants());
    });
}

/// A leader paused for 2T (short of `syncLimit` ticks, so its followers keep it) expires
/// nothing while paused; on resume it expires the silent session within a tick. Paused past
/// `syncLimit` ticks, it is replaced, and the new leader gives the session a full T.
#[test]
fn a_paused_leader_expires_nothing_and_is_replaced_past_sync_limit() {
    for (pause_ms, replaced) in [(2 * T_MS, false), (12_000, true)] {
        let rt = Runtime::with_seed_and_config(3, madsim::Config::default());
        rt.block_on(async move {
            let handle = Handle::current();
            let origin = Instant::now();
            let servers = ensemble(&handle, origin, 3, 3);
            let holder = client(&handle, "a", "10.0.1.1");
            let holder_id = holder.id();
            holder.spawn(async move {
                let a = session(origin, vec![addr(0)], 3).await;
                a.create("/x", b"", CreateMode::Ephemeral).await.unwrap();
                NetSim::current().clog_node(holder_id);
                std::future::pending::<()>().await;
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (leader, leader_node) = &servers[2];
            handle.pause(leader_node.id());
            leader.set_up(false, false);
            let paused = Instant::now();
            while Instant::now() - paused < Duration::from_millis(pause_ms) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let led = servers.iter().filter(|(z, _)| z.leads()).count();
                assert!(led <= 1, "one leader at a time");
                if !servers[1].0.leads() {
                    assert_eq!(leader.expired(), 0, "a paused leader expired a session");
                }
            }
            assert_eq!(servers[1].0.leads(), replaced, "pause of {pause_ms} ms");
            handle.resume(leader_node.id());
            leader.set_up(true, false);
            tokio::time::sleep(Duration::from_millis(TICK_MS + 100)).await;
            match replaced {
                false => assert_eq!(leader.expired(), 1, "expired on resume"),
                // Re-tracked with a full T at the election (10 s + 380..650 ms in).
                true => assert_eq!(leader.expired(), 0, "the new leader's full T runs"),
            }
            assert!(!replaced || !leader.leads(), "the old leader follows");
        });
    }
}

fn zk3() -> Scenario {
    let mut s = Scenario::zk();
    s.zk.servers = 3;
    s
}

/// `zk:leader` resolves when the fault strikes, and the note says who held it; the run goes
/// on after the election, and the czxid fence holds.
#[test]
fn a_world_with_three_servers_survives_its_leaders_crash() {
    let text = "service = \"zk\"\nlock_method = \"curator\"\n[zk]\nservers = 3\n\
        [[faults]]\nfault = \"crash\"\nnode = \"zk:leader\"\nat_ms = 3000\nrestart_after_ms = 2000\n";
    let s = Scenario::from_toml(text).unwrap();
    let plan = s.scripted_plan();
    let run = world::run(&s, &plan, Fencing::Token, 5);
    assert!(
        run.verdict.anomalies.is_empty(),
        "{:?}",
        run.verdict.anomalies
    );
    assert!(!run.verdict.violates(), "{:?}", run.verdict);
    let notes: Vec<String> = run
        .history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Fault { what } => Some(format!("{}: {what}", e.node)),
            _ => None,
        })
        .collect();
    eprintln!("{notes:#?}");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("zk3: crashed")
                && n.contains("(zk:leader; leader zk3 (epoch 1))")),
        "{notes:?}"
    );
    let acquired = run
        .history
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Acquired { .. }))
        .count();
    assert!(acquired > 5, "{acquired} acquisitions");
    let calm = world::run(&zk3(), &FaultPlan::default(), Fencing::None, 5);
    assert!(!calm.verdict.violates(), "{:?}", calm.verdict);
}

/// Bad ensemble sizes get one clear error each.
#[test]
fn bad_ensemble_sizes_are_refused() {
    let zk = |n: u32| {
        Scenario::from_toml(&format!(
            "service = \"zk\"\nlock_method = \"curator\"\n[zk]\nservers = {n}"
        ))
    };
    for n in [1, 3, 5] {
        assert!(zk(n).is_ok(), "{n} servers");
    }
    for (n, why) in [
        (0, "an ensemble has 1, 3 or 5"),
        (2, "an even"),
        (4, "an even"),
        (7, "an ensemble has 1, 3 or 5"),
    ] {
        let e = zk(n).unwrap_err();
        assert!(
            e.contains(&format!("zk.servers: {n}")) && e.contains(why),
            "{n}: {e}"
        );
    }
}

/// CURATOR-604 in a run (`zk-curator-604.toml`): a create whose answer is cut off, Curator's
/// LOST on the client's clock before the leader's bucket expires the old session, and a new
/// session whose protected-mode search takes the old session's node. With the switch on,
/// client 1 holds on a node its *first* session made, client 2 is granted while client 1
/// still holds, and client 1's write lands after client 2's: accepted unfenced, refused by
/// the czxid token. With the switch off the same seeds are safe, and on a standalone server
/// the window never opens.
#[test]
fn curator_604_double_locks_on_an_ensemble_and_only_with_its_switch() {
    let on = load("zk-curator-604");
    assert!(on.zk.curator_604 && on.zk.servers == 3);
    let plan = on.scripted_plan();
    let run = world::run(&on, &plan, Fencing::None, 0);
    assert!(run.verdict.anomalies.is_empty(), "{:?}", run.verdict);
    assert!(run.verdict.violates(), "{:?}", run.verdict);
    let h = &run.history;
    let (one, two) = (grants(h, "client1"), grants(h, "client2"));
    assert_eq!((one.len(), two.len()), (1, 1), "{one:?} {two:?}");
    let ((at1, lease1, token1), (at2, _, token2)) = (one[0], two[0]);
    let first_lease = h.events.iter().find_map(|e| match e.kind {
        EventKind::LeaseGranted { lease_id, .. } if e.node == "client1" => Some(lease_id),
        _ => None,
    });
    assert_ne!(
        Some(lease1),
        first_lease,
        "client 1 holds on a later session"
    );
    assert!(
        token1 < token2,
        "client 1's node is the older one: {token1} {token2}"
    );
    let critical_us = 3_000_000;
    assert!(
        at1 < at2 && at2 < at1 + critical_us,
        "both hold: {at1} {at2}"
    );
    eprintln!(
        "seed 0: client 1 holds at {} ms on its old session's node (czxid {token1}), client 2 at {} ms (czxid {token2})",
        at1 / 1000,
        at2 / 1000
    );
    let fenced = world::run(&on, &plan, Fencing::Token, 0);
    assert!(!fenced.verdict.violates(), "{:?}", fenced.verdict);
    const SEEDS: u64 = 60;
    let count = |s: &Scenario| {
        (0..SEEDS)
            .filter(|seed| {
                world::run(s, &plan, Fencing::None, *seed)
                    .verdict
                    .violates()
            })
            .count()
    };
    let off = Scenario {
        zk: fencelab::zk_settings::ZkSettings {
            curator_604: false,
            ..on.zk
        },
        ..on.clone()
    };
    let one_server = Scenario {
        zk: fencelab::zk_settings::ZkSettings {
            servers: 1,
            ..on.zk
        },
        ..on.clone()
    };
    let (with, without, standalone) = (count(&on), count(&off), count(&one_server));
    eprintln!("{SEEDS} seeds: {with} double-lock with the switch, {without} without, {standalone} on one server");
    assert!(with * 5 > SEEDS as usize, "{with} of {SEEDS}");
    assert_eq!((without, standalone), (0, 0));
}

/// A follower cut from its leader (`zk-cut-follower.toml`): it answers its holder's pings
/// itself, so the holder stays CONNECTED (Curator's advice to stop at SUSPENDED does not fire)
/// while the leader, which sees none of its touches, expires the session and grants the lock
/// to a client on another server; the holder's write lands after that client's. Unfenced it
/// is accepted, with the czxid token refused. Without the cut, no violation.
#[test]
fn a_follower_cut_from_its_leader_keeps_a_dead_session_connected() {
    let s = load("zk-cut-follower");
    let plan = s.scripted_plan();
    for seed in 1..=3 {
        let run = world::run(&s, &plan, Fencing::None, seed);
        assert!(run.verdict.anomalies.is_empty(), "{:?}", run.verdict);
        assert!(run.verdict.violates(), "seed {seed}: {:?}", run.verdict);
        let h = &run.history;
        let (one, two) = (grants(h, "client1"), grants(h, "client2"));
        assert_eq!((one.len(), two.len()), (1, 1), "{one:?} {two:?}");
        let suspended_before_write = h
            .events
            .iter()
            .any(|e| e.node == "client1" && matches!(e.kind, EventKind::LocalCheckRefused { .. }));
        assert!(!suspended_before_write, "client 1 saw nothing wrong");
        // The leader expired the session T..T + tick + tick/2 after the cut (its last touch
        // came with a ping before it), and client 2 took the lock then.
        let at2_ms = two[0].0 / 1000;
        assert!(
            (1_000 + T_MS..=1_000 + T_MS + TICK_MS + TICK_MS / 2 + 100).contains(&at2_ms),
            "seed {seed}: client 2 at {at2_ms} ms"
        );
        let fenced = world::run(&s, &plan, Fencing::Token, seed);
        assert!(!fenced.verdict.violates(), "{:?}", fenced.verdict);
    }
    let calm = world::run(&s, &FaultPlan::default(), Fencing::None, 1);
    assert!(!calm.verdict.violates(), "{:?}", calm.verdict);
}

/// A leader cut from both followers keeps no majority: it steps down after `syncLimit` ticks,
/// the followers, having heard nothing for as long, elect the highest `myid` among them, and
/// the old leader stays out until the partition heals; one leader at a time where the test
/// looks, and writes through the old leader are not answered meanwhile.
#[test]
fn a_leader_cut_from_its_majority_steps_down_and_the_majority_elects() {
    let rt = Runtime::with_seed_and_config(5, madsim::Config::default());
    rt.block_on(async move {
        let handle = Handle::current();
        let origin = Instant::now();
        let servers = ensemble(&handle, origin, 3, 5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = &servers[2].0;
        assert!(leader.leads());
        leader.set_link(0, false);
        leader.set_link(1, false);
        let cut = Instant::now();
        let sync_ms = 5 * TICK_MS;
        let mut new_leader_ms = None;
        while Instant::now() - cut < Duration::from_millis(sync_ms + 3_000) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let led: Vec<usize> = (0..3).filter(|i| servers[*i].0.leads()).collect();
            assert!(led.len() <= 1, "one leader at a time: {led:?}");
            let ms = (Instant::now() - cut).as_millis() as u64;
            if ms < sync_ms - TICK_MS {
                assert_eq!(led, vec![2], "{ms} ms: the old leader still leads");
            }
            if led == vec![1] && new_leader_ms.is_none() {
                new_leader_ms = Some(ms);
            }
        }
        let ms = new_leader_ms.expect("the majority elected zk2");
        eprintln!("leader cut from both followers: zk2 leads {ms} ms after the cut");
        assert!(
            (sync_ms - TICK_MS / 2..=sync_ms + TICK_MS + 700).contains(&ms),
            "{ms}"
        );
        assert!(!leader.leads() && servers[1].0.epoch() == 2);
        leader.set_link(0, true);
        leader.set_link(1, true);
        tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
        assert_eq!(servers[1].0.leader(), Some(1), "zk3 rejoins as a follower");
        assert!(!leader.is_cut());
    });
}
