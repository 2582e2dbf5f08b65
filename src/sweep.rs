//! Many seeds, on every core: each seed is one world with the plan its nemesis draws.
//!
//! Worlds are independent madsim runtimes, one at a time per OS thread; threads exist only
//! outside the simulations. Results are ordered by seed, so a summary does not depend on how
//! seeds were spread over threads.

use crate::nemesis;
use crate::scenario::Scenario;
use crate::storage::Fencing;
use crate::world;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Most seeds one sweep runs: a limit on everything.
pub const SEEDS_MAX: u64 = 100_000_000;

/// What a sweep keeps of one seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub violates: bool,
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub stale_acceptances: u64,
    pub false_rejections: u64,
    pub anomalies: u64,
    pub history_hash: u64,
    pub messages: u64,
    pub simulated_ms: u64,
    pub faults: usize,
    pub faults_outside: usize,
}

/// Runs one seed: draws its plan, runs the world, keeps the counts.
pub fn run_seed(scenario: &Scenario, fencing: Fencing, seed: u64) -> SeedResult {
    let plan = nemesis::draw(scenario, seed);
    let run = world::run(scenario, &plan, fencing, seed);
    let v = &run.verdict;
    SeedResult {
        seed,
        violates: v.violates(),
        lost_updates: v.lost_updates,
        token_order_breaks: v.token_order_breaks,
        stale_acceptances: v.stale_acceptances,
        false_rejections: v.false_rejections,
        anomalies: v.anomalies.len() as u64,
        history_hash: run.history_hash(),
        messages: run.messages,
        simulated_ms: run.simulated_ms,
        faults: run.faults.len(),
        faults_outside: run
            .faults
            .iter()
            .filter(|f| f.assumption == nemesis::Assumption::Outside)
            .count(),
    }
}

/// Runs `seeds` on `jobs` threads; `progress` is called after each seed (from any thread).
pub fn sweep(
    scenario: &Scenario,
    fencing: Fencing,
    seeds: Range<u64>,
    jobs: usize,
    progress: &(dyn Fn(&SeedResult) + Sync),
) -> Vec<SeedResult> {
    assert!(seeds.end - seeds.start <= SEEDS_MAX, "too many seeds");
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::with_capacity((seeds.end - seeds.start) as usize));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let r = run_seed(scenario, fencing, seed);
                progress(&r);
                results.lock().expect("results lock").push(r);
            });
        }
    });
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|r| r.seed);
    results
}

/// The figures of one policy over many seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub fencing: Fencing,
    pub seeds: u64,
    pub violating_seeds: u64,
    pub lost_updates: u64,
    pub token_order_breaks: u64,
    pub stale_acceptances: u64,
    pub false_rejections: u64,
    pub anomalies: u64,
    pub seeds_per_sec: f64,
    /// Simulated seconds per wall second, over all threads.
    pub realtime_x: f64,
    pub messages_per_seed: f64,
    /// The first few violating seeds, to replay.
    pub violating_examples: Vec<u64>,
}

impl Summary {
    pub fn of(fencing: Fencing, results: &[SeedResult], wall_s: f64) -> Summary {
        let sum = |f: fn(&SeedResult) -> u64| results.iter().map(f).sum::<u64>();
        let seeds = results.len() as u64;
        let wall_s = wall_s.max(1e-9);
        Summary {
            fencing,
            seeds,
            violating_seeds: results.iter().filter(|r| r.violates).count() as u64,
            lost_updates: sum(|r| r.lost_updates),
            token_order_breaks: sum(|r| r.token_order_breaks),
            stale_acceptances: sum(|r| r.stale_acceptances),
            false_rejections: sum(|r| r.false_rejections),
            anomalies: sum(|r| r.anomalies),
            seeds_per_sec: seeds as f64 / wall_s,
            realtime_x: sum(|r| r.simulated_ms) as f64 / 1000.0 / wall_s,
            messages_per_seed: sum(|r| r.messages) as f64 / seeds.max(1) as f64,
            violating_examples: results
                .iter()
                .filter(|r| r.violates)
                .take(10)
                .map(|r| r.seed)
                .collect(),
        }
    }

    /// The one-line form tools read.
    pub fn line(&self) -> String {
        format!(
            "fencing={} seeds={} violating_seeds={} lost_updates={} token_order_breaks={} stale_acceptances={} false_rejections={}",
            self.fencing,
            self.seeds,
            self.violating_seeds,
            self.lost_updates,
            self.token_order_breaks,
            self.stale_acceptances,
            self.false_rejections
        )
    }
}

/// Runs and summarizes, timing the wall clock (outside the simulations).
pub fn sweep_summary(
    scenario: &Scenario,
    fencing: Fencing,
    seeds: Range<u64>,
    jobs: usize,
) -> (Summary, Vec<SeedResult>) {
    let start = Instant::now();
    let results = sweep(scenario, fencing, seeds, jobs, &|_| {});
    let summary = Summary::of(fencing, &results, start.elapsed().as_secs_f64());
    (summary, results)
}

/// Threads to use by default: every core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident memory of this process so far, in MB (Linux; `None` elsewhere).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
