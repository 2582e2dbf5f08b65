//! Jepsen's etcd lock-set test as a fencelab scenario (`sims/scenarios/jepsen-lock-set.toml`,
//! 5 members, every member paused; `-leader.toml`, the leader alone): the set checker finds
//! lost adds where etcd 3.4's Lock API grants an expired waiter (issue 11456), far fewer on
//! 3.5, far fewer when only the leader is paused, none without faults. On ZooKeeper with
//! Curator's lock (`jepsen-zk-lock-set.toml`, one server paused; `jepsen-zk5-lock-set*.toml`, an
//! ensemble of 5 with every server or the leader paused), none at all.

#![cfg(madsim)]

use fencelab::etcd::Version;
use fencelab::scenario::Scenario;
use fencelab::storage::Fencing;
use fencelab::sweep;
use fencelab::workload::set::{ADDS_ACKED, ADDS_LOST};

#[path = "../src/global_alloc.rs"]
mod global_alloc;

const SEEDS: u64 = 100;

fn jepsen(version: Version) -> Scenario {
    from_file("sims/scenarios/jepsen-lock-set.toml", version)
}

fn from_file(path: &str, version: Version) -> Scenario {
    let text = std::fs::read_to_string(path).expect("scenario");
    let s = Scenario::from_toml(&text).expect("valid");
    s.validate().expect("valid");
    Scenario {
        etcd_version: version,
        ..s
    }
}

/// (acknowledged adds, lost adds, violating seeds) over `SEEDS` seeds.
fn adds(scenario: &Scenario, fencing: Fencing) -> (u64, u64, u64) {
    let results = sweep::sweep(scenario, fencing, 0..SEEDS, sweep::default_jobs(), &|_| {});
    let sum = |k: &str| {
        results
            .iter()
            .map(|r| r.tallies.get(k).copied().unwrap_or(0))
            .sum()
    };
    let violating = results.iter().filter(|r| r.violates).count() as u64;
    (sum(ADDS_ACKED), sum(ADDS_LOST), violating)
}

#[test]
fn etcd_3_4_loses_acknowledged_adds_and_3_5_far_fewer() {
    let (acked_34, lost_34, _) = adds(&jepsen(Version::V3_4), Fencing::None);
    let (acked_35, lost_35, _) = adds(&jepsen(Version::V3_5), Fencing::None);
    assert!(acked_34 > 1000 && acked_35 > 1000, "{acked_34} {acked_35}");
    // More than 10% of acknowledged adds lost on 3.4, and at least ten times fewer on 3.5.
    assert!(lost_34 * 10 > acked_34, "3.4: {lost_34} of {acked_34}");
    assert!(
        lost_35 * 10 < lost_34,
        "3.5: {lost_35} against 3.4's {lost_34}"
    );
}

/// The contrib/lock example's own lock, `concurrency.Mutex` over plain KV, follows its client
/// library: 3.4's does not re-read its key after waiting (issue 11456 on the client side) and
/// loses adds as the Lock API does; 3.5's does (PR 11408) and loses none.
#[test]
fn kv_mutex_on_3_4_loses_adds_as_the_lock_api_does_and_on_3_5_none() {
    let kv = |version| Scenario {
        lock_method: fencelab::lock::LockMethod::KvMutex,
        ..jepsen(version)
    };
    let (acked_34, lost_34, _) = adds(&kv(Version::V3_4), Fencing::None);
    let (acked_35, lost_35, violating_35) = adds(&kv(Version::V3_5), Fencing::None);
    println!(
        "kv-mutex, {SEEDS} seeds: 3.4 lost {lost_34} of {acked_34}, 3.5 {lost_35} of {acked_35}"
    );
    assert!(acked_34 > 1000 && acked_35 > 1000, "{acked_34} {acked_35}");
    assert!(lost_34 * 10 > acked_34, "3.4: {lost_34} of {acked_34}");
    assert_eq!((lost_35, violating_35), (0, 0));
}

#[test]
fn tokens_from_3_4s_lock_api_can_tie_and_let_an_add_through() {
    // The Lock API's token is its answer's revision: on 3.4 the expired waiter and the true
    // next holder can read the same one, and a fence that accepts an equal token lets both
    // write. On 3.5 the expired waiter is refused and the token fence loses nothing.
    let (_, lost_34, _) = adds(&jepsen(Version::V3_4), Fencing::Token);
    assert!(lost_34 > 0, "3.4 with tokens: {lost_34}");
    let (acked_35, lost_35, violating_35) = adds(&jepsen(Version::V3_5), Fencing::Token);
    assert_eq!(
        (lost_35, violating_35),
        (0, 0),
        "3.5 with tokens, {acked_35} adds"
    );
}

#[test]
fn pausing_the_leader_alone_loses_far_fewer_adds_than_pausing_every_member() {
    // Every member paused: every lease runs out, the leader revokes them on resume, and 3.4's
    // Lock API grants expired waiters. The leader alone paused: another member is elected and
    // extends every lease (Promote), so only clients whose keepalives miss the TTL while they
    // move away from the paused member lose theirs.
    let leader = |v| from_file("sims/scenarios/jepsen-lock-set-leader.toml", v);
    let (acked_all, lost_all, _) = adds(&jepsen(Version::V3_4), Fencing::None);
    let (acked_leader, lost_leader, _) = adds(&leader(Version::V3_4), Fencing::None);
    assert!(acked_all > 1000 && acked_leader > 1000);
    assert!(
        lost_leader * 5 < lost_all,
        "leader pauses {lost_leader} of {acked_leader}, all-member pauses {lost_all} of {acked_all}"
    );
    // The failover's lost adds are real (unfenced, on 3.5 too), and tokens stop them on 3.5.
    let (_, lost_35, _) = adds(&leader(Version::V3_5), Fencing::None);
    let (_, lost_35_token, violating_35_token) = adds(&leader(Version::V3_5), Fencing::Token);
    assert!(lost_35 > 0, "no add lost to failover");
    assert_eq!((lost_35_token, violating_35_token), (0, 0));
}

#[test]
fn without_the_pauses_no_add_is_lost() {
    let quiet = Scenario {
        faults: Vec::new(),
        ..jepsen(Version::V3_4)
    };
    let (acked, lost, violating) = adds(&quiet, Fencing::None);
    assert!(acked > 1000, "{acked}");
    assert_eq!((lost, violating), (0, 0));
}

#[test]
fn writes_guarded_by_the_lock_key_in_etcd_lose_no_add_even_on_3_4() {
    // The expired waiter that 3.4's Lock API grants has no lock key left (its lease was
    // revoked), so its guarded Txn fails. Every acknowledged add is in the set etcd holds at
    // the end, which also shows that the final read reached etcd (a missed read would lose
    // every add).
    for version in [Version::V3_4, Version::V3_5] {
        let s = from_file("sims/scenarios/jepsen-lock-etcd-set.toml", version);
        let (acked, lost, violating) = adds(&s, Fencing::None);
        assert!(acked > 1000, "{version:?}: {acked}");
        assert_eq!((lost, violating), (0, 0), "{version:?}: {lost} of {acked}");
    }
}

#[test]
fn the_etcd_set_check_finds_an_add_missing_from_the_final_read() {
    use fencelab::workload::{set::elements, EtcdSet, Workload};
    let s = from_file("sims/scenarios/jepsen-lock-etcd-set.toml", Version::V3_4);
    let run = fencelab::world::Builder::new(s).seed(1).run();
    let mut history = run.history.clone();
    let entry = history
        .final_entries
        .get_mut("etcd:set")
        .expect("the final read");
    let all: Vec<String> = elements(&entry.val).iter().map(|e| e.to_string()).collect();
    assert!(all.len() > 5, "{all:?}");
    // Drop the first element, as a lost write would.
    entry.val = all[1..].join(",");
    let f = EtcdSet.check(&history);
    assert_eq!(f.tallies.get(ADDS_LOST), Some(&1), "{:?}", f.found);
    assert!(f.found[0].detail.contains(&all[0]));
    assert!(f.violates());
}

/// The same lock-set test on ZooKeeper: one standalone server paused 5 s in every 10 s
/// (`jepsen-zk-lock-set.toml`), and an ensemble of 5 with every server paused
/// (`jepsen-zk5-lock-set.toml`) or its leader alone (`jepsen-zk5-lock-set-leader.toml`,
/// shorter than `syncLimit`, so it stays leader); Curator's lock, a 4 s session. The sessions
/// expire on every resume (the leader's tracker runs before any follower's touches reach it),
/// yet no acknowledged add is lost, fenced or not. A holder calls itself SUSPENDED 2T/3 =
/// 2.67 s into a pause, after any 0-2 s critical section has ended, and a paused leader
/// commits nothing, so it grants nobody the lock; by the time it grants the next waiter, the
/// old holder's own client has learnt of the expiry on reconnect.
#[test]
fn zookeeper_with_curators_lock_loses_no_add_when_its_servers_pause() {
    for file in [
        "jepsen-zk-lock-set.toml",
        "jepsen-zk5-lock-set.toml",
        "jepsen-zk5-lock-set-leader.toml",
    ] {
        let s = from_file(&format!("sims/scenarios/{file}"), Version::default());
        let quiet = Scenario {
            faults: Vec::new(),
            ..s.clone()
        };
        let (acked_quiet, _, _) = adds(&quiet, Fencing::None);
        for fencing in [Fencing::None, Fencing::TokenWrites, Fencing::Token] {
            let (acked, lost, violating) = adds(&s, fencing);
            println!("{file}, {SEEDS} seeds, {fencing}: lost {lost} of {acked}");
            assert!(acked > 1000, "{file}, {fencing}: {acked}");
            assert_eq!(
                (lost, violating),
                (0, 0),
                "{file}, {fencing}: {lost} of {acked}"
            );
            // The pauses bite: each costs the clients the lock service and their sessions.
            assert!(
                acked * 10 < acked_quiet * 9,
                "{file}: {acked} against {acked_quiet}"
            );
        }
    }
}
