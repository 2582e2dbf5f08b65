//! Refactors keep histories: the combined history hash of 1,000 seeds per fencing policy (and
//! of smaller sets for the other lock recipes, workloads and presets, and ZooKeeper's last), recorded before the
//! fence, recipe and workload traits replaced the enums (issue 13), must not change; those run
//! one etcd member. The last cases run the cluster (issue 12), recorded when it was added.
//!
//! Rewrite `sims/golden/history-hashes.txt` with `FENCELAB_GOLDEN_WRITE=1` only when a change
//! of behaviour is meant, and say so in the commit. The Redlock lines come twice: hashed
//! without the Redis nodes' own events (as recorded before the nodes recorded them), and whole.

#![cfg(madsim)]

use fencelab::lock::LockMethod;
use fencelab::scenario::{Scenario, WorkloadKind};
use fencelab::storage::Fencing;
use fencelab::sweep;

#[path = "../src/global_alloc.rs"]
mod global_alloc;

const GOLDEN: &str = "sims/golden/history-hashes.txt";

/// FNV-1a over the seeds' hashes in seed order: one number per case.
fn combined(hashes: impl Iterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in hashes {
        for b in x.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The standard scenario on one etcd member: these hashes were recorded before etcd became a
/// cluster (issue 12), and one member must still give exactly those histories.
fn one_member() -> Scenario {
    Scenario {
        etcd_members: 1,
        ..Scenario::standard()
    }
}

/// Every case: its name, scenario, policy and number of seeds.
fn cases() -> Vec<(String, Scenario, Fencing, u64)> {
    let mut out = Vec::new();
    for f in Fencing::ALL {
        out.push((format!("standard {f}"), one_member(), f, 1000));
    }
    for method in [LockMethod::KvMutex, LockMethod::LockApi] {
        for f in [Fencing::None, Fencing::Token] {
            let s = Scenario {
                lock_method: method,
                ..one_member()
            };
            out.push((format!("standard {method:?} {f}"), s, f, 200));
        }
    }
    for f in [Fencing::None, Fencing::LeaseId] {
        let s = Scenario {
            workload: WorkloadKind::Single,
            ..one_member()
        };
        out.push((format!("single {f}"), s, f, 200));
    }
    let sim_server = Scenario {
        etcd: fencelab::etcd::Backend::Madsim,
        ..one_member()
    };
    out.push(("SimServer token".into(), sim_server, Fencing::Token, 200));
    for preset in ["long-critical", "local-check-pauses"] {
        let s = Scenario {
            etcd_members: 1,
            ..Scenario::preset(preset).expect("preset")
        };
        out.push((
            format!("{preset} token-writes"),
            s,
            Fencing::TokenWrites,
            200,
        ));
    }
    // The cluster (issue 12): its histories from the commit that added these lines on.
    for f in [Fencing::None, Fencing::Token] {
        let s = Scenario::standard();
        assert_eq!(s.etcd_members, 3);
        out.push((format!("standard 3 members {f}"), s, f, 300));
    }
    let leader_pauses = Scenario {
        etcd_members: 5,
        nemesis: fencelab::nemesis::NemesisConfig {
            leader_pauses_max: 2,
            ..fencelab::nemesis::NemesisConfig::standard()
        },
        ..Scenario::standard()
    };
    out.push((
        "5 members, leader pauses, none".into(),
        leader_pauses,
        Fencing::None,
        200,
    ));
    // Redlock on five Redis nodes (issue 19): its histories from the commit that added it on,
    // hashed without the Redis nodes' own events (see `without_node_events`).
    let redlock = Scenario::preset("redlock").expect("preset");
    for f in [Fencing::None, Fencing::Token] {
        out.push((format!("redlock {f}"), redlock.clone(), f, 200));
    }
    out
}

/// The Redlock cases' histories whole: with the Redis nodes' events (grants, refusals,
/// expiries, clock steps, boots), from the commit that recorded them on.
fn whole_redlock_cases() -> Vec<(String, Scenario, Fencing, u64)> {
    let redlock = Scenario::preset("redlock").expect("preset");
    [Fencing::None, Fencing::Token]
        .into_iter()
        .map(|f| {
            let name = format!("redlock {f}, with the Redis nodes' events");
            (name, redlock.clone(), f, 200)
        })
        .collect()
}

/// ZooKeeper with Curator's mutex (issue 20): the zk preset's histories on one standalone
/// server (the preset itself moved to 3 servers later, so these lines ask for 1), re-recorded
/// once, on purpose, when the recipe's protected-mode search was made to last through
/// `SessionExpired` as Curator's `RetryLoop` does; then on the preset's ensemble of 3, from the
/// commit that made partitions between servers cut a follower from its leader (the nemesis
/// drew such partitions before, and the model ignored them).
fn zk_cases() -> Vec<(String, Scenario, Fencing, u64)> {
    let mut standalone = Scenario::preset("zk").expect("preset");
    standalone.zk.servers = 1;
    let ensemble = Scenario::preset("zk").expect("preset");
    assert_eq!(ensemble.zk.servers, 3, "the preset's ensemble");
    let fencings = [Fencing::None, Fencing::Token];
    let one = fencings.map(|f| (format!("zk {f}"), standalone.clone(), f, 200));
    let three = fencings.map(|f| (format!("zk 3 servers {f}"), ensemble.clone(), f, 200));
    one.into_iter().chain(three).collect()
}

/// A history's hash with the Redis nodes' own events left out: what it was before the nodes
/// recorded them. Equal to the line recorded then, it shows that recording them changed no
/// latency, poll order or outcome (they add no wake-up and draw nothing).
fn without_node_events(mut history: fencelab::history::History) -> u64 {
    history
        .events
        .retain(|e| !fencelab::redlock_story::is_redis_event(e));
    history.hash()
}

#[test]
fn histories_are_those_recorded_before_the_traits() {
    let jobs = sweep::default_jobs();
    let mut lines = Vec::new();
    let whole = whole_redlock_cases();
    let whole_names: Vec<String> = whole.iter().map(|c| c.0.clone()).collect();
    for (name, scenario, fencing, seeds) in cases().into_iter().chain(whole).chain(zk_cases()) {
        let redlock = scenario.service == fencelab::lock::ServiceKind::Redlock;
        let strip = redlock && !whole_names.contains(&name);
        let results = sweep::map_seeds(0..seeds, jobs, |seed| {
            let builder = fencelab::world::Builder::new(scenario.clone()).fencing(fencing);
            let run = builder.run_seed(seed);
            match strip {
                true => without_node_events(run.history),
                false => run.history_hash(),
            }
        });
        lines.push(format!(
            "{:016x} {seeds} seeds {name}",
            combined(results.into_iter())
        ));
    }
    let text = lines.join("\n") + "\n";
    if std::env::var_os("FENCELAB_GOLDEN_WRITE").is_some() {
        std::fs::write(GOLDEN, &text).expect("write golden hashes");
        return;
    }
    let want = std::fs::read_to_string(GOLDEN).expect("golden hashes committed");
    for (got, want) in text.lines().zip(want.lines()) {
        assert_eq!(got, want, "history hashes changed");
    }
    assert_eq!(text.lines().count(), want.lines().count(), "cases changed");
}
