//! `cargo bench`: how many schedules fencelab tries per second, against madsim's own floor.
//!
//! Prints, from one run: seeds per second of the standard scenario on one thread and on all
//! cores, simulated seconds per wall second, network messages per seed and the engine floor
//! for that many messages (a bare madsim message exchange measured in the same run), cost
//! against clients and simulated duration, and peak memory over many seeds. Each figure is
//! the median of `FENCELAB_BENCH_REPEATS` (default 5) repetitions. The last line is
//! machine-readable. `FENCELAB_BENCH_MEMORY_SEEDS` (default 100000) sets the memory run.
#[cfg(not(madsim))]
fn main() {
    eprintln!("the benchmark runs the simulation: run `cargo bench` without RUSTFLAGS");
}

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
/// Wall seconds for `messages` bare madsim messages (request/response pairs between two nodes).
fn engine_floor_s(messages: u64) -> f64 {
    use madsim::net::Endpoint;
    let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    let began = Instant::now();
    rt.block_on(async move {
        let h = madsim::runtime::Handle::current();
        let server = h
            .create_node()
            .name("server")
            .ip("10.0.0.1".parse().unwrap())
            .build();
        let client = h
            .create_node()
            .name("client")
            .ip("10.0.0.2".parse().unwrap())
            .build();
        server.spawn(async move {
            let ep = Endpoint::bind("10.0.0.1:1").await.unwrap();
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = ep.recv_from(1, &mut buf).await.unwrap();
                ep.send_to(from, 2, &buf[..n]).await.unwrap();
            }
        });
        let pairs = messages / 2;
        client
            .spawn(async move {
                let ep = Endpoint::bind("10.0.0.2:1").await.unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..pairs {
                    ep.send_to("10.0.0.1:1", 1, b"ping").await.unwrap();
                    ep.recv_from(2, &mut buf).await.unwrap();
                }
            })
            .await
            .unwrap();
        h.kill(server.id());
        h.kill(client.id());
        madsim::time::sleep(Duration::from_millis(1)).await;
    });
    began.elapsed().as_secs_f64()
}

#[cfg(madsim)]
fn main() {
    let repeats = env_u64("FENCELAB_BENCH_REPEATS", 5).max(1) as usize;
    let seeds = env_u64("FENCELAB_BENCH_SEEDS", 400);
    let memory_seeds = env_u64("FENCELAB_BENCH_MEMORY_SEEDS", 100_000);
    let cores = sweep::default_jobs();
    let standard = Scenario::standard();
    println!("fencelab bench: standard scenario (3 clients, counter, TTL 2 s, 20 s), fencing=token, {repeats} repeats, median");

    let mut one = vec![];
    let mut all = vec![];
    let mut floor_ratio = vec![];
    let mut realtime = vec![];
    let mut msgs = 0.0;
    for r in 0..repeats {
        let start = r as u64 * seeds;
        let (sps1, sim_s, m) = measure(&standard, seeds, 1, start);
        let (sps_all, _, _) = measure(&standard, seeds, cores, start);
        let floor_s_per_seed = engine_floor_s((m * 200.0) as u64) / 200.0;
        one.push(sps1);
        all.push(sps_all);
        realtime.push(sps1 * sim_s);
        floor_ratio.push(floor_s_per_seed * sps1);
        msgs = m;
    }
    let (sps1, spsn, rt_x, ratio) = (
        median(one),
        median(all),
        median(realtime),
        median(floor_ratio),
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| seeds/s, 1 thread | {sps1:.0} |");
    println!(
        "| seeds/s, {cores} threads | {spsn:.0} ({:.2}x) |",
        spsn / sps1
    );
    println!("| simulated s per wall s, 1 thread | {rt_x:.0} |");
    println!("| messages per seed | {msgs:.0} |");
    println!(
        "| engine floor: bare madsim messages per s | {:.0} |",
        msgs * sps1 / ratio
    );
    println!("| achieved / floor | {ratio:.3} |");
    // The KV mutex for every row: the simulated etcd's election supports 3 clients.
    let by_clients: Vec<(String, f64, Scenario)> = [3u32, 10, 30]
        .into_iter()
        .map(|clients| {
            let s = Scenario {
                clients,
                lock_method: fencelab::lock::LockMethod::KvMutex,
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
    for (axis, per, rows) in [
        ("clients (kv-mutex)", "per client", by_clients),
        ("simulated duration", "per simulated s", by_duration),
    ] {
        println!();
        println!("| {axis} | seeds/s (1 thread) | ms per seed | {per} |");
        println!("|---|---|---|---|");
        for (label, size, s) in rows {
            let v: Vec<f64> = (0..repeats)
                .map(|r| measure(&s, seeds / 4, 1, r as u64 * seeds).0)
                .collect();
            let sps = median(v);
            println!(
                "| {label} | {sps:.0} | {:.2} | {:.3} |",
                1000.0 / sps,
                1000.0 / sps / size
            );
        }
    }

    // Peak memory over many seeds: flat if every node is torn down.
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
    println!();
    println!("| seeds run | peak RSS (MB) |");
    println!("|---|---|");
    for (n, mb) in &marks {
        println!("| {n} | {mb:.1} |");
    }
    let peak = marks.last().map_or(f64::NAN, |m| m.1);
    println!(
        "fencelab-bench seeds_per_sec={sps1:.0} realtime_x={rt_x:.0} floor_ratio={ratio:.3} peak_rss_mb={peak:.1}"
    );
}
