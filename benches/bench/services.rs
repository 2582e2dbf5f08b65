//! The lock-service table: etcd's 3 members, Redlock's 5 Redis nodes and ZooKeeper on 1 and
//! on 3 servers, with the same clients, workload, duration, nemesis and fencing, measured
//! interleaved in one run so that the ratios to etcd hold on a noisy machine.

use super::{exchanges_per_seed, floor, http_floor, measure, median, model_floor, Floor};
use fencelab::lock::{LockMethod, ServiceKind};
use fencelab::scenario::Scenario;

/// Which lock service's one request prices a row's requests in its protocol floor.
#[derive(Debug, Clone, Copy)]
enum Service {
    Etcd,
    Redis,
    Zk,
}

/// One row of the table.
struct Row {
    name: &'static str,
    service: Service,
    scenario: Scenario,
    /// The row's machine-readable line's name and fields before `seeds_per_sec` (`None` for
    /// etcd, the reference).
    line: Option<&'static str>,
}

/// The rows: the standard scenario with only the lock service and its lock method changed.
fn rows(standard: &Scenario) -> Vec<Row> {
    let redlock = Scenario {
        service: ServiceKind::Redlock,
        lock_method: LockMethod::Redlock,
        ..standard.clone()
    };
    // The ZooKeeper rows are the `zk` preset as it is (the standard scenario on an ensemble of
    // 3, its nemesis the standard one with crashes of a server), and the same on one server.
    let zk3 = Scenario::preset("zk").expect("the zk preset");
    let standard_on_zk = Scenario {
        service: ServiceKind::Zk,
        lock_method: LockMethod::Curator,
        nemesis: fencelab::nemesis::NemesisConfig::zk(),
        ..standard.clone()
    };
    assert_eq!(zk3, standard_on_zk);
    assert_eq!(zk3.zk.servers, 3);
    let mut zk1 = zk3.clone();
    zk1.zk.servers = 1;
    vec![
        Row {
            name: "etcd, 3 members",
            service: Service::Etcd,
            scenario: standard.clone(),
            line: None,
        },
        Row {
            name: "Redlock, 5 Redis nodes",
            service: Service::Redis,
            scenario: redlock,
            line: Some("fencelab-bench-redlock"),
        },
        Row {
            name: "ZooKeeper, 1 server",
            service: Service::Zk,
            scenario: zk1,
            line: Some("fencelab-bench-zk servers=1"),
        },
        Row {
            name: "ZooKeeper, 3 servers",
            service: Service::Zk,
            scenario: zk3,
            line: Some("fencelab-bench-zk servers=3"),
        },
    ]
}

/// One Redis request through fencelab's model (its client's one connection to a model node):
/// Redlock's two calls, `SET NX PX` and the unlock script, alternately.
fn redis_floor(requests: u64) -> Floor {
    use fencelab::redis::{model, Redis};
    floor(
        requests,
        || async {
            let clock = fencelab::clock::NodeClock::perfect(tokio::time::Instant::now());
            let node = std::sync::Arc::new(model::Node::new(model::Config::defaults(), clock));
            let _ = model::serve("10.0.0.1:6379".parse().unwrap(), node).await;
        },
        move || async move {
            let redis = model::ModelRedis::new("10.0.0.1:6379".parse().unwrap());
            for i in 0..requests {
                let key = fencelab::lock::redlock::REDLOCK_KEY;
                if i % 2 == 0 {
                    redis.set_nx_px(key, "client1:0", 2000).await.unwrap();
                } else {
                    redis.del_if_eq(key, "client1:0").await.unwrap();
                }
            }
        },
    )
}

/// One ZooKeeper request through fencelab's model (one session on one standalone server):
/// the lock node's two writes, an ephemeral `create` and its `delete`, alternately. An
/// ensemble's write costs the same messages: the model sends no Zab messages between servers.
fn zk_floor(requests: u64) -> Floor {
    use fencelab::zk::model::{self, ModelZk, ZkNode};
    use fencelab::zk::{CreateMode, Zk};
    let addr: std::net::SocketAddr = "10.0.0.1:2181".parse().unwrap();
    floor(
        requests,
        move || async move {
            let clock = fencelab::clock::NodeClock::perfect(tokio::time::Instant::now());
            let node = std::sync::Arc::new(ZkNode::new(model::Config::default(), clock));
            let _ = model::serve(addr, node).await;
        },
        move || async move {
            let clock = fencelab::clock::NodeClock::perfect(tokio::time::Instant::now());
            let zk = ModelZk::connect(vec![addr], 4_000, clock, 1, None)
                .await
                .unwrap();
            for i in 0..requests {
                if i % 2 == 0 {
                    zk.create("/lock", b"", CreateMode::Ephemeral)
                        .await
                        .unwrap();
                } else {
                    zk.delete("/lock", -1).await.unwrap();
                }
            }
        },
    )
}

/// Each row beside etcd's (issue 19: a Redlock seed may cost at most 1.5 times an etcd seed),
/// every row measured in every repetition, interleaved. Each row also gets its protocol floor:
/// its lock service's requests (from its messages) and its storage exchanges, each at the cost
/// of one alone, measured in the same repetition. A Redlock waiter polls (an attempt and its
/// unlocks are ten requests) where an etcd waiter waits on one watch and a Curator waiter on
/// one `exists` watch, so the floor says how much of a ratio the protocol's own messages leave
/// to win.
pub fn service_table(standard: &Scenario, repeats: usize, seeds: u64) {
    let rows = rows(standard);
    // Per row: (seeds/s, messages per seed, lock requests per seed, protocol floor ms).
    let mut by_row: Vec<Vec<(f64, f64, f64, f64)>> = rows.iter().map(|_| Vec::new()).collect();
    let (mut etcd_us, mut redis_us, mut zk_us) = (vec![], vec![], vec![]);
    for r in 0..repeats {
        let start = r as u64 * seeds;
        let http = http_floor(20_000);
        let (etcd, redis, zk) = (model_floor(20_000), redis_floor(20_000), zk_floor(20_000));
        etcd_us.push(etcd.wall_s * 1e6);
        redis_us.push(redis.wall_s * 1e6);
        zk_us.push(zk.wall_s * 1e6);
        for (row, runs) in rows.iter().zip(&mut by_row) {
            let request = match row.service {
                Service::Etcd => etcd,
                Service::Redis => redis,
                Service::Zk => zk,
            };
            let s = &row.scenario;
            let (sps, _, m) = measure(s, seeds / 4, 1, start);
            let x = exchanges_per_seed(s, start..start + seeds / 4);
            let requests = (m - x * http.messages) / request.messages;
            let floor_ms = (x * http.wall_s + requests * request.wall_s) * 1000.0;
            runs.push((sps, m, requests, floor_ms));
        }
    }
    let col = |runs: &Vec<(f64, f64, f64, f64)>, f: fn(&(f64, f64, f64, f64)) -> f64| {
        median(runs.iter().map(f).collect())
    };
    println!();
    println!("| lock service (standard clients, workload, nemesis; Curator's mutex on ZooKeeper) | seeds/s (1 thread) | ms per seed | messages per seed | lock requests per seed | protocol floor, ms per seed | cost / etcd's |");
    println!("|---|---|---|---|---|---|---|");
    let etcd_sps = col(&by_row[0], |r| r.0);
    for (row, runs) in rows.iter().zip(&by_row) {
        let sps = col(runs, |r| r.0);
        println!(
            "| {} | {sps:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} |",
            row.name,
            1000.0 / sps,
            col(runs, |r| r.1),
            col(runs, |r| r.2),
            col(runs, |r| r.3),
            etcd_sps / sps
        );
    }
    println!(
        "one request alone (model): etcd {:.2} µs; Redis {:.2} µs; ZooKeeper {:.2} µs",
        median(etcd_us),
        median(redis_us),
        median(zk_us)
    );
    let floors: Vec<String> = rows
        .iter()
        .zip(&by_row)
        .skip(1)
        .map(|(row, runs)| format!("{} {:.2}", row.name, col(runs, |r| r.3) * etcd_sps / 1000.0))
        .collect();
    println!("protocol floor / etcd's seed: {}", floors.join("; "));
    for (row, runs) in rows.iter().zip(&by_row) {
        if let Some(line) = row.line {
            let sps = col(runs, |r| r.0);
            println!(
                "{line} seeds_per_sec={sps:.0} cost_vs_etcd={:.2}",
                etcd_sps / sps
            );
        }
    }
}
