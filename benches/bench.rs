//! `cargo bench`: how many schedules fencelab tries per second, against madsim's own floor.
//!
//! Prints, from one run: seeds per second of the standard scenario on one thread and on all
//! cores, simulated seconds per wall second, network messages per seed and the engine floor
//! for that many messages (a bare madsim message exchange measured in the same run), the
//! protocol floor (`contrib/lock`'s etcd requests and storage exchanges, each measured alone in the
//! same run), each for fencelab's etcd model and for madsim's SimServer, cost against clients and simulated duration, and peak memory over many seeds.
//! Each figure is the median of `FENCELAB_BENCH_REPEATS` (default 5) repetitions. The last
//! line is machine-readable. `FENCELAB_BENCH_MEMORY_SEEDS` (default 100000) sets the memory run;
//! `FENCELAB_BENCH_ONLY=services` runs only the lock-service table (Redlock and ZooKeeper on
//! 1 and 3 servers against etcd).

// mimalloc, as in every binary of the package (the library sets no allocator).
#[path = "../src/global_alloc.rs"]
mod global_alloc;

#[cfg(not(madsim))]
fn main() {
    eprintln!("the benchmark runs the simulation: run `cargo bench` without RUSTFLAGS");
}

// The lock-service table (benches/bench/services.rs).
#[cfg(madsim)]
#[path = "bench/services.rs"]
mod services;

#[cfg(madsim)]
use fencelab::etcd::Backend;
#[cfg(madsim)]
use fencelab::scenario::Scenario;
#[cfg(madsim)]
use fencelab::storage::Fencing;
#[cfg(madsim)]
use fencelab::sweep;
#[cfg(madsim)]
use std::time::{Duration, Instant};

#[cfg(madsim)]
fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[cfg(madsim)]
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

#[cfg(madsim)]
/// Seeds per second and (simulated s, messages) per seed for one configuration.
fn measure(scenario: &Scenario, seeds: u64, jobs: usize, start: u64) -> (f64, f64, f64) {
    let began = Instant::now();
    let results = sweep::sweep(
        scenario,
        Fencing::Token,
        start..start + seeds,
        jobs,
        &|_| {},
    );
    let wall_s = began.elapsed().as_secs_f64();
    let sim_s: f64 = results.iter().map(|r| r.simulated_ms as f64 / 1000.0).sum();
    let messages: u64 = results.iter().map(|r| r.messages).sum();
    (
        seeds as f64 / wall_s,
        sim_s / seeds as f64,
        messages as f64 / seeds as f64,
    )
}

#[cfg(madsim)]
/// What one exchange costs in madsim with nothing else running: wall seconds and network
/// messages per exchange.
#[derive(Debug, Clone, Copy)]
struct Floor {
    wall_s: f64,
    messages: f64,
}

#[cfg(madsim)]
/// Runs `client` (which makes `count` exchanges) on a client node against `server` on a
/// server node at 10.0.0.1, in a fresh runtime, and returns the cost per exchange.
fn floor<S, SF, C, CF>(count: u64, server: S, client: C) -> Floor
where
    S: Fn() -> SF + Send + Sync + 'static,
    SF: std::future::Future<Output = ()> + 'static,
    C: FnOnce() -> CF + Send + 'static,
    CF: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    let began = Instant::now();
    let messages = rt.block_on(async move {
        let h = madsim::runtime::Handle::current();
        let server = h
            .create_node()
            .name("server")
            .ip("10.0.0.1".parse().unwrap())
            .init(server)
            .build();
        let client_node = h
            .create_node()
            .name("client")
            .ip("10.0.0.2".parse().unwrap())
            .build();
        // Let the server bind before the first request.
        madsim::time::sleep(Duration::from_millis(10)).await;
        let net = madsim::net::NetSim::current();
        let before = net.stat().msg_count;
        client_node.spawn(client()).await.unwrap();
        let messages = net.stat().msg_count - before;
        h.kill(server.id());
        h.kill(client_node.id());
        madsim::time::sleep(Duration::from_millis(1)).await;
        messages
    });
    Floor {
        wall_s: began.elapsed().as_secs_f64() / count as f64,
        messages: messages as f64 / count as f64,
    }
}

#[cfg(madsim)]
/// The engine floor: one bare madsim message (`Endpoint::send_to`, answered in kind).
fn bare_floor(pairs: u64) -> Floor {
    use madsim::net::Endpoint;
    let f = floor(
        pairs,
        || async {
            let ep = Endpoint::bind("10.0.0.1:1").await.unwrap();
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = ep.recv_from(1, &mut buf).await.unwrap();
                ep.send_to(from, 2, &buf[..n]).await.unwrap();
            }
        },
        move || async move {
            let ep = Endpoint::bind("10.0.0.2:1").await.unwrap();
            let mut buf = [0u8; 64];
            for _ in 0..pairs {
                ep.send_to("10.0.0.1:1", 1, b"ping").await.unwrap();
                ep.recv_from(2, &mut buf).await.unwrap();
            }
        },
    );
    // Per message, not per pair.
    Floor {
        wall_s: f.wall_s / f.messages,
        messages: 1.0,
    }
}

#[cfg(madsim)]
/// One etcd request through madsim-etcd-client to its simulated server (a KV get).
fn etcd_floor(requests: u64) -> Floor {
    floor(
        requests,
        || async {
            let _ = etcd_client::SimServer::builder()
                .serve("10.0.0.1:2379".parse().unwrap())
                .await;
        },
        move || async move {
            let client = etcd_client::Client::connect(["10.0.0.1:2379"], None)
                .await
                .unwrap();
            let mut kv = client.kv_client();
            for _ in 0..requests {
                kv.get("counter", None).await.unwrap();
            }
        },
    )
}

#[cfg(madsim)]
/// One etcd request through fencelab's model (a KV get on the client's one connection).
fn model_floor(requests: u64) -> Floor {
    use fencelab::etcd::{model, Etcd, Keys, Version};
    floor(
        requests,
        || async {
            let clock = fencelab::clock::NodeClock::perfect(tokio::time::Instant::now());
            let member = std::sync::Arc::new(model::Member::new(
                model::Config::defaults(Version::V3_5),
                clock,
            ));
            let _ = model::serve("10.0.0.1:2379".parse().unwrap(), member).await;
        },
        move || async move {
            let etcd = model::ModelEtcd::new("10.0.0.1:2379".parse().unwrap());
            for _ in 0..requests {
                etcd.get(Keys::Exact("counter".into())).await.unwrap();
            }
        },
    )
}

#[cfg(madsim)]
/// One storage exchange: fencelab's HTTP/1.1 client and server (hyper), a read.
fn http_floor(requests: u64) -> Floor {
    use fencelab::protocol::{Op, Request};
    use fencelab::storage::{http, Store};
    use std::sync::{Arc, Mutex};
    floor(
        requests,
        || async {
            let store = Arc::new(Mutex::new(Store::new(Fencing::Token)));
            let listener = tokio::net::TcpListener::bind("10.0.0.1:8080")
                .await
                .unwrap();
            let _ = http::Server::new(store, None, "storage")
                .serve(listener)
                .await;
        },
        move || async move {
            let mut client = http::Client::new("10.0.0.1:8080");
            let req = Request {
                op: Op::Read,
                key: "counter".into(),
                val: String::new(),
                version: 1,
            };
            for _ in 0..requests {
                client.call(&req, None).await.unwrap();
            }
        },
    )
}

#[cfg(madsim)]
/// Storage exchanges per seed of `scenario` (every invoke is one HTTP exchange), averaged
/// over `seeds`.
fn exchanges_per_seed(scenario: &Scenario, seeds: std::ops::Range<u64>) -> f64 {
    use fencelab::history::EventKind;
    let n = seeds.end - seeds.start;
    let total: usize = seeds
        .map(|seed| {
            let plan = fencelab::nemesis::draw(scenario, seed);
            let run = fencelab::world::run(scenario, &plan, Fencing::Token, seed);
            run.history
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Invoke { .. }))
                .count()
        })
        .sum();
    total as f64 / n.max(1) as f64
}

#[cfg(madsim)]
/// The main table for one etcd backend: speed, messages, the engine and protocol floors.
fn backend_table(
    scenario: &Scenario,
    backend: Backend,
    repeats: usize,
    seeds: u64,
    cores: usize,
    etcd_floor: impl Fn(u64) -> Floor,
) {
    let mut one = vec![];
    let mut all = vec![];
    let mut floor_ratio = vec![];
    let mut protocol_ratio = vec![];
    let mut realtime = vec![];
    let (mut bare_us, mut etcd_us, mut http_us) = (vec![], vec![], vec![]);
    let (mut msgs, mut etcd_msgs, mut http_msgs) = (vec![], vec![], vec![]);
    let (mut exchanges, mut etcd_requests, mut protocol_ms) = (vec![], vec![], vec![]);
    for r in 0..repeats {
        let start = r as u64 * seeds;
        let (sps1, sim_s, m) = measure(scenario, seeds, 1, start);
        let (sps_all, _, _) = measure(scenario, seeds, cores, start);
        let bare = bare_floor(100_000);
        let etcd = etcd_floor(20_000);
        let http = http_floor(20_000);
        one.push(sps1);
        all.push(sps_all);
        realtime.push(sps1 * sim_s);
        floor_ratio.push(m * bare.wall_s * sps1);
        // The protocol floor: the timed seeds' exchanges, each at its own cost alone. Every
        // invoke is one storage exchange; the rest of the messages are etcd's.
        let x = exchanges_per_seed(scenario, start..start + seeds);
        let requests = (m - x * http.messages) / etcd.messages;
        let protocol_s = x * http.wall_s + requests * etcd.wall_s;
        protocol_ratio.push(protocol_s * sps1);
        protocol_ms.push(protocol_s * 1000.0);
        bare_us.push(bare.wall_s * 1e6);
        etcd_us.push(etcd.wall_s * 1e6);
        http_us.push(http.wall_s * 1e6);
        msgs.push(m);
        etcd_msgs.push(etcd.messages);
        http_msgs.push(http.messages);
        exchanges.push(x);
        etcd_requests.push(requests);
    }
    let (sps1, spsn, rt_x, ratio, pratio) = (
        median(one),
        median(all),
        median(realtime),
        median(floor_ratio),
        median(protocol_ratio),
    );
    let (bare_us, etcd_us, http_us) = (median(bare_us), median(etcd_us), median(http_us));
    let (msgs, etcd_msgs, http_msgs) = (median(msgs), median(etcd_msgs), median(http_msgs));
    let (exchanges, etcd_requests, protocol_ms) = (
        median(exchanges),
        median(etcd_requests),
        median(protocol_ms),
    );
    println!();
    println!("etcd = {}", backend.as_str());
    println!("| measure | value |");
    println!("|---|---|");
    println!("| seeds/s, 1 thread | {sps1:.0} |");
    println!(
        "| seeds/s, {cores} threads | {spsn:.0} ({:.2}x) |",
        spsn / sps1
    );
    println!("| simulated s per wall s, 1 thread | {rt_x:.0} |");
    println!("| wall ms per seed, 1 thread | {:.2} |", 1000.0 / sps1);
    println!("| messages per seed | {msgs:.0} |");
    println!(
        "| engine floor: one bare madsim message | {bare_us:.2} µs ({:.0} messages/s) |",
        1e6 / bare_us
    );
    println!("| **achieved / engine floor** | **{ratio:.3}** |");
    println!(
        "| one etcd request alone ({}) | {etcd_us:.2} µs, {etcd_msgs:.1} messages |",
        backend.as_str()
    );
    println!(
        "| one storage exchange alone (hyper HTTP/1.1) | {http_us:.2} µs, {http_msgs:.1} messages |"
    );
    println!(
        "| per seed: etcd requests (from messages) + storage exchanges | {etcd_requests:.0} + {exchanges:.0} |"
    );
    println!("| protocol floor per seed (those, each alone) | {protocol_ms:.2} ms |");
    println!("| achieved / protocol floor | {pratio:.3} |");
    println!(
        "fencelab-bench-{} seeds_per_sec={sps1:.0} realtime_x={rt_x:.0} floor_ratio={ratio:.3}",
        backend.as_str()
    );
}

#[cfg(madsim)]
fn main() {
    let repeats = env_u64("FENCELAB_BENCH_REPEATS", 5).max(1) as usize;
    let seeds = env_u64("FENCELAB_BENCH_SEEDS", 400);
    let memory_seeds = env_u64("FENCELAB_BENCH_MEMORY_SEEDS", 100_000);
    let cores = sweep::default_jobs();
    let standard = Scenario::standard();
    // `FENCELAB_BENCH_ONLY=services`: the lock-service table alone (Redlock, ZooKeeper, etcd).
    if std::env::var("FENCELAB_BENCH_ONLY").as_deref() == Ok("services") {
        println!("fencelab bench: the lock-service table alone, {repeats} repeats, median");
        services::service_table(&standard, repeats, seeds);
        return;
    }
    println!("fencelab bench: standard scenario (3 clients, 3 etcd members, counter, TTL 2 s, 20 s), fencing=token, {repeats} repeats, median");

    // Peak memory over many seeds: flat if every node is torn down. Measured first, because
    // peak RSS is the process's high-water mark, and the floors below raise it: madsim never
    // cancels a timer, and each uncancelled timer keeps its finished task alive until the end.
    let mut marks = vec![];
    let step = (memory_seeds / 4).max(1);
    let mut done = 0;
    while done < memory_seeds {
        let n = step.min(memory_seeds - done);
        sweep::sweep(
            &standard,
            Fencing::Token,
            1_000_000 + done..1_000_000 + done + n,
            cores,
            &|_| {},
        );
        done += n;
        marks.push((done, sweep::peak_rss_mb().unwrap_or(f64::NAN)));
    }
    for backend in [Backend::Model, Backend::Madsim] {
        // SimServer is one node.
        let etcd_members = match backend {
            Backend::Model => standard.etcd_members,
            Backend::Madsim => 1,
        };
        let scenario = Scenario {
            etcd: backend,
            etcd_members,
            ..standard.clone()
        };
        let etcd_floor = |n| match backend {
            Backend::Model => model_floor(n),
            Backend::Madsim => etcd_floor(n),
        };
        backend_table(&scenario, backend, repeats, seeds, cores, etcd_floor);
    }
    services::service_table(&standard, repeats, seeds);
    // Rows on the model (the default): its election serves any number of clients.
    let by_clients: Vec<(String, f64, Scenario)> = [3u32, 10, 30]
        .into_iter()
        .map(|clients| {
            let s = Scenario {
                clients,
                ..standard.clone()
            };
            (clients.to_string(), clients as f64, s)
        })
        .collect();
    let by_duration: Vec<(String, f64, Scenario)> = [10_000u64, 20_000, 40_000]
        .into_iter()
        .map(|duration_ms| {
            let s = Scenario {
                duration_ms,
                ..standard.clone()
            };
            (
                format!("{} s", duration_ms / 1000),
                duration_ms as f64 / 1000.0,
                s,
            )
        })
        .collect();
    // The cluster's cost: its members are nodes with their own lessor timers; the model's
    // leadership sends no peer messages (see `etcd::model::cluster`), so any change in
    // messages per seed is the clients' own (failover, waits for a leader).
    let by_members: Vec<(String, f64, Scenario)> = [1u32, 3, 5]
        .into_iter()
        .map(|etcd_members| {
            let s = Scenario {
                etcd_members,
                ..standard.clone()
            };
            (etcd_members.to_string(), etcd_members as f64, s)
        })
        .collect();
    for (axis, per, rows) in [
        ("etcd members (model)", "per member", by_members),
        ("clients (election, model)", "per client", by_clients),
        ("simulated duration", "per simulated s", by_duration),
    ] {
        println!();
        println!(
            "| {axis} | seeds/s (1 thread) | ms per seed | {per} | messages per seed | µs per message |"
        );
        println!("|---|---|---|---|---|---|");
        for (label, size, s) in rows {
            let runs: Vec<(f64, f64, f64)> = (0..repeats)
                .map(|r| measure(&s, seeds / 4, 1, r as u64 * seeds))
                .collect();
            let sps = median(runs.iter().map(|r| r.0).collect());
            let m = median(runs.iter().map(|r| r.2).collect());
            println!(
                "| {label} | {sps:.0} | {:.2} | {:.3} | {m:.0} | {:.2} |",
                1000.0 / sps,
                1000.0 / sps / size,
                1e6 / sps / m
            );
        }
    }

    println!();
    println!("| seeds run | peak RSS (MB) |");
    println!("|---|---|");
    for (n, mb) in &marks {
        println!("| {n} | {mb:.1} |");
    }
    let peak = marks.last().map_or(f64::NAN, |m| m.1);
    println!("fencelab-bench peak_rss_mb={peak:.1}");
}
